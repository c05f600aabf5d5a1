/* sc-deliver-smtp-pipe.c — one SMTP transaction over a plain TCP connection,
 * commands pipelined (RFC 2920) when the server offers it.
 *
 * sc_smtp_send() uses this client instead of libcurl's when the mailer
 * needs neither TLS nor AUTH (smtp://, starttls=off, no username): libcurl
 * cannot pipeline, and per message it polled about ten times, wrote five
 * times and waited for four round trips.  Here a message on a reused
 * connection is two writes and two round trips:
 *
 *	MAIL FROM:<s> RCPT TO:<r>… DATA   one write   [sc_smtp_pipe_envelope]
 *	250 250… 354                       read in order
 *	body, stuffed, and "." (or "\r\n.")  one write   [sc_smtp_pipe_body]
 *	250                                 read
 *
 * More than SC_SMTP_PIPE_GROUP recipients go in several groups, the next
 * written once the replies to the last are read (DATA ends the last one).
 * Without PIPELINING in the EHLO reply it is one command, one reply.
 * Replies go through the same recording (sc_smtp_reply_line) and the same
 * decision table (sc_smtp_decide) as libcurl's, with the phase set to the
 * command each reply answers *as it is read*, so the statuses, codes and
 * verbatim replies are the same whichever client ran:
 *
 *	CONNECT   greeting, then EHLO (HELO when EHLO is refused)
 *	MAIL      MAIL's reply
 *	RCPT      the n-th RCPT reply (rcpt_sent = n)
 *	DATA      DATA's reply; 354 moves to BODY
 *	BODY      writing the body and the final "."
 *	DOT       every byte of the final "." written; its reply due
 *	DONE      that reply read
 *
 * Under pipelining some replies answer nothing the result can use and are
 * read and dropped: after a refused MAIL, the RCPT and DATA replies (the
 * server has no transaction); after every RCPT was refused, DATA's (503 or
 * 554; a broken server's 354 gets a lone "." so that the connection stays
 * in step).  A transaction left open by a refusal (MAIL taken, then every
 * RCPT or DATA refused) is ended with RSET at once: one round trip, paid
 * only on failure, rather than a new connection (TCP, greeting, EHLO).  Any
 * failure that leaves the protocol state unknown (a timeout, a reset, EOF,
 * cancellation, garbage) and any 421 close the connection.
 *
 * The socket is non-blocking; every wait is a poll bounded by the mailer's
 * timeout per reply (per progress for the body), in slices of
 * SC_SMTP_PIPE_CANCEL_SLICE when a GCancellable is given so that it is
 * looked at (a GCancellable's own fd would cost two syscalls per wait).
 * From DOT on the GCancellable is ignored: the reply is awaited, since
 * aborting cannot take the message back (see sc-deliver-smtp.h).
 *
 * Must never: put a CR or LF from an address into a command (sc_smtp_send
 * checked them), report DATA_FAILED or MAILER_FAILED once every byte of
 * the final "." was written, or block without a deadline.
 */
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "sc-deliver-smtp-private.h"
#include "sc-i18n.h"

/* RCPT commands per pipelined group.  Nothing is read while a group is
 * written, so the replies to one group must fit in our receive buffer:
 * otherwise the server blocks writing them, stops reading, and our write
 * waits out the timeout (RFC 2920 section 3.1 warns of exactly this).
 * 100 replies of at most 512 bytes (RFC 5321's reply line limit) are
 * 51 KB, under Linux's default 128 KiB; the default max-recipients is 100,
 * so a transaction is one group unless the operator raised it. */
#define SC_SMTP_PIPE_GROUP 100
/* how often a wait looks at the GCancellable */
#define SC_SMTP_PIPE_CANCEL_SLICE (200 * 1000)
/* QUIT's reply is awaited at most this long (or the mailer's timeout) */
#define SC_SMTP_PIPE_QUIT_TIMEOUT (1 * G_USEC_PER_SEC)

struct _ScSmtpPipe {
	char *name;                    /* (owned) the mailer's name, for logs */
	char *host;                    /* (owned) (nullable) NULL: the url is unusable */
	guint16 port;
	char *url_error;               /* (owned) (nullable) why host is NULL */
	char *helo;                    /* (owned) the EHLO name */
	gint64 timeout;                /* µs, per reply and for connecting */
	GSocketConnection *connection; /* (owned) (nullable) open, greeted and EHLO'd */
	GSocket *socket;               /* (not owned) connection's, non-blocking */
	gboolean pipelining;           /* the server's EHLO reply offered PIPELINING */
	guint connects;                /* TCP connections opened */
	GString *line;                 /* (owned) the reply line being read */
	GString *commands;             /* (owned) commands being written */
	gsize start;                   /* buffer[start, end) is received, not yet read */
	gsize end;
	char buffer[4096];
};

ScSmtpPipe *
sc_smtp_pipe_new (const char *name, const char *url, const char *helo, gint64 timeout)
{
	ScSmtpPipe *pipe = g_new0 (ScSmtpPipe, 1);
	g_autoptr(GError) error_local = NULL;
	gint port = -1;

	pipe->name = g_strdup (name);
	pipe->helo = g_strdup (helo);
	pipe->timeout = timeout;
	pipe->line = g_string_new (NULL);
	pipe->commands = g_string_new (NULL);
	if (!g_uri_split_network (url,
				  G_URI_FLAGS_NONE,
				  NULL,
				  &pipe->host,
				  &port,
				  &error_local)) {
		pipe->url_error = g_strdup (error_local->message);
	} else {
		pipe->port = port > 0 ? (guint16) port : 25;
	}
	return pipe;
}

static void
sc_smtp_pipe_close (ScSmtpPipe *pipe)
{
	if (pipe->connection == NULL)
		return;
	/* closing the GSocket closes the fd; the streams were never used */
	(void) g_io_stream_close (G_IO_STREAM (pipe->connection), NULL, NULL);
	g_clear_object (&pipe->connection);
	pipe->socket = NULL;
	pipe->start = pipe->end = 0;
}

guint
sc_smtp_pipe_get_connects (ScSmtpPipe *pipe)
{
	return pipe->connects;
}

/* Waits until the socket is ready for @condition, until @deadline (monotonic
 * µs) at most, looking at @cancellable (nullable) every slice. */
static ScSmtpFailure
sc_smtp_pipe_wait (ScSmtpPipe *pipe,
		   GIOCondition condition,
		   gint64 deadline,
		   GCancellable *cancellable,
		   GError **error)
{
	for (;;) {
		g_autoptr(GError) error_local = NULL;
		gint64 now = g_get_monotonic_time ();
		gint64 slice;

		if (g_cancellable_is_cancelled (cancellable))
			return SC_SMTP_FAILURE_CANCELLED;
		if (now >= deadline) {
			g_set_error_literal (error,
					     G_IO_ERROR,
					     G_IO_ERROR_TIMED_OUT,
					     _("Timeout was reached"));
			return SC_SMTP_FAILURE_OTHER;
		}
		slice = deadline - now;
		if (cancellable != NULL)
			slice = MIN (slice, SC_SMTP_PIPE_CANCEL_SLICE);
		/* GLib polls in whole milliseconds */
		slice = MAX (slice, 1000);
		if (g_socket_condition_timed_wait (pipe->socket,
						   condition,
						   slice,
						   NULL,
						   &error_local))
			return SC_SMTP_FAILURE_NONE;
		if (!g_error_matches (error_local, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
			g_propagate_error (error, g_steal_pointer (&error_local));
			return SC_SMTP_FAILURE_OTHER;
		}
	}
}

/* The next line into pipe->line, CR LF stripped, at most SC_SMTP_REPLY_MAX
 * bytes of it kept (as the libcurl client does). */
static ScSmtpFailure
sc_smtp_pipe_read_line (ScSmtpPipe *pipe,
			gint64 deadline,
			GCancellable *cancellable,
			GError **error)
{
	g_string_truncate (pipe->line, 0);
	for (;;) {
		g_autoptr(GError) error_local = NULL;
		ScSmtpFailure failure;
		gssize received;

		if (pipe->start < pipe->end) {
			const char *data = pipe->buffer + pipe->start;
			gsize available = pipe->end - pipe->start;
			const char *lf = memchr (data, '\n', available);
			gsize length = lf != NULL ? (gsize) (lf - data) : available;

			if (pipe->line->len < SC_SMTP_REPLY_MAX)
				g_string_append_len (pipe->line,
						     data,
						     (gssize) MIN (length,
								   SC_SMTP_REPLY_MAX -
								       pipe->line->len));
			pipe->start += length;
			if (lf != NULL) {
				pipe->start++;
				if (pipe->line->len > 0 &&
				    pipe->line->str[pipe->line->len - 1] == '\r')
					g_string_truncate (pipe->line, pipe->line->len - 1);
				return SC_SMTP_FAILURE_NONE;
			}
		}
		pipe->start = pipe->end = 0;
		failure = sc_smtp_pipe_wait (pipe, G_IO_IN, deadline, cancellable, error);
		if (failure != SC_SMTP_FAILURE_NONE)
			return failure;
		received = g_socket_receive_with_blocking (pipe->socket,
							   pipe->buffer,
							   sizeof (pipe->buffer),
							   FALSE,
							   NULL,
							   &error_local);
		if (received < 0) {
			if (g_error_matches (error_local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
				continue;
			g_propagate_error (error, g_steal_pointer (&error_local));
			return SC_SMTP_FAILURE_BROKEN;
		}
		if (received == 0) {
			g_set_error_literal (error,
					     G_IO_ERROR,
					     G_IO_ERROR_CONNECTION_CLOSED,
					     _("the server closed the connection"));
			return SC_SMTP_FAILURE_BROKEN;
		}
		pipe->end = (gsize) received;
	}
}

/* One whole reply, within the mailer's timeout.  @record: through
 * sc_smtp_reply_line() for transfer->phase; otherwise read and dropped.
 * @out_code: the code of its last line. */
static ScSmtpFailure
sc_smtp_pipe_read_reply (ScSmtpPipe *pipe,
			 ScSmtpTransfer *transfer,
			 gboolean record,
			 int *out_code,
			 GError **error)
{
	gint64 deadline = g_get_monotonic_time () + pipe->timeout;
	/* from DOT on the reply is awaited whatever the caller wants */
	GCancellable *cancellable =
	    transfer->phase < SC_SMTP_PHASE_DOT ? transfer->cancellable : NULL;

	for (;;) {
		ScSmtpFailure failure =
		    sc_smtp_pipe_read_line (pipe, deadline, cancellable, error);
		const char *line = pipe->line->str;
		gsize length = pipe->line->len;

		if (failure != SC_SMTP_FAILURE_NONE)
			return failure;
		if (!sc_smtp_reply_line_continues (line, length)) {
			int code = sc_smtp_reply_line_code (line, length);

			if (code == 0) {
				g_set_error (error,
					     G_IO_ERROR,
					     G_IO_ERROR_INVALID_DATA,
					     _("the server sent a malformed reply"));
				return SC_SMTP_FAILURE_BROKEN;
			}
			*out_code = code;
		}
		if (record)
			sc_smtp_reply_line (transfer, line, length);
		if (!sc_smtp_reply_line_continues (line, length))
			return SC_SMTP_FAILURE_NONE;
	}
}

/* Writes @vectors whole; the deadline moves with every byte written.
 * @out_written: (optional) bytes written, also on failure. */
static ScSmtpFailure
sc_smtp_pipe_write (ScSmtpPipe *pipe,
		    GOutputVector *vectors,
		    guint n_vectors,
		    GCancellable *cancellable,
		    gsize *out_written,
		    GError **error)
{
	gint64 deadline = g_get_monotonic_time () + pipe->timeout;

	if (g_cancellable_is_cancelled (cancellable))
		return SC_SMTP_FAILURE_CANCELLED;
	while (n_vectors > 0) {
		g_autoptr(GError) error_local = NULL;
		gssize sent;

		if (vectors[0].size == 0) {
			vectors++;
			n_vectors--;
			continue;
		}
		sent = g_socket_send_message (pipe->socket,
					      NULL,
					      vectors,
					      (gint) n_vectors,
					      NULL,
					      0,
					      G_SOCKET_MSG_NONE,
					      NULL,
					      &error_local);
		if (sent < 0) {
			ScSmtpFailure failure;

			if (!g_error_matches (error_local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
				g_propagate_error (error, g_steal_pointer (&error_local));
				return SC_SMTP_FAILURE_SEND;
			}
			failure = sc_smtp_pipe_wait (pipe, G_IO_OUT, deadline, cancellable, error);
			if (failure != SC_SMTP_FAILURE_NONE)
				return failure;
			continue;
		}
		if (out_written != NULL)
			*out_written += (gsize) sent;
		deadline = g_get_monotonic_time () + pipe->timeout;
		while (sent > 0) {
			gsize step = MIN ((gsize) sent, vectors[0].size);

			vectors[0].buffer = (const guint8 *) vectors[0].buffer + step;
			vectors[0].size -= step;
			sent -= (gssize) step;
			if (vectors[0].size == 0) {
				vectors++;
				n_vectors--;
			}
		}
	}
	return SC_SMTP_FAILURE_NONE;
}

/* Writes pipe->commands. */
static ScSmtpFailure
sc_smtp_pipe_write_commands (ScSmtpPipe *pipe, ScSmtpTransfer *transfer, GError **error)
{
	GOutputVector vector = {pipe->commands->str, pipe->commands->len};

	return sc_smtp_pipe_write (pipe, &vector, 1, transfer->cancellable, NULL, error);
}

static ScSmtpFailure
sc_smtp_pipe_command (ScSmtpPipe *pipe,
		      ScSmtpTransfer *transfer,
		      const char *command,
		      int *out_code,
		      GError **error)
{
	ScSmtpFailure failure;

	g_string_assign (pipe->commands, command);
	failure = sc_smtp_pipe_write_commands (pipe, transfer, error);
	if (failure != SC_SMTP_FAILURE_NONE)
		return failure;
	return sc_smtp_pipe_read_reply (pipe, transfer, TRUE, out_code, error);
}

/* Whether an EHLO reply ("250-name\n250-PIPELINING\n250 …") offers
 * PIPELINING; its first line is the server's name. */
static gboolean
sc_smtp_pipe_offers_pipelining (const char *reply)
{
	const char *line = strchr (reply, '\n');

	while (line != NULL) {
		const char *keyword = line + 1;

		line = strchr (keyword, '\n');
		/* "250-PIPELINING", alone or with parameters */
		if (strlen (keyword) >= 4 + 10 &&
		    g_ascii_strncasecmp (keyword + 4, "PIPELINING", 10) == 0 &&
		    (keyword[14] == '\0' || keyword[14] == '\n' || keyword[14] == ' '))
			return TRUE;
	}
	return FALSE;
}

/* TCP, the greeting, EHLO (HELO when EHLO is refused).  On a refusal the
 * connection is closed and NONE returned, with the refusing reply recorded
 * for phase CONNECT or EHLO. */
static ScSmtpFailure
sc_smtp_pipe_connect (ScSmtpPipe *pipe, ScSmtpTransfer *transfer, GError **error)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketConnectable) address = NULL;
	g_autoptr(GSocketConnection) connection = NULL;
	g_autofree char *ehlo = NULL;
	ScSmtpFailure failure;
	int code = 0;

	transfer->phase = SC_SMTP_PHASE_CONNECT;
	if (pipe->host == NULL) {
		g_set_error_literal (error,
				     G_IO_ERROR,
				     G_IO_ERROR_INVALID_ARGUMENT,
				     pipe->url_error);
		return SC_SMTP_FAILURE_OTHER;
	}
	address = g_network_address_new (pipe->host, pipe->port);
	g_socket_client_set_enable_proxy (client, FALSE);
	g_socket_client_set_timeout (client,
				     (guint) MAX (1, (pipe->timeout + G_USEC_PER_SEC - 1) /
							 G_USEC_PER_SEC));
	connection = g_socket_client_connect (client, address, transfer->cancellable, error);
	if (connection == NULL)
		return g_cancellable_is_cancelled (transfer->cancellable)
			   ? SC_SMTP_FAILURE_CANCELLED
			   : SC_SMTP_FAILURE_OTHER;
	pipe->connects++;
	pipe->connection = g_steal_pointer (&connection);
	pipe->socket = g_socket_connection_get_socket (pipe->connection);
	pipe->start = pipe->end = 0;
	pipe->pipelining = FALSE;
	/* our own deadlines, not GSocket's (it would clamp the waits) */
	g_socket_set_timeout (pipe->socket, 0);
	g_socket_set_blocking (pipe->socket, FALSE);
	/* a command group and a body are each one write already: Nagle's
	 * algorithm could only hold back the last segment of one */
	(void) g_socket_set_option (pipe->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);

	failure = sc_smtp_pipe_read_reply (pipe, transfer, TRUE, &code, error);
	if (failure != SC_SMTP_FAILURE_NONE)
		return failure;
	if (code != 220) {
		sc_smtp_pipe_close (pipe);
		if (code >= 400)
			return SC_SMTP_FAILURE_NONE;
		g_set_error (error,
			     G_IO_ERROR,
			     G_IO_ERROR_INVALID_DATA,
			     _("unexpected greeting: %s"),
			     transfer->last_reply);
		return SC_SMTP_FAILURE_BROKEN;
	}

	transfer->phase = SC_SMTP_PHASE_EHLO;
	ehlo = g_strdup_printf ("EHLO %s\r\n", pipe->helo);
	failure = sc_smtp_pipe_command (pipe, transfer, ehlo, &code, error);
	if (failure != SC_SMTP_FAILURE_NONE)
		return failure;
	if (code / 100 == 2) {
		pipe->pipelining = sc_smtp_pipe_offers_pipelining (transfer->last_reply);
	} else if (code != 421) {
		/* as libcurl: a server that does not know EHLO may know HELO */
		g_autofree char *helo = g_strdup_printf ("HELO %s\r\n", pipe->helo);

		failure = sc_smtp_pipe_command (pipe, transfer, helo, &code, error);
		if (failure != SC_SMTP_FAILURE_NONE)
			return failure;
	}
	if (code / 100 != 2) {
		sc_smtp_pipe_close (pipe);
		return SC_SMTP_FAILURE_NONE;
	}
	g_debug ("%s: connected to %s:%u, %s",
		 pipe->name,
		 pipe->host,
		 pipe->port,
		 pipe->pipelining ? "pipelining" : "no pipelining");
	return SC_SMTP_FAILURE_NONE;
}

/* Ends a transaction a refusal left open (MAIL taken, nothing sent): the
 * result is decided already, so a failure here only closes. */
static void
sc_smtp_pipe_reset (ScSmtpPipe *pipe, ScSmtpTransfer *transfer)
{
	g_autoptr(GError) error_local = NULL;
	GCancellable *cancellable = transfer->cancellable;
	int code = 0;

	if (pipe->connection == NULL)
		return;
	/* RSET is short and bounded: not worth a new connection on cancel */
	transfer->cancellable = NULL;
	g_string_assign (pipe->commands, "RSET\r\n");
	if (sc_smtp_pipe_write_commands (pipe, transfer, &error_local) != SC_SMTP_FAILURE_NONE ||
	    sc_smtp_pipe_read_reply (pipe, transfer, FALSE, &code, &error_local) !=
		SC_SMTP_FAILURE_NONE ||
	    code / 100 != 2) {
		g_debug ("%s: RSET failed (%s), closing",
			 pipe->name,
			 error_local != NULL ? error_local->message : "refused");
		sc_smtp_pipe_close (pipe);
	}
	transfer->cancellable = cancellable;
}

/* A reply we read: a 421 means the server is closing. */
static gboolean
sc_smtp_pipe_closing (ScSmtpPipe *pipe, int code)
{
	if (code != 421)
		return FALSE;
	sc_smtp_pipe_close (pipe);
	return TRUE;
}

/* Reads and drops @count replies the result has no use for; FALSE (and
 * the connection closed) if they do not come.  @out_code: the last one's. */
static gboolean
sc_smtp_pipe_drop_replies (ScSmtpPipe *pipe, ScSmtpTransfer *transfer, guint count, int *out_code)
{
	for (guint i = 0; i < count; i++) {
		g_autoptr(GError) error_local = NULL;

		if (sc_smtp_pipe_read_reply (pipe, transfer, FALSE, out_code, &error_local) !=
		    SC_SMTP_FAILURE_NONE) {
			g_debug ("%s: %s, closing",
				 pipe->name,
				 error_local != NULL ? error_local->message : "");
			sc_smtp_pipe_close (pipe);
			return FALSE;
		}
	}
	return TRUE;
}

/* A broken server answered DATA with 354 although it took no recipient:
 * a lone "." ends that empty message, its reply is dropped. */
static void
sc_smtp_pipe_end_empty_data (ScSmtpPipe *pipe, ScSmtpTransfer *transfer)
{
	g_autoptr(GError) error_local = NULL;
	int code = 0;

	g_string_assign (pipe->commands, ".\r\n");
	if (sc_smtp_pipe_write_commands (pipe, transfer, &error_local) != SC_SMTP_FAILURE_NONE) {
		sc_smtp_pipe_close (pipe);
		return;
	}
	(void) sc_smtp_pipe_drop_replies (pipe, transfer, 1, &code);
}

static gboolean
sc_smtp_pipe_any_accepted (ScSmtpTransfer *transfer)
{
	for (guint i = 0; i < transfer->n_rcpt; i++) {
		ScSmtpRecipientResult *recipient =
		    g_ptr_array_index (transfer->result->recipients, transfer->rcpt_index[i]);

		if (recipient->accepted)
			return TRUE;
	}
	return FALSE;
}

/* Appends the next group of RCPT commands to pipe->commands, from
 * *@queued on, and DATA after the last one. */
static void
sc_smtp_pipe_queue_group (ScSmtpPipe *pipe,
			  const char *const *addresses,
			  guint n_rcpt,
			  guint *queued,
			  gboolean *data_queued)
{
	guint end = MIN (n_rcpt, *queued + SC_SMTP_PIPE_GROUP);

	for (; *queued < end; (*queued)++)
		g_string_append_printf (pipe->commands, "RCPT TO:<%s>\r\n", addresses[*queued]);
	if (*queued == n_rcpt) {
		g_string_append (pipe->commands, "DATA\r\n");
		*data_queued = TRUE;
	}
}

/* MAIL, RCPT…, DATA up to its 354 (phase BODY), pipelined when offered.
 * A refusal returns NONE with the phase it refused; see the top. */
static ScSmtpFailure
sc_smtp_pipe_envelope (ScSmtpPipe *pipe,
		       ScSmtpTransfer *transfer,
		       const char *sender,
		       const char *const *addresses,
		       GError **error)
{
	gboolean pipelining = pipe->pipelining;
	guint queued = 0;           /* RCPT commands written */
	gboolean data_queued = FALSE;
	ScSmtpFailure failure;
	int code = 0;

	transfer->phase = SC_SMTP_PHASE_MAIL;
	g_string_printf (pipe->commands, "MAIL FROM:<%s>\r\n", sender);
	if (pipelining)
		sc_smtp_pipe_queue_group (pipe, addresses, transfer->n_rcpt, &queued, &data_queued);
	failure = sc_smtp_pipe_write_commands (pipe, transfer, error);
	if (failure != SC_SMTP_FAILURE_NONE)
		return failure;
	failure = sc_smtp_pipe_read_reply (pipe, transfer, TRUE, &code, error);
	if (failure != SC_SMTP_FAILURE_NONE || sc_smtp_pipe_closing (pipe, code))
		return failure;
	if (code / 100 != 2) {
		/* no transaction: the RCPT and DATA replies are refusals too */
		if (pipelining &&
		    sc_smtp_pipe_drop_replies (pipe, transfer, queued + (data_queued ? 1 : 0), &code) &&
		    !sc_smtp_pipe_closing (pipe, code) && code == 354)
			sc_smtp_pipe_end_empty_data (pipe, transfer);
		return SC_SMTP_FAILURE_NONE;
	}

	for (guint i = 0; i < transfer->n_rcpt; i++) {
		transfer->phase = SC_SMTP_PHASE_RCPT;
		transfer->rcpt_sent = i + 1;
		if (!pipelining || i == queued) {
			g_string_truncate (pipe->commands, 0);
			if (pipelining)
				sc_smtp_pipe_queue_group (pipe, addresses, transfer->n_rcpt, &queued,
							  &data_queued);
			else
				g_string_printf (pipe->commands, "RCPT TO:<%s>\r\n", addresses[i]);
			failure = sc_smtp_pipe_write_commands (pipe, transfer, error);
			if (failure != SC_SMTP_FAILURE_NONE)
				return failure;
		}
		failure = sc_smtp_pipe_read_reply (pipe, transfer, TRUE, &code, error);
		if (failure != SC_SMTP_FAILURE_NONE || sc_smtp_pipe_closing (pipe, code))
			return failure;
	}

	if (!sc_smtp_pipe_any_accepted (transfer)) {
		/* ALL_REFUSED (the phase stays RCPT): DATA's 503/554 is dropped */
		if (pipelining) {
			if (!sc_smtp_pipe_drop_replies (pipe, transfer, 1, &code) ||
			    sc_smtp_pipe_closing (pipe, code))
				return SC_SMTP_FAILURE_NONE;
			if (code == 354)
				sc_smtp_pipe_end_empty_data (pipe, transfer);
		}
		sc_smtp_pipe_reset (pipe, transfer);
		return SC_SMTP_FAILURE_NONE;
	}

	transfer->phase = SC_SMTP_PHASE_DATA;
	if (pipelining)
		failure = sc_smtp_pipe_read_reply (pipe, transfer, TRUE, &code, error);
	else
		failure = sc_smtp_pipe_command (pipe, transfer, "DATA\r\n", &code, error);
	if (failure != SC_SMTP_FAILURE_NONE || sc_smtp_pipe_closing (pipe, code))
		return failure;
	if (code != 354)
		sc_smtp_pipe_reset (pipe, transfer);
	return SC_SMTP_FAILURE_NONE;
}

/* The body with CRLF line ends (a bare LF becomes CRLF, a bare CR stays) and
 * a dot doubled at the start of every line, the first included: the bytes
 * libcurl's read callback and Curl_smtp_escape_eob() put on the wire.
 * (transfer full) */
static GBytes *
sc_smtp_pipe_stuff (const guint8 *body, gsize size, gsize wire_size)
{
	/* room for one step past a wrong wire_size, which the caller reports */
	gsize capacity = wire_size + 2;
	guint8 *wire = g_malloc (capacity);
	gsize out = 0;

	for (gsize i = 0; i < size && out + 2 <= capacity; i++) {
		gboolean line_start = i == 0 || body[i - 1] == '\n';

		if (body[i] == '.' && line_start)
			wire[out++] = '.';
		else if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
			wire[out++] = '\r';
		wire[out++] = body[i];
	}
	return g_bytes_new_take (wire, out);
}

/* The stuffed body and the final "." in one write, then its reply. */
static ScSmtpFailure
sc_smtp_pipe_body (ScSmtpPipe *pipe, ScSmtpTransfer *transfer, GError **error)
{
	g_autoptr(GBytes) stuffed = NULL;
	const char *dot;
	GOutputVector vectors[2];
	ScSmtpFailure failure;
	gsize written = 0;
	int code = 0;

	/* libcurl ends a body that ends with CRLF (or is empty) with ".\r\n",
	 * any other with "\r\n.\r\n" */
	dot = transfer->body_size == 0 || transfer->body[transfer->body_size - 1] == '\n'
		  ? ".\r\n"
		  : "\r\n.\r\n";
	if (transfer->wire_size == transfer->body_size) {
		/* nothing to stuff or convert: the message as it is */
		vectors[0].buffer = transfer->body;
		vectors[0].size = transfer->body_size;
	} else {
		stuffed = sc_smtp_pipe_stuff (transfer->body,
					      transfer->body_size,
					      transfer->wire_size);
		vectors[0].buffer = g_bytes_get_data (stuffed, &vectors[0].size);
		if (vectors[0].size != transfer->wire_size) {
			g_warning ("%s: the stuffed body has %" G_GSIZE_FORMAT " bytes where "
				   "%" G_GSIZE_FORMAT " were expected",
				   pipe->name,
				   vectors[0].size,
				   transfer->wire_size);
		}
	}
	vectors[1].buffer = dot;
	vectors[1].size = strlen (dot);

	failure = sc_smtp_pipe_write (pipe, vectors, 2, transfer->cancellable, &written, error);
	transfer->data_out = MIN (written, transfer->wire_size);
	if (failure != SC_SMTP_FAILURE_NONE)
		return failure;
	/* every byte of the "." is with the kernel: the server may end the
	 * transaction now, whatever happens to us */
	transfer->phase = SC_SMTP_PHASE_DOT;
	failure = sc_smtp_pipe_read_reply (pipe, transfer, TRUE, &code, error);
	if (failure == SC_SMTP_FAILURE_NONE)
		(void) sc_smtp_pipe_closing (pipe, code);
	return failure;
}

/* One attempt: connect if needed, then the transaction.  NONE when it ran
 * to a reply that decides (a refusal included). */
static ScSmtpFailure
sc_smtp_pipe_attempt (ScSmtpPipe *pipe,
		      ScSmtpTransfer *transfer,
		      const char *sender,
		      const char *const *addresses,
		      GError **error)
{
	ScSmtpFailure failure;

	if (pipe->connection == NULL) {
		failure = sc_smtp_pipe_connect (pipe, transfer, error);
		if (failure != SC_SMTP_FAILURE_NONE || pipe->connection == NULL)
			return failure;
	}
	failure = sc_smtp_pipe_envelope (pipe, transfer, sender, addresses, error);
	if (failure != SC_SMTP_FAILURE_NONE || transfer->phase != SC_SMTP_PHASE_BODY)
		return failure;
	return sc_smtp_pipe_body (pipe, transfer, error);
}

void
sc_smtp_pipe_send (ScSmtpPipe *pipe,
		   const char *sender,
		   const char *const *addresses,
		   const ScSmtpTransfer *setup,
		   ScSmtpResult *result)
{
	for (guint attempt = 0;; attempt++) {
		g_auto(ScSmtpTransfer) transfer = *setup;
		g_autoptr(GError) error_local = NULL;
		gboolean reused = pipe->connection != NULL;
		ScSmtpFailure failure;

		/* transfer.line stays NULL: lines are cut in pipe->line */
		transfer.reply = g_string_new (NULL);
		failure = sc_smtp_pipe_attempt (pipe, &transfer, sender, addresses, &error_local);
		if (failure != SC_SMTP_FAILURE_NONE)
			sc_smtp_pipe_close (pipe);
		/* A cached connection the server has closed is not the mailer
		 * failing: one more try on a fresh connection. */
		if (attempt == 0 && reused &&
		    sc_smtp_reused_connection_closed (&transfer, failure)) {
			g_debug ("%s: reused connection was closed by the server (%s), "
				 "reconnecting",
				 pipe->name,
				 transfer.last_reply != NULL ? transfer.last_reply
				 : error_local != NULL	     ? error_local->message
							     : "");
			sc_smtp_pipe_close (pipe);
			continue;
		}
		sc_smtp_decide (&transfer,
				result,
				failure,
				error_local != NULL ? error_local->message : NULL);
		return;
	}
}

void
sc_smtp_pipe_free (ScSmtpPipe *pipe)
{
	if (pipe == NULL)
		return;
	if (pipe->connection != NULL) {
		/* best effort: a short wait for "221", then close whatever it says */
		GOutputVector vector = {"QUIT\r\n", 6};
		gint64 deadline = g_get_monotonic_time () +
				  MIN (pipe->timeout, SC_SMTP_PIPE_QUIT_TIMEOUT);

		if (g_socket_send_message (pipe->socket, NULL, &vector, 1, NULL, 0,
					   G_SOCKET_MSG_NONE, NULL, NULL) == 6) {
			while (sc_smtp_pipe_read_line (pipe, deadline, NULL, NULL) ==
				   SC_SMTP_FAILURE_NONE &&
			       sc_smtp_reply_line_continues (pipe->line->str, pipe->line->len))
				;
		}
		sc_smtp_pipe_close (pipe);
	}
	g_free (pipe->name);
	g_free (pipe->host);
	g_free (pipe->url_error);
	g_free (pipe->helo);
	g_string_free (pipe->line, TRUE);
	g_string_free (pipe->commands, TRUE);
	g_free (pipe);
}
