/* test-postfix-helper.c — proves the private Postfix of sc-test-postfix.c: relaying
 * into an smtp-sink, access-table replies, STARTTLS, parallel instances, cleanup. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "sc-test-postfix.h"
#include "sc-test-util.h"

#define SMTP_TIMEOUT_S 20

static const char test_message[] = "From: Ann <ann@example.org>\r\n"
				   "To: list@example.org\r\n"
				   "Subject: relay check\r\n"
				   "\r\n"
				   "hello, relay\r\n";

/* ---- an smtp-sink of our own (the relay target) ---------------------- */

typedef struct {
	GSubprocess *process;
	char *dump_dir; /* (owned) one file per transaction, "%M.<hex>" */
	guint16 port;
} Sink;

static guint16
free_port (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocketListener) listener = g_socket_listener_new ();
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM,
				       G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static gboolean
port_accepts (guint16 port)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketConnection) connection = NULL;

	/* no proxy lookup: it needs GSettings schemas, hidden by G_TEST_OPTION_ISOLATE_DIRS */
	g_socket_client_set_enable_proxy (client, FALSE);
	connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
	return connection != NULL;
}

static Sink *
sink_start (void)
{
	g_autofree char *template = NULL;
	Sink *sink;

	if (!g_file_test ("/usr/sbin/smtp-sink", G_FILE_TEST_IS_EXECUTABLE))
		return NULL;
	sink = g_new0 (Sink, 1);
	sink->dump_dir = sc_test_make_tmpdir ("sc-postfix-sink");
	/* smtp-sink -u nobody writes the dumps as nobody */
	g_assert_no_errno (chmod (sink->dump_dir, 01777));
	template = g_build_filename (sink->dump_dir, "%M.", NULL);
	for (guint attempt = 0; attempt < 5 && sink->process == NULL; attempt++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *where = NULL;
		gint64 deadline = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;

		sink->port = free_port ();
		where = g_strdup_printf ("127.0.0.1:%u", sink->port);
		/* silenced: should the test die, an orphaned sink must not hold its pipes */
		sink->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
						  G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
						  "/usr/sbin/smtp-sink", "-u", "nobody", "-c",
						  "-d", template, where, "64", NULL);
		g_assert_no_error (error);
		while (!port_accepts (sink->port) && g_get_monotonic_time () < deadline) {
			if (g_subprocess_get_identifier (sink->process) == NULL) /* exited */
				break;
			g_usleep (10 * 1000);
		}
		if (!port_accepts (sink->port)) {
			g_subprocess_force_exit (sink->process);
			g_subprocess_wait (sink->process, NULL, NULL);
			g_clear_object (&sink->process);
		}
	}
	g_assert_nonnull (sink->process);
	return sink;
}

static void
sink_free (Sink *sink)
{
	if (sink == NULL)
		return;
	g_subprocess_force_exit (sink->process);
	g_subprocess_wait (sink->process, NULL, NULL);
	g_object_unref (sink->process);
	sc_test_remove_tree (sink->dump_dir);
	g_free (sink->dump_dir);
	g_free (sink);
}

/* Waits for one complete dump holding @expect; returns its contents. */
static char *
sink_wait_dump (Sink *sink, const char *expect, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	do {
		g_autoptr(GDir) dir = g_dir_open (sink->dump_dir, 0, NULL);
		const char *name;

		while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
			g_autofree char *path = g_build_filename (sink->dump_dir, name, NULL);
			g_autofree char *contents = NULL;

			if (g_file_get_contents (path, &contents, NULL, NULL) &&
			    strstr (contents, expect) != NULL)
				return g_steal_pointer (&contents);
		}
		g_usleep (10 * 1000);
	} while (g_get_monotonic_time () < deadline);
	return NULL;
}

/* ---- a hand-written SMTP client ---------------------------------------- */

typedef struct {
	GSocketClient *client;
	GSocketConnection *connection;
	GDataInputStream *input;
	GOutputStream *output;
} Smtp;

/* A whole reply, continuation lines joined by "\n", without CRLF. */
static char *
smtp_read_reply (Smtp *smtp)
{
	g_autoptr(GString) reply = g_string_new (NULL);

	for (;;) {
		g_autoptr(GError) error = NULL;
		g_autofree char *line = g_data_input_stream_read_line (smtp->input, NULL, NULL, &error);

		g_assert_no_error (error);
		g_assert_nonnull (line);
		g_strchomp (line);
		if (reply->len > 0)
			g_string_append_c (reply, '\n');
		g_string_append (reply, line);
		g_assert_cmpuint (strlen (line), >=, 3);
		if (line[3] != '-')
			break;
	}
	return g_string_free (g_steal_pointer (&reply), FALSE);
}

static Smtp *
smtp_connect (guint16 port, const char *expect_banner)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *banner = NULL;
	Smtp *smtp = g_new0 (Smtp, 1);

	smtp->client = g_socket_client_new ();
	g_socket_client_set_enable_proxy (smtp->client, FALSE);
	g_socket_client_set_timeout (smtp->client, SMTP_TIMEOUT_S);
	smtp->connection = g_socket_client_connect_to_host (smtp->client, "127.0.0.1", port, NULL, &error);
	g_assert_no_error (error);
	smtp->input = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (smtp->connection)));
	g_data_input_stream_set_newline_type (smtp->input, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
	smtp->output = g_io_stream_get_output_stream (G_IO_STREAM (smtp->connection));
	banner = smtp_read_reply (smtp);
	g_assert_cmpstr (banner, ==, expect_banner);
	return smtp;
}

static void
smtp_send (Smtp *smtp, const char *text)
{
	g_autoptr(GError) error = NULL;

	g_output_stream_write_all (smtp->output, text, strlen (text), NULL, NULL, &error);
	g_assert_no_error (error);
}

static char *
smtp_command (Smtp *smtp, const char *command)
{
	g_autofree char *line = g_strconcat (command, "\r\n", NULL);

	smtp_send (smtp, line);
	return smtp_read_reply (smtp);
}

static void
smtp_expect (Smtp *smtp, const char *command, const char *reply_prefix)
{
	g_autofree char *reply = smtp_command (smtp, command);

	if (!g_str_has_prefix (reply, reply_prefix))
		g_error ("%s: expected %s…, got: %s", command, reply_prefix, reply);
}

static void
smtp_close (Smtp *smtp)
{
	g_object_unref (smtp->input);
	g_object_unref (smtp->connection);
	g_object_unref (smtp->client);
	g_free (smtp);
}

/* ---- cleanup checks ---------------------------------------------------- */

/* Any live process in @master_pid's group, or mentioning @dir in its
 * command line or environment (MAIL_CONFIG=DIR/etc). */
static GPid
find_leftover (const char *dir, GPid master_pid)
{
	g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
	const char *name;

	g_assert_nonnull (proc);
	while ((name = g_dir_read_name (proc)) != NULL) {
		const char *const files[] = {"cmdline", "environ"};
		g_autofree char *stat_path = g_build_filename ("/proc", name, "stat", NULL);
		g_autofree char *stat = NULL;
		const char *rest;
		char state = 0;
		int pgrp = 0;
		guint64 pid;

		if (!g_ascii_string_to_unsigned (name, 10, 1, G_MAXINT, &pid, NULL) ||
		    (GPid) pid == getpid ())
			continue;
		if (!g_file_get_contents (stat_path, &stat, NULL, NULL))
			continue;
		rest = strrchr (stat, ')');
		if (rest == NULL || sscanf (rest + 1, " %c %*d %d", &state, &pgrp) != 2)
			continue;
		if (state == 'Z' || state == 'X') /* reaped by init soon; nothing runs */
			continue;
		if (pgrp == master_pid)
			return (GPid) pid;
		for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
			g_autofree char *path = g_build_filename ("/proc", name, files[i], NULL);
			g_autofree char *contents = NULL;
			gsize length = 0;

			if (!g_file_get_contents (path, &contents, &length, NULL))
				continue;
			for (gsize offset = 0; offset < length; offset += strlen (contents + offset) + 1) {
				if (strstr (contents + offset, dir) != NULL)
					return (GPid) pid;
			}
		}
	}
	return 0;
}

/* Frees @postfix and checks that nothing of it is left. */
static void
free_and_assert_gone (ScTestPostfix *postfix)
{
	g_autofree char *dir = g_strdup (sc_test_postfix_get_dir (postfix));
	GPid master_pid = sc_test_postfix_get_master_pid (postfix);
	gint64 start = g_get_monotonic_time ();
	GPid leftover;

	g_assert_cmpint (master_pid, >, 0);
	g_assert_true (g_file_test (dir, G_FILE_TEST_IS_DIR));
	/* the detector sees the running instance… */
	g_assert_cmpint (find_leftover (dir, master_pid), !=, 0);
	g_assert_cmpint (kill (master_pid, 0), ==, 0);
	sc_test_postfix_free (postfix);
	g_test_message ("stop took %.2f s", (g_get_monotonic_time () - start) / 1e6);
	leftover = find_leftover (dir, master_pid);
	if (leftover != 0)
		g_error ("process %d of %s survived sc_test_postfix_free()", (int) leftover, dir);
	g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
}

static ScTestPostfix *
timed_start (const ScTestPostfixOptions *options)
{
	gint64 start = g_get_monotonic_time ();
	ScTestPostfix *postfix = sc_test_postfix_start (options);

	if (postfix != NULL)
		g_test_message ("start took %.2f s (port %u)", (g_get_monotonic_time () - start) / 1e6,
				sc_test_postfix_get_port (postfix));
	return postfix;
}

static void
dump_log_on_failure (ScTestPostfix *postfix, gboolean ok, const char *what)
{
	if (!ok) {
		g_autofree char *log = sc_test_postfix_get_log (postfix);
		g_error ("%s; maillog:\n%s", what, log);
	}
}

/* ---- tests ------------------------------------------------------------- */

static void
test_relay_and_access (void)
{
	const char *const access[] = {
		"bad@example.org 550 5.1.1 no such user",
		"later@example.org 450 4.2.0 try again later",
		NULL,
	};
	ScTestPostfixOptions options = {0};
	g_autofree char *url = NULL;
	g_autofree char *reply = NULL;
	g_autofree char *dump = NULL;
	g_autofree char *log = NULL;
	ScTestPostfix *postfix;
	Sink *sink = sink_start ();
	Smtp *smtp;

	if (sink == NULL) {
		g_test_skip ("smtp-sink is not installed");
		return;
	}
	options.relay_port = sink->port;
	options.access = access;
	postfix = timed_start (&options);
	if (postfix == NULL) {
		sink_free (sink);
		return;
	}
	url = sc_test_postfix_get_url (postfix);
	g_assert_true (g_str_has_prefix (url, "smtp://127.0.0.1:"));
	g_assert_null (sc_test_postfix_get_cert_path (postfix));

	smtp = smtp_connect (sc_test_postfix_get_port (postfix),
			     "220 stagecoach-test.localdomain ESMTP stagecoach-test");
	reply = smtp_command (smtp, "EHLO client.example.org");
	g_assert_true (g_str_has_prefix (reply, "250-stagecoach-test.localdomain\n"));
	g_assert_null (strstr (reply, "STARTTLS"));
	smtp_expect (smtp, "MAIL FROM:<list-bounces@example.org>", "250 ");
	smtp_expect (smtp, "RCPT TO:<ok1@example.org>", "250 ");
	g_clear_pointer (&reply, g_free);
	/* Postfix quotes the table's text after its own "<addr>: Recipient address rejected: " */
	reply = smtp_command (smtp, "RCPT TO:<bad@example.org>");
	g_assert_cmpstr (reply, ==, "550 5.1.1 <bad@example.org>: Recipient address rejected: no such user");
	g_clear_pointer (&reply, g_free);
	reply = smtp_command (smtp, "RCPT TO:<later@example.org>");
	g_assert_cmpstr (reply, ==, "450 4.2.0 <later@example.org>: Recipient address rejected: try again later");
	smtp_expect (smtp, "RCPT TO:<ok2@example.net>", "250 ");
	smtp_expect (smtp, "DATA", "354 ");
	smtp_send (smtp, test_message);
	smtp_expect (smtp, ".", "250 2.0.0 Ok: queued as ");
	smtp_expect (smtp, "QUIT", "221 ");
	smtp_close (smtp);

	dump_log_on_failure (postfix, sc_test_postfix_wait_queue_empty (postfix, 15000),
			     "queue did not drain");
	dump = sink_wait_dump (sink, "hello, relay", 5000);
	dump_log_on_failure (postfix, dump != NULL, "no dump in the smtp-sink");
	g_assert_nonnull (strstr (dump, "X-Mail-Args: <list-bounces@example.org>"));
	g_assert_nonnull (strstr (dump, "X-Rcpt-Args: <ok1@example.org>"));
	g_assert_nonnull (strstr (dump, "X-Rcpt-Args: <ok2@example.net>"));
	g_assert_null (strstr (dump, "bad@example.org"));
	g_assert_null (strstr (dump, "later@example.org"));
	log = sc_test_postfix_get_log (postfix);
	g_assert_nonnull (strstr (log, "status=sent"));
	g_assert_nonnull (strstr (log, "reject: RCPT from"));

	free_and_assert_gone (postfix);
	sink_free (sink);
}

/* curl's SMTP client, one message to one recipient; @extra: TLS arguments. */
static gboolean
curl_send (const char *curl, ScTestPostfix *postfix, const char *const *extra, char **out_stderr)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = sc_test_make_tmpdir ("sc-postfix-curl");
	g_autofree char *message = sc_test_write_file (dir, "message.eml", test_message);
	int status = 0;

	g_ptr_array_add (argv, g_strdup (curl));
	g_ptr_array_add (argv, g_strdup ("-q")); /* no ~/.curlrc */
	g_ptr_array_add (argv, g_strdup ("-sS"));
	g_ptr_array_add (argv, g_strdup ("--max-time"));
	g_ptr_array_add (argv, g_strdup ("20"));
	for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
		g_ptr_array_add (argv, g_strdup (extra[i]));
	g_ptr_array_add (argv, g_strdup ("--url"));
	g_ptr_array_add (argv, sc_test_postfix_get_url (postfix));
	g_ptr_array_add (argv, g_strdup ("--mail-from"));
	g_ptr_array_add (argv, g_strdup ("ann@example.org"));
	g_ptr_array_add (argv, g_strdup ("--mail-rcpt"));
	g_ptr_array_add (argv, g_strdup ("bob@example.org"));
	g_ptr_array_add (argv, g_strdup ("--upload-file"));
	g_ptr_array_add (argv, g_strdup (message));
	g_ptr_array_add (argv, NULL);
	g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
		      NULL, out_stderr, &status, &error);
	g_assert_no_error (error);
	sc_test_remove_tree (dir);
	return g_spawn_check_wait_status (status, NULL);
}

static void
test_tls_required (void)
{
	ScTestPostfixOptions options = {.tls_required = TRUE};
	const char *const insecure[] = {"--ssl-reqd", "-k", NULL};
	g_autofree char *curl = g_find_program_in_path ("curl");
	g_autofree char *reply = NULL;
	g_autofree char *errors = NULL;
	g_autofree char *cert = NULL;
	const char *cert_path;
	ScTestPostfix *postfix;
	Smtp *smtp;

	postfix = timed_start (&options);
	if (postfix == NULL)
		return;
	cert_path = sc_test_postfix_get_cert_path (postfix);
	g_assert_nonnull (cert_path);
	g_assert_true (g_file_get_contents (cert_path, &cert, NULL, NULL));
	g_assert_true (g_str_has_prefix (cert, "-----BEGIN CERTIFICATE-----"));

	smtp = smtp_connect (sc_test_postfix_get_port (postfix),
			     "220 stagecoach-test.localdomain ESMTP stagecoach-test");
	reply = smtp_command (smtp, "EHLO client.example.org");
	g_assert_nonnull (strstr (reply, "\n250-STARTTLS\n"));
	smtp_expect (smtp, "MAIL FROM:<ann@example.org>", "530 5.7.0 Must issue a STARTTLS command first");
	smtp_expect (smtp, "QUIT", "221 ");
	smtp_close (smtp);

	if (curl == NULL) {
		free_and_assert_gone (postfix);
		g_test_skip ("curl is not installed: STARTTLS not tried");
		return;
	}
	/* plain curl: refused at MAIL */
	g_assert_false (curl_send (curl, postfix, NULL, &errors));
	g_assert_nonnull (strstr (errors, "530"));
	g_clear_pointer (&errors, g_free);
	/* STARTTLS without verification, then with the cert as the only CA */
	dump_log_on_failure (postfix, curl_send (curl, postfix, insecure, NULL), "curl --ssl-reqd -k failed");
	{
		const char *const verified[] = {"--ssl-reqd", "--cacert", cert_path, NULL};
		gboolean ok = curl_send (curl, postfix, verified, &errors);
		if (!ok)
			g_error ("curl --cacert failed: %s", errors);
	}
	dump_log_on_failure (postfix, sc_test_postfix_wait_queue_empty (postfix, 15000),
			     "queue did not drain");
	{
		g_autofree char *log = sc_test_postfix_get_log (postfix);
		g_assert_nonnull (strstr (log, "status=sent (no relay in this test)"));
		g_assert_nonnull (strstr (log, "starttls=1"));
	}
	free_and_assert_gone (postfix);
}

/* Two instances at once, one offering (not requiring) STARTTLS; freeing
 * one leaves the other serving. */
static void
test_parallel (void)
{
	ScTestPostfixOptions plain_options = {0};
	ScTestPostfixOptions tls_options = {.tls = TRUE};
	g_autofree char *reply = NULL;
	ScTestPostfix *plain;
	ScTestPostfix *tls;
	Smtp *smtp;

	plain = timed_start (&plain_options);
	if (plain == NULL)
		return;
	tls = timed_start (&tls_options);
	if (tls == NULL) {
		sc_test_postfix_free (plain);
		return;
	}
	g_assert_cmpuint (sc_test_postfix_get_port (plain), !=, sc_test_postfix_get_port (tls));
	g_assert_cmpstr (sc_test_postfix_get_dir (plain), !=, sc_test_postfix_get_dir (tls));
	g_assert_cmpint (sc_test_postfix_get_master_pid (plain), !=, sc_test_postfix_get_master_pid (tls));
	g_assert_true (port_accepts (sc_test_postfix_get_port (plain)));

	free_and_assert_gone (plain);

	/* STARTTLS offered, not required: plain MAIL is accepted */
	smtp = smtp_connect (sc_test_postfix_get_port (tls),
			     "220 stagecoach-test.localdomain ESMTP stagecoach-test");
	reply = smtp_command (smtp, "EHLO client.example.org");
	g_assert_nonnull (strstr (reply, "\n250-STARTTLS\n"));
	smtp_expect (smtp, "MAIL FROM:<ann@example.org>", "250 ");
	smtp_expect (smtp, "RCPT TO:<bob@example.org>", "250 ");
	smtp_expect (smtp, "DATA", "354 ");
	smtp_send (smtp, test_message);
	smtp_expect (smtp, ".", "250 ");
	smtp_expect (smtp, "QUIT", "221 ");
	smtp_close (smtp);
	dump_log_on_failure (tls, sc_test_postfix_wait_queue_empty (tls, 15000), "queue did not drain");

	free_and_assert_gone (tls);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func ("/postfix-helper/relay-and-access", test_relay_and_access);
	g_test_add_func ("/postfix-helper/tls-required", test_tls_required);
	g_test_add_func ("/postfix-helper/parallel", test_parallel);
	return g_test_run ();
}
