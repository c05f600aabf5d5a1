/* fuzz-smtp-session.c — the SMTP/LMTP protocol machine
 * (src/sc-smtp-session.h) on arbitrary client input.
 *
 * The first byte picks the set-up (SMTP or LMTP, bare-newline mode, TLS
 * and AUTH available, peer allowed, a refusal from the acceptor); the
 * rest is fed in pieces whose sizes come from the input too, so reads
 * split lines anywhere.  Properties: every reply line is "DDD" then ' '
 * or '-', ends in CR LF; a submission has a sender without CR/LF/NUL, at
 * least one recipient and at most max-recipients, and a message no larger
 * than max-message-size (plus our Received: field) with CR LF line
 * ends only.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "fuzz.h"
#include "sc-smtp-session.h"

static const char *const credentials[] = {"user", "pass", NULL};

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	return 0;
}

static void
check_output (GString *output)
{
	const char *line = output->str;

	while (*line != '\0') {
		const char *end = strstr (line, "\r\n");
		SC_FUZZ_ASSERT (end != NULL);
		SC_FUZZ_ASSERT (end - line >= 4);
		SC_FUZZ_ASSERT (g_ascii_isdigit (line[0]) && g_ascii_isdigit (line[1]) && g_ascii_isdigit (line[2]));
		SC_FUZZ_ASSERT (line[3] == ' ' || line[3] == '-');
		SC_FUZZ_ASSERT (memchr (line, '\n', end - line) == NULL);
		line = end + 2;
	}
	g_string_truncate (output, 0);
}

static void
check_submission (const ScSubmission *submission, const ScSmtpSessionConfig *config)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (submission->raw, &size);
	guint n = 0;

	SC_FUZZ_ASSERT (strpbrk (submission->sender, "\r\n") == NULL);
	for (; submission->recipients[n] != NULL; n++)
		SC_FUZZ_ASSERT (strpbrk (submission->recipients[n], "\r\n") == NULL);
	SC_FUZZ_ASSERT (n >= 1 && n <= config->max_recipients);
	SC_FUZZ_ASSERT (size <= config->max_message_size + 1024);
	/* CR LF line ends throughout (a "." line is possible: a client's "..") */
	for (gsize i = 0; i < size; i++) {
		if (data[i] == '\n')
			SC_FUZZ_ASSERT (i > 0 && data[i - 1] == '\r');
	}
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	ScSmtpSessionConfig config = {
	    .hostname = "mx.fuzz",
	    .max_message_size = 4096,
	    .max_recipients = 3,
	};
	g_autoptr(ScSmtpSession) session = NULL;
	ScSmtpStep step;
	gsize pos = 1;
	guint8 mode;

	if (size < 1)
		return 0;
	mode = data[0];
	config.protocol = (mode & 1) ? SC_SMTP_PROTOCOL_LMTP : SC_SMTP_PROTOCOL_SMTP;
	config.bare_newline = (mode & 2) ? SC_BARE_NEWLINE_REJECT : SC_BARE_NEWLINE_NORMALIZE;
	config.tls_available = (mode & 4) != 0;
	config.credentials = (mode & 8) ? credentials : NULL;
	config.peer_allowed = (mode & 16) != 0;
	session = sc_smtp_session_new (&config, "192.0.2.1");
	step = sc_smtp_session_greet (session, FALSE);
	check_output (sc_smtp_session_get_output (session));
	while (pos < size && step != SC_SMTP_STEP_CLOSE) {
		/* piece sizes 1..64 from the input itself */
		gsize piece = MIN ((gsize) (data[pos] % 64) + 1, size - pos);

		sc_smtp_session_feed (session, data + pos, piece);
		pos += piece;
		for (;;) {
			step = sc_smtp_session_run (session);
			check_output (sc_smtp_session_get_output (session));
			if (step == SC_SMTP_STEP_SUBMIT) {
				const ScSubmission *submission = sc_smtp_session_get_submission (session);
				ScAccepted accepted = {.queue_id = (char *) "Q"};
				g_autoptr(GError) error = NULL;

				check_submission (submission, &config);
				if (mode & 32)
					error = g_error_new_literal (SC_INGRESS_ERROR, SC_INGRESS_ERROR_SPOOL_BUSY, "busy");
				sc_smtp_session_submitted (session, error == NULL ? &accepted : NULL, error);
				continue;
			}
			if (step == SC_SMTP_STEP_STARTTLS) {
				sc_smtp_session_tls_started (session);
				continue;
			}
			break;
		}
	}
	if (step != SC_SMTP_STEP_CLOSE && (mode & 64)) {
		sc_smtp_session_shutdown (session);
		check_output (sc_smtp_session_get_output (session));
	}
	return 0;
}
