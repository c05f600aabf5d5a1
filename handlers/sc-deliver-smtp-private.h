/* sc-deliver-smtp-private.h — what the two SMTP clients of sc_smtp_send()
 * share: the transaction's phases, reply recording (verbatim, "\n"-joined,
 * UTF-8 repaired, cut at 4 KiB), the decision table from phase to status,
 * and the stuffed body size.  sc-deliver-smtp.c drives libcurl and chooses;
 * sc-deliver-smtp-pipe.c is the pipelined plain-SMTP client.  Not installed;
 * the tests include it to run every case against both clients.
 */
#pragma once

#include "sc-deliver-smtp.h"

G_BEGIN_DECLS

/* RFC 5321 section 4.5.3.2 asks for minutes per command; a mailer without
 * a timeout gets five */
#define SC_SMTP_DEFAULT_TIMEOUT (300 * G_USEC_PER_SEC)
/* a reply longer than this is cut: a hostile server must not fill the spool */
#define SC_SMTP_REPLY_MAX 4096

typedef enum {
	SC_SMTP_PHASE_CONNECT,  /* TCP, TLS for smtps://, the greeting */
	SC_SMTP_PHASE_EHLO,
	SC_SMTP_PHASE_STARTTLS,
	SC_SMTP_PHASE_AUTH,
	SC_SMTP_PHASE_MAIL,
	SC_SMTP_PHASE_RCPT,
	SC_SMTP_PHASE_DATA,     /* DATA sent, its 354 not yet received */
	SC_SMTP_PHASE_BODY,     /* 354 received, the body is being written */
	SC_SMTP_PHASE_DOT,      /* the whole body was written; "." and its reply follow */
	SC_SMTP_PHASE_DONE,     /* the reply to "." arrived */
} ScSmtpPhase;

/* How a transaction stopped short, as far as the decision cares. */
typedef enum {
	SC_SMTP_FAILURE_NONE,      /* the protocol ran to its end (the replies decide) */
	SC_SMTP_FAILURE_CANCELLED, /* the caller's GCancellable */
	SC_SMTP_FAILURE_SEND,      /* the socket refused bytes we wrote */
	SC_SMTP_FAILURE_BROKEN,    /* EOF, reset or garbage where a reply was due */
	SC_SMTP_FAILURE_OTHER,     /* a timeout, a refused connect, anything else */
} ScSmtpFailure;

/* Which client a connection uses; AUTO is what sc_smtp_connection_new()
 * does: the pipelined client for smtp:// with starttls=off and no
 * username, libcurl for everything else. */
typedef enum {
	SC_SMTP_TRANSPORT_AUTO,
	SC_SMTP_TRANSPORT_CURL,
	SC_SMTP_TRANSPORT_PIPE,
} ScSmtpTransport;

/* One transaction: lives on sc_smtp_send()'s stack, on the calling thread
 * only.  The libcurl client fills it from its debug callback, the
 * pipelined client as it reads; either way each complete reply goes
 * through sc_smtp_reply_line() with the phase it answers. */
typedef struct {
	ScSmtpResult *result;       /* (not owned) recipients[] is filled in as RCPT replies come */
	const guint *rcpt_index;    /* (not owned) n-th RCPT sent -> index in result->recipients */
	guint n_rcpt;               /* RCPT commands to send */
	const guint8 *body;         /* (not owned) the message as given (bare LF allowed) */
	gsize body_size;
	gboolean has_bare_lf;       /* some LF in body lacks its CR: convert while reading */
	gsize body_offset;          /* libcurl: bytes of body handed to curl so far */
	gboolean previous_cr;       /* libcurl: body[body_offset - 1] was CR */
	gboolean pending_lf;        /* libcurl: a CR was inserted before a bare LF; the LF is due */
	gsize wire_size;            /* body with CRLF line ends and dot-stuffing */
	gsize data_out;             /* body bytes written to the socket (stuffed) */
	gboolean body_eof;          /* libcurl: the read callback returned EOF */
	GCancellable *cancellable;  /* (not owned) (nullable) */

	ScSmtpPhase phase;
	gboolean quitting;          /* "QUIT" was written: later replies answer nothing of ours */
	guint rcpt_sent;            /* RCPT replies due so far (libcurl: commands written) */
	guint replies;              /* complete replies received */
	GString *line;              /* (owned) (nullable) a reply line not yet ended by LF
				     * (libcurl's debug callback; NULL for the pipelined client) */
	GString *reply;             /* (owned) the lines of the reply being read */
	gboolean reply_truncated;
	int last_code;              /* the last complete reply … */
	char *last_reply;           /* (owned) (nullable) … verbatim … */
	ScSmtpPhase last_phase;     /* … and the phase it answered */
} ScSmtpTransfer;

void sc_smtp_transfer_clear (ScSmtpTransfer *transfer);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ScSmtpTransfer, sc_smtp_transfer_clear)

/* One reply line, CR LF stripped: a "ddd-" line continues the reply, any
 * other ends it and records it for transfer->phase. */
void sc_smtp_reply_line (ScSmtpTransfer *transfer, const char *line, gsize length);
/* Whether @line ("ddd-…") is followed by more lines of the same reply. */
gboolean sc_smtp_reply_line_continues (const char *line, gsize length);
/* The basic code of a reply line, 0 when it has none. */
int sc_smtp_reply_line_code (const char *line, gsize length);

ScSmtpResult *sc_smtp_result_new (const char *const *recipients);
void sc_smtp_result_set (ScSmtpResult *result,
			 ScSmtpStatus status,
			 int code,
			 const char *reply,
			 gboolean transient);

/* The body's size with CRLF line ends and dot-stuffing; see the definition. */
gsize sc_smtp_wire_size (const guint8 *data, gsize size, gboolean *out_has_bare_lf);

/* Turns where the transaction stopped into the result's status; @what:
 * (nullable) the failure in words ("Timeout was reached"). */
void sc_smtp_decide (ScSmtpTransfer *transfer,
		     ScSmtpResult *result,
		     ScSmtpFailure failure,
		     const char *what);
/* Whether a transaction on a reused connection failed only because the
 * server had closed that connection meanwhile (see the definition). */
gboolean sc_smtp_reused_connection_closed (const ScSmtpTransfer *transfer, ScSmtpFailure failure);

ScSmtpConnection *sc_smtp_connection_new_with_transport (const ScMailerConfig *mailer,
							 ScSmtpTransport transport);
/* TRUE when @connection uses the pipelined client. */
gboolean sc_smtp_connection_is_pipe (ScSmtpConnection *connection);

/* The pipelined plain-SMTP client (sc-deliver-smtp-pipe.c): one TCP
 * connection, reused across transactions, owned by one thread at a time. */
typedef struct _ScSmtpPipe ScSmtpPipe;

/* @helo: the EHLO name; @timeout: µs per command.  Connects at the first
 * transaction. (transfer full) */
ScSmtpPipe *sc_smtp_pipe_new (const char *name, const char *url, const char *helo,
			      gint64 timeout);
/* Sends QUIT (best effort, briefly) and closes. */
void sc_smtp_pipe_free (ScSmtpPipe *pipe);
guint sc_smtp_pipe_get_connects (ScSmtpPipe *pipe);
/* One transaction to @addresses (NULL-terminated, checked, the n-th being
 * result->recipients[setup->rcpt_index[n]]); @setup: the transfer's fixed
 * fields (result, rcpt_index, n_rcpt, body, wire_size, cancellable),
 * copied per attempt.  Fills @result. */
void sc_smtp_pipe_send (ScSmtpPipe *pipe,
			const char *sender,
			const char *const *addresses,
			const ScSmtpTransfer *setup,
			ScSmtpResult *result);

G_END_DECLS
