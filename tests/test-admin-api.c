/* test-admin-api.c — the admin server over real HTTP on 127.0.0.1: every
 * endpoint of doc/admin-api.md, authentication, CSRF, the security headers,
 * keyset pagination under concurrent injection, and the query plans of the
 * searches.  The server and the client share the test's main context,
 * which each request iterates until its answer arrives.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <sqlite3.h>
#include <string.h>

#include "sc-admin-server.h"
#include "sc-clock.h"
#include "sc-config.h"
#include "sc-error.h"
#include "sc-sqlite-private.h"
#include "sc-spool.h"
#include "sc-test-backend.h"
#include "sc-test-http.h"
#include "sc-test-util.h"

#define SEC G_GINT64_CONSTANT (1000000)
#define T0 (G_GINT64_CONSTANT (1795435200) * SEC)
#define PIPELINE "decorate;archive"
#define TOKEN "s3cret-token-for-tests-0123456789"
#define OTHER_TOKEN "other-token-xyz-0123456789"
#define CSP                                                                                        \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

typedef struct {
	char *dir;               /* (owned) */
	char *location;          /* (owned) the spool: a folder or a URI (sc-test-backend.h) */
	ScConfig *config;        /* (owned) */
	ScClock *clock;          /* (owned) fixed at T0 */
	ScSpool *spool;          /* (owned) */
	ScAdminServer *server;   /* (owned) */
	SoupSession *session;    /* (owned) */
	char *token;             /* (owned) the generated token, or TOKEN */
	char *cookie;            /* (owned) (nullable) a logged-in session, sent by default */
	guint kicks;
} Fixture;

typedef struct {
	guint status;
	GBytes *body;                 /* (owned) */
	SoupMessageHeaders *headers;  /* (owned) response headers */
} Response;

static void
response_free (Response *response)
{
	g_bytes_unref (response->body);
	soup_message_headers_unref (response->headers);
	g_free (response);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Response, response_free)

static gboolean
kick_cb (gpointer user_data)
{
	Fixture *fixture = user_data;
	fixture->kicks++;
	return G_SOURCE_REMOVE;
}

static char *login_cookie (Fixture *fixture, const char *token);

static void
setup_with (Fixture *fixture, gboolean with_token)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *state_dir = NULL;
	g_autofree char *spool_lines = NULL;
	g_autofree char *config_path = NULL;
	g_autofree char *text = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-admin");
	state_dir = sc_test_backend_state_dir (fixture->dir);
	g_assert_cmpint (g_mkdir_with_parents (state_dir, 0700), ==, 0);
	spool_lines = sc_test_backend_spool_lines (fixture->dir);
	fixture->location = sc_test_backend_spool_location (fixture->dir);
	if (with_token) {
		g_autofree char *token_path =
		    sc_test_write_file (fixture->dir, "tokens", "# admins\nalice " TOKEN "\n\nbob " OTHER_TOKEN "\n");
		g_assert_cmpint (g_chmod (token_path, 0600), ==, 0);
	}
	text = g_strdup_printf ("[stagecoach]\n%s\n"
				"[admin]\nlisten = 127.0.0.1:0\n%s\n"
				"[mailer:primary]\nurl = smtp://127.0.0.1:2525\npriority = 5\n\n"
				"[list:a.example.org]\npipeline = " PIPELINE "\n\n"
				"[list:b.example.org]\npipeline = " PIPELINE "\n",
				spool_lines,
				with_token ? "token-file = tokens\n" : "");
	config_path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	fixture->config = sc_config_load (config_path, &error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->config);
	fixture->clock = sc_clock_new_fixed (T0);
	fixture->spool = sc_spool_open (fixture->config->spool, 100000, &error);
	g_assert_no_error (error);
	fixture->server = sc_admin_server_new (fixture->config, fixture->spool, fixture->clock, &error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->server);
	g_assert_cmpuint (sc_admin_server_get_port (fixture->server), >, 0);
	sc_admin_server_set_kick (fixture->server, kick_cb, fixture);
	fixture->session = soup_session_new_with_options ("proxy-resolver", NULL, "timeout", 30, NULL);
	if (with_token) {
		fixture->token = g_strdup (TOKEN);
	} else {
		/* no token file: the server made one in its state folder; the
		 * tests act as its operator, logged in with it */
		g_autofree char *path = g_build_filename (state_dir, "admin-token", NULL);
		g_autofree char *contents = NULL;
		g_auto(GStrv) fields = NULL;
		g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
		fields = g_strsplit (g_strstrip (contents), " ", 2);
		g_assert_cmpstr (fields[0], ==, "admin");
		fixture->token = g_strdup (fields[1]);
		fixture->cookie = login_cookie (fixture, fixture->token);
	}
}

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	setup_with (fixture, FALSE);
}

static void
fixture_setup_token (Fixture *fixture, gconstpointer user_data)
{
	setup_with (fixture, TRUE);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	g_clear_object (&fixture->session);
	g_clear_pointer (&fixture->token, g_free);
	g_clear_pointer (&fixture->cookie, g_free);
	g_clear_pointer (&fixture->server, sc_admin_server_free);
	g_clear_pointer (&fixture->spool, sc_spool_close);
	g_clear_pointer (&fixture->location, g_free);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	g_clear_pointer (&fixture->config, sc_config_unref);
	while (g_main_context_iteration (NULL, FALSE))
		;
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

/* ---- HTTP ---- */

/* Extra request headers as NULL-terminated name, value pairs. */
static Response *
request_full (Fixture *fixture, const char *method, const char *path, const char *content_type, const char *body, ...)
{
	g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u%s",
						sc_admin_server_get_port (fixture->server), path);
	g_autoptr(SoupMessage) message = soup_message_new (method, url);
	Response *response;
	va_list args;
	const char *name;

	gboolean credentials = FALSE;

	g_assert_nonnull (message);
	soup_message_add_flags (message, SOUP_MESSAGE_NO_REDIRECT);
	va_start (args, body);
	while ((name = va_arg (args, const char *)) != NULL) {
		const char *value = va_arg (args, const char *);
		/* naming Cookie or Authorization (even without a value) replaces
		 * the fixture's session */
		if (g_ascii_strcasecmp (name, "Cookie") == 0 || g_ascii_strcasecmp (name, "Authorization") == 0)
			credentials = TRUE;
		if (value == NULL)
			continue; /* an optional header left out */
		soup_message_headers_replace (soup_message_get_request_headers (message), name, value);
	}
	va_end (args);
	if (!credentials && fixture->cookie != NULL)
		soup_message_headers_replace (soup_message_get_request_headers (message), "Cookie", fixture->cookie);
	if (body != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (body, strlen (body));
		soup_message_set_request_body_from_bytes (message,
							  content_type != NULL ? content_type : "application/json",
							  bytes);
	}
	response = g_new0 (Response, 1);
	response->body = sc_test_http_send (fixture->session, message);
	response->status = soup_message_get_status (message);
	response->headers = soup_message_headers_ref (soup_message_get_response_headers (message));
	return response;
}

#define GET(fixture, path) request_full (fixture, "GET", path, NULL, NULL, NULL)

static JsonNode *
response_json (Response *response)
{
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	gsize size = 0;
	const char *data = g_bytes_get_data (response->body, &size);

	g_assert_cmpstr (soup_message_headers_get_content_type (response->headers, NULL), ==, "application/json");
	json_parser_load_from_data (parser, data, size, &error);
	g_assert_no_error (error);
	return json_node_copy (json_parser_get_root (parser));
}

static JsonObject *
get_object (Fixture *fixture, const char *path, guint expected_status)
{
	g_autoptr(Response) response = GET (fixture, path);
	g_autoptr(JsonNode) node = NULL;

	g_assert_cmpuint (response->status, ==, expected_status);
	node = response_json (response);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
	return json_object_ref (json_node_get_object (node));
}

static char *
csrf_token (Fixture *fixture, const char *cookie)
{
	g_autoptr(Response) response =
	    request_full (fixture, "GET", "/api/v1/csrf", NULL, NULL, "Cookie", cookie != NULL ? cookie : fixture->cookie, NULL);
	g_autoptr(JsonNode) node = NULL;

	g_assert_cmpuint (response->status, ==, 200);
	node = response_json (response);
	return g_strdup (json_object_get_string_member (json_node_get_object (node), "token"));
}

/* A state-changing request with the CSRF token of the fixture's session. */
static Response *
post (Fixture *fixture, const char *method, const char *path, const char *body)
{
	g_autofree char *token = csrf_token (fixture, NULL);
	return request_full (fixture, method, path, NULL, body, "X-CSRF-Token", token, NULL);
}

/* ---- spool helpers ---- */

static char *
inject (Fixture *fixture, const char *list_id, const char *subject)
{
	static const char *const recipients[] = {"reader@example.org", NULL};
	g_autoptr(GError) error = NULL;
	g_autofree char *raw_text = g_strdup_printf ("From: owner@example.org\r\nSubject: %s\r\n"
						     "Message-ID: <m@example.org>\r\n\r\nbody\r\n",
						     subject);
	g_autoptr(GBytes) raw = g_bytes_new (raw_text, strlen (raw_text));
	ScNewMessage message = {
	    .list_id = list_id,
	    .sender = "owner@example.org",
	    .recipients = recipients,
	    .pipeline = PIPELINE,
	    .subject = subject,
	    .message_id = "<m@example.org>",
	    .raw = raw,
	    .now = sc_clock_now (fixture->clock),
	};
	char *queue_id = sc_spool_inject (fixture->spool, &message, &error);

	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	return queue_id;
}

/* Claims everything due and runs one stage of @queue_id (others released):
 * ok with output → queued for the next stage, else dead with an error. */
static void
run_stage (Fixture *fixture, const char *queue_id, ScOutcome outcome, ScMessageState next_state)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	gint64 now = sc_clock_now (fixture->clock);
	g_autoptr(ScMessageSummary) summary = sc_spool_get_summary (fixture->spool, queue_id, &error);
	g_autoptr(GBytes) output = g_bytes_new_static ("Subject: decorated\r\n\r\nbody\r\n", 28);

	g_assert_no_error (error);
	claimed = sc_spool_claim (fixture->spool, "test-runner", now, now + 300 * SEC, 1000, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < claimed->len; i++) {
		ScMessage *message = claimed->pdata[i];
		ScStageResult result = {
		    .id = message->id,
		    .lease_generation = message->lease_generation,
		    .stage = NULL,
		    .started_at = now - 2 * SEC,
		    .finished_at = now,
		    .next_state = SC_STATE_QUEUED,
		};
		ScStageResult *one = &result;
		guint stale = 0;

		if (message->id == summary->id) {
			result.stage = sc_message_next_stage (message);
			result.outcome = outcome;
			result.error = outcome == SC_OUTCOME_OK ? NULL : "550 5.1.1 no such user";
			result.output = outcome == SC_OUTCOME_OK ? output : NULL;
			result.next_state = next_state;
			result.attempts = outcome == SC_OUTCOME_OK ? 0 : 1;
		}
		g_assert_true (sc_spool_record_results (fixture->spool, "test-runner", &one, 1, &stale, &error));
		g_assert_no_error (error);
	}
}

static ScMessageState
state_of (Fixture *fixture, const char *queue_id)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScMessageSummary) summary = sc_spool_get_summary (fixture->spool, queue_id, &error);

	g_assert_no_error (error);
	return summary->state;
}

/* Plain SQL on the spool, for what no verb shows (sc-test-backend.h). */
static gint64
db_int (Fixture *fixture, const char *sql)
{
	return sc_test_backend_query_int (fixture->location, sql);
}

static char *
db_text (Fixture *fixture, const char *sql)
{
	return sc_test_backend_query_text (fixture->location, sql);
}

/* ---- tests ---- */

static void
test_healthz_headers (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) health = GET (fixture, "/healthz");
	g_autoptr(Response) status = GET (fixture, "/api/v1/status");
	g_autoptr(Response) index = GET (fixture, "/");
	g_autoptr(Response) traversal = GET (fixture, "/static/..%2Fsc-admin-server.c");
	g_autoptr(Response) hidden = GET (fixture, "/static/.hidden");
	g_autoptr(Response) unknown = GET (fixture, "/nope");
	g_autoptr(Response) unknown_api = GET (fixture, "/api/v1/nope");
	g_autofree char *bearer = g_strdup_printf ("Bearer %s", fixture->token);
	g_autoptr(Response) wrong_method = request_full (fixture, "PUT", "/api/v1/status", NULL, "{}",
							 "Authorization", bearer, NULL);
	g_autoptr(GBytes) compiled = g_resources_lookup_data ("/org/stagecoach/dashboard/index.html", 0, NULL);

	g_assert_cmpuint (health->status, ==, 200);
	g_assert_cmpstr (g_bytes_get_data (health->body, NULL), ==, "ok\n");
	g_assert_true (g_str_has_prefix (soup_message_headers_get_content_type (health->headers, NULL), "text/plain"));
	for (guint i = 0; i < 3; i++) {
		Response *response = (Response *[]){health, status, unknown}[i];
		g_assert_cmpstr (soup_message_headers_get_one (response->headers, "Content-Security-Policy"), ==, CSP);
		g_assert_cmpstr (soup_message_headers_get_one (response->headers, "X-Content-Type-Options"), ==, "nosniff");
		g_assert_cmpstr (soup_message_headers_get_one (response->headers, "Referrer-Policy"), ==, "no-referrer");
	}
	g_assert_cmpstr (soup_message_headers_get_one (status->headers, "Cache-Control"), ==, "no-store");
	/* the dashboard is there when compiled in, else a plain 404 */
	g_assert_cmpuint (index->status, ==, compiled != NULL ? 200 : 404);
	/* libsoup refuses an encoded "/" itself (400); never served either way */
	g_assert_true (traversal->status == 400 || traversal->status == 404);
	g_assert_cmpuint (hidden->status, ==, 404);
	g_assert_cmpuint (unknown->status, ==, 404);
	g_assert_cmpuint (unknown_api->status, ==, 404);
	g_assert_cmpuint (wrong_method->status, ==, 405);
}

static void
test_status (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a1 = inject (fixture, "a.example.org", "one");
	g_autofree char *a2 = inject (fixture, "a.example.org", "two");
	g_autofree char *a3 = inject (fixture, "a.example.org", "three");
	g_autofree char *b1 = inject (fixture, "b.example.org", "four");
	g_autofree char *b2 = inject (fixture, "b.example.org", "five");
	g_autoptr(JsonObject) status = NULL;
	JsonObject *lists;
	JsonArray *throughput;
	JsonObject *last;
	ScAuditContext audit = {.actor = "test", .now = T0};
	g_autoptr(GError) error = NULL;

	g_assert_true (sc_spool_hold (fixture->spool, a2, "look", &audit, &error));
	g_assert_no_error (error);
	sc_clock_advance (fixture->clock, 10 * SEC);
	run_stage (fixture, b1, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);

	status = get_object (fixture, "/api/v1/status", 200);
	g_assert_cmpint (json_object_get_int_member (status, "queued"), ==, 3);
	g_assert_cmpint (json_object_get_int_member (status, "held"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (status, "dead"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (status, "active"), ==, 0);
	g_assert_cmpint (json_object_get_int_member (status, "total"), ==, 5);
	lists = json_object_get_object_member (status, "lists");
	g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (lists, "a.example.org"), "queued"), ==, 2);
	g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (lists, "b.example.org"), "dead"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (lists, "b.example.org"), "total"), ==, 2);
	throughput = json_object_get_array_member (status, "throughput");
	g_assert_cmpuint (json_array_get_length (throughput), ==, 60);
	last = json_array_get_object_element (throughput, 59);
	g_assert_cmpint (json_object_get_int_member (last, "failed"), ==, 1);
	g_assert_cmpint (json_object_get_int_member (last, "done"), ==, 0);
	g_assert_nonnull (json_object_get_string_member (last, "at"));
	(void) a1; (void) a3; (void) b2;
}

static guint
collect_ids (JsonObject *page, GPtrArray *ids)
{
	JsonArray *messages = json_object_get_array_member (page, "messages");

	for (guint i = 0; i < json_array_get_length (messages); i++)
		g_ptr_array_add (ids, g_strdup (json_object_get_string_member (json_array_get_object_element (messages, i), "id")));
	return json_array_get_length (messages);
}

static void
test_messages_filters (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GPtrArray) injected = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *next = NULL;
	guint pages = 0;

	for (guint i = 0; i < 7; i++) {
		g_autofree char *subject = g_strdup_printf ("%s number %u", i == 3 ? "Needle_50%" : "hay", i);
		g_ptr_array_add (injected, inject (fixture, i % 2 == 0 ? "a.example.org" : "b.example.org", subject));
		sc_clock_advance (fixture->clock, SEC);
	}
	/* one dead after decorate (stage filter: its last attempt's stage) */
	run_stage (fixture, injected->pdata[0], SC_OUTCOME_OK, SC_STATE_QUEUED);
	run_stage (fixture, injected->pdata[0], SC_OUTCOME_PERMANENT, SC_STATE_DEAD);

	{
		g_autoptr(JsonObject) page = get_object (fixture, "/api/v1/messages?state=dead", 200);
		JsonArray *messages = json_object_get_array_member (page, "messages");
		JsonObject *first;
		g_assert_cmpuint (json_array_get_length (messages), ==, 1);
		first = json_array_get_object_element (messages, 0);
		g_assert_cmpstr (json_object_get_string_member (first, "id"), ==, injected->pdata[0]);
		g_assert_cmpstr (json_object_get_string_member (first, "state"), ==, "dead");
		g_assert_cmpstr (json_object_get_string_member (first, "last_error"), ==, "550 5.1.1 no such user");
		g_assert_true (json_object_has_member (first, "failures"));
		g_assert_true (json_object_has_member (first, "next_attempt_at"));
		g_assert_true (json_object_get_null_member (page, "next"));
	}
	{
		g_autoptr(JsonObject) page = get_object (fixture, "/api/v1/messages?list=b.example.org", 200);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page, "messages")), ==, 3);
	}
	{
		g_autoptr(JsonObject) page = get_object (fixture, "/api/v1/messages?list=a.example.org&state=queued", 200);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page, "messages")), ==, 3);
	}
	{
		/* case-insensitive substring; % and _ are literal */
		g_autoptr(JsonObject) page = get_object (fixture, "/api/v1/messages?q=needle_50%25", 200);
		g_autoptr(JsonObject) none = get_object (fixture, "/api/v1/messages?q=needle%2550", 200);
		g_autoptr(JsonObject) by_error = get_object (fixture, "/api/v1/messages?q=NO%20SUCH%20USER", 200);
		JsonArray *messages = json_object_get_array_member (page, "messages");
		g_assert_cmpuint (json_array_get_length (messages), ==, 1);
		g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (messages, 0), "id"), ==, injected->pdata[3]);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (none, "messages")), ==, 0);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (by_error, "messages")), ==, 1);
	}
	{
		g_autoptr(JsonObject) archive = get_object (fixture, "/api/v1/messages?stage=archive", 200);
		g_autoptr(JsonObject) decorate = get_object (fixture, "/api/v1/messages?stage=decorate&list=a.example.org", 200);
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (archive, "messages")), ==, 1);
		/* never tried: their next stage is the first */
		g_assert_cmpuint (json_array_get_length (json_object_get_array_member (decorate, "messages")), ==, 3);
	}

	/* keyset pagination, newest first, stable while new messages arrive */
	do {
		g_autofree char *path = next != NULL ? g_strdup_printf ("/api/v1/messages?limit=2&after=%s", next)
						     : g_strdup ("/api/v1/messages?limit=2");
		g_autoptr(JsonObject) page = get_object (fixture, path, 200);
		g_autofree char *late = inject (fixture, "a.example.org", "late arrival");
		JsonNode *cursor = json_object_get_member (page, "next");

		g_assert_cmpuint (collect_ids (page, seen), <=, 2);
		g_clear_pointer (&next, g_free);
		if (!JSON_NODE_HOLDS_NULL (cursor))
			next = g_strdup (json_node_get_string (cursor));
		pages++;
	} while (next != NULL);
	g_assert_cmpuint (pages, ==, 4);
	g_assert_cmpuint (seen->len, ==, injected->len);
	for (guint i = 0; i < injected->len; i++)
		g_assert_cmpstr (seen->pdata[i], ==, injected->pdata[injected->len - 1 - i]);

	/* bad input */
	for (guint i = 0; i < 5; i++) {
		const char *path = (const char *[]){"/api/v1/messages?state=lost", "/api/v1/messages?limit=0",
						    "/api/v1/messages?limit=501", "/api/v1/messages?after=abc",
						    "/api/v1/audit?after=-1"}[i];
		g_autoptr(JsonObject) error = get_object (fixture, path, 400);
		g_assert_nonnull (json_object_get_string_member (error, "error"));
	}
}

static void
test_plans (Fixture *fixture, gconstpointer user_data)
{
	const ScSql searches[] = {SC_SQL_SEARCH, SC_SQL_SEARCH_STATE, SC_SQL_SEARCH_LIST, SC_SQL_SEARCH_STATE_LIST,
				  SC_SQL_COUNT_NOTIFICATIONS_PENDING};

	if (sc_test_backend_is_postgresql ()) {
		g_test_skip ("SQLite's query plans (PostgreSQL's: tests/test-pg-query.c)");
		return;
	}

	for (guint i = 0; i < G_N_ELEMENTS (searches); i++) {
		g_autofree char *sql = g_strconcat ("EXPLAIN QUERY PLAN ", sc_sqlite_sql_text (searches[i]), NULL);
		sqlite3_stmt *stmt = NULL;
		g_autoptr(GString) plan = g_string_new (NULL);

		g_assert_cmpint (sqlite3_prepare_v2 (sc_sqlite_get_db (fixture->spool), sql, -1, &stmt, NULL), ==, SQLITE_OK);
		while (sqlite3_step (stmt) == SQLITE_ROW)
			g_string_append_printf (plan, "%s\n", sqlite3_column_text (stmt, 3));
		sqlite3_finalize (stmt);
		g_test_message ("%s", plan->str);
		g_assert_null (strstr (plan->str, "SCAN messages"));
		g_assert_null (strstr (plan->str, "TEMP B-TREE"));
		/* the pending count walks only the partial index of pending rows */
		if (strstr (plan->str, "notifications") != NULL)
			g_assert_nonnull (strstr (plan->str, "INDEX notifications_due"));
	}
}

static void
test_message_show (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *queue_id = inject (fixture, "a.example.org", "=?UTF-8?Q?caf=C3=A9?= news");
	g_autofree char *path = g_strdup_printf ("/api/v1/messages/%s", queue_id);
	g_autofree char *raw_path = g_strdup_printf ("/api/v1/messages/%s/raw", queue_id);
	g_autofree char *output_path = g_strdup_printf ("/api/v1/messages/%s/stages/decorate/output", queue_id);
	g_autofree char *missing_output = g_strdup_printf ("/api/v1/messages/%s/stages/archive/output", queue_id);
	g_autoptr(JsonObject) show = NULL;
	JsonArray *headers;
	gboolean found_subject = FALSE;

	run_stage (fixture, queue_id, SC_OUTCOME_OK, SC_STATE_QUEUED);
	show = get_object (fixture, path, 200);
	g_assert_cmpstr (json_object_get_string_member (show, "id"), ==, queue_id);
	g_assert_cmpstr (json_object_get_string_member (show, "list"), ==, "a.example.org");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (show, "pipeline")), ==, 2);
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (show, "stages")), ==, 1);
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (show, "attempts")), ==, 1);
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (show, "recipients")), ==, 1);
	headers = json_object_get_array_member (show, "headers");
	g_assert_cmpuint (json_array_get_length (headers), ==, 3);
	for (guint i = 0; i < json_array_get_length (headers); i++) {
		JsonObject *header = json_array_get_object_element (headers, i);
		if (strcmp (json_object_get_string_member (header, "name"), "Subject") == 0) {
			g_assert_cmpstr (json_object_get_string_member (header, "value"), ==, "café news");
			found_subject = TRUE;
		}
	}
	g_assert_true (found_subject);

	{
		g_autoptr(Response) raw = GET (fixture, raw_path);
		g_autoptr(Response) output = GET (fixture, output_path);
		g_autoptr(Response) none = GET (fixture, missing_output);
		g_autoptr(Response) unknown = GET (fixture, "/api/v1/messages/ffffffffffff/raw");
		g_autoptr(JsonObject) unknown_show = get_object (fixture, "/api/v1/messages/ffffffffffff", 404);
		const char *disposition;

		g_assert_cmpuint (raw->status, ==, 200);
		g_assert_cmpstr (soup_message_headers_get_content_type (raw->headers, NULL), ==, "message/rfc822");
		disposition = soup_message_headers_get_one (raw->headers, "Content-Disposition");
		g_assert_true (g_str_has_prefix (disposition, "attachment"));
		g_assert_nonnull (strstr (g_bytes_get_data (raw->body, NULL), "Subject: =?UTF-8?Q?caf=C3=A9?= news\r\n"));
		g_assert_cmpuint (output->status, ==, 200);
		g_assert_cmpstr (soup_message_headers_get_content_type (output->headers, NULL), ==, "message/rfc822");
		g_assert_cmpuint (g_bytes_get_size (output->body), ==, 28);
		g_assert_cmpuint (none->status, ==, 404);
		g_assert_cmpuint (unknown->status, ==, 404);
		g_assert_nonnull (json_object_get_string_member (unknown_show, "error"));
	}
}

static void
assert_last_audit (Fixture *fixture, const char *action, const char *queue_id, const char *actor)
{
	g_autofree char *last_action = db_text (fixture, "SELECT action FROM audit ORDER BY id DESC LIMIT 1");
	g_autofree char *last_queue_id = db_text (fixture, "SELECT queue_id FROM audit ORDER BY id DESC LIMIT 1");
	g_autofree char *last_actor = db_text (fixture, "SELECT actor FROM audit ORDER BY id DESC LIMIT 1");
	g_autofree char *last_remote = db_text (fixture, "SELECT remote FROM audit ORDER BY id DESC LIMIT 1");

	g_assert_cmpstr (last_action, ==, action);
	g_assert_cmpstr (last_queue_id, ==, queue_id);
	g_assert_cmpstr (last_actor, ==, actor);
	g_assert_cmpstr (last_remote, ==, "127.0.0.1");
}

/* The "actions" a message's JSON offers, joined with ",". (transfer full) */
static char *
offered_actions (Fixture *fixture, const char *path)
{
	g_autoptr(Response) response = GET (fixture, path);
	g_autoptr(JsonNode) node = response_json (response);
	JsonArray *actions = json_object_get_array_member (json_node_get_object (node), "actions");
	g_autoptr(GString) joined = g_string_new (NULL);

	g_assert_cmpuint (response->status, ==, 200);
	for (guint i = 0; i < json_array_get_length (actions); i++)
		g_string_append_printf (joined, "%s%s", i > 0 ? "," : "", json_array_get_string_element (actions, i));
	return g_string_free (g_steal_pointer (&joined), FALSE);
}

static void
test_message_actions (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *queue_id = inject (fixture, "a.example.org", "act on me");
	g_autofree char *base = g_strdup_printf ("/api/v1/messages/%s", queue_id);
	g_autofree char *hold = g_strconcat (base, "/hold", NULL);
	g_autofree char *release = g_strconcat (base, "/release", NULL);
	g_autofree char *retry = g_strconcat (base, "/retry", NULL);

	{
		g_autoptr(Response) response = post (fixture, "POST", hold, "{\"reason\": \"checking\"}");
		g_autoptr(JsonNode) node = response_json (response);
		g_assert_cmpuint (response->status, ==, 200);
		g_assert_cmpstr (json_object_get_string_member (json_node_get_object (node), "state"), ==, "held");
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_HELD);
		assert_last_audit (fixture, "hold", queue_id, "admin");
		g_assert_cmpuint (fixture->kicks, ==, 0);
	}
	{
		/* what the dashboard may offer now: the spool's table for "held" */
		g_autofree char *offered = offered_actions (fixture, base);
		g_assert_cmpstr (offered, ==, "retry,retry-from-stage,release,delete");
	}
	{
		/* held twice: the state does not fit */
		g_autoptr(Response) again = post (fixture, "POST", hold, NULL);
		g_assert_cmpuint (again->status, ==, 409);
	}
	{
		g_autoptr(Response) response = post (fixture, "POST", release, NULL);
		g_autoptr(JsonNode) node = response_json (response);
		g_assert_cmpuint (response->status, ==, 200);
		g_assert_cmpstr (json_object_get_string_member (json_node_get_object (node), "state"), ==, "queued");
		assert_last_audit (fixture, "release", queue_id, "admin");
		g_assert_cmpuint (fixture->kicks, ==, 1);
	}
	run_stage (fixture, queue_id, SC_OUTCOME_OK, SC_STATE_QUEUED);
	run_stage (fixture, queue_id, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	{
		g_autoptr(Response) bad_stage = post (fixture, "POST", retry, "{\"from_stage\": \"nowhere\"}");
		g_autoptr(Response) bad_body = post (fixture, "POST", retry, "{\"from_stage\": 3}");
		g_autoptr(Response) not_json = post (fixture, "POST", retry, "{nope");
		g_assert_cmpuint (bad_stage->status, ==, 409);
		g_assert_cmpuint (bad_body->status, ==, 400);
		g_assert_cmpuint (not_json->status, ==, 400);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DEAD);
	}
	{
		g_autoptr(Response) response = post (fixture, "POST", retry, "{\"from_stage\": \"decorate\"}");
		g_autoptr(JsonNode) node = response_json (response);
		g_assert_cmpuint (response->status, ==, 200);
		g_assert_cmpstr (json_object_get_string_member (json_node_get_object (node), "state"), ==, "queued");
		assert_last_audit (fixture, "retry", queue_id, "admin");
		g_assert_cmpuint (fixture->kicks, ==, 2);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages"), ==, 0);
	}
	{
		/* an active message is the runner's */
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) claimed = sc_spool_claim (fixture->spool, "test-runner", T0, T0 + 300 * SEC, 10, &error);
		g_autoptr(Response) response = NULL;
		g_assert_no_error (error);
		g_assert_cmpuint (claimed->len, ==, 1);
		response = post (fixture, "POST", retry, NULL);
		g_assert_cmpuint (response->status, ==, 409);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
		{
			g_autofree char *offered = offered_actions (fixture, base);
			g_assert_cmpstr (offered, ==, "");
		}
		g_assert_true (sc_spool_release_owner (fixture->spool, "test-runner", T0, &error));
	}
	{
		g_autoptr(Response) response = post (fixture, "DELETE", base, NULL);
		g_autoptr(Response) gone = GET (fixture, base);
		g_autoptr(Response) gone_action = post (fixture, "POST", hold, NULL);
		g_assert_cmpuint (response->status, ==, 200);
		assert_last_audit (fixture, "delete", queue_id, "admin");
		g_assert_cmpuint (gone->status, ==, 404);
		g_assert_cmpuint (gone_action->status, ==, 404);
	}
}

static void assert_last_audit (Fixture *fixture, const char *action, const char *queue_id, const char *actor);

static void
test_bulk_retry (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "a.example.org", "a");
	g_autofree char *b = inject (fixture, "b.example.org", "b");
	g_autofree char *c = inject (fixture, "b.example.org", "c");

	run_stage (fixture, a, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	run_stage (fixture, b, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	run_stage (fixture, c, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	{
		g_autoptr(Response) response = post (fixture, "POST", "/api/v1/retry",
						     "{\"state\": \"dead\", \"list\": \"b.example.org\", \"dry_run\": true}");
		g_autoptr(JsonNode) node = response_json (response);
		g_assert_cmpuint (response->status, ==, 200);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (node), "count"), ==, 2);
		g_assert_cmpint (state_of (fixture, b), ==, SC_STATE_DEAD);
		g_assert_cmpuint (fixture->kicks, ==, 0);
	}
	{
		g_autoptr(Response) response = post (fixture, "POST", "/api/v1/retry", "{\"state\": \"dead\"}");
		g_autoptr(JsonNode) node = response_json (response);
		g_assert_cmpuint (response->status, ==, 200);
		g_assert_cmpint (json_object_get_int_member (json_node_get_object (node), "count"), ==, 3);
		g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_QUEUED);
		g_assert_cmpint (state_of (fixture, c), ==, SC_STATE_QUEUED);
		g_assert_cmpuint (fixture->kicks, ==, 1);
		/* one audit row for the bulk action, none for the dry run */
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 1);
		assert_last_audit (fixture, "retry-bulk", NULL, "admin");
	}
	{
		/* the same filter as the list: only what the search shows */
		g_autofree char *needle = inject (fixture, "b.example.org", "needle in a haystack");
		g_autofree char *hay = inject (fixture, "b.example.org", "just hay");
		run_stage (fixture, needle, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
		run_stage (fixture, hay, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
		{
			g_autoptr(Response) dry = post (fixture, "POST", "/api/v1/retry",
							"{\"state\": \"dead\", \"q\": \"needle\", \"dry_run\": true}");
			g_autoptr(JsonNode) node = response_json (dry);
			g_assert_cmpint (json_object_get_int_member (json_node_get_object (node), "count"), ==, 1);
		}
		{
			g_autoptr(Response) response = post (fixture, "POST", "/api/v1/retry",
							     "{\"state\": \"dead\", \"q\": \"needle\"}");
			g_autoptr(JsonNode) node = response_json (response);
			g_assert_cmpuint (response->status, ==, 200);
			g_assert_cmpint (json_object_get_int_member (json_node_get_object (node), "count"), ==, 1);
			g_assert_cmpint (state_of (fixture, needle), ==, SC_STATE_QUEUED);
			g_assert_cmpint (state_of (fixture, hay), ==, SC_STATE_DEAD);
			assert_last_audit (fixture, "retry-bulk", NULL, "admin");
		}
	}
	for (guint i = 0; i < 4; i++) {
		const char *body = (const char *[]){"{\"state\": \"done\"}", "{}", "{\"state\": \"dead\", \"dry_run\": 1}", "[1]"}[i];
		g_autoptr(Response) response = post (fixture, "POST", "/api/v1/retry", body);
		g_assert_cmpuint (response->status, ==, 400);
	}
}

/* Issue 7 item 16: a bulk retry of many messages ran in one transaction on
 * the main loop (300,000: 17–27 s with nothing else served, the write lock
 * held).  Now it goes in batches, each its own transaction, from an idle
 * source: between them the loop serves other requests, and what is done
 * so far is visible to other readers. */
static void
test_bulk_retry_batches (Fixture *fixture, gconstpointer user_data)
{
	const guint n = 5000; /* ten batches: a request fits between two */
	g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/api/v1/retry",
						sc_admin_server_get_port (fixture->server));
	g_autofree char *csrf = csrf_token (fixture, NULL);
	g_autoptr(SoupMessage) bulk = soup_message_new ("POST", url);
	g_autoptr(GBytes) body = g_bytes_new_static ("{\"state\": \"dead\"}", strlen ("{\"state\": \"dead\"}"));
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	g_autofree char *detail = NULL;
	g_autofree char *expected = NULL;
	ScTestHttpPending pending = {0};
	gboolean partial_seen = FALSE;
	gboolean served_meanwhile = FALSE;

	/* durability is not under test here: inject fast */
	if (!sc_test_backend_is_postgresql ())
		g_assert_cmpint (sqlite3_exec (sc_sqlite_get_db (fixture->spool), "PRAGMA synchronous = OFF", NULL, NULL,
					       NULL),
				 ==, SQLITE_OK);
	for (guint i = 0; i < n; i++)
		g_free (inject (fixture, i % 2 == 0 ? "a.example.org" : "b.example.org", "bulk"));
	sc_test_backend_exec (fixture->location, "UPDATE messages SET state = 'dead'");

	soup_message_headers_replace (soup_message_get_request_headers (bulk), "Cookie", fixture->cookie);
	soup_message_headers_replace (soup_message_get_request_headers (bulk), "X-CSRF-Token", csrf);
	soup_message_set_request_body_from_bytes (bulk, "application/json", body);
	sc_test_http_send_async (fixture->session, bulk, &pending);
	while (!pending.done) {
		gint64 queued;
		g_main_context_iteration (NULL, TRUE);
		queued = db_int (fixture, "SELECT count(*) FROM messages WHERE state = 'queued'");
		if (!pending.done && queued > 0 && queued < n && !partial_seen) {
			/* between two batches: the loop still answers */
			g_autoptr(Response) health = GET (fixture, "/healthz");
			partial_seen = TRUE;
			served_meanwhile = health->status == 200 && !pending.done;
		}
	}
	g_assert_no_error (pending.error);
	g_assert_cmpuint (soup_message_get_status (bulk), ==, 200);
	json_parser_load_from_data (parser, g_bytes_get_data (pending.body, NULL), g_bytes_get_size (pending.body), &error);
	g_assert_no_error (error);
	g_assert_cmpint (json_object_get_int_member (json_node_get_object (json_parser_get_root (parser)), "count"), ==, n);
	g_bytes_unref (pending.body);
	g_assert_true (partial_seen);
	g_assert_true (served_meanwhile);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state = 'queued'"), ==, n);
	/* one audit row for the whole job, saying how many */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 1);
	detail = db_text (fixture, "SELECT detail FROM audit");
	expected = g_strdup_printf ("count=%u", n);
	g_assert_true (g_str_has_suffix (detail, expected));
}

static void
test_csrf (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *queue_id = inject (fixture, "a.example.org", "csrf");
	g_autofree char *hold = g_strdup_printf ("/api/v1/messages/%s/hold", queue_id);
	g_autofree char *release = g_strdup_printf ("/api/v1/messages/%s/release", queue_id);
	g_autofree char *token = csrf_token (fixture, NULL);

	{
		g_autoptr(Response) none = request_full (fixture, "POST", hold, NULL, NULL, NULL);
		g_autoptr(Response) wrong = request_full (fixture, "POST", hold, NULL, NULL, "X-CSRF-Token", "abc", NULL);
		g_autoptr(Response) delete = request_full (fixture, "DELETE", "/api/v1/messages/x", NULL, NULL, NULL);
		g_autoptr(Response) cross = request_full (fixture, "POST", hold, NULL, NULL, "X-CSRF-Token", token,
							  "Origin", "http://evil.example", NULL);
		g_autoptr(Response) rebound = request_full (fixture, "GET", "/api/v1/status", NULL, NULL,
							    "Host", "evil.example", NULL);
		g_assert_cmpuint (none->status, ==, 403);
		g_assert_cmpuint (wrong->status, ==, 403);
		g_assert_cmpuint (delete->status, ==, 403);
		g_assert_cmpuint (cross->status, ==, 403);
		g_assert_cmpuint (rebound->status, ==, 403);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_QUEUED);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 0);
	}
	{
		g_autofree char *origin = g_strdup_printf ("http://127.0.0.1:%u", sc_admin_server_get_port (fixture->server));
		g_autoptr(Response) ok = request_full (fixture, "POST", hold, NULL, NULL, "X-CSRF-Token", token,
						       "Origin", origin, NULL);
		g_autofree char *header = g_strdup_printf ("Bearer %s", fixture->token);
		/* "Bearer x" once skipped CSRF without a token file: any local user was admin */
		g_autoptr(Response) anything = request_full (fixture, "POST", release, NULL, NULL,
							     "Authorization", "Bearer anything", NULL);
		g_autoptr(Response) bearer = NULL;
		g_assert_cmpuint (ok->status, ==, 200);
		g_assert_cmpuint (anything->status, ==, 401);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_HELD);
		bearer = request_full (fixture, "POST", release, NULL, NULL, "Authorization", header, NULL);
		g_assert_cmpuint (bearer->status, ==, 200);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_QUEUED);
	}
}

static char *
login_cookie (Fixture *fixture, const char *token)
{
	g_autofree char *form = g_strdup_printf ("token=%s", token);
	g_autoptr(Response) response = request_full (fixture, "POST", "/login", "application/x-www-form-urlencoded",
						     form, "Cookie", NULL, NULL);
	const char *set_cookie;
	g_auto(GStrv) parts = NULL;

	g_assert_cmpuint (response->status, ==, 303);
	g_assert_cmpstr (soup_message_headers_get_one (response->headers, "Location"), ==, "/");
	set_cookie = soup_message_headers_get_one (response->headers, "Set-Cookie");
	g_assert_nonnull (set_cookie);
	g_assert_true (g_str_has_prefix (set_cookie, "stagecoach_session="));
	g_assert_nonnull (strstr (set_cookie, "; HttpOnly"));
	g_assert_nonnull (strstr (set_cookie, "; SameSite=Strict"));
	g_assert_nonnull (strstr (set_cookie, "; Path=/"));
	parts = g_strsplit (set_cookie, ";", 2);
	return g_strdup (parts[0]);
}

static void
test_token (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *queue_id = inject (fixture, "a.example.org", "token");
	g_autofree char *hold = g_strdup_printf ("/api/v1/messages/%s/hold", queue_id);
	g_autofree char *release = g_strdup_printf ("/api/v1/messages/%s/release", queue_id);

	{
		g_autoptr(Response) anonymous = GET (fixture, "/api/v1/status");
		g_autoptr(Response) wrong = request_full (fixture, "GET", "/api/v1/status", NULL, NULL,
							  "Authorization", "Bearer not-it", NULL);
		g_autoptr(Response) metrics = GET (fixture, "/metrics");
		g_autoptr(Response) health = GET (fixture, "/healthz");
		g_autoptr(Response) form = GET (fixture, "/login");
		g_autoptr(Response) bad_login = request_full (fixture, "POST", "/login", "application/x-www-form-urlencoded",
							      "token=guess", NULL);
		g_autoptr(Response) forged = request_full (fixture, "GET", "/api/v1/status", NULL, NULL,
							   "Cookie", "stagecoach_session=0123", NULL);
		g_assert_cmpuint (anonymous->status, ==, 401);
		g_assert_nonnull (soup_message_headers_get_one (anonymous->headers, "WWW-Authenticate"));
		g_assert_cmpuint (wrong->status, ==, 401);
		g_assert_cmpuint (metrics->status, ==, 401);
		g_assert_cmpuint (health->status, ==, 200);
		g_assert_cmpuint (form->status, ==, 200);
		g_assert_cmpuint (bad_login->status, ==, 401);
		g_assert_null (soup_message_headers_get_one (bad_login->headers, "Set-Cookie"));
		g_assert_cmpuint (forged->status, ==, 401);
	}
	{
		/* Bearer: no CSRF token needed, the token's NAME is the actor */
		g_autoptr(Response) status = request_full (fixture, "GET", "/api/v1/status", NULL, NULL,
							   "Authorization", "Bearer " TOKEN, NULL);
		g_autoptr(Response) held = request_full (fixture, "POST", hold, NULL, NULL,
							 "Authorization", "Bearer " TOKEN, NULL);
		g_autoptr(Response) metrics = request_full (fixture, "GET", "/metrics", NULL, NULL,
							    "Authorization", "Bearer " OTHER_TOKEN, NULL);
		g_assert_cmpuint (status->status, ==, 200);
		g_assert_cmpuint (held->status, ==, 200);
		g_assert_cmpuint (metrics->status, ==, 200);
		assert_last_audit (fixture, "hold", queue_id, "alice");
	}
	{
		/* the login cookie: reads work, writes need the session's CSRF token */
		g_autofree char *cookie = login_cookie (fixture, TOKEN);
		g_autofree char *other_cookie = login_cookie (fixture, TOKEN);
		g_autofree char *token = csrf_token (fixture, cookie);
		g_autofree char *other_token = csrf_token (fixture, other_cookie);
		g_autoptr(Response) status = request_full (fixture, "GET", "/api/v1/status", NULL, NULL,
							   "Cookie", cookie, NULL);
		g_autoptr(Response) no_csrf = request_full (fixture, "POST", release, NULL, NULL, "Cookie", cookie, NULL);
		g_autoptr(Response) other_session = request_full (fixture, "POST", release, NULL, NULL,
								  "Cookie", cookie, "X-CSRF-Token", other_token, NULL);
		g_autoptr(Response) released = NULL;
		g_autoptr(Response) logout = NULL;
		g_autoptr(Response) after_logout = NULL;

		g_assert_cmpstr (token, !=, other_token);
		g_assert_cmpuint (status->status, ==, 200);
		g_assert_cmpuint (no_csrf->status, ==, 403);
		g_assert_cmpuint (other_session->status, ==, 403);
		released = request_full (fixture, "POST", release, NULL, NULL, "Cookie", cookie, "X-CSRF-Token", token, NULL);
		g_assert_cmpuint (released->status, ==, 200);
		assert_last_audit (fixture, "release", queue_id, "alice");
		logout = request_full (fixture, "POST", "/logout", NULL, NULL, "Cookie", cookie, "X-CSRF-Token", token, NULL);
		g_assert_cmpuint (logout->status, ==, 303);
		after_logout = request_full (fixture, "GET", "/api/v1/status", NULL, NULL, "Cookie", cookie, NULL);
		g_assert_cmpuint (after_logout->status, ==, 401);
	}
}

static void
test_non_loopback_refused (void)
{
	g_autofree char *dir = sc_test_make_tmpdir ("sc-admin-config");
	g_autofree char *path = sc_test_write_file (dir, "stagecoach.conf",
						    "[stagecoach]\nspool = spool\n\n[admin]\nlisten = 0.0.0.0:8470\n");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, "token-file"));
	sc_test_remove_tree (dir);
}

static void
test_metrics (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "a.example.org", "m");
	g_autoptr(Response) response = NULL;
	const char *text;
	const char *names[] = {
	    "stagecoach_messages{state=\"queued\",list=\"a.example.org\"} 0",
	    "stagecoach_messages{state=\"dead\",list=\"a.example.org\"} 1",
	    "stagecoach_stage_outcomes_total{stage=\"decorate\",outcome=\"permanent\"} 1",
	    "stagecoach_stage_duration_seconds_bucket{stage=\"decorate\",le=\"5\"} 1",
	    "stagecoach_stage_duration_seconds_bucket{stage=\"decorate\",le=\"0.05\"} ",
	    "stagecoach_stage_duration_seconds_bucket{stage=\"decorate\",le=\"+Inf\"} 1",
	    "stagecoach_stage_duration_seconds_count{stage=\"decorate\"} 1",
	    "# TYPE stagecoach_deliveries_total counter",
	    "stagecoach_notifications_pending 1",
	    "stagecoach_oldest_due_seconds 0",
	};

	sc_clock_advance (fixture->clock, 5 * SEC);
	run_stage (fixture, a, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	response = GET (fixture, "/metrics");
	g_assert_cmpuint (response->status, ==, 200);
	g_assert_true (g_str_has_prefix (soup_message_headers_get_content_type (response->headers, NULL), "text/plain"));
	text = g_bytes_get_data (response->body, NULL);
	for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
		if (strstr (text, names[i]) == NULL)
			g_error ("no “%s” in:\n%s", names[i], text);
	}
	{
		/* counters only grow from the attempts added since the last scrape */
		g_autoptr(Response) again = GET (fixture, "/metrics");
		g_assert_nonnull (strstr (g_bytes_get_data (again->body, NULL),
					  "stagecoach_stage_outcomes_total{stage=\"decorate\",outcome=\"permanent\"} 1\n"));
	}
	{
		g_autofree char *b = inject (fixture, "b.example.org", "late");
		g_autoptr(Response) late = NULL;
		sc_clock_advance (fixture->clock, 90 * SEC);
		late = GET (fixture, "/metrics");
		g_assert_nonnull (strstr (g_bytes_get_data (late->body, NULL), "stagecoach_oldest_due_seconds 90\n"));
	}
}

static void
test_xss_subject (Fixture *fixture, gconstpointer user_data)
{
	const char *subject = "<script>alert(\"x\")</script> \\ </title><img src=x onerror=alert(1)>";
	g_autofree char *queue_id = inject (fixture, "a.example.org", subject);
	g_autofree char *path = g_strdup_printf ("/api/v1/messages/%s", queue_id);
	g_autoptr(JsonObject) list = get_object (fixture, "/api/v1/messages", 200);
	g_autoptr(JsonObject) show = get_object (fixture, path, 200);
	JsonArray *messages = json_object_get_array_member (list, "messages");

	g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (messages, 0), "subject"), ==, subject);
	g_assert_cmpstr (json_object_get_string_member (show, "subject"), ==, subject);
}

static void
test_mailers (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Response) response = GET (fixture, "/api/v1/mailers");
	g_autoptr(JsonNode) node = response_json (response);
	JsonArray *mailers;
	JsonObject *mailer;

	g_assert_cmpuint (response->status, ==, 200);
	g_assert_true (JSON_NODE_HOLDS_ARRAY (node));
	mailers = json_node_get_array (node);
	g_assert_cmpuint (json_array_get_length (mailers), ==, 1);
	mailer = json_array_get_object_element (mailers, 0);
	g_assert_cmpstr (json_object_get_string_member (mailer, "name"), ==, "primary");
	g_assert_cmpstr (json_object_get_string_member (mailer, "url"), ==, "smtp://127.0.0.1:2525");
	g_assert_cmpint (json_object_get_int_member (mailer, "priority"), ==, 5);
	g_assert_cmpstr (json_object_get_string_member (mailer, "circuit"), ==, "closed");
	g_assert_true (json_object_get_null_member (mailer, "open_until"));
	for (guint i = 0; i < 3; i++)
		g_assert_true (json_object_has_member (mailer, (const char *[]){"transactions", "connections", "failures"}[i]));
}

static void
test_notifications_audit (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "a.example.org", "n1");
	g_autofree char *b = inject (fixture, "a.example.org", "n2");
	g_autofree char *next = NULL;

	run_stage (fixture, a, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	run_stage (fixture, b, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	{
		g_autoptr(JsonObject) page = get_object (fixture, "/api/v1/notifications?limit=1", 200);
		JsonArray *entries = json_object_get_array_member (page, "notifications");
		JsonObject *entry;
		g_assert_cmpuint (json_array_get_length (entries), ==, 1);
		entry = json_array_get_object_element (entries, 0);
		g_assert_cmpstr (json_object_get_string_member (entry, "kind"), ==, "message.dead");
		g_assert_cmpstr (json_object_get_string_member (entry, "queue_id"), ==, b);
		g_assert_cmpstr (json_object_get_string_member (entry, "state"), ==, "pending");
		for (guint i = 0; i < 6; i++)
			g_assert_true (json_object_has_member (entry, (const char *[]){"id", "detail", "created_at", "attempts", "sent_at", "last_error"}[i]));
		next = g_strdup (json_object_get_string_member (page, "next"));
		g_assert_nonnull (next);
	}
	{
		g_autofree char *path = g_strdup_printf ("/api/v1/notifications?limit=1&after=%s", next);
		g_autoptr(JsonObject) page = get_object (fixture, path, 200);
		JsonArray *entries = json_object_get_array_member (page, "notifications");
		g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (entries, 0), "queue_id"), ==, a);
		g_assert_true (json_object_get_null_member (page, "next"));
	}

	{
		g_autofree char *hold = g_strdup_printf ("/api/v1/messages/%s/retry", a);
		g_autoptr(Response) response = post (fixture, "POST", hold, NULL);
		g_autoptr(JsonObject) page = NULL;
		JsonArray *entries;
		JsonObject *entry;
		g_assert_cmpuint (response->status, ==, 200);
		page = get_object (fixture, "/api/v1/audit", 200);
		entries = json_object_get_array_member (page, "entries");
		g_assert_cmpuint (json_array_get_length (entries), ==, 1);
		entry = json_array_get_object_element (entries, 0);
		g_assert_cmpstr (json_object_get_string_member (entry, "action"), ==, "retry");
		g_assert_cmpstr (json_object_get_string_member (entry, "actor"), ==, "admin");
		g_assert_cmpstr (json_object_get_string_member (entry, "remote"), ==, "127.0.0.1");
		g_assert_cmpstr (json_object_get_string_member (entry, "queue_id"), ==, a);
		g_assert_nonnull (json_object_get_string_member (entry, "at"));
		g_assert_true (json_object_has_member (entry, "id"));
		g_assert_true (json_object_has_member (entry, "detail"));
		g_assert_true (json_object_get_null_member (page, "next"));
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_backend_init ())
		return 0;

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD ("/admin-api/healthz-headers", test_healthz_headers);
	ADD ("/admin-api/status", test_status);
	ADD ("/admin-api/messages/filters-pagination", test_messages_filters);
	ADD ("/admin-api/messages/plans", test_plans);
	ADD ("/admin-api/messages/show-download", test_message_show);
	ADD ("/admin-api/messages/actions", test_message_actions);
	ADD ("/admin-api/retry/bulk", test_bulk_retry);
	ADD ("/admin-api/retry/bulk-batches", test_bulk_retry_batches);
	ADD ("/admin-api/auth/csrf", test_csrf);
	g_test_add ("/admin-api/auth/token", Fixture, NULL, fixture_setup_token, test_token, fixture_teardown);
	g_test_add_func ("/admin-api/auth/non-loopback-refused", test_non_loopback_refused);
	ADD ("/admin-api/metrics", test_metrics);
	ADD ("/admin-api/xss-subject", test_xss_subject);
	ADD ("/admin-api/mailers", test_mailers);
	ADD ("/admin-api/notifications-audit", test_notifications_audit);
#undef ADD
	return g_test_run ();
}
