/* sc-smtp-session.h — one SMTP or LMTP conversation, without sockets.
 *
 * The server feeds it the bytes it read and writes back what it answers;
 * the session says what it needs next (more input, a submission to the
 * acceptor, a TLS handshake, the end).  Nothing here blocks or touches a
 * socket, so the protocol can be unit-tested and fuzzed on its own. */
#pragma once

#include "sc-ingress.h"

G_BEGIN_DECLS

typedef enum {
	SC_SMTP_PROTOCOL_SMTP,
	SC_SMTP_PROTOCOL_LMTP,
} ScSmtpProtocol;

typedef struct {
	ScSmtpProtocol protocol;
	const char *hostname;             /* greeting, EHLO reply, Received: */
	guint64 max_message_size;         /* SIZE, 552 5.3.4 */
	guint max_recipients;             /* 452 4.5.3 beyond */
	ScBareNewline bare_newline;
	gboolean tls_available;           /* STARTTLS offered (until TLS is on) */
	const char *const *credentials;   /* (nullable) USER, PASSWORD, …: AUTH after STARTTLS */
	gboolean peer_allowed;            /* [ingress] allow: MAIL without AUTH */
	gboolean peer_local;              /* a unix socket: no allow= check, no TLS needed for AUTH */
} ScSmtpSessionConfig;

/* What the session waits for after sc_smtp_session_run(). */
typedef enum {
	SC_SMTP_STEP_READ,     /* write the output, then feed more input */
	SC_SMTP_STEP_SUBMIT,   /* pass sc_smtp_session_get_submission() to the acceptor,
				* then sc_smtp_session_submitted() */
	SC_SMTP_STEP_STARTTLS, /* write the output, handshake, then sc_smtp_session_tls_started() */
	SC_SMTP_STEP_CLOSE,    /* write the output, then close */
} ScSmtpStep;

/* Commands longer than this (with CRLF) are refused (RFC 5321 4.5.3.1.4). */
#define SC_SMTP_COMMAND_MAX 512
/* Errors in a row that end the session (Postfix's smtpd_hard_error_limit). */
#define SC_SMTP_MAX_ERRORS 20

typedef struct _ScSmtpSession ScSmtpSession;

/* @config is copied (strings and credentials too).  @peer: (nullable) for
 * the Received: field and logs. */
ScSmtpSession *sc_smtp_session_new (const ScSmtpSessionConfig *config, const char *peer);
void sc_smtp_session_free (ScSmtpSession *session);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScSmtpSession, sc_smtp_session_free)

/* The first reply: 220, or 421 4.7.0 when @busy (the step is then CLOSE),
 * or 554 5.7.1 for a peer outside allow= that cannot AUTH. */
ScSmtpStep sc_smtp_session_greet (ScSmtpSession *session, gboolean busy);
/* Queues input; sc_smtp_session_run() consumes it. */
void sc_smtp_session_feed (ScSmtpSession *session, const void *data, gsize length);
/* Consumes queued input until it needs something else. */
ScSmtpStep sc_smtp_session_run (ScSmtpSession *session);
/* The replies written so far; the caller sends and clears it. */
GString *sc_smtp_session_get_output (ScSmtpSession *session);
/* Whether it waits for message data (data-timeout) rather than a command. */
gboolean sc_smtp_session_in_data (ScSmtpSession *session);

/* After STEP_SUBMIT: the finished message. (transfer none) valid until
 * sc_smtp_session_submitted(). */
const ScSubmission *sc_smtp_session_get_submission (ScSmtpSession *session);
/* The acceptor's answer: @accepted, or @error (SC_INGRESS_ERROR, else 451). */
void sc_smtp_session_submitted (ScSmtpSession *session, const ScAccepted *accepted, const GError *error);
/* After STEP_STARTTLS: the handshake succeeded; a new EHLO is due. */
void sc_smtp_session_tls_started (ScSmtpSession *session);
/* The client was silent too long: 421 4.4.2, the step is CLOSE. */
void sc_smtp_session_timeout (ScSmtpSession *session);
/* The daemon stops: the next command is answered 421 4.3.2 and the
 * session closes; data in progress is finished first.  A session idle
 * between commands gets the 421 now: returns TRUE, the step is CLOSE. */
gboolean sc_smtp_session_shutdown (ScSmtpSession *session);
/* The authenticated user, NULL before AUTH. (transfer none) */
const char *sc_smtp_session_get_user (ScSmtpSession *session);

G_END_DECLS
