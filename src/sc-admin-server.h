/* sc-admin-server.h — the admin HTTP server: dashboard, JSON API under
 * /api/v1, /metrics and /healthz (the contract is doc/admin-api.md).
 * Lives on the main context of the thread that created it, the thread
 * that owns @spool; handlers never block it for long.
 */
#pragma once

#include <glib.h>

#include "sc-clock.h"
#include "sc-config.h"
#include "sc-ingress.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct _ScAdminServer ScAdminServer;

/* Reads the token file (without one: SPOOL/admin-token, generated at the
 * first start), binds config->admin_listen ("HOST:PORT"; port 0 picks a
 * free one) and listens.  @spool: (transfer none) must outlive the server.
 * Errors: the token file, the address, the bind. */
ScAdminServer *sc_admin_server_new (ScConfig *config, ScSpool *spool, ScClock *clock, GError **error);
void sc_admin_server_free (ScAdminServer *server);

/* The port actually bound (useful after port 0). */
guint16 sc_admin_server_get_port (ScAdminServer *server);

/* @func is called (on the main context) after an action that made
 * messages due: retry, release, bulk retry.  Its return value is ignored. */
void sc_admin_server_set_kick (ScAdminServer *server, GSourceFunc func, gpointer data);

/* Where POST /api/v1/messages hands mail in (sc-ingress.h); without one
 * (NULL, the default) it answers 503.  @acceptor: (transfer none) (nullable)
 * must outlive the server, or be unset first (the daemon stops: from then
 * on 503 with Retry-After, as for a busy spool). */
void sc_admin_server_set_acceptor (ScAdminServer *server, ScAcceptor *acceptor);

/* After SIGHUP: mailers, the token file and the Host names are read from
 * @config from now on; login sessions end (browsers log in again).  A new
 * listen address takes a restart: it is refused (error), as is an
 * unreadable token file, and then every old setting stays in force. */
gboolean sc_admin_server_set_config (ScAdminServer *server, ScConfig *config, GError **error);

/* The generated token file, STATE_DIR/admin-token (mode 0600, "admin
 * TOKEN"), made if missing; its path. (transfer full) */
char *sc_admin_token_ensure (const char *state_dir, GError **error);
/* The dashboard's login link for the operator: the public URL (or the
 * listen address) with the first token in the fragment, "…/#token=T",
 * which browsers send to no server.  (transfer full) */
char *sc_admin_login_url (const ScConfig *config, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAdminServer, sc_admin_server_free)

G_END_DECLS
