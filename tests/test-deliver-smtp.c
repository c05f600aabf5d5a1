/* test-deliver-smtp.c — one SMTP transaction against real smtp-sink instances.
 *
 * Every case runs twice: under /deliver-smtp/ with the client
 * sc_smtp_connection_new() picks (the pipelined one for the plain
 * starttls=off mailers used here, libcurl where a case asks for TLS or
 * AUTH), and under /deliver-smtp/curl/ with libcurl forced, so that
 * neither client loses a case.
 *
 * smtp-sink's fault options apply to every instance of a command, so each
 * failure gets its own sink.  What smtp-sink cannot do (refuse some
 * recipients and take others, multi-line and non-UTF-8 replies, 552 after
 * ".", a reused connection the server has just dropped) is played by a
 * small scripted server at the end of this file.  TLS with a real
 * certificate is left to the private Postfix of sc-test-postfix.
 */
#include "config.h"

#include <curl/curl.h>
#include <glib/gstdio.h>

#include "sc-deliver-mailer.h"
#include "sc-deliver-smtp-private.h"
#include "sc-test-postfix.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

#define TEST_HELO "stagecoach.test"

/* the client of the running case: AUTO (pipelined here) or CURL */
static ScSmtpTransport test_transport;

static ScSmtpConnection *
test_connection_new (const ScMailerConfig *mailer)
{
	return sc_smtp_connection_new_with_transport (mailer, test_transport);
}

static gboolean
test_is_pipe (void)
{
	return test_transport != SC_SMTP_TRANSPORT_CURL;
}

typedef ScMailerConfig TestMailer;

static void
test_mailer_free (TestMailer *mailer)
{
	g_free (mailer->name);
	g_free (mailer->url);
	g_free (mailer->username);
	g_free (mailer->password_file);
	g_free (mailer->helo);
	g_free (mailer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestMailer, test_mailer_free)

static TestMailer *
test_mailer_new (const char *url)
{
	TestMailer *mailer = g_new0 (TestMailer, 1);

	mailer->name = g_strdup ("test");
	mailer->url = g_strdup (url);
	mailer->priority = 10;
	mailer->starttls = SC_STARTTLS_OFF;
	mailer->tls_verify = TRUE;
	mailer->max_recipients = 50;
	mailer->max_connections = 1;
	mailer->timeout = 10 * G_USEC_PER_SEC;
	mailer->helo = g_strdup (TEST_HELO);
	return mailer;
}

static TestMailer *
test_mailer_for_sink (ScTestSink *sink)
{
	g_autofree char *url = sc_test_sink_get_url (sink);

	return test_mailer_new (url);
}

/* A message with CRLF line ends: headers, then @n_lines body lines, one in
 * ten starting with a dot (which libcurl must stuff and smtp-sink unstuff). */
static GBytes *
test_message (guint n_lines)
{
	GString *text = g_string_new ("From: Ann <ann@example.org>\r\n"
				      "To: list@example.org\r\n"
				      "Message-ID: <m1@example.org>\r\n"
				      "Subject: hello\r\n"
				      "\r\n");

	for (guint i = 0; i < n_lines; i++) {
		if (i % 10 == 3)
			g_string_append_printf (text, ".line %u starts with a dot\r\n", i);
		else
			g_string_append_printf (text,
						"line %u of the body, long enough to be a line\r\n",
						i);
	}
	return g_string_free_to_bytes (text);
}

static const char *const three_recipients[] = {
    "one@example.org",
    "two@example.net",
    "three@example.com",
    NULL,
};

static ScSmtpRecipientResult *
result_recipient (ScSmtpResult *result, guint index)
{
	g_assert_cmpuint (index, <, result->recipients->len);
	return result->recipients->pdata[index];
}

static void
assert_bytes_equal (GBytes *got, GBytes *expected)
{
	if (!g_bytes_equal (got, expected)) {
		g_autofree char *got_text = g_strndup (g_bytes_get_data (got, NULL),
						       g_bytes_get_size (got));
		g_autofree char *expected_text = g_strndup (g_bytes_get_data (expected, NULL),
							    g_bytes_get_size (expected));

		g_assert_cmpstr (got_text, ==, expected_text);
		g_assert_cmpuint (g_bytes_get_size (got), ==, g_bytes_get_size (expected));
	}
}

/* The one complete dump of @sink. (transfer full) */
static ScTestSinkMessage *
sink_single_message (ScTestSink *sink)
{
	g_autoptr(GPtrArray) messages = NULL;

	g_assert_true (sc_test_sink_wait_messages (sink, 1, 5000));
	messages = sc_test_sink_get_messages (sink);
	g_assert_cmpuint (messages->len, ==, 1);
	return g_ptr_array_steal_index (messages, 0);
}

static void
test_smtp_send_three (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GBytes) message = test_message (20);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	g_assert_cmpstr (sc_smtp_connection_get_mailer_name (connection), ==, "test");
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 0);
	g_assert_true (sc_smtp_connection_is_pipe (connection) == test_is_pipe ());

	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	g_assert_cmpint (result->code, ==, 250);
	g_assert_cmpstr (result->reply, ==, "250 2.0.0 Ok");
	g_assert_cmpuint (result->recipients->len, ==, 3);
	for (guint i = 0; i < 3; i++) {
		ScSmtpRecipientResult *recipient = result_recipient (result, i);

		g_assert_cmpstr (recipient->address, ==, three_recipients[i]);
		g_assert_cmpint (recipient->code, ==, 250);
		g_assert_cmpstr (recipient->reply, ==, "250 2.1.5 Ok");
		g_assert_true (recipient->accepted);
	}
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);

	dump = sink_single_message (sink);
	g_assert_cmpstr (dump->helo, ==, TEST_HELO);
	g_assert_cmpstr (dump->sender, ==, "bounces@example.org");
	g_assert_cmpuint (dump->recipients->len, ==, 3);
	for (guint i = 0; i < 3; i++)
		g_assert_cmpstr (dump->recipients->pdata[i], ==, three_recipients[i]);
	assert_bytes_equal (dump->data, message);
}

static void
test_smtp_reuse (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *const first[] = {"a@example.org", NULL};
	const char *const second[] = {"b@example.org", NULL};

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	for (guint i = 0; i < 3; i++) {
		g_autoptr(ScSmtpResult) result = NULL;

		result = sc_smtp_send (connection,
				       "bounces@example.org",
				       i % 2 == 0 ? first : second,
				       message,
				       NULL);
		g_test_message ("%s: %s", G_STRFUNC, result->reply);
		g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	}
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
	g_assert_true (sc_test_sink_wait_messages (sink, 3, 5000));
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "a@example.org"), ==, 2);
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "b@example.org"), ==, 1);
}

/* The server went away between two transactions: the cached connection is
 * seen dead and a new one opened, nothing is reported. */
static void
test_smtp_reuse_after_restart (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result1 = NULL;
	g_autoptr(ScSmtpResult) result2 = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *const recipients[] = {"a@example.org", NULL};

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result1 = sc_smtp_send (connection, "", recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result1->reply);
	g_assert_cmpint (result1->status, ==, SC_SMTP_SENT);
	sc_test_sink_restart (sink, NULL);
	result2 = sc_smtp_send (connection, "", recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result2->reply);
	g_assert_cmpint (result2->status, ==, SC_SMTP_SENT);
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 2);
	g_assert_true (sc_test_sink_wait_messages (sink, 2, 5000));
}

/* Postfix closes an idle connection with "421 4.4.2 … timeout exceeded"
 * (smtpd_timeout): the pooled handle still looks alive to libcurl (there
 * are bytes to read), so MAIL FROM gets that 421.  It is the idle
 * connection's end, not the mailer refusing: one new connection, silently
 * (issue 7, defect 6). */
static void
test_smtp_reuse_after_idle_timeout (void)
{
	ScTestPostfixOptions options = {.smtpd_timeout = 1};
	g_autoptr(ScTestPostfix) postfix = sc_test_postfix_start (&options);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result1 = NULL;
	g_autoptr(ScSmtpResult) result2 = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autofree char *url = NULL;
	g_autofree char *log = NULL;

	if (postfix == NULL)
		return;
	url = sc_test_postfix_get_url (postfix);
	mailer = test_mailer_new (url);
	connection = test_connection_new (mailer);
	result1 = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result1->reply);
	g_assert_cmpint (result1->status, ==, SC_SMTP_SENT);
	/* until smtpd has timed the idle connection out and said so */
	for (guint waited = 0; waited < 200; waited++) {
		g_free (log);
		log = sc_test_postfix_get_log (postfix);
		if (strstr (log, "timeout after END-OF-MESSAGE") != NULL)
			break;
		g_usleep (50 * 1000);
	}
	g_assert_nonnull (strstr (log, "timeout after END-OF-MESSAGE"));
	result2 = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result2->reply);
	g_assert_cmpint (result2->status, ==, SC_SMTP_SENT);
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 2);
}

static void
test_smtp_all_refused_permanent (void)
{
	const char *const args[] = {"-f", "rcpt", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_ALL_REFUSED);
	g_assert_false (result->transient);
	g_assert_cmpint (result->code, ==, 500);
	for (guint i = 0; i < 3; i++) {
		ScSmtpRecipientResult *recipient = result_recipient (result, i);

		g_assert_cmpint (recipient->code, ==, 500);
		g_assert_cmpstr (recipient->reply, ==, "500 5.3.0 Error: command failed");
		g_assert_false (recipient->accepted);
	}
	g_assert_true (sc_test_sink_wait_dumps (sink, 0, 2000));
}

/* -r rcpt with our own soft-bounce text: transient, recorded verbatim */
static void
test_smtp_all_refused_transient (void)
{
	const char *const args[] = {
	    "-r", "rcpt", "-b", "452 4.5.3 Too many recipients, slow down", NULL,
	};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_ALL_REFUSED);
	g_assert_true (result->transient);
	for (guint i = 0; i < 3; i++) {
		ScSmtpRecipientResult *recipient = result_recipient (result, i);

		g_assert_cmpint (recipient->code, ==, 452);
		g_assert_cmpstr (recipient->reply, ==, "452 4.5.3 Too many recipients, slow down");
	}
}

static void
test_smtp_mail_soft_refused (void)
{
	const char *const args[] = {"-r", "mail", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 450);
	g_assert_cmpstr (result->reply, ==, "450 4.3.0 Error: command failed");
	for (guint i = 0; i < 3; i++) {
		g_assert_cmpint (result_recipient (result, i)->code, ==, 0);
		g_assert_null (result_recipient (result, i)->reply);
		g_assert_false (result_recipient (result, i)->accepted);
	}
}

static void
test_smtp_mail_hard_refused (void)
{
	const char *const args[] = {"-f", "mail", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_false (result->transient);
	g_assert_cmpint (result->code, ==, 500);
	g_assert_cmpstr (result->reply, ==, "500 5.3.0 Error: command failed");
}

/* a refused greeting is the mailer's state: transient even for 5xx */
static void
test_smtp_greeting_refused (void)
{
	const char *const args[] = {"-f", "connect", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 500);
	g_assert_cmpstr (result->reply, ==, "500 5.3.0 Error: command failed");
}

/* smtp-sink offers no STARTTLS: required refuses to go on in clear,
 * opportunistic sends in clear, smtps:// fails its handshake */
static void
test_smtp_starttls (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(TestMailer) mailer_tls = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpConnection) connection_tls = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) result_try = NULL;
	g_autoptr(ScSmtpResult) result_tls = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autofree char *url_tls = NULL;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->starttls = SC_STARTTLS_REQUIRED;
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_true (sc_test_sink_wait_dumps (sink, 0, 2000));
	g_clear_pointer (&connection, sc_smtp_connection_free);

	mailer->starttls = SC_STARTTLS_OPPORTUNISTIC;
	connection = test_connection_new (mailer);
	result_try = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_assert_cmpint (result_try->status, ==, SC_SMTP_SENT);

	url_tls = g_strdup_printf ("smtps://127.0.0.1:%u", sc_test_sink_get_port (sink));
	mailer_tls = test_mailer_new (url_tls);
	connection_tls = test_connection_new (mailer_tls);
	result_tls =
	    sc_smtp_send (connection_tls, "a@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result_tls->reply);
	g_assert_cmpint (result_tls->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result_tls->transient);
	g_assert_cmpint (result_tls->code, ==, 0);
}

static void
test_smtp_nothing_listening (void)
{
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autofree char *url = NULL;

	/* a port bound but not listening: connections are refused */
	socket = g_socket_new (G_SOCKET_FAMILY_IPV4,
			       G_SOCKET_TYPE_STREAM,
			       G_SOCKET_PROTOCOL_TCP,
			       NULL);
	g_assert_true (g_socket_bind (socket, address, FALSE, NULL));
	bound = g_socket_get_local_address (socket, NULL);
	url = g_strdup_printf ("smtp://127.0.0.1:%u",
			       g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
	mailer = test_mailer_new (url);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 0);
	g_assert_nonnull (result->reply);
	g_assert_nonnull (strstr (result->reply, "connect"));
	g_assert_cmpuint (result->recipients->len, ==, 3);
	g_assert_cmpint (result_recipient (result, 0)->code, ==, 0);
}

static void
test_smtp_data_hangup (void)
{
	const char *const args[] = {"-q", "data", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 0);
	/* the RCPT replies are kept; nobody has the message all the same */
	g_assert_true (result_recipient (result, 0)->accepted);
	g_assert_true (sc_test_sink_wait_dumps (sink, 0, 2000));
}

static void
test_smtp_data_421 (void)
{
	const char *const args[] = {"-Q", "data", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 421);
	g_assert_cmpstr (result->reply, ==, "421 4.0.0 Server closing connection");
	g_assert_true (sc_test_sink_wait_dumps (sink, 0, 2000));
}

/* smtp-sink answers DATA, then 550 and stops reading: the body never ends */
static void
test_smtp_body_aborted (void)
{
	const char *const args[] = {"-A", "0", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (100000);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->timeout = 2 * G_USEC_PER_SEC;
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_FAILED);
	g_assert_true (result->transient);
	g_assert_true (sc_test_sink_wait_dumps (sink, 0, 2000));
}

/* smtp-sink got the whole message and "." and hung up without a reply: it
 * has the message, and we must say we cannot know */
static void
test_smtp_dot_hangup (void)
{
	const char *const args[] = {"-q", ".", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_UNKNOWN);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 0);
	g_assert_nonnull (strstr (result->reply, "may have accepted"));
	g_assert_true (sc_test_sink_wait_dumps (sink, 1, 2000));
}

static void
test_smtp_dot_refused (void)
{
	const char *const hard[] = {"-f", ".", NULL};
	const char *const soft[] = {"-r", ".", NULL};
	g_autoptr(GBytes) message = test_message (5);

	for (guint i = 0; i < 2; i++) {
		g_autoptr(ScTestSink) sink = sc_test_sink_start (i == 0 ? hard : soft);
		g_autoptr(TestMailer) mailer = NULL;
		g_autoptr(ScSmtpConnection) connection = NULL;
		g_autoptr(ScSmtpResult) result = NULL;

		if (sink == NULL)
			return;
		mailer = test_mailer_for_sink (sink);
		connection = test_connection_new (mailer);
		result = sc_smtp_send (connection, "", three_recipients, message, NULL);
		g_test_message ("%s: %s", G_STRFUNC, result->reply);
		g_assert_cmpint (result->status, ==, SC_SMTP_DATA_FAILED);
		g_assert_cmpint (result->code, ==, i == 0 ? 500 : 450);
		g_assert_true (result->transient == (i == 1));
	}
}

/* one second per command: a 5 s pause before the reply to MAIL fails in one
 * to two (libcurl 7.88 looks at the reply timeout about once a second).
 * -p: smtp-sink's -W answers the later commands of a pipelined group
 * before the delayed one, out of order (a real server cannot). */
static void
test_smtp_timeout (void)
{
	const char *const args[] = {"-p", "-W", "mail:20", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	gint64 start;
	gint64 elapsed;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->timeout = G_USEC_PER_SEC;
	connection = test_connection_new (mailer);
	start = g_get_monotonic_time ();
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	elapsed = g_get_monotonic_time () - start;
	g_test_message ("timed out after %" G_GINT64_FORMAT " ms", elapsed / 1000);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 0);
	g_assert_nonnull (strstr (result->reply, "MAIL FROM"));
	g_assert_cmpint (elapsed, >=, G_USEC_PER_SEC / 2);
	/* curl checks the response timeout about once a second, and shared CI
	 * machines are slow: the bound only proves it did not wait for the
	 * sink's reply */
	g_assert_cmpint (elapsed, <, 8 * G_USEC_PER_SEC);
}

static gpointer
cancel_later_thread (gpointer user_data)
{
	g_usleep (300 * 1000);
	g_cancellable_cancel (user_data);
	return NULL;
}

/* cancelled while RCPT waits: before DATA, so the mailer "failed", transient */
static void
test_smtp_cancel (void)
{
	/* -p: see test_smtp_timeout */
	const char *const args[] = {"-p", "-W", "rcpt:20", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) result_again = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autoptr(GCancellable) cancellable = g_cancellable_new ();
	GThread *thread;
	gint64 start;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	thread = g_thread_new ("cancel", cancel_later_thread, cancellable);
	start = g_get_monotonic_time ();
	result = sc_smtp_send (connection,
			       "bounces@example.org",
			       three_recipients,
			       message,
			       cancellable);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_thread_join (thread);
	g_assert_cmpint (g_get_monotonic_time () - start, <, 8 * G_USEC_PER_SEC); /* not the sink's 20 s */
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_nonnull (strstr (result->reply, "cancelled"));

	/* already cancelled: nothing is even tried */
	result_again = sc_smtp_send (connection, "", three_recipients, message, cancellable);
	g_test_message ("%s: %s", G_STRFUNC, result_again->reply);
	g_assert_cmpint (result_again->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result_again->transient);
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
}

/* cancelled while waiting for the reply to ".": the server may take the
 * message, so the reply is awaited and the transaction counts (issue 7,
 * defect 4: aborting here made every recipient a duplicate) */
static void
test_smtp_cancel_after_dot (void)
{
	const char *const args[] = {"-W", ".:2", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autoptr(GCancellable) cancellable = g_cancellable_new ();
	GThread *thread;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	thread = g_thread_new ("cancel", cancel_later_thread, cancellable);
	result = sc_smtp_send (connection, "", three_recipients, message, cancellable);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_thread_join (thread);
	g_assert_true (g_cancellable_is_cancelled (cancellable));
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	g_assert_cmpint (result->code, ==, 250);
	g_assert_true (sc_test_sink_wait_messages (sink, 1, 5000));
}

/* … but not forever: a reply that does not come within the mailer's
 * timeout leaves it unknown (the server may have it) */
static void
test_smtp_cancel_after_dot_timeout (void)
{
	const char *const args[] = {"-W", ".:30", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (args);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autoptr(GCancellable) cancellable = g_cancellable_new ();
	GThread *thread;
	gint64 start;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->timeout = 2 * G_USEC_PER_SEC;
	connection = test_connection_new (mailer);
	thread = g_thread_new ("cancel", cancel_later_thread, cancellable);
	start = g_get_monotonic_time ();
	result = sc_smtp_send (connection, "", three_recipients, message, cancellable);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_thread_join (thread);
	g_assert_cmpint (g_get_monotonic_time () - start, <, 20 * G_USEC_PER_SEC); /* not the 30 s */
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_UNKNOWN);
	g_assert_true (result->transient);
}

static void
test_smtp_password_missing (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autofree char *dir = sc_test_make_tmpdir ("sc-test-smtp");

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->username = g_strdup ("lists");
	mailer->password_file = g_build_filename (dir, "no-such-password", NULL);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_cmpint (result->code, ==, 0);
	g_assert_nonnull (strstr (result->reply, mailer->password_file));
	g_assert_nonnull (strstr (result->reply, "password file"));
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 0);
	sc_test_remove_tree (dir);
}

/* smtp-sink answers AUTH with 250 where 334 is due: curl's "Login denied",
 * transient, and neither the password nor its base64 shows anywhere */
static void
test_smtp_password_not_shown (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autofree char *dir = sc_test_make_tmpdir ("sc-test-smtp");
	g_autofree char *encoded = g_base64_encode ((const guchar *) "\0lists\0s3cret-pw", 16);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	mailer->username = g_strdup ("lists");
	mailer->password_file = sc_test_write_file (dir, "password", "s3cret-pw\n");
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_true (result->transient);
	g_assert_nonnull (strstr (result->reply, "AUTH"));
	g_assert_null (strstr (result->reply, "s3cret"));
	g_assert_null (strstr (result->reply, encoded));
	sc_test_remove_tree (dir);
}

static void
test_smtp_null_sender (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GBytes) message = test_message (5);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	g_assert_cmpstr (dump->sender, ==, "");
	assert_bytes_equal (dump->data, message);
}

static void
test_smtp_large (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GBytes) message = test_message (22000);

	if (sink == NULL)
		return;
	g_assert_cmpuint (g_bytes_get_size (message), >, 1000 * 1000);
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	assert_bytes_equal (dump->data, message);
}

/* bare LF become CRLF; a message without a final line end gets one */
static void
test_smtp_bare_lf (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	const char lf[] = "Subject: lf\n\n.dot\nmixed\r\nend";
	const char crlf[] = "Subject: lf\r\n\r\n.dot\r\nmixed\r\nend\r\n";
	g_autoptr(GBytes) message = g_bytes_new_static (lf, strlen (lf));
	g_autoptr(GBytes) expected = g_bytes_new_static (crlf, strlen (crlf));

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	assert_bytes_equal (dump->data, expected);
}

/* A large message with bare LF, converted while libcurl reads it (no copy):
 * CR and LF of one line end fall into different read buffers, dots after
 * bare LF are stuffed, and the body size on the wire matches (the warning
 * about libcurl's stuffing would fail the test). */
static void
test_smtp_bare_lf_large (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GString) lf = g_string_new ("Subject: large lf\n\n");
	g_autoptr(GString) crlf = g_string_new ("Subject: large lf\r\n\r\n");
	g_autoptr(GBytes) message = NULL;
	g_autoptr(GBytes) expected = NULL;

	if (sink == NULL)
		return;
	for (guint i = 0; i < 20000; i++) {
		/* line lengths vary so that line ends land on every buffer offset */
		g_autofree char *line = g_strdup_printf ("%sline %u %.*s", i % 7 == 0 ? "." : "", i,
							 (int) (i % 61), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

		g_string_append (lf, line);
		g_string_append (lf, i % 5 == 0 ? "\r\n" : "\n");
		g_string_append (crlf, line);
		g_string_append (crlf, "\r\n");
	}
	message = g_string_free_to_bytes (g_steal_pointer (&lf));
	expected = g_string_free_to_bytes (g_steal_pointer (&crlf));
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	assert_bytes_equal (dump->data, expected);
}

/* dots where libcurl must stuff them: first byte, a lone ".", "..", and a
 * last line "." without CRLF (libcurl ends it before its own ".") */
static void
test_smtp_dots (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	const char text[] = ".first: line\r\n\r\n.\r\n..two\r\n\r\n.\r\nend\r\n.";
	const char received[] = ".first: line\r\n\r\n.\r\n..two\r\n\r\n.\r\nend\r\n.\r\n";
	g_autoptr(GBytes) message = g_bytes_new_static (text, strlen (text));
	g_autoptr(GBytes) expected = g_bytes_new_static (received, strlen (received));

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	assert_bytes_equal (dump->data, expected);
}

static void
test_smtp_unsafe_addresses (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) none = NULL;
	g_autoptr(ScSmtpResult) bad_sender = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *const mixed[] = {
	    "evil@example.org>\r\nRCPT TO:<victim@example.org",
	    "ok@example.org",
	    "<angle@example.org>",
	    "",
	    NULL,
	};
	const char *const all_bad[] = {"a\n@example.org", "b\r@example.org", NULL};

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", mixed, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	g_assert_cmpuint (result->recipients->len, ==, 4);
	for (guint i = 0; i < 4; i++) {
		ScSmtpRecipientResult *recipient = result_recipient (result, i);

		g_assert_cmpstr (recipient->address, ==, mixed[i]);
		if (i == 1) {
			g_assert_true (recipient->accepted);
			continue;
		}
		g_assert_false (recipient->accepted);
		g_assert_cmpint (recipient->code, ==, 553);
		g_assert_true (g_str_has_prefix (recipient->reply, "553 5.1.3 "));
	}
	dump = sink_single_message (sink);
	g_assert_cmpuint (dump->recipients->len, ==, 1);
	g_assert_cmpstr (dump->recipients->pdata[0], ==, "ok@example.org");
	g_assert_cmpuint (sc_test_sink_count_recipient (sink, "victim@example.org"), ==, 0);

	/* none left to send to: refused without a connection */
	none = sc_smtp_send (connection, "bounces@example.org", all_bad, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, none->reply);
	g_assert_cmpint (none->status, ==, SC_SMTP_ALL_REFUSED);
	g_assert_false (none->transient);
	g_assert_cmpint (none->code, ==, 553);

	bad_sender =
	    sc_smtp_send (connection, "x@example.org>\r\nRSET", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, bad_sender->reply);
	g_assert_cmpint (bad_sender->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_false (bad_sender->transient);
	g_assert_cmpint (bad_sender->code, ==, 553);
	g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
}

/* without helo = the EHLO name is the host's name */
static void
test_smtp_helo_default (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScTestSinkMessage) dump = NULL;
	g_autoptr(GBytes) message = test_message (1);

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	g_clear_pointer (&mailer->helo, g_free);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	dump = sink_single_message (sink);
	g_assert_cmpstr (dump->helo, ==, g_get_host_name ());
}

/* A scripted server for what smtp-sink cannot do.  One thread, one
 * connection at a time; replies come from the fields below. */
typedef struct {
	GSocketListener *listener;  /* (owned) */
	GCancellable *cancellable;  /* (owned) stops the accept loop */
	GThread *thread;            /* (owned) */
	guint16 port;
	GHashTable *rcpt_replies;   /* (owned) address -> whole reply, CRLF lines */
	const char *dot_reply;      /* (nullable) reply to ".", default 250 */
	const char *mail_reply;     /* (nullable) reply to MAIL, default 250; set
				     * between transactions only */
	gboolean no_pipelining;     /* EHLO does not offer PIPELINING */
	gboolean data_354_always;   /* broken: 354 to DATA even without a recipient */
	guint mail_delay_ms;        /* a pause before the reply to MAIL */
	gint hangup_at_mail;        /* hang up at this MAIL, counted over all connections
				     * from 1, instead of replying; 0 never */
	gint close_421_at_mail;     /* the same, but "421" first (an idle timeout) */
	gint connections;           /* accessed atomically */
	gint mails;                 /* accessed atomically */
	gint messages;              /* accessed atomically; with a recipient */
	gint empty_messages;        /* accessed atomically; "." after a 354 without one */
	gint pipelined;             /* accessed atomically; MAILs that came with more
				     * commands behind them, unanswered */
	gint rsets;                 /* accessed atomically */
} FakeServer;

static gboolean
fake_write (GOutputStream *output, const char *text)
{
	return g_output_stream_write_all (output, text, strlen (text), NULL, NULL, NULL);
}

static void
fake_serve (FakeServer *fake, GSocketConnection *connection)
{
	GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (connection));
	g_autoptr(GDataInputStream) input =
	    g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));

	gboolean mail_ok = FALSE;
	guint rcpt_ok = 0;

	g_data_input_stream_set_newline_type (input, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
	if (!fake_write (output, "220 fake.test ESMTP\r\n"))
		return;
	for (;;) {
		g_autofree char *line = g_data_input_stream_read_line (input, NULL, NULL, NULL);
		g_autofree char *upper = NULL;

		if (line == NULL)
			return;
		upper = g_ascii_strup (line, -1);
		if (g_str_has_prefix (upper, "EHLO ")) {
			fake_write (output,
				    fake->no_pipelining ? "250-fake.test\r\n"
							  "250 ENHANCEDSTATUSCODES\r\n"
							: "250-fake.test\r\n"
							  "250-PIPELINING\r\n"
							  "250 ENHANCEDSTATUSCODES\r\n");
		} else if (g_str_has_prefix (upper, "MAIL FROM:")) {
			gint mail = g_atomic_int_add (&fake->mails, 1) + 1;

			if (g_buffered_input_stream_get_available (G_BUFFERED_INPUT_STREAM (input)) > 0)
				g_atomic_int_inc (&fake->pipelined);
			if (mail == fake->hangup_at_mail)
				return;
			if (mail == fake->close_421_at_mail) {
				fake_write (output, "421 4.4.2 fake.test Error: timeout exceeded\r\n");
				return;
			}
			if (fake->mail_delay_ms > 0)
				g_usleep (fake->mail_delay_ms * 1000);
			mail_ok = fake->mail_reply == NULL;
			rcpt_ok = 0;
			fake_write (output, mail_ok ? "250 2.1.0 Ok\r\n" : fake->mail_reply);
		} else if (g_str_has_prefix (upper, "RCPT TO:<")) {
			g_autofree char *address = g_strndup (line + 9, strcspn (line + 9, ">"));
			const char *reply = g_hash_table_lookup (fake->rcpt_replies, address);

			if (!mail_ok) {
				fake_write (output, "503 5.5.1 Error: need MAIL command\r\n");
				continue;
			}
			if (reply == NULL || reply[0] == '2')
				rcpt_ok++;
			fake_write (output, reply != NULL ? reply : "250 2.1.5 Ok\r\n");
		} else if (strcmp (upper, "RSET") == 0) {
			g_atomic_int_inc (&fake->rsets);
			mail_ok = FALSE;
			rcpt_ok = 0;
			fake_write (output, "250 2.0.0 Ok\r\n");
		} else if (strcmp (upper, "DATA") == 0) {
			if (!mail_ok && !fake->data_354_always) {
				fake_write (output, "503 5.5.1 Error: need MAIL command\r\n");
				continue;
			}
			if (rcpt_ok == 0 && !fake->data_354_always) {
				fake_write (output, "554 5.5.1 Error: no valid recipients\r\n");
				continue;
			}
			fake_write (output, "354 End data with <CR><LF>.<CR><LF>\r\n");
			for (;;) {
				g_autofree char *body_line =
				    g_data_input_stream_read_line (input, NULL, NULL, NULL);

				if (body_line == NULL)
					return;
				if (strcmp (body_line, ".") == 0)
					break;
			}
			g_atomic_int_inc (rcpt_ok > 0 ? &fake->messages : &fake->empty_messages);
			mail_ok = FALSE;
			rcpt_ok = 0;
			fake_write (output,
				    fake->dot_reply != NULL ? fake->dot_reply
							    : "250 2.0.0 Ok: queued as FAKE\r\n");
		} else if (strcmp (upper, "QUIT") == 0) {
			fake_write (output, "221 2.0.0 Bye\r\n");
			return;
		} else {
			fake_write (output, "502 5.5.2 Error: command not recognized\r\n");
		}
	}
}

static gpointer
fake_thread (gpointer user_data)
{
	FakeServer *fake = user_data;

	for (;;) {
		g_autoptr(GSocketConnection) connection =
		    g_socket_listener_accept (fake->listener, NULL, fake->cancellable, NULL);

		if (connection == NULL)
			return NULL;
		g_atomic_int_inc (&fake->connections);
		fake_serve (fake, connection);
		(void) g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
	}
}

static FakeServer *
fake_server_new (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) effective = NULL;
	FakeServer *fake = g_new0 (FakeServer, 1);

	fake->listener = g_socket_listener_new ();
	fake->cancellable = g_cancellable_new ();
	fake->rcpt_replies = g_hash_table_new (g_str_hash, g_str_equal);
	g_socket_listener_add_address (fake->listener,
				       address,
				       G_SOCKET_TYPE_STREAM,
				       G_SOCKET_PROTOCOL_TCP,
				       NULL,
				       &effective,
				       &error);
	g_assert_no_error (error);
	fake->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
	return fake;
}

static void
fake_server_start (FakeServer *fake)
{
	fake->thread = g_thread_new ("fake-smtp", fake_thread, fake);
}

static void
fake_server_free (FakeServer *fake)
{
	g_cancellable_cancel (fake->cancellable);
	if (fake->thread != NULL)
		g_thread_join (fake->thread);
	g_socket_listener_close (fake->listener);
	g_object_unref (fake->listener);
	g_object_unref (fake->cancellable);
	g_hash_table_unref (fake->rcpt_replies);
	g_free (fake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeServer, fake_server_free)

static TestMailer *
test_mailer_for_fake (FakeServer *fake)
{
	g_autofree char *url = g_strdup_printf ("smtp://127.0.0.1:%u", fake->port);

	return test_mailer_new (url);
}

/* some recipients refused, one with a multi-line reply: the others get it */
static void
test_smtp_partial_multiline (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *gone_reply =
	    "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
	    "550-5.1.1 Please try double-checking the recipient's email\r\n"
	    "550 5.1.1 address for typos.\r\n";
	const char *const recipients[] = {
	    "ok@example.org",
	    "gone@example.org",
	    "busy@example.org",
	    NULL,
	};

	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "gone@example.org",
			     (gpointer) gone_reply);
	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "busy@example.org",
			     (gpointer) "450 4.2.1 Mailbox busy\r\n");
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	g_assert_cmpstr (result->reply, ==, "250 2.0.0 Ok: queued as FAKE");
	g_assert_true (result_recipient (result, 0)->accepted);
	g_assert_cmpint (result_recipient (result, 0)->code, ==, 250);
	g_assert_false (result_recipient (result, 1)->accepted);
	g_assert_cmpint (result_recipient (result, 1)->code, ==, 550);
	g_assert_cmpstr (result_recipient (result, 1)->reply,
			 ==,
			 "550-5.1.1 The email account that you tried to reach does not exist.\n"
			 "550-5.1.1 Please try double-checking the recipient's email\n"
			 "550 5.1.1 address for typos.");
	g_assert_false (result_recipient (result, 2)->accepted);
	g_assert_cmpint (result_recipient (result, 2)->code, ==, 450);
	g_assert_cmpstr (result_recipient (result, 2)->reply, ==, "450 4.2.1 Mailbox busy");
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 1);
	/* the envelope went out in one write (libcurl waits for each reply) */
	g_assert_cmpint (g_atomic_int_get (&fake->pipelined), ==, test_is_pipe () ? 1 : 0);
}

/* a hostile server's reply is cut, and made valid UTF-8 */
static void
test_smtp_reply_limits (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autoptr(GString) long_reply = g_string_new (NULL);
	const char *const recipients[] = {"long@example.org", "latin1@example.org", NULL};

	for (guint i = 0; i < 200; i++)
		g_string_append (long_reply, "550-5.1.1 repeated to make it far too long\r\n");
	g_string_append (long_reply, "550 5.1.1 end\r\n");
	g_hash_table_insert (fake->rcpt_replies, (gpointer) "long@example.org", long_reply->str);
	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "latin1@example.org",
			     (gpointer) "550 5.1.1 Empf\xe4nger unbekannt\r\n");
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_ALL_REFUSED);
	g_assert_false (result->transient);
	g_assert_cmpint (result_recipient (result, 0)->code, ==, 550);
	g_assert_cmpuint (strlen (result_recipient (result, 0)->reply), <=, 4096 + 8);
	g_assert_true (g_str_has_suffix (result_recipient (result, 0)->reply, "\n[…]"));
	g_assert_true (g_utf8_validate (result_recipient (result, 1)->reply, -1, NULL));
	g_assert_true (g_str_has_prefix (result_recipient (result, 1)->reply, "550 5.1.1 Empf"));
}

/* 552 5.3.4 after ".": the message itself is refused for good */
static void
test_smtp_dot_552 (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);

	fake->dot_reply = "552 5.3.4 Message size exceeds fixed limit\r\n";
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_DATA_FAILED);
	g_assert_false (result->transient);
	g_assert_cmpint (result->code, ==, 552);
	g_assert_cmpstr (result->reply, ==, "552 5.3.4 Message size exceeds fixed limit");
}

/* The server drops an idle connection just as it is reused, without a
 * word, or after "421" (an idle timeout, as Postfix's smtpd_timeout): one
 * silent retry on a new connection, not a mailer failure. */
static void
test_smtp_reuse_race (void)
{
	g_autoptr(GBytes) message = test_message (5);

	for (guint with_421 = 0; with_421 < 2; with_421++) {
		g_autoptr(FakeServer) fake = fake_server_new ();
		g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
		g_autoptr(ScSmtpConnection) connection = NULL;
		g_autoptr(ScSmtpResult) result1 = NULL;
		g_autoptr(ScSmtpResult) result2 = NULL;

		if (with_421)
			fake->close_421_at_mail = 2;
		else
			fake->hangup_at_mail = 2;
		fake_server_start (fake);
		connection = test_connection_new (mailer);
		result1 = sc_smtp_send (connection, "bounces@example.org", three_recipients, message,
					NULL);
		g_test_message ("%s: %s", G_STRFUNC, result1->reply);
		g_assert_cmpint (result1->status, ==, SC_SMTP_SENT);
		result2 = sc_smtp_send (connection, "bounces@example.org", three_recipients, message,
					NULL);
		g_test_message ("%s: %s", G_STRFUNC, result2->reply);
		g_assert_cmpint (result2->status, ==, SC_SMTP_SENT);
		g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 2);
		g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 2);
		g_assert_cmpint (g_atomic_int_get (&fake->connections), ==, 2);
	}
}

/* MAIL refused with RCPT and DATA already on their way: their replies are
 * read and dropped, the result is MAIL's, and the connection stays in step
 * for the next transaction. */
static void
test_smtp_pipelined_mail_refused (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) next = NULL;
	g_autoptr(GBytes) message = test_message (5);

	fake->mail_reply = "550 5.7.1 <bounces@example.org>: Sender address rejected\r\n";
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_false (result->transient);
	g_assert_cmpint (result->code, ==, 550);
	g_assert_cmpstr (result->reply,
			 ==,
			 "550 5.7.1 <bounces@example.org>: Sender address rejected");
	for (guint i = 0; i < 3; i++) {
		g_assert_cmpint (result_recipient (result, i)->code, ==, 0);
		g_assert_null (result_recipient (result, i)->reply);
	}
	fake->mail_reply = NULL;
	next = sc_smtp_send (connection, "bounces@example.org", three_recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, next->reply);
	g_assert_cmpint (next->status, ==, SC_SMTP_SENT);
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 1);
	if (test_is_pipe ()) {
		g_assert_cmpint (g_atomic_int_get (&fake->pipelined), ==, 2);
		g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
	}
}

/* every RCPT refused under pipelining: DATA's 554 is read and dropped, the
 * result is ALL_REFUSED with the recipients' replies, RSET ends the
 * transaction, and the connection serves the next one */
static void
test_smtp_pipelined_all_refused (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *const refused[] = {"gone@example.org", "busy@example.org", NULL};
	const char *const good[] = {"ok@example.org", NULL};

	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "gone@example.org",
			     (gpointer) "550 5.1.1 <gone@example.org>: Recipient address rejected\r\n");
	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "busy@example.org",
			     (gpointer) "450 4.2.1 Mailbox busy\r\n");
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	/* twice: the second time a broken server answers DATA with 354 */
	for (guint round = 0; round < 2; round++) {
		g_autoptr(ScSmtpResult) result = NULL;
		g_autoptr(ScSmtpResult) next = NULL;

		fake->data_354_always = round == 1;
		result = sc_smtp_send (connection, "bounces@example.org", refused, message, NULL);
		g_test_message ("%s: %s", G_STRFUNC, result->reply);
		g_assert_cmpint (result->status, ==, SC_SMTP_ALL_REFUSED);
		/* one of them may change */
		g_assert_true (result->transient);
		g_assert_cmpint (result->code, ==, 450);
		g_assert_cmpstr (result->reply, ==, "450 4.2.1 Mailbox busy");
		g_assert_cmpint (result_recipient (result, 0)->code, ==, 550);
		g_assert_cmpstr (result_recipient (result, 0)->reply,
				 ==,
				 "550 5.1.1 <gone@example.org>: Recipient address rejected");
		g_assert_false (result_recipient (result, 0)->accepted);
		g_assert_cmpint (result_recipient (result, 1)->code, ==, 450);
		g_assert_false (result_recipient (result, 1)->accepted);

		next = sc_smtp_send (connection, "bounces@example.org", good, message, NULL);
		g_test_message ("%s: %s", G_STRFUNC, next->reply);
		g_assert_cmpint (next->status, ==, SC_SMTP_SENT);
	}
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 2);
	if (test_is_pipe ()) {
		g_assert_cmpint (g_atomic_int_get (&fake->empty_messages), ==, 1);
		g_assert_cmpint (g_atomic_int_get (&fake->rsets), ==, 2);
		g_assert_cmpint (g_atomic_int_get (&fake->pipelined), ==, 4);
		g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
	}
}

/* no PIPELINING offered: one command, one reply, same results */
static void
test_smtp_pipelining_not_offered (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) refused = NULL;
	g_autoptr(GBytes) message = test_message (5);
	const char *const recipients[] = {"ok@example.org", "gone@example.org", NULL};
	const char *const gone[] = {"gone@example.org", NULL};

	fake->no_pipelining = TRUE;
	g_hash_table_insert (fake->rcpt_replies,
			     (gpointer) "gone@example.org",
			     (gpointer) "550 5.1.1 No such user\r\n");
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", recipients, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	g_assert_true (result_recipient (result, 0)->accepted);
	g_assert_cmpint (result_recipient (result, 1)->code, ==, 550);
	refused = sc_smtp_send (connection, "bounces@example.org", gone, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, refused->reply);
	g_assert_cmpint (refused->status, ==, SC_SMTP_ALL_REFUSED);
	g_assert_false (refused->transient);
	g_assert_cmpint (g_atomic_int_get (&fake->pipelined), ==, 0);
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 1);
	if (test_is_pipe ()) {
		g_assert_cmpint (g_atomic_int_get (&fake->rsets), ==, 1);
		g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
	}
}

/* smtp-sink -p (no PIPELINING) and -f ehlo (EHLO refused: HELO, as
 * libcurl): the message arrives the same */
static void
test_smtp_no_pipelining_sink (void)
{
	const char *const no_pipelining[] = {"-p", NULL};
	const char *const no_ehlo[] = {"-f", "ehlo", NULL};
	g_autoptr(GBytes) message = test_message (40);

	for (guint i = 0; i < 2; i++) {
		g_autoptr(ScTestSink) sink = sc_test_sink_start (i == 0 ? no_pipelining : no_ehlo);
		g_autoptr(TestMailer) mailer = NULL;
		g_autoptr(ScSmtpConnection) connection = NULL;
		g_autoptr(ScSmtpResult) result = NULL;
		g_autoptr(ScTestSinkMessage) dump = NULL;

		if (sink == NULL)
			return;
		mailer = test_mailer_for_sink (sink);
		connection = test_connection_new (mailer);
		result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
		g_test_message ("%s: %s", G_STRFUNC, result->reply);
		g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
		dump = sink_single_message (sink);
		g_assert_cmpstr (dump->helo, ==, TEST_HELO);
		g_assert_cmpuint (dump->recipients->len, ==, 3);
		assert_bytes_equal (dump->data, message);
	}
}

/* a server that takes its time over MAIL, with RCPT and DATA queued
 * behind it (smtp-sink's -W would answer those first): the mailer's
 * timeout, then cancellation, each ends it as a mailer failure */
static void
test_smtp_pipelined_stall (void)
{
	g_autoptr(GBytes) message = test_message (5);

	for (guint cancel = 0; cancel < 2; cancel++) {
		g_autoptr(FakeServer) fake = fake_server_new ();
		g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
		g_autoptr(ScSmtpConnection) connection = NULL;
		g_autoptr(ScSmtpResult) result = NULL;
		g_autoptr(GCancellable) cancellable = g_cancellable_new ();
		GThread *thread = NULL;
		gint64 start;
		gint64 elapsed;

		fake->mail_delay_ms = 3000;
		fake_server_start (fake);
		mailer->timeout = cancel ? 10 * G_USEC_PER_SEC : G_USEC_PER_SEC;
		connection = test_connection_new (mailer);
		if (cancel)
			thread = g_thread_new ("cancel", cancel_later_thread, cancellable);
		start = g_get_monotonic_time ();
		result = sc_smtp_send (connection,
				       "bounces@example.org",
				       three_recipients,
				       message,
				       cancellable);
		elapsed = g_get_monotonic_time () - start;
		g_test_message ("%s: %s after %" G_GINT64_FORMAT " ms",
				G_STRFUNC,
				result->reply,
				elapsed / 1000);
		if (thread != NULL)
			g_thread_join (thread);
		g_assert_cmpint (result->status, ==, SC_SMTP_MAILER_FAILED);
		g_assert_true (result->transient);
		g_assert_cmpint (result->code, ==, 0);
		g_assert_nonnull (strstr (result->reply, "MAIL FROM"));
		g_assert_nonnull (strstr (result->reply, cancel ? "cancelled" : ":"));
		/* (the reply would have made it SENT: no bound on the time needed) */
		g_assert_cmpint (result_recipient (result, 0)->code, ==, 0);
	}
}

/* bodies without a last line end or ending in a bare CR: the same bytes
 * libcurl sends ("\r\n.\r\n" after anything but CRLF).  (An empty body,
 * ".\r\n" alone from both, leaves a dump smtp-sink never completes.) */
static void
test_smtp_odd_endings (void)
{
	g_autoptr(ScTestSink) sink = sc_test_sink_start (NULL);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpConnection) connection = NULL;
	const char *const bodies[] = {
	    "Subject: cr\r\n\r\nends in CR\r",
	    "Subject: x\r\n\r\n.",
	    "\n.\n..\n",
	};
	const char *const received[] = {
	    /* sent "CR\r\r\n": smtp-sink keeps one CR of a line end */
	    "Subject: cr\r\n\r\nends in CR\r\n",
	    "Subject: x\r\n\r\n.\r\n",
	    "\r\n.\r\n..\r\n",
	};

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	connection = test_connection_new (mailer);
	for (guint i = 0; i < G_N_ELEMENTS (bodies); i++) {
		g_autoptr(GBytes) message = g_bytes_new_static (bodies[i], strlen (bodies[i]));
		g_autoptr(ScSmtpResult) result = NULL;

		result = sc_smtp_send (connection, "a@example.org", three_recipients, message, NULL);
		g_test_message ("%s: %s", G_STRFUNC, result->reply);
		g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	}
	g_assert_true (sc_test_sink_wait_messages (sink, G_N_ELEMENTS (bodies), 5000));
	{
		g_autoptr(GPtrArray) messages = sc_test_sink_get_messages (sink);
		guint matched = 0;

		for (guint i = 0; i < messages->len; i++) {
			ScTestSinkMessage *dump = messages->pdata[i];
			for (guint j = 0; j < G_N_ELEMENTS (received); j++) {
				if (g_bytes_get_size (dump->data) == strlen (received[j]) &&
				    memcmp (g_bytes_get_data (dump->data, NULL),
					    received[j],
					    strlen (received[j])) == 0)
					matched++;
			}
		}
		g_assert_cmpuint (matched, ==, G_N_ELEMENTS (received));
	}
}

/* More recipients than one pipelined group holds (the pipelined client
 * writes them in groups of 100, reading each group's replies before the
 * next, so that a server blocked writing replies never blocks our write):
 * refusals on both sides of each group boundary keep their own replies,
 * and a refused MAIL drops exactly the replies of what was written, so the
 * next transaction on the same connection is in step. */
static void
test_smtp_pipelined_groups (void)
{
	g_autoptr(FakeServer) fake = fake_server_new ();
	g_autoptr(TestMailer) mailer = test_mailer_for_fake (fake);
	g_autoptr(ScSmtpConnection) connection = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(ScSmtpResult) refused = NULL;
	g_autoptr(ScSmtpResult) after = NULL;
	g_autoptr(GBytes) message = test_message (5);
	g_autoptr(GPtrArray) recipients = g_ptr_array_new_with_free_func (g_free);
	const guint refused_at[] = {0, 99, 100, 199, 200, 249};
	const char *const one[] = {"one@example.org", NULL};

	for (guint i = 0; i < 250; i++)
		g_ptr_array_add (recipients, g_strdup_printf ("r%03u@example.org", i));
	g_ptr_array_add (recipients, NULL);
	for (guint i = 0; i < G_N_ELEMENTS (refused_at); i++)
		g_hash_table_insert (fake->rcpt_replies, recipients->pdata[refused_at[i]],
				     (gpointer) "550 5.1.1 No such user\r\n");
	fake_server_start (fake);
	connection = test_connection_new (mailer);
	result = sc_smtp_send (connection, "bounces@example.org", (const char *const *) recipients->pdata,
			       message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, result->reply);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);
	for (guint i = 0, r = 0; i < 250; i++) {
		gboolean refused_here = r < G_N_ELEMENTS (refused_at) && refused_at[r] == i;

		g_assert_cmpint (result_recipient (result, i)->code, ==, refused_here ? 550 : 250);
		g_assert_true (result_recipient (result, i)->accepted == !refused_here);
		r += refused_here ? 1 : 0;
	}
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 1);

	fake->mail_reply = "550 5.7.1 Sender refused\r\n";
	refused = sc_smtp_send (connection, "bounces@example.org", (const char *const *) recipients->pdata,
				message, NULL);
	g_assert_cmpint (refused->status, ==, SC_SMTP_MAILER_FAILED);
	g_assert_cmpint (refused->code, ==, 550);
	fake->mail_reply = NULL;
	after = sc_smtp_send (connection, "bounces@example.org", one, message, NULL);
	g_test_message ("%s: %s", G_STRFUNC, after->reply);
	g_assert_cmpint (after->status, ==, SC_SMTP_SENT);
	g_assert_cmpint (g_atomic_int_get (&fake->messages), ==, 2);
	if (test_is_pipe ()) {
		g_assert_cmpint (g_atomic_int_get (&fake->pipelined), ==, 3);
		g_assert_cmpuint (sc_smtp_connection_get_connects (connection), ==, 1);
	}
}

typedef struct {
	const char *path;
	GTestFunc func;
} TestCase;

static const TestCase test_cases[] = {
    {"/send/three-recipients", test_smtp_send_three},
    {"/send/null-sender", test_smtp_null_sender},
    {"/send/large", test_smtp_large},
    {"/send/bare-lf", test_smtp_bare_lf},
    {"/send/bare-lf-large", test_smtp_bare_lf_large},
    {"/send/dots", test_smtp_dots},
    {"/send/odd-endings", test_smtp_odd_endings},
    {"/send/helo-default", test_smtp_helo_default},
    {"/send/unsafe-addresses", test_smtp_unsafe_addresses},
    {"/reuse/same-connection", test_smtp_reuse},
    {"/reuse/after-restart", test_smtp_reuse_after_restart},
    {"/reuse/race", test_smtp_reuse_race},
    {"/reuse/after-idle-timeout", test_smtp_reuse_after_idle_timeout},
    {"/rcpt/all-refused-permanent", test_smtp_all_refused_permanent},
    {"/rcpt/all-refused-transient", test_smtp_all_refused_transient},
    {"/rcpt/partial-multiline", test_smtp_partial_multiline},
    {"/rcpt/reply-limits", test_smtp_reply_limits},
    {"/pipelining/mail-refused", test_smtp_pipelined_mail_refused},
    {"/pipelining/all-refused", test_smtp_pipelined_all_refused},
    {"/pipelining/not-offered", test_smtp_pipelining_not_offered},
    {"/pipelining/not-offered-sink", test_smtp_no_pipelining_sink},
    {"/pipelining/stall", test_smtp_pipelined_stall},
    {"/pipelining/groups", test_smtp_pipelined_groups},
    {"/mailer/mail-soft-refused", test_smtp_mail_soft_refused},
    {"/mailer/mail-hard-refused", test_smtp_mail_hard_refused},
    {"/mailer/greeting-refused", test_smtp_greeting_refused},
    {"/mailer/nothing-listening", test_smtp_nothing_listening},
    {"/mailer/starttls", test_smtp_starttls},
    {"/mailer/timeout", test_smtp_timeout},
    {"/mailer/cancel", test_smtp_cancel},
    {"/mailer/password-missing", test_smtp_password_missing},
    {"/mailer/password-not-shown", test_smtp_password_not_shown},
    {"/data/hangup", test_smtp_data_hangup},
    {"/data/421", test_smtp_data_421},
    {"/data/body-aborted", test_smtp_body_aborted},
    {"/data/dot-hangup", test_smtp_dot_hangup},
    {"/data/dot-refused", test_smtp_dot_refused},
    {"/data/dot-552", test_smtp_dot_552},
    {"/data/cancel-after-dot", test_smtp_cancel_after_dot},
    {"/data/cancel-after-dot-timeout", test_smtp_cancel_after_dot_timeout},
};

typedef struct {
	ScSmtpTransport transport;
	GTestFunc func;
} TestRun;

static TestRun test_runs[2][G_N_ELEMENTS (test_cases)];

static void
test_run (gconstpointer data)
{
	const TestRun *run = data;

	test_transport = run->transport;
	run->func ();
}

/* What sc_smtp_wire_size() must count, byte by byte: a dot that starts a
 * line is doubled, a LF without its CR gets one. */
static gsize
wire_size_reference (const guint8 *data, gsize size, gboolean *out_has_bare_lf)
{
	gsize wire = size;
	gsize bare = 0;

	for (gsize i = 0; i < size; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			bare++;
		if (data[i] == '.' && (i == 0 || data[i - 1] == '\n'))
			wire++;
	}
	*out_has_bare_lf = bare > 0;
	return wire + bare;
}

static void
assert_wire_size (const guint8 *data, gsize size)
{
	gboolean bare = FALSE;
	gboolean bare_expected = FALSE;
	gsize got = sc_smtp_wire_size (data, size, &bare);

	g_assert_cmpuint (got, ==, wire_size_reference (data, size, &bare_expected));
	g_assert_cmpint (bare, ==, bare_expected);
}

/* The stuffed size the client announces and checks the body against
 * (sc_smtp_wire_size, line by line with memchr) is the byte-by-byte
 * count: edge cases, random bytes from the four that matter, and every
 * message of the corpus. */
static void
test_wire_size (void)
{
	static const char *const cases[] = {"", ".", "\n", "\r\n", ".\n", "\n.", "a\n.b\r\n..\r\n.",
					    "\r", "\r\r\n", "\n\n\n", "x.\n.x", "no line end at all"};
	g_autoptr(GRand) rand = g_rand_new_with_seed (28);
	const char *corpus = sc_test_corpus_dir ();
	guint files = 0;

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
		assert_wire_size ((const guint8 *) cases[i], strlen (cases[i]));
	for (guint round = 0; round < 2000; round++) {
		static const guint8 alphabet[] = {'.', '\n', '\r', 'a'};
		guint8 data[64];
		gsize size = g_rand_int_range (rand, 0, sizeof data + 1);

		for (gsize i = 0; i < size; i++)
			data[i] = alphabet[g_rand_int_range (rand, 0, G_N_ELEMENTS (alphabet))];
		assert_wire_size (data, size);
	}
	if (corpus != NULL) {
		g_autoptr(GPtrArray) names = sc_test_corpus_files ();
		for (guint i = 0; i < names->len; i++) {
			g_autofree char *path = g_build_filename (corpus, names->pdata[i], NULL);
			g_autofree char *text = NULL;
			gsize length = 0;
			g_assert_true (g_file_get_contents (path, &text, &length, NULL));
			assert_wire_size ((const guint8 *) text, length);
			files++;
		}
	}
	g_test_message ("corpus messages compared: %u%s", files,
			corpus == NULL ? " (no corpus: ../shared/corpus is absent)" : "");
}

typedef struct {
	ScMailerState *state;
	ScSmtpConnection *connection;
	gint released;
} QuitRace;

static gpointer
release_broken_thread (gpointer data)
{
	QuitRace *race = data;

	/* not reusable: closed now, with a QUIT whose reply the sink holds */
	sc_mailer_state_release (race->state, race->connection, FALSE);
	g_atomic_int_set (&race->released, 1);
	return NULL;
}

/* A connection given back as not reusable is closed with QUIT, and its
 * reply awaited up to a second, outside the mailer's lock: before, every
 * other transaction to that mailer (and the dashboard's mailer figures)
 * waited that second.  Its slot stays taken until it is closed, so
 * max-connections still holds. */
static void
test_pool_quits_outside_the_lock (void)
{
	static const char *const hold_quit[] = {"-W", "quit:5", NULL};
	g_autoptr(ScTestSink) sink = sc_test_sink_start (hold_quit);
	g_autoptr(TestMailer) mailer = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GBytes) message = test_message (5);
	QuitRace race = {0};
	ScMailerStats stats = {0};
	ScSmtpConnection *again;
	GThread *thread;

	if (sink == NULL)
		return;
	mailer = test_mailer_for_sink (sink);
	sc_mailer_state_reset_all ();
	race.state = sc_mailer_state_get (mailer);
	race.connection = sc_mailer_state_acquire (race.state, mailer, NULL);
	result = sc_smtp_send (race.connection, "bounces@example.org", three_recipients, message, NULL);
	g_assert_cmpint (result->status, ==, SC_SMTP_SENT);

	thread = g_thread_new ("release", release_broken_thread, &race);
	g_usleep (200 * 1000); /* well inside its one-second wait for 221 */
	sc_mailer_state_get_stats (race.state, &stats);
	g_free (stats.last_error);
	g_assert_false (g_atomic_int_get (&race.released));
	/* max-connections=1: the closing connection still has the slot */
	g_assert_null (sc_mailer_state_try_acquire (race.state, mailer));
	g_thread_join (thread);
	g_assert_true (g_atomic_int_get (&race.released));
	again = sc_mailer_state_try_acquire (race.state, mailer);
	g_assert_nonnull (again);
	sc_mailer_state_release (race.state, again, TRUE);
	sc_mailer_state_reset_all ();
}

int
main (int argc, char **argv)
{
	int rc;

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	curl_global_init (CURL_GLOBAL_DEFAULT);

	for (guint t = 0; t < 2; t++) {
		for (guint i = 0; i < G_N_ELEMENTS (test_cases); i++) {
			g_autofree char *path =
			    g_strconcat (t == 0 ? "/deliver-smtp" : "/deliver-smtp/curl",
					 test_cases[i].path,
					 NULL);

			test_runs[t][i].transport =
			    t == 0 ? SC_SMTP_TRANSPORT_AUTO : SC_SMTP_TRANSPORT_CURL;
			test_runs[t][i].func = test_cases[i].func;
			g_test_add_data_func (path, &test_runs[t][i], test_run);
		}
	}
	g_test_add_func ("/deliver-smtp/pool/quits-outside-the-lock", test_pool_quits_outside_the_lock);
	g_test_add_func ("/deliver-smtp/wire-size", test_wire_size);
	rc = g_test_run ();
	curl_global_cleanup ();
	return rc;
}
