/* test-admin-inject.c — POST /api/v1/messages (issue 8, part 2): mail
 * handed in over HTTP to the real `stagecoach run` binary on 127.0.0.1,
 * with libsoup as the client.  201 only once stored (visible to `show`),
 * tokens limited to inject, no injection on a cookie session, refusals
 * decided on the headers before the body is read (413 for a body never
 * sent), the envelope's errors as JSON, a resend not stored twice, a
 * locked spool answered 503 with Retry-After and nothing stored.  The
 * token file's scope field, and 503 from a server without an acceptor, are
 * checked in process.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>

#include "sc-admin-server.h"
#include "sc-clock.h"
#include "sc-config.h"
#include "sc-spool.h"
#include "sc-test-util.h"

#define FULL_TOKEN "ops-token-0123456789abcdef"
#define INJECT_TOKEN "mailman-token-0123456789abcdef"
#define IO_TIMEOUT 30 /* seconds: only proves an answer came, never how fast */
#define MAX_SIZE 65536

#define MESSAGE                                                                                    \
	"From: Poster <poster@example.org>\r\n"                                                   \
	"To: a@a.example.org\r\n"                                                                  \
	"Subject: over http\r\n"                                                                   \
	"Message-ID: <http-1@example.org>\r\n"                                                     \
	"Date: Mon, 01 Jun 2026 10:00:00 +0000\r\n"                                                \
	"\r\n"                                                                                     \
	"Hello over HTTP.\r\n"

typedef struct {
	char *dir;           /* (owned) */
	char *config_path;   /* (owned) */
	char *log_path;      /* (owned) */
	char *spool;         /* (owned) */
	GSubprocess *daemon; /* (owned) */
	guint16 port;
	SoupSession *session; /* (owned) */
} Fixture;

typedef struct {
	guint status;
	SoupMessageHeaders *headers; /* (owned) response headers */
	JsonObject *json;            /* (owned) (nullable) the body, when JSON */
	char *body;                  /* (owned) */
} Response;

static void
response_free (Response *response)
{
	if (response->headers != NULL)
		soup_message_headers_unref (response->headers);
	if (response->json != NULL)
		json_object_unref (response->json);
	g_free (response->body);
	g_free (response);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Response, response_free)

/* ---- the daemon ---- */

static void
write_config (Fixture *fixture, const char *extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s\nmax-message-size = %d\n"
						 "busy-timeout = 1s\n%s\n"
						 "[admin]\nlisten = 127.0.0.1:0\ntoken-file = tokens\n\n"
						 "[list:a.example.org]\npipeline = decorate;archive\n",
						 fixture->spool, MAX_SIZE, extra != NULL ? extra : "");

	g_free (fixture->config_path);
	fixture->config_path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
}

static char *
read_log (Fixture *fixture)
{
	char *text = NULL;

	if (!g_file_get_contents (fixture->log_path, &text, NULL, NULL))
		return g_strdup ("");
	return text;
}

/* The port the daemon bound (listen = 127.0.0.1:0), from its log. */
static guint16
wait_for_port (Fixture *fixture)
{
	gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

	for (;;) {
		g_autofree char *log = read_log (fixture);
		const char *line = strstr (log, "admin dashboard listening on ");
		const char *end = line != NULL ? strchr (line, ';') : NULL;

		if (end != NULL) {
			const char *text = line + strlen ("admin dashboard listening on ");
			g_autofree char *uri_text = g_strndup (text, end - text);
			g_autoptr(GUri) uri = g_uri_parse (uri_text, G_URI_FLAGS_NONE, NULL);
			g_assert_nonnull (uri); /* the bound address, as a URI */
			return (guint16) g_uri_get_port (uri);
		}
		if (g_get_monotonic_time () > deadline || g_subprocess_get_identifier (fixture->daemon) == NULL)
			g_error ("the daemon did not start:\n%s", log);
		g_usleep (20 * 1000);
	}
}

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *tokens = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-admin-inject");
	fixture->spool = g_build_filename (fixture->dir, "spool", NULL);
	fixture->log_path = g_build_filename (fixture->dir, "daemon.log", NULL);
	tokens = sc_test_write_file (fixture->dir, "tokens",
				     "# people\nops " FULL_TOKEN "\n# list software\nmailman " INJECT_TOKEN
				     " inject\n");
	g_assert_cmpint (g_chmod (tokens, 0600), ==, 0);
	write_config (fixture, user_data);
	fixture->daemon = sc_test_spawn (fixture->config_path, fixture->log_path, "run", NULL);
	fixture->port = wait_for_port (fixture);
	fixture->session = soup_session_new_with_options ("proxy-resolver", NULL, "timeout", IO_TIMEOUT, NULL);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	g_clear_object (&fixture->session);
	if (fixture->daemon != NULL) {
		g_subprocess_send_signal (fixture->daemon, SIGTERM);
		g_subprocess_wait (fixture->daemon, NULL, NULL);
		g_clear_object (&fixture->daemon);
	}
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config_path);
	g_free (fixture->log_path);
	g_free (fixture->spool);
}

/* ---- HTTP ---- */

/* @target: path and query; @token, @cookie, @content_type: (nullable) */
static Response *
http (Fixture *fixture,
      const char *method,
      const char *target,
      const char *token,
      const char *cookie,
      const char *content_type,
      const char *body)
{
	g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u%s", fixture->port, target);
	g_autoptr(SoupMessage) message = soup_message_new (method, url);
	SoupMessageHeaders *headers;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	Response *response = g_new0 (Response, 1);
	const char *type;
	gsize size = 0;

	g_assert_nonnull (message);
	headers = soup_message_get_request_headers (message);
	if (token != NULL) {
		g_autofree char *value = g_strconcat ("Bearer ", token, NULL);
		soup_message_headers_replace (headers, "Authorization", value);
	}
	if (cookie != NULL)
		soup_message_headers_replace (headers, "Cookie", cookie);
	if (body != NULL) {
		g_autoptr(GBytes) request = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (message, content_type, request);
	}
	/* the login answers 303: its Set-Cookie is what we want */
	soup_message_add_flags (message, SOUP_MESSAGE_NO_REDIRECT);
	bytes = soup_session_send_and_read (fixture->session, message, NULL, &error);
	g_assert_no_error (error);
	response->status = soup_message_get_status (message);
	response->headers = soup_message_headers_ref (soup_message_get_response_headers (message));
	response->body = g_strndup (g_bytes_get_data (bytes, &size), g_bytes_get_size (bytes));
	type = soup_message_headers_get_content_type (response->headers, NULL);
	if (g_strcmp0 (type, "application/json") == 0) {
		g_autoptr(JsonParser) parser = json_parser_new ();
		g_assert_true (json_parser_load_from_data (parser, response->body, -1, NULL));
		if (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
			response->json = json_object_ref (json_node_get_object (json_parser_get_root (parser)));
	}
	return response;
}

static Response *
inject (Fixture *fixture, const char *query, const char *token, const char *message)
{
	g_autofree char *target = g_strconcat ("/api/v1/messages?", query, NULL);

	return http (fixture, "POST", target, token, NULL, "message/rfc822", message);
}

static const char *
json_string (Response *response, const char *member)
{
	g_assert_nonnull (response->json);
	g_assert_true (json_object_has_member (response->json, member));
	return json_object_get_string_member (response->json, member);
}

static void
assert_refused (Response *response, guint status, const char *code)
{
	if (response->status != status)
		g_error ("expected %u (%s), got %u: %s", status, code, response->status, response->body);
	g_assert_cmpstr (json_string (response, "code"), ==, code);
	g_assert_cmpstr (json_string (response, "error"), !=, "");
}

static gint64
count_messages (Fixture *fixture)
{
	return sc_test_count (fixture->config_path, "total");
}

/* ---- stored, then answered ---- */

static void
test_accepted (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) response = inject (fixture,
					       "list=a.example.org&from=owner%2Bbounces@example.org"
					       "&to=one@example.net&to=two+tag@example.com",
					       FULL_TOKEN, MESSAGE);
	g_autoptr(JsonObject) shown = NULL;
	g_autofree char *location = NULL;
	JsonArray *recipients;
	const char *queue_id;

	if (response->status != SOUP_STATUS_CREATED)
		g_error ("inject: %u %s", response->status, response->body);
	queue_id = json_string (response, "queue_id");
	g_assert_cmpstr (json_string (response, "list"), ==, "a.example.org");
	g_assert_cmpstr (json_string (response, "message_id"), ==, "<http-1@example.org>");
	g_assert_cmpint (json_object_get_int_member (response->json, "recipients"), ==, 2);
	g_assert_cmpint (json_object_get_int_member (response->json, "duplicates"), ==, 0);
	location = g_strconcat ("/api/v1/messages/", queue_id, NULL);
	g_assert_cmpstr (soup_message_headers_get_one (response->headers, "Location"), ==, location);

	/* the answer came after the commit: another process sees it at once */
	shown = sc_test_show (fixture->config_path, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "a.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "owner+bounces@example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "message_id"), ==, "<http-1@example.org>");
	recipients = json_object_get_array_member (shown, "recipients");
	g_assert_cmpuint (json_array_get_length (recipients), ==, 2);
	g_assert_cmpint (count_messages (fixture), ==, 1);

	/* and the Location answers with it */
	{
		g_autoptr(Response) again = http (fixture, "GET", location, FULL_TOKEN, NULL, NULL, NULL);
		g_assert_cmpuint (again->status, ==, SOUP_STATUS_OK);
		g_assert_cmpstr (json_string (again, "id"), ==, queue_id);
	}
}

/* The null sender (from= with nothing) and routing by List-Id (no list=). */
static void
test_null_sender_routed (Fixture *fixture, gconstpointer user_data)
{
	static const char bounce[] = "From: MAILER-DAEMON@example.org\r\n"
				     "List-Id: The A list <a.example.org>\r\n"
				     "Subject: routed\r\n"
				     "Message-ID: <http-routed@example.org>\r\n\r\nbody\r\n";
	g_autoptr(Response) response = inject (fixture, "from=&to=one@example.net", INJECT_TOKEN, bounce);
	g_autoptr(JsonObject) shown = NULL;

	if (response->status != SOUP_STATUS_CREATED)
		g_error ("inject: %u %s", response->status, response->body);
	g_assert_cmpstr (json_string (response, "list"), ==, "a.example.org");
	shown = sc_test_show (fixture->config_path, json_string (response, "queue_id"));
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "");
}

/* A resend of the same post (same Message-ID, same recipient) is answered
 * but not stored again. */
static void
test_duplicate (Fixture *fixture, gconstpointer user_data)
{
	const char *query = "list=a.example.org&from=owner@example.org&to=one@example.net";
	g_autoptr(Response) first = inject (fixture, query, INJECT_TOKEN, MESSAGE);
	g_autoptr(Response) second = inject (fixture, query, INJECT_TOKEN, MESSAGE);
	g_autoptr(Response) third = inject (fixture,
					    "list=a.example.org&from=owner@example.org"
					    "&to=one@example.net&to=new@example.net",
					    INJECT_TOKEN, MESSAGE);

	g_assert_cmpuint (first->status, ==, SOUP_STATUS_CREATED);
	if (second->status != SOUP_STATUS_OK)
		g_error ("resend: %u %s", second->status, second->body);
	g_assert_true (json_object_get_null_member (second->json, "queue_id"));
	/* the caller is told where its message went the first time */
	g_assert_cmpstr (json_object_get_string_member (second->json, "duplicate_of"), ==,
			 json_object_get_string_member (first->json, "queue_id"));
	g_assert_cmpint (json_object_get_int_member (second->json, "recipients"), ==, 0);
	g_assert_cmpint (json_object_get_int_member (second->json, "duplicates"), ==, 1);
	g_assert_null (soup_message_headers_get_one (second->headers, "Location"));
	/* a resend with one new recipient: stored for that one only */
	g_assert_cmpuint (third->status, ==, SOUP_STATUS_CREATED);
	g_assert_cmpint (json_object_get_int_member (third->json, "recipients"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (third->json, "duplicates"), ==, 1);
	g_assert_cmpint (count_messages (fixture), ==, 2);
}

/* ---- who may inject ---- */

static void
test_no_token (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) none = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
					   NULL, MESSAGE);
	g_autoptr(Response) wrong = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
					    "not-a-token-0123456789abcdef", MESSAGE);

	g_assert_cmpuint (none->status, ==, SOUP_STATUS_UNAUTHORIZED);
	g_assert_nonnull (soup_message_headers_get_one (none->headers, "WWW-Authenticate"));
	g_assert_cmpuint (wrong->status, ==, SOUP_STATUS_UNAUTHORIZED);
	g_assert_cmpint (count_messages (fixture), ==, 0);
}

static void
test_inject_scope (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) injected = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
					       INJECT_TOKEN, MESSAGE);
	g_autofree char *retry = NULL;
	const char *queue_id;

	/* list software's token hands mail in ... */
	if (injected->status != SOUP_STATUS_CREATED)
		g_error ("inject: %u %s", injected->status, injected->body);
	queue_id = json_string (injected, "queue_id");
	/* ... and does nothing else */
	{
		g_autoptr(Response) list = http (fixture, "GET", "/api/v1/messages", INJECT_TOKEN, NULL, NULL, NULL);
		g_autofree char *show_path = g_strconcat ("/api/v1/messages/", queue_id, NULL);
		g_autoptr(Response) show = http (fixture, "GET", show_path, INJECT_TOKEN, NULL, NULL, NULL);
		g_autoptr(Response) metrics = http (fixture, "GET", "/metrics", INJECT_TOKEN, NULL, NULL, NULL);
		g_autoptr(Response) full = http (fixture, "GET", "/api/v1/messages", FULL_TOKEN, NULL, NULL, NULL);

		g_assert_cmpuint (list->status, ==, SOUP_STATUS_FORBIDDEN);
		g_assert_cmpuint (show->status, ==, SOUP_STATUS_FORBIDDEN);
		g_assert_cmpuint (metrics->status, ==, SOUP_STATUS_FORBIDDEN);
		g_assert_cmpuint (full->status, ==, SOUP_STATUS_OK);
	}
	retry = g_strconcat ("/api/v1/messages/", queue_id, "/retry", NULL);
	{
		g_autoptr(Response) refused = http (fixture, "POST", retry, INJECT_TOKEN, NULL, "application/json", "{}");
		g_autoptr(Response) deleted = NULL;
		g_autofree char *path = g_strconcat ("/api/v1/messages/", queue_id, NULL);

		g_assert_cmpuint (refused->status, ==, SOUP_STATUS_FORBIDDEN);
		deleted = http (fixture, "DELETE", path, INJECT_TOKEN, NULL, NULL, NULL);
		g_assert_cmpuint (deleted->status, ==, SOUP_STATUS_FORBIDDEN);
	}
	/* nor does it open the dashboard */
	{
		g_autoptr(Response) login = http (fixture, "POST", "/login", NULL, NULL,
						  "application/x-www-form-urlencoded", "token=" INJECT_TOKEN);
		g_assert_cmpuint (login->status, ==, SOUP_STATUS_FORBIDDEN);
		g_assert_null (soup_message_headers_get_one (login->headers, "Set-Cookie"));
	}
	g_assert_cmpint (count_messages (fixture), ==, 1);
}

/* A page in the operator's browser sends the session cookie on its own:
 * a cookie never injects, CSRF token or not. */
static void
test_cookie_session (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) login = http (fixture, "POST", "/login", NULL, NULL,
					  "application/x-www-form-urlencoded", "token=" FULL_TOKEN);
	const char *set_cookie = soup_message_headers_get_one (login->headers, "Set-Cookie");
	g_autofree char *cookie = NULL;
	g_autofree char *csrf_token = NULL;

	g_assert_cmpuint (login->status, ==, SOUP_STATUS_SEE_OTHER);
	g_assert_nonnull (set_cookie);
	cookie = g_strndup (set_cookie, strcspn (set_cookie, ";"));
	{
		g_autoptr(Response) csrf = http (fixture, "GET", "/api/v1/csrf", NULL, cookie, NULL, NULL);
		g_assert_cmpuint (csrf->status, ==, SOUP_STATUS_OK);
		csrf_token = g_strdup (json_string (csrf, "token"));
	}
	{
		g_autoptr(Response) plain = http (fixture, "POST",
						  "/api/v1/messages?list=a.example.org&from=a@example.org&to=b@example.org",
						  NULL, cookie, "message/rfc822", MESSAGE);
		assert_refused (plain, SOUP_STATUS_FORBIDDEN, "bearer-required");
	}
	{
		g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/api/v1/messages?list=a.example.org"
							"&from=a@example.org&to=b@example.org",
							fixture->port);
		g_autoptr(SoupMessage) message = soup_message_new ("POST", url);
		g_autoptr(GBytes) body = g_bytes_new_static (MESSAGE, strlen (MESSAGE));
		g_autoptr(GBytes) reply = NULL;
		SoupMessageHeaders *headers = soup_message_get_request_headers (message);

		soup_message_headers_replace (headers, "Cookie", cookie);
		soup_message_headers_replace (headers, "X-CSRF-Token", csrf_token);
		soup_message_set_request_body_from_bytes (message, "message/rfc822", body);
		reply = soup_session_send_and_read (fixture->session, message, NULL, NULL);
		g_assert_cmpuint (soup_message_get_status (message), ==, SOUP_STATUS_FORBIDDEN);
	}
	g_assert_cmpint (count_messages (fixture), ==, 0);
}

/* ---- refused from the headers ---- */

static GSocket *
connect_loopback (guint16 port)
{
	g_autoptr(GInetAddress) inet = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
	g_autoptr(GError) error = NULL;
	GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);

	g_assert_no_error (error);
	g_socket_set_timeout (socket, IO_TIMEOUT);
	g_socket_connect (socket, address, NULL, &error);
	g_assert_no_error (error);
	return socket;
}

/* Everything the server sends until it closes (or the timeout). */
static char *
receive_all (GSocket *socket)
{
	GString *text = g_string_new (NULL);
	char chunk[4096];
	gssize n;

	while ((n = g_socket_receive (socket, chunk, sizeof chunk, NULL, NULL)) > 0)
		g_string_append_len (text, chunk, n);
	return g_string_free (text, FALSE);
}

/* A body over max-message-size is announced and never sent: the 413 can
 * only come from the headers. */
static void
test_too_big (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GSocket) socket = connect_loopback (fixture->port);
	g_autofree char *request = g_strdup_printf ("POST /api/v1/messages?list=a.example.org&from=a@example.org"
						    "&to=b@example.org HTTP/1.1\r\nHost: 127.0.0.1\r\n"
						    "Authorization: Bearer " INJECT_TOKEN "\r\n"
						    "Content-Type: message/rfc822\r\n"
						    "Content-Length: %d\r\n\r\n",
						    MAX_SIZE + 1);
	g_autofree char *answer = NULL;
	g_autoptr(GError) error = NULL;

	g_socket_send (socket, request, strlen (request), NULL, &error);
	g_assert_no_error (error);
	answer = receive_all (socket);
	g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 413 "));
	g_assert_nonnull (strstr (answer, "\"too-big\""));
	/* at the limit it is read and goes on to the acceptor */
	{
		GString *big = g_string_new (MESSAGE);
		g_autoptr(Response) response = NULL;
		while (big->len < MAX_SIZE)
			g_string_append (big, "x\r\n");
		g_string_truncate (big, MAX_SIZE);
		response = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
				   INJECT_TOKEN, big->str);
		g_assert_cmpuint (response->status, !=, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE);
		g_string_free (big, TRUE);
	}
}

static void
test_bad_requests (Fixture *fixture, gconstpointer user_data)
{
	static const struct {
		const char *query;
		const char *content_type;
		guint status;
		const char *code;
	} cases[] = {
	    /* the envelope, from the headers */
	    {"list=a.example.org&from=a@example.org", "message/rfc822", 422, "bad-envelope"},
	    {"list=a.example.org&to=b@example.org", "message/rfc822", 422, "bad-envelope"},
	    {"list=a.example.org&from=a@example.org&to=", "message/rfc822", 422, "bad-envelope"},
	    {"list=a.example.org&from=a@example.org&rcpt=b@example.org", "message/rfc822", 400, "bad-request"},
	    {"list=a.example.org&list=b&from=a@example.org&to=b@example.org", "message/rfc822", 400, "bad-request"},
	    {"list=a.example.org&from=a@example.org&to=b@example.org", "application/x-www-form-urlencoded", 415,
	     "unsupported-media-type"},
	    /* checked by the acceptor, answered after the body */
	    {"list=a.example.org&from=a@example.org&to=not-an-address", "message/rfc822", 422, "bad-address"},
	    {"list=a.example.org&from=bad%20sender@&to=b@example.org", "message/rfc822", 422, "bad-address"},
	    {"list=nowhere.example.org&from=a@example.org&to=b@example.org", "message/rfc822", 422, "no-list"},
	    /* no list=, no List-Id, no bounces= match, no default-list */
	    {"from=a@example.org&to=b@example.org", "message/rfc822", 422, "no-list"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *target = g_strconcat ("/api/v1/messages?", cases[i].query, NULL);
		g_autoptr(Response) response = http (fixture, "POST", target, INJECT_TOKEN, NULL,
						      cases[i].content_type, MESSAGE);
		g_test_message ("%s → %u %s", cases[i].query, response->status, response->body);
		assert_refused (response, cases[i].status, cases[i].code);
	}
	/* bad %-encoding: libsoup's client will not send it, so by hand */
	{
		g_autoptr(GSocket) socket = connect_loopback (fixture->port);
		const char request[] = "POST /api/v1/messages?list=a.example.org&from=a@example.org&to=b%ZZ@x "
				       "HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " INJECT_TOKEN "\r\n"
				       "Content-Type: message/rfc822\r\nContent-Length: 5\r\n\r\nX: y\n";
		g_autofree char *answer = NULL;

		g_socket_send (socket, request, strlen (request), NULL, NULL);
		answer = receive_all (socket);
		/* libsoup refuses such a request line itself */
		g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 400 "));
	}
	/* not a message at all */
	{
		g_autoptr(Response) empty = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
						    INJECT_TOKEN, "");
		assert_refused (empty, 422, "bad-message");
	}
	g_assert_cmpint (count_messages (fixture), ==, 0);
}

/* ---- the spool cannot take it ---- */

/* Another process holds the write lock past busy-timeout: 503 with
 * Retry-After (the client keeps the message), and nothing half stored. */
static void
test_spool_locked (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = g_build_filename (fixture->spool, "spool.db", NULL);
	sqlite3 *db = NULL;
	char *message = NULL;

	g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
	/* the daemon writes now and then too (its start, prunes): wait our turn */
	sqlite3_busy_timeout (db, IO_TIMEOUT * 1000);
	if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, &message) != SQLITE_OK)
		g_error ("BEGIN IMMEDIATE: %s", message);
	{
		g_autoptr(Response) response = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
						       INJECT_TOKEN, MESSAGE);
		assert_refused (response, SOUP_STATUS_SERVICE_UNAVAILABLE, "spool-busy");
		g_assert_nonnull (soup_message_headers_get_one (response->headers, "Retry-After"));
	}
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_assert_cmpint (count_messages (fixture), ==, 0);
	/* and once the lock is gone, the same post goes in */
	{
		g_autoptr(Response) response = inject (fixture, "list=a.example.org&from=a@example.org&to=b@example.org",
						       INJECT_TOKEN, MESSAGE);
		g_assert_cmpuint (response->status, ==, SOUP_STATUS_CREATED);
	}
	g_assert_cmpint (count_messages (fixture), ==, 1);
}

/* ---- in process: the token file, a server without an acceptor ---- */

static void
test_token_file (void)
{
	g_autofree char *dir = sc_test_make_tmpdir ("sc-admin-tokens");
	static const struct {
		const char *text;
		gboolean ok;
		const char *problem;
	} cases[] = {
	    {"alice " FULL_TOKEN "\n", TRUE, NULL},                   /* the old two fields */
	    {"alice\t " FULL_TOKEN "  \n", TRUE, NULL},               /* any blanks between */
	    {"mm " INJECT_TOKEN " inject\nalice " FULL_TOKEN " full\n", TRUE, NULL},
	    {"mm " INJECT_TOKEN " injct\n", FALSE, "unknown scope “injct”"},
	    {"mm " INJECT_TOKEN " inject extra\n", FALSE, "line 1: expected"},
	    {"mm\n", FALSE, "line 1: expected"},
	    {"mm short inject\n", FALSE, "too short"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *path = sc_test_write_file (dir, "tokens", cases[i].text);
		g_autoptr(GError) error = NULL;
		g_auto(GStrv) triples = sc_config_read_admin_tokens (path, &error);

		if (!cases[i].ok) {
			g_assert_null (triples);
			g_assert_nonnull (error);
			if (strstr (error->message, cases[i].problem) == NULL)
				g_error ("“%s”: %s", cases[i].text, error->message);
			/* never the token in an error */
			g_assert_null (strstr (error->message, INJECT_TOKEN));
			continue;
		}
		g_assert_no_error (error);
		g_assert_cmpuint (g_strv_length (triples) % 3, ==, 0);
		g_assert_cmpstr (triples[2], ==, i == 2 ? "inject" : "full");
		g_assert_cmpstr (triples[1], ==, i == 2 ? INJECT_TOKEN : FULL_TOKEN);
	}
	/* the dashboard's login link never hands out an inject token */
	{
		g_autofree char *tokens = sc_test_write_file (dir, "tokens",
							      "mm " INJECT_TOKEN " inject\nops " FULL_TOKEN "\n");
		g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s/spool\n[admin]\n"
							 "listen = 127.0.0.1:8470\ntoken-file = %s\n",
							 dir, tokens);
		g_autofree char *config_path = sc_test_write_file (dir, "stagecoach.conf", text);
		g_autoptr(GError) error = NULL;
		g_autoptr(ScConfig) config = sc_config_load (config_path, &error);
		g_autofree char *url = NULL;

		g_assert_no_error (error);
		url = sc_admin_login_url (config, &error);
		g_assert_no_error (error);
		g_assert_true (g_str_has_suffix (url, "#token=" FULL_TOKEN));
		g_clear_pointer (&config, sc_config_unref);
		g_free (sc_test_write_file (dir, "tokens", "mm " INJECT_TOKEN " inject\n"));
		config = sc_config_load (config_path, &error);
		g_assert_no_error (error);
		g_assert_null (sc_admin_login_url (config, &error));
		g_assert_nonnull (error);
	}
	sc_test_remove_tree (dir);
}

typedef struct {
	guint16 port;
	guint status;
	char *body;
	gboolean done;
} ClientCall;

/* The client on its own thread: the server runs on this one's context. */
static gpointer
client_thread (gpointer user_data)
{
	ClientCall *call = user_data;
	g_autoptr(SoupSession) session = soup_session_new_with_options ("proxy-resolver", NULL, "timeout",
									 IO_TIMEOUT, NULL);
	g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/api/v1/messages?list=a.example.org"
						"&from=a@example.org&to=b@example.org",
						call->port);
	g_autoptr(SoupMessage) message = soup_message_new ("POST", url);
	g_autoptr(GBytes) body = g_bytes_new_static (MESSAGE, strlen (MESSAGE));
	g_autoptr(GBytes) reply = NULL;

	soup_message_headers_replace (soup_message_get_request_headers (message), "Authorization",
				      "Bearer " INJECT_TOKEN);
	soup_message_set_request_body_from_bytes (message, "message/rfc822", body);
	reply = soup_session_send_and_read (session, message, NULL, NULL);
	call->status = soup_message_get_status (message);
	call->body = reply != NULL ? g_strndup (g_bytes_get_data (reply, NULL), g_bytes_get_size (reply)) : NULL;
	g_atomic_int_set (&call->done, TRUE);
	g_main_context_wakeup (NULL);
	return NULL;
}

static void
test_no_acceptor (void)
{
	g_autofree char *dir = sc_test_make_tmpdir ("sc-admin-noacceptor");
	g_autofree char *tokens = sc_test_write_file (dir, "tokens", "mm " INJECT_TOKEN " inject\n");
	g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s/spool\n[admin]\n"
						 "listen = 127.0.0.1:0\ntoken-file = %s\n"
						 "[list:a.example.org]\npipeline = decorate\n",
						 dir, tokens);
	g_autofree char *config_path = sc_test_write_file (dir, "stagecoach.conf", text);
	g_autofree char *spool_dir = g_build_filename (dir, "spool", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (config_path, &error);
	g_autoptr(ScClock) clock = sc_clock_new_system ();
	ScSpool *spool;
	ScAdminServer *server;
	ClientCall call = {0};
	GThread *thread;

	g_assert_no_error (error);
	g_assert_cmpint (g_chmod (tokens, 0600), ==, 0);
	g_assert_cmpint (g_mkdir_with_parents (spool_dir, 0700), ==, 0);
	spool = sc_spool_open (spool_dir, G_USEC_PER_SEC, &error);
	g_assert_no_error (error);
	server = sc_admin_server_new (config, spool, clock, &error);
	g_assert_no_error (error);
	call.port = sc_admin_server_get_port (server);
	thread = g_thread_new ("client", client_thread, &call);
	while (!g_atomic_int_get (&call.done))
		g_main_context_iteration (NULL, TRUE);
	g_thread_join (thread);
	g_assert_cmpuint (call.status, ==, SOUP_STATUS_SERVICE_UNAVAILABLE);
	g_assert_nonnull (strstr (call.body, "\"no-ingress\""));
	g_free (call.body);
	sc_admin_server_free (server);
	sc_spool_close (spool);
	sc_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);

#define ADD(path, data, func) g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
	g_test_add_func ("/admin-inject/token-file", test_token_file);
	g_test_add_func ("/admin-inject/no-acceptor", test_no_acceptor);
	ADD ("/admin-inject/no-token", NULL, test_no_token);
	ADD ("/admin-inject/cookie-session", NULL, test_cookie_session);
	ADD ("/admin-inject/too-big", NULL, test_too_big);
	ADD ("/admin-inject/bad-requests", NULL, test_bad_requests);
	ADD ("/admin-inject/inject-scope", NULL, test_inject_scope);
	ADD ("/admin-inject/accepted", NULL, test_accepted);
	ADD ("/admin-inject/null-sender-routed", NULL, test_null_sender_routed);
	ADD ("/admin-inject/duplicate", NULL, test_duplicate);
	ADD ("/admin-inject/spool-locked", NULL, test_spool_locked);
#undef ADD
	return g_test_run ();
}
