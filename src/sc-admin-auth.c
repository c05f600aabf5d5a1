/* sc-admin-auth.c — who may use the admin server, and proof that a
 * state-changing request was meant: tokens, login sessions, CSRF tokens.
 *
 * Tokens come from the token file, one "NAME TOKEN [inject]" per line ('#'
 * starts a comment); NAME becomes the actor in the audit log.  An "inject"
 * token may only hand in mail (POST /api/v1/messages): list software gets
 * no power over the queue, and it cannot open a dashboard session.  Without a token file
 * the server makes one, SPOOL/admin-token (0600, name "admin"), at its
 * first start: there is no mode in which any local user is an admin.  A caller presents a
 * token as "Authorization: Bearer TOKEN" or logs in once with a form and
 * gets a random session id in an HttpOnly, SameSite=Strict cookie.  CSRF
 * tokens are an HMAC of the session (or "local") under a per-process
 * secret, so they need no storage and die with the process.
 *
 * Wrong tokens are logged with the peer's address ("admin authentication
 * failure from ADDRESS", for fail2ban) and slowed down per peer: a few
 * free, then a wait that doubles up to a minute, during which that peer's
 * tokens are not even looked at (429).
 *
 * This file must never log or echo a token, never compare a secret in
 * time that depends on where it differs, and never accept a cookie session
 * for a state-changing request without its CSRF token.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc-admin-private.h"
#include "sc-i18n.h"

#define SESSION_LIFETIME (12 * G_TIME_SPAN_HOUR)
#define SESSIONS_MAX 1024
#define GENERATED_TOKEN_NAME "admin"
#define FAILURES_FREE 5                              /* per peer, before any wait */
#define BACKOFF_MAX (60 * G_USEC_PER_SEC)
#define FAILURES_FORGOTTEN (15 * G_TIME_SPAN_MINUTE) /* a quiet peer starts afresh */
#define PEERS_MAX 4096

typedef struct {
	char *name;
	guint8 digest[32]; /* SHA-256 of the token: compared, never the token itself */
	gboolean inject_only;
} ScAdminToken;

typedef struct {
	char *actor;
	gint64 expires_at;
} ScAdminSession;

typedef struct {
	guint failures;      /* in a row */
	gint64 last_failure;
	gint64 slowed_until; /* its tokens are not checked before */
} ScAdminPeer;

struct _ScAdminAuth {
	GPtrArray *tokens;    /* (owned) (element-type ScAdminToken) never empty */
	char *token_path;     /* (owned) where they came from */
	GHashTable *sessions; /* (owned) session id → ScAdminSession */
	GHashTable *peers;    /* (owned) remote address → ScAdminPeer */
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
	g_auto(GStrv) triples = sc_config_read_admin_tokens (path, error);
	GStatBuf st;

	if (triples == NULL) {
		g_prefix_error (error, _("admin token file: "));
		return FALSE;
	}
	for (guint i = 0; triples[i] != NULL && triples[i + 1] != NULL && triples[i + 2] != NULL; i += 3) {
		ScAdminToken *token = g_new0 (ScAdminToken, 1);
		token->name = g_strdup (triples[i]);
		digest_token (triples[i + 1], token->digest);
		token->inject_only = strcmp (triples[i + 2], SC_ADMIN_SCOPE_INJECT) == 0;
		g_ptr_array_add (auth->tokens, token);
	}
	if (g_stat (path, &st) == 0 && (st.st_mode & 0077) != 0)
		g_warning ("admin token file %s can be read by other users (chmod 600 it)", path);
	return TRUE;
}

char *
sc_admin_token_ensure (const char *state_dir, GError **error)
{
	g_autofree char *path = g_build_filename (state_dir, SC_ADMIN_GENERATED_TOKEN_FILE, NULL);
	g_autofree char *temporary = NULL;
	g_autofree char *token = NULL;
	g_autofree char *line = NULL;
	int fd;

	if (g_file_test (path, G_FILE_TEST_EXISTS))
		return g_steal_pointer (&path);
	if (!g_file_test (state_dir, G_FILE_TEST_IS_DIR)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
			     _("the state folder %s does not exist yet (start the daemon once)"), state_dir);
		return NULL;
	}
	token = random_hex (32, error);
	if (token == NULL)
		return NULL;
	line = g_strdup_printf ("%s %s\n", GENERATED_TOKEN_NAME, token);
	/* written aside, then linked: a reader never sees half a file, and of
	 * two starting at once (the daemon, admin-url) the first one wins */
	temporary = g_strdup_printf ("%s.%d.tmp", path, (int) getpid ());
	fd = g_open (temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
			     _("cannot create %s: %s"), temporary, g_strerror (saved));
		return NULL;
	}
	if (write (fd, line, strlen (line)) != (ssize_t) strlen (line) || fsync (fd) != 0) {
		int saved = errno;
		close (fd);
		g_unlink (temporary);
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
			     _("cannot write %s: %s"), temporary, g_strerror (saved));
		return NULL;
	}
	close (fd);
	if (link (temporary, path) != 0 && errno != EEXIST) {
		int saved = errno;
		g_unlink (temporary);
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
			     _("cannot create %s: %s"), path, g_strerror (saved));
		return NULL;
	}
	g_unlink (temporary);
	return g_steal_pointer (&path);
}

char *
sc_admin_login_url (const ScConfig *config, GError **error)
{
	g_autofree char *token_path = NULL;
	g_auto(GStrv) triples = NULL;
	const char *token = NULL;
	g_autofree char *base = NULL;
	g_autofree char *escaped = NULL;

	if (config->admin_listen == NULL) {
		g_set_error_literal (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("no admin server is configured ([admin] listen is empty)"));
		return NULL;
	}
	token_path = config->admin_token_file != NULL ? g_strdup (config->admin_token_file)
						      : sc_admin_token_ensure (config->state_dir, error);
	if (token_path == NULL)
		return NULL;
	triples = sc_config_read_admin_tokens (token_path, error);
	if (triples == NULL)
		return NULL;
	/* the first token that can open the dashboard */
	for (guint i = 0; triples[i] != NULL && token == NULL; i += 3) {
		if (strcmp (triples[i + 2], SC_ADMIN_SCOPE_INJECT) != 0)
			token = triples[i + 1];
	}
	if (token == NULL) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s holds only inject tokens, which cannot log in to the dashboard"),
			     token_path);
		return NULL;
	}
	if (config->admin_public_url != NULL && *config->admin_public_url != '\0') {
		base = g_strdup (config->admin_public_url);
		while (g_str_has_suffix (base, "/"))
			base[strlen (base) - 1] = '\0';
	} else {
		const char *colon = strrchr (config->admin_listen, ':');
		g_autofree char *host = g_strndup (config->admin_listen, colon - config->admin_listen);
		g_autoptr(GInetAddress) address = NULL;

		if (host[0] == '[') {
			char *bare = g_strndup (host + 1, strlen (host) - 2);
			g_free (host);
			host = bare;
		}
		address = g_inet_address_new_from_string (host);
		/* every address: this machine's loopback is one of them */
		if (address != NULL && g_inet_address_get_is_any (address)) {
			g_free (host);
			host = g_strdup (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6 ? "::1"
												  : "127.0.0.1");
		}
		if (strchr (host, ':') != NULL)
			base = g_strdup_printf ("http://[%s]:%s", host, colon + 1);
		else
			base = g_strdup_printf ("http://%s:%s", host, colon + 1);
	}
	/* in the fragment: browsers send it to no server, log and Referer included */
	escaped = g_uri_escape_string (token, NULL, FALSE);
	return g_strdup_printf ("%s/#token=%s", base, escaped);
}

ScAdminAuth *
sc_admin_auth_new (const ScConfig *config, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	ScAdminAuth *auth = g_new0 (ScAdminAuth, 1);

	auth->tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) token_free);
	auth->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						(GDestroyNotify) session_free);
	auth->peers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	if (!random_bytes (auth->secret, sizeof auth->secret, error)) {
		sc_admin_auth_free (auth);
		return NULL;
	}
	auth->token_path = config->admin_token_file != NULL ? g_strdup (config->admin_token_file)
							    : sc_admin_token_ensure (config->state_dir, error);
	if (auth->token_path == NULL || !load_tokens (auth, auth->token_path, error)) {
		sc_admin_auth_free (auth);
		return NULL;
	}
	return auth;
}

const char *
sc_admin_auth_token_path (ScAdminAuth *auth)
{
	return auth->token_path;
}

void
sc_admin_auth_free (ScAdminAuth *auth)
{
	if (auth == NULL)
		return;
	g_ptr_array_unref (auth->tokens);
	g_hash_table_unref (auth->sessions);
	g_hash_table_unref (auth->peers);
	g_free (auth->token_path);
	memset (auth->secret, 0, sizeof auth->secret);
	g_free (auth);
}

/* ---- guessing ---- */

/* (nullable) when @remote must wait, and how long (seconds, rounded up) */
static guint
peer_wait (ScAdminAuth *auth, const char *remote, gint64 now)
{
	ScAdminPeer *peer = g_hash_table_lookup (auth->peers, remote != NULL ? remote : "");

	if (peer == NULL || peer->slowed_until <= now)
		return 0;
	return (guint) ((peer->slowed_until - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
}

static void
forget_quiet_peers (ScAdminAuth *auth, gint64 now)
{
	GHashTableIter iter;
	ScAdminPeer *peer;

	g_hash_table_iter_init (&iter, auth->peers);
	while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &peer)) {
		if (peer->last_failure + FAILURES_FORGOTTEN <= now && peer->slowed_until <= now)
			g_hash_table_iter_remove (&iter);
	}
}

static void
peer_failed (ScAdminAuth *auth, const char *remote, const char *what, gint64 now)
{
	const char *key = remote != NULL ? remote : "";
	ScAdminPeer *peer = g_hash_table_lookup (auth->peers, key);

	if (peer == NULL) {
		if (g_hash_table_size (auth->peers) >= PEERS_MAX)
			forget_quiet_peers (auth, now);
		peer = g_new0 (ScAdminPeer, 1);
		g_hash_table_insert (auth->peers, g_strdup (key), peer);
	} else if (peer->last_failure + FAILURES_FORGOTTEN <= now) {
		peer->failures = 0;
	}
	peer->failures++;
	peer->last_failure = now;
	/* one line per failure, the address where fail2ban looks for it */
	g_message ("admin authentication failure from %s: %s (%u in a row)", key, what, peer->failures);
	if (peer->failures > FAILURES_FREE) {
		guint shift = MIN (peer->failures - FAILURES_FREE - 1, 6);
		gint64 wait = MIN ((gint64) G_USEC_PER_SEC << shift, BACKOFF_MAX);
		peer->slowed_until = now + wait;
		g_message ("admin authentication from %s slowed down: next try in %" G_GINT64_FORMAT " s",
			   key, wait / G_USEC_PER_SEC);
	}
}

static void
peer_succeeded (ScAdminAuth *auth, const char *remote)
{
	g_hash_table_remove (auth->peers, remote != NULL ? remote : "");
}

/* (nullable) the entry of @presented; every token is compared, match or not */
static const ScAdminToken *
find_token (ScAdminAuth *auth, const char *presented)
{
	guint8 digest[32];
	const ScAdminToken *found = NULL;

	digest_token (presented, digest);
	for (guint i = 0; i < auth->tokens->len; i++) {
		ScAdminToken *token = auth->tokens->pdata[i];
		if (equal_constant_time (token->digest, digest, sizeof digest) && found == NULL)
			found = token;
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
sc_admin_auth_identify (ScAdminAuth *auth, SoupServerMessage *message, gint64 now, guint *out_wait)
{
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);
	const char *authorization = soup_message_headers_get_one (headers, "Authorization");
	const char *remote = soup_server_message_get_remote_host (message);
	g_autoptr(ScAdminIdentity) identity = g_new0 (ScAdminIdentity, 1);
	g_autofree char *session_id = NULL;

	*out_wait = 0;
	if (authorization != NULL && g_ascii_strncasecmp (authorization, "Bearer ", 7) == 0) {
		const ScAdminToken *token;
		*out_wait = peer_wait (auth, remote, now);
		if (*out_wait > 0)
			return NULL;
		token = find_token (auth, authorization + 7);
		if (token == NULL) {
			peer_failed (auth, remote, "wrong bearer token", now);
			return NULL;
		}
		peer_succeeded (auth, remote);
		identity->actor = g_strdup (token->name);
		identity->bearer = TRUE;
		identity->inject_only = token->inject_only;
		return g_steal_pointer (&identity);
	}
	/* a stale cookie (the daemon restarted) is no guess: 401, not counted */
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
	return NULL;
}

guint
sc_admin_auth_login_wait (ScAdminAuth *auth, SoupServerMessage *message, gint64 now)
{
	return peer_wait (auth, soup_server_message_get_remote_host (message), now);
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
 * so the CSP needs no exception.  In the language the browser asks for
 * (sc-admin-i18n.c); @problem: (nullable) a msgid. */
static void
reply_login_page (SoupServerMessage *message, guint status, const char *problem)
{
	g_autofree char *language = NULL;
	g_autoptr(ScCatalog) catalog = sc_admin_negotiate_language (
	    soup_message_headers_get_one (soup_server_message_get_request_headers (message), "Accept-Language"),
	    &language);
	g_autofree char *title = g_markup_escape_text (sc_admin_translate (catalog, N_("stagecoach administration")), -1);
	g_autofree char *label = g_markup_escape_text (sc_admin_translate (catalog, N_("Admin token")), -1);
	g_autofree char *submit = g_markup_escape_text (sc_admin_translate (catalog, N_("Log in")), -1);
	g_autofree char *escaped_problem =
	    problem != NULL ? g_markup_escape_text (sc_admin_translate (catalog, problem), -1) : NULL;
	g_autofree char *page = g_strdup_printf (
	    "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\"><title>%s</title></head>\n"
	    "<body><h1>%s</h1>%s%s%s\n"
	    "<form method=\"post\" action=\"/login\"><label>%s "
	    "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> "
	    "<button type=\"submit\">%s</button></form></body></html>\n",
	    language != NULL ? language : "en", title, title,
	    escaped_problem != NULL ? "<p role=\"alert\">" : "",
	    escaped_problem != NULL ? escaped_problem : "",
	    escaped_problem != NULL ? "</p>" : "",
	    label, submit);

	sc_admin_reply_text (message, status, "text/html; charset=utf-8", page);
	sc_admin_set_language_headers (message, language);
}

void
sc_admin_auth_handle_login (ScAdminServer *server, SoupServerMessage *message)
{
	ScAdminAuth *auth = server->auth;
	const char *method = soup_server_message_get_method (message);
	SoupMessageBody *body = soup_server_message_get_request_body (message);
	gint64 now = sc_clock_now (server->clock);
	GHashTable *form = NULL;
	const ScAdminToken *token = NULL;
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
	{
		guint wait = sc_admin_auth_login_wait (auth, message, now);
		if (wait > 0) {
			sc_admin_reply_slow_down (message, wait);
			return;
		}
	}
	flat = g_strndup (body->data != NULL ? body->data : "", body->length);
	form = soup_form_decode (flat);
	if (g_hash_table_lookup (form, "token") != NULL)
		token = find_token (auth, g_hash_table_lookup (form, "token"));
	g_hash_table_unref (form);
	if (token == NULL) {
		peer_failed (auth, soup_server_message_get_remote_host (message), "wrong login token", now);
		reply_login_page (message, SOUP_STATUS_UNAUTHORIZED, N_("That token is not valid."));
		return;
	}
	/* a right token, no guess: but one for list software, not for people */
	if (token->inject_only) {
		peer_succeeded (auth, soup_server_message_get_remote_host (message));
		reply_login_page (message, SOUP_STATUS_FORBIDDEN,
				  N_("That token may only hand in mail (POST /api/v1/messages); "
				     "it cannot open the dashboard."));
		return;
	}
	name = token->name;

	peer_succeeded (auth, soup_server_message_get_remote_host (message));
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
	const ScAdminIdentity *identity;
	g_autofree char *cookie = NULL;

	if (strcmp (soup_server_message_get_method (message), "POST") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_METHOD_NOT_ALLOWED, _("method not allowed"));
		return;
	}
	/* the server checked who and the CSRF token before the body was read */
	identity = g_object_get_data (G_OBJECT (message), SC_ADMIN_IDENTITY_KEY);
	g_return_if_fail (identity != NULL);
	if (identity->session_id != NULL)
		g_hash_table_remove (auth->sessions, identity->session_id);
	cookie = g_strdup_printf ("%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict", SC_ADMIN_SESSION_COOKIE);
	soup_message_headers_append (soup_server_message_get_response_headers (message), "Set-Cookie", cookie);
	redirect_home (message);
}
