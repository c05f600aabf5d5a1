/* sc-test-postfix.h — a private Postfix instance on 127.0.0.1 for SMTP delivery tests. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScTestPostfix ScTestPostfix;

typedef struct {
	/* where accepted mail is relayed (an smtp-sink); 0: accepted mail is discarded */
	guint16 relay_port;
	/* NULL-terminated "address REPLY" lines for the recipient access table, e.g.
	 * "bad@example.org 550 5.1.1 no such user".  Postfix sends such a reply as
	 * "550 5.1.1 <bad@example.org>: Recipient address rejected: no such user". */
	const char *const *access;
	/* generate a self-signed cert (CN and SAN localhost, SAN IP 127.0.0.1) and offer STARTTLS */
	gboolean tls;
	/* smtpd_tls_security_level=encrypt: MAIL before STARTTLS gets 530; implies @tls */
	gboolean tls_required;
	/* smtpd_timeout in seconds (0: Postfix's default): smtpd answers an idle
	 * client "421 4.4.2 … Error: timeout exceeded" and closes */
	guint smtpd_timeout;
	/* (nullable) default_transport, e.g. "lmtp:inet:127.0.0.1:PORT": accepted
	 * mail goes there instead of to @relay_port */
	const char *transport;
} ScTestPostfixOptions;

/* Starts a private master + smtpd + smtp client under a fresh temp folder.
 * Returns NULL after g_test_skip() if Postfix is not installed or cannot
 * start here (not root, no postfix user, …).  @options: (nullable) */
ScTestPostfix *sc_test_postfix_start (const ScTestPostfixOptions *options);
guint16 sc_test_postfix_get_port (ScTestPostfix *postfix);
/* "smtp://127.0.0.1:PORT" (transfer full) */
char *sc_test_postfix_get_url (ScTestPostfix *postfix);
/* PEM of the self-signed cert, or NULL without TLS; usable as a CA file. */
const char *sc_test_postfix_get_cert_path (ScTestPostfix *postfix);
/* The maillog contents, "" when there is none. (transfer full) */
char *sc_test_postfix_get_log (ScTestPostfix *postfix);
/* The instance folder (etc/, queue/, data/, maillog), removed by free(). */
const char *sc_test_postfix_get_dir (ScTestPostfix *postfix);
/* The master daemon's PID, which is also its children's process group. */
GPid sc_test_postfix_get_master_pid (ScTestPostfix *postfix);
/* Waits until the queue is empty (everything relayed, bounced or discarded),
 * up to @timeout_ms.  Mail deferred by the relay stays queued: FALSE. */
gboolean sc_test_postfix_wait_queue_empty (ScTestPostfix *postfix, guint timeout_ms);
/* `postfix -c DIR/etc stop`, kills leftovers by PID, removes the folder. */
void sc_test_postfix_free (ScTestPostfix *postfix);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScTestPostfix, sc_test_postfix_free)

G_END_DECLS
