/* test-handoff.c — the local hand-off through the real binary and a real
 * `stagecoach run`: inject and sendmail give the message to the daemon
 * over SPOOL/ingress.sock and answer after its commit, exactly as the
 * direct path answers; without a daemon (none, or killed leaving its
 * socket) they write the spool themselves. */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-handoff-client.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *socket;
	char *log;
	GSubprocess *daemon;
	guint n_daemons;
} Fixture;

static const char *message_text = "From: Alice <alice@example.org>\n"
				  "To: test@example.org\n"
				  "Subject: =?utf-8?q?caf=C3=A9?= talk\n"
				  "Message-ID: <m1@example.org>\n"
				  "\n"
				  "Hello.\n";

static void
write_config (Fixture *fixture, const char *extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "busy-timeout=5s\n"
						 "max-message-size=1M\n"
						 "%s"
						 "[admin]\n"
						 "listen=\n"
						 "[list:test.example.org]\n"
						 "pipeline=archive\n"
						 "archive=\n"
						 "[list:other.example.org]\n"
						 "pipeline=archive\n"
						 "archive=\n",
						 extra != NULL ? extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-handoff");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->socket = g_build_filename (fixture->dir, "spool", SC_HANDOFF_SOCKET, NULL);
	write_config (fixture, NULL);
}

static void
stop_daemon (Fixture *fixture, int signal_number)
{
	if (fixture->daemon == NULL)
		return;
	g_subprocess_send_signal (fixture->daemon, signal_number);
	g_subprocess_wait (fixture->daemon, NULL, NULL);
	g_clear_object (&fixture->daemon);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	stop_daemon (fixture, SIGTERM);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->socket);
	g_free (fixture->log);
}

static char *
read_log (Fixture *fixture)
{
	char *text = NULL;

	if (fixture->log == NULL || !g_file_get_contents (fixture->log, &text, NULL, NULL))
		return g_strdup ("");
	return text;
}

static guint
count_in_log (Fixture *fixture, const char *needle)
{
	g_autofree char *text = read_log (fixture);
	guint n = 0;

	for (const char *p = strstr (text, needle); p != NULL; p = strstr (p + 1, needle))
		n++;
	return n;
}

/* Waits (generously: a loaded machine) until the log has @n lines with @needle. */
static gboolean
wait_log (Fixture *fixture, const char *needle, guint n)
{
	for (guint i = 0; i < 300; i++) {
		if (count_in_log (fixture, needle) >= n)
			return TRUE;
		g_usleep (G_USEC_PER_SEC / 20);
	}
	return FALSE;
}

static gboolean
is_socket (const char *path)
{
	GStatBuf st;

	return g_lstat (path, &st) == 0 && S_ISSOCK (st.st_mode);
}

/* `run` with --verbose: the log names every hand-off it answered. */
static void
start_daemon (Fixture *fixture)
{
	/* a log per daemon: the lines counted are this one's */
	g_free (fixture->log);
	fixture->log = g_strdup_printf ("%s/run-%u.log", fixture->dir, ++fixture->n_daemons);
	fixture->daemon = sc_test_spawn (fixture->config, fixture->log, "--verbose", "run", NULL);
	for (guint i = 0; i < 600 && !(is_socket (fixture->socket) &&
				       count_in_log (fixture, "hand-off: listening") >= 1); i++)
		g_usleep (G_USEC_PER_SEC / 20);
	if (!is_socket (fixture->socket))
		g_error ("the daemon made no %s; see %s", fixture->socket, fixture->log);
}

static gint64
total (Fixture *fixture)
{
	return sc_test_count (fixture->config, "total");
}

static int
inject (Fixture *fixture, const char *text, char **out, char **err, const char *recipient)
{
	g_autoptr(GBytes) input = g_bytes_new (text, strlen (text));

	return sc_test_run (fixture->config, input, out, err, "inject", "--list", "test.example.org",
			    recipient, NULL);
}

/* Through the daemon: the queue id is printed after the commit, so the
 * message is there when inject returns. */
static void
test_inject (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));

	start_daemon (fixture);
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, &err, "inject", "--list",
				      "test.example.org", "--from", "owner@example.org",
				      "a@example.net", "b@example.com", NULL), ==, 0);
	g_assert_cmpstr (err, ==, "");
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_strstrip (out);
	shown = sc_test_show (fixture->config, out);
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "test.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "subject"), ==, "café talk");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "owner@example.org");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "recipients")), ==, 2);
	/* it went through the socket: the daemon's acceptor took it from the local door */
	g_assert_cmpuint (count_in_log (fixture, "ingress local from uid"), ==, 1);
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 1);
	/* global options before the command, as the full program takes them */
	g_clear_pointer (&out, g_free);
	{
		g_autoptr(GBytes) other = g_bytes_new_static ("Subject: x\n\nbody\n", 17);
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
		g_autoptr(GSubprocess) process = NULL;
		g_autoptr(GBytes) stdout_bytes = NULL;
		g_autoptr(GError) error = NULL;
		g_subprocess_launcher_unsetenv (launcher, "STAGECOACH_CONFIG");
		process = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "-v", "--config",
						       fixture->config, "inject", "-l", "test.example.org",
						       "c@example.org", NULL);
		g_assert_no_error (error);
		sc_test_communicate (process, other, &stdout_bytes, NULL, &error);
		g_assert_no_error (error);
		g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
		g_assert_cmpuint (g_bytes_get_size (stdout_bytes), ==, 17);
	}
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 2);
	g_assert_cmpint (total (fixture), ==, 2);
}

/* sendmail -t through the daemon: recipients from the headers, Bcc
 * removed, the "." line ends the message, List-Id picks the list; and
 * the binary installed as "sendmail". */
static void
test_sendmail (Fixture *fixture, gconstpointer data)
{
	const char *text = "From: a@example.org\n"
			   "To: One <one@example.org>, two@example.net\n"
			   "Cc: three@example.com\n"
			   "Bcc: hidden@example.org,\n  also-hidden@example.org\n"
			   "List-Id: Other list <other.example.org>\n"
			   "Message-ID: <sendmail-1@example.org>\n"
			   "Subject: via sendmail\n"
			   "\n"
			   "body\n"
			   ".\n"
			   "after the dot\n";
	g_autoptr(GBytes) input = g_bytes_new_static (text, strlen (text));
	g_autofree char *out = NULL;
	g_autofree char *raw = NULL;
	g_autofree char *link = g_build_filename (fixture->dir, "sendmail", NULL);
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	const char *id;

	start_daemon (fixture);
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "sendmail", "-t", "-f",
				      "bounces@example.org", "-F", "Ignored Name", "-oem", NULL), ==, 0);
	g_assert_cmpstr (out, ==, "");
	g_assert_cmpuint (count_in_log (fixture, "sendmail answered, exit 0"), ==, 1);
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "list", "--json", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	id = json_object_get_string_member (
	    json_array_get_object_element (json_node_get_array (json_parser_get_root (parser)), 0), "id");
	shown = sc_test_show (fixture->config, id);
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "other.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "bounces@example.org");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "recipients")), ==, 5);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", id, NULL), ==, 0);
	g_assert_null (strstr (raw, "hidden"));
	g_assert_null (strstr (raw, "after the dot"));
	g_assert_nonnull (strstr (raw, "Subject: via sendmail\n"));
	/* called "sendmail" (a symlink to the binary): the whole line is sendmail's */
	g_assert_cmpint (symlink (sc_test_binary (), link), ==, 0);
	{
		const char *second = "To: four@example.org\nList-Id: <test.example.org>\nSubject: link\n\nbody\n";
		g_autoptr(GBytes) second_input = g_bytes_new_static (second, strlen (second));
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
		g_autoptr(GSubprocess) process = NULL;
		g_autoptr(GBytes) stdout_bytes = NULL;
		g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
		process = g_subprocess_launcher_spawn (launcher, &error, link, "-t", "-oi", NULL);
		g_assert_no_error (error);
		sc_test_communicate (process, second_input, &stdout_bytes, NULL, &error);
		g_assert_no_error (error);
		g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
		g_assert_cmpuint (g_bytes_get_size (stdout_bytes), ==, 0);
	}
	g_assert_cmpuint (count_in_log (fixture, "sendmail answered, exit 0"), ==, 2);
	g_assert_cmpint (total (fixture), ==, 2);
}

typedef struct {
	const char *input; /* NULL: message_text */
	gsize input_size;  /* 0: strlen */
	const char *args[8];
} Case;

static const char nul_header[] = "Subject: a\0b\n\nbody\n";
static const char binary[] = "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0";

static const Case refusals[] = {
    {"", 0, {"inject", "--list", "test.example.org", "a@example.org"}},
    {binary, sizeof binary - 1, {"inject", "--list", "test.example.org", "a@example.org"}},
    {"\nJust a body\n", 0, {"inject", "--list", "test.example.org", "a@example.org"}},
    {nul_header, sizeof nul_header - 1, {"inject", "--list", "test.example.org", "a@example.org"}},
    {NULL, 0, {"inject", "--list", "test.example.org"}},
    {NULL, 0, {"inject", "--list", "test.example.org", "nobody"}},
    {NULL, 0, {"inject", "--list", "test.example.org", "a@example.org\r\nRCPT TO:<x@evil.example>"}},
    {NULL, 0, {"inject", "--list", "test.example.org", "ok@example.org", "<x>@example.org"}},
    {NULL, 0, {"inject", "--list", "nope.example.org", "a@example.org"}},
    {NULL, 0, {"inject", "a@example.org"}},
    {NULL, 0, {"inject", "--list", "test.example.org", "--from", "a b@example.org", "a@example.org"}},
    {NULL, 0, {"inject", "--bogus", "--list", "test.example.org", "a@example.org"}},
    {NULL, 0, {"inject", "--list"}},
    {NULL, 0, {"sendmail", "-oi", "--list", "typo.example.org", "x@example.org"}},
    {"Subject: x\n\nbody\n", 0, {"sendmail", "x@example.org"}},
    {"Subject: x\nList-Id: <nolist.example.org>\n\nbody\n", 0, {"sendmail", "x@example.org"}},
    {NULL, 0, {"sendmail", "-X", "x@example.org"}},
    {NULL, 0, {"sendmail", "-f"}},
    {NULL, 0, {"sendmail", "-t", "-i"}},
};

typedef struct {
	int status;
	char *out;
	char *err;
} Outcome;

static void
run_case (Fixture *fixture, const Case *c, GBytes *big, Outcome *outcome)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GBytes) out = NULL;
	g_autoptr(GBytes) err = NULL;
	g_autoptr(GError) error = NULL;

	if (big != NULL)
		input = g_bytes_ref (big);
	else if (c->input == NULL)
		input = g_bytes_new_static (message_text, strlen (message_text));
	else
		input = g_bytes_new_static (c->input, c->input_size != 0 ? c->input_size : strlen (c->input));
	/* stdin from a file: a command refused (for its arguments, its size)
	 * exits before reading all of it, and writing to its pipe would then
	 * fail (EPIPE) at random */
	{
		g_autofree char *path = g_build_filename (fixture->dir, "case-input", NULL);
		g_assert_true (g_file_set_contents (path, g_bytes_get_data (input, NULL),
						    (gssize) g_bytes_get_size (input), NULL));
		g_subprocess_launcher_set_stdin_file_path (launcher, path);
	}
	g_ptr_array_add (argv, (gpointer) sc_test_binary ());
	for (guint i = 0; i < G_N_ELEMENTS (c->args) && c->args[i] != NULL; i++)
		g_ptr_array_add (argv, (gpointer) c->args[i]);
	g_ptr_array_add (argv, NULL);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	g_subprocess_communicate (process, NULL, NULL, &out, &err, &error);
	g_assert_no_error (error);
	outcome->status = g_subprocess_get_exit_status (process);
	outcome->out = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
	outcome->err = g_strndup (g_bytes_get_data (err, NULL), g_bytes_get_size (err));
}

/* Every refusal of test-cli.c's inject and sendmail cases: the same exit
 * code and the same text with and without a daemon, nothing stored. */
static void
test_refusals_same (Fixture *fixture, gconstpointer data)
{
	guint n = G_N_ELEMENTS (refusals) + 1;
	g_autofree Outcome *direct = g_new0 (Outcome, n);
	g_autofree Outcome *daemon = g_new0 (Outcome, n);
	static const Case too_big = {NULL, 0, {"inject", "--list", "test.example.org", "a@example.org"}};
	GString *text = g_string_new ("From: a@example.org\nSubject: big\n\n");
	g_autoptr(GBytes) big = NULL;

	while (text->len < 2 * 1024 * 1024)
		g_string_append (text, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef012345\n");
	big = g_string_free_to_bytes (text);
	for (int pass = 0; pass < 2; pass++) {
		Outcome *outcomes = pass == 0 ? direct : daemon;
		if (pass == 1)
			start_daemon (fixture);
		for (guint i = 0; i < n; i++) {
			if (i < G_N_ELEMENTS (refusals))
				run_case (fixture, &refusals[i], NULL, &outcomes[i]);
			else
				run_case (fixture, &too_big, big, &outcomes[i]);
		}
	}
	for (guint i = 0; i < n; i++) {
		g_test_message ("case %u: %d %s", i, direct[i].status, direct[i].err);
		g_assert_cmpint (direct[i].status, !=, 0);
		g_assert_cmpint (daemon[i].status, ==, direct[i].status);
		g_assert_cmpstr (daemon[i].out, ==, direct[i].out);
		g_assert_cmpstr (daemon[i].err, ==, direct[i].err);
		g_free (direct[i].out);
		g_free (direct[i].err);
		g_free (daemon[i].out);
		g_free (daemon[i].err);
	}
	/* the daemon answered every one of them (none went the direct way) */
	g_assert_cmpuint (count_in_log (fixture, " answered, exit "), ==, n);
	g_assert_cmpuint (count_in_log (fixture, "told to write the spool itself"), ==, 0);
	g_assert_cmpint (total (fixture), ==, 0);
}

/* No daemon: no socket, inject writes the spool itself. */
static void
test_no_daemon (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;

	g_assert_cmpint (inject (fixture, message_text, &out, NULL, "a@example.org"), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_assert_false (g_file_test (fixture->socket, G_FILE_TEST_EXISTS));
	g_assert_cmpint (total (fixture), ==, 1);
}

/* A caller that never saw the answer tries again (75 after the daemon
 * went away, a lost reply): the resend is not stored again, and inject
 * prints the queue id the message went to the first time — through the
 * daemon and written directly. */
static void
test_resend (Fixture *fixture, gconstpointer data)
{
	g_autofree char *first = NULL;
	g_autofree char *again = NULL;
	g_autofree char *direct = NULL;

	start_daemon (fixture);
	g_assert_cmpint (inject (fixture, message_text, &first, NULL, "a@example.org"), ==, 0);
	g_assert_cmpint (inject (fixture, message_text, &again, NULL, "A@example.org"), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", first, 0, 0));
	g_assert_cmpstr (again, ==, first);
	g_assert_cmpint (total (fixture), ==, 1);
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 2);
	stop_daemon (fixture, SIGTERM);
	g_assert_false (g_file_test (fixture->socket, G_FILE_TEST_EXISTS));
	g_assert_cmpint (inject (fixture, message_text, &direct, NULL, "a@example.org"), ==, 0);
	g_assert_cmpstr (direct, ==, first);
	g_assert_cmpint (total (fixture), ==, 1);
}

/* A daemon killed with SIGKILL leaves its socket: inject still works (the
 * connection is refused, it writes the spool itself), and the next daemon
 * replaces the socket and takes messages again. */
static void
test_stale_socket (Fixture *fixture, gconstpointer data)
{
	GStatBuf before;
	GStatBuf after;
	g_autofree char *out = NULL;

	start_daemon (fixture);
	g_assert_cmpint (g_lstat (fixture->socket, &before), ==, 0);
	stop_daemon (fixture, SIGKILL);
	g_assert_true (is_socket (fixture->socket)); /* left behind */
	g_assert_cmpint (inject (fixture, message_text, &out, NULL, "a@example.org"), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_assert_cmpint (total (fixture), ==, 1);
	g_clear_pointer (&out, g_free);
	start_daemon (fixture);
	g_assert_cmpint (g_lstat (fixture->socket, &after), ==, 0);
	g_assert_true (before.st_ino != after.st_ino);
	g_assert_cmpint (inject (fixture, message_text, &out, NULL, "b@example.org"), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 1);
	g_assert_cmpint (total (fixture), ==, 2);
	/* a clean stop removes it */
	stop_daemon (fixture, SIGTERM);
	g_assert_false (g_file_test (fixture->socket, G_FILE_TEST_EXISTS));
}

static void
append_netstring (GString *out, const char *text, gsize size)
{
	g_string_append_printf (out, "%" G_GSIZE_FORMAT ":", size);
	g_string_append_len (out, text, size);
	g_string_append_c (out, ',');
}

/* A client that dies in the middle of the message: the daemon had said
 * "go" and got half a message, then EOF without the end mark.  Nothing
 * is stored.  (The protocol by hand: a dying client is exactly this.) */
static void
test_client_dies (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketAddress) address = g_unix_socket_address_new (fixture->socket);
	g_autoptr(GSocketConnection) connection = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *config_text = NULL;
	gsize config_size = 0;
	g_autofree char *hash = NULL;
	GString *request = g_string_new (NULL);
	char reply[16] = {0};
	gsize got = 0;

	start_daemon (fixture);
	g_assert_true (g_file_get_contents (fixture->config, &config_text, &config_size, NULL));
	hash = g_strdup_printf ("%016" G_GINT64_MODIFIER "x", (guint64) sc_handoff_hash (config_text, config_size));
	connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, &error);
	g_assert_no_error (error);
	append_netstring (request, SC_HANDOFF_GREETING, strlen (SC_HANDOFF_GREETING));
	append_netstring (request, hash, strlen (hash));
	append_netstring (request, "inject", 6);
	append_netstring (request, "3", 1);
	append_netstring (request, "--list", 6);
	append_netstring (request, "test.example.org", 16);
	append_netstring (request, "a@example.org", 13);
	g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), request->str,
				   request->len, NULL, NULL, &error);
	g_assert_no_error (error);
	g_input_stream_read_all (g_io_stream_get_input_stream (G_IO_STREAM (connection)), reply, 5, &got,
				 NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (reply, ==, "2:go,");
	g_string_truncate (request, 0);
	append_netstring (request, message_text, 40); /* half of it, no end mark */
	g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), request->str,
				   request->len, NULL, NULL, &error);
	g_assert_no_error (error);
	g_string_free (request, TRUE);
	g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
	g_assert_true (wait_log (fixture, "went away in the middle of a message", 1));
	g_assert_cmpint (total (fixture), ==, 0);
	/* and the daemon goes on taking messages */
	g_assert_cmpint (inject (fixture, message_text, NULL, NULL, "a@example.org"), ==, 0);
	g_assert_cmpint (total (fixture), ==, 1);
}

/* The daemon killed while inject streams a message to it: inject still
 * reads its standard input to the end, so the list software writing it
 * sees exit 75 (try again) rather than EPIPE or SIGPIPE — as when inject
 * writes the spool itself.  (The crash suite met this with SIGKILLs.) */
static void
test_daemon_dies (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
				       G_SUBPROCESS_FLAGS_STDERR_SILENCE);
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) text = g_string_new (message_text);
	GOutputStream *in;
	gsize first = 512 * 1024;

	while (text->len < 4 * 1024 * 1024)
		g_string_append (text, "a line of the body, long enough to be a line of a post\n");
	start_daemon (fixture);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
	process = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "inject", "--list",
					       "test.example.org", "a@example.org", NULL);
	g_assert_no_error (error);
	in = g_subprocess_get_stdin_pipe (process);
	/* more than a pipe holds: inject has had the daemon's "go" and streams */
	g_assert_true (g_output_stream_write_all (in, text->str, first, NULL, NULL, &error));
	g_assert_no_error (error);
	stop_daemon (fixture, SIGKILL);
	g_output_stream_write_all (in, text->str + first, text->len - first, NULL, NULL, &error);
	g_assert_no_error (error);
	g_assert_true (g_output_stream_close (in, NULL, &error));
	g_assert_true (g_subprocess_wait (process, NULL, &error));
	g_assert_true (g_subprocess_get_if_exited (process));
	g_assert_cmpint (g_subprocess_get_exit_status (process), ==, EX_TEMPFAIL);
}

#define CALLERS 8
#define PER_CALLER 50

/* 8 parallel callers × 50 messages through the daemon: every one stored
 * exactly once, every queue id printed distinct. */
static void
test_concurrent (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	start_daemon (fixture);
	for (guint round = 0; round < PER_CALLER; round++) {
		GSubprocess *processes[CALLERS];
		for (guint i = 0; i < CALLERS; i++) {
			g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (
			    G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
			g_autoptr(GError) error = NULL;
			g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
			processes[i] = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "inject",
								    "--list", "test.example.org", "a@example.org", NULL);
			g_assert_no_error (error);
		}
		for (guint i = 0; i < CALLERS; i++) {
			g_autofree char *text = g_strdup_printf ("Message-ID: <c%u.%u@example.org>\nSubject: %u\n\nbody\n",
								 round, i, i);
			g_autoptr(GBytes) input = g_bytes_new_take (text, strlen (text));
			g_autoptr(GError) error = NULL;
			g_autofree char *out = NULL;
			text = NULL;
			g_subprocess_communicate_utf8 (processes[i], g_bytes_get_data (input, NULL), NULL, &out,
						       NULL, &error);
			g_assert_no_error (error);
			g_assert_cmpint (g_subprocess_get_exit_status (processes[i]), ==, 0);
			g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
			g_assert_true (g_hash_table_add (ids, g_strstrip (g_steal_pointer (&out))));
			g_object_unref (processes[i]);
		}
	}
	g_assert_cmpuint (g_hash_table_size (ids), ==, CALLERS * PER_CALLER);
	g_assert_cmpint (total (fixture), ==, CALLERS * PER_CALLER);
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, CALLERS * PER_CALLER);
}

/* Who may connect: the socket is 0600 and the daemon's user's, like
 * spool.db (only they can write the spool without a daemon either). */
static void
test_permissions (Fixture *fixture, gconstpointer data)
{
	GStatBuf st;
	mode_t saved = umask (0); /* inherited by the daemon: the worst case */

	start_daemon (fixture);
	umask (saved);
	g_assert_cmpint (g_lstat (fixture->socket, &st), ==, 0);
	g_assert_true (S_ISSOCK (st.st_mode));
	g_assert_cmpuint (st.st_mode & 07777, ==, 0600);
	g_assert_cmpuint (st.st_uid, ==, getuid ());
}

/* The configuration changed and the daemon was not told yet: inject uses
 * the file it reads (a new list is there at once), writing the spool
 * itself; after SIGHUP the daemon takes it again. */
static void
test_config_changed (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autofree char *err = NULL;

	start_daemon (fixture);
	write_config (fixture, "[list:new.example.org]\npipeline=archive\narchive=\n");
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
				      "new.example.org", "a@example.org", NULL), ==, 0);
	/* told so (the front, then the full program it runs asks once more) */
	g_assert_cmpuint (count_in_log (fixture, "told to write the spool itself"), >=, 1);
	g_assert_cmpuint (count_in_log (fixture, "inject answered"), ==, 0);
	g_assert_cmpint (total (fixture), ==, 1);
	g_subprocess_send_signal (fixture->daemon, SIGHUP);
	g_assert_true (wait_log (fixture, "configuration reloaded from", 1));
	/* the reload is done when the next hand-off is answered by the daemon */
	for (guint i = 0; i < 100 && count_in_log (fixture, "inject answered, exit 0") == 0; i++) {
		g_autofree char *text = g_strdup_printf ("Message-ID: <hup%u@example.org>\n\nbody\n", i);
		g_autoptr(GBytes) again = g_bytes_new (text, strlen (text));
		g_assert_cmpint (sc_test_run (fixture->config, again, NULL, NULL, "inject", "--list",
					      "new.example.org", "a@example.org", NULL), ==, 0);
		if (count_in_log (fixture, "inject answered, exit 0") == 0)
			g_usleep (G_USEC_PER_SEC / 10);
	}
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 1);
}

/* spool=sqlite:FOLDER names the same folder as a bare FOLDER: the lean
 * front finds the daemon's socket in it and hands over. */
static void
test_sqlite_scheme (Fixture *fixture, gconstpointer data)
{
	g_autofree char *text = NULL;
	g_autofree char *out = NULL;
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_auto(GStrv) parts = NULL;

	g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
	parts = g_strsplit (text, "spool=spool\n", 2);
	g_clear_pointer (&text, g_free);
	text = g_strjoinv ("spool=sqlite:spool\n", parts);
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
	start_daemon (fixture);
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "inject", "--list",
				      "test.example.org", "a@example.net", NULL), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_assert_cmpuint (count_in_log (fixture, "inject answered, exit 0"), ==, 1);
	g_assert_cmpint (total (fixture), ==, 1);
}

int
main (int argc, char **argv)
{
	/* a write to a command that stopped reading: an error to assert on */
	signal (SIGPIPE, SIG_IGN);
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/handoff/inject", Fixture, NULL, setup, test_inject, teardown);
	g_test_add ("/handoff/sendmail", Fixture, NULL, setup, test_sendmail, teardown);
	g_test_add ("/handoff/refusals-same-as-direct", Fixture, NULL, setup, test_refusals_same, teardown);
	g_test_add ("/handoff/no-daemon", Fixture, NULL, setup, test_no_daemon, teardown);
	g_test_add ("/handoff/resend-answered-with-first-queue-id", Fixture, NULL, setup, test_resend, teardown);
	g_test_add ("/handoff/stale-socket", Fixture, NULL, setup, test_stale_socket, teardown);
	g_test_add ("/handoff/client-dies-mid-message", Fixture, NULL, setup, test_client_dies, teardown);
	g_test_add ("/handoff/daemon-dies-mid-message", Fixture, NULL, setup, test_daemon_dies, teardown);
	g_test_add ("/handoff/concurrent-8x50", Fixture, NULL, setup, test_concurrent, teardown);
	g_test_add ("/handoff/socket-permissions", Fixture, NULL, setup, test_permissions, teardown);
	g_test_add ("/handoff/config-changed", Fixture, NULL, setup, test_config_changed, teardown);
	g_test_add ("/handoff/sqlite-scheme", Fixture, NULL, setup, test_sqlite_scheme, teardown);
	return g_test_run ();
}
