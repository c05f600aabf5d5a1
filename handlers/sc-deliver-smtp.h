/* sc-deliver-smtp.h — one SMTP transaction, with the reply to every RCPT
 * kept verbatim.
 *
 * An ScSmtpConnection holds one mailer's client: for a plain mailer
 * (smtp://, starttls=off, no username) a pipelined SMTP client of our own
 * (sc-deliver-smtp-pipe.c), for every other one a CURL easy handle.  Either
 * way reusing it for the next transaction reuses the TCP (or TLS)
 * connection (no new EHLO) while the server keeps it open, and the results
 * are the same.  It belongs to one thread at a time.
 */
#pragma once

#include <gio/gio.h>

#include "sc-config.h"

G_BEGIN_DECLS

typedef enum {
	/* DATA's final reply was 2xx: every recipient with `accepted` has it */
	SC_SMTP_SENT,
	/* the mailer could not be used at all: connect, TLS, AUTH, greeting,
	 * EHLO or MAIL FROM failed; nothing reached any recipient: the caller
	 * tries the next mailer */
	SC_SMTP_MAILER_FAILED,
	/* every RCPT was refused; recipients[] says how, per address */
	SC_SMTP_ALL_REFUSED,
	/* refused or broken before the final "." was sent: nobody has it */
	SC_SMTP_DATA_FAILED,
	/* the connection broke after the final "." was sent and before its
	 * reply: the server may have the message (a possible duplicate if
	 * sent again) */
	SC_SMTP_DATA_UNKNOWN,
} ScSmtpStatus;

typedef struct {
	char *address;
	/* the RCPT reply code; 0 when RCPT was never sent (the transaction
	 * failed before it).  An address refused locally, never sent (empty,
	 * or containing CR, LF, '<' or '>'), gets 553 and a reply
	 * "553 5.1.3 refused by stagecoach, not sent: …", so that
	 * sc_smtp_reply_classify() calls it permanent like any other 553. */
	int code;
	/* (nullable) the whole reply, verbatim, lines joined by "\n"; bytes
	 * that are not UTF-8 replaced, cut after 4 KiB with a last line "[…]" */
	char *reply;
	/* 2xx to RCPT; the recipient has the message only if the status is
	 * SC_SMTP_SENT */
	gboolean accepted;
} ScSmtpRecipientResult;

typedef struct {
	ScSmtpStatus status;
	int code;            /* the reply that decided the status, 0 for local/network errors
			      * (553 for a sender refused locally, see recipients) */
	char *reply;         /* (nullable) that reply verbatim, or curl's error text */
	gboolean transient;  /* for MAILER_FAILED, ALL_REFUSED, DATA_*: worth retrying later */
	GPtrArray *recipients; /* (element-type ScSmtpRecipientResult), in the order given */
} ScSmtpResult;

void sc_smtp_result_free (ScSmtpResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScSmtpResult, sc_smtp_result_free)

typedef struct _ScSmtpConnection ScSmtpConnection;

/* Nothing is sent until the first sc_smtp_send().  @mailer is copied. */
ScSmtpConnection *sc_smtp_connection_new (const ScMailerConfig *mailer);
void sc_smtp_connection_free (ScSmtpConnection *connection);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScSmtpConnection, sc_smtp_connection_free)
const char *sc_smtp_connection_get_mailer_name (ScSmtpConnection *connection);
/* How many TCP connections this handle has opened so far. */
guint sc_smtp_connection_get_connects (ScSmtpConnection *connection);

/* Sends @message (CRLF line endings; bare LF are converted, leading dots
 * stuffed) from @sender ("" = null reverse-path) to
 * @recipients (already validated: no CR/LF/<>).  Never fails with an
 * error: every outcome, a missing password file included, is a result.
 * @cancellable: (nullable) aborts the transfer (result MAILER_FAILED or
 * DATA_FAILED, transient) until the whole body is written; after that the
 * reply to "." is still awaited (up to the timeout).  A cached connection
 * the server has closed (its first command unwritten or unanswered, or
 * answered only by 421) is replaced once, silently.  Blocks up to the mailer's
 * timeout per command; call it from a worker thread.  Returns: (transfer
 * full) */
ScSmtpResult *sc_smtp_send (ScSmtpConnection *connection,
			    const char *sender,
			    const char *const *recipients,
			    GBytes *message,
			    GCancellable *cancellable);

G_END_DECLS
