/* sc-smtp-server.h — the SMTP and LMTP listeners ([ingress] smtp=, lmtp=).
 * Lives on the ingress thread: created there (its GMainContext is the
 * thread-default one), every connection runs on it, every message goes
 * through the acceptor. */
#pragma once

#include "sc-ingress.h"

G_BEGIN_DECLS

typedef struct _ScSmtpServer ScSmtpServer;

/* Binds config->ingress.smtp and .lmtp (either may be NULL: not bound).
 * A port in use or an unusable socket path is an error. */
ScSmtpServer *sc_smtp_server_new (ScConfig *config, ScAcceptor *acceptor, GError **error);
/* Limits, lists, TLS and AUTH files for new connections and commands. */
void sc_smtp_server_set_config (ScSmtpServer *server, ScConfig *config);
/* Stops listening; sessions in progress are answered 421 4.3.2 at their
 * next command (a transaction already past DATA finishes first; one
 * between MAIL and DATA gets 451 4.3.2 to each RCPT, then the 421). */
void sc_smtp_server_stop (ScSmtpServer *server);
/* After stop: whether a connection still has its 421 (or the answer to
 * its last command) to write; freeing the server before cuts it off. */
gboolean sc_smtp_server_is_flushing (ScSmtpServer *server);
void sc_smtp_server_free (ScSmtpServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScSmtpServer, sc_smtp_server_free)

G_END_DECLS
