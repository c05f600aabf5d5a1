/* sc-decorate-template.c — $variables in the list's header and footer templates.
 *
 * The syntax is Python's string.Template, which Mailman operators know:
 * "$list_name" or "${list_name}", and "$$" for a literal dollar.  Unknown
 * variables are an error at config load (sc_decorate_template_check), so a
 * typo is found by check-config and not by every subscriber; at run time
 * they are copied literally, never dropped.  Values are plain text: the
 * caller encodes them for wherever the text ends up.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-i18n.h"

static const char *const known_variables[] = {
    "list_name",
    "list_id",
    "list_post",
    "list_help",
    "list_archive",
    "list_unsubscribe",
    "queue_id",
    "sender",
};

static gboolean
is_name_start (char c)
{
	return g_ascii_isalpha (c) || c == '_';
}

static gboolean
is_name_char (char c)
{
	return g_ascii_isalnum (c) || c == '_';
}

static gboolean
is_known_variable (const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS (known_variables); i++) {
		if (strcmp (known_variables[i], name) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Parses the placeholder starting at text[0] == '$'.  Returns its length
 * (0 when it is not a valid placeholder) and the variable name, or NULL
 * with length 2 for "$$". */
static gsize
template_placeholder (const char *text, char **out_name)
{
	gsize i;

	*out_name = NULL;
	if (text[1] == '$')
		return 2;
	if (text[1] == '{') {
		if (!is_name_start (text[2]))
			return 0;
		for (i = 3; is_name_char (text[i]); i++)
			;
		if (text[i] != '}')
			return 0;
		*out_name = g_strndup (text + 2, i - 2);
		return i + 1;
	}
	if (!is_name_start (text[1]))
		return 0;
	for (i = 2; is_name_char (text[i]); i++)
		;
	*out_name = g_strndup (text + 1, i - 1);
	return i;
}

gboolean
sc_decorate_template_check (const char *text, const char *key, GError **error)
{
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GHashTable) reported =
	    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autofree char *joined = NULL;

	g_return_val_if_fail (key != NULL, FALSE);

	if (text == NULL)
		return TRUE;
	if (!g_utf8_validate (text, -1, NULL)) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     /* TRANSLATORS: %s is a config key, "header" or "footer" */
			     _("%s: the template is not valid UTF-8"),
			     key);
		return FALSE;
	}
	for (const char *p = text; *p != '\0'; p++) {
		g_autofree char *name = NULL;
		gsize length;

		if (*p != '$')
			continue;
		length = template_placeholder (p, &name);
		if (length == 0) {
			if (!g_hash_table_contains (reported, "$")) {
				g_hash_table_add (reported, g_strdup ("$"));
				g_ptr_array_add (
				    problems,
				    /* TRANSLATORS: keep $$ and $list_name as they are */
				    g_strdup (_("“$” must start a variable such as "
						 "$list_name or be doubled as $$")));
			}
			continue;
		}
		if (name != NULL && !is_known_variable (name) &&
		    !g_hash_table_contains (reported, name)) {
			g_ptr_array_add (problems,
					 g_strdup_printf (_("unknown variable “$%s”"), name));
			g_hash_table_add (reported, g_steal_pointer (&name));
		}
		p += length - 1;
	}
	if (problems->len == 0)
		return TRUE;

	g_ptr_array_add (problems, NULL);
	joined = g_strjoinv ("; ", (char **) problems->pdata);
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     /* TRANSLATORS: "footer: unknown variable “$lsit_name” (known: …)" */
		     _("%s: %s (known: $list_name, $list_id, $list_post, $list_help, "
			"$list_archive, $list_unsubscribe, $queue_id, $sender)"),
		     key,
		     joined);
	return FALSE;
}

GHashTable *
sc_decorate_template_variables_new (const ScListConfig *list,
				    const char *queue_id,
				    const char *sender)
{
	GHashTable *variables = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

	g_return_val_if_fail (list != NULL, NULL);

	g_hash_table_insert (variables, (gpointer) "list_name", g_strdup (list->name));
	g_hash_table_insert (variables, (gpointer) "list_id", g_strdup (list->id));
	g_hash_table_insert (variables, (gpointer) "list_post", g_strdup (list->post));
	g_hash_table_insert (variables, (gpointer) "list_help", g_strdup (list->help));
	g_hash_table_insert (variables, (gpointer) "list_archive", g_strdup (list->archive_url));
	g_hash_table_insert (variables,
			     (gpointer) "list_unsubscribe",
			     list->unsubscribe != NULL ? g_strjoinv (", ", list->unsubscribe)
						       : NULL);
	g_hash_table_insert (variables, (gpointer) "queue_id", g_strdup (queue_id));
	g_hash_table_insert (variables, (gpointer) "sender", g_strdup (sender));
	return variables;
}

char *
sc_decorate_template_expand (const char *text, GHashTable *variables)
{
	g_autoptr(GString) result = NULL;
	gsize end;

	g_return_val_if_fail (variables != NULL, NULL);

	if (text == NULL)
		return NULL;
	result = g_string_sized_new (strlen (text) + 64);
	for (const char *p = text; *p != '\0'; p++) {
		g_autofree char *name = NULL;
		gsize length;

		if (*p == '\r') {
			/* CRLF and lone CR both end a line; the caller picks the wire form. */
			if (p[1] != '\n')
				g_string_append_c (result, '\n');
			continue;
		}
		if (*p != '$') {
			g_string_append_c (result, *p);
			continue;
		}
		length = template_placeholder (p, &name);
		if (length == 0) {
			g_string_append_c (result, '$');
			continue;
		}
		if (name == NULL) {
			g_string_append_c (result, '$');
		} else if (g_hash_table_contains (variables, name)) {
			const char *value = g_hash_table_lookup (variables, name);
			if (value != NULL)
				g_string_append (result, value);
		} else {
			g_string_append_len (result, p, length);
		}
		p += length - 1;
	}

	/* One final newline: the text is placed as whole lines. */
	end = result->len;
	while (end > 0 && result->str[end - 1] == '\n')
		end--;
	g_string_truncate (result, end);
	for (const char *p = result->str; *p != '\0'; p++) {
		if (!g_ascii_isspace (*p)) {
			g_string_append_c (result, '\n');
			return g_string_free (g_steal_pointer (&result), FALSE);
		}
	}
	return NULL;
}
