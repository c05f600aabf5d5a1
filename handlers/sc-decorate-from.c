/* sc-decorate-from.c — DMARC mitigation: the author's From becomes the list's.
 *
 * A list that adds a footer or a subject prefix breaks the author's DKIM
 * signature; when the author's domain publishes DMARC p=quarantine or
 * p=reject, receivers then junk or refuse the post.  As Mailman 3's
 * munge_from (handlers/dmarc.py), the From is rewritten to the list:
 *
 *   From: Alice Example via dev <dev@lists.example.org>
 *   Reply-To: Alice Example <alice@example.com>   (or Cc, from-original=cc)
 *   X-Original-From: Alice Example <alice@example.com>
 *
 * The display name is the author's name, else the local part of their
 * address (a name that is itself an address is cut to its local part, so
 * no second domain shows in From — Mailman does the same with "---").
 * The author is added to an existing Reply-To (or Cc) unless already
 * there; that field is left byte for byte when nothing is added.
 * X-Original-From is the original field renamed, its bytes untouched; an
 * X-Original-From the message had already is replaced (it described a
 * From that is no longer there).  "via" is not translated: it is part of
 * the message, not of the operator's interface, and must not depend on
 * the locale of the daemon that happens to run the stage.
 *
 * Several authors in From (RFC 5322 allows it): every author's domain is
 * asked and the strictest policy wins; all authors go to Reply-To/Cc and
 * their names, comma-separated, before "via".  Several From fields are
 * read as one list and become one.  A From with no address in it is left
 * alone with a note (there is no domain to ask and nobody to credit).  A
 * From that is already the list's address (the list's own
 * announcements) is left alone without a lookup.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-dmarc.h"
#include "sc-duration.h"
#include "sc-i18n.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (InternetAddress, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (InternetAddressList, g_object_unref)

/* Every mailbox of @list, groups flattened, that has an address with a domain. */
static void
collect_mailboxes (InternetAddressList *list, GPtrArray *out, guint depth)
{
	if (list == NULL || depth > 4)
		return;
	for (int i = 0; i < internet_address_list_length (list); i++) {
		InternetAddress *address = internet_address_list_get_address (list, i);

		if (INTERNET_ADDRESS_IS_GROUP (address)) {
			collect_mailboxes (
			    internet_address_group_get_members (INTERNET_ADDRESS_GROUP (address)),
			    out,
			    depth + 1);
		} else if (INTERNET_ADDRESS_IS_MAILBOX (address)) {
			const char *addr =
			    internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address));
			const char *at = addr != NULL ? strrchr (addr, '@') : NULL;

			if (at != NULL && at != addr && at[1] != '\0')
				g_ptr_array_add (out, g_object_ref (address));
		}
	}
}

static const char *
mailbox_addr (InternetAddress *address)
{
	return internet_address_mailbox_get_addr (INTERNET_ADDRESS_MAILBOX (address));
}

static const char *
mailbox_domain (InternetAddress *address)
{
	return strrchr (mailbox_addr (address), '@') + 1;
}

/* The local part without the quotes a quoted one comes in. */
static char *
local_part (const char *addr)
{
	const char *at = strrchr (addr, '@');
	g_autofree char *local = g_strndup (addr, at != NULL ? (gsize) (at - addr) : strlen (addr));
	gsize length = strlen (local);

	if (length >= 2 && local[0] == '"' && local[length - 1] == '"')
		return g_strndup (local + 1, length - 2);
	return g_steal_pointer (&local);
}

static char *
author_name (InternetAddress *address)
{
	const char *name = internet_address_get_name (address);
	g_autofree char *trimmed = g_strstrip (g_strdup (name != NULL ? name : ""));

	if (trimmed[0] == '\0')
		return local_part (mailbox_addr (address));
	/* "alice@example.com" <alice@example.com> */
	if (strchr (trimmed, '@') != NULL && strpbrk (trimmed, " \t") == NULL)
		return local_part (trimmed);
	return g_steal_pointer (&trimmed);
}

static gboolean
list_has_addr (InternetAddressList *list, const char *addr)
{
	g_autoptr(GPtrArray) mailboxes = g_ptr_array_new_with_free_func (g_object_unref);

	collect_mailboxes (list, mailboxes, 0);
	for (guint i = 0; i < mailboxes->len; i++) {
		if (g_ascii_strcasecmp (mailbox_addr (mailboxes->pdata[i]), addr) == 0)
			return TRUE;
	}
	return FALSE;
}

/* Adds the authors to the field @name (Reply-To or Cc) unless there. */
static void
add_authors (ScDecorateHeaders *headers, const char *name, GPtrArray *authors)
{
	g_autofree char *value = sc_decorate_headers_get (headers, name);
	g_autoptr(InternetAddressList) list = NULL;
	g_autofree char *text = NULL;
	gboolean changed = FALSE;

	if (value != NULL)
		list = internet_address_list_parse (NULL, value);
	if (list == NULL)
		list = internet_address_list_new ();
	for (guint i = 0; i < authors->len; i++) {
		if (list_has_addr (list, mailbox_addr (authors->pdata[i])))
			continue;
		internet_address_list_add (list, authors->pdata[i]);
		changed = TRUE;
	}
	if (!changed)
		return;
	text = internet_address_list_to_string (list, NULL, FALSE);
	sc_decorate_headers_replace (headers, name, text);
}

/* "X-Original-From:" and the bytes after the field's colon. */
static char *
original_field (const ScDecorateField *field)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (field->raw, &length);
	const char *colon = memchr (data, ':', length);
	GString *text = g_string_new ("X-Original-From:");

	g_string_append_len (text, colon + 1, (gssize) (data + length - colon - 1));
	if (text->len < 2 || text->str[text->len - 2] != '\r' || text->str[text->len - 1] != '\n')
		g_string_append (text, "\r\n");
	return g_string_free (text, FALSE);
}

static void
rewrite (ScDecorateHeaders *headers, const ScListConfig *list, GPtrArray *authors)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) originals = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(InternetAddress) mailbox = NULL;
	g_autofree char *joined = NULL;
	g_autofree char *display = NULL;
	g_autofree char *from = NULL;
	const char *list_name = list->name != NULL && list->name[0] != '\0' ? list->name : list->id;
	gboolean first = TRUE;

	for (guint i = 0; i < authors->len; i++)
		g_ptr_array_add (names, author_name (authors->pdata[i]));
	g_ptr_array_add (names, NULL);
	joined = g_strjoinv (", ", (char **) names->pdata);
	display = g_strdup_printf ("%s via %s", joined, list_name);
	mailbox = internet_address_mailbox_new (display, list->address);
	from = internet_address_to_string (mailbox, NULL, FALSE);

	/* the first From keeps its place, any other goes */
	for (guint i = 0; i < headers->fields->len;) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);

		if (g_ascii_strcasecmp (field->name, "From") != 0) {
			i++;
			continue;
		}
		g_ptr_array_add (originals, original_field (field));
		if (first) {
			first = FALSE;
			i++;
		} else {
			g_ptr_array_remove_index (headers->fields, i);
		}
	}
	sc_decorate_headers_replace (headers, "From", from);

	add_authors (headers,
		     list->from_original == SC_FROM_ORIGINAL_CC ? "Cc" : "Reply-To",
		     authors);
	sc_decorate_headers_remove (headers, "X-Original-From", FALSE);
	for (guint i = 0; i < originals->len; i++)
		sc_decorate_headers_append_raw (headers, "X-Original-From", originals->pdata[i]);
}

static void
dmarc_options (const ScConfig *config, ScDmarcOptions *options)
{
	if (config != NULL) {
		options->dns_servers = (const char *const *) config->dns_servers;
		options->dns_timeout = config->dns_timeout;
		options->public_suffix_list = config->public_suffix_list;
	}
	/* a hand-built config (tests, fuzzers) may leave these unset */
	if (options->dns_timeout <= 0)
		(void) sc_duration_parse (SC_DEF_DNS_TIMEOUT, &options->dns_timeout, NULL);
	if (options->public_suffix_list == NULL)
		options->public_suffix_list = SC_DEF_PUBLIC_SUFFIX_LIST;
}

/* The strictest policy among the authors' domains; FALSE on a failure. */
static gboolean
strictest_policy (const ScConfig *config, GPtrArray *authors, ScDmarcResult *out, GError **error)
{
	ScDmarcOptions options = {NULL, 0, NULL};
	g_autoptr(GHashTable) asked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	dmarc_options (config, &options);
	memset (out, 0, sizeof *out);
	for (guint i = 0; i < authors->len; i++) {
		g_autofree char *domain = g_ascii_strdown (mailbox_domain (authors->pdata[i]), -1);
		ScDmarcResult result = {SC_DMARC_POLICY_NONE, NULL, NULL};
		g_autoptr(GError) error_local = NULL;

		if (!g_hash_table_add (asked, g_strdup (domain)))
			continue;
		if (!sc_dmarc_lookup (&options, domain, &result, &error_local)) {
			g_set_error (error,
				     error_local->domain,
				     error_local->code,
				     _("the DMARC policy of %s is unknown: %s"),
				     domain,
				     error_local->message);
			sc_dmarc_result_clear (out);
			return FALSE;
		}
		if (result.policy > out->policy) {
			sc_dmarc_result_clear (out);
			*out = result;
		} else {
			sc_dmarc_result_clear (&result);
		}
	}
	return TRUE;
}

gboolean
sc_decorate_from_rewrite (ScDecorateHeaders *headers,
			  const ScConfig *config,
			  const ScListConfig *list,
			  char **out_note,
			  GError **error)
{
	g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) authors = g_ptr_array_new_with_free_func (g_object_unref);
	g_autoptr(InternetAddressList) parsed = NULL;
	g_autofree char *joined = NULL;
	ScDmarcResult policy = {SC_DMARC_POLICY_NONE, NULL, NULL};
	gboolean all_list = TRUE;

	g_return_val_if_fail (out_note != NULL, FALSE);

	*out_note = NULL;
	if (list->from_rewrite == SC_FROM_REWRITE_NEVER || list->address == NULL ||
	    list->address[0] == '\0')
		return TRUE;

	for (guint i = 0; i < headers->fields->len; i++) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		gsize length = 0;
		const char *data = g_bytes_get_data (field->raw, &length);
		const char *colon = memchr (data, ':', length);

		if (g_ascii_strcasecmp (field->name, "From") == 0 && colon != NULL)
			g_ptr_array_add (values,
					 g_strndup (colon + 1, (gsize) (data + length - colon - 1)));
	}
	g_ptr_array_add (values, NULL);
	joined = g_strjoinv (",", (char **) values->pdata);
	parsed = internet_address_list_parse (NULL, joined);
	collect_mailboxes (parsed, authors, 0);
	if (authors->len == 0) {
		*out_note = g_strdup (_("From not rewritten: it holds no author address"));
		return TRUE;
	}
	for (guint i = 0; i < authors->len; i++) {
		if (g_ascii_strcasecmp (mailbox_addr (authors->pdata[i]), list->address) != 0)
			all_list = FALSE;
	}
	if (all_list)
		return TRUE;

	if (list->from_rewrite == SC_FROM_REWRITE_DMARC) {
		if (!strictest_policy (config, authors, &policy, error))
			return FALSE;
		if (policy.policy == SC_DMARC_POLICY_NONE) {
			sc_dmarc_result_clear (&policy);
			return TRUE;
		}
	}
	rewrite (headers, list, authors);
	if (list->from_rewrite == SC_FROM_REWRITE_ALWAYS)
		*out_note = g_strdup (_("From rewritten (from-rewrite=always)"));
	else
		*out_note = g_strdup_printf (
		    /* TRANSLATORS: "example.com publishes p=reject" */
		    _("From rewritten: %s publishes %s=%s"),
		    policy.record_domain,
		    policy.tag,
		    sc_dmarc_policy_name (policy.policy));
	sc_dmarc_result_clear (&policy);
	return TRUE;
}
