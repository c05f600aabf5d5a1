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

static const char *const url_variables[] = {"recipient", "list_id", "list_name", "token", NULL};

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
sc_list_unsubscribe_check (const ScListConfig *list, GError **error)
{
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *joined = NULL;
	const char *url = list->unsubscribe_url;

	if (url == NULL)
		return TRUE;
	if (!sc_template_check (url, url_variables, problems)) {
		g_ptr_array_add (problems, NULL);
		joined = g_strjoinv ("; ", (char **) problems->pdata);
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     /* TRANSLATORS: the first %s is the key, unsubscribe-url */
			     _("%s: %s (known: $recipient, $list_id, $list_name, $token)"),
			     SC_KEY_LIST_UNSUBSCRIBE_URL,
			     joined);
		return FALSE;
	}
	if (sc_template_uses (url, "token") &&
	    (!sc_template_uses (url, "recipient") || list->unsubscribe_secret_file == NULL)) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     _("%s: $token needs $recipient (it signs the address) and %s"),
			     SC_KEY_LIST_UNSUBSCRIBE_URL,
			     SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE);
		return FALSE;
	}
	return TRUE;
}

char *
sc_list_unsubscribe_token (const ScListConfig *list, const char *recipient, GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree char *secret = NULL;
	g_autoptr(GHmac) hmac = NULL;
	g_autofree char *text = NULL;
	guint8 digest[32];
	gsize digest_length = sizeof digest;
	char *token;
	gsize secret_length = 0;

	if (list->unsubscribe_secret_file == NULL ||
	    !g_file_get_contents (list->unsubscribe_secret_file, &secret, &secret_length,
				  &error_local)) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s: cannot read %s: %s"), SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE,
			     list->unsubscribe_secret_file != NULL ? list->unsubscribe_secret_file : "-",
			     error_local != NULL ? error_local->message : _("not set"));
		return NULL;
	}
	/* a trailing newline is the editor's, not the secret's */
	while (secret_length > 0 && (secret[secret_length - 1] == '\n' || secret[secret_length - 1] == '\r'))
		secret_length--;
	if (secret_length == 0) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s: %s is empty"), SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE,
			     list->unsubscribe_secret_file);
		return NULL;
	}
	hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) secret, secret_length);
	text = g_strdup_printf ("%s\n%s", list->id, recipient);
	g_hmac_update (hmac, (const guchar *) text, -1);
	g_hmac_get_digest (hmac, digest, &digest_length);
	memset (secret, 0, secret_length);
	token = g_base64_encode (digest, digest_length);
	g_strdelimit (token, "+", '-');
	g_strdelimit (token, "/", '_');
	*strchrnul (token, '=') = '\0';
	return token;
}

gboolean
sc_list_unsubscribe_is_personal (const ScListConfig *list)
{
	return list->unsubscribe_url != NULL && sc_template_uses (list->unsubscribe_url, "recipient");
}

static char *
expand_url (const ScListConfig *list, const char *recipient, GError **error)
{
	g_autoptr(GHashTable) variables = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);

	if (recipient != NULL && sc_template_uses (list->unsubscribe_url, "token")) {
		char *token = sc_list_unsubscribe_token (list, recipient, error);

		if (token == NULL)
			return NULL;
		g_hash_table_insert (variables, (gpointer) "token", token); /* base64url: URL-safe */
	}

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
sc_list_unsubscribe_value (const ScListConfig *list, const char *recipient, GError **error)
{
	g_autoptr(GPtrArray) uris = g_ptr_array_new_with_free_func (g_free);

	if (list->unsubscribe_url != NULL) {
		g_autofree char *url = expand_url (list, recipient, error);

		if (url == NULL)
			return NULL;
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
sc_list_unsubscribe_add (GBytes *message,
			 const ScListConfig *list,
			 const char *recipient,
			 GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree char *value = sc_list_unsubscribe_value (list, recipient, &error_local);
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	const char *first_newline = memchr (data, '\n', length);
	const char *newline =
	    first_newline != NULL && first_newline > data && first_newline[-1] == '\r' ? "\r\n" : "\n";
	GString *out;

	if (error_local != NULL) {
		/* the operator can fix the file: the copy waits for it */
		g_set_error_literal (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
				     error_local->message);
		return NULL;
	}
	if (value == NULL)
		return g_bytes_ref (message);
	out = g_string_sized_new (length + strlen (value) + 128);
	append_folded (out, "List-Unsubscribe", value, newline);
	if (sc_list_unsubscribe_one_click (list))
		g_string_append_printf (out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click%s", newline);
	g_string_append_len (out, data, length);
	return g_string_free_to_bytes (out);
}
