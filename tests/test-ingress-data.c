/* test-ingress-data.c — what the SMTP session stores of DATA
 * (sc-smtp-session.c): runs of plain lines are appended whole, the rest
 * line by line, and the result must be byte for byte what a line-by-line
 * reading of RFC 5321 4.5.2 gives, however the input is cut into reads.
 * Also the Received: field's date, formatted once a second. */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "sc-smtp-session.h"

/* The body a line-by-line reading stores (bare LF and bare CR kept as
 * SC_BARE_NEWLINE_NORMALIZE does: each line ends CR LF, a leading dot is
 * removed, "." after CR LF ends the data).  @data ends with the end. */
/* A plain SMTP session taking up to @max_message_size bytes. */
static ScSmtpSessionConfig
session_config (gsize max_message_size)
{
	ScSmtpSessionConfig config = {
	    .protocol = SC_SMTP_PROTOCOL_SMTP,
	    .hostname = "mx.test",
	    .max_message_size = max_message_size,
	    .max_recipients = 3,
	    .bare_newline = SC_BARE_NEWLINE_NORMALIZE,
	    .peer_allowed = TRUE,
	};
	return config;
}

static GBytes *
reference_body (const char *data)
{
	GString *body = g_string_new (NULL);
	gboolean after_crlf = TRUE;

	for (const char *line = data; *line != '\0';) {
		const char *newline = strchr (line, '\n');
		gsize length = newline - line;
		gboolean crlf = length > 0 && line[length - 1] == '\r';

		g_assert_nonnull (newline);
		if (crlf)
			length--;
		if (after_crlf && crlf && length == 1 && line[0] == '.')
			break;
		if (length > 0 && line[0] == '.') {
			line++;
			length--;
		}
		g_string_append_len (body, line, length);
		g_string_append (body, "\r\n");
		after_crlf = crlf;
		line = newline + 1;
	}
	return g_string_free_to_bytes (body);
}

/* One transaction: @data (DATA's lines and its end) fed in reads of at
 * most @cut bytes.  Returns the body stored, without our Received:
 * field (transfer full), or NULL if none was submitted; the DATA reply's
 * first line in *@out_reply. */
static GBytes *
transact (const ScSmtpSessionConfig *config, const char *data, gsize cut, GRand *rand, char **out_reply,
	  char **out_received)
{
	g_autoptr(ScSmtpSession) session = sc_smtp_session_new (config, "127.0.0.1");
	const char *opening = "EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n";
	gsize length = strlen (data);
	GBytes *body = NULL;
	GString *output;

	sc_smtp_session_greet (session, FALSE);
	sc_smtp_session_feed (session, opening, strlen (opening));
	g_assert_cmpint (sc_smtp_session_run (session), ==, SC_SMTP_STEP_READ);
	output = sc_smtp_session_get_output (session);
	g_assert_nonnull (strstr (output->str, "354 "));
	g_string_truncate (output, 0);
	for (gsize done = 0; done < length;) {
		gsize piece = (gsize) g_rand_int_range (rand, 1, (gint32) cut + 1);
		ScSmtpStep step;

		piece = MIN (piece, length - done);
		sc_smtp_session_feed (session, data + done, piece);
		done += piece;
		step = sc_smtp_session_run (session);
		if (step == SC_SMTP_STEP_SUBMIT) {
			const ScSubmission *submission = sc_smtp_session_get_submission (session);
			gsize size = 0;
			const char *raw = g_bytes_get_data (submission->raw, &size);
			const char *end = raw;
			ScAccepted accepted = {.queue_id = (char *) "Q1"};

			/* the field is three lines */
			for (int lines = 0; lines < 3; lines++)
				end = (const char *) memchr (end, '\n', size - (end - raw)) + 1;
			if (out_received != NULL)
				*out_received = g_strndup (raw, end - raw);
			body = g_bytes_new (end, size - (end - raw));
			sc_smtp_session_submitted (session, &accepted, NULL);
			g_assert_cmpuint (done, ==, length); /* the end was the input's end */
		}
	}
	*out_reply = g_strndup (output->str, strcspn (output->str, "\r"));
	return body;
}

static const char *const shapes[] = {
    "plain text line\r\n",
    "\r\n",
    ".leading dot\r\n",
    "..two dots\r\n",
    ".\r\n",                       /* not the end when it follows a bare LF */
    "bare lf line\n",
    "a bare\rcr inside\r\n",
    "x\r\n",
    "a longer line of the sort a real post has, with words, and more words, up to the wrap\r\n",
    " .space then dot\r\n",
};

/* Random bodies of every line shape, cut into random reads: the stored
 * body is the reference's, byte for byte. */
static void
test_data_runs (void)
{
	ScSmtpSessionConfig config = session_config (1000000);
	g_autoptr(GRand) rand = g_rand_new_with_seed (8);

	for (guint round = 0; round < 400; round++) {
		g_autoptr(GString) data = g_string_new (NULL);
		g_autoptr(GBytes) expected = NULL;
		g_autoptr(GBytes) stored = NULL;
		g_autofree char *reply = NULL;
		guint lines = g_rand_int_range (rand, 0, 120);
		gsize cut = round % 4 == 0 ? 1 : (gsize) g_rand_int_range (rand, 2, 9000);

		for (guint i = 0; i < lines; i++) {
			const char *shape = shapes[g_rand_int_range (rand, 0, G_N_ELEMENTS (shapes))];
			/* "." after CR LF would end the data early: only after a bare LF */
			if (strcmp (shape, ".\r\n") == 0 && (data->len == 0 || data->str[data->len - 2] == '\r'))
				shape = "..\r\n";
			g_string_append (data, shape);
		}
		if (data->len > 0 && data->str[data->len - 2] != '\r')
			g_string_append (data, "\r\n"); /* the end needs CR LF before it */
		g_string_append (data, ".\r\n");
		expected = reference_body (data->str);
		stored = transact (&config, data->str, cut, rand, &reply, NULL);
		g_assert_nonnull (stored);
		g_assert_cmpstr (reply, ==, "250 2.0.0 Ok: queued as Q1");
		if (!g_bytes_equal (stored, expected)) {
			g_test_message ("round %u, cut %" G_GSIZE_FORMAT ": input %s", round, cut, data->str);
			g_assert_cmpmem (g_bytes_get_data (stored, NULL), g_bytes_get_size (stored),
					 g_bytes_get_data (expected, NULL), g_bytes_get_size (expected));
		}
	}
}

/* Over the limit in the middle of a run of plain lines: refused, and
 * what comes after is still read as this message's data. */
static void
test_data_too_big (void)
{
	ScSmtpSessionConfig config = session_config (1000);
	g_autoptr(GRand) rand = g_rand_new_with_seed (9);
	g_autoptr(GString) data = g_string_new (NULL);

	for (gsize size = 990; size <= 1010; size++) {
		g_autoptr(GBytes) stored = NULL;
		g_autofree char *reply = NULL;

		/* lines of 8 bytes and CR LF, then one of the rest: @size bytes */
		g_string_truncate (data, 0);
		while (data->len + 10 + 2 <= size)
			g_string_append (data, "12345678\r\n");
		while (data->len + 2 < size)
			g_string_append_c (data, 'z');
		g_string_append (data, "\r\n");
		g_assert_cmpuint (data->len, ==, size);
		g_string_append (data, ".\r\n");
		stored = transact (&config, data->str, 64, rand, &reply, NULL);
		if (size > 1000) {
			g_assert_null (stored);
			g_assert_cmpstr (reply, ==, "552 5.3.4 Error: message exceeds fixed size limit");
		} else {
			g_assert_nonnull (stored);
			g_assert_cmpuint (g_bytes_get_size (stored), ==, size);
		}
	}
}

/* Our Received: field ends with today's date in RFC 5322 form, the
 * same as a fresh formatting of the current second gives. */
static void
test_received_date (void)
{
	ScSmtpSessionConfig config = session_config (1000);
	g_autoptr(GRand) rand = g_rand_new_with_seed (10);

	for (guint i = 0; i < 3; i++) {
		g_autoptr(GDateTime) before = g_date_time_new_now_local ();
		g_autoptr(GBytes) stored = NULL;
		g_autofree char *reply = NULL;
		g_autofree char *received = NULL;
		g_autoptr(GDateTime) after = NULL;
		g_autofree char *at_before = NULL;
		g_autofree char *at_after = NULL;
		const char *date;

		stored = transact (&config, "hello\r\n.\r\n", 100, rand, &reply, &received);
		after = g_date_time_new_now_local ();
		g_assert_nonnull (stored);
		g_assert_true (g_str_has_prefix (received, "Received: from client.test (127.0.0.1)\r\n\tby mx.test "
							    "(stagecoach) with ESMTP;\r\n\t"));
		date = strrchr (received, '\t') + 1;
		at_before = g_date_time_format (before, "%a, %-d %b %Y %H:%M:%S %z\r\n");
		at_after = g_date_time_format (after, "%a, %-d %b %Y %H:%M:%S %z\r\n");
		if (g_strcmp0 (date, at_before) != 0)
			g_assert_cmpstr (date, ==, at_after);
		if (i == 1)
			g_usleep (1100 * 1000); /* the next one is in another second */
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/ingress-data/runs", test_data_runs);
	g_test_add_func ("/ingress-data/too-big", test_data_too_big);
	g_test_add_func ("/ingress-data/received-date", test_received_date);
	return g_test_run ();
}
