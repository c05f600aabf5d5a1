/* test-deliver.c — the deliver stage end to end through the real binary
 * against real SMTP servers on 127.0.0.1: Postfix's smtp-sink (faults on
 * demand) and a private Postfix smtpd (per-address refusals, STARTTLS).
 * What arrived is read from the sinks' dumps. */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>

#include "sc-deliver-mailer.h"
#include "sc-handler.h"
#include "sc-test-postfix.h"
#include "sc-test-sink.h"
#include "sc-test-backend.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *spool;       /* a folder or a URI (sc-test-backend.h) */
	char *spool_lines; /* the config's lines naming it */
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-deliver");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->spool_lines = sc_test_backend_spool_lines (fixture->dir);
	fixture->spool = sc_test_backend_spool_location (fixture->dir);
	g_free (sc_test_write_file (fixture->dir, "footer.txt", "-- \nfooter of $list_name\n"));
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->spool);
	g_free (fixture->spool_lines);
}

/* @mailers: "[mailer:a]\nurl=…\n…" sections; @list_extra: more list keys. */
static void
write_config (Fixture *fixture, const char *mailers, const char *list_extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "%s"
						 "workers=4\n"
						 "lease=30s\n"
						 "[retry]\n"
						 "initial=1s\n"
						 "max-delay=2s\n"
						 "jitter=0\n"
						 "[deliver]\n"
						 "circuit-failures=3\n"
						 "circuit-cooldown=1m\n"
						 "%s"
						 "[list:test.example.org]\n"
						 "pipeline=decorate;deliver\n"
						 "subject-prefix=[test]\n"
						 "footer=footer.txt\n"
						 "bounces=bounces@test.example.org\n"
						 "%s",
						 fixture->spool_lines, mailers, list_extra != NULL ? list_extra : "");
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
}

static char *
mailer_section (const char *name, const char *url, guint priority, const char *extra)
{
	return g_strdup_printf ("[mailer:%s]\nurl=%s\npriority=%u\ntimeout=3s\nstarttls=off\n%s",
				name, url, priority, extra != NULL ? extra : "");
}

/* Writes the config with one mailer, the sink, and @extra mailer keys. */
static void
write_sink_config (Fixture *fixture, ScTestSink *sink, const char *extra)
{
	g_autofree char *url = sc_test_sink_get_url (sink);
	g_autofree char *section = mailer_section ("sink", url, 1, extra);

	write_config (fixture, section, NULL);
}

static const char *message_text = "From: Alice <alice@example.org>\r\n"
				  "To: test@example.org\r\n"
				  "Subject: deliver me\r\n"
				  "Message-ID: <d%u@example.org>\r\n"
				  "\r\n"
				  "Hello, list.\r\n";

/* Injects to @recipients (NULL-terminated). */
static char *
inject_to (Fixture *fixture, const char *const *recipients)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_autoptr(GSubprocess) process = NULL;
	/* a Message-ID per call: the same one again to a recipient is a resend, not delivered twice */
	static guint sequence;
	g_autofree char *text = g_strdup_printf (message_text, ++sequence);
	g_autoptr(GBytes) input = g_bytes_new (text, strlen (text));
	g_autoptr(GBytes) out = NULL;
	g_autoptr(GError) error = NULL;

	g_ptr_array_add (argv, (gpointer) sc_test_binary ());
	g_ptr_array_add (argv, "inject");
	g_ptr_array_add (argv, "--list");
	g_ptr_array_add (argv, "test.example.org");
	for (guint i = 0; recipients[i] != NULL; i++)
		g_ptr_array_add (argv, (gpointer) recipients[i]);
	g_ptr_array_add (argv, NULL);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	g_subprocess_communicate (process, input, NULL, &out, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
	return g_strstrip (g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out)));
}

static GPtrArray *
make_recipients (guint n, guint domains)
{
	GPtrArray *recipients = g_ptr_array_new_with_free_func (g_free);
	for (guint i = 0; i < n; i++)
		g_ptr_array_add (recipients, g_strdup_printf ("user%u@domain%u.example", i, i % domains));
	g_ptr_array_add (recipients, NULL);
	return recipients;
}

static int
run_once (Fixture *fixture)
{
	g_autofree char *err = NULL;
	int status = sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL);
	if (status != 0)
		g_printerr ("run --once: %s\n", err);
	return status;
}

static const char *
member (JsonObject *object, const char *name)
{
	JsonNode *node = json_object_get_member (object, name);
	return node != NULL && !json_node_is_null (node) ? json_node_get_string (node) : NULL;
}

/* Recipients of @shown with @status. */
static guint
count_status (JsonObject *shown, const char *status)
{
	JsonArray *recipients = json_object_get_array_member (shown, "recipients");
	guint count = 0;

	for (guint i = 0; i < json_array_get_length (recipients); i++) {
		if (g_strcmp0 (member (json_array_get_object_element (recipients, i), "status"), status) == 0)
			count++;
	}
	return count;
}

/* The first element of @shown's @array whose @key is @value. */
static JsonObject *
element_where (JsonObject *shown, const char *array, const char *key, const char *value)
{
	JsonArray *elements = json_object_get_array_member (shown, array);
	for (guint i = 0; i < json_array_get_length (elements); i++) {
		JsonObject *item = json_array_get_object_element (elements, i);
		if (g_strcmp0 (member (item, key), value) == 0)
			return item;
	}
	g_error ("no %s with %s %s", array, key, value);
}

static JsonObject *
recipient (JsonObject *shown, const char *address)
{
	return element_where (shown, "recipients", "address", address);
}

static ScTestSink *
start_sink (const char *first_arg, ...)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new ();
	va_list ap;

	va_start (ap, first_arg);
	for (const char *arg = first_arg; arg != NULL; arg = va_arg (ap, const char *))
		g_ptr_array_add (args, (gpointer) arg);
	va_end (ap);
	g_ptr_array_add (args, NULL);
	return sc_test_sink_start ((const char *const *) args->pdata);
}

/* address → copies received, over every dump (parsed once). */
static GHashTable *
recipient_counts (ScTestSink *sink)
{
	g_autoptr(GPtrArray) dumps = sc_test_sink_get_messages (sink);
	GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	for (guint i = 0; i < dumps->len; i++) {
		ScTestSinkMessage *dump = dumps->pdata[i];
		for (guint r = 0; r < dump->recipients->len; r++) {
			const char *address = dump->recipients->pdata[r];
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (counts, address));
			g_hash_table_insert (counts, g_strdup (address), GUINT_TO_POINTER (copies + 1));
		}
	}
	return counts;
}

/* A port nothing listens on (bound and closed again). */
static guint16
dead_port (void)
{
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
	bound = g_socket_get_local_address (socket, NULL);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* 1. 250 recipients over 5 domains reach the sink, each exactly once, in
 * transactions of at most max-recipients, with the decorated body. */
static void
test_happy_path (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autofree char *url = NULL;
	g_autofree char *mailer = NULL;
	g_autoptr(GPtrArray) recipients = make_recipients (250, 5);
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(GPtrArray) dumps = NULL;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	mailer = mailer_section ("main", url, 10, "max-recipients=20\n");
	write_config (fixture, mailer, NULL);
	queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpuint (count_status (shown, "sent"), ==, 250);
	{
		JsonObject *first = recipient (shown, "user0@domain0.example");
		g_assert_cmpint (json_object_get_int_member (first, "code"), ==, 250);
		g_assert_cmpstr (member (first, "mailer"), ==, "main");
		g_assert_nonnull (member (first, "reply"));
	}
	g_assert_true (sc_test_sink_wait_messages (sink, 15, 5000)); /* 5 domains × ceil(50/20) */
	dumps = sc_test_sink_get_messages (sink);
	g_assert_cmpuint (dumps->len, ==, 15);
	for (guint i = 0; i < dumps->len; i++) {
		ScTestSinkMessage *dump = dumps->pdata[i];
		g_autofree char *body = g_strndup (g_bytes_get_data (dump->data, NULL), g_bytes_get_size (dump->data));
		const char *domain = strrchr (dump->recipients->pdata[0], '@');
		g_assert_cmpuint (dump->recipients->len, <=, 20);
		g_assert_cmpstr (dump->sender, ==, "bounces@test.example.org");
		for (guint r = 0; r < dump->recipients->len; r++) /* one domain per transaction */
			g_assert_cmpstr (strrchr (dump->recipients->pdata[r], '@'), ==, domain);
		g_assert_nonnull (strstr (body, "Subject: [test] deliver me\r\n"));
		g_assert_nonnull (strstr (body, "footer of test\r\n"));
	}
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		g_assert_cmpuint (g_hash_table_size (counts), ==, 250);
		for (guint i = 0; i < 250; i++)
			g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, recipients->pdata[i])), ==, 1);
	}
}

/* Injects @n messages to one recipient, runs `run --once`, and reads
 * its log line "mailer NAME: transactions=N connections=M". */
static void
run_for_pool_stats (Fixture *fixture, guint n, guint *transactions, guint *connections)
{
	const char *const rcpts[] = {"a@one.example", NULL};
	g_autoptr(GRegex) regex = g_regex_new ("mailer \\S+: transactions=(\\d+) connections=(\\d+)", 0, 0, NULL);
	g_autoptr(GMatchInfo) match = NULL;
	g_autofree char *err = NULL;
	g_autofree char *first = NULL;
	g_autofree char *second = NULL;

	for (guint i = 0; i < n; i++)
		g_free (inject_to (fixture, rcpts));
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	g_assert_true (g_regex_match (regex, err, 0, &match));
	first = g_match_info_fetch (match, 1);
	second = g_match_info_fetch (match, 2);
	*transactions = atoi (first);
	*connections = atoi (second);
}

/* Messages flowing to one mailer share its connections: no new TCP
 * connection and EHLO per message. */
static void
test_connections_reused (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	guint transactions, connections;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=2\n");
	run_for_pool_stats (fixture, 30, &transactions, &connections);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 30);
	g_assert_cmpuint (transactions, ==, 30);
	g_assert_cmpuint (connections, >=, 1);
	g_assert_cmpuint (connections, <=, 2); /* max-connections */
	g_assert_true (sc_test_sink_wait_messages (sink, 30, 5000));
}

/* A relay that answers the final "." with 4xx (greylisting, a rate
 * limit) leaves the session where the next MAIL starts: the connection
 * goes back to the pool, so ten refused messages cost one connection, not
 * ten.  One that answers 421 is closing it: then a new one each time. */
static void
test_connections_kept_after_refusal (Fixture *fixture, gconstpointer data)
{
	gboolean closing = GPOINTER_TO_UINT (data);
	g_autoptr(ScTestSink) sink = start_sink (closing ? "-Q" : "-r", ".", NULL);
	guint transactions, connections;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=1\n");
	run_for_pool_stats (fixture, 10, &transactions, &connections);
	g_assert_cmpint (sc_test_count (fixture->config, "deferred"), ==, 10);
	g_test_message ("%s: %u transactions, %u connections", closing ? "421" : "4xx", transactions, connections);
	g_assert_cmpuint (transactions, ==, 10);
	g_assert_cmpuint (connections, ==, closing ? 10 : 1);
}

/* What an unsubscribe page computes to check $token: base64url of
 * HMAC-SHA256 over "LIST-ID\nADDRESS" (doc/deliverability.md). */
static char *
expected_token (const char *secret, const char *address)
{
	g_autoptr(GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) secret, strlen (secret));
	g_autofree char *text = g_strdup_printf ("test.example.org\n%s", address);
	guint8 digest[32];
	gsize length = sizeof digest;
	g_autofree char *base64 = NULL;
	GString *token = g_string_new (NULL);

	g_hmac_update (hmac, (const guchar *) text, -1);
	g_hmac_get_digest (hmac, digest, &length);
	base64 = g_base64_encode (digest, length);
	for (const char *p = base64; *p != '\0' && *p != '='; p++)
		g_string_append_c (token, *p == '+' ? '-' : *p == '/' ? '_' : *p);
	return g_string_free (token, FALSE);
}

/* Injects to @recipients, runs once, checks the message is done and
 * @sink got @transactions dumps, and returns them.
 * (transfer container) (element-type ScTestSinkMessage) */
static GPtrArray *
deliver_and_collect (Fixture *fixture, ScTestSink *sink, GPtrArray *recipients, guint transactions)
{
	g_autofree char *queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	g_autoptr(JsonObject) shown = NULL;
	GPtrArray *dumps;

	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_true (sc_test_sink_wait_messages (sink, transactions, 5000));
	dumps = sc_test_sink_get_messages (sink);
	g_assert_cmpuint (dumps->len, ==, transactions);
	return dumps;
}

/* unsubscribe-url naming $recipient (RFC 8058 one-click): one
 * transaction per recipient, each message carrying its own URL and
 * $token, once, with List-Unsubscribe-Post; the rest of the message is the
 * same.  Without its secret file a copy waits, the file named. */
static void
test_personal_unsubscribe (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autofree char *url = NULL;
	g_autofree char *mailer = NULL;
	g_autoptr(GPtrArray) recipients = make_recipients (4, 2);
	g_autoptr(GPtrArray) dumps = NULL;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	mailer = mailer_section ("main", url, 10, NULL);
	g_free (sc_test_write_file (fixture->dir, "unsubscribe.secret", "s3cret-for-tokens\n"));
	write_config (fixture, mailer,
		      "unsubscribe-url=https://lists.example.org/u?who=$recipient&l=$list_id&t=$token\n"
		      "unsubscribe-secret-file=unsubscribe.secret\n"
		      "unsubscribe=mailto:leave@test.example.org\n");
	dumps = deliver_and_collect (fixture, sink, recipients, 4);
	for (guint i = 0; i < dumps->len; i++) {
		ScTestSinkMessage *dump = dumps->pdata[i];
		g_autofree char *body = g_strndup (g_bytes_get_data (dump->data, NULL),
						   g_bytes_get_size (dump->data));
		g_autofree char *escaped = NULL;
		g_autofree char *expected = NULL;

		g_assert_cmpuint (dump->recipients->len, ==, 1);
		g_autofree char *token = expected_token ("s3cret-for-tokens", dump->recipients->pdata[0]);

		escaped = g_uri_escape_string (dump->recipients->pdata[0], NULL, FALSE);
		expected = g_strdup_printf ("List-Unsubscribe: <https://lists.example.org/u?who=%s"
					    "&l=test.example.org&t=%s>,\r\n <mailto:leave@test.example.org>\r\n"
					    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
					    escaped, token);
		g_assert_nonnull (strstr (body, expected));
		g_assert_true (strstr (body, "List-Unsubscribe:") == g_strrstr (body, "List-Unsubscribe:"));
		g_assert_nonnull (strstr (body, "Subject: [test] deliver me\r\n"));
		g_assert_nonnull (strstr (body, "footer of test\r\n"));
	}

	/* the secret gone: the next post's copies wait, saying which file */
	{
		g_autofree char *secret = g_build_filename (fixture->dir, "unsubscribe.secret", NULL);
		const char *const one[] = {"late@domain9.example", NULL};
		g_autofree char *second = NULL;
		g_autoptr(JsonObject) waiting = NULL;
		const char *reply;

		g_assert_cmpint (g_unlink (secret), ==, 0);
		second = inject_to (fixture, one);
		g_assert_cmpint (run_once (fixture), ==, 0);
		waiting = sc_test_show (fixture->config, second);
		g_assert_cmpstr (member (waiting, "state"), !=, "done");
		g_assert_cmpuint (count_status (waiting, "deferred"), ==, 1);
		reply = member (recipient (waiting, "late@domain9.example"), "reply");
		g_assert_nonnull (reply);
		g_assert_nonnull (strstr (reply, "unsubscribe.secret"));
		g_assert_cmpuint (sc_test_sink_count_dumps (sink), ==, 4);
	}
}

/* 2. The primary mailer is down (nothing listening, or 4xx to MAIL): the
 * backup takes the message in the same attempt; the attempt names both. */
static void
test_failover (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) backup = start_sink (NULL);
	g_autoptr(ScTestSink) refusing = NULL;
	const char *const rcpts[] = {"a@one.example", "b@two.example", NULL};

	if (backup == NULL)
		return;
	for (guint round = 0; round < 2; round++) {
		g_autofree char *backup_url = sc_test_sink_get_url (backup);
		g_autofree char *primary_url = NULL;
		g_autofree char *sections = NULL;
		g_autofree char *primary = NULL;
		g_autofree char *secondary = NULL;
		g_autofree char *queue_id = NULL;
		g_autoptr(JsonObject) shown = NULL;
		JsonArray *attempts;
		JsonObject *deliver;

		if (round == 0) {
			primary_url = g_strdup_printf ("smtp://127.0.0.1:%u", dead_port ());
		} else {
			refusing = start_sink ("-r", "mail", NULL);
			primary_url = sc_test_sink_get_url (refusing);
		}
		primary = mailer_section ("primary", primary_url, 1, NULL);
		secondary = mailer_section ("backup", backup_url, 2, NULL);
		sections = g_strconcat (primary, secondary, NULL);
		write_config (fixture, sections, NULL);
		queue_id = inject_to (fixture, rcpts);
		g_assert_cmpint (run_once (fixture), ==, 0);
		shown = sc_test_show (fixture->config, queue_id);
		g_assert_cmpstr (member (shown, "state"), ==, "done");
		g_assert_cmpuint (count_status (shown, "sent"), ==, 2);
		g_assert_cmpstr (member (recipient (shown, "a@one.example"), "mailer"), ==, "backup");
		attempts = json_object_get_array_member (shown, "attempts");
		deliver = json_array_get_object_element (attempts, json_array_get_length (attempts) - 1);
		g_assert_cmpstr (member (deliver, "stage"), ==, "deliver");
		g_assert_cmpstr (member (deliver, "mailer"), ==, "backup");
		g_assert_nonnull (strstr (member (deliver, "error"), "primary: "));
		if (round == 1)
			g_assert_nonnull (strstr (member (deliver, "error"), "4")); /* the 4xx reply */
	}
	g_assert_cmpuint (sc_test_sink_count_recipient (backup, "a@one.example"), ==, 2);
	if (refusing != NULL)
		g_assert_true (sc_test_sink_wait_dumps (refusing, 0, 2000)); /* aborted dumps vanish late */
}

/* A mailer that keeps failing opens its circuit: later messages skip it
 * without waiting for it, and the admin is told. */
static void
test_circuit_opens (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) backup = start_sink (NULL);
	g_autofree char *backup_url = NULL;
	g_autofree char *primary_url = NULL;
	g_autofree char *sections = NULL;
	g_autofree char *primary = NULL;
	g_autofree char *secondary = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};
	g_autofree char *detail = NULL;

	if (backup == NULL)
		return;
	backup_url = sc_test_sink_get_url (backup);
	primary_url = g_strdup_printf ("smtp://127.0.0.1:%u", dead_port ());
	primary = mailer_section ("primary", primary_url, 1, NULL);
	secondary = mailer_section ("backup", backup_url, 2, NULL);
	sections = g_strconcat (primary, secondary, NULL);
	write_config (fixture, sections, NULL);
	/* one run: three messages fail over (3 failures open it), then more */
	for (guint i = 0; i < 3; i++)
		g_free (inject_to (fixture, rcpts));
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 3);
	detail = sc_test_backend_query_text (fixture->spool,
					     "SELECT detail FROM notifications WHERE kind = 'mailer.circuit_open'");
	g_assert_nonnull (strstr (detail, "primary"));
	g_assert_cmpuint (sc_test_sink_count_recipient (backup, "a@one.example"), ==, 3);
}

/* 3. Every mailer fails transiently → deferred; the sink comes back; after
 * the retry delay the message is delivered, nobody twice. */
static void
test_all_down_then_back (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-r", "mail", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) last = NULL;
	const char *const rcpts[] = {"a@one.example", "b@one.example", "c@two.example", NULL};

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = mailer_section ("only", url, 1, NULL);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	first = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (first, "state"), ==, "deferred");
	g_assert_cmpuint (count_status (first, "deferred"), ==, 3);
	g_assert_nonnull (strstr (member (first, "last_error"), "only: "));
	g_assert_nonnull (member (recipient (first, "a@one.example"), "reply"));

	sc_test_sink_restart (sink, NULL);
	g_usleep (1100 * 1000); /* initial=1s, jitter=0 */
	g_assert_cmpint (run_once (fixture), ==, 0);
	last = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (last, "state"), ==, "done");
	g_assert_cmpuint (count_status (last, "sent"), ==, 3);
	for (guint i = 0; rcpts[i] != NULL; i++)
		g_assert_cmpuint (sc_test_sink_count_recipient (sink, rcpts[i]), ==, 1);
}

/* 4. Every RCPT refused with 5xx → dead, a notification, replies shown. */
static void
test_permanent_refusal (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-f", "rcpt", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", "b@two.example", NULL};
	g_autofree char *queue_of = NULL;
	g_autofree char *detail = NULL;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = mailer_section ("only", url, 1, NULL);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "dead");
	g_assert_cmpuint (count_status (shown, "failed"), ==, 2);
	g_assert_cmpint (json_object_get_int_member (recipient (shown, "b@two.example"), "code"), >=, 500);
	g_assert_true (g_str_has_prefix (member (recipient (shown, "b@two.example"), "reply"), "5"));
	/* its message.dead notification (the only message in this spool) */
	g_assert_cmpint (sc_test_backend_query_int (fixture->spool,
						    "SELECT count(*) FROM notifications WHERE kind = 'message.dead'"),
			 ==, 1);
	queue_of = sc_test_backend_query_text (fixture->spool,
					       "SELECT queue_id FROM notifications WHERE kind = 'message.dead'");
	detail = sc_test_backend_query_text (fixture->spool,
					     "SELECT detail FROM notifications WHERE kind = 'message.dead'");
	g_assert_cmpstr (queue_of, ==, queue_id);
	g_assert_nonnull (strstr (detail, "a@one.example"));
	/* the operator fixes the cause and retries: delivered */
	sc_test_sink_restart (sink, NULL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_clear_pointer (&shown, json_object_unref);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "a@one.example"), ==, 1);
}

/* MAIL FROM refused with 5xx by every mailer: no retry can help → dead. */
static void
test_sender_refused (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-f", "mail", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = mailer_section ("only", url, 1, NULL);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "dead");
	g_assert_cmpstr (member (recipient (shown, "a@one.example"), "status"), ==, "failed");
	g_assert_true (g_str_has_prefix (member (recipient (shown, "a@one.example"), "reply"), "5"));
}

/* 5. Some recipients refused (550), some deferred (450), the rest
 * accepted, in one transaction, by a real Postfix; a later retry delivers
 * the deferred one once the refusal is lifted; nobody gets two copies. */
static void
test_partial (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	const char *access[] = {"bad@one.example 550 5.1.1 no such user",
				"later@one.example 450 4.2.0 mailbox busy", NULL};
	ScTestPostfixOptions options = {0};
	g_autoptr(ScTestPostfix) postfix = NULL;
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) last = NULL;
	const char *const rcpts[] = {"good1@one.example", "bad@one.example", "later@one.example",
				     "good2@one.example", NULL};

	if (sink == NULL)
		return;
	options.relay_port = sc_test_sink_get_port (sink);
	options.access = access;
	postfix = sc_test_postfix_start (&options);
	if (postfix == NULL)
		return;
	url = sc_test_postfix_get_url (postfix);
	section = mailer_section ("postfix", url, 1, NULL);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	first = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (first, "state"), ==, "deferred");
	g_assert_cmpstr (member (recipient (first, "good1@one.example"), "status"), ==, "sent");
	g_assert_cmpstr (member (recipient (first, "good2@one.example"), "status"), ==, "sent");
	g_assert_cmpstr (member (recipient (first, "bad@one.example"), "status"), ==, "failed");
	g_assert_cmpint (json_object_get_int_member (recipient (first, "bad@one.example"), "code"), ==, 550);
	g_assert_nonnull (strstr (member (recipient (first, "bad@one.example"), "reply"), "no such user"));
	g_assert_cmpstr (member (recipient (first, "later@one.example"), "status"), ==, "deferred");
	g_assert_cmpint (json_object_get_int_member (recipient (first, "later@one.example"), "code"), ==, 450);
	g_assert_nonnull (strstr (member (recipient (first, "later@one.example"), "reply"), "mailbox busy"));
	g_assert_true (sc_test_postfix_wait_queue_empty (postfix, 10000));
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "good1@one.example"), ==, 1);
	{
		/* the refused one is reported to the admin, with the server's words */
		g_autofree char *detail = sc_test_backend_query_text (
		    fixture->spool, "SELECT detail FROM notifications WHERE kind = 'recipients.failed'");
		g_assert_nonnull (strstr (detail, "bad@one.example"));
		g_assert_nonnull (strstr (detail, "no such user"));
	}

	/* the 450 is lifted: a Postfix without that entry on the same relay */
	g_clear_pointer (&postfix, sc_test_postfix_free);
	{
		const char *fewer[] = {"bad@one.example 550 5.1.1 no such user", NULL};
		g_autofree char *url2 = NULL;
		g_autofree char *section2 = NULL;
		options.access = fewer;
		postfix = sc_test_postfix_start (&options);
		g_assert_nonnull (postfix);
		url2 = sc_test_postfix_get_url (postfix);
		section2 = mailer_section ("postfix", url2, 1, NULL);
		write_config (fixture, section2, NULL);
	}
	g_usleep (1100 * 1000);
	g_assert_cmpint (run_once (fixture), ==, 0);
	last = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (last, "state"), ==, "done");
	g_assert_cmpstr (member (recipient (last, "later@one.example"), "status"), ==, "sent");
	g_assert_cmpstr (member (recipient (last, "bad@one.example"), "status"), ==, "failed");
	g_assert_true (sc_test_postfix_wait_queue_empty (postfix, 10000));
	for (guint i = 0; rcpts[i] != NULL; i++)
		g_assert_cmpuint (sc_test_sink_count_recipient (sink, rcpts[i]), ==,
				  strcmp (rcpts[i], "bad@one.example") == 0 ? 0 : 1);
}

/* 6. The connection dies during DATA: transient, nobody marked sent. */
static void
test_dies_in_data (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-q", "data", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", "b@one.example", NULL};

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = mailer_section ("only", url, 1, NULL);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "deferred");
	g_assert_cmpuint (count_status (shown, "sent"), ==, 0);
	g_assert_cmpuint (count_status (shown, "deferred"), ==, 2);
}

/* 7. A server that stalls: the timeout fires and the next mailer takes it. */
static void
test_slow_server_fails_over (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) slow = start_sink ("-W", "mail:30", NULL);
	g_autoptr(ScTestSink) backup = start_sink (NULL);
	g_autofree char *slow_url = NULL;
	g_autofree char *backup_url = NULL;
	g_autofree char *sections = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};
	gint64 started;

	if (slow == NULL || backup == NULL)
		return;
	slow_url = sc_test_sink_get_url (slow);
	backup_url = sc_test_sink_get_url (backup);
	{
		g_autofree char *first = g_strdup_printf ("[mailer:slow]\nurl=%s\npriority=1\ntimeout=1s\nstarttls=off\n", slow_url);
		g_autofree char *second = mailer_section ("backup", backup_url, 2, NULL);
		sections = g_strconcat (first, second, NULL);
	}
	write_config (fixture, sections, NULL);
	queue_id = inject_to (fixture, rcpts);
	started = g_get_monotonic_time ();
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (g_get_monotonic_time () - started, <, 15 * G_USEC_PER_SEC); /* not the 30 s stall */
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpstr (member (recipient (shown, "a@one.example"), "mailer"), ==, "backup");
	g_assert_cmpuint (sc_test_sink_count_recipient (backup, "a@one.example"), ==, 1);
}

/* 8. kill -9 in the middle of a large fan-out, restart: every recipient
 * delivered; duplicates only from the one transaction in flight. */
static void
test_kill9_fanout (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GPtrArray) recipients = make_recipients (3000, 100);
	g_autofree char *queue_id = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	guint duplicates = 0;
	guint sent_before_kill;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = mailer_section ("only", url, 1, "max-recipients=5\n");
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* kill once a good part went out */
	for (guint waited = 0; waited < 3000 && sc_test_sink_count_dumps (sink) < 100; waited++)
		g_usleep (5 * 1000);
	g_subprocess_send_signal (runner, SIGKILL);
	g_subprocess_wait (runner, NULL, NULL);
	shown = sc_test_show (fixture->config, queue_id);
	sent_before_kill = count_status (shown, "sent");
	g_assert_cmpuint (sent_before_kill, >, 0);
	g_assert_cmpuint (sent_before_kill, <, 3000);
	g_clear_pointer (&shown, json_object_unref);

	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpuint (count_status (shown, "sent"), ==, 3000);
	g_assert_true (sc_test_sink_wait_messages (sink, 600, 10000));
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		for (guint i = 0; i < 3000; i++) {
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (counts, recipients->pdata[i]));
			g_assert_cmpuint (copies, >=, 1);
			duplicates += copies - 1;
		}
	}
	/* at most the transactions in flight: one of 5 recipients on each
	 * of the mailer's 4 connections (max-connections' default) */
	g_test_message ("duplicates after kill -9: %u (sent before the kill: %u)", duplicates, sent_before_kill);
	g_print ("# duplicates after kill -9 in a 3000-recipient fan-out: %u\n", duplicates);
	g_assert_cmpuint (duplicates, <=, 4 * 5);
}

/* 9. STARTTLS required against a real Postfix with a self-signed
 * certificate: works with tls-verify=false, refused when verification is
 * on (a transient failure shown to the operator). */
static void
test_starttls (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	ScTestPostfixOptions options = {.tls = TRUE, .tls_required = TRUE};
	g_autoptr(ScTestPostfix) postfix = NULL;
	g_autofree char *url = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};

	if (sink == NULL)
		return;
	options.relay_port = sc_test_sink_get_port (sink);
	postfix = sc_test_postfix_start (&options);
	if (postfix == NULL)
		return;
	url = sc_test_postfix_get_url (postfix);
	{
		g_autofree char *section = g_strdup_printf ("[mailer:tls]\nurl=%s\nstarttls=required\ntls-verify=true\ntimeout=5s\n", url);
		write_config (fixture, section, NULL);
	}
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "deferred");
	g_assert_nonnull (member (shown, "last_error"));
	g_test_message ("verification refused: %s", member (shown, "last_error"));
	g_clear_pointer (&shown, json_object_unref);
	{
		g_autofree char *section = g_strdup_printf ("[mailer:tls]\nurl=%s\nstarttls=required\ntls-verify=false\ntimeout=5s\n", url);
		write_config (fixture, section, NULL);
	}
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_true (sc_test_postfix_wait_queue_empty (postfix, 10000));
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "a@one.example"), ==, 1);
}

/* A misconfigured mailer: check-config names it; at run time a missing
 * password file is a transient failure the operator sees, not a death. */
static void
test_misconfigured_mailer (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autofree char *url = NULL;
	g_autofree char *password = sc_test_write_file (fixture->dir, "secret", "s3cret\n");
	g_autofree char *err = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	write_config (fixture, "[mailer:bad]\nurl=htp://nowhere\n", NULL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "check-config", NULL), ==, 78);
	g_assert_nonnull (strstr (err, "[mailer:bad] url:"));
	g_clear_pointer (&err, g_free);
	write_config (fixture, "[mailer:bad]\nurl=smtp://127.0.0.1:25\nusername=u\npassword-file=missing\n", NULL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "check-config", NULL), ==, 78);
	g_assert_nonnull (strstr (err, "[mailer:bad] password-file:"));
	g_clear_pointer (&err, g_free);
	{
		g_autofree char *section = g_strdup_printf ("[mailer:auth]\nurl=%s\nusername=u\npassword-file=secret\nstarttls=off\n", url);
		write_config (fixture, section, NULL);
	}
	queue_id = inject_to (fixture, rcpts);
	g_assert_cmpint (g_unlink (password), ==, 0); /* gone after the config was checked */
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "deferred");
	g_assert_nonnull (strstr (member (shown, "last_error"), "secret"));
	g_assert_null (strstr (member (shown, "last_error"), "s3cret"));
}

/* Defect 4 of issue 7: SIGTERM while the relay is slow to answer the final
 * ".": the reply is awaited (the server has the message), the recipients
 * are recorded sent, and the next run sends nothing again. */
static void
test_sigterm_after_dot (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-W", ".:4", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GPtrArray) recipients = make_recipients (8, 1);
	g_autofree char *queue_id = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(GHashTable) counts = NULL;
	guint duplicates = 0;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	/* the timeout bounds the wait for the delayed reply: longer than 4 s */
	section = g_strdup_printf ("[mailer:slowdot]\nurl=%s\npriority=1\ntimeout=20s\nstarttls=off\n", url);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* smtp-sink closes the dump when "." arrives, before its delayed reply */
	g_assert_true (sc_test_sink_wait_messages (sink, 1, 20000));
	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));
	shown = sc_test_show (fixture->config, queue_id);
	g_test_message ("after SIGTERM: state %s, last error %s", member (shown, "state"),
			member (shown, "last_error"));
	g_assert_cmpuint (count_status (shown, "sent"), ==, 8);

	sc_test_sink_restart (sink, NULL);
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_clear_pointer (&shown, json_object_unref);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	counts = recipient_counts (sink);
	for (guint i = 0; i < 8; i++) {
		guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (counts, recipients->pdata[i]));
		g_assert_cmpuint (copies, >=, 1);
		duplicates += copies - 1;
	}
	g_print ("# duplicates after SIGTERM while the reply to \".\" was delayed: %u\n", duplicates);
	g_assert_cmpuint (duplicates, ==, 0);
}

/* SIGTERM before DATA (RCPT answered slowly): the transaction is aborted at
 * once (nothing was accepted), and the next run sends each copy once. */
static void
test_sigterm_before_data (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-W", "rcpt:30", NULL);
	g_autofree char *url = NULL;
	g_autofree char *section = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GPtrArray) recipients = make_recipients (8, 1);
	g_autofree char *queue_id = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	gint64 signalled;

	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	section = g_strdup_printf ("[mailer:slowrcpt]\nurl=%s\npriority=1\ntimeout=60s\nstarttls=off\n", url);
	write_config (fixture, section, NULL);
	queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* smtp-sink opens the dump at MAIL; RCPT then waits 30 s */
	for (guint waited = 0; waited < 2000 && sc_test_sink_count_dumps (sink) == 0; waited++)
		g_usleep (10 * 1000);
	g_assert_cmpuint (sc_test_sink_count_dumps (sink), ==, 1);
	signalled = g_get_monotonic_time ();
	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));
	/* aborted, not waited out: well under the 30 s RCPT delay */
	g_assert_cmpint (g_get_monotonic_time () - signalled, <, 20 * G_USEC_PER_SEC);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpuint (count_status (shown, "sent"), ==, 0);

	sc_test_sink_restart (sink, NULL);
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_clear_pointer (&shown, json_object_unref);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_true (sc_test_sink_wait_messages (sink, 1, 5000));
	for (guint i = 0; i < 8; i++)
		g_assert_cmpuint (sc_test_sink_count_recipient (sink, recipients->pdata[i]), ==, 1);
}

/* kill -9 while one message's transaction is under way (RCPT answered in
 * 30 s) and another's deliver waits for the mailer's only connection: the
 * one sending is blamed (crashed), the one waiting only taken back
 * (released).  Before, both counted a crash, and a message stuck behind a
 * busy relay at three kills was held as poison. */
static void
test_kill9_waiting_not_blamed (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-W", "rcpt:30", NULL);
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	const char *first_rcpt[] = {"first@one.example", NULL};
	const char *second_rcpt[] = {"second@two.example", NULL};
	g_autofree char *first = NULL;
	g_autofree char *second = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) first_shown = NULL;
	g_autoptr(JsonObject) second_shown = NULL;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=1\n");
	first = inject_to (fixture, first_rcpt);
	second = inject_to (fixture, second_rcpt);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* smtp-sink opens a dump at MAIL; the RCPT reply then takes 30 s */
	for (guint waited = 0; waited < 2000 && sc_test_sink_count_dumps (sink) == 0; waited++)
		g_usleep (10 * 1000);
	g_assert_cmpuint (sc_test_sink_count_dumps (sink), ==, 1);
	g_usleep (500 * 1000); /* the other deliver is at the pool by now */
	g_subprocess_force_exit (runner);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));

	sc_test_sink_restart (sink, NULL);
	g_assert_cmpint (run_once (fixture), ==, 0);
	first_shown = sc_test_show (fixture->config, first);
	second_shown = sc_test_show (fixture->config, second);
	g_assert_cmpstr (member (first_shown, "state"), ==, "done");
	g_assert_cmpstr (member (second_shown, "state"), ==, "done");
	/* which of the two got the connection first is the runner's choice */
	g_assert_cmpuint (sc_test_count_attempts (first_shown, "crashed") + sc_test_count_attempts (second_shown, "crashed"),
			  ==, 1);
	g_assert_cmpuint (sc_test_count_attempts (first_shown, "released") +
			      sc_test_count_attempts (second_shown, "released"),
			  ==, 1);
}

/* kill -9 while deliver, run right after decorate on the same thread and
 * committed with it, waits for a RCPT reply: the crash is deliver's.
 * Before, the in-handler mark did not say which stage of the group ran,
 * and reclaim blamed the first stage not committed: decorate. */
static void
test_kill9_blamed_on_running_stage (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-W", "rcpt:30", NULL);
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	const char *rcpt[] = {"a@one.example", NULL};
	g_autofree char *queue_id = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	JsonObject *crashed;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, NULL);
	queue_id = inject_to (fixture, rcpt);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* smtp-sink opens a dump at MAIL; the RCPT reply then takes 30 s */
	for (guint waited = 0; waited < 2000 && sc_test_sink_count_dumps (sink) == 0; waited++)
		g_usleep (10 * 1000);
	g_assert_cmpuint (sc_test_sink_count_dumps (sink), ==, 1);
	g_subprocess_force_exit (runner);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));

	sc_test_sink_restart (sink, NULL);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpuint (sc_test_count_attempts (shown, "crashed"), ==, 1);
	crashed = element_where (shown, "attempts", "outcome", "crashed");
	g_test_message ("crashed attempt: stage %s, error %s", member (crashed, "stage"), member (crashed, "error"));
	g_assert_cmpstr (member (crashed, "stage"), ==, "deliver");
	g_assert_nonnull (strstr (member (crashed, "error"), "deliver stage"));
}

/* Defect 6 of issue 7: the relay closes the pooled connection while it is
 * idle (Postfix smtpd_timeout: "421 4.4.2 … timeout exceeded", then close).
 * The next message reconnects to the same mailer; it neither fails over
 * nor counts against the mailer. */
static void
test_pooled_connection_closed (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) backup = start_sink (NULL);
	ScTestPostfixOptions options = {.smtpd_timeout = 1};
	g_autoptr(ScTestPostfix) postfix = NULL;
	g_autofree char *backup_url = NULL;
	g_autofree char *primary_url = NULL;
	g_autofree char *sections = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autofree char *first_id = NULL;
	g_autofree char *second_id = NULL;
	g_autofree char *maillog = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *const rcpts[] = {"a@one.example", NULL};
	JsonArray *attempts;
	JsonObject *deliver;

	if (backup == NULL)
		return;
	postfix = sc_test_postfix_start (&options);
	if (postfix == NULL)
		return;
	backup_url = sc_test_sink_get_url (backup);
	primary_url = sc_test_postfix_get_url (postfix);
	{
		g_autofree char *primary = mailer_section ("primary", primary_url, 1, NULL);
		g_autofree char *secondary = mailer_section ("backup", backup_url, 2, NULL);
		sections = g_strconcat (primary, secondary, NULL);
	}
	write_config (fixture, sections, NULL);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	first_id = inject_to (fixture, rcpts);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 1, 20000));
	/* until smtpd has timed the idle pooled connection out */
	for (guint waited = 0; waited < 200; waited++) {
		g_free (maillog);
		maillog = sc_test_postfix_get_log (postfix);
		if (strstr (maillog, "timeout after END-OF-MESSAGE") != NULL)
			break;
		g_usleep (50 * 1000);
	}
	g_assert_nonnull (strstr (maillog, "timeout after END-OF-MESSAGE"));
	second_id = inject_to (fixture, rcpts);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 2, 20000));
	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));

	shown = sc_test_show (fixture->config, second_id);
	attempts = json_object_get_array_member (shown, "attempts");
	deliver = json_array_get_object_element (attempts, json_array_get_length (attempts) - 1);
	g_test_message ("second message: mailer %s, error %s", member (deliver, "mailer"),
			member (deliver, "error"));
	g_assert_cmpstr (member (recipient (shown, "a@one.example"), "mailer"), ==, "primary");
	g_assert_null (member (deliver, "error"));
	g_assert_cmpuint (sc_test_sink_count_dumps (backup), ==, 0);
}

/* The attempt of @stage in @shown's history. */
static JsonObject *
attempt_of (JsonObject *shown, const char *stage)
{
	return element_where (shown, "attempts", "stage", stage);
}

/* decorate runs on deliver's thread right before it, one commit for both,
 * when deliver sends in one transaction: deliver starts the moment
 * decorate ends.  With two domains (two transactions, each committed
 * before the next) deliver waits for decorate's own commit. */
static void
test_decorate_runs_with_deliver (Fixture *fixture, gconstpointer data)
{
	static const char *const one[] = {"a@one.example", "b@one.example", NULL};
	static const char *const two[] = {"a@one.example", "b@two.example", NULL};
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autofree char *grouped_id = NULL;
	g_autofree char *alone_id = NULL;

	if (sink == NULL)
		return;
	{
		g_autofree char *url = sc_test_sink_get_url (sink);
		g_autofree char *mailer = mailer_section ("main", url, 10, NULL);
		write_config (fixture, mailer, NULL);
	}
	grouped_id = inject_to (fixture, one);
	alone_id = inject_to (fixture, two);
	g_assert_cmpint (run_once (fixture), ==, 0);
	{
		g_autoptr(JsonObject) shown = sc_test_show (fixture->config, grouped_id);
		JsonObject *decorate = attempt_of (shown, "decorate");
		JsonObject *deliver = attempt_of (shown, "deliver");
		g_assert_cmpstr (member (shown, "state"), ==, "done");
		g_assert_cmpuint (count_status (shown, "sent"), ==, 2);
		g_assert_cmpstr (member (decorate, "outcome"), ==, "ok");
		g_assert_cmpstr (member (deliver, "started_at"), ==, member (decorate, "finished_at"));
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "stages")), ==, 2);
	}
	{
		g_autoptr(JsonObject) shown = sc_test_show (fixture->config, alone_id);
		JsonObject *decorate = attempt_of (shown, "decorate");
		JsonObject *deliver = attempt_of (shown, "deliver");
		g_assert_cmpstr (member (shown, "state"), ==, "done");
		g_assert_cmpuint (count_status (shown, "sent"), ==, 2);
		g_assert_cmpint (strcmp (member (deliver, "started_at"), member (decorate, "finished_at")), >, 0);
	}
	/* what went out is the decorated message, once per recipient */
	g_assert_true (sc_test_sink_wait_messages (sink, 3, 5000));
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		g_autoptr(GPtrArray) dumps = sc_test_sink_get_messages (sink);
		g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, "a@one.example")), ==, 2);
		g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, "b@one.example")), ==, 1);
		g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, "b@two.example")), ==, 1);
		for (guint i = 0; i < dumps->len; i++) {
			ScTestSinkMessage *dump = dumps->pdata[i];
			g_autofree char *body = g_strndup (g_bytes_get_data (dump->data, NULL), g_bytes_get_size (dump->data));
			g_assert_nonnull (strstr (body, "Subject: [test] deliver me\r\n"));
		}
	}
}

/* Which deliver stages send in one transaction (sc_deliver_is_one_transaction). */
static void
test_one_transaction_plan (Fixture *fixture, gconstpointer data)
{
	static const char *const addresses[] = {"a@one.example", "b@ONE.example", "c@two.example", NULL};
	g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_recipient_record_free);
	g_autoptr(ScConfig) config = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *mailer = mailer_section ("main", "smtp://127.0.0.1:25", 10, "max-recipients=2\n");
	const ScListConfig *list;

	write_config (fixture, mailer, NULL);
	config = sc_config_load (fixture->config, &error);
	g_assert_no_error (error);
	list = sc_config_get_list (config, "test.example.org");
	for (guint i = 0; addresses[i] != NULL; i++) {
		ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);
		record->position = i;
		record->address = g_strdup (addresses[i]);
		record->status = g_strdup ("pending");
		g_ptr_array_add (records, record);
	}
	/* two domains: two transactions */
	g_assert_false (sc_deliver_is_one_transaction (config, list, records));
	/* the other domain's recipient already sent: one (domains compare without case) */
	g_free (((ScRecipientRecord *) records->pdata[2])->status);
	((ScRecipientRecord *) records->pdata[2])->status = g_strdup ("sent");
	g_assert_true (sc_deliver_is_one_transaction (config, list, records));
	/* three of one domain over max-recipients=2: two transactions */
	g_free (((ScRecipientRecord *) records->pdata[2])->address);
	((ScRecipientRecord *) records->pdata[2])->address = g_strdup ("c@one.example");
	g_free (((ScRecipientRecord *) records->pdata[2])->status);
	((ScRecipientRecord *) records->pdata[2])->status = g_strdup ("deferred");
	g_assert_false (sc_deliver_is_one_transaction (config, list, records));
	/* one failed for good is not sent again: two left, one transaction */
	g_free (((ScRecipientRecord *) records->pdata[0])->status);
	((ScRecipientRecord *) records->pdata[0])->status = g_strdup ("failed");
	g_assert_true (sc_deliver_is_one_transaction (config, list, records));
}

/* ---- the handler in-process, with a wall clock the test steps ---- */

/* Counts record_recipients calls and the updates they carried (from
 * every sender thread) into @data, a GArray of guint, when not NULL. */
static gboolean
count_updates (gpointer data, ScRecipientUpdate *updates, guint n_updates, GError **error)
{
	static GMutex lock;
	GArray *calls = data;

	if (calls == NULL)
		return TRUE;
	g_mutex_lock (&lock);
	g_array_append_val (calls, n_updates);
	g_mutex_unlock (&lock);
	return TRUE;
}

typedef gboolean (*RecordFunc) (gpointer data, ScRecipientUpdate *updates, guint n_updates, GError **error);

/* Runs the deliver handler in this process under @config, as at
 * wall-clock time @clock, every one of @rcpts pending; @record and @data
 * take its record_recipients calls.  @context keeps the handler's outputs
 * (their own copies); what else it pointed to is gone on return. */
static gboolean
run_deliver (ScConfig *config,
	     ScClock *clock,
	     const char *const *rcpts,
	     RecordFunc record,
	     gpointer data,
	     gboolean with_result,
	     ScStageContext *context,
	     GError **error)
{
	g_autofree char *text = g_strdup_printf (message_text, 0u);
	g_autoptr(GBytes) message = g_bytes_new (text, strlen (text));
	g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_recipient_record_free);
	g_autoptr(GCancellable) cancellable = g_cancellable_new ();
	gboolean ok;

	for (guint i = 0; rcpts[i] != NULL; i++) {
		ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);
		record->position = i;
		record->address = g_strdup (rcpts[i]);
		record->status = g_strdup ("pending");
		g_ptr_array_add (records, record);
	}
	*context = (ScStageContext) {
	    .queue_id = "q-direct",
	    .stage = "deliver",
	    .list_id = "test.example.org",
	    .sender = "alice@example.org",
	    .recipients = rcpts,
	    .raw = message,
	    .current = message,
	    .config = config,
	    .list = sc_config_get_list (config, "test.example.org"),
	    .clock = clock,
	    .cancellable = cancellable,
	    .recipient_records = records,
	    .record_recipients = record,
	    .record_recipients_data = data,
	    .record_last_with_result = with_result,
	};
	ok = sc_handler_deliver.run (context, error);
	context->raw = context->current = NULL;
	context->cancellable = NULL;
	context->recipient_records = NULL;
	return ok;
}

/* Runs the deliver handler once for a@one.example under @config, as at
 * wall-clock time @clock.  TRUE when it delivered. */
static gboolean
deliver_in_process (ScConfig *config, ScClock *clock)
{
	static const char *const rcpts[] = {"a@one.example", NULL};
	g_autoptr(GError) error = NULL;
	ScStageContext context;
	gboolean ok = run_deliver (config, clock, rcpts, count_updates, NULL, FALSE, &context, &error);

	if (!ok)
		g_test_message ("deliver: %s", error->message);
	sc_stage_context_clear_outputs (&context);
	return ok;
}

static guint
mailer_failures (ScConfig *config, const char *name)
{
	ScMailerStats stats = {0};

	sc_mailer_state_get_stats (sc_mailer_state_get (sc_config_get_mailer (config, name)), &stats);
	g_free (stats.last_error);
	return stats.failures;
}

/* Defect 8 of issue 7: the circuit's cool-down is a duration, measured on
 * the monotonic clock.  The wall clock stepped an hour forward does not
 * reopen a circuit with a 10 minute cool-down; stepped a day back it does
 * not keep a 1 s cool-down closed for a day. */
static void
test_circuit_wall_clock_steps (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) backup = start_sink (NULL);
	g_autoptr(ScClock) clock = sc_clock_new_fixed (G_GINT64_CONSTANT (1795435200) * G_USEC_PER_SEC);
	g_autoptr(GError) error = NULL;
	g_autofree char *backup_url = NULL;
	g_autofree char *primary_url = NULL;
	g_autofree char *sections = NULL;

	if (backup == NULL)
		return;
	backup_url = sc_test_sink_get_url (backup);
	primary_url = g_strdup_printf ("smtp://127.0.0.1:%u", dead_port ());
	{
		g_autofree char *primary = mailer_section ("primary", primary_url, 1, NULL);
		g_autofree char *secondary = mailer_section ("backup", backup_url, 2, NULL);
		sections = g_strconcat (primary, secondary, NULL);
	}
	for (guint round = 0; round < 2; round++) {
		g_autoptr(ScConfig) config = NULL;
		g_autofree char *text = NULL;

		sc_mailer_state_reset_all ();
		write_config (fixture, sections, NULL);
		g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
		{
			/* round 0: a cool-down the test never waits out; round 1: one it does */
			g_autoptr(GString) edited = g_string_new (text);
			g_string_replace (edited, "circuit-cooldown=1m", round == 0 ? "circuit-cooldown=10m" : "circuit-cooldown=1s", 1);
			g_assert_true (g_file_set_contents (fixture->config, edited->str, -1, NULL));
		}
		config = sc_config_load (fixture->config, &error);
		g_assert_no_error (error);
		/* three failures over to the backup open the primary's circuit */
		for (guint i = 0; i < 3; i++)
			g_assert_true (deliver_in_process (config, clock));
		g_assert_cmpuint (mailer_failures (config, "primary"), ==, 3);
		g_assert_true (deliver_in_process (config, clock));
		g_assert_cmpuint (mailer_failures (config, "primary"), ==, 3); /* skipped */
		if (round == 0) {
			sc_clock_advance (clock, G_TIME_SPAN_HOUR);
			g_assert_true (deliver_in_process (config, clock));
			/* still skipped: ten minutes have not passed */
			g_assert_cmpuint (mailer_failures (config, "primary"), ==, 3);
		} else {
			sc_clock_advance (clock, -G_TIME_SPAN_DAY);
			g_usleep (1500 * 1000); /* the 1 s cool-down, really over */
			g_assert_true (deliver_in_process (config, clock));
			/* the trial transaction went to the primary (and failed) */
			g_assert_cmpuint (mailer_failures (config, "primary"), ==, 4);
		}
	}
	sc_mailer_state_reset_all ();
}

/* The handler in this process under the config at @fixture's path (see
 * run_deliver), which must deliver without an error. */
static void
deliver_directly (Fixture *fixture,
		  const char *const *rcpts,
		  gboolean with_result,
		  GArray *calls,
		  ScStageContext *context)
{
	g_autoptr(ScConfig) config = sc_config_load (fixture->config, NULL);
	g_autoptr(ScClock) clock = sc_clock_new_system ();
	g_autoptr(GError) error = NULL;

	g_assert_nonnull (config);
	g_assert_true (run_deliver (config, clock, rcpts, count_updates, calls, with_result, context, &error));
	g_assert_no_error (error);
	context->config = NULL;
	context->list = NULL;
	context->clock = NULL;
}

/* With record_last_with_result, every transaction but the last is
 * committed at once; the last one's states (copied, the server's words
 * included) are left for the runner to commit with the stage's result.
 * One connection (max-connections=1): the transactions go in domain
 * order, so which is last is known. */
static void
test_last_transaction_with_result (Fixture *fixture, gconstpointer data)
{
	static const char *const rcpts[] = {"c@two.example", "a@one.example", "b@one.example", NULL};
	g_autoptr(ScTestSink) sink = start_sink (NULL);

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=1\n");
	for (guint with_result = 0; with_result < 2; with_result++) {
		g_autoptr(GArray) calls = g_array_new (FALSE, FALSE, sizeof (guint));
		ScStageContext context;

		deliver_directly (fixture, rcpts, with_result, calls, &context);
		/* one transaction per domain: one.example (2), then two.example (1) */
		if (!with_result) {
			g_assert_cmpuint (calls->len, ==, 2);
			g_assert_cmpuint (g_array_index (calls, guint, 0), ==, 2);
			g_assert_cmpuint (g_array_index (calls, guint, 1), ==, 1);
			g_assert_null (context.last_updates);
		} else {
			g_assert_cmpuint (calls->len, ==, 1);
			g_assert_cmpuint (g_array_index (calls, guint, 0), ==, 2);
			g_assert_cmpuint (context.n_last_updates, ==, 1);
			g_assert_cmpuint (context.last_updates[0].position, ==, 0); /* c@two.example */
			g_assert_cmpstr (context.last_updates[0].status, ==, "sent");
			g_assert_cmpstr (context.last_updates[0].mailer, ==, "sink");
			g_assert_cmpint (context.last_updates[0].code, ==, 250);
			g_assert_nonnull (context.last_updates[0].reply);
			g_test_message ("last reply: %s", context.last_updates[0].reply);
			g_assert_cmpstr (context.last_updates[0].reply, ==, "250 2.0.0 Ok");
		}
		sc_stage_context_clear_outputs (&context);
		g_assert_null (context.last_updates);
	}
	sc_mailer_state_reset_all ();
}

typedef struct {
	ScMailerState *state;
	guint commits;
	guint released_before_commit;
} HeldCheck;

/* A record_recipients that checks the transaction's connection is still
 * held: the pool counts a transaction when its connection comes back. */
static gboolean
check_connection_held (gpointer data, ScRecipientUpdate *updates, guint n_updates, GError **error)
{
	HeldCheck *check = data;
	ScMailerStats stats = {0};

	sc_mailer_state_get_stats (check->state, &stats);
	if (stats.transactions > check->commits)
		check->released_before_commit++;
	check->commits++;
	g_free (stats.last_error);
	return TRUE;
}

/* A transaction's connection goes back to the pool only after its
 * recipients' states are committed: an unrecorded transaction holds a
 * connection, so a crash repeats at most one per connection however many
 * senders run (before, reliability-crash under ASan counted 667
 * duplicates against its bound of 400).  One connection, three domains,
 * no result to carry the last: three commits, each while its connection
 * is still out. */
static void
test_connection_held_until_commit (Fixture *fixture, gconstpointer data)
{
	static const char *const rcpts[] = {"a@one.example", "b@two.example", "c@three.example", NULL};
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autoptr(ScConfig) config = NULL;
	g_autoptr(ScClock) clock = sc_clock_new_system ();
	g_autoptr(GPtrArray) mailers = NULL;
	g_autoptr(GError) error = NULL;
	HeldCheck check = {0};
	ScStageContext context;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=1\n");
	config = sc_config_load (fixture->config, NULL);
	g_assert_nonnull (config);
	mailers = sc_config_list_mailers (config, sc_config_get_list (config, "test.example.org"));
	check.state = sc_mailer_state_get (mailers->pdata[0]);
	g_assert_true (run_deliver (config, clock, rcpts, check_connection_held, &check, FALSE, &context, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (check.commits, ==, 3);
	g_assert_cmpuint (check.released_before_commit, ==, 0);
	sc_stage_context_clear_outputs (&context);
	sc_mailer_state_reset_all ();
}

/* VERP: one transaction per recipient, each with the list's bounces
 * address carrying that recipient (bounces+user=domain@…), so a bounce
 * names who bounced; four recipients of one domain go out over the
 * mailer's connections as four transactions, each recipient once. */
static void
test_verp_envelope_per_recipient (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autoptr(GPtrArray) recipients = make_recipients (4, 1);
	g_autoptr(GPtrArray) dumps = NULL;

	if (sink == NULL)
		return;
	{
		g_autofree char *url = sc_test_sink_get_url (sink);
		g_autofree char *section = mailer_section ("sink", url, 1, NULL);
		write_config (fixture, section, "verp=true\n");
	}
	dumps = deliver_and_collect (fixture, sink, recipients, 4);
	for (guint i = 0; i < dumps->len; i++) {
		ScTestSinkMessage *dump = dumps->pdata[i];
		g_autofree char *local = NULL;
		g_autofree char *expected = NULL;

		g_assert_cmpuint (dump->recipients->len, ==, 1);
		/* user3@domain0.example → bounces+user3=domain0.example@test.example.org */
		local = g_strdup (dump->recipients->pdata[0]);
		g_strdelimit (local, "@", '=');
		expected = g_strdup_printf ("bounces+%s@test.example.org", local);
		g_assert_cmpstr (dump->sender, ==, expected);
	}
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		for (guint i = 0; i < 4; i++)
			g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, recipients->pdata[i])), ==, 1);
	}
}

/* The socket inodes process @pid holds open. */
static GHashTable *
socket_inodes_of (const char *pid)
{
	GHashTable *inodes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GPtrArray) targets = sc_test_open_descriptors (pid);

	for (guint i = 0; i < targets->len; i++) {
		const char *target = targets->pdata[i];
		/* "socket:[12345]" */
		if (g_str_has_prefix (target, "socket:[") && g_str_has_suffix (target, "]"))
			g_hash_table_add (inodes, g_strndup (target + 8, strlen (target) - 9));
	}
	return inodes;
}

/* TCP connections process @pid has open to 127.0.0.1:@port, from
 * /proc/net/tcp: remote 127.0.0.1:@port, state 01 (ESTABLISHED), the
 * socket one of @pid's, each counted once.  Not the server's side:
 * smtp-sink, busy holding a reply, may not have seen a connection the
 * client already closed; only @pid's: under a parallel test run another
 * process's socket may match the address; and once: the kernel writes
 * /proc/net/tcp in pieces, and a socket table that changes between two
 * of them (other tests' connections) can list one socket twice. */
static guint
established_to (const char *pid, guint port)
{
	g_autoptr(GHashTable) inodes = NULL;
	g_autoptr(GHashTable) counted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autofree char *table = NULL;
	g_auto(GStrv) lines = NULL;
	g_autofree char *remote_address = g_strdup_printf ("0100007F:%04X", port);
	guint count = 0;

	if (pid == NULL)
		return 0; /* it has exited */
	inodes = socket_inodes_of (pid);
	g_assert_true (g_file_get_contents ("/proc/net/tcp", &table, NULL, NULL));
	lines = g_strsplit (table, "\n", -1);
	for (guint i = 1; lines[i] != NULL; i++) {
		char local[64], remote[64], state[8], inode[32];
		/* "  0: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000 1000 0 12345 …" */
		if (sscanf (lines[i], " %*s %63s %63s %7s %*s %*s %*s %*s %*s %31s", local, remote, state, inode) == 4 &&
		    strcmp (remote, remote_address) == 0 && strcmp (state, "01") == 0 &&
		    g_hash_table_contains (inodes, inode)) {
			if (g_hash_table_add (counted, g_strdup (inode)))
				count++;
			else
				g_test_message ("/proc/net/tcp listed socket %s twice", inode);
		}
	}
	if (count > 3) {
		/* for the record: which connections, from which local ports */
		for (guint i = 1; lines[i] != NULL; i++) {
			if (strstr (lines[i], remote_address) != NULL)
				g_test_message ("%s", lines[i]);
		}
	}
	return count;
}

/* A message of several transactions goes out over the mailer's
 * connections at once, never more than max-connections: with the reply
 * to every "." held a second, 9 one-recipient transactions (9 domains)
 * open 3 connections, and each recipient gets one copy. */
static void
test_parallel_fan_out (Fixture *fixture, gconstpointer data)
{
	g_autoptr(ScTestSink) sink = start_sink ("-W", ".:1", NULL);
	g_autoptr(GPtrArray) recipients = make_recipients (9, 9);
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autofree char *queue_id = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(GError) error = NULL;
	guint most = 0;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=3\n");
	queue_id = inject_to (fixture, (const char *const *) recipients->pdata);
	runner = sc_test_spawn (fixture->config, log, "run", "--once", NULL);
	for (guint waited = 0; waited < 2000 && sc_test_sink_count_dumps (sink) < 9; waited++) {
		most = MAX (most, established_to (g_subprocess_get_identifier (runner), sc_test_sink_get_port (sink)));
		g_usleep (10 * 1000);
	}
	g_assert_true (g_subprocess_wait_check (runner, NULL, &error));
	g_assert_no_error (error);
	g_test_message ("most connections open at once: %u", most);
	g_assert_cmpuint (most, ==, 3);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	g_assert_cmpuint (count_status (shown, "sent"), ==, 9);
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		for (guint i = 0; i < 9; i++)
			g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, recipients->pdata[i])), ==, 1);
	}
}

/* The handler itself with senders in parallel (max-connections=2, six
 * domains): every transaction but the one that finished last is
 * committed through record_recipients; that last one goes with the
 * result; together they are every recipient, once. */
static void
test_parallel_last_with_result (Fixture *fixture, gconstpointer data)
{
	static const char *const rcpts[] = {"a@one.example", "b@two.example", "c@three.example",
					    "d@four.example", "e@five.example", "f@six.example", NULL};
	g_autoptr(ScTestSink) sink = start_sink (NULL);
	g_autoptr(GArray) calls = g_array_new (FALSE, FALSE, sizeof (guint));
	ScStageContext context;
	guint total = 0;

	if (sink == NULL)
		return;
	write_sink_config (fixture, sink, "max-connections=2\n");
	deliver_directly (fixture, rcpts, TRUE, calls, &context);
	g_assert_cmpuint (calls->len, ==, 5);
	for (guint i = 0; i < calls->len; i++)
		total += g_array_index (calls, guint, i);
	g_assert_cmpuint (context.n_last_updates, ==, 1);
	g_assert_cmpuint (total + context.n_last_updates, ==, 6);
	g_assert_cmpstr (context.last_updates[0].status, ==, "sent");
	g_assert_true (sc_test_sink_wait_messages (sink, 6, 5000));
	{
		g_autoptr(GHashTable) counts = recipient_counts (sink);
		for (guint i = 0; i < 6; i++)
			g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, rcpts[i])), ==, 1);
	}
	sc_stage_context_clear_outputs (&context);
	sc_mailer_state_reset_all ();
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_backend_init ())
		return 0;
	g_test_add ("/deliver/happy-path/250-recipients", Fixture, NULL, setup, test_happy_path, teardown);
	g_test_add ("/deliver/personal-unsubscribe", Fixture, NULL, setup, test_personal_unsubscribe, teardown);
	g_test_add ("/deliver/connections/reused-across-messages", Fixture, NULL, setup, test_connections_reused, teardown);
	g_test_add ("/deliver/failover/primary-down", Fixture, NULL, setup, test_failover, teardown);
	g_test_add ("/deliver/failover/circuit-opens", Fixture, NULL, setup, test_circuit_opens, teardown);
	g_test_add ("/deliver/transient/all-down-then-back", Fixture, NULL, setup, test_all_down_then_back, teardown);
	g_test_add ("/deliver/permanent/every-rcpt-refused", Fixture, NULL, setup, test_permanent_refusal, teardown);
	g_test_add ("/deliver/permanent/sender-refused", Fixture, NULL, setup, test_sender_refused, teardown);
	g_test_add ("/deliver/partial/postfix-access-table", Fixture, NULL, setup, test_partial, teardown);
	g_test_add ("/deliver/broken/dies-in-data", Fixture, NULL, setup, test_dies_in_data, teardown);
	g_test_add ("/deliver/timeout/slow-server-fails-over", Fixture, NULL, setup, test_slow_server_fails_over, teardown);
	g_test_add ("/deliver/connections/kept-after-4xx", Fixture, GUINT_TO_POINTER (FALSE), setup,
		    test_connections_kept_after_refusal, teardown);
	g_test_add ("/deliver/connections/closed-after-421", Fixture, GUINT_TO_POINTER (TRUE), setup,
		    test_connections_kept_after_refusal, teardown);
	g_test_add ("/deliver/verp/envelope-per-recipient", Fixture, NULL, setup, test_verp_envelope_per_recipient, teardown);
	g_test_add ("/deliver/connections/parallel-fan-out", Fixture, NULL, setup, test_parallel_fan_out, teardown);
	g_test_add ("/deliver/commit/connection-held-until-commit", Fixture, NULL, setup, test_connection_held_until_commit, teardown);
	g_test_add ("/deliver/commit/parallel-last-with-result", Fixture, NULL, setup, test_parallel_last_with_result, teardown);
	g_test_add ("/deliver/crash/kill-9-fan-out", Fixture, NULL, setup, test_kill9_fanout, teardown);
	g_test_add ("/deliver/crash/kill-9-waiting-not-blamed", Fixture, NULL, setup, test_kill9_waiting_not_blamed,
		    teardown);
	g_test_add ("/deliver/crash/kill-9-blamed-on-running-stage", Fixture, NULL, setup,
		    test_kill9_blamed_on_running_stage, teardown);
	g_test_add ("/deliver/tls/starttls-required", Fixture, NULL, setup, test_starttls, teardown);
	g_test_add ("/deliver/config/misconfigured-mailer", Fixture, NULL, setup, test_misconfigured_mailer, teardown);
	g_test_add ("/deliver/sigterm/after-dot-no-duplicate", Fixture, NULL, setup, test_sigterm_after_dot, teardown);
	g_test_add ("/deliver/sigterm/before-data-aborts", Fixture, NULL, setup, test_sigterm_before_data, teardown);
	g_test_add ("/deliver/connections/pooled-closed-by-server", Fixture, NULL, setup, test_pooled_connection_closed, teardown);
	g_test_add ("/deliver/commit/decorate-runs-with-deliver", Fixture, NULL, setup, test_decorate_runs_with_deliver, teardown);
	g_test_add ("/deliver/commit/one-transaction-plan", Fixture, NULL, setup, test_one_transaction_plan, teardown);
	g_test_add ("/deliver/commit/last-transaction-with-result", Fixture, NULL, setup, test_last_transaction_with_result, teardown);
	g_test_add ("/deliver/circuit/wall-clock-steps", Fixture, NULL, setup, test_circuit_wall_clock_steps, teardown);
	return g_test_run ();
}
