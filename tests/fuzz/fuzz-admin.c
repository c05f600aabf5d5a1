/* fuzz-admin.c — the admin API's request parsing: GET /messages's query
 * string and a POST's JSON body, then the search the query asks for, run
 * on a real spool.
 *
 * An input is "QUERY-STRING\nBODY".  The query string goes through
 * soup_form_decode(), as libsoup hands it to the API, then through the
 * API's search-query parser; the body through its JSON body parser.  With
 * the admin parsers of sc-admin-private.h (sc_admin_parse_search_query,
 * sc_admin_parse_json_body) those are called; without them (before that
 * change) the target does what sc-admin-api.c did inline: json-glib on the
 * whole body, and the state/after/limit checks.
 *
 * With the admin parsers, the query string also goes, raw, through the
 * inject envelope parser (POST /api/v1/messages): a parse gives an
 * envelope with a sender, 1 to 1,000 recipients, none empty, all valid
 * UTF-8, or an error.
 *
 * Properties: a parse gives a result or an error, never both; a parsed
 * limit is 1 to 500; a parsed body is an object whose string members
 * read back (json-glib's own writer is not checked: 1.6 writes 1e308 as
 * "1e+308.0" and infinities as "inf.0", which it cannot read); and the search finds exactly the messages whose subject,
 * sender, Message-ID or queue id contains q, ASCII case-insensitively
 * (checked for ASCII q without other filters): LIKE's % _ \ must be
 * literal.
 */
#include "config.h"

#include <stdlib.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "fuzz.h"
#include "sc-spool.h"
#ifdef SC_HAVE_ADMIN_PARSERS
#include "sc-admin-private.h"
#endif

#define LIMIT_MAX 500

static char *dir;
static ScSpool *spool;
static GPtrArray *messages; /* (element-type ScMessageSummary) everything in the spool */

static const char *const subjects[] = {
    "100% sure",       "under_score here", "back\\slash",   "[brackets] and ^caret",
    "Straße façade",   "quote's \"double\"", "pipe|star*?",  "percent %_% both",
    "UPPER lower MiX", "",                  "a",            "newline\nfolded",
};

static void
remove_spool (void)
{
	g_clear_pointer (&spool, sc_spool_close);
	if (dir != NULL) {
		g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", dir);
		(void) system (cmd);
	}
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	static const char *const recipients[] = {"rcpt@example.org", NULL};
	g_autoptr(GError) error = NULL;
	ScMessageSearch all = {0};

	dir = g_dir_make_tmp ("sc-fuzz-admin-XXXXXX", &error);
	if (dir != NULL)
		spool = sc_spool_open (dir, G_USEC_PER_SEC, &error);
	if (spool == NULL) {
		g_printerr ("fuzz-admin: %s\n", error->message);
		abort ();
	}
	atexit (remove_spool);
	for (gsize i = 0; i < G_N_ELEMENTS (subjects); i++) {
		g_autofree char *sender = g_strdup_printf ("sender%zu@Example.ORG", i);
		g_autofree char *message_id = g_strdup_printf ("<id-%zu.%%_x@example.org>", i);
		g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: x\r\n\r\nbody\r\n", 20);
		ScNewMessage message = {
		    .list_id = i % 2 == 0 ? "even.example.org" : "odd.example.org",
		    .sender = sender,
		    .recipients = recipients,
		    .pipeline = "decorate;archive",
		    .subject = subjects[i],
		    .message_id = message_id,
		    .raw = raw,
		    .now = G_USEC_PER_SEC * 1000,
		};
		g_autofree char *queue_id = sc_spool_inject (spool, &message, &error);
		if (queue_id == NULL) {
			g_printerr ("fuzz-admin: %s\n", error->message);
			abort ();
		}
	}
	messages = sc_spool_search (spool, &all, &error);
	if (messages == NULL || messages->len != G_N_ELEMENTS (subjects)) {
		g_printerr ("fuzz-admin: the spool does not list what was injected\n");
		abort ();
	}
	return 0;
}

#ifndef SC_HAVE_ADMIN_PARSERS
/* What sc-admin-api.c's parse_page and handle_messages did inline. */
static gboolean
parse_search_query (GHashTable *query, ScMessageSearch *search, GError **error)
{
	static const char *const keys[] = {"state", "list", "stage", "q", "after", "limit"};
	const char *values[G_N_ELEMENTS (keys)] = {NULL};
	guint64 value = 0;

	for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
		values[i] = query != NULL ? g_hash_table_lookup (query, keys[i]) : NULL;
		if (values[i] != NULL && *values[i] == '\0')
			values[i] = NULL;
	}
	memset (search, 0, sizeof *search);
	search->limit = 50;
	if (values[4] != NULL) {
		if (!g_ascii_string_to_unsigned (values[4], 10, 1, G_MAXINT64, &value, error))
			return FALSE;
		search->after_id = (gint64) value;
	}
	if (values[5] != NULL) {
		if (!g_ascii_string_to_unsigned (values[5], 10, 1, LIMIT_MAX, &value, error))
			return FALSE;
		search->limit = (guint) value;
	}
	if (values[0] != NULL) {
		if (!sc_message_state_from_string (values[0], &search->state)) {
			g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "state");
			return FALSE;
		}
		search->has_state = TRUE;
	}
	search->list_id = values[1];
	search->stage = values[2];
	search->query = values[3];
	return TRUE;
}

/* Known finding, kept in crashes/admin/: json-glib recurses once per
 * level, and 100,000 nested arrays overflow the stack (SIGSEGV).  Such
 * bodies are skipped here so the search goes on; sc_admin_parse_json_body
 * refuses them before parsing, and with it the replay runs them. */
static gboolean
too_deep (const char *data, gsize length)
{
	guint depth = 0;

	for (gsize i = 0; i < length; i++) {
		if ((data[i] == '[' || data[i] == '{') && ++depth > 1000)
			return TRUE;
		if ((data[i] == ']' || data[i] == '}') && depth > 0)
			depth--;
	}
	return FALSE;
}

/* What sc-admin-api.c's parse_body did: json-glib on the whole body. */
static JsonObject *
parse_json_body (const char *data, gsize length, GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new ();
	JsonNode *root;

	if (length == 0)
		return json_object_new ();
	if (too_deep (data, length)) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "skipped: too deep");
		return NULL;
	}
	if (!json_parser_load_from_data (parser, data, (gssize) length, error))
		return NULL;
	root = json_parser_get_root (parser);
	if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not an object");
		return NULL;
	}
	return json_object_ref (json_node_get_object (root));
}
#else
#define parse_search_query sc_admin_parse_search_query
#define parse_json_body sc_admin_parse_json_body
#endif

/* ASCII case-insensitive substring, as SQLite's LIKE compares ASCII. */
static gboolean
contains (const char *haystack, const char *needle)
{
	gsize n = strlen (needle);

	if (haystack == NULL)
		return FALSE;
	for (const char *p = haystack; *p != '\0'; p++) {
		if (g_ascii_strncasecmp (p, needle, n) == 0)
			return TRUE;
	}
	return n == 0;
}

static gboolean
is_ascii (const char *text)
{
	for (const guchar *p = (const guchar *) text; *p != '\0'; p++) {
		if (*p >= 0x80)
			return FALSE;
	}
	return TRUE;
}

static void
check_search (const ScMessageSearch *parsed)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) found = NULL;
	ScMessageSearch search = *parsed;
	gboolean oracle = search.query != NULL && is_ascii (search.query) && !search.has_state &&
			  search.list_id == NULL && search.stage == NULL && search.after_id == 0;

	if (oracle)
		search.limit = 0;
	found = sc_spool_search (spool, &search, &error);
	SC_FUZZ_ASSERT (found != NULL && error == NULL);
	if (search.limit > 0)
		SC_FUZZ_ASSERT (found->len <= search.limit);
	if (!oracle)
		return;
	for (guint i = 0; i < messages->len; i++) {
		const ScMessageSummary *message = messages->pdata[i];
		gboolean expected = contains (message->subject, search.query) ||
				    contains (message->sender, search.query) ||
				    contains (message->message_id, search.query) ||
				    contains (message->last_error, search.query) ||
				    contains (message->queue_id, search.query);
		gboolean listed = FALSE;

		for (guint j = 0; j < found->len && !listed; j++)
			listed = ((const ScMessageSummary *) found->pdata[j])->id == message->id;
		if (expected != listed)
			g_printerr ("q=“%s” subject=“%s”: expected %d, listed %d\n", search.query,
				    message->subject, expected, listed);
		SC_FUZZ_ASSERT (expected == listed);
	}
}

#ifdef SC_HAVE_ADMIN_PARSERS
#define INJECT_MAX_RECIPIENTS 1000

static void
check_inject_query (const char *query)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAdminEnvelope) envelope = sc_admin_parse_inject_query (query, INJECT_MAX_RECIPIENTS, &error);
	guint n;

	SC_FUZZ_ASSERT ((envelope == NULL) != (error == NULL));
	if (envelope == NULL)
		return;
	SC_FUZZ_ASSERT (envelope->sender != NULL && g_utf8_validate (envelope->sender, -1, NULL));
	SC_FUZZ_ASSERT (envelope->list_id == NULL || (*envelope->list_id != '\0' &&
						      g_utf8_validate (envelope->list_id, -1, NULL)));
	n = envelope->recipients->len - 1; /* NULL-terminated */
	SC_FUZZ_ASSERT (n >= 1 && n <= INJECT_MAX_RECIPIENTS);
	SC_FUZZ_ASSERT (envelope->recipients->pdata[n] == NULL);
	for (guint i = 0; i < n; i++) {
		const char *recipient = envelope->recipients->pdata[i];
		SC_FUZZ_ASSERT (recipient != NULL && *recipient != '\0' && g_utf8_validate (recipient, -1, NULL));
	}
}
#endif

static void
check_body (const char *data, gsize length)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) object = parse_json_body (data, length, &error);

	SC_FUZZ_ASSERT ((object == NULL) != (error == NULL));
	if (object == NULL)
		return;
	/* the bulk-retry members the API reads */
	for (const char *const *key = (const char *const[]){"state", "list", "stage", "q", NULL}; *key != NULL; key++) {
		JsonNode *member = json_object_get_member (object, *key);
		if (member != NULL && JSON_NODE_HOLDS_VALUE (member) &&
		    json_node_get_value_type (member) == G_TYPE_STRING)
			SC_FUZZ_ASSERT (json_node_get_string (member) != NULL);
	}
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	const char *newline = memchr (data, '\n', size);
	gsize query_length = newline != NULL ? (gsize) (newline - text) : size;
	g_autofree char *query_string = g_strndup (text, query_length);
	g_autoptr(GHashTable) query = soup_form_decode (query_string);
	g_autoptr(GError) error = NULL;
	ScMessageSearch search;

	if (parse_search_query (query, &search, &error)) {
		SC_FUZZ_ASSERT (error == NULL);
		SC_FUZZ_ASSERT (search.limit <= LIMIT_MAX);
		check_search (&search);
	} else {
		SC_FUZZ_ASSERT (error != NULL);
	}
#ifdef SC_HAVE_ADMIN_PARSERS
	check_inject_query (query_string);
#endif
	if (newline != NULL)
		check_body (newline + 1, size - query_length - 1);
	return 0;
}
