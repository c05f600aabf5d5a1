/* test-postfix-client.c — Postfix as a client of stagecoach's ingress, through the
 * real binary: a private Postfix relaying to the SMTP listener (relayhost) and
 * delivering to the LMTP listener (default_transport = lmtp:inet:… and
 * lmtp:unix:…).  Mail submitted to Postfix (with swaks) must be stored by
 * stagecoach (`list --json`), once per message, and reach stagecoach's
 * smtp-sink exactly once per recipient; Postfix's maillog must show every
 * recipient sent.  Skips without root, Postfix, smtp-sink or swaks. */
#include "config.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "sc-test-postfix.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

#define N_MESSAGES 5
#define LIST_ID "clients.example.org"
#define WAIT_MS (60 * 1000)

static const char *const recipients[] = {
	"ann@a.example", "bob@b.example", "cy@c.example.net", NULL,
};
#define N_PAIRS (N_MESSAGES * (G_N_ELEMENTS (recipients) - 1))

typedef enum {
	DOOR_SMTP,      /* Postfix relayhost = [127.0.0.1]:smtp */
	DOOR_LMTP_INET, /* default_transport = lmtp:inet:127.0.0.1:lmtp */
	DOOR_LMTP_UNIX, /* default_transport = lmtp:unix:/path */
} Door;

typedef struct {
	char *dir;
	char *config;
	char *log;
	char *lmtp_path; /* (nullable) the unix socket */
	guint16 smtp_port;
	guint16 lmtp_port;
	GSubprocess *daemon;
	ScTestSink *sink;
	ScTestPostfix *postfix;
} Fixture;

static char *
read_log (const char *path)
{
	char *contents = NULL;

	if (!g_file_get_contents (path, &contents, NULL, NULL))
		return g_strdup ("");
	return contents;
}

static gboolean
wait_socket (const char *path, GSubprocess *process, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
	struct stat st;

	for (;;) {
		if (stat (path, &st) == 0 && S_ISSOCK (st.st_mode))
			return TRUE;
		if (g_subprocess_get_identifier (process) == NULL || g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (20 * 1000);
	}
}

/* stagecoach run with both listeners, delivering to an smtp-sink.  FALSE
 * (test skipped or failed, with the reason) when something is missing. */
static gboolean
start_stagecoach (Fixture *f, Door door)
{
	g_autofree char *url = NULL;
	g_autofree char *lmtp = NULL;
	g_autofree char *text = NULL;
	gboolean listening;

	f->sink = sc_test_sink_start (NULL);
	if (f->sink == NULL)
		return FALSE;
	f->dir = sc_test_make_tmpdir ("sc-postfix-client");
	/* Postfix's lmtp client (user postfix) must reach the socket */
	g_assert_no_errno (chmod (f->dir, 0755));
	f->smtp_port = sc_test_free_port ();
	if (door == DOOR_LMTP_UNIX) {
		f->lmtp_path = g_build_filename (f->dir, "lmtp.sock", NULL);
		lmtp = g_strdup (f->lmtp_path);
	} else {
		f->lmtp_port = sc_test_free_port ();
		lmtp = g_strdup_printf ("127.0.0.1:%u", f->lmtp_port);
	}
	url = sc_test_sink_get_url (f->sink);
	text = g_strdup_printf ("[stagecoach]\nspool=%s/spool\n"
				"[retry]\ninitial=1s\nmax-delay=2s\n"
				"[admin]\nlisten=\n"
				"[ingress]\nsmtp=127.0.0.1:%u\nlmtp=%s\n"
				"[mailer:sink]\nurl=%s\nstarttls=off\n"
				"[list:" LIST_ID "]\npipeline=deliver\n",
				f->dir, f->smtp_port, lmtp, url);
	f->config = sc_test_write_file (f->dir, "stagecoach.conf", text);
	f->log = g_build_filename (f->dir, "daemon.log", NULL);
	f->daemon = sc_test_spawn (f->config, f->log, "run", NULL);
	listening = sc_test_wait_port (f->smtp_port, f->daemon, 20000);
	if (listening && door == DOOR_LMTP_UNIX)
		listening = wait_socket (f->lmtp_path, f->daemon, 20000);
	else if (listening)
		listening = sc_test_wait_port (f->lmtp_port, f->daemon, 20000);
	if (!listening) {
		g_autofree char *log = read_log (f->log);
		g_test_message ("daemon log:\n%s", log);
		g_test_fail_printf ("stagecoach run does not listen on [ingress] smtp=127.0.0.1:%u "
				    "lmtp=%s (no SMTP/LMTP listener in this build?)",
				    f->smtp_port, lmtp);
		return FALSE;
	}
	return TRUE;
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
	g_clear_pointer (&f->postfix, sc_test_postfix_free);
	if (f->daemon != NULL) {
		g_subprocess_send_signal (f->daemon, SIGTERM);
		g_subprocess_wait (f->daemon, NULL, NULL);
		g_clear_object (&f->daemon);
	}
	g_clear_pointer (&f->sink, sc_test_sink_free);
	if (f->dir != NULL)
		sc_test_remove_tree (f->dir);
	g_free (f->dir);
	g_free (f->config);
	g_free (f->log);
	g_free (f->lmtp_path);
}

/* swaks into Postfix's smtpd: N_MESSAGES messages to every recipient. */
static void
submit (Fixture *f, const char *tag)
{
	g_autofree char *swaks = g_find_program_in_path ("swaks");
	g_autofree char *server = g_strdup_printf ("127.0.0.1:%u", sc_test_postfix_get_port (f->postfix));
	g_autofree char *to = g_strjoinv (",", (char **) recipients);

	g_assert_nonnull (swaks);
	for (guint i = 1; i <= N_MESSAGES; i++) {
		g_autofree char *name = g_strdup_printf ("%s-%u.eml", tag, i);
		g_autofree char *message = g_strdup_printf (
		    "From: Poster <poster@example.net>\r\n"
		    "To: Clients <clients@example.org>\r\n"
		    "Subject: postfix client %s %u\r\n"
		    "Message-ID: <pfc-%s-%u@example.net>\r\n"
		    "List-Id: Clients <" LIST_ID ">\r\n"
		    "\r\n"
		    "through Postfix to stagecoach\r\n",
		    tag, i, tag, i);
		g_autofree char *path = sc_test_write_file (f->dir, name, message);
		g_autofree char *data = g_strconcat ("@", path, NULL);
		g_autofree char *out = NULL;
		g_autofree char *err = NULL;
		g_autoptr(GError) error = NULL;
		const char *argv[] = {swaks, "--server", server, "--helo", "client.example",
				      "--from", "poster@example.net", "--to", to,
				      "--data", data, "--timeout", "30", NULL};
		int status = 0;

		g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
			      &status, &error);
		g_assert_no_error (error);
		if (!g_spawn_check_wait_status (status, NULL))
			g_error ("swaks into Postfix failed:\n%s%s", out, err);
	}
}

/* Every tagged Message-ID is stored exactly once (`list --json`). */
static void
assert_stored (Fixture *f, const char *tag)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	g_autofree char *prefix = g_strdup_printf ("<pfc-%s-", tag);
	guint counts[N_MESSAGES + 1] = {0};
	JsonArray *array;

	g_assert_cmpint (sc_test_run (f->config, NULL, &out, &err, "list", "--json", "--limit", "0", NULL),
			 ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	array = json_node_get_array (json_parser_get_root (parser));
	for (guint i = 0; i < json_array_get_length (array); i++) {
		JsonObject *message = json_array_get_object_element (array, i);
		const char *id = json_object_get_string_member (message, "message_id");
		guint64 n = 0;

		g_assert_cmpstr (json_object_get_string_member (message, "list"), ==, LIST_ID);
		if (id == NULL || !g_str_has_prefix (id, prefix))
			continue;
		n = g_ascii_strtoull (id + strlen (prefix), NULL, 10);
		g_assert_cmpuint (n, >=, 1);
		g_assert_cmpuint (n, <=, N_MESSAGES);
		counts[n]++;
	}
	for (guint n = 1; n <= N_MESSAGES; n++) {
		if (counts[n] != 1)
			g_test_message ("list --json:\n%s", out);
		g_assert_cmpuint (counts[n], ==, 1);
	}
}

/* (Message-ID, recipient) pairs at the sink, counted; waits for all of them. */
static void
assert_delivered_once (Fixture *f, const char *tag)
{
	g_autofree char *prefix = g_strdup_printf ("Message-ID: <pfc-%s-", tag);
	gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
	g_autoptr(GHashTable) pairs = NULL;
	guint total = 0;

	for (gboolean last = FALSE;; ) {
		g_autoptr(GPtrArray) dumps = sc_test_sink_get_messages (f->sink);

		g_clear_pointer (&pairs, g_hash_table_unref);
		pairs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
		total = 0;
		for (guint i = 0; i < dumps->len; i++) {
			ScTestSinkMessage *dump = dumps->pdata[i];
			g_autofree char *data = NULL;
			const char *id;
			gsize length = 0;
			const char *bytes;

			if (!dump->complete)
				continue;
			bytes = g_bytes_get_data (dump->data, &length);
			data = g_strndup (bytes, length);
			id = strstr (data, prefix);
			if (id == NULL)
				continue;
			for (guint r = 0; r < dump->recipients->len; r++) {
				char *key = g_strdup_printf ("%.*s %s", (int) strcspn (id, "\r\n"), id,
							     (const char *) dump->recipients->pdata[r]);
				guint seen = GPOINTER_TO_UINT (g_hash_table_lookup (pairs, key));
				g_hash_table_replace (pairs, key, GUINT_TO_POINTER (seen + 1));
				total++;
			}
		}
		if (last)
			break;
		if (total >= N_PAIRS ||
		    g_get_monotonic_time () >= deadline) {
			/* all there (or never): look once more a moment later for late duplicates */
			g_usleep (500 * 1000);
			last = TRUE;
			continue;
		}
		g_usleep (50 * 1000);
	}
	if (total != g_hash_table_size (pairs) || total != N_PAIRS) {
		g_autofree char *log = read_log (f->log);
		g_test_message ("daemon log:\n%s", log);
	}
	g_assert_cmpuint (g_hash_table_size (pairs), ==, N_PAIRS);
	g_assert_cmpuint (total, ==, g_hash_table_size (pairs));
}

/* How many recipients Postfix's maillog says @client (smtp or lmtp) sent via @relay. */
static guint
count_postfix_sent (const char *log, const char *client, const char *relay)
{
	g_auto(GStrv) lines = g_strsplit (log, "\n", -1);
	g_autofree char *daemon = g_strdup_printf ("postfix/%s[", client);
	guint sent = 0;

	for (guint i = 0; lines[i] != NULL; i++) {
		if (strstr (lines[i], daemon) == NULL || strstr (lines[i], " status=sent (") == NULL)
			continue;
		if (strstr (lines[i], relay) == NULL)
			continue;
		for (guint r = 0; recipients[r] != NULL; r++) {
			g_autofree char *to = g_strdup_printf (" to=<%s>,", recipients[r]);
			if (strstr (lines[i], to) != NULL)
				sent++;
		}
	}
	return sent;
}

/* Postfix's maillog: every recipient "status=sent".  postlogd writes the
 * file on its own schedule: the last lines may land after the queue is
 * empty, so the log is read until they are there (or the wait is over). */
static void
assert_postfix_sent (Fixture *f, const char *client, const char *relay)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
	g_autofree char *log = NULL;
	guint sent = 0;

	for (;;) {
		g_free (log);
		log = sc_test_postfix_get_log (f->postfix);
		sent = count_postfix_sent (log, client, relay);
		if (sent >= N_PAIRS || g_get_monotonic_time () >= deadline)
			break;
		g_usleep (100 * 1000);
	}
	if (sent != N_PAIRS)
		g_test_message ("postfix maillog:\n%s", log);
	g_assert_cmpuint (sent, ==, N_PAIRS);
}

static void
run_case (Fixture *f, Door door, const char *tag)
{
	g_autofree char *transport = NULL;
	g_autofree char *relay = NULL;
	ScTestPostfixOptions options = {0};
	g_autofree char *swaks = g_find_program_in_path ("swaks");

	if (swaks == NULL) {
		g_test_skip ("swaks is not installed (scripts/deps.sh: install_deps test)");
		return;
	}
	if (!start_stagecoach (f, door))
		return;
	switch (door) {
	case DOOR_SMTP:
		options.relay_port = f->smtp_port;
		relay = g_strdup_printf (" relay=127.0.0.1[127.0.0.1]:%u,", f->smtp_port);
		break;
	case DOOR_LMTP_INET:
		transport = g_strdup_printf ("lmtp:inet:127.0.0.1:%u", f->lmtp_port);
		relay = g_strdup_printf (" relay=127.0.0.1[127.0.0.1]:%u,", f->lmtp_port);
		break;
	case DOOR_LMTP_UNIX:
		transport = g_strdup_printf ("lmtp:unix:%s", f->lmtp_path);
		relay = g_strdup_printf ("[%s], ", f->lmtp_path); /* relay=HOST[PATH] */
		break;
	}
	options.transport = transport;
	f->postfix = sc_test_postfix_start (&options);
	if (f->postfix == NULL)
		return;
	submit (f, tag);
	if (!sc_test_postfix_wait_queue_empty (f->postfix, WAIT_MS)) {
		g_autofree char *log = sc_test_postfix_get_log (f->postfix);
		g_autofree char *daemon_log = read_log (f->log);
		g_test_message ("postfix maillog:\n%s\ndaemon log:\n%s", log, daemon_log);
		g_assert_not_reached ();
	}
	assert_postfix_sent (f, door == DOOR_SMTP ? "smtp" : "lmtp", relay);
	assert_stored (f, tag);
	assert_delivered_once (f, tag);
}

static void
test_relayhost (Fixture *f, gconstpointer data)
{
	run_case (f, DOOR_SMTP, "relay");
}

static void
test_lmtp_inet (Fixture *f, gconstpointer data)
{
	run_case (f, DOOR_LMTP_INET, "lmtp");
}

static void
test_lmtp_unix (Fixture *f, gconstpointer data)
{
	run_case (f, DOOR_LMTP_UNIX, "lmtpunix");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add ("/postfix-client/relayhost", Fixture, NULL, NULL, test_relayhost, fixture_teardown);
	g_test_add ("/postfix-client/lmtp-inet", Fixture, NULL, NULL, test_lmtp_inet, fixture_teardown);
	g_test_add ("/postfix-client/lmtp-unix", Fixture, NULL, NULL, test_lmtp_unix, fixture_teardown);
	return g_test_run ();
}
