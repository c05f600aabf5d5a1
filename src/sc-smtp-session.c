/* sc-smtp-session.c — the SMTP/LMTP protocol machine (sc-smtp-session.h).
 *
 * Replies are protocol text and stay untranslated, like log lines.
 *
 * DATA (RFC 5321 4.1.1.4, and SMTP smuggling): only CR LF . CR LF ends
 * the data, where the first CR LF is the end of the previous line (or of
 * the DATA command).  A line ended by a bare LF is, with
 * bare-newline=normalize, a line like any other (stored with CR LF), but
 * a "." after it is content, never the end; with bare-newline=reject the
 * message is read to its real end and refused.  A bare CR is content
 * (normalize) or a reason to refuse (reject).  Every leading dot is
 * removed, so a "." that did not end the data is stored as an empty line.  The stored message has CR
 * LF line ends, dot-unstuffed, with our Received: field on top. */
#include "config.h"

#include "sc-smtp-session.h"

#include <string.h>

#include "sc-message-headers.h"

typedef enum {
	STATE_START,       /* no HELO/EHLO/LHLO yet */
	STATE_READY,       /* greeted, no transaction */
	STATE_MAIL,        /* MAIL given; RCPTs may follow */
	STATE_DATA,        /* reading the message */
	STATE_SUBMIT,      /* waiting for the acceptor */
	STATE_AUTH_PLAIN,  /* waiting for the PLAIN response */
	STATE_AUTH_USER,   /* AUTH LOGIN: waiting for the user name */
	STATE_AUTH_PASS,   /* AUTH LOGIN: waiting for the password */
	STATE_STARTTLS,    /* waiting for the handshake */
	STATE_CLOSED,
} State;

struct _ScSmtpSession {
	ScSmtpSessionConfig config;
	char *hostname;
	GStrv credentials;
	char *peer;

	GByteArray *input;
	gsize input_pos;
	GString *output;
	State state;
	State auth_return;        /* the state AUTH came from */
	gboolean skipping_long_line;
	guint errors;             /* in a row */
	gboolean stopping;

	char *helo;
	gboolean esmtp;
	gboolean tls;
	char *user;
	char *login_user;

	/* the transaction */
	char *sender;
	GPtrArray *recipients;    /* (element-type utf8) accepted RCPTs, NULL-terminated at DATA */
	gboolean smtputf8;

	/* DATA */
	GByteArray *message;
	gsize header_length;      /* our Received: field, not counted in the size */
	gboolean at_line_start;
	gboolean after_crlf;      /* the previous line ended in CR LF */
	gboolean bad_newline;
	gboolean too_big;
	GBytes *raw;
	ScSubmission submission;
};

static void
reply (ScSmtpSession *session, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
reply (ScSmtpSession *session, const char *format, ...)
{
	va_list args;

	/* most replies are fixed texts or one ready string: no printf */
	va_start (args, format);
	if (strcmp (format, "%s") == 0)
		g_string_append (session->output, va_arg (args, const char *));
	else if (strchr (format, '%') == NULL)
		g_string_append (session->output, format);
	else
		g_string_append_vprintf (session->output, format, args);
	va_end (args);
	g_string_append_len (session->output, "\r\n", 2);
}

/* A refused command: counts toward SC_SMTP_MAX_ERRORS. */
static void
reply_error (ScSmtpSession *session, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
reply_error (ScSmtpSession *session, const char *format, ...)
{
	va_list args;

	va_start (args, format);
	g_string_append_vprintf (session->output, format, args);
	va_end (args);
	g_string_append (session->output, "\r\n");
	session->errors++;
	if (session->errors >= SC_SMTP_MAX_ERRORS && session->state != STATE_CLOSED) {
		reply (session, "421 4.7.0 %s Error: too many errors", session->hostname);
		session->state = STATE_CLOSED;
	}
}

ScSmtpSession *
sc_smtp_session_new (const ScSmtpSessionConfig *config, const char *peer)
{
	ScSmtpSession *session = g_new0 (ScSmtpSession, 1);

	session->config = *config;
	session->hostname = g_strdup (config->hostname != NULL ? config->hostname : "localhost");
	session->config.hostname = session->hostname;
	session->credentials = g_strdupv ((GStrv) config->credentials);
	session->config.credentials = (const char *const *) session->credentials;
	session->peer = g_strdup (peer);
	session->input = g_byte_array_new ();
	session->output = g_string_new (NULL);
	session->state = STATE_START;
	return session;
}

static void
reset_transaction (ScSmtpSession *session)
{
	g_clear_pointer (&session->sender, g_free);
	g_clear_pointer (&session->recipients, g_ptr_array_unref);
	g_clear_pointer (&session->message, g_byte_array_unref);
	g_clear_pointer (&session->raw, g_bytes_unref);
	memset (&session->submission, 0, sizeof session->submission);
	session->smtputf8 = FALSE;
	session->bad_newline = FALSE;
	session->too_big = FALSE;
}

void
sc_smtp_session_free (ScSmtpSession *session)
{
	if (session == NULL)
		return;
	reset_transaction (session);
	g_free (session->hostname);
	g_strfreev (session->credentials);
	g_free (session->peer);
	g_byte_array_unref (session->input);
	g_string_free (session->output, TRUE);
	g_free (session->helo);
	g_free (session->user);
	g_free (session->login_user);
	g_free (session);
}

static gboolean
is_lmtp (ScSmtpSession *session)
{
	return session->config.protocol == SC_SMTP_PROTOCOL_LMTP;
}

/* AUTH needs TLS (or a local socket) and credentials. */
static gboolean
auth_offered (ScSmtpSession *session)
{
	return session->credentials != NULL && session->credentials[0] != NULL &&
	       (session->tls || session->config.peer_local);
}

static gboolean
auth_possible (ScSmtpSession *session)
{
	return session->credentials != NULL && session->credentials[0] != NULL &&
	       (session->config.tls_available || session->config.peer_local);
}

ScSmtpStep
sc_smtp_session_greet (ScSmtpSession *session, gboolean busy)
{
	if (busy) {
		reply (session, "421 4.7.0 %s Error: too many connections", session->hostname);
		session->state = STATE_CLOSED;
		return SC_SMTP_STEP_CLOSE;
	}
	if (!session->config.peer_allowed && !session->config.peer_local && !auth_possible (session)) {
		reply (session, "554 5.7.1 %s Error: access denied for %s", session->hostname,
		       session->peer != NULL ? session->peer : "you");
		session->state = STATE_CLOSED;
		return SC_SMTP_STEP_CLOSE;
	}
	reply (session, "220 %s %s stagecoach", session->hostname, is_lmtp (session) ? "LMTP" : "ESMTP");
	return SC_SMTP_STEP_READ;
}

void
sc_smtp_session_feed (ScSmtpSession *session, const void *data, gsize length)
{
	if (session->state == STATE_CLOSED || session->state == STATE_STARTTLS)
		return; /* nothing is read after QUIT, or pipelined behind STARTTLS */
	if (session->input_pos > 0 && session->input_pos >= session->input->len / 2) {
		g_byte_array_remove_range (session->input, 0, session->input_pos);
		session->input_pos = 0;
	}
	g_byte_array_append (session->input, data, length);
}

GString *
sc_smtp_session_get_output (ScSmtpSession *session)
{
	return session->output;
}

gboolean
sc_smtp_session_in_data (ScSmtpSession *session)
{
	return session->state == STATE_DATA;
}

const char *
sc_smtp_session_get_user (ScSmtpSession *session)
{
	return session->user;
}

/* ---- commands ---- */

/* The argument after a verb ("MAIL FROM:" etc.), NULL when @line does not
 * start with @verb followed by end or space. */
static const char *
match_verb (const char *line, const char *verb)
{
	gsize length = strlen (verb);

	if (g_ascii_strncasecmp (line, verb, length) != 0)
		return NULL;
	if (line[length] == '\0')
		return line + length;
	if (line[length] != ' ')
		return NULL;
	line += length;
	while (*line == ' ')
		line++;
	return line;
}

/* "FROM:<path> params" (or TO:).  Returns the address (route dropped),
 * *@out_params the rest; NULL on bad syntax. */
static char *
parse_path (const char *argument, const char *keyword, const char **out_params)
{
	gsize length = strlen (keyword);
	const char *end;
	const char *start;

	if (g_ascii_strncasecmp (argument, keyword, length) != 0)
		return NULL;
	argument += length;
	while (*argument == ' ')
		argument++; /* "MAIL FROM: <a@b>", as many clients send */
	if (*argument == '<') {
		start = argument + 1;
		end = strchr (start, '>');
		if (end == NULL)
			return NULL;
		*out_params = end + 1;
		if (**out_params != '\0' && **out_params != ' ')
			return NULL;
	} else {
		start = argument;
		end = strchr (start, ' ');
		if (end == NULL)
			end = start + strlen (start);
		*out_params = end;
		if (end == start)
			return NULL;
	}
	if (*start == '@') {
		/* a source route (RFC 5321 4.1.2): ignored, as RFC 5321 C allows */
		const char *colon = memchr (start, ':', end - start);
		if (colon == NULL)
			return NULL;
		start = colon + 1;
	}
	return g_strndup (start, end - start);
}

static gboolean
has_non_ascii (const char *text)
{
	for (; *text != '\0'; text++) {
		if ((guchar) *text >= 0x80)
			return TRUE;
	}
	return FALSE;
}

static void
do_helo (ScSmtpSession *session, const char *verb, const char *argument, gboolean extended)
{
	if (*argument == '\0') {
		reply_error (session, "501 5.5.4 Syntax: %s hostname", verb);
		return;
	}
	reset_transaction (session);
	g_free (session->helo);
	session->helo = g_strdup (argument);
	session->esmtp = extended;
	session->state = STATE_READY;
	if (!extended) {
		reply (session, "250 %s", session->hostname);
		return;
	}
	reply (session, "250-%s", session->hostname);
	reply (session, "250-PIPELINING");
	reply (session, "250-SIZE %" G_GUINT64_FORMAT, session->config.max_message_size);
	if (session->config.tls_available && !session->tls)
		reply (session, "250-STARTTLS");
	if (auth_offered (session))
		reply (session, "250-AUTH PLAIN LOGIN");
	reply (session, "250-ENHANCEDSTATUSCODES");
	reply (session, "250-8BITMIME");
	reply (session, "250 SMTPUTF8");
}

static void
do_mail (ScSmtpSession *session, const char *argument)
{
	g_autofree char *address = NULL;
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) params = NULL;
	const char *rest = NULL;
	gboolean smtputf8 = FALSE;

	if (session->state == STATE_START) {
		reply_error (session, "503 5.5.1 Error: send %s first", is_lmtp (session) ? "LHLO" : "HELO/EHLO");
		return;
	}
	if (session->state != STATE_READY) {
		reply_error (session, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (!session->config.peer_allowed && !session->config.peer_local && session->user == NULL) {
		reply_error (session, "530 5.7.0 Authentication required");
		return;
	}
	address = parse_path (argument, "FROM:", &rest);
	if (address == NULL) {
		reply_error (session, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	params = g_strsplit (rest, " ", -1);
	for (guint i = 0; params[i] != NULL; i++) {
		const char *param = params[i];
		const char *value = strchr (param, '=');
		gsize name_length = value != NULL ? (gsize) (value - param) : strlen (param);

		if (*param == '\0')
			continue;
		if (value != NULL)
			value++;
		if (name_length == 4 && g_ascii_strncasecmp (param, "SIZE", 4) == 0 && value != NULL) {
			guint64 size = 0;
			if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXUINT64, &size, NULL)) {
				reply_error (session, "501 5.5.4 Bad SIZE parameter");
				return;
			}
			if (size > session->config.max_message_size) {
				reply_error (session, "552 5.3.4 Message size exceeds fixed limit");
				return;
			}
		} else if (name_length == 4 && g_ascii_strncasecmp (param, "BODY", 4) == 0 && value != NULL) {
			if (g_ascii_strcasecmp (value, "8BITMIME") != 0 && g_ascii_strcasecmp (value, "7BIT") != 0) {
				reply_error (session, "501 5.5.4 Unsupported BODY parameter");
				return;
			}
		} else if (name_length == 8 && g_ascii_strncasecmp (param, "SMTPUTF8", 8) == 0 && value == NULL) {
			smtputf8 = TRUE;
		} else if (name_length == 4 && g_ascii_strncasecmp (param, "AUTH", 4) == 0 && value != NULL) {
			/* RFC 4954 5: the submitter's identity, not kept */
		} else {
			reply_error (session, "555 5.5.4 Unsupported option: %s", param);
			return;
		}
	}
	if (has_non_ascii (address) && !smtputf8) {
		reply_error (session, "553 5.6.7 Non-ASCII sender address needs SMTPUTF8");
		return;
	}
	if (!sc_address_validate (address, TRUE, &error)) {
		reply_error (session, "501 5.1.7 Bad sender address syntax");
		return;
	}
	session->sender = g_steal_pointer (&address);
	session->smtputf8 = smtputf8;
	session->recipients = g_ptr_array_new_with_free_func (g_free);
	session->state = STATE_MAIL;
	session->errors = 0;
	reply (session, "250 2.1.0 Ok");
}

static void
do_rcpt (ScSmtpSession *session, const char *argument)
{
	g_autofree char *address = NULL;
	g_autoptr(GError) error = NULL;
	const char *rest = NULL;

	if (session->state != STATE_MAIL) {
		reply_error (session, "503 5.5.1 Error: need MAIL command");
		return;
	}
	address = parse_path (argument, "TO:", &rest);
	if (address == NULL) {
		reply_error (session, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	while (*rest == ' ')
		rest++;
	if (*rest != '\0') {
		reply_error (session, "555 5.5.4 Unsupported option: %s", rest);
		return;
	}
	if (session->recipients->len >= session->config.max_recipients) {
		reply_error (session, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (has_non_ascii (address) && !session->smtputf8) {
		reply_error (session, "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8");
		return;
	}
	if (!sc_address_validate (address, FALSE, &error)) {
		reply_error (session, "553 5.1.3 Bad recipient address syntax");
		return;
	}
	g_ptr_array_add (session->recipients, g_steal_pointer (&address));
	session->errors = 0;
	reply (session, "250 2.1.5 Ok");
}

/* GLib 2.74's g_time_zone_new_local() drops its cache whenever TZ is
 * unset and reads /etc/localtime again (readlink, stat, parse): once per
 * message here.  The zone is read once per process instead; a changed
 * zone takes a restart, as for Postfix. */
static GTimeZone *
local_zone (void)
{
	static GTimeZone *zone;

	if (g_once_init_enter (&zone))
		g_once_init_leave (&zone, g_time_zone_new_local ());
	return zone;
}

static void
append_received (ScSmtpSession *session)
{
	static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	/* the date changes once a second: formatted once a second (per
	 * thread), not for every message */
	static __thread gint64 date_second = -1;
	static __thread char date[64];
	gint64 second = g_get_real_time () / G_USEC_PER_SEC;
	g_autoptr(GString) field = g_string_new ("Received: from ");
	const char *protocol;

	if (second != date_second) {
		g_autoptr(GDateTime) now = g_date_time_new_from_unix_utc (second);
		g_autoptr(GDateTime) here = g_date_time_to_timezone (now, local_zone ());
		g_autofree char *zone = g_date_time_format (here, "%z");

		g_snprintf (date, sizeof date, "%s, %d %s %d %02d:%02d:%02d %s",
			    days[g_date_time_get_day_of_week (here) - 1], g_date_time_get_day_of_month (here),
			    months[g_date_time_get_month (here) - 1], g_date_time_get_year (here),
			    g_date_time_get_hour (here), g_date_time_get_minute (here),
			    g_date_time_get_second (here), zone);
		date_second = second;
	}

	/* the client's HELO, printable ASCII only: it goes into a header */
	for (const char *p = session->helo; p != NULL && *p != '\0' && field->len < 200; p++)
		g_string_append_c (field, (*p > ' ' && *p < 127 && *p != '(' && *p != ')') ? *p : '?');
	if (session->peer != NULL)
		g_string_append_printf (field, " (%s)", session->peer);
	if (is_lmtp (session))
		protocol = session->tls ? (session->user != NULL ? "LMTPSA" : "LMTPS") : "LMTP";
	else if (session->esmtp)
		protocol = session->tls ? (session->user != NULL ? "ESMTPSA" : "ESMTPS")
					: (session->user != NULL ? "ESMTPA" : "ESMTP");
	else
		protocol = "SMTP";
	g_string_append_len (field, "\r\n\tby ", 6);
	g_string_append (field, session->hostname);
	g_string_append_len (field, " (stagecoach) with ", 19);
	g_string_append (field, protocol);
	g_string_append_len (field, ";\r\n\t", 4);
	g_string_append (field, date);
	g_string_append_len (field, "\r\n", 2);
	g_byte_array_append (session->message, (const guint8 *) field->str, field->len);
	session->header_length = field->len;
}

static void
do_data (ScSmtpSession *session, const char *argument)
{
	if (*argument != '\0') {
		reply_error (session, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (session->state != STATE_MAIL) {
		reply_error (session, "503 5.5.1 Error: need %s command",
			     session->state == STATE_READY || session->state == STATE_START ? "MAIL" : "RCPT");
		return;
	}
	if (session->recipients->len == 0) {
		reply_error (session, "554 5.5.1 Error: no valid recipients");
		return;
	}
	session->message = g_byte_array_new ();
	append_received (session);
	session->at_line_start = TRUE;
	session->after_crlf = TRUE;
	session->bad_newline = FALSE;
	session->too_big = FALSE;
	session->state = STATE_DATA;
	session->errors = 0;
	reply (session, "354 End data with <CR><LF>.<CR><LF>");
}

static gboolean
check_credentials (ScSmtpSession *session, const char *user, const char *password)
{
	gboolean found = FALSE;

	for (guint i = 0; session->credentials[i] != NULL && session->credentials[i + 1] != NULL; i += 2) {
		const char *expected = session->credentials[i + 1];
		gsize length = strlen (password);
		gsize expected_length = strlen (expected);
		guint8 differ = length != expected_length;

		if (strcmp (session->credentials[i], user) != 0)
			continue;
		/* every byte compared: the time says nothing about the password */
		for (gsize j = 0; j < length; j++)
			differ |= (guint8) password[j] ^ (guint8) (j < expected_length ? expected[j] : 0);
		found |= differ == 0;
	}
	return found;
}

static void
auth_done (ScSmtpSession *session, const char *user, const char *password)
{
	session->state = session->auth_return;
	if (user == NULL || password == NULL || !check_credentials (session, user, password)) {
		reply_error (session, "535 5.7.8 Error: authentication failed");
		return;
	}
	session->user = g_strdup (user);
	session->errors = 0;
	reply (session, "235 2.7.0 Authentication successful");
}

/* base64 → text without NUL (except in PLAIN, split by the caller). */
static guint8 *
decode_base64 (const char *text, gsize *out_length)
{
	gsize length = strlen (text);

	if (length == 0 || length % 4 != 0 || strspn (text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != length)
		return NULL;
	return g_base64_decode (text, out_length);
}

static void
auth_plain (ScSmtpSession *session, const char *response)
{
	gsize length = 0;
	g_autofree guint8 *decoded = decode_base64 (response, &length);
	const guint8 *first, *second;
	g_autofree char *authzid = NULL;
	g_autofree char *authcid = NULL;
	g_autofree char *password = NULL;

	if (decoded == NULL) {
		session->state = session->auth_return;
		reply_error (session, "501 5.5.2 Error: malformed AUTH response");
		return;
	}
	/* authzid NUL authcid NUL password (RFC 4616), no other NUL */
	first = memchr (decoded, '\0', length);
	second = first != NULL ? memchr (first + 1, '\0', length - (first + 1 - decoded)) : NULL;
	if (second == NULL || memchr (second + 1, '\0', length - (second + 1 - decoded)) != NULL) {
		auth_done (session, NULL, NULL);
		return;
	}
	authzid = g_strndup ((const char *) decoded, first - decoded);
	authcid = g_strndup ((const char *) first + 1, second - first - 1);
	password = g_strndup ((const char *) second + 1, length - (second + 1 - decoded));
	if (*authzid != '\0' && strcmp (authzid, authcid) != 0) {
		auth_done (session, NULL, NULL);
		return;
	}
	auth_done (session, authcid, password);
}

static void
auth_line (ScSmtpSession *session, const char *line)
{
	gsize length = 0;
	g_autofree guint8 *decoded = NULL;
	g_autofree char *text = NULL;

	if (strcmp (line, "*") == 0) {
		session->state = session->auth_return;
		g_clear_pointer (&session->login_user, g_free);
		reply_error (session, "501 5.7.0 Error: authentication cancelled");
		return;
	}
	if (session->state == STATE_AUTH_PLAIN) {
		auth_plain (session, line);
		return;
	}
	decoded = decode_base64 (line, &length);
	if (decoded == NULL || memchr (decoded, '\0', length) != NULL) {
		session->state = session->auth_return;
		g_clear_pointer (&session->login_user, g_free);
		reply_error (session, "501 5.5.2 Error: malformed AUTH response");
		return;
	}
	text = g_strndup ((const char *) decoded, length);
	if (session->state == STATE_AUTH_USER) {
		session->login_user = g_steal_pointer (&text);
		session->state = STATE_AUTH_PASS;
		reply (session, "334 UGFzc3dvcmQ6"); /* "Password:" */
		return;
	}
	auth_done (session, session->login_user, text);
	g_clear_pointer (&session->login_user, g_free);
}

static void
do_auth (ScSmtpSession *session, const char *argument)
{
	g_auto(GStrv) words = g_strsplit (argument, " ", 3);

	if (!auth_offered (session)) {
		reply_error (session, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (session->state == STATE_START) {
		reply_error (session, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (session->user != NULL) {
		reply_error (session, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (session->state != STATE_READY) {
		reply_error (session, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (words[0] == NULL || (words[1] != NULL && words[2] != NULL)) {
		reply_error (session, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	session->auth_return = session->state;
	if (g_ascii_strcasecmp (words[0], "PLAIN") == 0) {
		session->state = STATE_AUTH_PLAIN;
		if (words[1] != NULL && strcmp (words[1], "=") != 0)
			auth_line (session, words[1]);
		else if (words[1] != NULL)
			auth_done (session, NULL, NULL); /* "=" is an empty response */
		else
			reply (session, "334 ");
	} else if (g_ascii_strcasecmp (words[0], "LOGIN") == 0) {
		session->state = STATE_AUTH_USER;
		if (words[1] != NULL)
			auth_line (session, words[1]);
		else
			reply (session, "334 VXNlcm5hbWU6"); /* "Username:" */
	} else {
		reply_error (session, "504 5.5.4 Error: unsupported authentication mechanism");
	}
}

static ScSmtpStep
do_command (ScSmtpSession *session, const char *line)
{
	const char *argument;
	gboolean lmtp = is_lmtp (session);

	if (session->stopping) {
		/* Python's smtplib (Mailman) takes a 421 to RCPT as the refusal of
		 * that recipient alone and counts the rest of the transaction as
		 * sent: refuse each recipient with 451; DATA gets the 421. */
		if (session->state == STATE_MAIL && match_verb (line, "RCPT") != NULL) {
			reply (session, "451 4.3.2 %s Service shutting down, try again later", session->hostname);
			return SC_SMTP_STEP_READ;
		}
		reply (session, "421 4.3.2 %s Service shutting down, closing connection", session->hostname);
		session->state = STATE_CLOSED;
		return SC_SMTP_STEP_CLOSE;
	}
	if (session->state == STATE_AUTH_PLAIN || session->state == STATE_AUTH_USER ||
	    session->state == STATE_AUTH_PASS) {
		auth_line (session, line);
	} else if (!lmtp && (argument = match_verb (line, "EHLO")) != NULL) {
		do_helo (session, "EHLO", argument, TRUE);
	} else if (!lmtp && (argument = match_verb (line, "HELO")) != NULL) {
		do_helo (session, "HELO", argument, FALSE);
	} else if (lmtp && (argument = match_verb (line, "LHLO")) != NULL) {
		do_helo (session, "LHLO", argument, TRUE);
	} else if (lmtp && (match_verb (line, "EHLO") != NULL || match_verb (line, "HELO") != NULL)) {
		reply_error (session, "500 5.5.1 Error: this is LMTP, send LHLO");
	} else if ((argument = match_verb (line, "MAIL")) != NULL) {
		do_mail (session, argument);
	} else if ((argument = match_verb (line, "RCPT")) != NULL) {
		do_rcpt (session, argument);
	} else if ((argument = match_verb (line, "DATA")) != NULL) {
		do_data (session, argument);
	} else if ((argument = match_verb (line, "RSET")) != NULL) {
		if (*argument != '\0') {
			reply_error (session, "501 5.5.4 Syntax: RSET");
		} else {
			reset_transaction (session);
			if (session->state != STATE_START)
				session->state = STATE_READY;
			reply (session, "250 2.0.0 Ok");
		}
	} else if (match_verb (line, "NOOP") != NULL) {
		reply (session, "250 2.0.0 Ok");
	} else if (match_verb (line, "QUIT") != NULL) {
		reply (session, "221 2.0.0 Bye");
		session->state = STATE_CLOSED;
		return SC_SMTP_STEP_CLOSE;
	} else if ((argument = match_verb (line, "VRFY")) != NULL) {
		if (*argument == '\0')
			reply_error (session, "501 5.5.4 Syntax: VRFY address");
		else
			reply (session, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
	} else if (match_verb (line, "HELP") != NULL) {
		reply (session, "214 2.0.0 Commands: %s MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s%s",
		       lmtp ? "LHLO" : "EHLO HELO", session->config.tls_available ? " STARTTLS" : "",
		       auth_offered (session) ? " AUTH" : "");
	} else if ((argument = match_verb (line, "STARTTLS")) != NULL) {
		if (!session->config.tls_available) {
			reply_error (session, "502 5.5.1 Error: command not implemented");
		} else if (session->tls) {
			reply_error (session, "503 5.5.1 Error: TLS already active");
		} else if (*argument != '\0') {
			reply_error (session, "501 5.5.4 Syntax: STARTTLS");
		} else if (session->state == STATE_MAIL) {
			reply_error (session, "503 5.5.1 Error: MAIL transaction in progress");
		} else {
			reply (session, "220 2.0.0 Ready to start TLS");
			/* nothing pipelined behind STARTTLS may count (CVE-2011-0411) */
			g_byte_array_set_size (session->input, 0);
			session->input_pos = 0;
			session->state = STATE_STARTTLS;
			return SC_SMTP_STEP_STARTTLS;
		}
	} else if ((argument = match_verb (line, "AUTH")) != NULL) {
		do_auth (session, argument);
	} else if (match_verb (line, "EXPN") != NULL || match_verb (line, "ETRN") != NULL ||
		   match_verb (line, "TURN") != NULL || match_verb (line, "BDAT") != NULL) {
		reply_error (session, "502 5.5.1 Error: command not implemented");
	} else {
		reply_error (session, "500 5.5.2 Error: command not recognized");
	}
	return session->state == STATE_CLOSED ? SC_SMTP_STEP_CLOSE : SC_SMTP_STEP_READ;
}

/* ---- DATA ---- */

static void
append_data (ScSmtpSession *session, const guint8 *data, gsize length)
{
	if (session->too_big || session->bad_newline)
		return; /* read to the end, keep nothing */
	if (session->message->len - session->header_length + length > session->config.max_message_size) {
		session->too_big = TRUE;
		g_byte_array_set_size (session->message, 0);
		return;
	}
	g_byte_array_append (session->message, data, length);
}

/* A bare CR (one not before LF) in @data. */
static gboolean
has_bare_cr (const guint8 *data, gsize length)
{
	for (gsize i = 0; i < length; i++) {
		if (data[i] == '\r' && (i + 1 == length || data[i + 1] != '\n'))
			return TRUE;
	}
	return FALSE;
}

/* The answer to the data: LMTP gives one per accepted recipient, in
 * order (RFC 2033 4.2), and they all share the message's fate here. */
static void
reply_after_data (ScSmtpSession *session, const char *text)
{
	guint replies = is_lmtp (session) ? session->recipients->len : 1;

	if (is_lmtp (session) && replies > 0 && g_ptr_array_index (session->recipients, replies - 1) == NULL)
		replies--; /* the NULL end added for the submission */
	for (guint i = 0; i < replies; i++)
		reply (session, "%s", text);
}

/* The message is complete: build the submission. */
static ScSmtpStep
end_data (ScSmtpSession *session)
{
	if (session->bad_newline || session->too_big) {
		reply_after_data (session, session->bad_newline
						? "550 5.5.2 Error: bare <CR> or <LF> received in the message"
						: "552 5.3.4 Error: message exceeds fixed size limit");
		reset_transaction (session);
		session->state = STATE_READY;
		return SC_SMTP_STEP_READ;
	}
	g_ptr_array_add (session->recipients, NULL);
	session->raw = g_byte_array_free_to_bytes (g_steal_pointer (&session->message));
	session->submission.door = is_lmtp (session) ? "lmtp" : "smtp";
	session->submission.peer = session->peer;
	session->submission.list_id = NULL;
	session->submission.sender = session->sender;
	session->submission.recipients = (const char *const *) session->recipients->pdata;
	session->submission.raw = session->raw;
	session->state = STATE_SUBMIT;
	return SC_SMTP_STEP_SUBMIT;
}

/* Appends the plain lines input[*@run_start, @end) (each stored as
 * received) in one piece and starts the next run at @end. */
static void
flush_run (ScSmtpSession *session, gsize *run_start, gsize end)
{
	if (end > *run_start)
		append_data (session, session->input->data + *run_start, end - *run_start);
	*run_start = end;
}

/* Consumes DATA input; returns TRUE when the end was seen (*@out_step set).
 * Most lines end in CR LF and start with no dot: stored exactly as they
 * came, so a run of them is appended at once (a 4 KiB post was ~115
 * appends of a line and its CR LF each). */
static gboolean
run_data (ScSmtpSession *session, ScSmtpStep *out_step)
{
	/* long lines are taken in pieces of this much (accepted, as Postfix does) */
	const gsize piece = 64 * 1024;
	gsize run_start = session->input_pos;

	while (session->input_pos < session->input->len) {
		const guint8 *start = session->input->data + session->input_pos;
		gsize available = session->input->len - session->input_pos;
		const guint8 *newline = memchr (start, '\n', available);
		gsize length;
		gboolean crlf;

		if (newline == NULL) {
			flush_run (session, &run_start, session->input_pos);
			if (available < piece)
				return FALSE; /* wait for the line's end */
			/* keep a trailing CR: its LF may follow */
			length = available - 1;
			if (session->config.bare_newline == SC_BARE_NEWLINE_REJECT && has_bare_cr (start, length))
				session->bad_newline = TRUE;
			if (session->at_line_start && start[0] == '.') {
				start++;
				length--;
				session->input_pos++;
			}
			append_data (session, start, length);
			session->input_pos += length;
			run_start = session->input_pos;
			session->at_line_start = FALSE;
			continue;
		}
		length = newline - start; /* without the LF */
		crlf = length > 0 && start[length - 1] == '\r';
		if (crlf)
			length--;
		if (session->config.bare_newline == SC_BARE_NEWLINE_REJECT && has_bare_cr (start, length))
			session->bad_newline = TRUE;
		if (crlf && !(session->at_line_start && length > 0 && start[0] == '.')) {
			/* a plain line: part of the run */
			session->input_pos += length + 2;
			session->at_line_start = TRUE;
			session->after_crlf = TRUE;
			continue;
		}
		flush_run (session, &run_start, session->input_pos);
		session->input_pos += length + (crlf ? 2 : 1);
		run_start = session->input_pos;
		if (session->at_line_start && session->after_crlf && crlf && length == 1 && start[0] == '.') {
			*out_step = end_data (session);
			return TRUE;
		}
		if (!crlf && session->config.bare_newline == SC_BARE_NEWLINE_REJECT)
			session->bad_newline = TRUE;
		/* dot-unstuffing; a lone "." that does not end the data (after a
		 * bare LF) becomes an empty line, as in Postfix, so no smuggled
		 * end is stored as one */
		if (session->at_line_start && length > 0 && start[0] == '.') {
			start++;
			length--;
		}
		append_data (session, start, length);
		append_data (session, (const guint8 *) "\r\n", 2);
		session->at_line_start = TRUE;
		session->after_crlf = crlf;
	}
	flush_run (session, &run_start, session->input_pos);
	return FALSE;
}

/* ---- the loop ---- */

ScSmtpStep
sc_smtp_session_run (ScSmtpSession *session)
{
	for (;;) {
		const guint8 *start;
		const guint8 *newline;
		gsize available;
		gsize length;
		gboolean crlf;
		g_autofree char *line = NULL;
		ScSmtpStep step;

		switch (session->state) {
		case STATE_CLOSED:
			return SC_SMTP_STEP_CLOSE;
		case STATE_SUBMIT:
			return SC_SMTP_STEP_SUBMIT;
		case STATE_STARTTLS:
			return SC_SMTP_STEP_STARTTLS;
		case STATE_DATA:
			if (run_data (session, &step)) {
				if (step != SC_SMTP_STEP_READ)
					return step;
				continue;
			}
			return SC_SMTP_STEP_READ;
		default:
			break;
		}

		start = session->input->data + session->input_pos;
		available = session->input->len - session->input_pos;
		newline = available > 0 ? memchr (start, '\n', available) : NULL;
		if (newline == NULL) {
			if (available > SC_SMTP_COMMAND_MAX) {
				/* drop it now, answer at its end */
				session->skipping_long_line = TRUE;
				session->input_pos = session->input->len;
			}
			return SC_SMTP_STEP_READ;
		}
		length = newline - start;
		session->input_pos += length + 1;
		if (session->skipping_long_line || length + 1 > SC_SMTP_COMMAND_MAX) {
			session->skipping_long_line = FALSE;
			reply_error (session, "500 5.5.2 Error: line too long");
			continue;
		}
		crlf = length > 0 && start[length - 1] == '\r';
		if (crlf)
			length--;
		if (!crlf && session->config.bare_newline == SC_BARE_NEWLINE_REJECT) {
			reply_error (session, "500 5.5.2 Error: bare <LF> received");
			continue;
		}
		if (memchr (start, '\0', length) != NULL) {
			reply_error (session, "500 5.5.2 Error: NUL in command");
			continue;
		}
		line = g_strndup ((const char *) start, length);
		step = do_command (session, line);
		if (step != SC_SMTP_STEP_READ)
			return step;
	}
}

const ScSubmission *
sc_smtp_session_get_submission (ScSmtpSession *session)
{
	g_return_val_if_fail (session->state == STATE_SUBMIT, NULL);
	return &session->submission;
}

void
sc_smtp_session_submitted (ScSmtpSession *session, const ScAccepted *accepted, const GError *error)
{
	g_autofree char *text = NULL;

	g_return_if_fail (session->state == STATE_SUBMIT);
	if (accepted != NULL) {
		if (accepted->queue_id != NULL)
			text = g_strdup_printf ("250 2.0.0 Ok: queued as %s", accepted->queue_id);
		else if (accepted->duplicate_of != NULL)
			text = g_strdup_printf ("250 2.0.0 Ok: already queued as %s", accepted->duplicate_of);
		else
			text = g_strdup ("250 2.0.0 Ok: already accepted");
	} else if (error != NULL && error->domain == SC_INGRESS_ERROR) {
		/* the acceptor's text, on one line: it may name the list or a header */
		g_autofree char *message = g_strdelimit (g_strdup (error->message), "\r\n", ' ');
		switch ((ScIngressError) error->code) {
		case SC_INGRESS_ERROR_BAD_MESSAGE:
			text = g_strdup_printf ("550 5.6.0 %s", message);
			break;
		case SC_INGRESS_ERROR_BAD_ADDRESS:
			text = g_strdup_printf ("553 5.1.3 %s", message);
			break;
		case SC_INGRESS_ERROR_NO_LIST:
			text = g_strdup_printf ("550 5.1.1 %s", message);
			break;
		case SC_INGRESS_ERROR_TOO_BIG:
			text = g_strdup_printf ("552 5.3.4 %s", message);
			break;
		case SC_INGRESS_ERROR_SPOOL_FULL:
			text = g_strdup_printf ("452 4.3.1 %s", message);
			break;
		case SC_INGRESS_ERROR_SPOOL_BUSY:
		default:
			text = g_strdup_printf ("451 4.3.0 %s", message);
			break;
		}
	} else {
		text = g_strdup ("451 4.3.0 Error: temporary failure, try again later");
	}
	reply_after_data (session, text);
	reset_transaction (session);
	session->state = STATE_READY;
}

void
sc_smtp_session_tls_started (ScSmtpSession *session)
{
	g_return_if_fail (session->state == STATE_STARTTLS);
	session->tls = TRUE;
	/* RFC 3207 4.2: forget everything the client said before */
	reset_transaction (session);
	g_clear_pointer (&session->helo, g_free);
	session->state = STATE_START;
	g_byte_array_set_size (session->input, 0);
	session->input_pos = 0;
}

void
sc_smtp_session_timeout (ScSmtpSession *session)
{
	reply (session, "421 4.4.2 %s Error: timeout exceeded", session->hostname);
	session->state = STATE_CLOSED;
}

gboolean
sc_smtp_session_shutdown (ScSmtpSession *session)
{
	session->stopping = TRUE;
	switch (session->state) {
	case STATE_MAIL: /* no 421 unasked in a transaction: it would read as the next RCPT's reply */
	case STATE_DATA:
	case STATE_SUBMIT:
	case STATE_STARTTLS:
	case STATE_CLOSED:
		return FALSE;
	default:
		if (session->input_pos < session->input->len)
			return FALSE; /* a command is on its way: answered 421 when it is read */
		reply (session, "421 4.3.2 %s Service shutting down, closing connection", session->hostname);
		session->state = STATE_CLOSED;
		return TRUE;
	}
}
