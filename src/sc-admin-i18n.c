/* sc-admin-i18n.c — the dashboard's language: Accept-Language negotiated
 * against the installed catalogues, and GET /i18n.json, which hands
 * app.js the chosen catalogue's translations (doc/admin-api.md).
 *
 * The catalogue is read from its .mo file for each request (sc-catalog.h),
 * not through gettext: the daemon's locale is one for all threads, is
 * "C" under systemd, and a language's locale need not be generated on
 * the machine for its catalogue to be installed.
 */
#include "config.h"

#include <string.h>

#include "sc-admin-private.h"
#include "sc-catalog.h"
#include "sc-i18n.h"

typedef struct {
	char *range;  /* (owned) lower case: "de-de", "de", "*" */
	guint quality; /* thousandths: 0 … 1000 */
	guint order;
} ScLanguageRange;

static void
language_range_clear (ScLanguageRange *range)
{
	g_free (range->range);
}

/* RFC 9110 qvalue: "0", "0.5", "1.000"; -1 when it is none. */
static int
parse_quality (const char *text)
{
	int value;
	int digits = 0;

	if ((text[0] != '0' && text[0] != '1'))
		return -1;
	value = (text[0] - '0') * 1000;
	text++;
	if (*text == '.') {
		text++;
		for (int scale = 100; g_ascii_isdigit (*text) && digits < 3; text++, digits++, scale /= 10)
			value += (*text - '0') * scale;
	}
	if (*text != '\0' || value > 1000)
		return -1;
	return value;
}

/* A language-range (RFC 4647): "*" or 1–8 letters, then "-" and 1–8
 * letters or digits per subtag.  Anything else is ignored, and nothing
 * else can reach a file name. */
static gboolean
range_is_valid (const char *range)
{
	gsize run = 0;
	gboolean first = TRUE;

	if (strcmp (range, "*") == 0)
		return TRUE;
	for (const char *p = range;; p++) {
		if (*p == '-' || *p == '\0') {
			if (run == 0 || run > 8)
				return FALSE;
			if (*p == '\0')
				return TRUE;
			run = 0;
			first = FALSE;
		} else if (g_ascii_isalpha (*p) || (!first && g_ascii_isdigit (*p))) {
			run++;
		} else {
			return FALSE;
		}
	}
}

static int
compare_ranges (gconstpointer a, gconstpointer b)
{
	const ScLanguageRange *x = a;
	const ScLanguageRange *y = b;

	if (x->quality != y->quality)
		return x->quality > y->quality ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The ranges of the header, best first (equal ones in the header's
 * order), q=0 ones included (they exclude). */
static GArray *
parse_accept_language (const char *header)
{
	GArray *ranges = g_array_new (FALSE, TRUE, sizeof (ScLanguageRange));
	g_auto(GStrv) items = g_strsplit (header, ",", 64);

	g_array_set_clear_func (ranges, (GDestroyNotify) language_range_clear);
	for (guint i = 0; items[i] != NULL; i++) {
		g_auto(GStrv) parts = g_strsplit (items[i], ";", 8);
		ScLanguageRange range = {0};
		int quality = 1000;
		char *name;

		if (parts[0] == NULL)
			continue; /* an empty element: "a,,b" */
		name = g_strstrip (parts[0]);
		if (!range_is_valid (name))
			continue;
		for (guint j = 1; parts[j] != NULL; j++) {
			char *parameter = g_strstrip (parts[j]);
			if (g_ascii_strncasecmp (parameter, "q=", 2) == 0)
				quality = parse_quality (parameter + 2);
		}
		if (quality < 0)
			continue;
		range.range = g_ascii_strdown (name, -1);
		range.quality = quality;
		range.order = i;
		g_array_append_val (ranges, range);
	}
	g_array_sort (ranges, compare_ranges);
	return ranges;
}

/* Refused with q=0: that very range, or "*" for what no other range names. */
static gboolean
is_excluded (GArray *ranges, const char *tag)
{
	for (guint i = 0; i < ranges->len; i++) {
		const ScLanguageRange *range = &g_array_index (ranges, ScLanguageRange, i);
		if (range->quality == 0 && strcmp (range->range, tag) == 0)
			return TRUE;
	}
	return FALSE;
}

/* app.js picks a plural form by n != 1: only such catalogues are offered. */
static gboolean
plural_rule_is_germanic (const ScCatalog *catalog)
{
	g_autofree char *rule = sc_catalog_get_header (catalog, "Plural-Forms");
	g_autoptr(GString) squeezed = g_string_new (NULL);

	if (rule == NULL)
		return FALSE;
	for (const char *p = rule; *p != '\0'; p++) {
		if (!g_ascii_isspace (*p))
			g_string_append_c (squeezed, *p);
	}
	return strcmp (squeezed->str, "nplurals=2;plural=(n!=1);") == 0 ||
	       strcmp (squeezed->str, "nplurals=2;plural=n!=1;") == 0;
}

/* The catalogue of the gettext locale name @name ("de", "de_DE"), if one
 * is installed and the dashboard can use it. */
static ScCatalog *
try_catalogue (const char *name)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = sc_catalog_path (name);
	g_autoptr(ScCatalog) catalog = NULL;

	if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
		return NULL;
	catalog = sc_catalog_new_from_file (path, &error);
	if (catalog == NULL) {
		g_warning ("admin: ignoring the catalogue %s: %s", path, error->message);
		return NULL;
	}
	if (!plural_rule_is_germanic (catalog)) {
		g_debug ("admin: the catalogue %s has a plural rule the dashboard does not know", path);
		return NULL;
	}
	return g_steal_pointer (&catalog);
}

ScCatalog *
sc_admin_negotiate_language (const char *accept_language, char **out_language)
{
	g_autoptr(GArray) ranges = NULL;

	*out_language = NULL;
	if (accept_language == NULL)
		return NULL;
	ranges = parse_accept_language (accept_language);
	for (guint i = 0; i < ranges->len; i++) {
		const ScLanguageRange *range = &g_array_index (ranges, ScLanguageRange, i);
		g_auto(GStrv) subtags = NULL;
		g_autofree char *regional = NULL;
		ScCatalog *catalog;

		if (range->quality == 0)
			break; /* sorted: the rest are refusals */
		/* any language, or English: the built-in strings */
		if (strcmp (range->range, "*") == 0)
			return NULL;
		subtags = g_strsplit (range->range, "-", -1);
		if (strcmp (subtags[0], "en") == 0)
			return NULL;
		/* "de-DE": de_DE's catalogue, else de's (unless "de;q=0") */
		if (subtags[1] != NULL && strlen (subtags[1]) == 2) {
			g_autofree char *region = g_ascii_strup (subtags[1], -1);
			regional = g_strdup_printf ("%s_%s", subtags[0], region);
			catalog = try_catalogue (regional);
			if (catalog != NULL) {
				*out_language = g_strdup_printf ("%s-%s", subtags[0], region);
				return catalog;
			}
		}
		if (subtags[1] != NULL && is_excluded (ranges, subtags[0]))
			continue;
		catalog = try_catalogue (subtags[0]);
		if (catalog != NULL) {
			*out_language = g_strdup (subtags[0]);
			return catalog;
		}
	}
	return NULL;
}

/* Each NUL-separated form valid UTF-8 (JSON strings must be). */
static gboolean
forms_are_utf8 (const char *forms, gsize length)
{
	for (const char *form = forms; form < forms + length; form += strlen (form) + 1) {
		if (!g_utf8_validate (form, -1, NULL))
			return FALSE;
	}
	return TRUE;
}

/* {msgid: msgstr} of every translated entry, a plural one as [forms]. */
static JsonNode *
strings_json (const ScCatalog *catalog)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();

	json_builder_begin_object (builder);
	for (guint i = 0; catalog != NULL && i < sc_catalog_get_size (catalog); i++) {
		const char *msgid;
		const char *plural;
		const char *forms;
		gsize length;

		sc_catalog_get_entry (catalog, i, &msgid, &plural, &forms, &length);
		/* the header, and entries with a msgctxt (none of app.js's) */
		if (*msgid == '\0' || strchr (msgid, '\004') != NULL || length == 0)
			continue;
		if (!g_utf8_validate (msgid, -1, NULL) || !forms_are_utf8 (forms, length))
			continue;
		json_builder_set_member_name (builder, msgid);
		if (plural == NULL) {
			json_builder_add_string_value (builder, forms);
			continue;
		}
		json_builder_begin_array (builder);
		for (const char *form = forms; form < forms + length; form += strlen (form) + 1)
			json_builder_add_string_value (builder, form);
		json_builder_end_array (builder);
	}
	json_builder_end_object (builder);
	return json_builder_get_root (builder);
}

const char *
sc_admin_translate (const ScCatalog *catalog, const char *msgid)
{
	const char *text = catalog != NULL ? sc_catalog_lookup (catalog, msgid) : NULL;

	return text != NULL ? text : msgid;
}

void
sc_admin_set_language_headers (SoupServerMessage *message, const char *language)
{
	SoupMessageHeaders *response = soup_server_message_get_response_headers (message);

	/* one address, an answer per Accept-Language: caches must know */
	soup_message_headers_replace (response, "Vary", "Accept-Language");
	soup_message_headers_replace (response, "Content-Language", language != NULL ? language : "en");
}

void
sc_admin_i18n_handle (SoupServerMessage *message)
{
	SoupMessageHeaders *request = soup_server_message_get_request_headers (message);
	SoupMessageHeaders *response = soup_server_message_get_response_headers (message);
	g_autofree char *language = NULL;
	g_autoptr(ScCatalog) catalog = NULL;
	g_autoptr(JsonObject) object = json_object_new ();
	g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);

	if (strcmp (soup_server_message_get_method (message), "GET") != 0 &&
	    strcmp (soup_server_message_get_method (message), "HEAD") != 0) {
		sc_admin_reply_error (message, SOUP_STATUS_METHOD_NOT_ALLOWED, _("method not allowed"));
		return;
	}
	catalog = sc_admin_negotiate_language (soup_message_headers_get_one (request, "Accept-Language"),
					       &language);
	json_object_set_string_member (object, "language", language != NULL ? language : "en");
	json_object_set_member (object, "strings", strings_json (catalog));
	json_node_set_object (node, object);
	sc_admin_reply_json (message, SOUP_STATUS_OK, node);
	sc_admin_set_language_headers (message, language);
	soup_message_headers_replace (response, "Cache-Control", "no-cache");
}
