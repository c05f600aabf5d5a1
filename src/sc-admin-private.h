/* sc-admin-private.h — what the admin server's files share (server, auth,
 * api, metrics).  Not for other modules. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "sc-admin-server.h"
#include "sc-catalog.h"
#include "sc-ingress.h"

G_BEGIN_DECLS

typedef struct _ScAdminAuth ScAdminAuth;
typedef struct _ScAdminMetrics ScAdminMetrics;
typedef struct _ScAdminBulk ScAdminBulk;

/* Request bodies: the cap is checked on the headers, before a byte of
 * the body is read; JSON nesting is checked before json-glib (which
 * recurses) sees the text. */
#define SC_ADMIN_BODY_MAX (1024 * 1024)
#define SC_ADMIN_LOGIN_BODY_MAX 4096
#define SC_ADMIN_JSON_DEPTH_MAX 32
#define SC_ADMIN_STATUS_TOO_MANY_REQUESTS 429 /* not in libsoup 3.2's enum */

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
	GStrv hosts;              /* (owned) Host names served, lower case */
	gboolean loopback_only;   /* bound to loopback: other peers are refused */
	ScAdminBulk *bulk;        /* (nullable) (owned) the bulk retry running */
	ScAcceptor *acceptor;     /* (nullable) (unowned) where POST /api/v1/messages hands mail */
	gboolean acceptor_gone;   /* there was one: the daemon is stopping */
};

/* Who is calling; set on the message (SC_ADMIN_IDENTITY_KEY) by the
 * server once its headers are in, before the body is read. */
#define SC_ADMIN_IDENTITY_KEY "sc-admin-identity"
typedef struct {
	char *actor;      /* token NAME */
	gboolean bearer;  /* came with Authorization: Bearer (no CSRF needed) */
	char *session_id; /* (nullable) from the session cookie */
	gboolean inject_only; /* an "inject" token: POST /api/v1/messages only */
} ScAdminIdentity;

void sc_admin_identity_free (ScAdminIdentity *identity);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAdminIdentity, sc_admin_identity_free)

/* sc-admin-i18n.c: the dashboard's language */
#define SC_ADMIN_I18N_PATH "/i18n.json"
/* The catalogue for @accept_language (an Accept-Language value, nullable):
 * ranges by q-value ("de-DE" tries de_DE, then de; q=0 refuses; "*" and
 * "en" are English), among those installed (sc_catalog_path()) with the
 * plural rule n != 1.  NULL: English; else @out_language is its tag
 * ("de", "de-AT"). (transfer full) */
ScCatalog *sc_admin_negotiate_language (const char *accept_language, char **out_language);
/* GET /i18n.json: {"language": TAG, "strings": {msgid: msgstr | [forms]}},
 * Vary: Accept-Language, Content-Language: TAG. */
void sc_admin_i18n_handle (SoupServerMessage *message);
/* @msgid's text in @catalog (nullable: English), else @msgid. */
const char *sc_admin_translate (const ScCatalog *catalog, const char *msgid);
/* Vary: Accept-Language and Content-Language: @language (NULL: "en"). */
void sc_admin_set_language_headers (SoupServerMessage *message, const char *language);

/* sc-admin-auth.c */
#define SC_ADMIN_SESSION_COOKIE "stagecoach_session"
/* Reads config's token file, or the generated one (made if missing). */
ScAdminAuth *sc_admin_auth_new (const ScConfig *config, GError **error);
void sc_admin_auth_free (ScAdminAuth *auth);
const char *sc_admin_auth_token_path (ScAdminAuth *auth);
/* (nullable) NULL: not authenticated (neither a valid Bearer token nor a
 * live session came); then @out_wait > 0 if the peer guessed too often
 * and must wait that many seconds (429), else 401.  A wrong Bearer
 * token is logged and counted against the peer. (transfer full) */
ScAdminIdentity *sc_admin_auth_identify (ScAdminAuth *auth, SoupServerMessage *message, gint64 now, guint *out_wait);
/* Seconds the peer must wait before its next login try (0: none). */
guint sc_admin_auth_login_wait (ScAdminAuth *auth, SoupServerMessage *message, gint64 now);
/* (transfer full) the CSRF token for this caller. */
char *sc_admin_auth_csrf_token (ScAdminAuth *auth, const ScAdminIdentity *identity);
/* TRUE when a state-changing request may go on: Bearer, or X-CSRF-Token fits. */
gboolean sc_admin_auth_check_csrf (ScAdminAuth *auth, const ScAdminIdentity *identity, SoupServerMessage *message);
/* GET/POST /login, POST /logout. */
void sc_admin_auth_handle_login (ScAdminServer *server, SoupServerMessage *message);
void sc_admin_auth_handle_logout (ScAdminServer *server, SoupServerMessage *message);

/* sc-admin-api.c: everything under /api/v1/; @path starts after "/api/v1". */
/* A request body as a JSON object (an empty body is an empty object):
 * at most SC_ADMIN_BODY_MAX bytes and SC_ADMIN_JSON_DEPTH_MAX levels of
 * nesting, checked before parsing.  Pure: no server needed (fuzz target).
 * Errors: G_IO_ERROR_INVALID_DATA (message fit for a 400). (transfer full) */
JsonObject *sc_admin_parse_json_body (const char *data, gsize length, GError **error);
/* GET /messages's query (state, list, stage, q, after, limit) as a search:
 * @out_search's strings point into @query; limit is what was asked (the
 * caller adds one to see if there is a next page).  Pure: no server
 * needed (fuzz target; soup_form_decode() turns a query string into
 * @query).  Errors: G_IO_ERROR_INVALID_ARGUMENT (fit for a 400). */
gboolean sc_admin_parse_search_query (GHashTable *query, ScMessageSearch *out_search, GError **error);
/* Stops a running bulk retry (the server is going away). */
void sc_admin_api_stop_bulk (ScAdminServer *server);
void sc_admin_api_handle (ScAdminServer *server,
			  SoupServerMessage *message,
			  const char *path,
			  GHashTable *query,
			  const ScAdminIdentity *identity);

/* sc-admin-inject.c: POST /api/v1/messages, mail handed in over HTTP */
#define SC_ADMIN_INJECT_PATH "/api/v1/messages"

/* The envelope of an inject, from its query string. */
typedef struct {
	char *list_id;     /* (nullable) list= */
	char *sender;      /* from= ("" for the null sender) */
	GPtrArray *recipients; /* (owned) to=, one each, NULL-terminated */
} ScAdminEnvelope;

void sc_admin_envelope_free (ScAdminEnvelope *envelope);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAdminEnvelope, sc_admin_envelope_free)

/* Parses @query (the raw, %-encoded query string, nullable): list= at
 * most once, from= exactly once, to= one or more (at most
 * @max_recipients), nothing else; '+' is a plus sign, not a space.  Only
 * presence and counts are checked here, addresses by the acceptor.  Pure:
 * no server needed (fuzz target).  Errors: G_IO_ERROR_INVALID_ARGUMENT
 * (unknown or repeated parameter, bad %-encoding: 400) or
 * G_IO_ERROR_INVALID_DATA (no from=, no to=, too many: 422).
 * (transfer full) */
ScAdminEnvelope *sc_admin_parse_inject_query (const char *query, guint max_recipients, GError **error);
/* From the headers, before the body is read: FALSE when the inject is
 * refused, with the answer set on @message (403 without a Bearer token,
 * 411/413 on the length, 415 not message/rfc822, 400/422 envelope, 503
 * no acceptor). */
gboolean sc_admin_inject_check_headers (ScAdminServer *server,
					SoupServerMessage *message,
					const ScAdminIdentity *identity);
/* The body is in: hands it to the acceptor; answers after the commit. */
void sc_admin_inject_handle (ScAdminServer *server, SoupServerMessage *message, const ScAdminIdentity *identity);

/* sc-admin-metrics.c */
ScAdminMetrics *sc_admin_metrics_new (void);
void sc_admin_metrics_free (ScAdminMetrics *metrics);
void sc_admin_metrics_handle (ScAdminServer *server, SoupServerMessage *message);

/* sc-admin-server.c: replies */
/* The request's body length: 0 for none, -1 when not announced (chunked). */
goffset sc_admin_announced_body (SoupServerMessage *message);
void sc_admin_reply_json (SoupServerMessage *message, guint status, JsonNode *node);
void sc_admin_reply_error (SoupServerMessage *message, guint status, const char *text);
/* {"error": text, "code": code}: @code (nullable) for programs, @text for people. */
void sc_admin_reply_error_code (SoupServerMessage *message, guint status, const char *code, const char *text);
void sc_admin_reply_text (SoupServerMessage *message, guint status, const char *content_type, const char *text);
/* 429 with Retry-After: @seconds. */
void sc_admin_reply_slow_down (SoupServerMessage *message, guint seconds);

G_END_DECLS
