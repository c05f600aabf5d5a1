/* sc-handoff-server.h — the local hand-off: `inject` and `sendmail` give
 * a message to the running daemon over a unix socket in state-dir (by
 * default the spool folder), as Postfix's postdrop hands to pickup, and
 * get its answer after the commit.  Lives on the ingress thread like the SMTP listeners. */
#pragma once

#include "sc-ingress.h"

G_BEGIN_DECLS

typedef struct _ScHandoffServer ScHandoffServer;

ScHandoffServer *sc_handoff_server_new (ScConfig *config, ScAcceptor *acceptor, GError **error);
void sc_handoff_server_set_config (ScHandoffServer *server, ScConfig *config);
/* Removes the socket: commands write the spool themselves from now on. */
void sc_handoff_server_stop (ScHandoffServer *server);
void sc_handoff_server_free (ScHandoffServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScHandoffServer, sc_handoff_server_free)

G_END_DECLS
