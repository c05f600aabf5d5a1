/* test-crash.c — the crash suite (issue 7): a steady stream of corpus
 * messages to 1–50 recipients on several lists, injected by several
 * callers through `stagecoach inject`, while `stagecoach run` is killed
 * with SIGKILL at random moments (from a printed seed) and restarted;
 * pipelines decorate;archive;deliver (maildir archive) into smtp-sink.
 * After the stream and a final clean run, from the spool and the dumps:
 * every accepted message done, none held, every recipient received it,
 * duplicates per (Message-ID, recipient) ≤ kills, integrity_check ok, no
 * stage completed twice (attempts table, one archive file per queue id).
 *
 * Parameters (environment; the CI defaults in brackets):
 *   SC_SEED             the random seed [from the clock; always printed]
 *   SC_CRASH_MESSAGES   messages in the stream [1000]
 *   SC_CRASH_KILLS      SIGKILLs of the runner [10]
 *   SC_CRASH_CALLERS    parallel inject callers [4]
 *   SC_CRASH_LISTS      lists [3]
 *   SC_CRASH_MAX_RCPTS  recipients per message, 1 to this [50]
 *   SC_CRASH_MAX_BODY   corpus files larger than this are left out [65536]
 *   SC_CRASH_KILL_MS    the longest a runner lives between kills [1000]
 *   SC_CRASH_DRAIN_S    the final clean run's limit, seconds [90]
 *   SC_CRASH_KEEP       1: keep a failed run's folder (spool, archive, run.log)
 * scripts/crash-run.sh runs the long variant. */
#include "config.h"

#include <signal.h>
#include <sqlite3.h>

#include "rel-util.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

#define POOL_SIZE 200   /* subscribers per list */
#define DOMAINS 6       /* recipient domains: transactions per message */
#define MAX_RECIPIENTS 10 /* per transaction */
#define MAX_CONNECTIONS 4

typedef struct {
	guint64 seed;
	guint messages;
	guint kills;
	guint callers;
	guint lists;
	guint max_rcpts;
	gsize max_body;
	guint kill_ms;
	guint drain_s;
} Params;

typedef struct {
	char *list;
	char *message_id;     /* with <> */
	GPtrArray *recipients; /* NULL-terminated */
	int status;           /* inject's exit status */
	char *queue_id;       /* when accepted */
	char *error;          /* inject's stderr when refused */
	guint busy_retries;   /* exit 75, tried again */
} Record;

typedef struct {
	Params params;
	char *dir;
	char *config;
	GPtrArray *bodies; /* (element-type GBytes) corpus files */
	Record *records;
	gint next;         /* atomic: next record to inject */
	gint injected;     /* atomic: callers finished with a record */
	GMutex lock;       /* GRand is not thread-safe */
	GRand *rand;
} Crash;

static guint
env_uint (const char *name, guint fallback)
{
	const char *value = g_getenv (name);

	return value != NULL && *value != '\0' ? (guint) g_ascii_strtoull (value, NULL, 10) : fallback;
}

static void
params_load (Params *params)
{
	const char *seed = g_getenv ("SC_SEED");

	params->seed = seed != NULL && *seed != '\0' ? g_ascii_strtoull (seed, NULL, 10)
						      : (guint64) g_get_real_time () % 1000000000;
	params->messages = env_uint ("SC_CRASH_MESSAGES", 1000);
	params->kills = env_uint ("SC_CRASH_KILLS", 10);
	params->callers = MAX (env_uint ("SC_CRASH_CALLERS", 4), 1);
	params->lists = MAX (env_uint ("SC_CRASH_LISTS", 3), 1);
	params->max_rcpts = CLAMP (env_uint ("SC_CRASH_MAX_RCPTS", 50), 1, POOL_SIZE);
	params->max_body = env_uint ("SC_CRASH_MAX_BODY", 65536);
	params->kill_ms = MAX (env_uint ("SC_CRASH_KILL_MS", 1000), 300);
	params->drain_s = env_uint ("SC_CRASH_DRAIN_S", 90);
}

static guint32
crash_rand (Crash *crash, guint32 below)
{
	guint32 value;

	g_mutex_lock (&crash->lock);
	value = g_rand_int_range (crash->rand, 0, (gint32) below);
	g_mutex_unlock (&crash->lock);
	return value;
}

static void
load_bodies (Crash *crash)
{
	g_autoptr(GPtrArray) names = sc_test_corpus_files ();

	crash->bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	for (guint i = 0; i < names->len; i++) {
		g_autofree char *path = g_build_filename (sc_test_corpus_dir (), names->pdata[i], NULL);
		g_autofree char *contents = NULL;
		gsize length = 0;

		g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
		if (length <= crash->params.max_body)
			g_ptr_array_add (crash->bodies, g_bytes_new_take (g_steal_pointer (&contents), length));
	}
}

/* The corpus body with its Message-ID replaced by @message_id (and a
 * leading mbox From_ line dropped), so every copy at the sink says which
 * injection it came from. */
static GString *
make_message (GBytes *body, const char *message_id)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (body, &length);
	const char *cursor = data;
	const char *end = data + length;
	const char *first_newline = memchr (data, '\n', length);
	const char *eol = first_newline != NULL && first_newline > data && first_newline[-1] == '\r' ? "\r\n" : "\n";
	GString *out = g_string_new (NULL);
	gboolean in_headers = TRUE;
	gboolean skipping = FALSE;

	g_string_append_printf (out, "Message-ID: %s%s", message_id, eol);
	if (length >= 5 && memcmp (data, "From ", 5) == 0)
		cursor = first_newline != NULL ? first_newline + 1 : end;
	while (cursor < end) {
		const char *newline = memchr (cursor, '\n', end - cursor);
		const char *next = newline != NULL ? newline + 1 : end;
		gsize line_length = (newline != NULL ? newline : end) - cursor;

		if (in_headers) {
			if (line_length == 0 || (line_length == 1 && cursor[0] == '\r')) {
				in_headers = FALSE;
			} else if (skipping && (cursor[0] == ' ' || cursor[0] == '\t')) {
				cursor = next;
				continue;
			} else {
				skipping = line_length >= 11 && g_ascii_strncasecmp (cursor, "Message-ID:", 11) == 0;
				if (skipping) {
					cursor = next;
					continue;
				}
			}
		}
		g_string_append_len (out, cursor, next - cursor);
		cursor = next;
	}
	return out;
}

static void
record_prepare (Crash *crash, guint index)
{
	Record *record = &crash->records[index];
	guint list = crash_rand (crash, crash->params.lists);
	guint count = 1 + crash_rand (crash, crash->params.max_rcpts);
	guint pool[POOL_SIZE];

	record->list = g_strdup_printf ("l%u.example.org", list);
	record->message_id = g_strdup_printf ("<%" G_GUINT64_FORMAT ".%u@reliability.test>",
					      crash->params.seed, index);
	record->recipients = g_ptr_array_new_with_free_func (g_free);
	for (guint i = 0; i < POOL_SIZE; i++)
		pool[i] = i;
	for (guint i = 0; i < count; i++) { /* partial Fisher–Yates: distinct subscribers */
		guint j = i + crash_rand (crash, POOL_SIZE - i);
		guint swap = pool[i];

		pool[i] = pool[j];
		pool[j] = swap;
		g_ptr_array_add (record->recipients,
				 g_strdup_printf ("s%u@d%u.l%u.example", pool[i], pool[i] % DOMAINS, list));
	}
	g_ptr_array_add (record->recipients, NULL);
}

static gpointer
injector (gpointer data)
{
	Crash *crash = data;
	gint index;

	while ((index = g_atomic_int_add (&crash->next, 1)) < (gint) crash->params.messages) {
		Record *record = &crash->records[index];
		GBytes *body = crash->bodies->pdata[crash_rand (crash, crash->bodies->len)];
		g_autoptr(GString) message = make_message (body, record->message_id);

		for (;;) {
			g_clear_pointer (&record->queue_id, g_free);
			g_clear_pointer (&record->error, g_free);
			record->status = rel_inject (crash->config, record->list, message->str, message->len,
						     (const char *const *) record->recipients->pdata,
						     &record->queue_id, &record->error);
			/* 75: the caller keeps the message and tries again */
			if (record->status != 75 || record->busy_retries >= 100)
				break;
			record->busy_retries++;
			g_usleep (50 * 1000);
		}
		g_atomic_int_inc (&crash->injected);
	}
	return NULL;
}

static void
write_config (Crash *crash, const char *url)
{
	g_autoptr(GString) text = g_string_new (NULL);
	g_autofree char *mailer = NULL;

	g_string_append (text, "[stagecoach]\n"
			       "spool=spool\n"
			       "workers=4\n"
			       "lease=5s\n"
			       "busy-timeout=30s\n"
			       "rescan=1s\n"
			       "[retry]\n"
			       "initial=1s\n"
			       "max-delay=2s\n"
			       "[admin]\n"
			       "listen=\n"
			       "[deliver]\n"
			       "circuit-cooldown=1s\n");
	mailer = g_strdup_printf ("[mailer:sink]\nurl=%s\nstarttls=off\ntimeout=10s\n"
				  "max-recipients=%u\nmax-connections=%u\n",
				  url, MAX_RECIPIENTS, MAX_CONNECTIONS);
	g_string_append (text, mailer);
	for (guint l = 0; l < crash->params.lists; l++)
		g_string_append_printf (text,
					"[list:l%u.example.org]\n"
					"pipeline=decorate;archive;deliver\n"
					"subject-prefix=[l%u]\n"
					"footer=footer.txt\n"
					"archive=maildir:archive/l%u\n"
					"bounces=bounces@l%u.example.org\n",
					l, l, l, l);
	g_assert_true (g_file_set_contents (crash->config, text->str, -1, NULL));
}

/* Files under archive/LIST/{new,cur} per queue id (the name up to the
 * first dot) and per Message-ID; tmp/ leftovers counted apart. */
static void
scan_archive (Crash *crash, GHashTable *per_queue_id, GHashTable *per_message_id, guint *out_tmp)
{
	const char *const subdirs[] = {"new", "cur", "tmp"};

	*out_tmp = 0;
	for (guint l = 0; l < crash->params.lists; l++) {
		for (guint s = 0; s < G_N_ELEMENTS (subdirs); s++) {
			g_autofree char *name = g_strdup_printf ("archive/l%u/%s", l, subdirs[s]);
			g_autofree char *path = g_build_filename (crash->dir, name, NULL);
			g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
			const char *entry;

			while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL) {
				g_autofree char *file = g_build_filename (path, entry, NULL);
				g_autofree char *contents = NULL;
				g_autofree char *queue_id = g_strndup (entry, strcspn (entry, "."));
				g_autofree char *message_id = NULL;
				gsize length = 0;

				if (s == 2) {
					(*out_tmp)++;
					continue;
				}
				g_hash_table_insert (per_queue_id, g_strdup (queue_id),
						     GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (per_queue_id, queue_id)) + 1));
				if (g_file_get_contents (file, &contents, &length, NULL) &&
				    (message_id = rel_message_id (contents, length)) != NULL)
					g_hash_table_insert (per_message_id, g_strdup (message_id),
							     GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (per_message_id, message_id)) + 1));
			}
		}
	}
}

static guint
sql_count (sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	guint count = 0;

	g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
	if (sqlite3_step (stmt) == SQLITE_ROW)
		count = (guint) sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	return count;
}

/* Each failed check is printed and counted; the test goes on to the next
 * so one run names every defect. */
static void G_GNUC_PRINTF (1, 2)
check_fail (const char *format, ...)
{
	g_autofree char *text = NULL;
	va_list args;

	va_start (args, format);
	text = g_strdup_vprintf (format, args);
	va_end (args);
	g_print ("# FAILED CHECK: %s\n", text);
	g_test_fail_printf ("%s", text);
}

static void
test_crash_stream (void)
{
	Crash crash = {0};
	g_autoptr(ScTestSink) sink = NULL;
	g_autofree char *url = NULL;
	g_autofree char *log = NULL;
	g_autoptr(GPtrArray) threads = g_ptr_array_new ();
	g_autoptr(RelDaemon) daemon = NULL;
	g_autoptr(GHashTable) states = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GHashTable) pairs = NULL;
	g_autoptr(GHashTable) archive_per_queue_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GHashTable) archive_per_message_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autofree char *db_path = NULL;
	g_autofree char *integrity = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	guint kills = 0, starts = 0, accepted = 0, refused = 0, not_messages = 0, busy_retries = 0;
	guint not_done = 0, held = 0, dead = 0, missing = 0, missing_done = 0, duplicates = 0, dup_pairs = 0, max_extra = 0;
	guint pairs_expected = 0, stage_twice = 0, stages_wrong = 0, not_sent = 0, crashed = 0;
	guint blamed_twice = 0, most_blamed = 0;
	guint archive_twice = 0, archive_missing = 0, archive_tmp = 0, archive_mid_twice = 0;
	int final_status;
	gint64 started = g_get_monotonic_time ();

	params_load (&crash.params);
	/* printed first, so a run that hangs or aborts can be repeated */
	g_print ("# crash suite seed=%" G_GUINT64_FORMAT " messages=%u kills=%u callers=%u lists=%u "
		 "max-rcpts=%u (repeat with SC_SEED=%" G_GUINT64_FORMAT ")\n",
		 crash.params.seed, crash.params.messages, crash.params.kills, crash.params.callers,
		 crash.params.lists, crash.params.max_rcpts, crash.params.seed);
	if (sc_test_corpus_dir () == NULL) {
		g_test_skip ("no corpus (SC_CORPUS)");
		return;
	}
	sink = sc_test_sink_start (NULL);
	if (sink == NULL)
		return;
	crash.rand = g_rand_new_with_seed ((guint32) crash.params.seed);
	g_mutex_init (&crash.lock);
	crash.dir = sc_test_make_tmpdir ("sc-crash");
	crash.config = g_build_filename (crash.dir, "stagecoach.conf", NULL);
	log = g_build_filename (crash.dir, "run.log", NULL);
	db_path = g_build_filename (crash.dir, "spool", "spool.db", NULL);
	g_free (sc_test_write_file (crash.dir, "footer.txt", "-- \nposted to $list_name ($queue_id)\n"));
	url = sc_test_sink_get_url (sink);
	write_config (&crash, url);
	load_bodies (&crash);
	g_assert_cmpuint (crash.bodies->len, >, 0);
	crash.records = g_new0 (Record, crash.params.messages);
	for (guint i = 0; i < crash.params.messages; i++)
		record_prepare (&crash, i);

	/* the stream: callers inject while the runner is killed and restarted */
	daemon = rel_daemon_start (crash.config, log, NULL);
	starts++;
	for (guint i = 0; i < crash.params.callers; i++)
		g_ptr_array_add (threads, g_thread_new ("injector", injector, &crash));
	while (g_atomic_int_get (&crash.injected) < (gint) crash.params.messages) {
		guint live_ms = 150 + crash_rand (&crash, crash.params.kill_ms - 150);
		gint64 until = g_get_monotonic_time () + (gint64) live_ms * 1000;

		while (g_get_monotonic_time () < until &&
		       g_atomic_int_get (&crash.injected) < (gint) crash.params.messages)
			g_usleep (10 * 1000);
		if (kills >= crash.params.kills)
			continue; /* enough: let the stream finish */
		if (g_atomic_int_get (&crash.injected) >= (gint) crash.params.messages)
			break;
		g_assert_true (rel_daemon_alive (daemon)); /* it must not have died by itself */
		rel_daemon_kill (daemon);
		kills++;
		g_clear_pointer (&daemon, rel_daemon_free);
		g_usleep (crash_rand (&crash, 200) * 1000);
		daemon = rel_daemon_start (crash.config, log, NULL);
		starts++;
	}
	for (guint i = 0; i < threads->len; i++)
		g_thread_join (threads->pdata[i]);
	/* kills still owed once the stream ended land in the backlog */
	while (kills < crash.params.kills && sc_test_count (crash.config, "done") +
	       sc_test_count (crash.config, "dead") + sc_test_count (crash.config, "held") <
	       sc_test_count (crash.config, "total")) {
		g_usleep ((150 + crash_rand (&crash, crash.params.kill_ms - 150)) * 1000);
		g_assert_true (rel_daemon_alive (daemon));
		rel_daemon_kill (daemon);
		kills++;
		g_clear_pointer (&daemon, rel_daemon_free);
		daemon = rel_daemon_start (crash.config, log, NULL);
		starts++;
	}

	for (guint i = 0; i < crash.params.messages; i++) {
		Record *record = &crash.records[i];

		busy_retries += record->busy_retries;
		if (record->status == 0) {
			accepted++;
			pairs_expected += record->recipients->len - 1;
		} else if (record->status == 65 && record->error != NULL &&
			   strstr (record->error, "not a message") != NULL) {
			/* corpus files inject refuses by design (e.g. a NUL byte in
			 * the header block): the caller is told, nothing is taken */
			not_messages++;
		} else {
			refused++;
			g_test_message ("inject %s refused (%d): %s", record->message_id, record->status,
					record->error);
		}
	}

	/* the final clean run: everything that is due goes out */
	{
		gint64 deadline = g_get_monotonic_time () + (gint64) crash.params.drain_s * G_USEC_PER_SEC;

		while (g_get_monotonic_time () < deadline &&
		       sc_test_count (crash.config, "queued") + sc_test_count (crash.config, "active") +
			       sc_test_count (crash.config, "deferred") > 0)
			g_usleep (200 * 1000);
	}
	final_status = rel_daemon_stop (daemon, 40000);
	g_usleep (1000 * 1000); /* smtp-sink may close a dump just after its reply */

	/* the spool */
	g_assert_cmpint (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT queue_id, state FROM messages", -1, &stmt, NULL), ==, SQLITE_OK);
	while (sqlite3_step (stmt) == SQLITE_ROW)
		g_hash_table_insert (states, g_strdup ((const char *) sqlite3_column_text (stmt, 0)),
				     g_strdup ((const char *) sqlite3_column_text (stmt, 1)));
	sqlite3_finalize (stmt);
	g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1, &stmt, NULL), ==, SQLITE_OK);
	{
		g_autoptr(GString) result = g_string_new (NULL);

		while (sqlite3_step (stmt) == SQLITE_ROW)
			g_string_append_printf (result, "%s%s", result->len > 0 ? "; " : "",
						(const char *) sqlite3_column_text (stmt, 0));
		integrity = g_string_free (g_steal_pointer (&result), FALSE);
	}
	sqlite3_finalize (stmt);
	stage_twice = sql_count (db, "SELECT COUNT(*) FROM (SELECT 1 FROM attempts WHERE outcome = 'ok' "
				     "GROUP BY message_id, cycle, stage HAVING COUNT(*) > 1)");
	stages_wrong = sql_count (db, "SELECT COUNT(*) FROM messages m WHERE m.state = 'done' AND "
				      "(SELECT COUNT(*) FROM stages s WHERE s.message_id = m.id) != 3");
	not_sent = sql_count (db, "SELECT COUNT(*) FROM recipients WHERE status != 'sent'");
	/* each such row, with its message's history, names the path that left it */
	g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT m.queue_id, m.state, r.address, r.status, r.code, r.reply,"
					     " (SELECT group_concat(a.stage || ':' || a.outcome || ':' || coalesce(a.error, ''), ' | ')"
					     "  FROM attempts a WHERE a.message_id = m.id)"
					     " FROM recipients r JOIN messages m ON m.id = r.message_id"
					     " WHERE r.status != 'sent' LIMIT 20", -1, &stmt, NULL), ==, SQLITE_OK);
	while (sqlite3_step (stmt) == SQLITE_ROW)
		g_print ("# not sent: %s (%s) %s %s %d %s; attempts: %s\n", sqlite3_column_text (stmt, 0),
			 sqlite3_column_text (stmt, 1), sqlite3_column_text (stmt, 2), sqlite3_column_text (stmt, 3),
			 sqlite3_column_int (stmt, 4), (const char *) sqlite3_column_text (stmt, 5),
			 (const char *) sqlite3_column_text (stmt, 6));
	sqlite3_finalize (stmt);
	crashed = sql_count (db, "SELECT COUNT(*) FROM attempts WHERE outcome = 'crashed'");
	/* crashes counted against one message: 3 hold it as poison */
	blamed_twice = sql_count (db, "SELECT COUNT(*) FROM messages WHERE crashes >= 2");
	most_blamed = sql_count (db, "SELECT COALESCE(MAX(crashes), 0) FROM messages");
	sqlite3_close (db);

	/* the sink and the archive */
	pairs = rel_sink_pair_counts (sink);
	scan_archive (&crash, archive_per_queue_id, archive_per_message_id, &archive_tmp);
	for (guint i = 0; i < crash.params.messages; i++) {
		Record *record = &crash.records[i];
		const char *state;
		guint archived;

		if (record->status != 0)
			continue;
		state = g_hash_table_lookup (states, record->queue_id);
		if (g_strcmp0 (state, "done") != 0) {
			not_done++;
			if (g_strcmp0 (state, "held") == 0)
				held++;
			if (g_strcmp0 (state, "dead") == 0)
				dead++;
			g_test_message ("%s (%s) is %s", record->queue_id, record->message_id,
					state != NULL ? state : "missing from the spool");
		}
		archived = GPOINTER_TO_UINT (g_hash_table_lookup (archive_per_queue_id, record->queue_id));
		if (archived > 1)
			archive_twice++;
		if (archived == 0 && g_strcmp0 (state, "done") == 0)
			archive_missing++;
		if (GPOINTER_TO_UINT (g_hash_table_lookup (archive_per_message_id, record->message_id)) > 1)
			archive_mid_twice++;
		for (guint r = 0; r + 1 < record->recipients->len; r++) {
			g_autofree char *key = g_strdup_printf ("%s %s", record->message_id,
								(const char *) record->recipients->pdata[r]);
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (pairs, key));

			if (copies == 0) {
				missing++;
				if (g_strcmp0 (state, "done") == 0)
					missing_done++;
				if (missing <= 20)
					g_test_message ("never received: %s (queue id %s)", key, record->queue_id);
			} else if (copies > 1) {
				dup_pairs++;
				duplicates += copies - 1;
				max_extra = MAX (max_extra, copies - 1);
			}
		}
	}

	g_print ("# crash figures: seed=%" G_GUINT64_FORMAT " messages=%u accepted=%u refused=%u "
		 "busy-retries=%u kills=%u runner-starts=%u final-exit=%d crashed-attempts=%u "
		 "messages-blamed-twice=%u most-blamed=%u\n",
		 crash.params.seed, crash.params.messages, accepted, refused, busy_retries, kills, starts,
		 final_status, crashed, blamed_twice, most_blamed);
	g_print ("# crash figures: recipients=%u missing=%u (of done messages %u) duplicates=%u (pairs %u, most per pair %u) "
		 "not-done=%u held=%u dead=%u not-sent-rows=%u\n",
		 pairs_expected, missing, missing_done, duplicates, dup_pairs, max_extra, not_done, held, dead, not_sent);
	g_print ("# crash figures: integrity=%s stage-ok-twice=%u done-without-3-stages=%u "
		 "archive-twice=%u archive-same-message-id-twice=%u archive-missing=%u archive-tmp-leftovers=%u "
		 "seconds=%.1f\n",
		 integrity, stage_twice, stages_wrong, archive_twice, archive_mid_twice, archive_missing,
		 archive_tmp, (g_get_monotonic_time () - started) / 1e6);

	/* every check, each reported, so one run shows every defect */
	if (kills < crash.params.kills)
		check_fail ("only %u of %u kills landed before the work ran out: the run proves little "
			    "(more messages or a shorter SC_CRASH_KILL_MS)", kills, crash.params.kills);
	if (not_messages > 0)
		g_print ("# %u corpus bodies refused as not a message (65), as they must be\n", not_messages);
	if (refused > 0)
		check_fail ("%u injections refused (see the messages above)", refused);
	if (final_status != 0)
		check_fail ("the final clean run exited %d on SIGTERM (see %s)", final_status, log);
	if (not_done > 0)
		check_fail ("%u accepted messages not done (%u held, %u dead)", not_done, held, dead);
	if (held > 0)
		check_fail ("%u messages held", held);
	if (missing > 0)
		check_fail ("%u (Message-ID, recipient) pairs never received (%u of them of done messages)",
			    missing, missing_done);
	if (max_extra > kills)
		check_fail ("a (Message-ID, recipient) pair received %u extra times, more than the %u kills",
				    max_extra, kills);
	if (duplicates > kills * MAX_CONNECTIONS * MAX_RECIPIENTS)
		check_fail ("%u duplicates, more than one transaction per connection per kill (%u)",
				    duplicates, kills * MAX_CONNECTIONS * MAX_RECIPIENTS);
	if (g_strcmp0 (integrity, "ok") != 0)
		check_fail ("PRAGMA integrity_check: %s", integrity);
	if (stage_twice > 0)
		check_fail ("%u (message, cycle, stage) completed ('ok') more than once", stage_twice);
	if (stages_wrong > 0)
		check_fail ("%u done messages without exactly 3 stage records", stages_wrong);
	if (not_sent > 0)
		check_fail ("%u recipient rows not 'sent'", not_sent);
	if (archive_twice > 0 || archive_mid_twice > 0)
		check_fail ("archived twice: %u queue ids, %u Message-IDs", archive_twice, archive_mid_twice);
	if (archive_missing > 0)
		check_fail ("%u done messages missing from the archive", archive_missing);

	/* SC_CRASH_KEEP=1 keeps a failed run's spool, archive and logs */
	if (g_test_failed () && g_strcmp0 (g_getenv ("SC_CRASH_KEEP"), "1") == 0)
		g_print ("# kept for inspection: %s\n", crash.dir);
	else
		sc_test_remove_tree (crash.dir);
	for (guint i = 0; i < crash.params.messages; i++) {
		g_free (crash.records[i].list);
		g_free (crash.records[i].message_id);
		g_ptr_array_unref (crash.records[i].recipients);
		g_free (crash.records[i].queue_id);
		g_free (crash.records[i].error);
	}
	g_free (crash.records);
	g_ptr_array_unref (crash.bodies);
	g_rand_free (crash.rand);
	g_mutex_clear (&crash.lock);
	g_free (crash.dir);
	g_free (crash.config);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func ("/reliability/crash/stream", test_crash_stream);
	return g_test_run ();
}
