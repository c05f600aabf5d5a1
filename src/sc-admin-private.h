/* sc-admin-private.h — what the admin server's files share (server, auth,
 * api, metrics).  Not for other modules. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "sc-admin-server.h"

G_BEGIN_DECLS

typedef struct _ScAdminAuth ScAdminAuth;
typedef struct _ScAdminMetrics ScAdminMetrics;

struct _ScAdminServer {
	SoupServer *soup;         /* (owned) */
	ScConfig *config;         /* (owned) replaced on reload */
	ScSpool *spool;           /* (unowned) main thread only */
	ScClock *clock;           /* (owned) */
	ScAdminAuth *auth;        /* (owned) */
	ScAdminMetrics *metrics;  /* (owned) */
	GSourceFunc kick;         /* (nullable) */
	gpointer kick_data;       /* (unowned) */
	guint16 port;
};

/* Who is calling. */
typedef struct {
	char *actor;      /* token NAME, or "local" without a token file */
	gboolean bearer;  /* came with Authorization: Bearer (no CSRF needed) */
	char *session_id; /* (nullable) from the session cookie */
} ScAdminIdentity;

void sc_admin_identity_free (ScAdminIdentity *identity);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAdminIdentity, sc_admin_identity_free)

/* sc-admin-auth.c */
#define SC_ADMIN_SESSION_COOKIE "stagecoach_session"
ScAdminAuth *sc_admin_auth_new (const char *token_file, GError **error);
void sc_admin_auth_free (ScAdminAuth *auth);
gboolean sc_admin_auth_required (ScAdminAuth *auth);
/* (nullable) NULL: not authenticated (a token file exists and neither a
 * valid Bearer token nor a live session came). (transfer full) */
ScAdminIdentity *sc_admin_auth_identify (ScAdminAuth *auth, SoupServerMessage *message, gint64 now);
/* (transfer full) the CSRF token for this caller. */
char *sc_admin_auth_csrf_token (ScAdminAuth *auth, const ScAdminIdentity *identity);
/* TRUE when a state-changing request may go on: Bearer, or X-CSRF-Token fits. */
gboolean sc_admin_auth_check_csrf (ScAdminAuth *auth, const ScAdminIdentity *identity, SoupServerMessage *message);
/* GET/POST /login, POST /logout. */
void sc_admin_auth_handle_login (ScAdminServer *server, SoupServerMessage *message);
void sc_admin_auth_handle_logout (ScAdminServer *server, SoupServerMessage *message);

/* sc-admin-api.c: everything under /api/v1/; @path starts after "/api/v1". */
void sc_admin_api_handle (ScAdminServer *server,
			  SoupServerMessage *message,
			  const char *path,
			  GHashTable *query,
			  const ScAdminIdentity *identity);

/* sc-admin-metrics.c */
ScAdminMetrics *sc_admin_metrics_new (void);
void sc_admin_metrics_free (ScAdminMetrics *metrics);
void sc_admin_metrics_handle (ScAdminServer *server, SoupServerMessage *message);

/* sc-admin-server.c: replies */
void sc_admin_reply_json (SoupServerMessage *message, guint status, JsonNode *node);
void sc_admin_reply_error (SoupServerMessage *message, guint status, const char *text);
void sc_admin_reply_text (SoupServerMessage *message, guint status, const char *content_type, const char *text);

G_END_DECLS
