/* sc-list-unsubscribe.c — the List-Unsubscribe field (RFC 2369) and one-click (RFC 8058).
 *
 * RFC 8058 asks for an https: URI that unsubscribes on a POST with no
 * further step, and for the List-Unsubscribe-Post field beside it; both
 * must be covered by a DKIM signature (the sign stage over-signs them).
 * An unsubscribe-url naming $recipient makes the message personal: deliver
 * then sends it one recipient at a time, with these fields added at the
 * top of the header block before it is signed.
 */
#include "config.h"

#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-list-unsubscribe.h"
#include "sc-template.h"

#define FOLD_WIDTH 76

static const char *const url_variables[] = {"recipient", "list_id", "list_name", NULL};

char *
sc_list_uri_angled (const char *value)
{
	g_autofree char *trimmed = g_strstrip (g_strdup (value));
	const char *p = trimmed;

	if (trimmed[0] == '<')
		return g_steal_pointer (&trimmed);
	/* RFC 3986 scheme ":" */
	if (g_ascii_isalpha (*p)) {
		while (g_ascii_isalnum (*p) || *p == '+' || *p == '-' || *p == '.')
			p++;
		if (*p == ':')
			return g_strdup_printf ("<%s>", trimmed);
	}
	if (strchr (trimmed, '@') != NULL)
		return g_strdup_printf ("<mailto:%s>", trimmed);
	return g_strdup_printf ("<%s>", trimmed);
}

gboolean
sc_list_unsubscribe_check (const char *url_template, GError **error)
{
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *joined = NULL;

	if (url_template == NULL || sc_template_check (url_template, url_variables, problems))
		return TRUE;
	g_ptr_array_add (problems, NULL);
	joined = g_strjoinv ("; ", (char **) problems->pdata);
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     /* TRANSLATORS: the first %s is the key, unsubscribe-url */
		     _("%s: %s (known: $recipient, $list_id, $list_name)"),
		     SC_KEY_LIST_UNSUBSCRIBE_URL,
		     joined);
	return FALSE;
}

gboolean
sc_list_unsubscribe_is_personal (const ScListConfig *list)
{
	return list->unsubscribe_url != NULL && sc_template_uses (list->unsubscribe_url, "recipient");
}

static char *
expand_url (const ScListConfig *list, const char *recipient)
{
	g_autoptr(GHashTable) variables = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

	/* each value is one path segment or query value: nothing reserved
	 * may pass through unescaped */
	g_hash_table_insert (variables,
			     (gpointer) "recipient",
			     recipient != NULL ? g_uri_escape_string (recipient, NULL, FALSE) : NULL);
	g_hash_table_insert (variables, (gpointer) "list_id", g_uri_escape_string (list->id, NULL, FALSE));
	g_hash_table_insert (variables,
			     (gpointer) "list_name",
			     g_uri_escape_string (list->name != NULL ? list->name : "", NULL, FALSE));
	return sc_template_substitute (list->unsubscribe_url, variables);
}

char *
sc_list_unsubscribe_value (const ScListConfig *list, const char *recipient)
{
	g_autoptr(GPtrArray) uris = g_ptr_array_new_with_free_func (g_free);

	if (list->unsubscribe_url != NULL) {
		g_autofree char *url = expand_url (list, recipient);
		g_ptr_array_add (uris, sc_list_uri_angled (url));
	}
	for (gsize i = 0; list->unsubscribe != NULL && list->unsubscribe[i] != NULL; i++) {
		if (list->unsubscribe[i][0] != '\0')
			g_ptr_array_add (uris, sc_list_uri_angled (list->unsubscribe[i]));
	}
	if (uris->len == 0)
		return NULL;
	g_ptr_array_add (uris, NULL);
	return g_strjoinv (", ", (char **) uris->pdata);
}

gboolean
sc_list_unsubscribe_one_click (const ScListConfig *list)
{
	if (list->unsubscribe_url != NULL)
		return TRUE;
	if (!list->unsubscribe_one_click)
		return FALSE;
	for (gsize i = 0; list->unsubscribe != NULL && list->unsubscribe[i] != NULL; i++) {
		if (g_ascii_strncasecmp (list->unsubscribe[i], "https:", 6) == 0)
			return TRUE;
	}
	return FALSE;
}

/* "List-Unsubscribe: <a>, <b>" folded after a comma where a line would
 * pass FOLD_WIDTH (a URI itself is never broken). */
static void
append_folded (GString *out, const char *name, const char *value, const char *newline)
{
	g_auto(GStrv) items = g_strsplit (value, ", ", -1);
	gsize line = strlen (name) + 1;

	g_string_append_printf (out, "%s:", name);
	for (gsize i = 0; items[i] != NULL; i++) {
		gsize needed = strlen (items[i]) + 1 + (items[i + 1] != NULL ? 1 : 0);

		if (i > 0 && line + needed > FOLD_WIDTH) {
			g_string_append (out, newline);
			line = 0;
		}
		g_string_append_printf (out, " %s%s", items[i], items[i + 1] != NULL ? "," : "");
		line += needed;
	}
	g_string_append (out, newline);
}

GBytes *
sc_list_unsubscribe_add (GBytes *message, const ScListConfig *list, const char *recipient)
{
	g_autofree char *value = sc_list_unsubscribe_value (list, recipient);
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	const char *first_newline = memchr (data, '\n', length);
	const char *newline =
	    first_newline != NULL && first_newline > data && first_newline[-1] == '\r' ? "\r\n" : "\n";
	GString *out;

	if (value == NULL)
		return g_bytes_ref (message);
	out = g_string_sized_new (length + strlen (value) + 128);
	append_folded (out, "List-Unsubscribe", value, newline);
	if (sc_list_unsubscribe_one_click (list))
		g_string_append_printf (out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click%s", newline);
	g_string_append_len (out, data, length);
	return g_string_free_to_bytes (out);
}
