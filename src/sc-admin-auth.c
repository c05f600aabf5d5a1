/* sc-admin-auth.c — who may use the admin server, and proof that a
 * state-changing request was meant: tokens, login sessions, CSRF tokens.
 *
 * Tokens come from the token file, one "NAME TOKEN" per line ('#' starts a
 * comment); NAME becomes the actor in the audit log.  A caller presents a
 * token as "Authorization: Bearer TOKEN" or logs in once with a form and
 * gets a random session id in an HttpOnly, SameSite=Strict cookie.  CSRF
 * tokens are an HMAC of the session (or "local") under a per-process
 * secret, so they need no storage and die with the process.
 *
 * This file must never log or echo a token, never compare a secret in
 * time that depends on where it differs, and never accept a cookie session
 * for a state-changing request without its CSRF token.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "sc-admin-private.h"
#include "sc-i18n.h"

#define SESSION_LIFETIME (12 * G_TIME_SPAN_HOUR)
#define SESSIONS_MAX 1024

typedef struct {
	char *name;
	guint8 digest[32]; /* SHA-256 of the token: compared, never the token itself */
} ScAdminToken;

typedef struct {
	char *actor;
	gint64 expires_at;
} ScAdminSession;

struct _ScAdminAuth {
	GPtrArray *tokens;    /* (owned) (element-type ScAdminToken) empty: no token file */
	gboolean required;    /* a token file was configured */
	GHashTable *sessions; /* (owned) session id → ScAdminSession */
	guint8 secret[32];    /* per process: CSRF HMAC key */
};

static void
token_free (ScAdminToken *token)
{
	g_free (token->name);
	g_free (token);
}

static void
session_free (ScAdminSession *session)
{
	g_free (session->actor);
	g_free (session);
}

static void
digest_token (const char *token, guint8 out_digest[32])
{
	g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
	gsize length = 32;

	g_checksum_update (checksum, (const guchar *) token, strlen (token));
	g_checksum_get_digest (checksum, out_digest, &length);
}

static gboolean
equal_constant_time (const guint8 *a, const guint8 *b, gsize length)
{
	guint8 difference = 0;

	for (gsize i = 0; i < length; i++)
		difference |= a[i] ^ b[i];
	return difference == 0;
}

static gboolean
equal_strings_constant_time (const char *a, const char *b)
{
	guint8 digest_a[32];
	guint8 digest_b[32];

	/* digests first: equal length, no early exit on length */
	digest_token (a, digest_a);
	digest_token (b, digest_b);
	return equal_constant_time (digest_a, digest_b, sizeof digest_a);
}

static gboolean
random_bytes (guint8 *out, gsize length, GError **error)
{
	/* GRand is no CSPRNG: ask the kernel */
	gsize done = 0;

	while (done < length) {
		ssize_t n = getrandom (out + done, length - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
				     _("cannot get random bytes: %s"), g_strerror (errno));
			return FALSE;
		}
		done += n;
	}
	return TRUE;
}

static char *
random_hex (gsize n_bytes, GError **error)
{
	g_autofree guint8 *bytes = g_malloc (n_bytes);
	GString *text;

	if (!random_bytes (bytes, n_bytes, error))
		return NULL;
	text = g_string_sized_new (n_bytes * 2);
	for (gsize i = 0; i < n_bytes; i++)
		g_string_append_printf (text, "%02x", bytes[i]);
	return g_string_free (text, FALSE);
}

static gboolean
load_tokens (ScAdminAuth *auth, const char *path, GError **error)
{
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents (path, &contents, NULL, error)) {
		g_prefix_error (error, _("admin token file: "));
		return FALSE;
	}
	lines = g_strsplit (contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) fields = NULL;
		ScAdminToken *token;
		char *line = g_strstrip (lines[i]);

		if (*line == '\0' || *line == '#')
			continue;
		fields = g_strsplit_set (line, " \t", 2);
		if (fields[0] == NULL || fields[1] == NULL || *g_strstrip (fields[1]) == '\0') {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				     _("admin token file %s line %u: expected “NAME TOKEN”"),
				     path, i + 1);
			return FALSE;
		}
		token = g_new0 (ScAdminToken, 1);
		token->name = g_strdup (fields[0]);
		digest_token (fields[1], token->digest);
		g_ptr_array_add (auth->tokens, token);
	}
	if (auth->tokens->len == 0) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			     _("admin token file %s holds no token"), path);
		return FALSE;
	}
	return TRUE;
}

ScAdminAuth *
sc_admin_auth_new (const char *token_file, GError **error)
{
	ScAdminAuth *auth = g_new0 (ScAdminAuth, 1);

	auth->tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) token_free);
	auth->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						(GDestroyNotify) session_free);
	if (!random_bytes (auth->secret, sizeof auth->secret, error)) {
		sc_admin_auth_free (auth);
		return NULL;
	}
	if (token_file != NULL) {
		auth->required = TRUE;
		if (!load_tokens (auth, token_file, error)) {
			sc_admin_auth_free (auth);
			return NULL;
		}
	}
	return auth;
}

void
sc_admin_auth_free (ScAdminAuth *auth)
{
	if (auth == NULL)
		return;
	g_ptr_array_unref (auth->tokens);
	g_hash_table_unref (auth->sessions);
	memset (auth->secret, 0, sizeof auth->secret);
	g_free (auth);
}

gboolean
sc_admin_auth_required (ScAdminAuth *auth)
{
	return auth->required;
}

/* (nullable) the NAME of @presented; every token is compared, match or not */
static const char *
find_token (ScAdminAuth *auth, const char *presented)
{
	guint8 digest[32];
	const char *found = NULL;

	digest_token (presented, digest);
	for (guint i = 0; i < auth->tokens->len; i++) {
		ScAdminToken *token = auth->tokens->pdata[i];
		if (equal_constant_time (token->digest, digest, sizeof digest) && found == NULL)
			found = token->name;
	}
	return found;
}

static char *
session_cookie (SoupServerMessage *message)
{
	const char *header = soup_message_headers_get_one (soup_server_message_get_request_headers (message),
							   "Cookie");
	GHashTable *cookies;
	char *value = NULL;

	if (header == NULL)
		return NULL;
	cookies = soup_header_parse_semi_param_list (header);
	value = g_strdup (g_hash_table_lookup (cookies, SC_ADMIN_SESSION_COOKIE));
	soup_header_free_param_list (cookies);
	return value;
}

ScAdminIdentity *
sc_admin_auth_identify (ScAdminAuth *auth, SoupServerMessage *message, gint64 now)
{
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);
	const char *authorization = soup_message_headers_get_one (headers, "Authorization");
	g_autoptr(ScAdminIdentity) identity = g_new0 (ScAdminIdentity, 1);
	g_autofree char *session_id = NULL;

	if (authorization != NULL && g_ascii_strncasecmp (authorization, "Bearer ", 7) == 0) {
		const char *name;
		if (!auth->required) {
			/* no tokens to check: a Bearer header is still not a browser's */
			identity->actor = g_strdup ("local");
			identity->bearer = TRUE;
			return g_steal_pointer (&identity);
		}
		name = find_token (auth, authorization + 7);
		if (name == NULL)
			return NULL;
		identity->actor = g_strdup (name);
		identity->bearer = TRUE;
		return g_steal_pointer (&identity);
	}
	session_id = session_cookie (message);
	if (session_id != NULL) {
		ScAdminSession *session = g_hash_table_lookup (auth->sessions, session_id);
		if (session != NULL && session->expires_at > now) {
			identity->actor = g_strdup (session->actor);
			identity->session_id = g_steal_pointer (&session_id);
			return g_steal_pointer (&identity);
		}
		if (session != NULL)
			g_hash_table_remove (auth->sessions, session_id);
	}
	if (auth->required)
		return NULL;
	identity->actor = g_strdup ("local");
	return g_steal_pointer (&identity);
}

char *
sc_admin_auth_csrf_token (ScAdminAuth *auth, const ScAdminIdentity *identity)
{
	g_autofree char *subject = g_strconcat ("csrf:",
						identity->session_id != NULL ? identity->session_id : "",
						":",
						identity->actor,
						NULL);

	return g_compute_hmac_for_string (G_CHECKSUM_SHA256, auth->secret, sizeof auth->secret, subject, -1);
}

gboolean
sc_admin_auth_check_csrf (ScAdminAuth *auth, const ScAdminIdentity *identity, SoupServerMessage *message)
{
	const char *presented = soup_message_headers_get_one (soup_server_message_get_request_headers (message),
							      "X-CSRF-Token");
	g_autofree char *expected = NULL;

	/* a Bearer header is never sent by a browser on its own */
	if (identity->bearer)
		return TRUE;
	if (presented == NULL)
		return FALSE;
	expected = sc_admin_auth_csrf_token (auth, identity);
	return equal_strings_constant_time (presented, expected);
}

static void
forget_expired (ScAdminAuth *auth, gint64 now)
{
	GHashTableIter iter;
	ScAdminSession *session;

	g_hash_table_iter_init (&iter, auth->sessions);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &session)) {
		if (session->expires_at <= now)
			g_hash_table_iter_remove (&iter);
	}
}

/* A relative Location: never one built from the request's Host header. */
static void
redirect_home (SoupServerMessage *message)
{
	soup_server_message_set_status (message, SOUP_STATUS_SEE_OTHER, NULL);
	soup_message_headers_replace (soup_server_message_get_response_headers (message), "Location", "/");
}

/* A page of our own, in case the dashboard is not compiled in: no script,
 * so the CSP needs no exception. */
static void
reply_login_page (SoupServerMessage *message, guint status, const char *problem)
{
	g_autofree char *title = g_markup_escape_text (_("stagecoach administration"), -1);
	g_autofree char *label = g_markup_escape_text (_("Admin token"), -1);
	g_autofree char *submit = g_markup_escape_text (_("Log in"), -1);
	g_autofree char *escaped_problem = problem != NULL ? g_markup_escape_text (problem, -1) : NULL;
	g_autofree char *page = g_strdup_printf (
	    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
	    "<body><h1>%s</h1>%s%s%s\n"
	    "<form method=\"post\" action=\"/login\"><label>%s "
	    "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> "
	    "<button type=\"submit\">%s</button></form></body></html>\n",
	    title, title,
	    escaped_problem != NULL ? "<p role=\"alert\">" : "",
	    escaped_problem != NULL ? escaped_problem : "",
	    escaped_problem != NULL ? "</p>" : "",
	    label, submit);

	sc_admin_reply_text (message, status, "text/html; charset=utf-8", page);
}

void
sc_admin_auth_handle_login (ScAdminServer *server, SoupServerMessage *message)
{
	ScAdminAuth *auth = server->auth;
	const char *method = soup_server_message_get_method (message);
	SoupMessageBody *body = soup_server_message_get_request_body (message);
	gint64 now = sc_clock_now (server->clock);
	GHashTable *form = NULL;
	const char *name = NULL;
	g_autofree char *flat = NULL;
	g_autofree char *session_id = NULL;
	g_autofree char *cookie = NULL;
	ScAdminSession *session;
	gboolean secure;
	g_autoptr(GError) error_local = NULL;

	if (strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0) {
		reply_login_page (message, SOUP_STATUS_OK, NULL);
		return;
	}
	if (strcmp (method, "POST") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_METHOD_NOT_ALLOWED, _("method not allowed"));
		return;
	}
	if (!auth->required) {
		redirect_home (message);
		return;
	}
	flat = g_strndup (body->data != NULL ? body->data : "", body->length);
	form = soup_form_decode (flat);
	if (g_hash_table_lookup (form, "token") != NULL)
		name = find_token (auth, g_hash_table_lookup (form, "token"));
	g_hash_table_unref (form);
	if (name == NULL) {
		g_message ("admin login refused from %s", soup_server_message_get_remote_host (message));
		reply_login_page (message, SOUP_STATUS_UNAUTHORIZED, _("That token is not valid."));
		return;
	}

	forget_expired (auth, now);
	if (g_hash_table_size (auth->sessions) >= SESSIONS_MAX) {
		sc_admin_reply_error (message, SOUP_STATUS_SERVICE_UNAVAILABLE, _("too many sessions"));
		return;
	}
	session_id = random_hex (32, &error_local);
	if (session_id == NULL) {
		g_warning ("admin login: %s", error_local->message);
		sc_admin_reply_error (message, SOUP_STATUS_INTERNAL_SERVER_ERROR, error_local->message);
		return;
	}
	session = g_new0 (ScAdminSession, 1);
	session->actor = g_strdup (name);
	session->expires_at = now + SESSION_LIFETIME;
	g_hash_table_insert (auth->sessions, g_strdup (session_id), session);
	g_message ("admin login of %s from %s", name, soup_server_message_get_remote_host (message));

	secure = server->config->admin_public_url != NULL &&
		 g_str_has_prefix (server->config->admin_public_url, "https:");
	cookie = g_strdup_printf ("%s=%s; Path=/; Max-Age=%" G_GINT64_FORMAT "; HttpOnly; SameSite=Strict%s",
				  SC_ADMIN_SESSION_COOKIE,
				  session_id,
				  SESSION_LIFETIME / G_USEC_PER_SEC,
				  secure ? "; Secure" : "");
	soup_message_headers_append (soup_server_message_get_response_headers (message), "Set-Cookie", cookie);
	redirect_home (message);
}

void
sc_admin_auth_handle_logout (ScAdminServer *server, SoupServerMessage *message)
{
	ScAdminAuth *auth = server->auth;
	g_autoptr(ScAdminIdentity) identity = NULL;
	g_autofree char *cookie = NULL;

	if (strcmp (soup_server_message_get_method (message), "POST") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_METHOD_NOT_ALLOWED, _("method not allowed"));
		return;
	}
	identity = sc_admin_auth_identify (auth, message, sc_clock_now (server->clock));
	if (identity == NULL) {
		sc_admin_reply_error (message, SOUP_STATUS_UNAUTHORIZED, _("authentication required"));
		return;
	}
	if (!sc_admin_auth_check_csrf (auth, identity, message)) {
		sc_admin_reply_error (message, SOUP_STATUS_FORBIDDEN, _("missing or wrong X-CSRF-Token header"));
		return;
	}
	if (identity->session_id != NULL)
		g_hash_table_remove (auth->sessions, identity->session_id);
	cookie = g_strdup_printf ("%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict", SC_ADMIN_SESSION_COOKIE);
	soup_message_headers_append (soup_server_message_get_response_headers (message), "Set-Cookie", cookie);
	redirect_home (message);
}
