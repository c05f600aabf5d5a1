/* sc-dns.h — TXT lookups through glibc's resolver, with a process-wide cache.
 *
 * Each lookup has a resolver state of its own (res_ninit), so any thread
 * may call it.  An answer — records, or the word that there are none — is
 * cached for its TTL; a failure (no answer in time, SERVFAIL, REFUSED, a
 * malformed reply) is never cached and never taken for an answer: the
 * caller retries later.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Negative answers without an SOA in their authority section. */
#define SC_DNS_NEGATIVE_TTL_DEFAULT 300
/* No answer is kept longer, whatever its TTL. */
#define SC_DNS_TTL_MAX 86400
/* Cached names at most; past this, expired ones go, then all. */
#define SC_DNS_CACHE_MAX 10000

typedef struct {
	const char *const *servers; /* (nullable) "IP[:PORT]"; NULL: /etc/resolv.conf */
	gint64 timeout;             /* µs for the whole lookup, every server and try */
} ScDnsOptions;

typedef enum {
	SC_DNS_RECORDS,   /* the name has TXT records */
	SC_DNS_NO_RECORD, /* an answer: no such name (NXDOMAIN) or no TXT there (NODATA) */
	SC_DNS_FAILED,    /* no answer to go by; the error says why (transient) */
} ScDnsResult;

/* Looks up the TXT records of @name (an ASCII host name; a trailing dot is
 * ignored), following a CNAME chain in the answer.  With SC_DNS_RECORDS,
 * @out_records gets one string per record, its character-strings joined
 * (RFC 7208 §3.3, RFC 7489 §6.3); NUL bytes in them become spaces.
 * @out_ttl (optional): seconds the answer stays cached (0: not cached).
 * @out_cached (optional): whether no query was sent.
 * SC_DNS_FAILED sets @error in G_RESOLVER_ERROR: TEMPORARY_FAILURE for a
 * timeout or a server's failure, INTERNAL for a reply that does not parse.
 * A name that cannot be asked (too long, not ASCII) is SC_DNS_NO_RECORD:
 * nothing can be published there. */
ScDnsResult sc_dns_lookup_txt (const ScDnsOptions *options,
			       const char *name,
			       char ***out_records,
			       guint *out_ttl,
			       gboolean *out_cached,
			       GError **error);

/* Forgets every cached answer (tests; a DNS change an operator wants seen now). */
void sc_dns_cache_clear (void);

G_END_DECLS
