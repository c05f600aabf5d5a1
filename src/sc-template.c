/* sc-template.c — $variables in texts the operator writes (footers, URLs).
 *
 * Unknown variables are an error at config load (sc_template_check), so a
 * typo is found by check-config and not by every subscriber; at run time
 * they are copied literally, never dropped.  Values are plain text: the
 * caller encodes them for wherever the text ends up.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-template.h"

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
sc_template_check (const char *text, const char *const *known, GPtrArray *problems)
{
	g_autoptr(GHashTable) reported = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	guint before = problems->len;

	for (const char *p = text; p != NULL && *p != '\0'; p++) {
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
		if (name != NULL && !g_strv_contains (known, name) &&
		    !g_hash_table_contains (reported, name)) {
			g_ptr_array_add (problems,
					 g_strdup_printf (_("unknown variable “$%s”"), name));
			g_hash_table_add (reported, g_steal_pointer (&name));
		}
		p += length - 1;
	}
	return problems->len == before;
}

gboolean
sc_template_uses (const char *text, const char *name)
{
	for (const char *p = text; p != NULL && *p != '\0'; p++) {
		g_autofree char *found = NULL;
		gsize length;

		if (*p != '$')
			continue;
		length = template_placeholder (p, &found);
		if (found != NULL && strcmp (found, name) == 0)
			return TRUE;
		if (length > 0)
			p += length - 1;
	}
	return FALSE;
}

char *
sc_template_substitute (const char *text, GHashTable *variables)
{
	GString *result = g_string_sized_new (strlen (text) + 64);

	for (const char *p = text; *p != '\0'; p++) {
		g_autofree char *name = NULL;
		gsize length;

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
	return g_string_free (result, FALSE);
}
