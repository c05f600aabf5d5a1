/* sc-admin-server.c — the admin HTTP server: listening, routing, the
 * security headers every response carries, and the dashboard's assets
 * from the compiled-in GResource /org/stagecoach/dashboard/.
 *
 * One SoupServer handler sees every request, so no path can be answered
 * without the headers and the authentication check.  It must never serve
 * anything from the file system or the network, never answer the API
 * without an identity, never let a state-changing request through without
 * CSRF protection, and never block the main context for long (the spool
 * reads it makes are indexed and bounded).
 */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

/* data/stagecoach.gresource.xml, compiled in (c_name: sc) */
GResource *sc_get_resource (void);

#include "sc-admin-private.h"
#include "sc-i18n.h"

#define RESOURCE_ROOT "/org/stagecoach/dashboard/"

static const char content_security_policy[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

void
sc_admin_identity_free (ScAdminIdentity *identity)
{
	if (identity == NULL)
		return;
	g_free (identity->actor);
	g_free (identity->session_id);
	g_free (identity);
}

void
sc_admin_reply_text (SoupServerMessage *message, guint status, const char *content_type, const char *text)
{
	soup_server_message_set_status (message, status, NULL);
	soup_server_message_set_response (message, content_type, SOUP_MEMORY_COPY, text, strlen (text));
}

void
sc_admin_reply_json (SoupServerMessage *message, guint status, JsonNode *node)
{
	g_autoptr(JsonGenerator) generator = json_generator_new ();
	gsize length = 0;
	char *text;

	json_generator_set_root (generator, node);
	text = json_generator_to_data (generator, &length);
	soup_server_message_set_status (message, status, NULL);
	soup_server_message_set_response (message, "application/json", SOUP_MEMORY_TAKE, text, length);
}

void
sc_admin_reply_error (SoupServerMessage *message, guint status, const char *text)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(JsonNode) node = NULL;

	json_builder_begin_object (builder);
	json_builder_set_member_name (builder, "error");
	json_builder_add_string_value (builder, text);
	json_builder_end_object (builder);
	node = json_builder_get_root (builder);
	sc_admin_reply_json (message, status, node);
}

static void
add_security_headers (SoupServerMessage *message)
{
	SoupMessageHeaders *headers = soup_server_message_get_response_headers (message);

	soup_message_headers_replace (headers, "Content-Security-Policy", content_security_policy);
	soup_message_headers_replace (headers, "X-Content-Type-Options", "nosniff");
	soup_message_headers_replace (headers, "Referrer-Policy", "no-referrer");
	soup_message_headers_replace (headers, "X-Frame-Options", "DENY");
	soup_message_headers_replace (headers, "Cross-Origin-Opener-Policy", "same-origin");
	soup_message_headers_replace (headers, "Cross-Origin-Resource-Policy", "same-origin");
}

/* Without a token file anyone who can reach the port is trusted, which is
 * only safe while "anyone" means this host.  A web page can still point a
 * name it controls at 127.0.0.1 (DNS rebinding) and read the API from the
 * browser: refuse any Host that is not a loopback name. */
static gboolean
host_is_local (SoupServerMessage *message)
{
	const char *host = soup_message_headers_get_one (soup_server_message_get_request_headers (message),
							 "Host");
	g_autofree char *name = NULL;
	g_autoptr(GInetAddress) address = NULL;

	if (host == NULL)
		return TRUE; /* HTTP/1.0 from a local tool; browsers always send Host */
	if (host[0] == '[') {
		const char *end = strchr (host, ']');
		if (end == NULL)
			return FALSE;
		name = g_strndup (host + 1, end - host - 1);
	} else {
		const char *colon = strrchr (host, ':');
		name = colon != NULL ? g_strndup (host, colon - host) : g_strdup (host);
	}
	if (g_ascii_strcasecmp (name, "localhost") == 0)
		return TRUE;
	address = g_inet_address_new_from_string (name);
	return address != NULL && g_inet_address_get_is_loopback (address);
}

/* Browsers send Origin with every cross-site POST: one that names another
 * site is refused outright, whatever token it carries. */
static gboolean
origin_is_same (SoupServerMessage *message)
{
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);
	const char *origin = soup_message_headers_get_one (headers, "Origin");
	const char *host = soup_message_headers_get_one (headers, "Host");
	g_autoptr(GUri) uri = NULL;
	g_autofree char *origin_host = NULL;

	if (origin == NULL)
		return TRUE;
	if (host == NULL)
		return FALSE;
	uri = g_uri_parse (origin, G_URI_FLAGS_NONE, NULL);
	if (uri == NULL || g_uri_get_host (uri) == NULL)
		return FALSE;
	if (strchr (g_uri_get_host (uri), ':') != NULL)
		origin_host = g_strdup_printf ("[%s]", g_uri_get_host (uri));
	else
		origin_host = g_strdup (g_uri_get_host (uri));
	if (g_uri_get_port (uri) > 0) {
		g_autofree char *with_port = g_strdup_printf ("%s:%d", origin_host, g_uri_get_port (uri));
		return g_ascii_strcasecmp (with_port, host) == 0;
	}
	return g_ascii_strcasecmp (origin_host, host) == 0;
}

static const char *
content_type_for (const char *name)
{
	if (g_str_has_suffix (name, ".html"))
		return "text/html; charset=utf-8";
	if (g_str_has_suffix (name, ".js"))
		return "text/javascript; charset=utf-8";
	if (g_str_has_suffix (name, ".css"))
		return "text/css; charset=utf-8";
	if (g_str_has_suffix (name, ".svg"))
		return "image/svg+xml";
	if (g_str_has_suffix (name, ".png"))
		return "image/png";
	if (g_str_has_suffix (name, ".ico"))
		return "image/x-icon";
	if (g_str_has_suffix (name, ".json"))
		return "application/json";
	return "application/octet-stream";
}

static void
serve_asset (SoupServerMessage *message, const char *name)
{
	g_autofree char *resource = NULL;
	g_autoptr(GBytes) bytes = NULL;
	gsize size = 0;
	gconstpointer data;

	/* one flat folder: no "..", no sub-paths, nothing but the names compiled in */
	if (*name == '\0' || strchr (name, '/') != NULL || name[0] == '.') {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
		return;
	}
	resource = g_strconcat (RESOURCE_ROOT, name, NULL);
	/* through sc_get_resource(): naming it is what links the compiled-in
	 * dashboard out of the static library into the binary */
	bytes = g_resource_lookup_data (sc_get_resource (), resource, G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
	if (bytes == NULL) {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
		return;
	}
	data = g_bytes_get_data (bytes, &size);
	soup_server_message_set_status (message, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response (message, content_type_for (name), SOUP_MEMORY_COPY, data, size);
	soup_message_headers_replace (soup_server_message_get_response_headers (message),
				      "Cache-Control",
				      "no-cache");
}

static gboolean
method_is (SoupServerMessage *message, const char *method)
{
	return strcmp (soup_server_message_get_method (message), method) == 0;
}

static gboolean
method_changes_state (SoupServerMessage *message)
{
	return !method_is (message, "GET") && !method_is (message, "HEAD") &&
	       !method_is (message, "OPTIONS");
}

static void
server_cb (SoupServer *soup,
	   SoupServerMessage *message,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	ScAdminServer *server = user_data;
	g_autoptr(ScAdminIdentity) identity = NULL;
	gboolean api = g_str_has_prefix (path, "/api/");

	add_security_headers (message);
	if (api || strcmp (path, "/metrics") == 0 || strcmp (path, "/login") == 0)
		soup_message_headers_replace (soup_server_message_get_response_headers (message),
					      "Cache-Control",
					      "no-store");
	if (!sc_admin_auth_required (server->auth) && !host_is_local (message)) {
		sc_admin_reply_error (message,
				      SOUP_STATUS_FORBIDDEN,
				      _("this admin server answers only to a loopback host name"));
		return;
	}
	if (method_changes_state (message) && !origin_is_same (message)) {
		sc_admin_reply_error (message, SOUP_STATUS_FORBIDDEN, _("cross-origin request refused"));
		return;
	}

	/* open to everyone: liveness, the login form, the (secret-free) assets */
	if (strcmp (path, "/healthz") == 0) {
		sc_admin_reply_text (message, SOUP_STATUS_OK, "text/plain; charset=utf-8", "ok\n");
		return;
	}
	if (strcmp (path, "/login") == 0) {
		sc_admin_auth_handle_login (server, message);
		return;
	}
	if (strcmp (path, "/logout") == 0) {
		sc_admin_auth_handle_logout (server, message);
		return;
	}
	if (strcmp (path, "/") == 0 || strcmp (path, "/index.html") == 0 ||
	    g_str_has_prefix (path, "/static/")) {
		if (!method_is (message, "GET") && !method_is (message, "HEAD")) {
			sc_admin_reply_error (message,
					      SOUP_STATUS_METHOD_NOT_ALLOWED,
					      _("method not allowed"));
			return;
		}
		serve_asset (message,
			     g_str_has_prefix (path, "/static/") ? path + strlen ("/static/")
								 : "index.html");
		return;
	}
	if (!api && strcmp (path, "/metrics") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
		return;
	}

	identity = sc_admin_auth_identify (server->auth, message, sc_clock_now (server->clock));
	if (identity == NULL) {
		soup_message_headers_replace (soup_server_message_get_response_headers (message),
					      "WWW-Authenticate",
					      "Bearer realm=\"stagecoach\"");
		sc_admin_reply_error (message, SOUP_STATUS_UNAUTHORIZED, _("authentication required"));
		return;
	}
	if (method_changes_state (message) &&
	    !sc_admin_auth_check_csrf (server->auth, identity, message)) {
		sc_admin_reply_error (message,
				      SOUP_STATUS_FORBIDDEN,
				      _("missing or wrong X-CSRF-Token header"));
		return;
	}
	if (strcmp (path, "/metrics") == 0) {
		if (!method_is (message, "GET") && !method_is (message, "HEAD")) {
			sc_admin_reply_error (message,
					      SOUP_STATUS_METHOD_NOT_ALLOWED,
					      _("method not allowed"));
			return;
		}
		sc_admin_metrics_handle (server, message);
		return;
	}
	if (!g_str_has_prefix (path, "/api/v1/")) {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
		return;
	}
	sc_admin_api_handle (server, message, path + strlen ("/api/v1"), query, identity);
}

static GSocketAddress *
parse_listen (const char *listen, GError **error)
{
	const char *colon = strrchr (listen, ':');
	g_autofree char *host = NULL;
	guint64 port = 0;
	g_autoptr(GInetAddress) address = NULL;

	if (colon == NULL || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			     _("admin listen address “%s” is not HOST:PORT"), listen);
		return NULL;
	}
	host = g_strndup (listen, colon - listen);
	if (host[0] == '[' && g_str_has_suffix (host, "]")) {
		char *bare = g_strndup (host + 1, strlen (host) - 2);
		g_free (host);
		host = bare;
	}
	if (g_ascii_strcasecmp (host, "localhost") == 0)
		address = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	else
		address = g_inet_address_new_from_string (host);
	if (address == NULL) {
		/* a name: resolved once, at start-up, before the loop runs */
		g_autoptr(GResolver) resolver = g_resolver_get_default ();
		g_autolist(GInetAddress) addresses = g_resolver_lookup_by_name (resolver, host, NULL, error);
		if (addresses == NULL) {
			g_prefix_error (error, _("admin listen address %s: "), listen);
			return NULL;
		}
		address = g_object_ref (addresses->data);
	}
	return g_inet_socket_address_new (address, (guint16) port);
}

ScAdminServer *
sc_admin_server_new (ScConfig *config, ScSpool *spool, ScClock *clock, GError **error)
{
	g_autoptr(ScAdminServer) server = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	GSList *uris;

	g_return_val_if_fail (config != NULL, NULL);
	g_return_val_if_fail (spool != NULL, NULL);
	g_return_val_if_fail (clock != NULL, NULL);

	if (config->admin_listen == NULL || *config->admin_listen == '\0') {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				     _("no admin listen address configured"));
		return NULL;
	}
	server = g_new0 (ScAdminServer, 1);
	server->config = sc_config_ref (config);
	server->spool = spool;
	server->clock = sc_clock_ref (clock);
	server->metrics = sc_admin_metrics_new ();
	server->auth = sc_admin_auth_new (config->admin_token_file, error);
	if (server->auth == NULL)
		return NULL;
	address = parse_listen (config->admin_listen, error);
	if (address == NULL)
		return NULL;
	server->soup = soup_server_new ("server-header", "stagecoach", NULL);
	soup_server_add_handler (server->soup, NULL, server_cb, server, NULL);
	if (!soup_server_listen (server->soup, address, 0, error)) {
		g_prefix_error (error, _("cannot listen on %s: "), config->admin_listen);
		return NULL;
	}
	uris = soup_server_get_uris (server->soup);
	if (uris != NULL)
		server->port = (guint16) g_uri_get_port (uris->data);
	g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
	g_info ("admin server listening on %s port %u", config->admin_listen, server->port);
	return g_steal_pointer (&server);
}

void
sc_admin_server_free (ScAdminServer *server)
{
	if (server == NULL)
		return;
	if (server->soup != NULL) {
		soup_server_disconnect (server->soup);
		g_object_unref (server->soup);
	}
	g_clear_pointer (&server->auth, sc_admin_auth_free);
	g_clear_pointer (&server->metrics, sc_admin_metrics_free);
	g_clear_pointer (&server->config, sc_config_unref);
	g_clear_pointer (&server->clock, sc_clock_unref);
	g_free (server);
}

guint16
sc_admin_server_get_port (ScAdminServer *server)
{
	g_return_val_if_fail (server != NULL, 0);
	return server->port;
}

void
sc_admin_server_set_kick (ScAdminServer *server, GSourceFunc func, gpointer data)
{
	g_return_if_fail (server != NULL);
	server->kick = func;
	server->kick_data = data;
}

gboolean
sc_admin_server_set_config (ScAdminServer *server, ScConfig *config, GError **error)
{
	ScAdminAuth *auth;

	g_return_val_if_fail (server != NULL, FALSE);
	g_return_val_if_fail (config != NULL, FALSE);
	auth = sc_admin_auth_new (config->admin_token_file, error);
	if (auth == NULL)
		return FALSE; /* keep the old tokens rather than open the door */
	sc_admin_auth_free (server->auth);
	server->auth = auth;
	sc_config_unref (server->config);
	server->config = sc_config_ref (config);
	return TRUE;
}
