/* test-smtp-session.c — the SMTP/LMTP protocol machine (sc-smtp-session.h)
 * on scripted conversations.  The acceptor's answer is given by the test:
 * what is checked here is what the session replies and what it submits.
 * tests/test-ingress-smtp.c runs the same protocol through the real
 * daemon. */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "sc-smtp-session.h"

typedef struct {
	ScSmtpSessionConfig config;
	ScSmtpSession *session;
	GPtrArray *messages;   /* (element-type GBytes) the submitted bodies, Received: cut off */
	GPtrArray *senders;    /* (element-type utf8) */
	GPtrArray *rcpt_lists; /* (element-type utf8) recipients joined by ',' */
	GString *replies;      /* everything the session said */
	GError *answer;        /* (nullable) the acceptor's refusal to give */
	ScSmtpStep last;
} Fixture;

static const char *const test_credentials[] = {"alice", "s3cret pass", "bob", "hunter2", NULL};

static void
fixture_setup (Fixture *fixture, gconstpointer data)
{
	fixture->config = (ScSmtpSessionConfig){
	    .protocol = GPOINTER_TO_INT (data),
	    .hostname = "mx.test",
	    .max_message_size = 10000,
	    .max_recipients = 3,
	    .bare_newline = SC_BARE_NEWLINE_NORMALIZE,
	    .tls_available = FALSE,
	    .credentials = NULL,
	    .peer_allowed = TRUE,
	};
	fixture->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	fixture->senders = g_ptr_array_new_with_free_func (g_free);
	fixture->rcpt_lists = g_ptr_array_new_with_free_func (g_free);
	fixture->replies = g_string_new (NULL);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->session, sc_smtp_session_free);
	g_ptr_array_unref (fixture->messages);
	g_ptr_array_unref (fixture->senders);
	g_ptr_array_unref (fixture->rcpt_lists);
	g_string_free (fixture->replies, TRUE);
	g_clear_error (&fixture->answer);
}

/* Starts the session with fixture->config; returns the greeting. */
static void
start (Fixture *fixture)
{
	g_clear_pointer (&fixture->session, sc_smtp_session_free);
	fixture->session = sc_smtp_session_new (&fixture->config, "127.0.0.1");
	fixture->last = sc_smtp_session_greet (fixture->session, FALSE);
}

/* The message without the Received: field the session puts on top;
 * a NUL follows its bytes. */
static GBytes *
strip_received (GBytes *raw)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (raw, &size);
	const char *end = data;

	g_assert_cmpuint (size, >, 15);
	g_assert_true (strncmp (data, "Received: from ", 15) == 0);
	/* the field's last line is the date, ending the field */
	for (int lines = 0; lines < 3; lines++) {
		end = memchr (end, '\n', size - (end - data));
		g_assert_nonnull (end);
		end++;
	}
	/* NUL-terminated copy, for string asserts */
	return g_bytes_new_take (g_strndup (end, size - (end - data)), size - (end - data));
}

/* Feeds @input, runs; a submission is answered with queue id Q<n> (or
 * fixture->answer).  Returns the replies to this input. (transfer full) */
static char *
say (Fixture *fixture, const char *input, gssize length)
{
	GString *output = sc_smtp_session_get_output (fixture->session);
	gsize before = fixture->replies->len;

	if (length < 0)
		length = strlen (input);
	g_string_append_len (fixture->replies, output->str, output->len);
	g_string_truncate (output, 0);
	before = fixture->replies->len;
	sc_smtp_session_feed (fixture->session, input, length);
	for (;;) {
		fixture->last = sc_smtp_session_run (fixture->session);
		if (fixture->last != SC_SMTP_STEP_SUBMIT)
			break;
		{
			const ScSubmission *submission = sc_smtp_session_get_submission (fixture->session);
			g_autofree char *queue_id = g_strdup_printf ("Q%u", fixture->messages->len + 1);
			ScAccepted accepted = {.queue_id = queue_id};

			g_ptr_array_add (fixture->messages, strip_received (submission->raw));
			g_ptr_array_add (fixture->senders, g_strdup (submission->sender));
			g_ptr_array_add (fixture->rcpt_lists, g_strjoinv (",", (GStrv) submission->recipients));
			sc_smtp_session_submitted (fixture->session, fixture->answer == NULL ? &accepted : NULL,
						   fixture->answer);
		}
	}
	g_string_append_len (fixture->replies, output->str, output->len);
	g_string_truncate (output, 0);
	return g_strdup (fixture->replies->str + before);
}

static const char *
message_text (Fixture *fixture, guint i)
{
	g_assert_cmpuint (i, <, fixture->messages->len);
	return g_bytes_get_data (fixture->messages->pdata[i], NULL);
}

static void
test_ehlo (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	start (fixture);
	reply = say (fixture, "EHLO client.test\r\n", -1);
	g_assert_cmpstr (reply, ==,
			 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-ENHANCEDSTATUSCODES\r\n"
			 "250-8BITMIME\r\n250 SMTPUTF8\r\n");
	g_free (reply);
	reply = say (fixture, "HELO client.test\r\nHELO\r\nNOOP\r\nVRFY bob\r\nHELP\r\n", -1);
	g_assert_cmpstr (reply, ==,
			 "250 mx.test\r\n501 5.5.4 Syntax: HELO hostname\r\n250 2.0.0 Ok\r\n"
			 "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
			 "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n");
	g_free (reply);
	reply = say (fixture, "QUIT\r\nNOOP\r\n", -1);
	g_assert_cmpstr (reply, ==, "221 2.0.0 Bye\r\n");
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_CLOSE);
}

static void
test_greeting (Fixture *fixture, gconstpointer data)
{
	GString *output;

	start (fixture);
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_READ);
	g_assert_cmpstr (sc_smtp_session_get_output (fixture->session)->str, ==, "220 mx.test ESMTP stagecoach\r\n");

	fixture->session = (sc_smtp_session_free (fixture->session), sc_smtp_session_new (&fixture->config, NULL));
	g_assert_cmpint (sc_smtp_session_greet (fixture->session, TRUE), ==, SC_SMTP_STEP_CLOSE);
	output = sc_smtp_session_get_output (fixture->session);
	g_assert_cmpstr (output->str, ==, "421 4.7.0 mx.test Error: too many connections\r\n");

	/* outside allow=, no AUTH possible: refused */
	fixture->config.peer_allowed = FALSE;
	start (fixture);
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_CLOSE);
	g_assert_true (g_str_has_prefix (sc_smtp_session_get_output (fixture->session)->str, "554 5.7.1 "));
}

static void
test_transaction (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	start (fixture);
	reply = say (fixture,
		     "EHLO c\r\nMAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<x@y.test>\r\n"
		     "RCPT TO: <z@y.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
		     -1);
	g_assert_true (g_str_has_suffix (reply, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
						"354 End data with <CR><LF>.<CR><LF>\r\n"
						"250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n"));
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_cmpstr (message_text (fixture, 0), ==, "Subject: hi\r\n\r\n.dot\r\n");
	g_assert_cmpstr (fixture->senders->pdata[0], ==, "a@b.test");
	g_assert_cmpstr (fixture->rcpt_lists->pdata[0], ==, "x@y.test,z@y.test");
}

static void
test_sequence (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	start (fixture);
	reply = say (fixture, "MAIL FROM:<a@b.test>\r\n", -1);
	g_assert_cmpstr (reply, ==, "503 5.5.1 Error: send HELO/EHLO first\r\n");
	g_free (reply);
	reply = say (fixture, "EHLO c\r\nRCPT TO:<x@y.test>\r\nDATA\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\nDATA\r\n"
			      "RSET\r\nFOO\r\nMAIL\r\nMAIL FROM:<no-at>\r\nMAIL FROM:<a@b.test> SIZE=10001\r\n"
			      "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nMAIL FROM:<a@b.test> FOO=1\r\n",
		     -1);
	g_assert_true (g_str_has_suffix (reply, "250 SMTPUTF8\r\n"
						"503 5.5.1 Error: need MAIL command\r\n"
						"503 5.5.1 Error: need MAIL command\r\n"
						"250 2.1.0 Ok\r\n"
						"503 5.5.1 Error: nested MAIL command\r\n"
						"554 5.5.1 Error: no valid recipients\r\n"
						"250 2.0.0 Ok\r\n"
						"500 5.5.2 Error: command not recognized\r\n"
						"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
						"501 5.1.7 Bad sender address syntax\r\n"
						"552 5.3.4 Message size exceeds fixed limit\r\n"
						"501 5.5.4 Unsupported BODY parameter\r\n"
						"555 5.5.4 Unsupported option: FOO=1\r\n"));
	g_free (reply);
	reply = say (fixture, "MAIL FROM:<a@b.test>\r\nRCPT TO:<bad>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\n"
			      "RCPT TO:<3@y.test>\r\nRCPT TO:<4@y.test>\r\nRCPT TO:<\xc3\xa9@y.test>\r\n",
		     -1);
	g_assert_cmpstr (reply, ==,
			 "250 2.1.0 Ok\r\n553 5.1.3 Bad recipient address syntax\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
			 "250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
			 "452 4.5.3 Error: too many recipients\r\n");
	g_free (reply);
	reply = say (fixture, "RSET\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<\xc3\xa9@y.test>\r\nRSET\r\n"
			      "MAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<\xc3\xa9@y.test>\r\n",
		     -1);
	g_assert_cmpstr (reply, ==,
			 "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n553 5.6.7 Non-ASCII recipient address needs SMTPUTF8\r\n"
			 "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	g_assert_cmpuint (fixture->messages->len, ==, 0);
}

/* SEC Consult's 2023 SMTP smuggling sequences: none of them ends the data,
 * the smuggled second transaction is content of the one message. */
static void
test_smuggling (Fixture *fixture, gconstpointer data)
{
	static const char *const fake_ends[] = {"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", "\r.\r\n", "\n.\r"};

	for (guint i = 0; i < G_N_ELEMENTS (fake_ends); i++) {
		g_autofree char *input = g_strdup_printf ("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
							  "Subject: one\r\n\r\nbody%s"
							  "MAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"
							  "Subject: smuggled\r\n\r\nevil\r\n.\r\nQUIT\r\n",
							  fake_ends[i]);
		g_autofree char *reply = NULL;
		g_autofree char *escaped = g_strescape (fake_ends[i], NULL);
		const char *text;

		g_test_message ("sequence %s", escaped);
		g_ptr_array_set_size (fixture->messages, 0);
		g_ptr_array_set_size (fixture->rcpt_lists, 0);
		start (fixture);
		reply = say (fixture, input, -1);
		g_assert_cmpuint (fixture->messages->len, ==, 1);
		g_assert_cmpstr (fixture->rcpt_lists->pdata[0], ==, "x@y.test");
		text = message_text (fixture, 0);
		g_assert_nonnull (strstr (text, "MAIL FROM:<evil@b.test>"));
		g_assert_nonnull (strstr (text, "Subject: smuggled"));
		g_assert_true (g_str_has_suffix (reply, "354 End data with <CR><LF>.<CR><LF>\r\n"
							"250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n"));
		/* no stored line is a lone "." */
		g_assert_null (strstr (text, "\r\n.\r\n"));
		/* normalize: every line end stored is CR LF */
		for (const char *p = strchr (text, '\n'); p != NULL; p = strchr (p + 1, '\n'))
			g_assert_cmpint (p[-1], ==, '\r');
	}

	/* reject: each is refused, nothing submitted, the session goes on */
	fixture->config.bare_newline = SC_BARE_NEWLINE_REJECT;
	for (guint i = 0; i < G_N_ELEMENTS (fake_ends); i++) {
		g_autofree char *input = g_strdup_printf ("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
							  "Subject: one\r\n\r\nbody%s"
							  "MAIL FROM:<evil@b.test>\r\n\r\n.\r\nNOOP\r\n",
							  fake_ends[i]);
		g_autofree char *reply = NULL;

		g_ptr_array_set_size (fixture->messages, 0);
		start (fixture);
		reply = say (fixture, input, -1);
		g_assert_cmpuint (fixture->messages->len, ==, 0);
		g_assert_true (g_str_has_suffix (reply, "354 End data with <CR><LF>.<CR><LF>\r\n"
							"550 5.5.2 Error: bare <CR> or <LF> received in the message\r\n"
							"250 2.0.0 Ok\r\n"));
	}
}

static void
test_bare_lf_normalize (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	start (fixture);
	/* commands may end in a bare LF; lines in the data too, stored as CR LF */
	reply = say (fixture, "EHLO c\nMAIL FROM:<a@b.test>\nRCPT TO:<x@y.test>\nDATA\n"
			      "A: b\n\nline\n..stuffed\r\nbare\rcr\r\n.\r\n",
		     -1);
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_cmpstr (message_text (fixture, 0), ==, "A: b\r\n\r\nline\r\n.stuffed\r\nbare\rcr\r\n");
}

static void
test_data_chunks (Fixture *fixture, gconstpointer data)
{
	const char *input = "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nS: 1\r\n\r\n.a\r\nb\r\n.\r\nNOOP\r\n";
	g_autofree char *reply = NULL;

	/* byte by byte: the end is found across reads, nothing more */
	start (fixture);
	for (const char *p = input; *p != '\0'; p++)
		g_free (say (fixture, p, 1));
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_cmpstr (message_text (fixture, 0), ==, "S: 1\r\n\r\na\r\nb\r\n");
	g_assert_cmpstr (fixture->senders->pdata[0], ==, "");
	g_assert_true (g_str_has_suffix (fixture->replies->str, "250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n"));
}

static void
test_long_lines (Fixture *fixture, gconstpointer data)
{
	g_autofree char *command = g_strnfill (600, 'x');
	g_autofree char *long_line = g_strnfill (5000, 'y');
	g_autofree char *huge_line = g_strnfill (100 * 1024, 'z');
	g_autofree char *input = NULL;
	g_autofree char *reply = NULL;

	start (fixture);
	input = g_strdup_printf ("NOOP %s\r\nNOOP\r\n", command);
	reply = say (fixture, input, -1);
	g_assert_cmpstr (reply, ==, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	g_free (reply);
	/* fed in two reads: the first part is dropped, the end answered */
	reply = say (fixture, command, -1);
	g_assert_cmpstr (reply, ==, "");
	g_free (reply);
	reply = say (fixture, "\r\nNOOP\r\n", -1);
	g_assert_cmpstr (reply, ==, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");

	/* a text line over 1000 octets is accepted and kept whole */
	g_free (input);
	input = g_strdup_printf ("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n%s\r\n.\r\n", long_line);
	g_free (reply);
	reply = say (fixture, input, -1);
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_cmpuint (strlen (message_text (fixture, 0)), ==, 5004);

	/* over max-message-size (10000): read to the end, refused */
	fixture->config.max_message_size = 50000;
	start (fixture);
	g_free (input);
	input = g_strdup_printf ("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n%s\r\n.\r\nNOOP\r\n", huge_line);
	g_free (reply);
	reply = say (fixture, input, -1);
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_true (g_str_has_suffix (reply, "354 End data with <CR><LF>.<CR><LF>\r\n"
						"552 5.3.4 Error: message exceeds fixed size limit\r\n250 2.0.0 Ok\r\n"));
}

static void
test_errors (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GString) input = g_string_new (NULL);
	g_autofree char *reply = NULL;

	start (fixture);
	for (guint i = 0; i < SC_SMTP_MAX_ERRORS + 5; i++)
		g_string_append (input, "BOGUS\r\n");
	reply = say (fixture, input->str, -1);
	g_assert_true (g_str_has_suffix (reply, "500 5.5.2 Error: command not recognized\r\n"
						"421 4.7.0 mx.test Error: too many errors\r\n"));
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_CLOSE);

	/* a good command in between starts the count again */
	start (fixture);
	g_string_truncate (input, 0);
	for (guint i = 0; i < SC_SMTP_MAX_ERRORS + 5; i++)
		g_string_append (input, i % 10 == 9 ? "EHLO c\r\nMAIL FROM:<>\r\nRSET\r\n" : "BOGUS\r\n");
	g_free (reply);
	reply = say (fixture, input->str, -1);
	g_assert_null (strstr (reply, "421"));
}

static void
test_refusals (Fixture *fixture, gconstpointer data)
{
	static const struct {
		ScIngressError code;
		const char *reply;
	} cases[] = {
	    {SC_INGRESS_ERROR_BAD_MESSAGE, "550 5.6.0 why\r\n"},
	    {SC_INGRESS_ERROR_BAD_ADDRESS, "553 5.1.3 why\r\n"},
	    {SC_INGRESS_ERROR_NO_LIST, "550 5.1.1 why\r\n"},
	    {SC_INGRESS_ERROR_TOO_BIG, "552 5.3.4 why\r\n"},
	    {SC_INGRESS_ERROR_SPOOL_BUSY, "451 4.3.0 why\r\n"},
	    {SC_INGRESS_ERROR_SPOOL_FULL, "452 4.3.1 why\r\n"},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *reply = NULL;

		start (fixture);
		g_clear_error (&fixture->answer);
		fixture->answer = g_error_new_literal (SC_INGRESS_ERROR, cases[i].code, "why");
		reply = say (fixture, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n.\r\n", -1);
		g_assert_true (g_str_has_suffix (reply, cases[i].reply));
	}
	{
		g_autofree char *reply = NULL;

		start (fixture);
		g_clear_error (&fixture->answer);
		fixture->answer = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "disk");
		reply = say (fixture, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n.\r\n", -1);
		g_assert_true (g_str_has_suffix (reply, "\r\n451 4.3.0 Error: temporary failure, try again later\r\n"));
	}
}

static void
test_lmtp (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	start (fixture);
	g_assert_cmpstr (sc_smtp_session_get_output (fixture->session)->str, ==, "220 mx.test LMTP stagecoach\r\n");
	reply = say (fixture, "EHLO c\r\nLHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<bad>\r\n"
			      "RCPT TO:<2@y.test>\r\nDATA\r\n\r\nhi\r\n.\r\n",
		     -1);
	g_assert_true (g_str_has_prefix (reply, "500 5.5.1 Error: this is LMTP, send LHLO\r\n250-mx.test\r\n"));
	g_assert_true (g_str_has_suffix (reply, "354 End data with <CR><LF>.<CR><LF>\r\n"
						"250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok: queued as Q1\r\n"));
	g_assert_cmpstr (fixture->rcpt_lists->pdata[0], ==, "1@y.test,2@y.test");
	g_free (reply);
	g_clear_error (&fixture->answer);
	fixture->answer = g_error_new_literal (SC_INGRESS_ERROR, SC_INGRESS_ERROR_SPOOL_BUSY, "later");
	reply = say (fixture, "MAIL FROM:<a@b.test>\r\nRCPT TO:<1@y.test>\r\nRCPT TO:<2@y.test>\r\n"
			      "RCPT TO:<3@y.test>\r\nDATA\r\n\r\nhi\r\n.\r\n",
		     -1);
	g_assert_true (g_str_has_suffix (reply, "354 End data with <CR><LF>.<CR><LF>\r\n"
						"451 4.3.0 later\r\n451 4.3.0 later\r\n451 4.3.0 later\r\n"));
}

static void
test_starttls_auth (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;
	g_autofree char *plain = NULL;

	fixture->config.tls_available = TRUE;
	fixture->config.credentials = test_credentials;
	fixture->config.peer_allowed = FALSE;
	start (fixture);
	reply = say (fixture, "EHLO c\r\nAUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nNOOP\r\n", -1);
	g_assert_cmpstr (reply, ==,
			 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
			 "250-8BITMIME\r\n250 SMTPUTF8\r\n503 5.5.1 Error: authentication not enabled\r\n"
			 "530 5.7.0 Authentication required\r\n220 2.0.0 Ready to start TLS\r\n");
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_STARTTLS);
	/* what was pipelined behind STARTTLS is dropped, as is input before the handshake */
	sc_smtp_session_feed (fixture->session, "NOOP\r\n", 6);
	sc_smtp_session_tls_started (fixture->session);
	g_free (reply);
	reply = say (fixture, "MAIL FROM:<a@b.test>\r\nEHLO c\r\n", -1);
	g_assert_cmpstr (reply, ==,
			 "503 5.5.1 Error: send HELO/EHLO first\r\n"
			 "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n"
			 "250-8BITMIME\r\n250 SMTPUTF8\r\n");
	g_free (reply);
	/* "\0alice\0wrong", then LOGIN as bob with a wrong password, then PLAIN right */
	reply = say (fixture, "AUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH LOGIN\r\nYm9i\r\neA==\r\nAUTH PLAIN\r\n", -1);
	g_assert_cmpstr (reply, ==,
			 "535 5.7.8 Error: authentication failed\r\n334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
			 "535 5.7.8 Error: authentication failed\r\n334 \r\n");
	plain = g_base64_encode ((const guchar *) "alice\0alice\0s3cret pass", 23);
	g_free (reply);
	reply = say (fixture, plain, -1);
	g_free (reply);
	reply = say (fixture, "\r\nAUTH LOGIN\r\nMAIL FROM:<a@b.test>\r\n", -1);
	g_assert_cmpstr (reply, ==, "235 2.7.0 Authentication successful\r\n503 5.5.1 Error: already authenticated\r\n"
				    "250 2.1.0 Ok\r\n");
	g_assert_cmpstr (sc_smtp_session_get_user (fixture->session), ==, "alice");

	/* LOGIN with an initial response, and "*" cancels */
	start (fixture);
	sc_smtp_session_tls_started ((g_free (say (fixture, "STARTTLS\r\n", -1)), fixture->session));
	g_free (reply);
	reply = say (fixture, "EHLO c\r\nAUTH LOGIN Ym9i\r\n*\r\nAUTH LOGIN Ym9i\r\naHVudGVyMg==\r\n", -1);
	g_assert_true (g_str_has_suffix (reply, "334 UGFzc3dvcmQ6\r\n501 5.7.0 Error: authentication cancelled\r\n"
						"334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"));
}

static void
test_shutdown (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;

	/* idle: answered at once */
	start (fixture);
	g_free (say (fixture, "EHLO c\r\n", -1));
	g_assert_true (sc_smtp_session_shutdown (fixture->session));
	g_assert_cmpstr (sc_smtp_session_get_output (fixture->session)->str, ==,
			 "421 4.3.2 mx.test Service shutting down, closing connection\r\n");

	/* in DATA: the message finishes, then 421 */
	start (fixture);
	g_free (say (fixture, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nA: b\r\n", -1));
	g_assert_true (sc_smtp_session_in_data (fixture->session));
	g_assert_false (sc_smtp_session_shutdown (fixture->session));
	reply = say (fixture, "\r\nbody\r\n.\r\nMAIL FROM:<>\r\n", -1);
	g_assert_cmpstr (reply, ==, "250 2.0.0 Ok: queued as Q1\r\n421 4.3.2 mx.test Service shutting down, closing connection\r\n");
	g_assert_cmpint (fixture->last, ==, SC_SMTP_STEP_CLOSE);
}

static void
test_timeout (Fixture *fixture, gconstpointer data)
{
	start (fixture);
	sc_smtp_session_timeout (fixture->session);
	g_assert_true (g_str_has_suffix (sc_smtp_session_get_output (fixture->session)->str,
					 "421 4.4.2 mx.test Error: timeout exceeded\r\n"));
	g_assert_cmpint (sc_smtp_session_run (fixture->session), ==, SC_SMTP_STEP_CLOSE);
}

static void
test_nul_and_received (Fixture *fixture, gconstpointer data)
{
	g_autofree char *reply = NULL;
	const ScSubmission *submission;
	static const char input[] = "NOOP\0x\r\nEHLO c(l)i\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nA: \0b\r\n.\r\n";

	fixture->config.protocol = SC_SMTP_PROTOCOL_SMTP;
	start (fixture);
	reply = say (fixture, input, sizeof input - 1);
	g_assert_true (g_str_has_prefix (reply, "500 5.5.2 Error: NUL in command\r\n"));
	/* NUL in the data is passed on: the acceptor judges the message */
	g_assert_cmpuint (fixture->messages->len, ==, 1);
	g_assert_cmpuint (g_bytes_get_size (fixture->messages->pdata[0]), ==, 7);

	/* the Received: field names the peer and the protocol, HELO sanitized */
	start (fixture);
	{
		const char *text = "EHLO c(l)i\r\nMAIL FROM:<>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n\r\n.\r\n";
		sc_smtp_session_feed (fixture->session, text, strlen (text));
	}
	g_assert_cmpint (sc_smtp_session_run (fixture->session), ==, SC_SMTP_STEP_SUBMIT);
	submission = sc_smtp_session_get_submission (fixture->session);
	g_assert_true (g_str_has_prefix (g_bytes_get_data (submission->raw, NULL),
					 "Received: from c?l?i (127.0.0.1)\r\n\tby mx.test (stagecoach) with ESMTP;\r\n\t"));
	g_assert_cmpstr (submission->door, ==, "smtp");
	g_assert_cmpstr (submission->peer, ==, "127.0.0.1");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
#define ADD(path, func, protocol)                                                                  \
	g_test_add (path, Fixture, GINT_TO_POINTER (protocol), fixture_setup, func, fixture_teardown)
	ADD ("/smtp-session/greeting", test_greeting, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/ehlo", test_ehlo, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/transaction", test_transaction, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/sequence", test_sequence, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/smuggling", test_smuggling, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/bare-lf-normalize", test_bare_lf_normalize, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/data-chunks", test_data_chunks, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/long-lines", test_long_lines, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/errors", test_errors, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/refusals", test_refusals, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/lmtp", test_lmtp, SC_SMTP_PROTOCOL_LMTP);
	ADD ("/smtp-session/starttls-auth", test_starttls_auth, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/shutdown", test_shutdown, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/timeout", test_timeout, SC_SMTP_PROTOCOL_SMTP);
	ADD ("/smtp-session/nul-and-received", test_nul_and_received, SC_SMTP_PROTOCOL_SMTP);
#undef ADD
	return g_test_run ();
}
