/* test-ingress-smtp.c — the SMTP and LMTP listeners of `stagecoach run`
 * with real clients: Python's smtplib (tests/ingress/smtplib-client.py),
 * swaks (STARTTLS, AUTH) and raw sockets (smuggling, pipelining,
 * timeouts, limits).  What got stored is read back with `list --json` and
 * `export`. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>

#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *log;
	guint16 smtp_port;
	guint16 lmtp_port;
	char *lmtp_path;   /* (nullable) LMTP on this unix socket instead */
	GSubprocess *daemon;
} Fixture;

/* A port nobody listens on now; the socket stays bound (not listening)
 * until the caller drops it, so two calls never give the same port. */
static guint16
free_port (GSocket **out_socket)
{
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_assert_nonnull (socket);
	g_assert_true (g_socket_bind (socket, any, TRUE, NULL));
	bound = g_socket_get_local_address (socket, NULL);
	*out_socket = g_steal_pointer (&socket);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
fixture_setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("ingress-smtp");
	fixture->log = g_build_filename (fixture->dir, "daemon.log", NULL);
}

static void
stop_daemon (Fixture *fixture)
{
	if (fixture->daemon == NULL)
		return;
	g_subprocess_send_signal (fixture->daemon, SIGTERM);
	g_assert_true (g_subprocess_wait (fixture->daemon, NULL, NULL));
	g_clear_object (&fixture->daemon);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
	if (fixture->daemon != NULL) {
		g_subprocess_force_exit (fixture->daemon);
		g_subprocess_wait (fixture->daemon, NULL, NULL);
		g_clear_object (&fixture->daemon);
	}
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->log);
	g_free (fixture->lmtp_path);
}

static GSocketConnection *
try_connect (guint16 port)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", port);

	g_socket_client_set_timeout (client, 30);
	return g_socket_client_connect_to_host (client, host, port, NULL, NULL);
}

static GSocketConnection *
try_connect_unix (const char *path)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);

	g_socket_client_set_timeout (client, 30);
	return g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, NULL);
}

static GSocketConnection *
try_connect_lmtp (Fixture *fixture)
{
	return fixture->lmtp_path != NULL ? try_connect_unix (fixture->lmtp_path) : try_connect (fixture->lmtp_port);
}

static void
dump_log (Fixture *fixture)
{
	g_autofree char *text = NULL;

	if (g_file_get_contents (fixture->log, &text, NULL, NULL))
		g_test_message ("daemon log:\n%s", text);
}

/* QUIT, and read to the end: the server has then dropped the connection
 * from its count (it does before it closes). */
static void
quit_probe (GSocketConnection *probe)
{
	GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (probe));
	char buffer[512];

	/* it may have closed already (a 554 greeting) */
	(void) g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (probe)), "QUIT\r\n", 6, NULL,
					  NULL, NULL);
	while (g_input_stream_read (in, buffer, sizeof buffer, NULL, NULL) > 0)
		;
}

/* Writes the configuration (@ingress: extra [ingress] keys, @stagecoach:
 * extra [stagecoach] keys) and starts `run`; waits for the SMTP port. */
static void
start_daemon (Fixture *fixture, const char *stagecoach, const char *ingress)
{
	g_autofree char *text = NULL;
	g_autoptr(GSocket) smtp_socket = NULL;
	g_autoptr(GSocket) lmtp_socket = NULL;

	stop_daemon (fixture);
	fixture->smtp_port = free_port (&smtp_socket);
	fixture->lmtp_port = free_port (&lmtp_socket);
	g_clear_object (&smtp_socket);
	g_clear_object (&lmtp_socket);
	g_autofree char *lmtp = fixture->lmtp_path != NULL ? g_strdup (fixture->lmtp_path)
							     : g_strdup_printf ("127.0.0.1:%u", fixture->lmtp_port);

	text = g_strdup_printf ("[stagecoach]\nspool=spool\ndefault-list=test.example.org\n%s"
				"[list:test.example.org]\npipeline=decorate\n"
				"[list:other.example.org]\npipeline=decorate\n"
				"[ingress]\nsmtp=127.0.0.1:%u\nlmtp=%s\nhostname=mx.test\n%s",
				stagecoach != NULL ? stagecoach : "", fixture->smtp_port, lmtp,
				ingress != NULL ? ingress : "");
	g_free (fixture->config);
	fixture->config = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	fixture->daemon = sc_test_spawn (fixture->config, fixture->log, "run", NULL);
	for (guint i = 0; i < 200; i++) {
		g_autoptr(GSocketConnection) probe = try_connect (fixture->smtp_port);
		g_autoptr(GSocketConnection) lmtp_probe = probe != NULL ? try_connect_lmtp (fixture) : NULL;

		if (lmtp_probe != NULL) {
			quit_probe (probe);
			quit_probe (lmtp_probe);
			return;
		}
		if (g_subprocess_get_identifier (fixture->daemon) == NULL) {
			dump_log (fixture);
			g_error ("the daemon exited");
		}
		g_usleep (50 * 1000);
	}
	dump_log (fixture);
	g_error ("the SMTP listener never came up on port %u", fixture->smtp_port);
}

/* ---- a raw client ---- */

typedef struct {
	GSocketConnection *connection;
	GDataInputStream *in;
	GOutputStream *out;
} Client;

static void
client_free (Client *client)
{
	g_clear_object (&client->in);
	g_clear_object (&client->connection);
	g_free (client);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

static Client *
client_wrap (GSocketConnection *connection)
{
	Client *client = g_new0 (Client, 1);

	client->connection = connection;
	g_assert_nonnull (client->connection);
	client->in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (client->connection)));
	g_data_input_stream_set_newline_type (client->in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
	client->out = g_io_stream_get_output_stream (G_IO_STREAM (client->connection));
	return client;
}

static Client *
client_connect (guint16 port)
{
	return client_wrap (try_connect (port));
}

/* A client whose receive buffer holds a few KiB: the replies it does not
 * read soon fill it, and the server's writes must wait for room. */
static Client *
client_connect_small (guint16 port)
{
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
	g_autoptr(GError) error = NULL;

	g_assert_nonnull (socket);
	g_assert_true (g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, 4096, &error));
	g_assert_no_error (error);
	g_assert_true (g_socket_connect (socket, address, NULL, &error));
	g_assert_no_error (error);
	g_socket_set_timeout (socket, 30);
	return client_wrap (g_socket_connection_factory_create_connection (socket));
}

static void
client_send (Client *client, const char *data, gssize length)
{
	g_autoptr(GError) error = NULL;

	g_output_stream_write_all (client->out, data, length < 0 ? strlen (data) : (gsize) length, NULL, NULL, &error);
	g_assert_no_error (error);
}

/* One whole reply (every line of a multi-line one), lines joined by
 * "\n"; NULL at the end of the connection. (transfer full) */
static char *
client_reply (Client *client)
{
	g_autoptr(GString) reply = g_string_new (NULL);

	for (;;) {
		g_autoptr(GError) error = NULL;
		g_autofree char *line = g_data_input_stream_read_line (client->in, NULL, NULL, &error);

		if (line == NULL)
			return reply->len > 0 ? g_string_free (g_steal_pointer (&reply), FALSE) : NULL;
		if (reply->len > 0)
			g_string_append_c (reply, '\n');
		g_string_append (reply, line);
		if (strlen (line) < 4 || line[3] != '-')
			return g_string_free (g_steal_pointer (&reply), FALSE);
	}
}

static void
expect_reply (Client *client, const char *prefix)
{
	g_autofree char *reply = client_reply (client);

	if (reply == NULL || !g_str_has_prefix (reply, prefix))
		g_error ("expected a reply starting “%s”, got “%s”", prefix, reply != NULL ? reply : "(closed)");
}

/* Sends @commands and checks each reply against @replies (prefixes). */
static void
converse (Client *client, const char *commands, const char *const *replies)
{
	client_send (client, commands, -1);
	for (guint i = 0; replies[i] != NULL; i++)
		expect_reply (client, replies[i]);
}

/* ---- the spool ---- */

static GPtrArray *
stored_ids (Fixture *fixture)
{
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	GPtrArray *ids = g_ptr_array_new_with_free_func (g_free);
	JsonArray *array;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "list", "--json", "--limit", "0", NULL), ==, 0);
	g_assert_true (json_parser_load_from_data (parser, out, -1, NULL));
	array = json_node_get_array (json_parser_get_root (parser));
	for (guint i = 0; i < json_array_get_length (array); i++)
		g_ptr_array_add (ids, g_strdup (json_object_get_string_member (json_array_get_object_element (array, i), "id")));
	return ids;
}

static guint
count_stored (Fixture *fixture)
{
	g_autoptr(GPtrArray) ids = stored_ids (fixture);

	return ids->len;
}

static char *
exported (Fixture *fixture, const char *id)
{
	char *out = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "export", id, NULL), ==, 0);
	return out;
}

/* The queue id in a "250 2.0.0 Ok: queued as ID" reply. */
static char *
queued_id (const char *reply)
{
	const char *mark = strstr (reply, "queued as ");

	g_assert_nonnull (mark);
	return g_strdup (mark + strlen ("queued as "));
}

static char *
script_path (const char *name)
{
	return g_test_build_filename (G_TEST_DIST, "ingress", name, NULL);
}

static gboolean
have_program (const char *name)
{
	g_autofree char *path = g_find_program_in_path (name);

	if (path == NULL)
		g_test_skip_printf ("%s is not installed", name);
	return path != NULL;
}

/* Runs argv, returns its exit status; stdout and stderr in @out. */
static int
run_client (char **out, const char *first, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GError) error = NULL;
	va_list args;

	va_start (args, first);
	for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
		g_ptr_array_add (argv, (char *) arg);
	va_end (args);
	g_ptr_array_add (argv, NULL);
	process = g_subprocess_newv ((const char *const *) argv->pdata,
				     G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE, &error);
	g_assert_no_error (error);
	g_subprocess_communicate_utf8 (process, NULL, NULL, out, NULL, &error);
	g_assert_no_error (error);
	g_test_message ("%s: %s", first, *out);
	return g_subprocess_get_if_exited (process) ? g_subprocess_get_exit_status (process) : -1;
}

/* ---- tests ---- */

static void
test_smtplib (Fixture *fixture, gconstpointer data)
{
	g_autofree char *script = script_path ("smtplib-client.py");
	g_autofree char *port = NULL;
	g_autofree char *out = NULL;
	g_autofree char *raw = NULL;
	g_autoptr(GPtrArray) ids = NULL;
	g_autoptr(JsonObject) shown = NULL;

	start_daemon (fixture, NULL, NULL);
	port = g_strdup_printf ("%u", fixture->smtp_port);
	/* the script asserts the EHLO keywords and every reply; it prints the queue id */
	g_assert_cmpint (run_client (&out, "python3", script, "127.0.0.1", port, NULL), ==, 0);
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 1);
	g_assert_nonnull (strstr (out, ids->pdata[0]));
	raw = exported (fixture, ids->pdata[0]);
	g_assert_true (g_str_has_prefix (raw, "Received: from "));
	g_assert_nonnull (strstr (raw, "Subject: smtplib test\r\n"));
	g_assert_nonnull (strstr (raw, "\r\n.leading dot\r\n")); /* stuffed by smtplib, unstuffed here */
	g_assert_nonnull (strstr (raw, "caf\xc3\xa9")); /* 8BITMIME */
	shown = sc_test_show (fixture->config, ids->pdata[0]);
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "test.example.org");
}

static void
test_swaks (Fixture *fixture, gconstpointer data)
{
	g_autofree char *server = NULL;
	g_autofree char *out = NULL;
	g_autoptr(GPtrArray) ids = NULL;

	if (!have_program ("swaks"))
		return;
	start_daemon (fixture, NULL, NULL);
	server = g_strdup_printf ("127.0.0.1:%u", fixture->smtp_port);
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--from", "sender@example.org", "--to",
				     "a@example.org,b@example.net", "--header", "List-Id: <other.example.org>",
				     "--pipeline", "--body", "hello from swaks", NULL),
			 ==, 0);
	g_assert_nonnull (strstr (out, "250 2.0.0 Ok: queued as "));
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 1);
	{
		g_autoptr(JsonObject) shown = sc_test_show (fixture->config, ids->pdata[0]);
		/* routed by its List-Id */
		g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "other.example.org");
	}
	/* VRFY and a refused address, as swaks shows them */
	g_free (out);
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--quit-after", "RCPT", "--from", "bad",
				     "--to", "a@example.org", NULL),
			 !=, 0);
	g_assert_nonnull (strstr (out, "501 5.1.7"));
}

/* SEC Consult's sequences: each connection stores exactly one message,
 * with the smuggled MAIL FROM as content. */
static void
test_smuggling (Fixture *fixture, gconstpointer data)
{
	static const char *const fake_ends[] = {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", "\r.\r\n", "\n.\r"};
	const char *const greet[] = {"220 ", "250 ", "250 2.1.0", "250 2.1.5", "354 ", NULL};
	gboolean reject = GPOINTER_TO_INT (data);

	start_daemon (fixture, NULL, reject ? "bare-newline=reject\n" : NULL);
	for (guint i = 0; i < G_N_ELEMENTS (fake_ends); i++) {
		g_autoptr(Client) client = client_connect (fixture->smtp_port);
		g_autofree char *message = g_strdup_printf ("Subject: carrier %u\r\nMessage-ID: <carrier%u@example.org>\r\n\r\n"
							    "body%sMAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.org>\r\n"
							    "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n",
							    i, i, fake_ends[i]);
		g_autofree char *reply = NULL;
		g_autoptr(GPtrArray) ids = NULL;

		g_test_message ("sequence %u", i);
		client_send (client, "HELO c\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n", -1);
		for (guint j = 0; greet[j] != NULL; j++)
			expect_reply (client, greet[j]);
		client_send (client, message, -1);
		reply = client_reply (client);
		g_assert_nonnull (reply);
		/* the smuggled commands were data: the next reply answers QUIT */
		converse (client, "QUIT\r\n", (const char *const[]){"221 ", NULL});
		ids = stored_ids (fixture);
		if (reject) {
			g_assert_true (g_str_has_prefix (reply, "550 5.5.2 "));
			g_assert_cmpuint (ids->len, ==, 0);
		} else {
			g_autofree char *id = queued_id (reply);
			g_autofree char *raw = exported (fixture, id);

			g_assert_true (g_str_has_prefix (reply, "250 2.0.0 "));
			g_assert_cmpuint (ids->len, ==, i + 1);
			g_assert_nonnull (strstr (raw, "MAIL FROM:<admin@example.org>"));
			g_assert_nonnull (strstr (raw, "Subject: smuggled"));
		}
	}
}

static void
test_pipelining (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autoptr(GString) commands = g_string_new ("EHLO c\r\n");
	g_autoptr(GPtrArray) ids = NULL;

	start_daemon (fixture, NULL, NULL);
	client = client_connect (fixture->smtp_port);
	expect_reply (client, "220 mx.test ESMTP");
	/* three transactions in one write, RFC 2920 */
	for (guint i = 0; i < 3; i++)
		g_string_append_printf (commands, "MAIL FROM:<s@example.org>\r\nRCPT TO:<r%u@example.org>\r\nDATA\r\n"
						  "Subject: %u\r\n\r\nbody %u\r\n.\r\n",
					i, i, i);
	g_string_append (commands, "QUIT\r\n");
	client_send (client, commands->str, commands->len);
	expect_reply (client, "250-mx.test\n250-PIPELINING\n250-SIZE ");
	for (guint i = 0; i < 3; i++) {
		expect_reply (client, "250 2.1.0");
		expect_reply (client, "250 2.1.5");
		expect_reply (client, "354 ");
		expect_reply (client, "250 2.0.0 Ok: queued as ");
	}
	expect_reply (client, "221 ");
	g_assert_null (client_reply (client));
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 3);
}

static void
test_limits (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autoptr(Client) second = NULL;
	g_autoptr(Client) third = NULL;
	g_autofree char *long_line = g_strnfill (600, 'x');
	g_autofree char *command = g_strdup_printf ("NOOP %s\r\n", long_line);
	g_autofree char *big = g_strnfill (3000, 'y');
	g_autofree char *message = g_strdup_printf ("Subject: big\r\n\r\n%s\r\n%s\r\n.\r\n", big, big);
	g_autoptr(GString) errors = g_string_new (NULL);

	start_daemon (fixture, "max-message-size=5000\n", "max-recipients=2\nmax-connections=2\n");
	client = client_connect (fixture->smtp_port);
	expect_reply (client, "220 ");
	converse (client, "EHLO c\r\n", (const char *const[]){"250-mx.test\n250-PIPELINING\n250-SIZE 5000\n", NULL});
	converse (client, "MAIL FROM:<s@example.org> SIZE=5001\r\n", (const char *const[]){"552 5.3.4 ", NULL});
	converse (client, "MAIL FROM:<s@example.org> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<1@example.org>\r\n"
			  "RCPT TO:<2@example.org>\r\nRCPT TO:<3@example.org>\r\n",
		  (const char *const[]){"250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3 ", NULL});
	converse (client, command, (const char *const[]){"500 5.5.2 ", NULL});
	/* data over max-message-size: read to its end, refused, nothing kept */
	converse (client, "DATA\r\n", (const char *const[]){"354 ", NULL});
	converse (client, message, (const char *const[]){"552 5.3.4 ", NULL});
	g_assert_cmpuint (count_stored (fixture), ==, 0);

	/* max-connections=2: the third is told 421 4.7.0 and closed */
	second = client_connect (fixture->smtp_port);
	expect_reply (second, "220 ");
	third = client_connect (fixture->smtp_port);
	expect_reply (third, "421 4.7.0 ");
	g_assert_null (client_reply (third));

	/* errors in a row: 421 and closed */
	for (guint i = 0; i < 20; i++)
		g_string_append (errors, "BOGUS\r\n");
	client_send (second, errors->str, errors->len);
	for (guint i = 0; i < 20; i++)
		expect_reply (second, "500 5.5.2 ");
	expect_reply (second, "421 4.7.0 ");
	g_assert_null (client_reply (second));
}

static void
test_timeouts (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) idle = NULL;
	g_autoptr(Client) in_data = NULL;

	start_daemon (fixture, NULL, "command-timeout=1s\ndata-timeout=2s\n");
	idle = client_connect (fixture->smtp_port);
	in_data = client_connect (fixture->smtp_port);
	expect_reply (idle, "220 ");
	expect_reply (in_data, "220 ");
	converse (in_data, "HELO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\nSubject: part\r\n",
		  (const char *const[]){"250 ", "250 ", "250 ", "354 ", NULL});
	/* the reads below wait (up to the socket's 30 s) for the 421 */
	expect_reply (idle, "421 4.4.2 ");
	g_assert_null (client_reply (idle));
	expect_reply (in_data, "421 4.4.2 ");
	g_assert_null (client_reply (in_data));
	g_assert_cmpuint (count_stored (fixture), ==, 0);
}

static void
test_disconnect_in_data (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autoptr(GPtrArray) ids = NULL;

	start_daemon (fixture, NULL, NULL);
	client = client_connect (fixture->smtp_port);
	expect_reply (client, "220 ");
	converse (client, "HELO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
			  "Subject: cut\r\n\r\nhalf a message\r\n",
		  (const char *const[]){"250 ", "250 ", "250 ", "354 ", NULL});
	g_clear_pointer (&client, client_free);

	/* the daemon goes on: the next message is stored, the cut one is not */
	client = client_connect (fixture->smtp_port);
	expect_reply (client, "220 ");
	converse (client, "HELO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
			  "Subject: whole\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		  (const char *const[]){"250 ", "250 ", "250 ", "354 ", "250 2.0.0 ", "221 ", NULL});
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 1);
	{
		g_autofree char *raw = exported (fixture, ids->pdata[0]);
		g_assert_nonnull (strstr (raw, "Subject: whole"));
	}
}

/* Pipelined commands whose replies (6 MB of EHLO answers) fill the
 * client's receive buffer and the server's send buffer (tcp_wmem lets
 * that grow to 4 MB). */
#define SLOW_READER_COMMANDS 40000

static gpointer
send_ehlos_cb (gpointer user_data)
{
	GOutputStream *out = user_data;
	GString *commands = g_string_new (NULL);

	for (guint i = 0; i < SLOW_READER_COMMANDS; i++)
		g_string_append (commands, "EHLO c\r\n");
	/* it may be cut off: that is for the reader to see */
	(void) g_output_stream_write_all (out, commands->str, commands->len, NULL, NULL, NULL);
	g_string_free (commands, TRUE);
	return NULL;
}

/* Writes the EHLOs from a thread, as the server stops reading while its
 * replies wait (a GIOStream may be read and written from two threads). */
static GThread *
send_ehlos (Client *client)
{
	return g_thread_new ("ehlo-writer", send_ehlos_cb, client->out);
}

static void
test_slow_reader (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	GThread *writer;

	start_daemon (fixture, NULL, NULL);
	client = client_connect_small (fixture->smtp_port);
	expect_reply (client, "220 ");
	writer = send_ehlos (client);
	/* the server's socket fills up and its write waits */
	g_usleep (1000 * 1000);
	for (guint i = 0; i < SLOW_READER_COMMANDS; i++)
		expect_reply (client, "250-mx.test\n250-PIPELINING\n");
	g_thread_join (writer);
	converse (client, "QUIT\r\n", (const char *const[]){"221 ", NULL});
	g_assert_null (client_reply (client));
}

/* A client that does not read its replies is dropped when writing them
 * takes longer than command-timeout; the other connections are served
 * meanwhile. */
static void
test_write_timeout (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) stuck = NULL;
	g_autoptr(Client) other = NULL;
	GThread *writer;
	gint64 start;
	guint replies = 0;

	start_daemon (fixture, NULL, "command-timeout=1s\n");
	stuck = client_connect_small (fixture->smtp_port);
	expect_reply (stuck, "220 ");
	start = g_get_monotonic_time ();
	writer = send_ehlos (stuck);

	other = client_connect (fixture->smtp_port);
	converse (other, "EHLO c\r\nQUIT\r\n", (const char *const[]){"220 ", "250-mx.test", "221 ", NULL});
	g_assert_null (client_reply (other));

	/* the server gives up on it, with commands of ours unread: a reset
	 * (waited for without reading, as reading would make room) */
	g_assert_true (g_socket_condition_timed_wait (g_socket_connection_get_socket (stuck->connection),
						      G_IO_HUP | G_IO_ERR, 30 * G_USEC_PER_SEC, NULL, NULL));
	for (;;) {
		g_autoptr(GError) error = NULL;
		g_autofree char *line = g_data_input_stream_read_line (stuck->in, NULL, NULL, &error);

		if (line == NULL) {
			/* a reset or the end, never the client's own 30 s timeout */
			g_assert_false (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
			break;
		}
		if (g_str_has_prefix (line, "250 "))
			replies++;
	}
	g_assert_cmpuint (replies, <, SLOW_READER_COMMANDS);
	g_test_message ("cut off after %u replies, %.1f s", replies,
			(double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
	g_thread_join (writer);

	g_clear_pointer (&other, client_free);
	other = client_connect (fixture->smtp_port);
	converse (other, "QUIT\r\n", (const char *const[]){"220 ", "221 ", NULL});
}

static void
test_lmtp (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autoptr(GPtrArray) ids = NULL;

	if (GPOINTER_TO_INT (data))
		fixture->lmtp_path = g_build_filename (fixture->dir, "lmtp.sock", NULL);
	/* outside allow=: a unix socket client is local all the same */
	start_daemon (fixture, NULL, GPOINTER_TO_INT (data) ? "allow=192.0.2.0/24\n" : NULL);
	client = client_wrap (try_connect_lmtp (fixture));
	expect_reply (client, "220 mx.test LMTP");
	converse (client, "EHLO c\r\nLHLO c\r\n", (const char *const[]){"500 5.5.1 ", "250-mx.test\n250-PIPELINING", NULL});
	converse (client, "MAIL FROM:<s@example.org>\r\nRCPT TO:<1@example.org>\r\nRCPT TO:<bad>\r\n"
			  "RCPT TO:<2@example.org>\r\nDATA\r\nSubject: lmtp\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		  (const char *const[]){"250 2.1.0", "250 2.1.5", "553 5.1.3", "250 2.1.5", "354 ",
					"250 2.0.0 Ok: queued as ", "250 2.0.0 Ok: queued as ", "221 ", NULL});
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 1);
}

static void
test_no_list (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autofree char *text = NULL;

	start_daemon (fixture, NULL, NULL);
	/* the same daemon's configuration without default-list */
	stop_daemon (fixture);
	g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
	{
		g_auto(GStrv) parts = g_strsplit (text, "default-list=test.example.org\n", -1);
		g_autofree char *without = g_strjoinv ("", parts);
		g_assert_true (g_file_set_contents (fixture->config, without, -1, NULL));
	}
	fixture->daemon = sc_test_spawn (fixture->config, fixture->log, "run", NULL);
	for (guint i = 0; i < 200 && client == NULL; i++) {
		GSocketConnection *probe = try_connect (fixture->smtp_port);
		if (probe != NULL) {
			client = g_new0 (Client, 1);
			client->connection = probe;
			client->in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (probe)));
			g_data_input_stream_set_newline_type (client->in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
			client->out = g_io_stream_get_output_stream (G_IO_STREAM (probe));
		} else {
			g_usleep (50 * 1000);
		}
	}
	g_assert_nonnull (client);
	expect_reply (client, "220 ");
	converse (client, "HELO c\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
			  "Subject: nowhere\r\n\r\nbody\r\n.\r\n"
			  "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
			  "Subject: somewhere\r\nList-Id: Other <other.example.org>\r\n\r\nbody\r\n.\r\n",
		  (const char *const[]){"250 ", "250 ", "250 ", "354 ", "550 5.1.1 ", "250 ", "250 ", "354 ",
					"250 2.0.0 ", NULL});
	g_assert_cmpuint (count_stored (fixture), ==, 1);
}

static void
test_stop (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) idle = NULL;

	start_daemon (fixture, NULL, NULL);
	idle = client_connect (fixture->smtp_port);
	converse (idle, "EHLO c\r\n", (const char *const[]){"220 ", "250-mx.test", NULL});
	g_subprocess_send_signal (fixture->daemon, SIGTERM);
	/* told at once, as at its next command */
	expect_reply (idle, "421 4.3.2 ");
	g_assert_null (client_reply (idle));
	g_assert_true (g_subprocess_wait (fixture->daemon, NULL, NULL));
	g_clear_object (&fixture->daemon);
	g_assert_null (try_connect (fixture->smtp_port));
}

/* A stop that comes as soon as the listener answers (systemd stopping a
 * unit it just started) is a clean stop: the signal handlers are in place
 * before any door opens, so the daemon never dies of the default SIGTERM
 * with sessions open.  Repeated: the window was a few milliseconds. */
static void
test_stop_at_start (Fixture *fixture, gconstpointer data)
{
	g_autofree char *text = NULL;
	g_autoptr(GSocket) smtp_socket = NULL;

	fixture->smtp_port = free_port (&smtp_socket);
	g_clear_object (&smtp_socket);
	text = g_strdup_printf ("[stagecoach]\nspool=spool\ndefault-list=test.example.org\n"
				"[list:test.example.org]\npipeline=decorate\n"
				"[ingress]\nsmtp=127.0.0.1:%u\nhostname=mx.test\n",
				fixture->smtp_port);
	fixture->config = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	for (guint round = 0; round < 10; round++) {
		g_autoptr(GSubprocess) daemon = sc_test_spawn (fixture->config, fixture->log, "run", NULL);
		g_autoptr(GSocket) probe = NULL;

		for (guint i = 0; i < 20000 && probe == NULL; i++) {
			g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", fixture->smtp_port);
			g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
								  G_SOCKET_PROTOCOL_TCP, NULL);

			g_assert_nonnull (socket);
			if (g_socket_connect (socket, address, NULL, NULL))
				probe = g_steal_pointer (&socket);
			else if (g_subprocess_get_identifier (daemon) == NULL)
				break;
			else
				g_usleep (200);
		}
		g_assert_nonnull (probe);
		g_subprocess_send_signal (daemon, SIGTERM);
		g_assert_true (g_subprocess_wait (daemon, NULL, NULL));
		if (!g_subprocess_get_if_exited (daemon)) {
			dump_log (fixture);
			g_error ("round %u: the daemon died of signal %d instead of stopping", round,
				 g_subprocess_get_term_sig (daemon));
		}
		g_assert_cmpint (g_subprocess_get_exit_status (daemon), ==, 0);
	}
}

static void
make_certificate (Fixture *fixture, char **out_cert, char **out_key)
{
	g_autofree char *out = NULL;

	*out_cert = g_build_filename (fixture->dir, "cert.pem", NULL);
	*out_key = g_build_filename (fixture->dir, "key.pem", NULL);
	g_assert_cmpint (run_client (&out, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
				     "-subj", "/CN=mx.test", "-keyout", *out_key, "-out", *out_cert, NULL),
			 ==, 0);
	g_assert_cmpint (g_chmod (*out_key, 0600), ==, 0);
}

static void
test_starttls_auth (Fixture *fixture, gconstpointer data)
{
	g_autofree char *cert = NULL;
	g_autofree char *key = NULL;
	g_autofree char *auth = NULL;
	g_autofree char *ingress = NULL;
	g_autofree char *server = NULL;
	g_autofree char *out = NULL;
	g_autoptr(GPtrArray) ids = NULL;

	if (!have_program ("swaks") || !have_program ("openssl"))
		return;
	make_certificate (fixture, &cert, &key);
	auth = sc_test_write_file (fixture->dir, "ingress-auth", "# user password\nalice correct horse\n");
	g_assert_cmpint (g_chmod (auth, 0600), ==, 0);
	/* 127.0.0.1 is outside allow=: it must AUTH */
	ingress = g_strdup_printf ("allow=192.0.2.0/24\ntls-cert-file=%s\ntls-key-file=%s\nauth-file=%s\n", cert, key, auth);
	start_daemon (fixture, NULL, ingress);
	server = g_strdup_printf ("127.0.0.1:%u", fixture->smtp_port);

	/* before STARTTLS: STARTTLS offered, AUTH not; MAIL refused */
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--from", "s@example.org", "--to", "a@example.org",
				     NULL),
			 !=, 0);
	g_assert_nonnull (strstr (out, "250-STARTTLS"));
	g_assert_null (strstr (out, "AUTH"));
	g_assert_nonnull (strstr (out, "530 5.7.0 "));

	/* TLS, wrong password */
	g_free (out);
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
				     "--auth-password", "wrong", "--from", "s@example.org", "--to", "a@example.org", NULL),
			 !=, 0);
	g_assert_nonnull (strstr (out, "535 5.7.8 "));
	g_assert_cmpuint (count_stored (fixture), ==, 0);

	/* TLS, AUTH PLAIN: stored; then AUTH LOGIN */
	g_free (out);
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
				     "--auth-password", "correct horse", "--from", "s@example.org", "--to", "a@example.org",
				     NULL),
			 ==, 0);
	g_assert_nonnull (strstr (out, "250-AUTH PLAIN LOGIN"));
	g_assert_nonnull (strstr (out, "235 2.7.0 "));
	g_free (out);
	g_assert_cmpint (run_client (&out, "swaks", "--server", server, "--tls", "--auth", "LOGIN", "--auth-user", "alice",
				     "--auth-password", "correct horse", "--from", "s@example.org", "--to", "a@example.org",
				     NULL),
			 ==, 0);
	ids = stored_ids (fixture);
	g_assert_cmpuint (ids->len, ==, 2);
	{
		g_autofree char *raw = exported (fixture, ids->pdata[0]);
		g_assert_nonnull (strstr (raw, "with ESMTPSA;"));
	}
}

/* The spool cannot take the message (another process holds its write
 * lock past busy-timeout): 451 4.3.0 after the data, never a 5xx, nothing
 * stored; the client's resend goes in once the lock is gone. */
static void
test_locked_spool (Fixture *fixture, gconstpointer data)
{
	g_autoptr(Client) client = NULL;
	g_autofree char *db_path = NULL;
	const char *transaction = "MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n";
	const char *message = "Subject: locked\r\nMessage-ID: <locked@example.org>\r\n\r\nbody\r\n.\r\n";
	sqlite3 *db = NULL;

	start_daemon (fixture, "busy-timeout=1s\n", NULL);
	db_path = g_build_filename (fixture->dir, "spool", "spool.db", NULL);
	g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
	sqlite3_busy_timeout (db, 10000); /* the daemon may be writing: wait our turn */
	client = client_connect (fixture->smtp_port);
	expect_reply (client, "220 ");
	client_send (client, "EHLO c\r\n", -1);
	expect_reply (client, "250-mx.test");
	client_send (client, transaction, -1);
	expect_reply (client, "250 2.1.0");
	expect_reply (client, "250 2.1.5");
	expect_reply (client, "354 ");
	g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	client_send (client, message, -1);
	expect_reply (client, "451 4.3.0 ");
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_assert_cmpuint (count_stored (fixture), ==, 0);
	/* the client keeps the message and tries again */
	client_send (client, transaction, -1);
	expect_reply (client, "250 2.1.0");
	expect_reply (client, "250 2.1.5");
	expect_reply (client, "354 ");
	client_send (client, message, -1);
	expect_reply (client, "250 2.0.0 Ok: queued as ");
	g_assert_cmpuint (count_stored (fixture), ==, 1);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
#define ADD(path, func, data) g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
	ADD ("/ingress-smtp/smtplib", test_smtplib, NULL);
	ADD ("/ingress-smtp/swaks", test_swaks, NULL);
	ADD ("/ingress-smtp/smuggling/normalize", test_smuggling, GINT_TO_POINTER (FALSE));
	ADD ("/ingress-smtp/smuggling/reject", test_smuggling, GINT_TO_POINTER (TRUE));
	ADD ("/ingress-smtp/pipelining", test_pipelining, NULL);
	ADD ("/ingress-smtp/limits", test_limits, NULL);
	ADD ("/ingress-smtp/timeouts", test_timeouts, NULL);
	ADD ("/ingress-smtp/slow-reader", test_slow_reader, NULL);
	ADD ("/ingress-smtp/write-timeout", test_write_timeout, NULL);
	ADD ("/ingress-smtp/disconnect-in-data", test_disconnect_in_data, NULL);
	ADD ("/ingress-smtp/lmtp", test_lmtp, GINT_TO_POINTER (FALSE));
	ADD ("/ingress-smtp/lmtp-unix", test_lmtp, GINT_TO_POINTER (TRUE));
	ADD ("/ingress-smtp/no-list", test_no_list, NULL);
	ADD ("/ingress-smtp/stop", test_stop, NULL);
	ADD ("/ingress-smtp/stop-at-start", test_stop_at_start, NULL);
	ADD ("/ingress-smtp/locked-spool", test_locked_spool, NULL);
	ADD ("/ingress-smtp/starttls-auth", test_starttls_auth, NULL);
#undef ADD
	return g_test_run ();
}
