/* sc-admin-api.c — the JSON API under /api/v1 (doc/admin-api.md): status,
 * message search and pages, downloads, operator actions, mailers,
 * notifications, the audit log.
 *
 * Handlers read the spool through sc_spool_* and act only through the
 * spool's audited verbs, with the caller's identity and address in the
 * audit row.  They must never build SQL, never return a message-derived
 * string other than as a JSON string value (json-glib escapes it; the
 * dashboard inserts it as text), never read unbounded lists (every list
 * is keyset paginated with a capped limit), and never act on a request
 * whose input does not parse.
 */
#include "config.h"

#include <string.h>

#include "sc-admin-private.h"
#include "sc-deliver-mailer.h"
#include "sc-gmime.h"
#include "sc-i18n.h"
#include "sc-message-json.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 500
#define THROUGHPUT_MINUTES 60
#define HEADERS_MAX 500
#define HEADER_BLOCK_MAX (256 * 1024)

static void
reply_spool_error (SoupServerMessage *message, const GError *error)
{
	guint status = SOUP_STATUS_INTERNAL_SERVER_ERROR;

	if (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND))
		status = SOUP_STATUS_NOT_FOUND;
	else if (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID))
		status = SOUP_STATUS_CONFLICT;
	else
		g_warning ("admin api: %s", error->message);
	sc_admin_reply_error (message, status, error->message);
}

static void
add_int (JsonBuilder *builder, const char *key, gint64 value)
{
	json_builder_set_member_name (builder, key);
	json_builder_add_int_value (builder, value);
}

static void
add_cursor (JsonBuilder *builder, gboolean more, gint64 last_id)
{
	g_autofree char *text = more ? g_strdup_printf ("%" G_GINT64_FORMAT, last_id) : NULL;

	sc_json_add_string (builder, "next", text);
}

static void
add_counts (JsonBuilder *builder, const gint64 counts[SC_STATE_LAST])
{
	gint64 total = 0;

	for (guint i = 0; i < SC_STATE_LAST; i++) {
		add_int (builder, sc_message_state_to_string (i), counts[i]);
		total += counts[i];
	}
	add_int (builder, "total", total);
}

static void
reply_builder (SoupServerMessage *message, guint status, JsonBuilder *builder)
{
	g_autoptr(JsonNode) node = json_builder_get_root (builder);

	sc_admin_reply_json (message, status, node);
}

/* ---- query parameters ---- */

static const char *
query_get (GHashTable *query, const char *key)
{
	const char *value = query != NULL ? g_hash_table_lookup (query, key) : NULL;

	return value != NULL && *value != '\0' ? value : NULL;
}

/* limit and after, the pagination every list shares */
static gboolean
parse_page_query (GHashTable *query, gint64 *out_after, guint *out_limit, GError **error)
{
	const char *after = query_get (query, "after");
	const char *limit = query_get (query, "limit");
	guint64 value = 0;

	*out_after = 0;
	*out_limit = LIMIT_DEFAULT;
	if (after != NULL) {
		if (!g_ascii_string_to_unsigned (after, 10, 1, G_MAXINT64, &value, NULL)) {
			g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					     _("after is not a cursor"));
			return FALSE;
		}
		*out_after = (gint64) value;
	}
	if (limit != NULL) {
		if (!g_ascii_string_to_unsigned (limit, 10, 1, LIMIT_MAX, &value, NULL)) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, _("limit must be 1 to %d"),
				     LIMIT_MAX);
			return FALSE;
		}
		*out_limit = (guint) value;
	}
	return TRUE;
}

static gboolean
parse_page (SoupServerMessage *message, GHashTable *query, gint64 *out_after, guint *out_limit)
{
	g_autoptr(GError) error = NULL;

	if (!parse_page_query (query, out_after, out_limit, &error)) {
		sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, error->message);
		return FALSE;
	}
	return TRUE;
}

gboolean
sc_admin_parse_search_query (GHashTable *query, ScMessageSearch *out_search, GError **error)
{
	const char *state = query_get (query, "state");

	memset (out_search, 0, sizeof *out_search);
	if (!parse_page_query (query, &out_search->after_id, &out_search->limit, error))
		return FALSE;
	if (state != NULL) {
		if (!sc_message_state_from_string (state, &out_search->state)) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, _("unknown state “%s”"),
				     state);
			return FALSE;
		}
		out_search->has_state = TRUE;
	}
	out_search->list_id = query_get (query, "list");
	out_search->stage = query_get (query, "stage");
	out_search->query = query_get (query, "q");
	return TRUE;
}

/* Deepest nesting of arrays and objects in @data, stopping once past @max. */
static guint
json_depth (const char *data, gsize length, guint max)
{
	guint depth = 0;
	guint deepest = 0;
	gboolean in_string = FALSE;

	for (gsize i = 0; i < length && deepest <= max; i++) {
		char c = data[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = FALSE;
		} else if (c == '"') {
			in_string = TRUE;
		} else if (c == '[' || c == '{') {
			deepest = MAX (deepest, ++depth);
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return deepest;
}

JsonObject *
sc_admin_parse_json_body (const char *data, gsize length, GError **error)
{
	g_autoptr(JsonParser) parser = NULL;
	g_autoptr(GError) error_local = NULL;
	JsonNode *root;

	if (length == 0)
		return json_object_new ();
	if (length > SC_ADMIN_BODY_MAX) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("body is larger than %d bytes"),
			     SC_ADMIN_BODY_MAX);
		return NULL;
	}
	/* json-glib recurses once per level: a deep enough array overflows the stack */
	if (json_depth (data, length, SC_ADMIN_JSON_DEPTH_MAX) > SC_ADMIN_JSON_DEPTH_MAX) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
			     _("body is nested too deep (more than %d levels)"), SC_ADMIN_JSON_DEPTH_MAX);
		return NULL;
	}
	parser = json_parser_new ();
	if (!json_parser_load_from_data (parser, data, (gssize) length, &error_local)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("body is not JSON: %s"),
			     error_local->message);
		return NULL;
	}
	root = json_parser_get_root (parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("body is not a JSON object"));
		return NULL;
	}
	return json_object_ref (json_node_get_object (root));
}

/* The request body as a JSON object, or NULL with a 400 sent. */
static JsonObject *
parse_body (SoupServerMessage *message)
{
	SoupMessageBody *body = soup_server_message_get_request_body (message);
	g_autoptr(GError) error = NULL;
	JsonObject *object = sc_admin_parse_json_body (body->data, body->length, &error);

	if (object == NULL)
		sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, error->message);
	return object;
}

/* (nullable) a string member; FALSE (and a 400 sent) if it is there but not a string */
static gboolean
body_string (SoupServerMessage *message, JsonObject *body, const char *key, const char **out_value)
{
	JsonNode *node = json_object_get_member (body, key);

	*out_value = NULL;
	if (node == NULL || JSON_NODE_HOLDS_NULL (node))
		return TRUE;
	if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING) {
		g_autofree char *text = g_strdup_printf (_("%s must be a string"), key);
		sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, text);
		return FALSE;
	}
	*out_value = json_node_get_string (node);
	return TRUE;
}

static void
kick (ScAdminServer *server)
{
	if (server->kick != NULL)
		(void) server->kick (server->kick_data);
	sc_spool_wake_runners (server->spool);
}

/* ---- GET /csrf, /status ---- */

static void
handle_csrf (ScAdminServer *server, SoupServerMessage *message, const ScAdminIdentity *identity)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autofree char *token = sc_admin_auth_csrf_token (server->auth, identity);

	json_builder_begin_object (builder);
	sc_json_add_string (builder, "token", token);
	sc_json_add_string (builder, "actor", identity->actor);
	json_builder_end_object (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

static void
handle_status (ScAdminServer *server, SoupServerMessage *message)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(GPtrArray) lists = NULL;
	g_autoptr(GArray) throughput = NULL;
	g_autoptr(GError) error = NULL;
	gint64 counts[SC_STATE_LAST];

	if (!sc_spool_count_states (server->spool, NULL, counts, &error) ||
	    (lists = sc_spool_count_by_list (server->spool, &error)) == NULL ||
	    (throughput = sc_spool_throughput (server->spool,
					       sc_clock_now (server->clock),
					       THROUGHPUT_MINUTES,
					       &error)) == NULL) {
		reply_spool_error (message, error);
		return;
	}
	json_builder_begin_object (builder);
	add_counts (builder, counts);
	json_builder_set_member_name (builder, "lists");
	json_builder_begin_object (builder);
	for (guint i = 0; i < lists->len; i++) {
		ScListCounts *list = lists->pdata[i];
		json_builder_set_member_name (builder, list->list_id);
		json_builder_begin_object (builder);
		add_counts (builder, list->counts);
		json_builder_end_object (builder);
	}
	json_builder_end_object (builder);
	json_builder_set_member_name (builder, "throughput");
	json_builder_begin_array (builder);
	for (guint i = 0; i < throughput->len; i++) {
		ScThroughput *minute = &g_array_index (throughput, ScThroughput, i);
		json_builder_begin_object (builder);
		sc_json_add_time (builder, "at", minute->at);
		add_int (builder, "done", minute->done);
		add_int (builder, "failed", minute->failed);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);
	json_builder_end_object (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

/* ---- messages ---- */

static void
handle_messages (ScAdminServer *server, SoupServerMessage *message, GHashTable *query)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(GPtrArray) summaries = NULL;
	g_autoptr(GError) error = NULL;
	ScMessageSearch search;
	gboolean more;

	if (!sc_admin_parse_search_query (query, &search, &error)) {
		sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, error->message);
		return;
	}
	/* one more than asked: is there a next page? */
	search.limit++;
	summaries = sc_spool_search (server->spool, &search, &error);
	if (summaries == NULL) {
		reply_spool_error (message, error);
		return;
	}
	more = summaries->len == search.limit;
	if (more)
		g_ptr_array_set_size (summaries, summaries->len - 1);

	json_builder_begin_object (builder);
	json_builder_set_member_name (builder, "messages");
	json_builder_begin_array (builder);
	for (guint i = 0; i < summaries->len; i++)
		json_builder_add_value (builder, sc_message_summary_to_json (summaries->pdata[i]));
	json_builder_end_array (builder);
	add_cursor (builder,
		    more,
		    summaries->len > 0 ? ((ScMessageSummary *) summaries->pdata[summaries->len - 1])->id : 0);
	json_builder_end_object (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

/* The header fields of @raw, unfolded and RFC 2047-decoded, as valid UTF-8.
 * Only the header block is read, and only so much of it. */
static JsonNode *
headers_to_json (GBytes *raw)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	gsize size = 0;
	const char *data = g_bytes_get_data (raw, &size);
	g_autofree char *block = NULL;
	g_auto(GStrv) lines = NULL;
	GString *name = NULL;
	GString *value = NULL;
	guint count = 0;

	sc_gmime_init ();
	block = g_utf8_make_valid (data != NULL ? data : "", MIN (size, HEADER_BLOCK_MAX));
	lines = g_strsplit (block, "\n", -1);
	json_builder_begin_array (builder);
	for (guint i = 0;; i++) {
		char *line = lines[i];
		gsize length = line != NULL ? strlen (line) : 0;

		if (line != NULL && length > 0 && line[length - 1] == '\r')
			line[--length] = '\0';
		if (line != NULL && (line[0] == ' ' || line[0] == '\t') && value != NULL) {
			g_string_append (value, line); /* folded: the line break goes */
			continue;
		}
		if (name != NULL) {
			g_autofree char *decoded = g_mime_utils_header_decode_text (NULL, g_strstrip (value->str));
			g_autofree char *valid = g_utf8_make_valid (decoded != NULL ? decoded : "", -1);
			json_builder_begin_object (builder);
			sc_json_add_string (builder, "name", name->str);
			sc_json_add_string (builder, "value", valid);
			json_builder_end_object (builder);
			g_string_free (name, TRUE);
			g_string_free (value, TRUE);
			name = value = NULL;
			count++;
		}
		if (line == NULL || length == 0 || count >= HEADERS_MAX)
			break;
		{
			const char *colon = strchr (line, ':');
			if (colon == NULL || colon == line)
				break; /* not a header field: the block is over */
			name = g_string_new_len (line, colon - line);
			value = g_string_new (colon + 1);
		}
	}
	if (name != NULL) {
		g_string_free (name, TRUE);
		g_string_free (value, TRUE);
	}
	json_builder_end_array (builder);
	return json_builder_get_root (builder);
}

static void
handle_message_show (ScAdminServer *server, SoupServerMessage *message, const char *queue_id)
{
	g_autoptr(JsonNode) node = NULL;
	g_autoptr(ScMessageSummary) summary = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(GError) error = NULL;

	node = sc_message_json_build (server->spool, queue_id, &error);
	if (node == NULL) {
		reply_spool_error (message, error);
		return;
	}
	summary = sc_spool_get_summary (server->spool, queue_id, &error);
	if (summary == NULL) {
		reply_spool_error (message, error);
		return;
	}
	raw = sc_spool_get_raw (server->spool, summary->id, &error);
	if (raw == NULL) {
		reply_spool_error (message, error);
		return;
	}
	json_object_set_member (json_node_get_object (node), "headers", headers_to_json (raw));
	sc_admin_reply_json (message, SOUP_STATUS_OK, node);
}

/* "exec:spam" → "exec-spam": a file name nothing can misread */
static char *
safe_file_name (const char *queue_id, const char *stage)
{
	GString *name = g_string_new (NULL);
	const char *parts[] = {queue_id, stage};

	for (guint p = 0; p < G_N_ELEMENTS (parts); p++) {
		if (parts[p] == NULL)
			continue;
		if (name->len > 0)
			g_string_append_c (name, '-');
		for (const char *c = parts[p]; *c != '\0'; c++)
			g_string_append_c (name, g_ascii_isalnum (*c) || *c == '.' || *c == '_' ? *c : '-');
	}
	g_string_append (name, ".eml");
	return g_string_free (name, FALSE);
}

static void
handle_download (ScAdminServer *server, SoupServerMessage *message, const char *queue_id, const char *stage)
{
	g_autoptr(ScMessageSummary) summary = NULL;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *file_name = NULL;
	g_autofree char *disposition = NULL;
	gsize size = 0;
	gconstpointer data;

	summary = sc_spool_get_summary (server->spool, queue_id, &error);
	if (summary == NULL) {
		reply_spool_error (message, error);
		return;
	}
	bytes = stage != NULL ? sc_spool_get_stage_output (server->spool, summary->id, stage, &error)
			      : sc_spool_get_raw (server->spool, summary->id, &error);
	if (bytes == NULL) {
		if (error == NULL)
			g_set_error (&error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND,
				     _("stage %s of %s has no output"), stage, queue_id);
		reply_spool_error (message, error);
		return;
	}
	file_name = safe_file_name (summary->queue_id, stage);
	disposition = g_strdup_printf ("attachment; filename=\"%s\"", file_name);
	data = g_bytes_get_data (bytes, &size);
	soup_server_message_set_status (message, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response (message, "message/rfc822", SOUP_MEMORY_COPY, data, size);
	soup_message_headers_replace (soup_server_message_get_response_headers (message),
				      "Content-Disposition",
				      disposition);
}

static void
reply_state (ScAdminServer *server, SoupServerMessage *message, const char *queue_id)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(ScMessageSummary) summary = NULL;
	g_autoptr(GError) error = NULL;

	summary = sc_spool_get_summary (server->spool, queue_id, &error);
	if (summary == NULL) {
		reply_spool_error (message, error);
		return;
	}
	json_builder_begin_object (builder);
	sc_json_add_string (builder, "id", summary->queue_id);
	sc_json_add_string (builder, "state", sc_message_state_to_string (summary->state));
	json_builder_end_object (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

static void
audit_context (ScAdminServer *server,
	       SoupServerMessage *message,
	       const ScAdminIdentity *identity,
	       ScAuditContext *out_audit)
{
	out_audit->actor = identity->actor;
	out_audit->remote = soup_server_message_get_remote_host (message);
	out_audit->now = sc_clock_now (server->clock);
}

static void
handle_message_action (ScAdminServer *server,
		       SoupServerMessage *message,
		       const char *queue_id,
		       const char *action,
		       const ScAdminIdentity *identity)
{
	g_autoptr(JsonObject) body = NULL;
	g_autoptr(GError) error = NULL;
	ScAuditContext audit;
	gboolean ok;

	audit_context (server, message, identity, &audit);
	if (strcmp (action, "delete") == 0) {
		g_autoptr(JsonBuilder) builder = json_builder_new ();
		if (!sc_spool_delete (server->spool, queue_id, &audit, &error)) {
			reply_spool_error (message, error);
			return;
		}
		json_builder_begin_object (builder);
		sc_json_add_string (builder, "id", queue_id);
		json_builder_set_member_name (builder, "deleted");
		json_builder_add_boolean_value (builder, TRUE);
		json_builder_end_object (builder);
		reply_builder (message, SOUP_STATUS_OK, builder);
		return;
	}
	body = parse_body (message);
	if (body == NULL)
		return;
	if (strcmp (action, "retry") == 0) {
		const char *from_stage;
		if (!body_string (message, body, "from_stage", &from_stage))
			return;
		ok = sc_spool_retry (server->spool, queue_id, from_stage, &audit, &error);
	} else if (strcmp (action, "hold") == 0) {
		const char *reason;
		if (!body_string (message, body, "reason", &reason))
			return;
		ok = sc_spool_hold (server->spool, queue_id, reason, &audit, &error);
	} else {
		ok = sc_spool_release (server->spool, queue_id, &audit, &error);
	}
	if (!ok) {
		reply_spool_error (message, error);
		return;
	}
	g_message ("admin %s of %s by %s from %s", action, queue_id, audit.actor, audit.remote);
	if (strcmp (action, "hold") != 0)
		kick (server);
	reply_state (server, message, queue_id);
}

/* A bulk retry runs in batches, each its own transaction, from a timeout
 * source with a gap after each batch: the main loop (the runner, inject, other requests) goes on
 * between them, and the write lock is held for one batch at a time.  The
 * request waits (paused) and gets the total when the last batch is done;
 * one audit row says how many. */
#define BULK_BATCH 500
#define BULK_GAP_MS 5

struct _ScAdminBulk {
	ScAdminServer *server;      /* (unowned) owns this */
	SoupServerMessage *message; /* (owned) paused until done */
	ScMessageSearch search;     /* strings owned below */
	char *list_id;
	char *stage;
	char *query;
	char *state_text;
	char *actor;
	char *remote;
	gboolean dry_run;
	guint count;                /* matched (dry run) or retried so far */
	guint batches;
	guint source_id;
};

static void
bulk_free (ScAdminBulk *bulk)
{
	if (bulk->source_id != 0)
		g_source_remove (bulk->source_id);
	g_clear_object (&bulk->message);
	g_free (bulk->list_id);
	g_free (bulk->stage);
	g_free (bulk->query);
	g_free (bulk->state_text);
	g_free (bulk->actor);
	g_free (bulk->remote);
	g_free (bulk);
}

static void
bulk_reply (ScAdminBulk *bulk, const GError *error)
{
	if (error != NULL) {
		g_autofree char *text = g_strdup_printf (_("bulk retry stopped after %u messages: %s"),
							 bulk->count, error->message);
		g_warning ("admin: %s", text);
		sc_admin_reply_error (bulk->message, SOUP_STATUS_INTERNAL_SERVER_ERROR, text);
	} else {
		g_autoptr(JsonBuilder) builder = json_builder_new ();
		json_builder_begin_object (builder);
		add_int (builder, "count", bulk->count);
		json_builder_set_member_name (builder, "dry_run");
		json_builder_add_boolean_value (builder, bulk->dry_run);
		json_builder_end_object (builder);
		reply_builder (bulk->message, SOUP_STATUS_OK, builder);
	}
	soup_server_message_unpause (bulk->message);
}

/* One batch: the next BULK_BATCH matches below the cursor. */
static gboolean
bulk_step (ScAdminBulk *bulk, gboolean *out_done, GError **error)
{
	ScAdminServer *server = bulk->server;
	g_autoptr(GPtrArray) found = NULL;
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new ();
	ScAuditContext audit = {.actor = bulk->actor, .remote = bulk->remote, .now = sc_clock_now (server->clock)};
	guint retried = 0;

	bulk->search.limit = BULK_BATCH;
	found = sc_spool_search (server->spool, &bulk->search, error);
	if (found == NULL)
		return FALSE;
	*out_done = found->len < BULK_BATCH;
	if (found->len > 0)
		bulk->search.after_id = ((ScMessageSummary *) found->pdata[found->len - 1])->id;
	bulk->batches++;
	if (bulk->dry_run) {
		bulk->count += found->len;
		return TRUE;
	}
	for (guint i = 0; i < found->len; i++)
		g_ptr_array_add (queue_ids, ((ScMessageSummary *) found->pdata[i])->queue_id);
	if (*out_done) {
		/* the last batch carries the audit row with the total */
		g_autofree char *detail = g_strdup_printf ("state=%s list=%s stage=%s q=%s", bulk->state_text,
							   bulk->list_id != NULL ? bulk->list_id : "*",
							   bulk->stage != NULL ? bulk->stage : "*",
							   bulk->query != NULL ? bulk->query : "");
		retried = bulk->count;
		if (!sc_spool_retry_list (server->spool, queue_ids, detail, &audit, &retried, error))
			return FALSE;
		retried -= bulk->count;
	} else if (!sc_spool_retry_list (server->spool, queue_ids, NULL, &audit, &retried, error)) {
		return FALSE;
	}
	bulk->count += retried;
	if (retried > 0)
		kick (server);
	return TRUE;
}

static gboolean
bulk_cb (gpointer user_data)
{
	ScAdminBulk *bulk = user_data;
	ScAdminServer *server = bulk->server;
	g_autoptr(GError) error = NULL;
	gboolean done = FALSE;

	if (!bulk_step (bulk, &done, &error) || done) {
		bulk->source_id = 0;
		if (error == NULL && !bulk->dry_run)
			g_message ("admin bulk retry of %u %s messages (%u batches) by %s from %s", bulk->count,
				   bulk->state_text, bulk->batches, bulk->actor, bulk->remote);
		bulk_reply (bulk, error);
		server->bulk = NULL;
		bulk_free (bulk);
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

void
sc_admin_api_stop_bulk (ScAdminServer *server)
{
	ScAdminBulk *bulk = server->bulk;

	if (bulk == NULL)
		return;
	g_source_remove (bulk->source_id);
	bulk->source_id = 0;
	server->bulk = NULL;
	g_message ("admin bulk retry by %s stopped after %u messages (the admin server stops)", bulk->actor,
		   bulk->count);
	bulk_free (bulk);
}

static void
handle_bulk_retry (ScAdminServer *server, SoupServerMessage *message, const ScAdminIdentity *identity)
{
	g_autoptr(JsonObject) body = parse_body (message);
	const char *state_text = NULL;
	const char *list_id = NULL;
	const char *stage = NULL;
	const char *query = NULL;
	ScMessageState state;
	gboolean dry_run = FALSE;
	JsonNode *node;
	ScAdminBulk *bulk;

	if (body == NULL)
		return;
	if (!body_string (message, body, "state", &state_text) ||
	    !body_string (message, body, "list", &list_id) ||
	    !body_string (message, body, "stage", &stage) || !body_string (message, body, "q", &query))
		return;
	if (list_id != NULL && *list_id == '\0')
		list_id = NULL;
	if (stage != NULL && *stage == '\0')
		stage = NULL;
	if (query != NULL && *query == '\0')
		query = NULL;
	if (state_text == NULL || !sc_message_state_from_string (state_text, &state) ||
	    !sc_message_state_allows (state, SC_ACTION_RETRY_MATCHING)) {
		sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, _("state must be dead or deferred"));
		return;
	}
	node = json_object_get_member (body, "dry_run");
	if (node != NULL && !JSON_NODE_HOLDS_NULL (node)) {
		if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN) {
			sc_admin_reply_error (message, SOUP_STATUS_BAD_REQUEST, _("dry_run must be true or false"));
			return;
		}
		dry_run = json_node_get_boolean (node);
	}
	if (dry_run && stage == NULL && query == NULL) {
		/* counted from the index, no walk */
		g_autoptr(JsonBuilder) builder = json_builder_new ();
		g_autoptr(GError) error = NULL;
		gint64 counts[SC_STATE_LAST];
		if (!sc_spool_count_states (server->spool, list_id, counts, &error)) {
			reply_spool_error (message, error);
			return;
		}
		json_builder_begin_object (builder);
		add_int (builder, "count", counts[state]);
		json_builder_set_member_name (builder, "dry_run");
		json_builder_add_boolean_value (builder, TRUE);
		json_builder_end_object (builder);
		reply_builder (message, SOUP_STATUS_OK, builder);
		return;
	}
	if (server->bulk != NULL) {
		g_autofree char *text = g_strdup_printf (_("a bulk retry by %s is running (%u messages so far)"),
							 server->bulk->actor, server->bulk->count);
		sc_admin_reply_error (message, SOUP_STATUS_CONFLICT, text);
		return;
	}
	bulk = g_new0 (ScAdminBulk, 1);
	bulk->server = server;
	bulk->message = g_object_ref (message);
	bulk->list_id = g_strdup (list_id);
	bulk->stage = g_strdup (stage);
	bulk->query = g_strdup (query);
	bulk->state_text = g_strdup (state_text);
	bulk->actor = g_strdup (identity->actor);
	bulk->remote = g_strdup (soup_server_message_get_remote_host (message));
	bulk->dry_run = dry_run;
	/* the same filter as the list the operator is looking at */
	bulk->search.has_state = TRUE;
	bulk->search.state = state;
	bulk->search.list_id = bulk->list_id;
	bulk->search.stage = bulk->stage;
	bulk->search.query = bulk->query;
	/* below I/O: requests, the runner's work and its timers come first */
	/* Not an idle below the default priority: the runner's sources run
	 * at the default one, and while retried messages kept it busy the
	 * idle starved (measured: 300,000 took 442 s).  A short timeout at
	 * the default priority runs one batch, then leaves the loop a gap
	 * for requests, injects and the runner. */
	bulk->source_id = g_timeout_add_full (G_PRIORITY_DEFAULT, BULK_GAP_MS, bulk_cb, bulk, NULL);
	server->bulk = bulk;
	soup_server_message_pause (message);
}

/* ---- mailers, notifications, audit ---- */

static void
handle_mailers (ScAdminServer *server, SoupServerMessage *message)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	gint64 now = sc_clock_now (server->clock);

	json_builder_begin_array (builder);
	for (guint i = 0; i < server->config->mailers->len; i++) {
		const ScMailerConfig *mailer = server->config->mailers->pdata[i];
		ScMailerStats stats = {0};
		gboolean open;

		sc_mailer_state_get_stats (sc_mailer_state_get (mailer), &stats);
		open = stats.open_until > now;
		json_builder_begin_object (builder);
		sc_json_add_string (builder, "name", mailer->name);
		sc_json_add_string (builder, "url", mailer->url);
		add_int (builder, "priority", mailer->priority);
		sc_json_add_string (builder, "circuit", open ? "open" : "closed");
		sc_json_add_time (builder, "open_until", open ? stats.open_until : 0);
		sc_json_add_string (builder, "last_error", stats.last_error);
		add_int (builder, "transactions", stats.transactions);
		add_int (builder, "connections", stats.connects);
		add_int (builder, "failures", stats.failures);
		add_int (builder, "consecutive_failures", stats.consecutive_failures);
		json_builder_end_object (builder);
		g_free (stats.last_error);
	}
	json_builder_end_array (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

typedef GPtrArray *(*PageFetchFunc) (ScSpool *spool, gint64 after, guint limit, GError **error);
/* Writes one entry's object; returns its id (the keyset cursor). */
typedef gint64 (*PageWriteFunc) (JsonBuilder *builder, gconstpointer entry);

/* GET of a keyset-paginated list: {"MEMBER": [...], "next": cursor|null}. */
static void
reply_page (ScAdminServer *server,
	    SoupServerMessage *message,
	    GHashTable *query,
	    const char *member,
	    PageFetchFunc fetch,
	    PageWriteFunc write)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(GPtrArray) entries = NULL;
	g_autoptr(GError) error = NULL;
	gint64 after;
	gint64 last_id = 0;
	guint limit;
	gboolean more;

	if (!parse_page (message, query, &after, &limit))
		return;
	entries = fetch (server->spool, after, limit + 1, &error);
	if (entries == NULL) {
		reply_spool_error (message, error);
		return;
	}
	more = entries->len > limit;
	if (more)
		g_ptr_array_set_size (entries, limit);
	json_builder_begin_object (builder);
	json_builder_set_member_name (builder, member);
	json_builder_begin_array (builder);
	for (guint i = 0; i < entries->len; i++) {
		json_builder_begin_object (builder);
		last_id = write (builder, entries->pdata[i]);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);
	add_cursor (builder, more, last_id);
	json_builder_end_object (builder);
	reply_builder (message, SOUP_STATUS_OK, builder);
}

static gint64
write_notification (JsonBuilder *builder, gconstpointer data)
{
	const ScNotificationEntry *entry = data;

	add_int (builder, "id", entry->id);
	sc_json_add_string (builder, "kind", entry->kind);
	sc_json_add_string (builder, "queue_id", entry->queue_id);
	sc_json_add_string (builder, "detail", entry->detail);
	sc_json_add_time (builder, "created_at", entry->created_at);
	sc_json_add_string (builder, "state", entry->state);
	add_int (builder, "attempts", entry->attempts);
	sc_json_add_time (builder, "sent_at", entry->sent_at);
	sc_json_add_string (builder, "last_error", entry->last_error);
	sc_json_add_time (builder,
			  "next_attempt_at",
			  g_strcmp0 (entry->state, "pending") == 0 ? entry->next_attempt_at : 0);
	return entry->id;
}

static gint64
write_audit (JsonBuilder *builder, gconstpointer data)
{
	const ScAuditEntry *entry = data;

	add_int (builder, "id", entry->id);
	sc_json_add_time (builder, "at", entry->at);
	sc_json_add_string (builder, "actor", entry->actor);
	sc_json_add_string (builder, "remote", entry->remote);
	sc_json_add_string (builder, "action", entry->action);
	sc_json_add_string (builder, "queue_id", entry->queue_id);
	sc_json_add_string (builder, "detail", entry->detail);
	return entry->id;
}

static void
handle_notifications (ScAdminServer *server, SoupServerMessage *message, GHashTable *query)
{
	reply_page (server, message, query, "notifications", sc_spool_list_notifications,
		    write_notification);
}

static void
handle_audit (ScAdminServer *server, SoupServerMessage *message, GHashTable *query)
{
	reply_page (server, message, query, "entries", sc_spool_list_audit, write_audit);
}

/* ---- routing ---- */

static void
reply_method_not_allowed (SoupServerMessage *message, const char *allow)
{
	soup_message_headers_replace (soup_server_message_get_response_headers (message), "Allow", allow);
	sc_admin_reply_error (message, SOUP_STATUS_METHOD_NOT_ALLOWED, _("method not allowed"));
}

void
sc_admin_api_handle (ScAdminServer *server,
		     SoupServerMessage *message,
		     const char *path,
		     GHashTable *query,
		     const ScAdminIdentity *identity)
{
	const char *method = soup_server_message_get_method (message);
	gboolean get = strcmp (method, "GET") == 0 || strcmp (method, "HEAD") == 0;
	gboolean post = strcmp (method, "POST") == 0;
	g_auto(GStrv) raw_parts = g_strsplit (path + 1, "/", -1); /* path starts with "/" */
	g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func (g_free);
	guint n;

	for (guint i = 0; raw_parts[i] != NULL; i++) {
		char *part = g_uri_unescape_string (raw_parts[i], "/");
		if (part == NULL || *part == '\0') {
			g_free (part);
			sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
			return;
		}
		g_ptr_array_add (parts, part);
	}
	n = parts->len;
#define PART(i) ((const char *) parts->pdata[i])

	if (n == 1 && strcmp (PART (0), "csrf") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_csrf (server, message, identity);
	} else if (n == 1 && strcmp (PART (0), "status") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_status (server, message);
	} else if (n == 1 && strcmp (PART (0), "messages") == 0) {
		if (post) {
			sc_admin_inject_handle (server, message, identity); /* sc-admin-inject.c */
			return;
		}
		if (!get) {
			reply_method_not_allowed (message, "GET, POST");
			return;
		}
		handle_messages (server, message, query);
	} else if (n == 2 && strcmp (PART (0), "messages") == 0) {
		if (get)
			handle_message_show (server, message, PART (1));
		else if (strcmp (method, "DELETE") == 0)
			handle_message_action (server, message, PART (1), "delete", identity);
		else
			reply_method_not_allowed (message, "GET, DELETE");
	} else if (n == 3 && strcmp (PART (0), "messages") == 0 && strcmp (PART (2), "raw") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_download (server, message, PART (1), NULL);
	} else if (n == 3 && strcmp (PART (0), "messages") == 0 &&
		   (strcmp (PART (2), "retry") == 0 || strcmp (PART (2), "hold") == 0 ||
		    strcmp (PART (2), "release") == 0)) {
		if (!post) {
			reply_method_not_allowed (message, "POST");
			return;
		}
		handle_message_action (server, message, PART (1), PART (2), identity);
	} else if (n == 5 && strcmp (PART (0), "messages") == 0 && strcmp (PART (2), "stages") == 0 &&
		   strcmp (PART (4), "output") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_download (server, message, PART (1), PART (3));
	} else if (n == 1 && strcmp (PART (0), "retry") == 0) {
		if (!post) {
			reply_method_not_allowed (message, "POST");
			return;
		}
		handle_bulk_retry (server, message, identity);
	} else if (n == 1 && strcmp (PART (0), "mailers") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_mailers (server, message);
	} else if (n == 1 && strcmp (PART (0), "notifications") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_notifications (server, message, query);
	} else if (n == 1 && strcmp (PART (0), "audit") == 0) {
		if (!get) {
			reply_method_not_allowed (message, "GET");
			return;
		}
		handle_audit (server, message, query);
	} else {
		sc_admin_reply_error (message, SOUP_STATUS_NOT_FOUND, _("not found"));
	}
#undef PART
}
