/* sc-admin-server.c — the admin HTTP server: listening, routing, the
 * security headers every response carries, and the dashboard's assets
 * from the compiled-in GResource /org/stagecoach/dashboard/ (its strings in
 * the reader's language: sc-admin-i18n.c).
 *
 * One early handler sees every request once its headers are in, before
 * the body is read: the peer, the Host, the Origin, the caller's identity
 * (token or session), the CSRF token and the body's announced size are
 * checked there, so no path can be answered without them and nothing
 * unauthenticated or oversized is ever read.  Each connection carries one
 * request and must send it in time (header and body deadlines).  It must never serve
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

/* seconds: the request line and headers must be in this soon after the
 * connection (or the previous request), the body this soon after them;
 * any single read or write may wait at most the idle timeout */
#define SC_ADMIN_HEADER_TIMEOUT 10
#define SC_ADMIN_BODY_TIMEOUT 30
#define SC_ADMIN_IDLE_TIMEOUT 60

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
sc_admin_reply_error_code (SoupServerMessage *message, guint status, const char *code, const char *text)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(JsonNode) node = NULL;

	json_builder_begin_object (builder);
	json_builder_set_member_name (builder, "error");
	json_builder_add_string_value (builder, text);
	if (code != NULL) {
		json_builder_set_member_name (builder, "code");
		json_builder_add_string_value (builder, code);
	}
	json_builder_end_object (builder);
	node = json_builder_get_root (builder);
	sc_admin_reply_json (message, status, node);
}

void
sc_admin_reply_error (SoupServerMessage *message, guint status, const char *text)
{
	sc_admin_reply_error_code (message, status, NULL, text);
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

/* The Host a request names, without port or brackets, lower case. */
static char *
request_host (SoupServerMessage *message)
{
	const char *host = soup_message_headers_get_one (soup_server_message_get_request_headers (message),
							 "Host");
	g_autofree char *name = NULL;

	if (host == NULL)
		return NULL;
	if (host[0] == '[') {
		const char *end = strchr (host, ']');
		if (end == NULL)
			return g_strdup ("");
		name = g_strndup (host + 1, end - host - 1);
	} else {
		const char *colon = strrchr (host, ':');
		name = colon != NULL ? g_strndup (host, colon - host) : g_strdup (host);
	}
	return g_ascii_strdown (name, -1);
}

/* A page can point a name it controls at this server (DNS rebinding) and
 * read the API with the victim's cookie: only names meant for this server
 * are served, token or not.  An address literal is fine when it is
 * loopback or the very address the connection came in on. */
static gboolean
host_is_allowed (ScAdminServer *server, SoupServerMessage *message)
{
	g_autofree char *name = request_host (message);
	g_autoptr(GInetAddress) address = NULL;

	if (name == NULL)
		return TRUE; /* HTTP/1.0 from a local tool; browsers always send Host */
	if (g_strv_contains ((const char *const *) server->hosts, name))
		return TRUE;
	address = g_inet_address_new_from_string (name);
	if (address == NULL)
		return FALSE;
	if (g_inet_address_get_is_loopback (address))
		return TRUE;
	{
		GSocketAddress *local = soup_server_message_get_local_address (message);
		if (local != NULL && G_IS_INET_SOCKET_ADDRESS (local))
			return g_inet_address_equal (address,
						     g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local)));
	}
	return FALSE;
}

/* Bound to loopback means meant for this machine only, whatever a reload
 * says: a peer from elsewhere is refused outright. */
static gboolean
peer_is_allowed (ScAdminServer *server, SoupServerMessage *message)
{
	GSocketAddress *remote = soup_server_message_get_remote_address (message);

	if (!server->loopback_only)
		return TRUE;
	return remote != NULL && G_IS_INET_SOCKET_ADDRESS (remote) &&
	       g_inet_address_get_is_loopback (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
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

/* ---- deadlines: a request is read in time or dropped ---- */

typedef struct {
	SoupServerMessage *message; /* (unowned) the deadline dies with it */
	guint source_id;
} ScAdminDeadline;

#define DEADLINE_KEY "sc-admin-deadline"

static void
deadline_free (ScAdminDeadline *deadline)
{
	if (deadline->source_id != 0)
		g_source_remove (deadline->source_id);
	g_free (deadline);
}

static gboolean
deadline_cb (gpointer user_data)
{
	ScAdminDeadline *deadline = user_data;
	GSocket *socket = soup_server_message_get_socket (deadline->message);

	deadline->source_id = 0;
	/* libsoup then reads end-of-file, gives up on the request and closes
	 * the connection itself (closing the descriptor under it would not be
	 * safe) */
	if (socket != NULL && !g_socket_is_closed (socket)) {
		g_debug ("admin: dropping a request from %s that was not sent in time",
			 soup_server_message_get_remote_host (deadline->message));
		g_socket_shutdown (socket, TRUE, TRUE, NULL);
	}
	return G_SOURCE_REMOVE;
}

/* @seconds 0: no deadline any more (the request is in). */
static void
set_deadline (SoupServerMessage *message, guint seconds)
{
	ScAdminDeadline *deadline;

	if (seconds == 0) {
		g_object_set_data (G_OBJECT (message), DEADLINE_KEY, NULL);
		return;
	}
	deadline = g_new0 (ScAdminDeadline, 1);
	deadline->message = message;
	deadline->source_id = g_timeout_add_seconds (seconds, deadline_cb, deadline);
	g_object_set_data_full (G_OBJECT (message), DEADLINE_KEY, deadline, (GDestroyNotify) deadline_free);
}

static void
request_started_cb (SoupServer *soup, SoupServerMessage *message, gpointer user_data)
{
	GSocket *socket = soup_server_message_get_socket (message);

	/* any read or write that waits this long fails (a stalled reader of a
	 * download, a client that went away without a word) */
	if (socket != NULL)
		g_socket_set_timeout (socket, SC_ADMIN_IDLE_TIMEOUT);
	set_deadline (message, SC_ADMIN_HEADER_TIMEOUT);
	/* one request per connection, answers libsoup makes itself included:
	 * libsoup 3.2 keeps every keep-alive connection its client closed
	 * (CLOSE-WAIT) until the process runs out of descriptors (fixed
	 * upstream in 3.3) */
	soup_message_headers_replace (soup_server_message_get_response_headers (message), "Connection", "close");
}

/* ---- refusing before the body is read ---- */

goffset
sc_admin_announced_body (SoupServerMessage *message)
{
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);

	switch (soup_message_headers_get_encoding (headers)) {
	case SOUP_ENCODING_CONTENT_LENGTH:
		return soup_message_headers_get_content_length (headers);
	case SOUP_ENCODING_NONE:
		return 0;
	default:
		return -1;
	}
}

static void
append_header (const char *name, const char *value, gpointer user_data)
{
	GString *head = user_data;

	if (g_ascii_strcasecmp (name, "Content-Length") == 0 ||
	    g_ascii_strcasecmp (name, "Transfer-Encoding") == 0 ||
	    g_ascii_strcasecmp (name, "Connection") == 0)
		return;
	g_string_append_printf (head, "%s: %s\r\n", name, value);
}

/* The answer already set on @message, written on the stolen connection,
 * which is then closed: libsoup would otherwise read the whole body first. */
static gboolean
send_refusal_cb (gpointer user_data)
{
	SoupServerMessage *message = user_data;
	SoupMessageBody *body = soup_server_message_get_response_body (message);
	g_autoptr(GBytes) content = soup_message_body_flatten (body);
	guint status = soup_server_message_get_status (message);
	g_autoptr(GString) head = g_string_new (NULL);
	g_autoptr(GIOStream) stream = NULL;
	GOutputStream *out;
	gsize size = 0;
	gconstpointer data = g_bytes_get_data (content, &size);

	g_string_append_printf (head, "HTTP/1.1 %u %s\r\n", status,
				status == SC_ADMIN_STATUS_TOO_MANY_REQUESTS ? "Too Many Requests"
									    : soup_status_get_phrase (status));
	soup_message_headers_foreach (soup_server_message_get_response_headers (message), append_header, head);
	g_string_append_printf (head, "Content-Length: %" G_GSIZE_FORMAT "\r\nConnection: close\r\n\r\n", size);
	stream = soup_server_message_steal_connection (message);
	if (stream == NULL)
		return G_SOURCE_REMOVE;
	out = g_io_stream_get_output_stream (stream);
	/* small, on a connection that has sent nothing yet: the socket buffer
	 * takes it at once (and the idle timeout bounds it anyway) */
	if (g_output_stream_write_all (out, head->str, head->len, NULL, NULL, NULL) && size > 0)
		g_output_stream_write_all (out, data, size, NULL, NULL, NULL);
	g_io_stream_close (stream, NULL, NULL);
	return G_SOURCE_REMOVE;
}

/* Sends the answer already set on @message from the headers alone.  A
 * body announced is never read. */
static void
refuse_as_set (SoupServerMessage *message)
{
	set_deadline (message, 0);
	if (sc_admin_announced_body (message) != 0) {
		soup_server_message_pause (message);
		g_idle_add_full (G_PRIORITY_DEFAULT, send_refusal_cb, g_object_ref (message), g_object_unref);
	}
}

static void
refuse (SoupServerMessage *message, guint status, const char *text)
{
	sc_admin_reply_error (message, status, text);
	refuse_as_set (message);
}

static void
set_retry_after (SoupServerMessage *message, guint seconds)
{
	g_autofree char *value = g_strdup_printf ("%u", seconds);

	soup_message_headers_replace (soup_server_message_get_response_headers (message), "Retry-After", value);
}

void
sc_admin_reply_slow_down (SoupServerMessage *message, guint seconds)
{
	set_retry_after (message, seconds);
	sc_admin_reply_error (message, SC_ADMIN_STATUS_TOO_MANY_REQUESTS,
			      _("too many failed attempts from your address: try again later"));
}

static void
refuse_slow_down (SoupServerMessage *message, guint seconds)
{
	set_retry_after (message, seconds);
	refuse (message, SC_ADMIN_STATUS_TOO_MANY_REQUESTS,
		_("too many failed attempts from your address: try again later"));
}

/* FALSE (and refused) when the body is not announced or over @max. */
static gboolean
check_length (SoupServerMessage *message, goffset length, goffset max)
{
	if (length < 0) {
		refuse (message, SOUP_STATUS_LENGTH_REQUIRED, _("a request body needs a Content-Length"));
		return FALSE;
	}
	if (length > max) {
		refuse (message, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, _("request body too large"));
		return FALSE;
	}
	return TRUE;
}

static gboolean
is_inject (SoupServerMessage *message, const char *path)
{
	return method_is (message, "POST") && strcmp (path, SC_ADMIN_INJECT_PATH) == 0;
}

static gboolean
is_public_path (const char *path)
{
	return strcmp (path, "/healthz") == 0 || strcmp (path, "/login") == 0 || strcmp (path, "/") == 0 ||
	       strcmp (path, "/index.html") == 0 || g_str_has_prefix (path, "/static/") ||
	       strcmp (path, SC_ADMIN_I18N_PATH) == 0;
}

/* Everything that can be decided from the headers is, here, before the
 * body is read: who may ask, from where, under which name, how much. */
static void
early_cb (SoupServer *soup,
	  SoupServerMessage *message,
	  const char *path,
	  GHashTable *query,
	  gpointer user_data)
{
	ScAdminServer *server = user_data;
	SoupMessageHeaders *response_headers = soup_server_message_get_response_headers (message);
	gboolean login = strcmp (path, "/login") == 0;
	gboolean inject = is_inject (message, path);
	goffset length = sc_admin_announced_body (message);
	ScAdminIdentity *identity;
	guint wait = 0;

	set_deadline (message, SC_ADMIN_BODY_TIMEOUT);
	add_security_headers (message);
	if (g_str_has_prefix (path, "/api/") || strcmp (path, "/metrics") == 0 || login)
		soup_message_headers_replace (response_headers, "Cache-Control", "no-store");

	if (!peer_is_allowed (server, message)) {
		refuse (message, SOUP_STATUS_FORBIDDEN, _("this admin server answers only to this machine"));
		return;
	}
	if (!host_is_allowed (server, message)) {
		refuse (message, SOUP_STATUS_FORBIDDEN,
			_("this admin server does not answer to that host name (see allowed-hosts)"));
		return;
	}
	if (method_changes_state (message) && !origin_is_same (message)) {
		refuse (message, SOUP_STATUS_FORBIDDEN, _("cross-origin request refused"));
		return;
	}
	if (is_public_path (path)) {
		if (!check_length (message, length, login ? SC_ADMIN_LOGIN_BODY_MAX : SC_ADMIN_BODY_MAX))
			return;
		if (login && method_is (message, "POST")) {
			wait = sc_admin_auth_login_wait (server->auth, message, sc_clock_now (server->clock));
			if (wait > 0)
				refuse_slow_down (message, wait);
		}
		return;
	}

	/* who asks, before a byte of what they send is read */
	identity = sc_admin_auth_identify (server->auth, message, sc_clock_now (server->clock), &wait);
	if (identity == NULL) {
		if (wait > 0) {
			refuse_slow_down (message, wait);
			return;
		}
		soup_message_headers_replace (response_headers, "WWW-Authenticate", "Bearer realm=\"stagecoach\"");
		refuse (message, SOUP_STATUS_UNAUTHORIZED, _("authentication required"));
		return;
	}
	g_object_set_data_full (G_OBJECT (message), SC_ADMIN_IDENTITY_KEY, identity,
				(GDestroyNotify) sc_admin_identity_free);
	/* list software's token hands in mail and does nothing else */
	if (identity->inject_only && !inject) {
		refuse (message, SOUP_STATUS_FORBIDDEN,
			_("this token may only hand in mail (POST /api/v1/messages)"));
		return;
	}
	if (inject) {
		/* its own rules: Bearer only, max-message-size, the envelope */
		if (!sc_admin_inject_check_headers (server, message, identity))
			refuse_as_set (message);
		return;
	}
	if (!check_length (message, length, SC_ADMIN_BODY_MAX))
		return;
	if (method_changes_state (message) && !sc_admin_auth_check_csrf (server->auth, identity, message)) {
		refuse (message, SOUP_STATUS_FORBIDDEN, _("missing or wrong X-CSRF-Token header"));
		return;
	}
}

/* The body is in (within its cap) and the caller is known: route. */
static void
server_cb (SoupServer *soup,
	   SoupServerMessage *message,
	   const char *path,
	   GHashTable *query,
	   gpointer user_data)
{
	ScAdminServer *server = user_data;
	const ScAdminIdentity *identity = g_object_get_data (G_OBJECT (message), SC_ADMIN_IDENTITY_KEY);
	gboolean api = g_str_has_prefix (path, "/api/");

	set_deadline (message, 0);
	/* open to everyone: liveness, the login form, the (secret-free) assets */
	if (strcmp (path, "/healthz") == 0) {
		sc_admin_reply_text (message, SOUP_STATUS_OK, "text/plain; charset=utf-8", "ok\n");
		return;
	}
	if (strcmp (path, "/login") == 0) {
		sc_admin_auth_handle_login (server, message);
		return;
	}
	/* the dashboard's strings: the login page needs them too */
	if (strcmp (path, SC_ADMIN_I18N_PATH) == 0) {
		sc_admin_i18n_handle (message);
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
	/* never without an identity, whatever path led here */
	if (identity == NULL) {
		sc_admin_reply_error (message, SOUP_STATUS_UNAUTHORIZED, _("authentication required"));
		return;
	}
	if (identity->inject_only && !is_inject (message, path)) {
		sc_admin_reply_error (message, SOUP_STATUS_FORBIDDEN,
				      _("this token may only hand in mail (POST /api/v1/messages)"));
		return;
	}
	if (strcmp (path, "/logout") == 0) {
		sc_admin_auth_handle_logout (server, message);
		return;
	}
	if (!api && strcmp (path, "/metrics") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
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

/* The Host names served by default: localhost, this machine's name, the
 * listen address's name, public-url's host, and allowed-hosts. */
static GStrv
allowed_hosts (const ScConfig *config)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
	g_autofree char *hostname = g_ascii_strdown (g_get_host_name (), -1);
	const char *dot = strchr (hostname, '.');
	g_autofree char *short_name = dot != NULL ? g_strndup (hostname, dot - hostname) : NULL;

	g_strv_builder_add (builder, "localhost");
	g_strv_builder_add (builder, hostname);
	if (short_name != NULL)
		g_strv_builder_add (builder, short_name);
	if (config->admin_listen != NULL) {
		const char *colon = strrchr (config->admin_listen, ':');
		if (colon != NULL) {
			g_autofree char *host = g_strndup (config->admin_listen, colon - config->admin_listen);
			g_autofree char *lower = g_ascii_strdown (host, -1);
			g_strv_builder_add (builder, lower);
		}
	}
	if (config->admin_public_url != NULL) {
		g_autoptr(GUri) uri = g_uri_parse (config->admin_public_url, G_URI_FLAGS_NONE, NULL);
		if (uri != NULL && g_uri_get_host (uri) != NULL) {
			g_autofree char *lower = g_ascii_strdown (g_uri_get_host (uri), -1);
			g_strv_builder_add (builder, lower);
		}
	}
	if (config->admin_allowed_hosts != NULL)
		g_strv_builder_addv (builder, (const char **) config->admin_allowed_hosts);
	return g_strv_builder_end (builder);
}

ScAdminServer *
sc_admin_server_new (ScConfig *config, ScSpool *spool, ScClock *clock, GError **error)
{
	g_autoptr(ScAdminServer) server = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	GSList *uris;
	g_autofree char *listening = NULL;

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
	server->hosts = allowed_hosts (config);
	server->auth = sc_admin_auth_new (config, error);
	if (server->auth == NULL)
		return NULL;
	address = parse_listen (config->admin_listen, error);
	if (address == NULL)
		return NULL;
	server->loopback_only =
	    g_inet_address_get_is_loopback (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)));
	server->soup = soup_server_new ("server-header", "stagecoach", NULL);
	g_signal_connect (server->soup, "request-started", G_CALLBACK (request_started_cb), server);
	soup_server_add_early_handler (server->soup, NULL, early_cb, server, NULL);
	soup_server_add_handler (server->soup, NULL, server_cb, server, NULL);
	if (!soup_server_listen (server->soup, address, 0, error)) {
		g_prefix_error (error, _("cannot listen on %s: "), config->admin_listen);
		return NULL;
	}
	uris = soup_server_get_uris (server->soup);
	if (uris != NULL) {
		server->port = (guint16) g_uri_get_port (uris->data);
		listening = g_uri_to_string (uris->data);
	}
	g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
	/* the address as bound (port 0 picks one); where the token is, never
	 * the token: `stagecoach admin-url` reads it */
	g_message ("admin dashboard listening on %s; log in with a token from %s "
		   "(`stagecoach admin-url` prints a login link)",
		   listening != NULL ? listening : config->admin_listen, sc_admin_auth_token_path (server->auth));
	return g_steal_pointer (&server);
}

void
sc_admin_server_free (ScAdminServer *server)
{
	if (server == NULL)
		return;
	sc_admin_api_stop_bulk (server);
	if (server->soup != NULL) {
		g_signal_handlers_disconnect_by_data (server->soup, server);
		soup_server_disconnect (server->soup);
		g_object_unref (server->soup);
	}
	g_clear_pointer (&server->auth, sc_admin_auth_free);
	g_clear_pointer (&server->metrics, sc_admin_metrics_free);
	g_clear_pointer (&server->config, sc_config_unref);
	g_clear_pointer (&server->clock, sc_clock_unref);
	g_strfreev (server->hosts);
	g_free (server);
}

guint16
sc_admin_server_get_port (ScAdminServer *server)
{
	g_return_val_if_fail (server != NULL, 0);
	return server->port;
}

void
sc_admin_server_set_acceptor (ScAdminServer *server, ScAcceptor *acceptor)
{
	g_return_if_fail (server != NULL);
	server->acceptor_gone = acceptor == NULL && server->acceptor != NULL;
	server->acceptor = acceptor;
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
	/* the socket stays what it is: rules made for another address must
	 * never guard it (a public socket with loopback rules) */
	if (g_strcmp0 (config->admin_listen, server->config->admin_listen) != 0) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			     _("the listen address changed from %s to %s: that takes a restart"),
			     server->config->admin_listen,
			     config->admin_listen != NULL ? config->admin_listen : _("(none)"));
		return FALSE;
	}
	auth = sc_admin_auth_new (config, error);
	if (auth == NULL)
		return FALSE; /* keep the old tokens rather than open the door */
	sc_admin_auth_free (server->auth);
	server->auth = auth;
	g_strfreev (server->hosts);
	server->hosts = allowed_hosts (config);
	sc_config_unref (server->config);
	server->config = sc_config_ref (config);
	return TRUE;
}
