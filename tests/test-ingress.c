/* test-ingress.c — the one way in behind every door: checks, the list
 * rule, the group commit on the ingress thread, deduplication of resends,
 * and what a locked, full or stopping spool answers.  In process, against
 * a real spool and the real ingress thread; the doors' own tests drive the
 * binary. */
#include "config.h"

#include <sqlite3.h>

#include "sc-ingress-private.h"
#include "sc-sqlite-private.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	ScConfig *config;
} Fixture;

static const char *const post =
    "From: Alice <alice@example.org>\r\n"
    "To: list@example.org\r\n"
    "Subject: hello\r\n"
    "Message-ID: <post-1@example.org>\r\n"
    "\r\n"
    "Hello.\r\n";

static ScConfig *
load_config_busy (Fixture *fixture, const char *busy_timeout, const char *extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "busy-timeout=%s\n"
						 "max-message-size=2K\n"
						 "%s"
						 "[list:a.example.org]\n"
						 "pipeline=decorate\n"
						 "bounces=a-bounces@example.org\n"
						 "[list:b.example.org]\n"
						 "pipeline=decorate;archive\n",
						 busy_timeout, extra != NULL ? extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	g_autoptr(GError) error = NULL;
	ScConfig *config = sc_config_load (path, &error);

	g_assert_no_error (error);
	return config;
}

static ScConfig *
load_config (Fixture *fixture, const char *extra)
{
	return load_config_busy (fixture, "1s", extra);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-ingress");
	fixture->config = load_config (fixture, data);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	sc_config_unref (fixture->config);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

static GBytes *
message_with (const char *headers)
{
	return g_bytes_new_take (g_strdup_printf ("%sFrom: a@example.org\r\nSubject: s\r\n\r\nbody\r\n",
						  headers),
				 strlen (headers) + strlen ("From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"));
}

static void
test_route (Fixture *fixture, gconstpointer data)
{
	const ScListConfig *list;
	g_autoptr(ScConfig) with_default = load_config (fixture, "default-list=b.example.org\n");

	/* List-Id first, in angle brackets or bare */
	list = sc_ingress_route (fixture->config, "The B list <b.example.org>", "a-bounces@example.org");
	g_assert_cmpstr (list->id, ==, "b.example.org");
	list = sc_ingress_route (fixture->config, " b.example.org ", NULL);
	g_assert_cmpstr (list->id, ==, "b.example.org");
	/* then the sender as a list's bounces= address, any case */
	list = sc_ingress_route (fixture->config, "<unknown.example.org>", "A-Bounces@Example.ORG");
	g_assert_cmpstr (list->id, ==, "a.example.org");
	/* then default-list, else none */
	g_assert_null (sc_ingress_route (fixture->config, NULL, "someone@example.org"));
	g_assert_null (sc_ingress_route (fixture->config, NULL, ""));
	list = sc_ingress_route (with_default, "<unknown.example.org>", "");
	g_assert_cmpstr (list->id, ==, "b.example.org");
}

static void
assert_refused (Fixture *fixture, const ScSubmission *submission, gint code)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScPrepared) prepared = sc_ingress_prepare (fixture->config, submission, &error);

	g_assert_null (prepared);
	g_assert_error (error, SC_INGRESS_ERROR, code);
	g_test_message ("refused: %s", error->message);
}

static void
test_prepare (Fixture *fixture, gconstpointer data)
{
	static const char *const rcpt[] = {"m1@example.net", NULL};
	static const char *const bad_rcpt[] = {"m1@example.net", "not an address", NULL};
	static const char *const none[] = {NULL};
	g_autoptr(GBytes) good = g_bytes_new_static (post, strlen (post));
	g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
	g_autoptr(GBytes) not_mail = g_bytes_new_static ("just text\n", 10);
	g_autofree char *big_text = g_strnfill (3000, 'x');
	g_autofree char *big_message = g_strdup_printf ("%s%s\r\n", post, big_text);
	g_autoptr(GBytes) big = g_bytes_new (big_message, strlen (big_message));
	g_autoptr(GBytes) no_id = message_with ("List-Id: <a.example.org>\r\n");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScPrepared) prepared = NULL;
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = good};

	prepared = sc_ingress_prepare (fixture->config, &s, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (prepared->list_id, ==, "a.example.org");
	g_assert_cmpstr (prepared->pipeline, ==, "decorate");
	g_assert_cmpstr (prepared->message_id, ==, "<post-1@example.org>");
	g_assert_false (prepared->generated_message_id);
	g_assert_cmpstr (prepared->subject, ==, "hello");
	g_clear_pointer (&prepared, sc_prepared_free);

	/* a missing Message-ID is made and written into the message */
	s.raw = no_id;
	s.sender = "";
	prepared = sc_ingress_prepare (fixture->config, &s, &error);
	g_assert_no_error (error);
	g_assert_true (prepared->generated_message_id);
	g_assert_nonnull (g_strstr_len (g_bytes_get_data (prepared->raw, NULL),
					g_bytes_get_size (prepared->raw), "Message-ID: <"));

	s = (ScSubmission) {.door = "test", .sender = "", .recipients = rcpt, .raw = empty};
	assert_refused (fixture, &s, SC_INGRESS_ERROR_BAD_MESSAGE);
	s.raw = not_mail;
	assert_refused (fixture, &s, SC_INGRESS_ERROR_BAD_MESSAGE);
	s.raw = big;
	assert_refused (fixture, &s, SC_INGRESS_ERROR_TOO_BIG);
	s.raw = good;
	s.sender = "bad sender";
	assert_refused (fixture, &s, SC_INGRESS_ERROR_BAD_ADDRESS);
	s.sender = "";
	s.recipients = bad_rcpt;
	assert_refused (fixture, &s, SC_INGRESS_ERROR_BAD_ADDRESS);
	s.recipients = none;
	assert_refused (fixture, &s, SC_INGRESS_ERROR_BAD_ADDRESS);
	s.recipients = rcpt;
	/* no List-Id matching, a sender that is no list's: no list */
	assert_refused (fixture, &s, SC_INGRESS_ERROR_NO_LIST);
	s.list_id = "typo.example.org";
	assert_refused (fixture, &s, SC_INGRESS_ERROR_NO_LIST);
}

/* ---- through the ingress thread ---- */

typedef struct {
	GMainLoop *loop;
	ScAcceptor *acceptor;
	ScAccepted *accepted;
	GError *error;
	char *spool_folder;
	gboolean visible_at_answer; /* the row was committed when the answer came */
} Answer;

static void
answered_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Answer *answer = user_data;

	answer->accepted = sc_acceptor_accept_finish (answer->acceptor, result, &answer->error);
	if (answer->accepted != NULL && answer->accepted->queue_id != NULL) {
		/* another connection, as a crash right after the answer would see it */
		g_autoptr(ScSpool) reader = sc_spool_open (answer->spool_folder, G_USEC_PER_SEC, NULL);
		g_autoptr(ScMessageSummary) summary =
		    sc_spool_get_summary (reader, answer->accepted->queue_id, NULL);
		answer->visible_at_answer = summary != NULL;
	}
	g_main_loop_quit (answer->loop);
}

/* Submits from the calling thread (its own context) and waits. */
static ScAccepted *
accept_sync (ScIngress *ingress,
	     const ScConfig *config,
	     const ScSubmission *submission,
	     GError **error,
	     gboolean *out_visible)
{
	g_autoptr(GMainContext) context = g_main_context_new ();
	g_autoptr(GMainLoop) loop = g_main_loop_new (context, FALSE);
	Answer answer = {
	    .loop = loop,
	    .acceptor = sc_ingress_get_acceptor (ingress),
	    .spool_folder = config->spool,
	};

	g_main_context_push_thread_default (context);
	sc_acceptor_accept_async (answer.acceptor, submission, NULL, answered_cb, &answer);
	g_main_loop_run (loop);
	g_main_context_pop_thread_default (context);
	if (out_visible != NULL)
		*out_visible = answer.visible_at_answer;
	if (answer.error != NULL)
		g_propagate_error (error, answer.error);
	return answer.accepted;
}

static gint64
count_rows (const ScConfig *config, const char *sql)
{
	g_autofree char *path = g_build_filename (config->spool, "spool.db", NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	gint64 value;

	g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	value = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	sqlite3_close (db);
	return value;
}

typedef struct {
	ScIngress *ingress;
	const ScConfig *config;
	guint index;
	guint accepted;
	guint visible;
} Client;

#define CLIENTS 8
#define PER_CLIENT 40

static gpointer
client_thread (gpointer user_data)
{
	Client *client = user_data;

	for (guint i = 0; i < PER_CLIENT; i++) {
		g_autofree char *text = g_strdup_printf ("From: a@example.org\r\nMessage-ID: <c%u-%u@example.org>\r\n"
							 "List-Id: <b.example.org>\r\n\r\nbody %u\r\n",
							 client->index, i, i);
		g_autoptr(GBytes) raw = g_bytes_new (text, strlen (text));
		const char *rcpt[] = {"m1@example.net", "m2@example.com", NULL};
		ScSubmission s = {.door = "test", .sender = "", .recipients = rcpt, .raw = raw};
		g_autoptr(GError) error = NULL;
		gboolean visible = FALSE;
		g_autoptr(ScAccepted) accepted = accept_sync (client->ingress, client->config, &s, &error, &visible);

		g_assert_no_error (error);
		g_assert_nonnull (accepted->queue_id);
		g_assert_cmpstr (accepted->list_id, ==, "b.example.org");
		client->accepted++;
		client->visible += visible;
	}
	return NULL;
}

/* Eight threads, each waiting for its answer before sending again, as
 * SMTP clients do: every message stored once, and each answer only once
 * another connection can see the row. */
static void
test_group_commit (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (fixture->config, &error);
	Client clients[CLIENTS];
	GThread *threads[CLIENTS];
	guint accepted = 0;
	guint visible = 0;

	g_assert_no_error (error);
	for (guint i = 0; i < CLIENTS; i++) {
		clients[i] = (Client) {.ingress = ingress, .config = fixture->config, .index = i};
		threads[i] = g_thread_new ("client", client_thread, &clients[i]);
	}
	for (guint i = 0; i < CLIENTS; i++) {
		g_thread_join (threads[i]);
		accepted += clients[i].accepted;
		visible += clients[i].visible;
	}
	g_assert_cmpuint (accepted, ==, CLIENTS * PER_CLIENT);
	g_assert_cmpuint (visible, ==, CLIENTS * PER_CLIENT);
	g_clear_pointer (&ingress, sc_ingress_free);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, CLIENTS * PER_CLIENT);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM recipients"), ==,
			 2 * CLIENTS * PER_CLIENT);
}

/* A list resends a chunk when it missed our 250: (Message-ID, recipient)
 * pairs already accepted are answered but not stored again. */
static void
test_dedupe (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (fixture->config, &error);
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *first[] = {"m1@example.net", "m2@example.com", NULL};
	const char *resend[] = {"M1@example.net", "m2@example.com", NULL};
	const char *overlap[] = {"m2@example.com", "m3@example.org", NULL};
	ScSubmission s = {.door = "smtp", .peer = "127.0.0.1", .sender = "a-bounces@example.org",
			  .recipients = first, .raw = raw};
	g_autoptr(ScAccepted) a = NULL;
	g_autoptr(ScAccepted) b = NULL;
	g_autoptr(ScAccepted) c = NULL;

	g_assert_no_error (error);
	a = accept_sync (ingress, fixture->config, &s, &error, NULL);
	g_assert_no_error (error);
	g_assert_nonnull (a->queue_id);
	g_assert_cmpuint (a->n_recipients, ==, 2);
	g_assert_cmpuint (a->n_duplicates, ==, 0);

	s.recipients = resend;
	b = accept_sync (ingress, fixture->config, &s, &error, NULL);
	g_assert_no_error (error);
	g_assert_null (b->queue_id);
	g_assert_cmpstr (b->duplicate_of, ==, a->queue_id);
	g_assert_cmpuint (b->n_duplicates, ==, 2);
	g_assert_cmpuint (b->n_recipients, ==, 0);

	s.recipients = overlap;
	c = accept_sync (ingress, fixture->config, &s, &error, NULL);
	g_assert_no_error (error);
	g_assert_nonnull (c->queue_id);
	g_assert_cmpuint (c->n_recipients, ==, 1);
	g_assert_cmpuint (c->n_duplicates, ==, 1);
	g_clear_pointer (&ingress, sc_ingress_free);

	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 2);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM recipients"), ==, 3);
	g_assert_cmpint (count_rows (fixture->config,
				     "SELECT count(*) FROM recipients WHERE address = 'm3@example.org'"), ==, 1);
	/* recorded: the audit log names what was left out and who sent it */
	g_assert_cmpint (count_rows (fixture->config,
				     "SELECT count(*) FROM audit WHERE action = 'ingress-duplicate'"
				     " AND actor = 'smtp' AND remote = '127.0.0.1'"
				     " AND detail LIKE '%<post-1@example.org>%m2@example.com%'"), ==, 2);
}

/* dedupe-window=0: every send is delivered. */
static void
test_dedupe_off (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (fixture->config, &error);
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};

	g_assert_no_error (error);
	for (guint i = 0; i < 2; i++) {
		g_autoptr(ScAccepted) accepted = accept_sync (ingress, fixture->config, &s, &error, NULL);
		g_assert_no_error (error);
		g_assert_nonnull (accepted->queue_id);
	}
	g_clear_pointer (&ingress, sc_ingress_free);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 2);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM accepted"), ==, 0);
}

/* Past the window a pair is forgotten: the same post is news again. */
static void
test_dedupe_window (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = sc_spool_open (fixture->config->spool, G_USEC_PER_SEC, &error);
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};
	g_autoptr(ScPrepared) prepared = sc_ingress_prepare (fixture->config, &s, &error);
	ScAccepted *accepted[1] = {NULL};
	gint64 window = G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC;
	gint64 t0 = G_GINT64_CONSTANT (1700000000) * G_USEC_PER_SEC;
	guint pruned = 0;

	g_assert_no_error (error);
	g_assert_true (sc_ingress_store (spool, &prepared, 1, window, t0, NULL, accepted, &error));
	g_assert_nonnull (accepted[0]->queue_id);
	g_clear_pointer (&accepted[0], sc_accepted_free);
	g_assert_true (sc_ingress_store (spool, &prepared, 1, window, t0 + window - 1, NULL, accepted, &error));
	g_assert_null (accepted[0]->queue_id);
	g_clear_pointer (&accepted[0], sc_accepted_free);
	g_assert_true (sc_ingress_store (spool, &prepared, 1, window, t0 + window + 1, NULL, accepted, &error));
	g_assert_nonnull (accepted[0]->queue_id);
	g_clear_pointer (&accepted[0], sc_accepted_free);
	/* pruning forgets only pairs older than the window */
	g_assert_true (sc_spool_prune_accepted (spool, t0 + window, 100, &pruned, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (pruned, ==, 0); /* the pair was renewed at t0 + window + 1 */
	g_assert_true (sc_spool_prune_accepted (spool, t0 + 2 * window + 2, 100, &pruned, &error));
	g_assert_cmpuint (pruned, ==, 1);
}

/* Another process holds the write lock past busy-timeout: 451-class
 * answer, nothing stored, and the next message goes in once it is free. */
static void
test_locked (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (fixture->config, &error);
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};
	g_autofree char *path = g_build_filename (fixture->config->spool, "spool.db", NULL);
	g_autoptr(ScAccepted) refused = NULL;
	g_autoptr(ScAccepted) later = NULL;
	sqlite3 *db = NULL;

	g_assert_no_error (error);
	g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	sc_test_expect_warning ("ingress: 1 message(s) not accepted, the spool failed: *locked*");
	refused = accept_sync (ingress, fixture->config, &s, &error, NULL);
	g_assert_null (refused);
	g_assert_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_SPOOL_BUSY);
	g_clear_error (&error);
	g_assert_cmpuint (sc_test_expect_warning (NULL), ==, 1);
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 0);
	/* the refused pair was not remembered: the resend is stored */
	later = accept_sync (ingress, fixture->config, &s, &error, NULL);
	g_assert_no_error (error);
	g_assert_nonnull (later->queue_id);
}

/* A commit waiting on the spool (here: another process holds the write
 * lock) does not stop the doors: a new SMTP connection is greeted at once,
 * and the waiting message is stored once the lock is free.  When the
 * ingress thread committed itself, the greeting waited out the whole
 * busy-timeout and the message was refused. */
typedef struct {
	ScIngress *ingress;
	const ScConfig *config;
	ScAccepted *accepted;
	GError *error;
} Waiting;

static gpointer
waiting_thread (gpointer user_data)
{
	Waiting *waiting = user_data;
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};

	waiting->accepted = accept_sync (waiting->ingress, waiting->config, &s, &waiting->error, NULL);
	return NULL;
}

static void
test_doors_serve_while_committing (Fixture *fixture, gconstpointer data)
{
	guint16 port = sc_test_free_port ();
	g_autofree char *extra = g_strdup_printf ("[ingress]\nsmtp=127.0.0.1:%u\n", port);
	/* a busy-timeout far beyond the bound below: before the fix the
	 * greeting waited all of it; a slow run (valgrind, ASan on a loaded
	 * machine) still greets well inside the bound */
	g_autoptr(ScConfig) config = load_config_busy (fixture, "10s", extra);
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (config, &error);
	g_autofree char *path = g_build_filename (config->spool, "spool.db", NULL);
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketConnection) connection = NULL;
	Waiting waiting = {.ingress = ingress, .config = config};
	char greeting[256] = "";
	gssize n;
	gint64 connected, greeted;
	GThread *thread;
	sqlite3 *db = NULL;

	g_assert_no_error (error);
	g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	thread = g_thread_new ("waiting", waiting_thread, &waiting);
	g_usleep (100 * 1000); /* its commit is now waiting for the lock (busy-timeout=10s) */
	connected = g_get_monotonic_time ();
	connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
	g_assert_no_error (error);
	n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)), greeting,
				 sizeof greeting - 1, NULL, &error);
	greeted = g_get_monotonic_time ();
	g_assert_no_error (error);
	g_assert_cmpint (n, >, 0);
	g_assert_true (g_str_has_prefix (greeting, "220 "));
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_thread_join (thread);
	/* well inside the busy-timeout: the greeting did not wait for the commit */
	g_assert_cmpint (greeted - connected, <, 3 * G_USEC_PER_SEC);
	g_assert_no_error (waiting.error);
	g_assert_nonnull (waiting.accepted);
	g_assert_nonnull (waiting.accepted->queue_id);
	sc_accepted_free (waiting.accepted);
	g_clear_object (&connection);
	g_clear_pointer (&ingress, sc_ingress_free);
	g_assert_cmpint (count_rows (config, "SELECT count(*) FROM messages"), ==, 1);
}

/* The runner in the process takes what it has room for already leased:
 * those messages are stored active under its lease and handed to it only
 * after the commit; the rest are queued and the runner is kicked. */
typedef struct {
	GMutex lock;
	guint credit;
	GPtrArray *taken;  /* ScMessage* */
	guint committed_at_take; /* handed messages another connection could see then */
	const char *spool_folder;
} FakeRunner;

static guint
fake_reserve (gpointer runner, guint wanted)
{
	FakeRunner *fake = runner;
	guint granted;

	g_mutex_lock (&fake->lock);
	granted = MIN (fake->credit, wanted);
	fake->credit -= granted;
	g_mutex_unlock (&fake->lock);
	return granted;
}

static void
fake_take (gpointer runner, GPtrArray *messages)
{
	FakeRunner *fake = runner;
	g_autoptr(ScSpool) reader = sc_spool_open (fake->spool_folder, G_USEC_PER_SEC, NULL);

	g_mutex_lock (&fake->lock);
	for (guint i = 0; i < messages->len; i++) {
		ScMessage *message = g_steal_pointer (&messages->pdata[i]);
		g_autoptr(ScMessageSummary) summary = sc_spool_get_summary (reader, message->queue_id, NULL);
		if (summary != NULL && summary->state == SC_STATE_ACTIVE)
			fake->committed_at_take++;
		g_ptr_array_add (fake->taken, message);
	}
	g_mutex_unlock (&fake->lock);
	g_ptr_array_unref (messages);
}

static gboolean
count_kick (gpointer user_data)
{
	(*(guint *) user_data)++;
	return G_SOURCE_REMOVE;
}

static void
test_handover (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScIngress) ingress = sc_ingress_new (fixture->config, &error);
	FakeRunner fake = {.credit = 2, .spool_folder = fixture->config->spool};
	ScHandover handover = {.owner = "runner-test", .reserve = fake_reserve, .take = fake_take, .runner = &fake};
	g_autoptr(GPtrArray) answers = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_accepted_free);
	guint kicks = 0;

	g_assert_no_error (error);
	g_mutex_init (&fake.lock);
	fake.taken = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	sc_ingress_set_handover (ingress, &handover);
	sc_ingress_set_accepted_hook (ingress, count_kick, &kicks);
	for (guint i = 0; i < 3; i++) {
		g_autofree char *text = g_strdup_printf ("From: a@example.org\r\nMessage-ID: <h%u@example.org>\r\n"
							 "List-Id: <b.example.org>\r\n\r\nbody %u\r\n", i, i);
		g_autoptr(GBytes) raw = g_bytes_new (text, strlen (text));
		const char *rcpt[] = {"m1@example.net", "m2@example.com", NULL};
		ScSubmission s = {.door = "test", .sender = "", .recipients = rcpt, .raw = raw};
		ScAccepted *accepted = accept_sync (ingress, fixture->config, &s, &error, NULL);

		g_assert_no_error (error);
		g_assert_nonnull (accepted->queue_id);
		g_ptr_array_add (answers, accepted);
	}
	g_clear_pointer (&ingress, sc_ingress_free);
	while (g_main_context_iteration (NULL, FALSE))
		;
	/* the first two leased and handed over, after their commit */
	g_assert_cmpuint (fake.taken->len, ==, 2);
	g_assert_cmpuint (fake.committed_at_take, ==, 2);
	for (guint i = 0; i < 2; i++) {
		ScMessage *m = fake.taken->pdata[i];
		g_assert_cmpstr (m->queue_id, ==, ((ScAccepted *) answers->pdata[i])->queue_id);
		g_assert_cmpstr (m->list_id, ==, "b.example.org");
		g_assert_cmpstr (sc_message_next_stage (m), ==, "decorate");
		g_assert_cmpuint (g_strv_length (m->recipients), ==, 2);
		g_assert_cmpint (m->lease_generation, ==, 1);
	}
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages WHERE state = 'active'"
						      " AND lease_owner = 'runner-test'"), ==, 2);
	/* the third found no room: queued, and only its commit kicked the runner */
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages WHERE state = 'queued'"), ==, 1);
	g_assert_cmpuint (kicks, ==, 1);
	g_ptr_array_unref (fake.taken);
	g_mutex_clear (&fake.lock);
}

/* A full disk is its own answer (452 4.3.1), and nothing of the batch stays. */
static void
test_full (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = sc_spool_open (fixture->config->spool, G_USEC_PER_SEC, &error);
	g_autofree char *body = g_strnfill (1800, 'y');
	g_autofree char *text = g_strdup_printf ("From: a@example.org\r\nList-Id: <a.example.org>\r\n\r\n%s\r\n", body);
	g_autoptr(GBytes) raw = g_bytes_new (text, strlen (text));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "", .recipients = rcpt, .raw = raw};
	ScPrepared *batch[64];
	ScAccepted *accepted[64] = {NULL};
	gint64 pages = 0;
	sqlite3_stmt *stmt = NULL;

	g_assert_no_error (error);
	sqlite3_prepare_v2 (sc_sqlite_get_db (spool), "PRAGMA page_count", -1, &stmt, NULL);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	pages = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	{
		g_autofree char *limit = g_strdup_printf ("PRAGMA max_page_count = %" G_GINT64_FORMAT, pages + 4);
		g_assert_cmpint (sqlite3_exec (sc_sqlite_get_db (spool), limit, NULL, NULL, NULL), ==, SQLITE_OK);
	}
	for (guint i = 0; i < G_N_ELEMENTS (batch); i++) {
		batch[i] = sc_ingress_prepare (fixture->config, &s, &error);
		g_assert_no_error (error);
	}
	g_assert_false (sc_ingress_store (spool, batch, G_N_ELEMENTS (batch), 0, g_get_real_time (), NULL, accepted, &error));
	g_assert_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_SPOOL_FULL);
	for (guint i = 0; i < G_N_ELEMENTS (batch); i++) {
		g_assert_null (accepted[i]);
		sc_prepared_free (batch[i]);
	}
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 0);
}

/* After stop, later submissions are told to come back (451), never lost
 * silently; what was queued before was committed. */
static void
test_stopping (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GMainContext) context = g_main_context_new ();
	g_autoptr(GMainLoop) loop = g_main_loop_new (context, FALSE);
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};
	ScAcceptor *acceptor;
	Answer queued = {.loop = loop, .spool_folder = fixture->config->spool};
	Answer late = {.loop = loop, .spool_folder = fixture->config->spool};

	g_main_context_push_thread_default (context);
	acceptor = sc_acceptor_new (fixture->config, context, &error);
	g_assert_no_error (error);
	queued.acceptor = late.acceptor = acceptor;
	sc_acceptor_accept_async (acceptor, &s, NULL, answered_cb, &queued);
	sc_acceptor_stop (acceptor);
	sc_acceptor_accept_async (acceptor, &s, NULL, answered_cb, &late);
	while (queued.accepted == NULL || late.error == NULL)
		g_main_context_iteration (context, TRUE);
	g_assert_nonnull (queued.accepted->queue_id);
	g_assert_true (queued.visible_at_answer);
	g_assert_error (late.error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_SPOOL_BUSY);
	sc_accepted_free (queued.accepted);
	g_error_free (late.error);
	sc_acceptor_free (acceptor);
	g_main_context_pop_thread_default (context);
}

typedef struct {
	guint answered;
	guint failed;
	GSource *sources[8]; /* the source each answer came from, in order */
} Answers;

static void
answered_in_batch_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Answers *answers = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAccepted) accepted = sc_acceptor_accept_finish (NULL, result, &error);

	g_assert_cmpuint (answers->answered, <, G_N_ELEMENTS (answers->sources));
	answers->sources[answers->answered++] = g_main_current_source ();
	answers->failed += accepted == NULL; /* the same post: the first stored, the rest duplicates */
}

/* One commit answers its callers through one source per caller context
 * (a wakeup per commit, not per message), each callback on its own
 * context, in the order submitted. */
static void
test_answers_batched (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GMainContext) context = g_main_context_new ();
	g_autoptr(GMainContext) other = g_main_context_new ();
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) raw = g_bytes_new_static (post, strlen (post));
	const char *rcpt[] = {"m1@example.net", NULL};
	ScSubmission s = {.door = "test", .sender = "a-bounces@example.org", .recipients = rcpt, .raw = raw};
	Answers here = {0}, there = {0};
	ScAcceptor *acceptor;

	g_main_context_push_thread_default (context);
	acceptor = sc_acceptor_new (fixture->config, context, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < 3; i++)
		sc_acceptor_accept_async (acceptor, &s, NULL, answered_in_batch_cb, &here);
	g_main_context_push_thread_default (other);
	for (guint i = 0; i < 2; i++)
		sc_acceptor_accept_async (acceptor, &s, NULL, answered_in_batch_cb, &there);
	g_main_context_pop_thread_default (other);
	/* the round goes to the writer only once this context is idle: all
	 * five in one commit */
	while (here.answered < 3 || there.answered < 2) {
		g_main_context_iteration (context, FALSE);
		g_main_context_iteration (other, FALSE);
	}
	g_assert_cmpuint (here.answered, ==, 3);
	g_assert_cmpuint (there.answered, ==, 2);
	g_assert_cmpuint (here.failed + there.failed, ==, 0);
	g_assert_nonnull (here.sources[0]);
	g_assert_true (here.sources[1] == here.sources[0] && here.sources[2] == here.sources[0]);
	g_assert_true (there.sources[1] == there.sources[0]);
	g_assert_true (here.sources[0] != there.sources[0]);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 1);
	sc_acceptor_free (acceptor);
	g_main_context_pop_thread_default (context);
}

/* Under load the writer waits for the rest of a cohort: after a commit
 * of three, one message handed over alone is held until two more come,
 * and the three are committed together; one alone after a commit of one
 * (idle) is committed at once.  (The wait is made long here so that a
 * slow machine cannot end it first; the daemon's is 1 ms.) */
static void
test_linger (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GMainContext) context = g_main_context_new ();
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) raws = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	const char *rcpt[] = {"m1@example.net", NULL};
	Answers first = {0}, cohort = {0}, alone = {0};
	ScAcceptor *acceptor;
	gint64 started;

	for (guint i = 0; i < 7; i++) {
		char *text = g_strdup_printf ("From: a@example.org\r\nMessage-ID: <linger%u@example.org>\r\n"
					      "List-Id: <b.example.org>\r\n\r\nbody %u\r\n", i, i);
		g_ptr_array_add (texts, text);
		g_ptr_array_add (raws, g_bytes_new_static (text, strlen (text)));
	}
#define SUBMIT(i, answers)                                                                            \
	do {                                                                                          \
		ScSubmission s = {.door = "test", .sender = "", .recipients = rcpt, .raw = raws->pdata[i]}; \
		sc_acceptor_accept_async (acceptor, &s, NULL, answered_in_batch_cb, &(answers));      \
	} while (0)

	g_main_context_push_thread_default (context);
	acceptor = sc_acceptor_new (fixture->config, context, &error);
	g_assert_no_error (error);
	sc_acceptor_set_linger (acceptor, 30 * G_USEC_PER_SEC);
	/* a commit of three */
	for (guint i = 0; i < 3; i++)
		SUBMIT (i, first);
	while (first.answered < 3)
		g_main_context_iteration (context, TRUE);
	g_assert_true (first.sources[0] == first.sources[2]);
	/* one handed over alone: held */
	SUBMIT (3, cohort);
	g_main_context_iteration (context, FALSE); /* the hand-over */
	g_usleep (G_USEC_PER_SEC / 5);
	while (g_main_context_iteration (context, FALSE))
		;
	g_assert_cmpuint (cohort.answered, ==, 0);
	/* the rest of the cohort: the three in one commit */
	SUBMIT (4, cohort);
	SUBMIT (5, cohort);
	while (cohort.answered < 3)
		g_main_context_iteration (context, TRUE);
	g_assert_cmpuint (cohort.failed, ==, 0);
	g_assert_true (cohort.sources[0] == cohort.sources[1] && cohort.sources[0] == cohort.sources[2]);
	/* after that commit of three, the writer held the next one; now a
	 * commit of one makes the next one alone go at once */
	sc_acceptor_set_linger (acceptor, 0);
	SUBMIT (6, alone);
	while (alone.answered < 1)
		g_main_context_iteration (context, TRUE);
	sc_acceptor_set_linger (acceptor, 30 * G_USEC_PER_SEC);
	started = g_get_monotonic_time ();
	{
		Answers idle = {0};
		g_autofree char *text = g_strdup ("From: a@example.org\r\nMessage-ID: <linger-idle@example.org>\r\n"
						  "List-Id: <b.example.org>\r\n\r\nbody\r\n");
		g_autoptr(GBytes) raw = g_bytes_new_static (text, strlen (text));
		ScSubmission s = {.door = "test", .sender = "", .recipients = rcpt, .raw = raw};

		sc_acceptor_accept_async (acceptor, &s, NULL, answered_in_batch_cb, &idle);
		while (idle.answered < 1)
			g_main_context_iteration (context, TRUE);
		g_assert_cmpuint (idle.failed, ==, 0);
	}
	g_assert_cmpint (g_get_monotonic_time () - started, <, 10 * G_USEC_PER_SEC);
	g_assert_cmpint (count_rows (fixture->config, "SELECT count(*) FROM messages"), ==, 8);
	sc_acceptor_free (acceptor);
	g_main_context_pop_thread_default (context);
#undef SUBMIT
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	sc_test_install_log_writer ();
	g_test_add ("/ingress/route", Fixture, NULL, setup, test_route, teardown);
	g_test_add ("/ingress/prepare/checks", Fixture, NULL, setup, test_prepare, teardown);
	g_test_add ("/ingress/accept/group-commit", Fixture, NULL, setup, test_group_commit, teardown);
	g_test_add ("/ingress/accept/dedupe", Fixture, NULL, setup, test_dedupe, teardown);
	g_test_add ("/ingress/accept/dedupe-off", Fixture, "[ingress]\ndedupe-window=0\n", setup,
		    test_dedupe_off, teardown);
	g_test_add ("/ingress/store/dedupe-window", Fixture, NULL, setup, test_dedupe_window, teardown);
	g_test_add ("/ingress/accept/locked-spool", Fixture, NULL, setup, test_locked, teardown);
	g_test_add ("/ingress/accept/doors-serve-while-committing", Fixture, NULL, setup,
		    test_doors_serve_while_committing, teardown);
	g_test_add ("/ingress/accept/handover", Fixture, NULL, setup, test_handover, teardown);
	g_test_add ("/ingress/store/full-spool", Fixture, NULL, setup, test_full, teardown);
	g_test_add ("/ingress/accept/stopping", Fixture, NULL, setup, test_stopping, teardown);
	g_test_add ("/ingress/accept/answers-batched", Fixture, NULL, setup, test_answers_batched, teardown);
	g_test_add ("/ingress/accept/linger", Fixture, NULL, setup, test_linger, teardown);
	return g_test_run ();
}
