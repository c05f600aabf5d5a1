/* sc-deliver-smtp.c — one SMTP transaction over libcurl, every reply kept verbatim.
 *
 * A mailer that needs neither TLS nor AUTH (smtp://, starttls=off, no
 * username) gets the pipelined client of sc-deliver-smtp-pipe.c instead
 * [sc_smtp_connection_new]; this file keeps what both share (the envelope
 * checks, reply recording, the decision table sc_smtp_decide, the rule for
 * a pooled connection the server closed) and the libcurl client.
 *
 * sc_smtp_send() hands one message, one envelope sender and a batch of
 * recipients to libcurl's SMTP client and turns what happened into an
 * ScSmtpResult: which recipients the server took, each RCPT reply word for
 * word, and, when it failed, how far the transaction got.  How far matters
 * more than why: before DATA nobody has the message (try another mailer),
 * after the final "." was sent but before its reply somebody may have it
 * (sending again may duplicate it).
 *
 * libcurl does not report per-command replies, so the transaction is
 * followed through its debug callback (CURLOPT_VERBOSE): every command line
 * curl writes arrives as CURLINFO_HEADER_OUT, every reply line as
 * CURLINFO_HEADER_IN, in protocol order (curl does not pipeline SMTP
 * commands).  Commands move the phase:
 *
 *	CONNECT   -> EHLO      "EHLO x" / "HELO x" (after the greeting)
 *	EHLO      -> STARTTLS  "STARTTLS"          (back to EHLO after TLS)
 *	EHLO      -> AUTH      "AUTH …"            (continuation lines stay AUTH)
 *	*         -> MAIL      "MAIL FROM:"        (first command on a reused connection)
 *	MAIL      -> RCPT      "RCPT TO:"          (one per recipient, counted)
 *	RCPT      -> DATA      "DATA"
 *	DATA      -> BODY      354 reply           [sc_smtp_reply_done]
 *	BODY      -> DOT       the whole body written [sc_smtp_body_check_written]
 *	DOT       -> DONE      the reply after "." [sc_smtp_reply_done]
 *
 * and each complete reply (a "ddd-" line continues, "ddd " ends it) is
 * recorded for the phase it answers.  "QUIT" (curl closing after an error)
 * freezes the phase: its 221 answers nothing we asked.
 *
 * Detecting "the final '.' went out" (DOT): libcurl writes the body through
 * the read callback, stuffing a dot at every line start ("\r\n." becomes
 * "\r\n..", and a dot at offset 0 too), shows every chunk it wrote to the
 * socket as CURLINFO_DATA_OUT, and then, in smtp_done(), writes
 * "\r\n.\r\n" (not shown to the debug callback) and waits for the reply.
 * The read callback returning EOF alone proves nothing: libcurl 7.88 refills
 * its upload buffer while up to 1/32 of it is still unsent.  So the body
 * counts as written once EOF was returned and the DATA_OUT bytes add up to
 * the stuffed size computed beforehand [sc_smtp_wire_size], and the phase
 * moves to DOT.  In DOT a send error means the dot itself could not be
 * written: the server cannot have ended the transaction (DATA_FAILED); any
 * other failure — no reply, a reset, a timeout — means the dot may have
 * arrived (DATA_UNKNOWN).  From DOT on, cancellation no longer aborts: the
 * reply is awaited for up to the mailer's timeout, since aborting cannot
 * take the message back and only makes the next attempt a duplicate.  Should
 * a libcurl ever stuff differently, the sizes disagree and a warning says
 * so (the tests turn it into a failure).
 *
 * CURLOPT_INFILESIZE is deliberately not set: libcurl 7.88 marks the upload
 * done when the count of stuffed bytes written equals that size
 * (transfer.c readwrite_upload), and with stuffed dots a partial write can
 * hit it before the end: a silently truncated message.  The price is no
 * SIZE= on MAIL FROM.
 *
 * Must never: put a CR or LF from an address into a command, show or log a
 * password or an AUTH line, report DATA_FAILED or MAILER_FAILED when the
 * final "." may have been received, or block without a deadline.
 */
#include "config.h"

#include <curl/curl.h>
#include <string.h>

#include "sc-deliver-reply.h"
#include "sc-deliver-smtp-private.h"
#include "sc-i18n.h"

/* renamed in libcurl 8.2 (the old name stays, deprecated) */
#if LIBCURL_VERSION_NUM >= 0x080200
#define SC_CURLOPT_MAIL_RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLOWFAILS
#else
#define SC_CURLOPT_MAIL_RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLLOWFAILS
#endif

struct _ScSmtpConnection {
	CURL *curl;          /* (owned) (nullable) its connection cache is what is reused */
	ScSmtpPipe *pipe;    /* (owned) (nullable) set instead of curl: the pipelined client */
	char *name;          /* (owned) the mailer's name */
	char *url;           /* (owned) the mailer's url with the EHLO name as its path */
	ScStartTls starttls;
	gboolean tls_verify;
	char *username;      /* (owned) (nullable) */
	char *password_file; /* (owned) (nullable) read at each send */
	gint64 timeout;      /* µs, per command and for connecting */
	guint connects;      /* TCP connections opened, summed over performs (libcurl) */
};

/* what an operator reads in "during %s: …" */
static const char *const phase_names[] = {
    [SC_SMTP_PHASE_CONNECT] = "connect",
    [SC_SMTP_PHASE_EHLO] = "EHLO",
    [SC_SMTP_PHASE_STARTTLS] = "STARTTLS",
    [SC_SMTP_PHASE_AUTH] = "AUTH",
    [SC_SMTP_PHASE_MAIL] = "MAIL FROM",
    [SC_SMTP_PHASE_RCPT] = "RCPT TO",
    [SC_SMTP_PHASE_DATA] = "DATA",
    [SC_SMTP_PHASE_BODY] = "message body",
    [SC_SMTP_PHASE_DOT] = "end of data",
    [SC_SMTP_PHASE_DONE] = "end of data",
};

static void
sc_smtp_recipient_result_free (ScSmtpRecipientResult *recipient)
{
	g_free (recipient->address);
	g_free (recipient->reply);
	g_free (recipient);
}

void
sc_smtp_result_free (ScSmtpResult *result)
{
	if (result == NULL)
		return;
	g_free (result->reply);
	g_clear_pointer (&result->recipients, g_ptr_array_unref);
	g_free (result);
}

void
sc_smtp_transfer_clear (ScSmtpTransfer *transfer)
{
	if (transfer->line != NULL)
		g_string_free (transfer->line, TRUE);
	if (transfer->reply != NULL)
		g_string_free (transfer->reply, TRUE);
	g_free (transfer->last_reply);
}

/* "smtp://host:port/EHLO-NAME": libcurl takes the EHLO name from the URL's
 * path (and its own host name when there is none).  An explicit helo
 * replaces any path; without one a path already in the URL is kept.
 * (transfer full) */
static char *
sc_smtp_build_url (const char *url, const char *helo)
{
	CURLU *handle = curl_url ();
	char *path = NULL;
	char *full = NULL;
	char *built = NULL;

	if (handle == NULL)
		return g_strdup (url);
	if (curl_url_set (handle, CURLUPART_URL, url, 0) != CURLUE_OK) {
		/* curl_easy_perform() reports it, without our help */
		curl_url_cleanup (handle);
		return g_strdup (url);
	}
	(void) curl_url_get (handle, CURLUPART_PATH, &path, 0);
	if (helo != NULL || path == NULL || path[0] == '\0' || g_strcmp0 (path, "/") == 0) {
		g_autofree char *new_path =
		    g_strconcat ("/", helo != NULL ? helo : g_get_host_name (), NULL);
		(void) curl_url_set (handle, CURLUPART_PATH, new_path, CURLU_URLENCODE);
	}
	if (curl_url_get (handle, CURLUPART_URL, &full, 0) == CURLUE_OK)
		built = g_strdup (full);
	else
		built = g_strdup (url);
	curl_free (full);
	curl_free (path);
	curl_url_cleanup (handle);
	return built;
}

/* The EHLO name libcurl would send for @url (built by sc_smtp_build_url):
 * its path without the "/", URL-decoded.  NULL when it would not be a
 * single clean word on a command line. (transfer full) */
static char *
sc_smtp_url_helo (const char *url)
{
	g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED_PATH, NULL);
	g_autofree char *helo = NULL;
	const char *path;

	if (uri == NULL)
		return NULL;
	path = g_uri_get_path (uri);
	if (path[0] == '/')
		path++;
	helo = g_uri_unescape_string (path, NULL);
	if (helo == NULL || helo[0] == '\0')
		return NULL;
	for (const char *c = helo; *c != '\0'; c++) {
		if ((guchar) *c <= ' ' || *c == 0x7f)
			return NULL;
	}
	return g_steal_pointer (&helo);
}

/* The pipelined client speaks plain SMTP only: no TLS (smtps:// or
 * STARTTLS, even opportunistic) and no AUTH. */
static gboolean
sc_smtp_mailer_is_plain (const ScMailerConfig *mailer)
{
	return g_ascii_strncasecmp (mailer->url, "smtp://", 7) == 0 &&
	       mailer->starttls == SC_STARTTLS_OFF && mailer->username == NULL;
}

ScSmtpConnection *
sc_smtp_connection_new_with_transport (const ScMailerConfig *mailer, ScSmtpTransport transport)
{
	ScSmtpConnection *connection;

	g_return_val_if_fail (mailer != NULL, NULL);
	g_return_val_if_fail (mailer->url != NULL, NULL);

	connection = g_new0 (ScSmtpConnection, 1);
	connection->name = g_strdup (mailer->name != NULL ? mailer->name : "");
	connection->url = sc_smtp_build_url (mailer->url, mailer->helo);
	connection->starttls = mailer->starttls;
	connection->tls_verify = mailer->tls_verify;
	connection->username = g_strdup (mailer->username);
	connection->password_file = g_strdup (mailer->password_file);
	connection->timeout = mailer->timeout > 0 ? mailer->timeout : SC_SMTP_DEFAULT_TIMEOUT;
	if (transport == SC_SMTP_TRANSPORT_AUTO)
		transport = sc_smtp_mailer_is_plain (mailer) ? SC_SMTP_TRANSPORT_PIPE
							     : SC_SMTP_TRANSPORT_CURL;
	if (transport == SC_SMTP_TRANSPORT_PIPE) {
		/* the name libcurl would say, so that switching changes nothing */
		g_autofree char *helo = sc_smtp_url_helo (connection->url);

		connection->pipe = sc_smtp_pipe_new (connection->name,
						     mailer->url,
						     helo != NULL ? helo : g_get_host_name (),
						     connection->timeout);
	} else {
		connection->curl = curl_easy_init ();
	}
	return connection;
}

ScSmtpConnection *
sc_smtp_connection_new (const ScMailerConfig *mailer)
{
	return sc_smtp_connection_new_with_transport (mailer, SC_SMTP_TRANSPORT_AUTO);
}

gboolean
sc_smtp_connection_is_pipe (ScSmtpConnection *connection)
{
	g_return_val_if_fail (connection != NULL, FALSE);
	return connection->pipe != NULL;
}

void
sc_smtp_connection_free (ScSmtpConnection *connection)
{
	if (connection == NULL)
		return;
	/* sends QUIT on a cached connection; no callback of ours is set any more */
	if (connection->curl != NULL)
		curl_easy_cleanup (connection->curl);
	g_clear_pointer (&connection->pipe, sc_smtp_pipe_free);
	g_free (connection->name);
	g_free (connection->url);
	g_free (connection->username);
	g_free (connection->password_file);
	g_free (connection);
}

const char *
sc_smtp_connection_get_mailer_name (ScSmtpConnection *connection)
{
	g_return_val_if_fail (connection != NULL, NULL);
	return connection->name;
}

guint
sc_smtp_connection_get_connects (ScSmtpConnection *connection)
{
	g_return_val_if_fail (connection != NULL, 0);
	if (connection->pipe != NULL)
		return sc_smtp_pipe_get_connects (connection->pipe);
	return connection->connects;
}

/* An address curl would put between "<" and ">" on a command line. */
static gboolean
sc_smtp_address_is_safe (const char *address)
{
	return strpbrk (address, "\r\n<>") == NULL;
}

/* The password file's first line, without its line end.  The error names
 * the file, never its contents.  (transfer full) */
static char *
sc_smtp_read_password (const char *path, GError **error)
{
	g_autofree char *contents = NULL;
	gsize length = 0;

	if (!g_file_get_contents (path, &contents, &length, error))
		return NULL;
	while (length > 0 && (contents[length - 1] == '\n' || contents[length - 1] == '\r'))
		contents[--length] = '\0';
	return g_steal_pointer (&contents);
}

static void
sc_smtp_wipe_free (char *secret)
{
	if (secret == NULL)
		return;
	memset (secret, 0, strlen (secret));
	g_free (secret);
}

/* The body's size on the wire, and whether it has bare LF.  The message
 * is sent with every bare LF made CRLF, converted while libcurl reads it
 * (sc_smtp_read_cb: no copy of the message is made).  A bare CR is left
 * alone: it is not a line end to SMTP, and making it one could end a
 * header block early.  libcurl then doubles a dot at the start of the body
 * and after every CRLF (smtp.c Curl_smtp_escape_eob(), checked against
 * DATA_OUT totals by test-deliver-smtp and by the warning in
 * sc_smtp_send()); after conversion a CRLF stands exactly where the
 * message has an LF. */
gsize
sc_smtp_wire_size (const guint8 *data, gsize size, gboolean *out_has_bare_lf)
{
	const guint8 *end = data + size;
	const guint8 *line = data;
	const guint8 *lf;
	gsize wire = size;
	gsize bare = 0;

	/* line by line with memchr (a byte loop was ~1 % of the daemon's CPU
	 * under figure 3): a dot that starts a line gets another, a bare LF
	 * its CR */
	while (line < end) {
		if (*line == '.')
			wire++;
		lf = memchr (line, '\n', end - line);
		if (lf == NULL)
			break;
		if (lf == data || lf[-1] != '\r')
			bare++;
		line = lf + 1;
	}
	*out_has_bare_lf = bare > 0;
	return wire + bare;
}

static void
sc_smtp_body_check_written (ScSmtpTransfer *transfer)
{
	if (transfer->phase == SC_SMTP_PHASE_BODY && transfer->body_eof &&
	    transfer->data_out >= transfer->wire_size)
		transfer->phase = SC_SMTP_PHASE_DOT;
}

/* Called with a complete reply; @text: (transfer full) */
static void
sc_smtp_reply_done (ScSmtpTransfer *transfer, int code, char *text)
{
	transfer->replies++;
	g_free (transfer->last_reply);
	transfer->last_reply = text;
	transfer->last_code = code;
	transfer->last_phase = transfer->phase;

	switch (transfer->phase) {
	case SC_SMTP_PHASE_RCPT:
		if (transfer->rcpt_sent > 0 && transfer->rcpt_sent <= transfer->n_rcpt) {
			guint index = transfer->rcpt_index[transfer->rcpt_sent - 1];
			ScSmtpRecipientResult *recipient =
			    g_ptr_array_index (transfer->result->recipients, index);

			recipient->code = code;
			g_free (recipient->reply);
			recipient->reply = g_strdup (text);
			recipient->accepted = code >= 200 && code < 300;
		}
		break;
	case SC_SMTP_PHASE_DATA:
		if (code == 354)
			transfer->phase = SC_SMTP_PHASE_BODY;
		break;
	case SC_SMTP_PHASE_DOT:
		transfer->phase = SC_SMTP_PHASE_DONE;
		break;
	default:
		break;
	}
}

gboolean
sc_smtp_reply_line_continues (const char *line, gsize length)
{
	return length >= 4 && g_ascii_isdigit (line[0]) && g_ascii_isdigit (line[1]) &&
	       g_ascii_isdigit (line[2]) && line[3] == '-';
}

int
sc_smtp_reply_line_code (const char *line, gsize length)
{
	if (length >= 3 && g_ascii_isdigit (line[0]) && g_ascii_isdigit (line[1]) &&
	    g_ascii_isdigit (line[2]))
		return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	return 0;
}

/* One reply line, CR LF stripped. */
void
sc_smtp_reply_line (ScSmtpTransfer *transfer, const char *line, gsize length)
{
	gboolean continued = sc_smtp_reply_line_continues (line, length);
	char *text;
	int code;
	if (transfer->reply->len + length + 1 > SC_SMTP_REPLY_MAX) {
		transfer->reply_truncated = TRUE;
	} else {
		if (transfer->reply->len > 0)
			g_string_append_c (transfer->reply, '\n');
		g_string_append_len (transfer->reply, line, length);
	}
	if (continued)
		return;

	code = sc_smtp_reply_line_code (line, length);
	if (transfer->reply_truncated)
		g_string_append (transfer->reply, "\n[…]");
	/* verbatim except for bytes that are not UTF-8: the reply is stored
	 * as text and shown in JSON and HTML */
	text = g_utf8_make_valid (transfer->reply->str, (gssize) transfer->reply->len);
	sc_smtp_reply_done (transfer, code, text);
	g_string_truncate (transfer->reply, 0);
	transfer->reply_truncated = FALSE;
}

static void
sc_smtp_header_in (ScSmtpTransfer *transfer, const char *data, gsize size)
{
	/* curl passes one line per call; a split line is joined all the same */
	for (gsize i = 0; i < size; i++) {
		if (data[i] != '\n') {
			if (transfer->line->len < SC_SMTP_REPLY_MAX)
				g_string_append_c (transfer->line, data[i]);
			continue;
		}
		if (transfer->line->len > 0 && transfer->line->str[transfer->line->len - 1] == '\r')
			g_string_truncate (transfer->line, transfer->line->len - 1);
		if (!transfer->quitting)
			sc_smtp_reply_line (transfer, transfer->line->str, transfer->line->len);
		g_string_truncate (transfer->line, 0);
	}
}

/* A command curl wrote.  Only its verb is looked at: AUTH lines carry the
 * credentials and are neither kept nor logged. */
static void
sc_smtp_header_out (ScSmtpTransfer *transfer, const char *data, gsize size)
{
	g_autofree char *command = NULL;

	if (transfer->quitting)
		return;
	command = g_ascii_strup (data, (gssize) MIN (size, (gsize) 16));
	if (g_str_has_prefix (command, "QUIT\r\n")) {
		transfer->quitting = TRUE;
	} else if (g_str_has_prefix (command, "MAIL FROM:")) {
		transfer->phase = SC_SMTP_PHASE_MAIL;
	} else if (transfer->phase == SC_SMTP_PHASE_AUTH) {
		/* a SASL continuation: base64, or "*" */
	} else if (g_str_has_prefix (command, "EHLO ") || g_str_has_prefix (command, "HELO ")) {
		transfer->phase = SC_SMTP_PHASE_EHLO;
	} else if (g_str_has_prefix (command, "STARTTLS\r\n")) {
		transfer->phase = SC_SMTP_PHASE_STARTTLS;
	} else if (g_str_has_prefix (command, "AUTH ")) {
		transfer->phase = SC_SMTP_PHASE_AUTH;
	} else if (g_str_has_prefix (command, "RCPT TO:")) {
		transfer->phase = SC_SMTP_PHASE_RCPT;
		transfer->rcpt_sent++;
	} else if (g_str_has_prefix (command, "DATA\r\n")) {
		transfer->phase = SC_SMTP_PHASE_DATA;
	}
}

static int
sc_smtp_debug_cb (CURL *curl, curl_infotype type, char *data, size_t size, void *user_data)
{
	ScSmtpTransfer *transfer = user_data;

	if (type == CURLINFO_HEADER_IN) {
		sc_smtp_header_in (transfer, data, size);
	} else if (type == CURLINFO_HEADER_OUT) {
		sc_smtp_header_out (transfer, data, size);
	} else if (type == CURLINFO_DATA_OUT) {
		transfer->data_out += size;
		sc_smtp_body_check_written (transfer);
	}
	return 0;
}

static size_t
sc_smtp_read_cb (char *buffer, size_t size, size_t count, void *user_data)
{
	ScSmtpTransfer *transfer = user_data;
	gsize room = size * count;
	gsize length = 0;

	if (!transfer->has_bare_lf) {
		length = MIN (room, transfer->body_size - transfer->body_offset);
		memcpy (buffer, transfer->body + transfer->body_offset, length);
		transfer->body_offset += length;
	} else {
		/* CRLF for every bare LF, a byte at a time (a CR may end one
		 * buffer and its LF start the next) */
		while (length < room) {
			guint8 c;

			if (transfer->pending_lf) {
				buffer[length++] = '\n';
				transfer->pending_lf = FALSE;
				continue;
			}
			if (transfer->body_offset == transfer->body_size)
				break;
			c = transfer->body[transfer->body_offset++];
			if (c == '\n' && !transfer->previous_cr) {
				buffer[length++] = '\r';
				transfer->pending_lf = TRUE;
			} else {
				buffer[length++] = (char) c;
			}
			transfer->previous_cr = c == '\r';
		}
	}
	/* EOF; libcurl may still hold the last bytes (see top) */
	if (length == 0) {
		transfer->body_eof = TRUE;
		sc_smtp_body_check_written (transfer);
	}
	return length;
}

static int
sc_smtp_progress_cb (void *user_data,
		     curl_off_t download_total,
		     curl_off_t downloaded,
		     curl_off_t upload_total,
		     curl_off_t uploaded)
{
	ScSmtpTransfer *transfer = user_data;

	/* Once the whole body is written the "." follows and the server may
	 * take the message: aborting then only turns a delivery into a
	 * duplicate on the next attempt.  The reply is awaited, bounded by
	 * the mailer's timeout (CURLOPT_SERVER_RESPONSE_TIMEOUT). */
	if (transfer->phase >= SC_SMTP_PHASE_DOT)
		return 0;
	/* non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK */
	return g_cancellable_is_cancelled (transfer->cancellable) ? 1 : 0;
}

void
sc_smtp_result_set (ScSmtpResult *result,
		    ScSmtpStatus status,
		    int code,
		    const char *reply,
		    gboolean transient)
{
	result->status = status;
	result->code = code;
	g_free (result->reply);
	result->reply = g_strdup (reply);
	result->transient = transient;
}

/* "during MAIL FROM: Timeout was reached" (transfer full) */
static char *
sc_smtp_describe_failure (ScSmtpPhase phase, ScSmtpFailure failure, const char *what)
{
	if (failure == SC_SMTP_FAILURE_CANCELLED)
		what = _("cancelled");
	else if (what == NULL)
		what = _("the transaction ended early");
	/* TRANSLATORS: "during MAIL FROM: Timeout was reached"; the first %s
	 * is an SMTP command or "connect", "message body", "end of data" */
	return g_strdup_printf (_("during %s: %s"), phase_names[phase], what);
}

static gboolean
sc_smtp_reply_is_transient (int code, const char *reply)
{
	return sc_smtp_reply_classify (code, reply) != SC_REPLY_PERMANENT;
}

/* The last reply, when it is a refusal of the phase the transfer failed in. */
static gboolean
sc_smtp_transfer_has_refusal (ScSmtpTransfer *transfer)
{
	return transfer->last_reply != NULL && transfer->last_phase == transfer->phase &&
	       transfer->last_code >= 400;
}

/* Turns where the transaction stopped into the result's status: the same
 * table for both clients. */
void
sc_smtp_decide (ScSmtpTransfer *transfer,
		ScSmtpResult *result,
		ScSmtpFailure failure,
		const char *what)
{
	g_autofree char *description = sc_smtp_describe_failure (transfer->phase, failure, what);
	gboolean cancelled = failure == SC_SMTP_FAILURE_CANCELLED;

	switch (transfer->phase) {
	case SC_SMTP_PHASE_DONE:
		if (transfer->last_code >= 200 && transfer->last_code < 300) {
			sc_smtp_result_set (result,
					    SC_SMTP_SENT,
					    transfer->last_code,
					    transfer->last_reply,
					    FALSE);
		} else {
			/* refused after ".": nobody has it, whatever the code */
			sc_smtp_result_set (result,
					    SC_SMTP_DATA_FAILED,
					    transfer->last_code,
					    transfer->last_reply,
					    sc_smtp_reply_is_transient (transfer->last_code,
									transfer->last_reply));
		}
		return;
	case SC_SMTP_PHASE_DOT:
		if (failure == SC_SMTP_FAILURE_SEND) {
			/* the socket refused the "." itself: no end of data arrived */
			sc_smtp_result_set (result, SC_SMTP_DATA_FAILED, 0, description, TRUE);
		} else {
			g_autofree char *unknown = g_strdup_printf (
			    /* TRANSLATORS: %s is "during end of data: Failure when
			     * receiving data from the peer" */
			    _("%s, after the final \".\" was sent: the server may have accepted "
			      "the message"),
			    description);
			sc_smtp_result_set (result, SC_SMTP_DATA_UNKNOWN, 0, unknown, TRUE);
		}
		return;
	case SC_SMTP_PHASE_BODY:
		sc_smtp_result_set (result, SC_SMTP_DATA_FAILED, 0, description, TRUE);
		return;
	case SC_SMTP_PHASE_DATA:
		if (!cancelled && sc_smtp_transfer_has_refusal (transfer)) {
			sc_smtp_result_set (result,
					    SC_SMTP_DATA_FAILED,
					    transfer->last_code,
					    transfer->last_reply,
					    sc_smtp_reply_is_transient (transfer->last_code,
									transfer->last_reply));
		} else {
			sc_smtp_result_set (result, SC_SMTP_DATA_FAILED, 0, description, TRUE);
		}
		return;
	case SC_SMTP_PHASE_RCPT:
		/* every RCPT answered, none taken: curl gave up before DATA */
		if (!cancelled && transfer->rcpt_sent == transfer->n_rcpt &&
		    transfer->last_phase == SC_SMTP_PHASE_RCPT && transfer->last_code >= 400) {
			gboolean transient = FALSE;
			gboolean all_answered = TRUE;

			for (guint i = 0; i < result->recipients->len; i++) {
				ScSmtpRecipientResult *recipient = result->recipients->pdata[i];

				if (recipient->code == 0 || recipient->accepted) {
					all_answered = FALSE;
					break;
				}
				if (sc_smtp_reply_is_transient (recipient->code, recipient->reply))
					transient = TRUE;
			}
			if (all_answered) {
				sc_smtp_result_set (result,
						    SC_SMTP_ALL_REFUSED,
						    transfer->last_code,
						    transfer->last_reply,
						    transient);
				return;
			}
		}
		/* the connection broke among the RCPTs (a 421 closes it):
		 * DATA never went out, so this is the mailer's failure */
		if (!cancelled && sc_smtp_transfer_has_refusal (transfer)) {
			sc_smtp_result_set (result,
					    SC_SMTP_MAILER_FAILED,
					    transfer->last_code,
					    transfer->last_reply,
					    TRUE);
		} else {
			sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 0, description, TRUE);
		}
		return;
	case SC_SMTP_PHASE_MAIL:
		/* MAIL FROM refused: about the sender (or the message's SIZE),
		 * so the reply's own class says whether it can change */
		if (!cancelled && sc_smtp_transfer_has_refusal (transfer)) {
			sc_smtp_result_set (result,
					    SC_SMTP_MAILER_FAILED,
					    transfer->last_code,
					    transfer->last_reply,
					    sc_smtp_reply_is_transient (transfer->last_code,
									transfer->last_reply));
		} else {
			sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 0, description, TRUE);
		}
		return;
	case SC_SMTP_PHASE_CONNECT:
	case SC_SMTP_PHASE_EHLO:
	case SC_SMTP_PHASE_STARTTLS:
	case SC_SMTP_PHASE_AUTH:
	default:
		/* a refused greeting, EHLO, TLS or login is the mailer's state
		 * or its configuration: an operator can fix it, so transient
		 * even when the server said 5xx */
		if (!cancelled && sc_smtp_transfer_has_refusal (transfer)) {
			sc_smtp_result_set (result,
					    SC_SMTP_MAILER_FAILED,
					    transfer->last_code,
					    transfer->last_reply,
					    TRUE);
		} else {
			sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 0, description, TRUE);
		}
		return;
	}
}

/* Sets the options of one transaction; the per-call pointers are dropped
 * again by sc_smtp_clear_options(). */
static void
sc_smtp_set_options (ScSmtpConnection *connection,
		     ScSmtpTransfer *transfer,
		     const char *sender,
		     struct curl_slist *rcpt,
		     const char *password,
		     char *error_buffer)
{
	CURL *curl = connection->curl;
	gint64 timeout = connection->timeout;
	long timeout_s = (long) MAX (1, (timeout + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
	long timeout_ms = (long) MAX (1, timeout / 1000);

	curl_easy_setopt (curl, CURLOPT_URL, connection->url);
	curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, error_buffer);
	switch (connection->starttls) {
	case SC_STARTTLS_REQUIRED:
		curl_easy_setopt (curl, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
		break;
	case SC_STARTTLS_OFF:
		curl_easy_setopt (curl, CURLOPT_USE_SSL, (long) CURLUSESSL_NONE);
		break;
	case SC_STARTTLS_OPPORTUNISTIC:
	default:
		curl_easy_setopt (curl, CURLOPT_USE_SSL, (long) CURLUSESSL_TRY);
		break;
	}
	curl_easy_setopt (curl, CURLOPT_SSL_VERIFYPEER, connection->tls_verify ? 1L : 0L);
	curl_easy_setopt (curl, CURLOPT_SSL_VERIFYHOST, connection->tls_verify ? 2L : 0L);
	curl_easy_setopt (curl, CURLOPT_USERNAME, connection->username);
	curl_easy_setopt (curl, CURLOPT_PASSWORD, password);

	/* connecting (TCP, TLS, greeting, EHLO, AUTH) and every reply each get
	 * the mailer's timeout; a body that stops moving for as long too */
	curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt (curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, timeout_s);
	curl_easy_setopt (curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt (curl, CURLOPT_LOW_SPEED_TIME, timeout_s);

	curl_easy_setopt (curl, CURLOPT_MAIL_FROM, sender);
	curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, rcpt);
	/* refused recipients are recorded; the others still get the message */
	curl_easy_setopt (curl, SC_CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
	curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
	/* no CURLOPT_INFILESIZE: see top */
	curl_easy_setopt (curl, CURLOPT_READFUNCTION, sc_smtp_read_cb);
	curl_easy_setopt (curl, CURLOPT_READDATA, transfer);

	curl_easy_setopt (curl, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, sc_smtp_debug_cb);
	curl_easy_setopt (curl, CURLOPT_DEBUGDATA, transfer);
	if (transfer->cancellable != NULL) {
		curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, sc_smtp_progress_cb);
		curl_easy_setopt (curl, CURLOPT_XFERINFODATA, transfer);
	} else {
		curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 1L);
	}
}

/* The handle outlives this call (and sends QUIT from
 * sc_smtp_connection_free()): no pointer to our stack may stay in it. */
static void
sc_smtp_clear_options (ScSmtpConnection *connection)
{
	CURL *curl = connection->curl;

	curl_easy_setopt (curl, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt (curl, CURLOPT_DEBUGFUNCTION, NULL);
	curl_easy_setopt (curl, CURLOPT_DEBUGDATA, NULL);
	curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, NULL);
	curl_easy_setopt (curl, CURLOPT_XFERINFODATA, NULL);
	curl_easy_setopt (curl, CURLOPT_READFUNCTION, NULL);
	curl_easy_setopt (curl, CURLOPT_READDATA, NULL);
	curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, NULL);
	curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, NULL);
	/* curl's copy; the next send sets it again (a cached connection is
	 * only reused for the same credentials) */
	curl_easy_setopt (curl, CURLOPT_PASSWORD, NULL);
}

ScSmtpResult *
sc_smtp_result_new (const char *const *recipients)
{
	ScSmtpResult *result = g_new0 (ScSmtpResult, 1);

	result->recipients =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) sc_smtp_recipient_result_free);
	for (guint i = 0; recipients[i] != NULL; i++) {
		ScSmtpRecipientResult *recipient = g_new0 (ScSmtpRecipientResult, 1);

		recipient->address = g_strdup (recipients[i]);
		g_ptr_array_add (result->recipients, recipient);
	}
	return result;
}

/* Whether a transfer on a reused connection (the caller checks that no
 * new one was opened) failed because the server had closed it while it sat in the pool:
 *  - the first command (MAIL FROM) could not be written (the phase is
 *    still CONNECT: curl shows a command only once it is written) or got
 *    no reply: the server sent FIN or RST meanwhile;
 *  - its only reply is a 421 to MAIL FROM: Postfix's smtpd_timeout (and
 *    others) say "421 4.4.2 … timeout exceeded" before closing, and
 *    libcurl takes the pending bytes for a live connection.
 * Nothing was sent to anybody in either case.  A 421 from a server that
 * is really closing is asked again on the new connection, whose greeting
 * then tells. */
gboolean
sc_smtp_reused_connection_closed (const ScSmtpTransfer *transfer, ScSmtpFailure failure)
{
	/* (NONE too: the pipelined client reads a 421 as a reply that decides) */
	if (failure == SC_SMTP_FAILURE_CANCELLED)
		return FALSE;
	if (transfer->phase != SC_SMTP_PHASE_CONNECT && transfer->phase != SC_SMTP_PHASE_MAIL)
		return FALSE;
	if (transfer->replies == 0)
		/* not a timeout: a stalled server must not cost two */
		return failure == SC_SMTP_FAILURE_SEND || failure == SC_SMTP_FAILURE_BROKEN;
	return transfer->replies == 1 && transfer->last_phase == SC_SMTP_PHASE_MAIL &&
	       transfer->last_code == 421;
}

/* One curl_easy_perform() of the whole transaction. */
static CURLcode
sc_smtp_perform (ScSmtpConnection *connection,
		 ScSmtpTransfer *transfer,
		 const char *sender,
		 struct curl_slist *rcpt,
		 const char *password,
		 char *error_buffer,
		 long *out_connects)
{
	long connects = 0;
	CURLcode rc;

	error_buffer[0] = '\0';
	sc_smtp_set_options (connection, transfer, sender, rcpt, password, error_buffer);
	rc = curl_easy_perform (connection->curl);
	sc_smtp_clear_options (connection);
	if (curl_easy_getinfo (connection->curl, CURLINFO_NUM_CONNECTS, &connects) != CURLE_OK)
		connects = 0;
	connection->connects += (guint) MAX (connects, 0);
	*out_connects = connects;
	return rc;
}

/* What sc_smtp_decide() needs to know of a CURLcode. */
static ScSmtpFailure
sc_smtp_failure_from_curl (CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return SC_SMTP_FAILURE_NONE;
	case CURLE_ABORTED_BY_CALLBACK:
		return SC_SMTP_FAILURE_CANCELLED;
	case CURLE_SEND_ERROR:
		return SC_SMTP_FAILURE_SEND;
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_WEIRD_SERVER_REPLY:
		return SC_SMTP_FAILURE_BROKEN;
	default:
		return SC_SMTP_FAILURE_OTHER;
	}
}

/* The transaction through libcurl; @setup: the transfer's fixed fields,
 * copied into a fresh transfer per attempt. */
static void
sc_smtp_curl_send (ScSmtpConnection *connection,
		   const char *sender,
		   const char *const *addresses,
		   const ScSmtpTransfer *setup,
		   ScSmtpResult *result)
{
	g_autoptr(GError) error_local = NULL;
	struct curl_slist *rcpt = NULL;
	char *password = NULL;
	char error_buffer[CURL_ERROR_SIZE] = "";
	long connects = 0;
	gboolean fresh = FALSE;
	CURLcode rc;

	if (connection->curl == NULL) {
		sc_smtp_result_set (result,
				    SC_SMTP_MAILER_FAILED,
				    0,
				    _("cannot create a libcurl handle"),
				    TRUE);
		return;
	}
	/* read at each send, so that a new password needs no reload */
	if (connection->password_file != NULL) {
		password = sc_smtp_read_password (connection->password_file, &error_local);
		if (password == NULL) {
			/* GLib's message names the file (never its contents) */
			g_autofree char *reply =
			    /* TRANSLATORS: %s is GLib's "Failed to open file “/etc/…”: …" */
			    g_strdup_printf (_("cannot read the password file: %s"),
					     error_local->message);
			sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 0, reply, TRUE);
			return;
		}
	}
	for (guint i = 0; addresses[i] != NULL; i++)
		rcpt = curl_slist_append (rcpt, addresses[i]);

	for (guint attempt = 0;; attempt++) {
		g_auto(ScSmtpTransfer) transfer = *setup;
		ScSmtpFailure failure;
		const char *what;

		transfer.line = g_string_new (NULL);
		transfer.reply = g_string_new (NULL);
		/* the retry must not pick the closed connection again */
		curl_easy_setopt (connection->curl, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
		rc = sc_smtp_perform (connection,
				      &transfer,
				      sender,
				      rcpt,
				      password,
				      error_buffer,
				      &connects);
		curl_easy_setopt (connection->curl, CURLOPT_FRESH_CONNECT, 0L);
		failure = sc_smtp_failure_from_curl (rc);
		what = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror (rc);
		/* A cached connection the server has closed is not the mailer
		 * failing: one more try on a fresh connection. */
		if (attempt == 0 && connects == 0 &&
		    sc_smtp_reused_connection_closed (&transfer, failure)) {
			g_debug ("%s: reused connection was closed by the server (%s), reconnecting",
				 connection->name,
				 transfer.last_reply != NULL ? transfer.last_reply : what);
			fresh = TRUE;
			continue;
		}
		if (rc == CURLE_OK && transfer.data_out != transfer.wire_size) {
			g_warning ("%s: libcurl wrote %" G_GSIZE_FORMAT " body bytes where "
				   "%" G_GSIZE_FORMAT " were expected: its dot-stuffing has "
				   "changed, DATA_UNKNOWN detection is unreliable",
				   connection->name,
				   transfer.data_out,
				   transfer.wire_size);
		}
		if (rc == CURLE_OK && transfer.phase != SC_SMTP_PHASE_DONE) {
			/* cannot happen with curl's SMTP, but a 250 from curl
			 * without a reply we saw must not become "sent" blindly */
			long code = 0;

			curl_easy_getinfo (connection->curl, CURLINFO_RESPONSE_CODE, &code);
			transfer.phase = SC_SMTP_PHASE_DONE;
			transfer.last_code = (int) code;
		}
		sc_smtp_decide (&transfer, result, failure, what);
		break;
	}
	curl_slist_free_all (rcpt);
	sc_smtp_wipe_free (password);
}

ScSmtpResult *
sc_smtp_send (ScSmtpConnection *connection,
	      const char *sender,
	      const char *const *recipients,
	      GBytes *message,
	      GCancellable *cancellable)
{
	g_autoptr(ScSmtpResult) result = NULL;
	g_autoptr(GArray) rcpt_index = NULL;
	g_autoptr(GPtrArray) addresses = NULL;
	const guint8 *body_data;
	gsize body_size = 0;
	gboolean has_bare_lf = FALSE;
	gsize wire_size;

	g_return_val_if_fail (connection != NULL, NULL);
	g_return_val_if_fail (sender != NULL, NULL);
	g_return_val_if_fail (recipients != NULL && recipients[0] != NULL, NULL);
	g_return_val_if_fail (message != NULL, NULL);

	result = sc_smtp_result_new (recipients);

	/* the caller validated the envelope; an address that would still
	 * split a command line is refused here, never sent */
	if (!sc_smtp_address_is_safe (sender)) {
		g_autofree char *reply = g_strdup_printf (
		    "553 5.1.7 %s",
		    _("refused by stagecoach, not sent: the sender contains CR, LF, '<' or '>'"));
		g_debug ("%s: sender refused locally", connection->name);
		sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 553, reply, FALSE);
		return g_steal_pointer (&result);
	}
	rcpt_index = g_array_new (FALSE, FALSE, sizeof (guint));
	addresses = g_ptr_array_new ();
	for (guint i = 0; i < result->recipients->len; i++) {
		ScSmtpRecipientResult *recipient = result->recipients->pdata[i];

		const char *address = recipient->address;

		if (address[0] == '\0' || !sc_smtp_address_is_safe (address)) {
			recipient->code = 553;
			recipient->reply = g_strdup_printf (
			    "553 5.1.3 %s",
			    _("refused by stagecoach, not sent: the address is empty or contains "
			      "CR, LF, '<' or '>'"));
			continue;
		}
		g_ptr_array_add (addresses, (gpointer) address);
		g_array_append_val (rcpt_index, i);
	}
	g_ptr_array_add (addresses, NULL);
	if (rcpt_index->len == 0) {
		ScSmtpRecipientResult *last = g_ptr_array_index (result->recipients,
								 result->recipients->len - 1);
		sc_smtp_result_set (result, SC_SMTP_ALL_REFUSED, last->code, last->reply, FALSE);
		return g_steal_pointer (&result);
	}
	if (g_cancellable_is_cancelled (cancellable)) {
		sc_smtp_result_set (result, SC_SMTP_MAILER_FAILED, 0, _("cancelled"), TRUE);
		return g_steal_pointer (&result);
	}

	body_data = g_bytes_get_data (message, &body_size);
	wire_size = sc_smtp_wire_size (body_data, body_size, &has_bare_lf);
	{
		const ScSmtpTransfer setup = {
		    .result = result,
		    .rcpt_index = (const guint *) rcpt_index->data,
		    .n_rcpt = rcpt_index->len,
		    .body = body_data,
		    .body_size = body_size,
		    .has_bare_lf = has_bare_lf,
		    .wire_size = wire_size,
		    .cancellable = cancellable,
		    .phase = SC_SMTP_PHASE_CONNECT,
		};

		if (connection->pipe != NULL)
			sc_smtp_pipe_send (connection->pipe,
					   sender,
					   (const char *const *) addresses->pdata,
					   &setup,
					   result);
		else
			sc_smtp_curl_send (connection,
					   sender,
					   (const char *const *) addresses->pdata,
					   &setup,
					   result);
	}

	g_debug ("%s: status=%d code=%d connects=%u",
		 connection->name,
		 result->status,
		 result->code,
		 sc_smtp_connection_get_connects (connection));
	return g_steal_pointer (&result);
}
