/* sc-dmarc.c — DMARC policy discovery (RFC 7489 §6.6.3) for an author's domain.
 *
 * The public suffix list is loaded once per file and kept, reloaded when
 * the file's size or time changes (a publicsuffix package update), so a
 * lookup costs one stat().  A list that cannot be read fails the lookup
 * (G_FILE_ERROR): decorate defers the message, an operator installs the
 * file or fixes public-suffix-list=, and the next try finds it.  The list
 * is loaded before any DNS question, so that a missing file shows on
 * every message, not only on those whose domain needs it.
 *
 * Parsing is lenient where leniency rewrites more, never less: tag names
 * and values are read in any case ("p=Reject" counts), as OpenDMARC does.
 */
#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libpsl.h>

#include "sc-dmarc.h"
#include "sc-dns.h"
#include "sc-i18n.h"

typedef struct {
	psl_ctx_t *context;
	gint64 mtime;
	goffset size;
} SuffixList;

static GMutex suffix_lock;
static GHashTable *suffix_lists; /* (owned) path → SuffixList */

static void
suffix_list_free (SuffixList *list)
{
	psl_free (list->context);
	g_free (list);
}

const char *
sc_dmarc_policy_name (ScDmarcPolicy policy)
{
	switch (policy) {
	case SC_DMARC_POLICY_QUARANTINE:
		return "quarantine";
	case SC_DMARC_POLICY_REJECT:
		return "reject";
	case SC_DMARC_POLICY_NONE:
	default:
		return "none";
	}
}

void
sc_dmarc_result_clear (ScDmarcResult *result)
{
	if (result == NULL)
		return;
	g_clear_pointer (&result->record_domain, g_free);
	result->tag = NULL;
	result->policy = SC_DMARC_POLICY_NONE;
}

/* The loaded list for @path, loading it when new or changed.  Called with
 * suffix_lock held; the context stays valid until the lock is released. */
static psl_ctx_t *
suffix_list_get (const char *path, GError **error)
{
	GStatBuf st;
	SuffixList *list;
	psl_ctx_t *context;

	if (g_stat (path, &st) != 0) {
		int saved_errno = errno;
		g_set_error (error,
			     G_FILE_ERROR,
			     g_file_error_from_errno (saved_errno),
			     _("the public suffix list %s cannot be read: %s (Debian's "
			       "publicsuffix package, or public-suffix-list= in [stagecoach])"),
			     path,
			     g_strerror (saved_errno));
		return NULL;
	}
	if (suffix_lists == NULL)
		suffix_lists = g_hash_table_new_full (g_str_hash,
						      g_str_equal,
						      g_free,
						      (GDestroyNotify) suffix_list_free);
	list = g_hash_table_lookup (suffix_lists, path);
	if (list != NULL && list->mtime == (gint64) st.st_mtime && list->size == st.st_size)
		return list->context;

	context = psl_load_file (path);
	if (context == NULL || psl_suffix_count (context) == 0) {
		g_clear_pointer (&context, psl_free);
		g_set_error (error,
			     G_FILE_ERROR,
			     G_FILE_ERROR_INVAL,
			     _("the public suffix list %s holds no rules that libpsl can read"),
			     path);
		return NULL;
	}
	g_debug ("public suffix list %s: %d rules", path, psl_suffix_count (context));
	list = g_new0 (SuffixList, 1);
	list->context = context;
	list->mtime = (gint64) st.st_mtime;
	list->size = st.st_size;
	g_hash_table_replace (suffix_lists, g_strdup (path), list);
	return context;
}

gboolean
sc_dmarc_organizational_domain (const char *public_suffix_list,
				const char *domain,
				char **out_domain,
				GError **error)
{
	psl_ctx_t *context;
	const char *registrable;

	g_return_val_if_fail (public_suffix_list != NULL, FALSE);
	g_return_val_if_fail (out_domain != NULL, FALSE);

	*out_domain = NULL;
	g_mutex_lock (&suffix_lock);
	context = suffix_list_get (public_suffix_list, error);
	if (context == NULL) {
		g_mutex_unlock (&suffix_lock);
		return FALSE;
	}
	registrable = psl_registrable_domain (context, domain);
	*out_domain = g_strdup (registrable);
	g_mutex_unlock (&suffix_lock);
	return TRUE;
}

static gboolean
parse_policy (const char *value, ScDmarcPolicy *out_policy)
{
	if (g_ascii_strcasecmp (value, "none") == 0)
		*out_policy = SC_DMARC_POLICY_NONE;
	else if (g_ascii_strcasecmp (value, "quarantine") == 0)
		*out_policy = SC_DMARC_POLICY_QUARANTINE;
	else if (g_ascii_strcasecmp (value, "reject") == 0)
		*out_policy = SC_DMARC_POLICY_REJECT;
	else
		return FALSE;
	return TRUE;
}

gboolean
sc_dmarc_record_parse (const char *record,
		       ScDmarcPolicy *out_p,
		       ScDmarcPolicy *out_sp,
		       gboolean *out_has_sp)
{
	g_auto(GStrv) tags = NULL;
	gboolean have_p = FALSE;
	gboolean have_sp = FALSE;
	gboolean valid = TRUE;
	ScDmarcPolicy p = SC_DMARC_POLICY_NONE;
	ScDmarcPolicy sp = SC_DMARC_POLICY_NONE;

	g_return_val_if_fail (record != NULL, FALSE);

	*out_p = SC_DMARC_POLICY_NONE;
	*out_sp = SC_DMARC_POLICY_NONE;
	if (out_has_sp != NULL)
		*out_has_sp = FALSE;
	tags = g_strsplit (record, ";", -1);
	for (gsize i = 0; tags[i] != NULL; i++) {
		char *equals = strchr (tags[i], '=');
		char *name;
		char *value;

		if (equals == NULL) {
			/* v= must come first; a stray empty tag (";;", a
			 * final ";") is allowed later */
			if (i == 0)
				return FALSE;
			continue;
		}
		*equals = '\0';
		name = g_strstrip (tags[i]);
		value = g_strstrip (equals + 1);
		if (i == 0) {
			/* §6.6.3 step 2: the first tag names the version */
			if (g_ascii_strcasecmp (name, "v") != 0 ||
			    g_ascii_strcasecmp (value, "DMARC1") != 0)
				return FALSE;
			continue;
		}
		/* the first of a repeated tag counts */
		if (g_ascii_strcasecmp (name, "p") == 0 && !have_p) {
			have_p = TRUE;
			if (!parse_policy (value, &p))
				valid = FALSE;
		} else if (g_ascii_strcasecmp (name, "sp") == 0 && !have_sp) {
			have_sp = TRUE;
			if (!parse_policy (value, &sp))
				valid = FALSE;
		}
	}
	if (tags[0] == NULL)
		return FALSE;
	/* §6.6.3 step 6: no valid p=, or an invalid sp=: at most p=none */
	if (!have_p || !valid)
		return TRUE;
	*out_p = p;
	*out_sp = have_sp ? sp : p;
	if (out_has_sp != NULL)
		*out_has_sp = have_sp;
	return TRUE;
}

/* The DMARC records at _dmarc.@domain: FALSE on a DNS failure. */
static gboolean
dmarc_records (const ScDmarcOptions *options, const char *domain, GPtrArray *out, GError **error)
{
	g_autofree char *name = g_strconcat ("_dmarc.", domain, NULL);
	g_auto(GStrv) records = NULL;
	ScDnsOptions dns = {options->dns_servers, options->dns_timeout};
	ScDnsResult result;

	result = sc_dns_lookup_txt (&dns, name, &records, NULL, NULL, error);
	if (result == SC_DNS_FAILED)
		return FALSE;
	for (gsize i = 0; records != NULL && records[i] != NULL; i++) {
		ScDmarcPolicy p;
		ScDmarcPolicy sp;

		if (sc_dmarc_record_parse (records[i], &p, &sp, NULL))
			g_ptr_array_add (out, g_strdup (records[i]));
	}
	return TRUE;
}

/* A DNS name in lower-case ASCII, or NULL for an address literal or what
 * is no host name at all. */
static char *
ascii_domain (const char *domain)
{
	g_autofree char *trimmed = g_strdup (domain);
	g_autofree char *ascii = NULL;
	gsize length;

	g_strstrip (trimmed);
	length = strlen (trimmed);
	if (length > 0 && trimmed[length - 1] == '.')
		trimmed[length - 1] = '\0';
	if (trimmed[0] == '\0' || trimmed[0] == '[' || g_hostname_is_ip_address (trimmed))
		return NULL;
	ascii = g_hostname_to_ascii (trimmed);
	if (ascii == NULL)
		return NULL;
	return g_ascii_strdown (ascii, -1);
}

gboolean
sc_dmarc_lookup (const ScDmarcOptions *options,
		 const char *domain,
		 ScDmarcResult *out_result,
		 GError **error)
{
	g_autofree char *ascii = NULL;
	g_autofree char *organizational = NULL;
	g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func (g_free);
	const char *record_domain;
	gboolean subdomain = FALSE;
	gboolean has_sp = FALSE;
	ScDmarcPolicy p;
	ScDmarcPolicy sp;

	g_return_val_if_fail (options != NULL, FALSE);
	g_return_val_if_fail (domain != NULL, FALSE);
	g_return_val_if_fail (out_result != NULL, FALSE);

	memset (out_result, 0, sizeof *out_result);
	ascii = ascii_domain (domain);
	/* the list first, even for a domain that needs no lookup: a missing
	 * file shows at once, on every message */
	if (!sc_dmarc_organizational_domain (options->public_suffix_list,
					     ascii != NULL ? ascii : "invalid",
					     &organizational,
					     error))
		return FALSE;
	if (ascii == NULL)
		return TRUE;

	/* steps 1 and 2: the author's domain */
	record_domain = ascii;
	if (!dmarc_records (options, ascii, records, error))
		return FALSE;
	/* step 3: none there, the organizational domain's */
	if (records->len == 0 && organizational != NULL && strcmp (organizational, ascii) != 0) {
		record_domain = organizational;
		subdomain = TRUE;
		if (!dmarc_records (options, organizational, records, error))
			return FALSE;
	}
	/* step 5: one record or no policy */
	if (records->len != 1) {
		if (records->len > 1)
			g_debug ("%s: %u DMARC records at _dmarc.%s: no policy",
				 ascii,
				 records->len,
				 record_domain);
		return TRUE;
	}
	(void) sc_dmarc_record_parse (records->pdata[0], &p, &sp, &has_sp);
	out_result->policy = subdomain ? sp : p;
	out_result->record_domain = g_strdup (record_domain);
	out_result->tag = subdomain && has_sp ? "sp" : "p";
	return TRUE;
}
