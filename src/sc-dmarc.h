/* sc-dmarc.h — the DMARC policy an author's domain publishes (RFC 7489 §6.6.3).
 *
 * For decorate's from-rewrite=dmarc: is the author's domain one whose
 * mail a receiver would quarantine or reject when a list breaks its
 * DKIM signature?  DNS through sc-dns.h (cached, failures transient);
 * organizational domains through libpsl and the public suffix list.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	SC_DMARC_POLICY_NONE, /* p=none, no policy record, or none that counts */
	SC_DMARC_POLICY_QUARANTINE,
	SC_DMARC_POLICY_REJECT,
} ScDmarcPolicy;

typedef struct {
	const char *const *dns_servers; /* (nullable) "IP[:PORT]"; NULL: /etc/resolv.conf */
	gint64 dns_timeout;             /* µs per DNS lookup */
	const char *public_suffix_list; /* file: .dat (or libpsl's DAFSA) */
} ScDmarcOptions;

typedef struct {
	ScDmarcPolicy policy;
	char *record_domain; /* (nullable) the domain whose _dmarc record decided */
	const char *tag;     /* (nullable) "p" or "sp": the tag that gave the policy */
} ScDmarcResult;

/* Finds the policy for mail from @domain (UTF-8 or ASCII; any case):
 * the record at _dmarc.@domain, or when that holds no DMARC record, the
 * one at _dmarc.ORG for its organizational domain ORG, whose sp= (else p=)
 * covers subdomains.  Records not starting with v=DMARC1 are ignored;
 * more than one DMARC record at a name, or one without a valid p= (or
 * with an invalid sp=), is no policy (§6.6.3 steps 5 and 6).  pct= is not
 * read: a partial policy still asks receivers to reject some mail.
 * FALSE with @error when the answer could not be had: a DNS failure
 * (G_RESOLVER_ERROR) or an unreadable public suffix list (G_FILE_ERROR),
 * which the caller treats as transient; never a guess. */
gboolean sc_dmarc_lookup (const ScDmarcOptions *options,
			  const char *domain,
			  ScDmarcResult *out_result,
			  GError **error);
void sc_dmarc_result_clear (ScDmarcResult *result);

/* Whether @record is a DMARC record (first tag v=DMARC1), and if so its
 * policy for the domain itself (@out_p) and for subdomains (@out_sp: sp=,
 * else p=; @out_has_sp (optional): whether sp= gave it).  Both NONE when
 * p= is missing or invalid or sp= invalid. */
gboolean sc_dmarc_record_parse (const char *record,
				ScDmarcPolicy *out_p,
				ScDmarcPolicy *out_sp,
				gboolean *out_has_sp);
/* "none", "quarantine", "reject" */
const char *sc_dmarc_policy_name (ScDmarcPolicy policy);
/* The organizational domain of @domain (lower-case ASCII), or NULL when
 * @domain is itself a public suffix; FALSE with @error when the list
 * cannot be loaded.  (transfer full) */
gboolean sc_dmarc_organizational_domain (const char *public_suffix_list,
					 const char *domain,
					 char **out_domain,
					 GError **error);

G_END_DECLS
