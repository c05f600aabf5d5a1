/* sc-decorate-template.c — $variables in the list's header and footer templates.
 *
 * The syntax and the substitution are sc-template.c's; this file knows the
 * variables of header and footer texts and puts a text in whole lines.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-i18n.h"
#include "sc-template.h"

static const char *const known_variables[] = {
    "list_name",
    "list_id",
    "list_post",
    "list_help",
    "list_archive",
    "list_unsubscribe",
    "queue_id",
    "sender",
    NULL,
};

gboolean
sc_decorate_template_check (const char *text, const char *key, GError **error)
{
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
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
	if (sc_template_check (text, known_variables, problems))
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
	g_autofree char *substituted = NULL;
	g_autoptr(GString) result = NULL;
	gsize end;

	g_return_val_if_fail (variables != NULL, NULL);

	if (text == NULL)
		return NULL;
	substituted = sc_template_substitute (text, variables);
	result = g_string_sized_new (strlen (substituted) + 1);
	for (const char *p = substituted; *p != '\0'; p++) {
		if (*p == '\r') {
			/* CRLF and lone CR both end a line; the caller picks the wire form. */
			if (p[1] != '\n')
				g_string_append_c (result, '\n');
			continue;
		}
		g_string_append_c (result, *p);
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
