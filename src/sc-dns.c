/* sc-dns.c — TXT lookups through glibc's resolver (libresolv), cached.
 *
 * glibc rather than libunbound: it is already linked, knows
 * /etc/resolv.conf, retries over UDP and falls back to TCP for a truncated
 * answer; a lookup here is one question to the site's recursive resolver,
 * which is all libunbound's stub mode would do too.  Each call builds its
 * own `struct __res_state` (res_ninit … res_nclose), so worker threads
 * never share resolver state.
 *
 * dns-server= replaces the servers of resolv.conf: IPv4 ones go in
 * nsaddr_list as the resolver's API has it, IPv6 ones in the
 * `_u._ext.nsaddrs` slots glibc reads them from (res_nclose frees them).
 * glibc counts timeouts in whole seconds: `retrans` seconds for the first
 * server, (retrans << n) / nscount for server n, the round `retry` times;
 * the pair is chosen so that the whole lookup fits dns-timeout (at least
 * one second per server and round, two rounds when they fit).
 *
 * The cache holds answers only: records for their smallest TTL, and "no
 * record" (NXDOMAIN, NODATA) for the SOA's negative TTL (RFC 2308), else
 * SC_DNS_NEGATIVE_TTL_DEFAULT; both at most SC_DNS_TTL_MAX.  A failure is
 * never kept: the next message asks again.
 */
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include "sc-dns.h"
#include "sc-duration.h"
#include "sc-i18n.h"

#define CNAME_HOPS_MAX 8

typedef struct {
	ScDnsResult result;
	char **records; /* (nullable) with SC_DNS_RECORDS */
	gint64 expires; /* monotonic µs */
} CacheEntry;

static GMutex cache_lock;
static GHashTable *cache; /* (owned) lower-case name → CacheEntry */

static void
cache_entry_free (CacheEntry *entry)
{
	g_strfreev (entry->records);
	g_free (entry);
}

void
sc_dns_cache_clear (void)
{
	g_mutex_lock (&cache_lock);
	g_clear_pointer (&cache, g_hash_table_unref);
	g_mutex_unlock (&cache_lock);
}

static gboolean
cache_lookup (const char *key, ScDnsResult *out_result, char ***out_records, guint *out_ttl)
{
	gint64 now = g_get_monotonic_time ();
	CacheEntry *entry;
	gboolean found = FALSE;

	g_mutex_lock (&cache_lock);
	entry = cache != NULL ? g_hash_table_lookup (cache, key) : NULL;
	if (entry != NULL && entry->expires > now) {
		*out_result = entry->result;
		*out_records = g_strdupv (entry->records);
		*out_ttl = (guint) ((entry->expires - now + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
		found = TRUE;
	} else if (entry != NULL) {
		g_hash_table_remove (cache, key);
	}
	g_mutex_unlock (&cache_lock);
	return found;
}

static gboolean
entry_expired_cb (gpointer key, gpointer value, gpointer user_data)
{
	return ((CacheEntry *) value)->expires <= *(gint64 *) user_data;
}

static void
cache_store (const char *key, ScDnsResult result, char **records, guint ttl)
{
	CacheEntry *entry;
	gint64 now = g_get_monotonic_time ();

	if (ttl == 0)
		return;
	entry = g_new0 (CacheEntry, 1);
	entry->result = result;
	entry->records = g_strdupv (records);
	entry->expires = now + (gint64) ttl * G_USEC_PER_SEC;
	g_mutex_lock (&cache_lock);
	if (cache == NULL)
		cache = g_hash_table_new_full (g_str_hash,
					       g_str_equal,
					       g_free,
					       (GDestroyNotify) cache_entry_free);
	/* Bounded: a flood of authors from random domains must not grow it
	 * without end.  Dropping answers only costs queries. */
	if (g_hash_table_size (cache) >= SC_DNS_CACHE_MAX)
		g_hash_table_foreach_remove (cache, entry_expired_cb, &now);
	if (g_hash_table_size (cache) >= SC_DNS_CACHE_MAX)
		g_hash_table_remove_all (cache);
	g_hash_table_replace (cache, g_strdup (key), entry);
	g_mutex_unlock (&cache_lock);
}

/* What glibc's res_send waits in one round over @nscount servers. */
static int
round_seconds (int retrans, int nscount)
{
	int total = 0;

	for (int ns = 0; ns < nscount; ns++) {
		int seconds = retrans << ns;

		if (ns > 0)
			seconds /= nscount;
		total += MAX (seconds, 1);
	}
	return total;
}

/* Returns the seconds the lookup may take in all. */
static int
set_timing (struct __res_state *state, gint64 timeout)
{
	int budget = (int) CLAMP (timeout / G_USEC_PER_SEC, 1, 3600);
	int nscount = MAX (state->nscount, 1);
	int tries = budget >= 2 ? 2 : 1;
	int retrans = 1;

	if (tries * round_seconds (1, nscount) > budget)
		tries = 1;
	while (retrans < budget && tries * round_seconds (retrans + 1, nscount) <= budget)
		retrans++;
	state->retrans = retrans;
	state->retry = tries;
	return tries * round_seconds (retrans, nscount);
}

/* Puts @servers in place of resolv.conf's.  FALSE when none parses (the
 * config loader has checked them; this is a second line). */
static gboolean
set_servers (struct __res_state *state, const char *const *servers)
{
	int count = 0;

	/* Frees what res_ninit allocated for resolv.conf's IPv6 servers and
	 * detaches its configuration: from here on res_send reads these
	 * fields and nothing else. */
	res_nclose (state);
	for (gsize i = 0; servers[i] != NULL && count < MAXNS; i++) {
		g_autoptr(GSocketConnectable) parsed = g_network_address_parse (servers[i], 53, NULL);
		g_autoptr(GInetAddress) address = NULL;
		g_autoptr(GSocketAddress) socket_address = NULL;
		struct sockaddr_storage native;

		if (parsed == NULL)
			continue;
		address = g_inet_address_new_from_string (
		    g_network_address_get_hostname (G_NETWORK_ADDRESS (parsed)));
		if (address == NULL)
			continue;
		socket_address = g_inet_socket_address_new (
		    address, g_network_address_get_port (G_NETWORK_ADDRESS (parsed)));
		if (!g_socket_address_to_native (socket_address, &native, sizeof native, NULL))
			continue;
		if (native.ss_family == AF_INET) {
			memcpy (&state->nsaddr_list[count], &native, sizeof (struct sockaddr_in));
			state->_u._ext.nsaddrs[count] = NULL;
		} else {
			state->nsaddr_list[count].sin_family = 0;
			state->_u._ext.nsaddrs[count] = g_memdup2 (&native, sizeof (struct sockaddr_in6));
		}
		state->_u._ext.nssocks[count] = -1;
		count++;
	}
	if (g_strv_length ((char **) servers) > MAXNS)
		g_debug ("dns-server: only the first %d servers are asked", MAXNS);
	state->nscount = count;
	/* res_send copies the list again on its first call */
	state->_u._ext.nscount = 0;
	return count > 0;
}

static char *
describe_servers (const ScDnsOptions *options)
{
	if (options->servers == NULL || options->servers[0] == NULL)
		return g_strdup ("/etc/resolv.conf");
	return g_strjoinv (", ", (char **) options->servers);
}

static const char *
rcode_name (int rcode)
{
	switch (rcode) {
	case ns_r_formerr:
		return "FORMERR";
	case ns_r_servfail:
		return "SERVFAIL";
	case ns_r_notimpl:
		return "NOTIMP";
	case ns_r_refused:
		return "REFUSED";
	default:
		return "an error";
	}
}

/* The negative TTL of RFC 2308 §5: the authority section's SOA, the
 * smaller of its TTL and its MINIMUM field. */
static guint
negative_ttl (ns_msg *message)
{
	const guchar *eom = ns_msg_end (*message);

	for (int i = 0; i < ns_msg_count (*message, ns_s_ns); i++) {
		ns_rr rr;
		const guchar *p;
		const guchar *end;
		int skipped;

		if (ns_parserr (message, ns_s_ns, i, &rr) < 0 || ns_rr_type (rr) != ns_t_soa)
			continue;
		p = ns_rr_rdata (rr);
		end = p + ns_rr_rdlen (rr);
		for (int name = 0; name < 2; name++) {
			skipped = dn_skipname (p, eom);
			if (skipped < 0)
				return SC_DNS_NEGATIVE_TTL_DEFAULT;
			p += skipped;
		}
		if (p + 5 * NS_INT32SZ > end)
			return SC_DNS_NEGATIVE_TTL_DEFAULT;
		return MIN (ns_rr_ttl (rr), ns_get32 (p + 4 * NS_INT32SZ));
	}
	return SC_DNS_NEGATIVE_TTL_DEFAULT;
}

static gboolean
txt_rdata (const ns_rr *rr, GPtrArray *records)
{
	const guchar *p = ns_rr_rdata (*rr);
	const guchar *end = p + ns_rr_rdlen (*rr);
	GString *text = g_string_sized_new (ns_rr_rdlen (*rr));

	while (p < end) {
		guint length = *p++;

		if (length > (gsize) (end - p)) {
			g_string_free (text, TRUE);
			return FALSE;
		}
		for (guint i = 0; i < length; i++)
			g_string_append_c (text, p[i] != '\0' ? (char) p[i] : ' ');
		p += length;
	}
	g_ptr_array_add (records, g_string_free (text, FALSE));
	return TRUE;
}

/* DNS names compare in ASCII case (ns_samename is deprecated). */
static gboolean
same_name (const char *a, const char *b)
{
	gsize a_length = strlen (a);
	gsize b_length = strlen (b);

	if (a_length > 0 && a[a_length - 1] == '.')
		a_length--;
	if (b_length > 0 && b[b_length - 1] == '.')
		b_length--;
	return a_length == b_length && g_ascii_strncasecmp (a, b, a_length) == 0;
}

/* A reply that cannot be read is a failure, never "no record". */
static ScDnsResult G_GNUC_PRINTF (2, 0)
unreadable (GError **error, const char *format, const char *name)
{
	g_set_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_INTERNAL, format, name);
	return SC_DNS_FAILED;
}

/* The TXT records of @name in the answer, after its CNAME chain. */
static ScDnsResult
parse_answer (const guchar *answer,
	      int length,
	      const char *name,
	      GPtrArray *records,
	      guint *out_ttl,
	      GError **error)
{
	ns_msg message;
	char target[NS_MAXDNAME];
	guint32 ttl = SC_DNS_TTL_MAX;
	int rcode;

	if (ns_initparse (answer, length, &message) < 0) {
		return unreadable (error, _("the DNS reply for %s does not parse"), name);
	}
	rcode = ns_msg_getflag (message, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		*out_ttl = MIN (negative_ttl (&message), SC_DNS_TTL_MAX);
		return SC_DNS_NO_RECORD;
	}
	if (rcode != ns_r_noerror) {
		g_set_error (error,
			     G_RESOLVER_ERROR,
			     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
			     _("the DNS server answered %s for %s"),
			     rcode_name (rcode),
			     name);
		return SC_DNS_FAILED;
	}
	if (ns_msg_getflag (message, ns_f_tc)) {
		g_set_error (error,
			     G_RESOLVER_ERROR,
			     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
			     _("the DNS reply for %s came truncated"),
			     name);
		return SC_DNS_FAILED;
	}

	g_strlcpy (target, name, sizeof target);
	for (guint hop = 0; hop < CNAME_HOPS_MAX; hop++) {
		gboolean moved = FALSE;

		for (int i = 0; i < ns_msg_count (message, ns_s_an); i++) {
			ns_rr rr;

			if (ns_parserr (&message, ns_s_an, i, &rr) < 0) {
				return unreadable (error, _("the DNS reply for %s does not parse"), name);
			}
			if (ns_rr_class (rr) != ns_c_in || !same_name (ns_rr_name (rr), target))
				continue;
			if (ns_rr_type (rr) == ns_t_txt) {
				if (!txt_rdata (&rr, records)) {
					return unreadable (error, _("a TXT record of %s does not parse"), name);
				}
				ttl = MIN (ttl, ns_rr_ttl (rr));
			} else if (ns_rr_type (rr) == ns_t_cname && !moved && records->len == 0) {
				char next[NS_MAXDNAME];

				if (ns_name_uncompress (ns_msg_base (message),
							ns_msg_end (message),
							ns_rr_rdata (rr),
							next,
							sizeof next) < 0) {
					return unreadable (error, _("the DNS reply for %s does not parse"), name);
				}
				ttl = MIN (ttl, ns_rr_ttl (rr));
				g_strlcpy (target, next, sizeof target);
				moved = TRUE;
			}
		}
		if (records->len > 0 || !moved)
			break;
	}
	if (records->len > 0) {
		*out_ttl = ttl;
		return SC_DNS_RECORDS;
	}
	*out_ttl = MIN (ttl, negative_ttl (&message));
	return SC_DNS_NO_RECORD;
}

/* Lower case, no trailing dot; NULL for what DNS cannot carry. */
static char *
normalize_name (const char *name)
{
	gsize length = strlen (name);

	if (length > 0 && name[length - 1] == '.')
		length--;
	if (length == 0 || length > NS_MAXDNAME - 2)
		return NULL;
	for (gsize i = 0; i < length; i++) {
		if ((guchar) name[i] < 0x21 || (guchar) name[i] > 0x7e)
			return NULL;
	}
	return g_ascii_strdown (name, (gssize) length);
}

static ScDnsResult
query (const ScDnsOptions *options,
       const char *name,
       char ***out_records,
       guint *out_ttl,
       GError **error)
{
	struct __res_state state;
	guchar request[NS_PACKETSZ];
	g_autofree guchar *answer = g_malloc (NS_MAXMSG);
	g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *servers = describe_servers (options);
	gint64 started;
	gint64 elapsed;
	ScDnsResult result;
	int request_length;
	int answer_length;
	int budget;

	memset (&state, 0, sizeof state);
	if (res_ninit (&state) != 0) {
		res_nclose (&state);
		g_set_error (error,
			     G_RESOLVER_ERROR,
			     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
			     _("the resolver could not be set up (%s)"),
			     "/etc/resolv.conf");
		return SC_DNS_FAILED;
	}
	if (options->servers != NULL && options->servers[0] != NULL &&
	    !set_servers (&state, options->servers)) {
		res_nclose (&state);
		g_set_error (error,
			     G_RESOLVER_ERROR,
			     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
			     _("no usable DNS server in %s"),
			     servers);
		return SC_DNS_FAILED;
	}
	budget = set_timing (&state, options->timeout);
	/* The name is asked as given: no search list, no default domain. */
	state.options &= ~(RES_DEFNAMES | RES_DNSRCH);

	request_length = res_nmkquery (&state,
				       ns_o_query,
				       name,
				       ns_c_in,
				       ns_t_txt,
				       NULL,
				       0,
				       NULL,
				       request,
				       sizeof request);
	if (request_length < 0) {
		/* a label longer than 63 bytes and the like: nothing can be there */
		res_nclose (&state);
		*out_ttl = 0;
		return SC_DNS_NO_RECORD;
	}
	started = g_get_monotonic_time ();
	answer_length = res_nsend (&state, request, request_length, answer, NS_MAXMSG);
	elapsed = g_get_monotonic_time () - started;
	res_nclose (&state);
	if (answer_length < 0) {
		g_autofree char *waited = sc_duration_format ((gint64) budget * G_USEC_PER_SEC);

		/* res_send says ETIMEDOUT for refusals as well: the time tells */
		if (elapsed >= (gint64) budget * G_USEC_PER_SEC * 9 / 10)
			g_set_error (error,
				     G_RESOLVER_ERROR,
				     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
				     _("no DNS answer for %s from %s within %s"),
				     name,
				     servers,
				     waited);
		else
			g_set_error (error,
				     G_RESOLVER_ERROR,
				     G_RESOLVER_ERROR_TEMPORARY_FAILURE,
				     _("no DNS answer for %s from %s: every server failed or "
				       "refused the query, or could not be reached"),
				     name,
				     servers);
		return SC_DNS_FAILED;
	}
	result = parse_answer (answer, answer_length, name, records, out_ttl, error);
	if (result == SC_DNS_RECORDS) {
		g_ptr_array_add (records, NULL);
		*out_records = (char **) g_ptr_array_free (g_steal_pointer (&records), FALSE);
	}
	return result;
}

ScDnsResult
sc_dns_lookup_txt (const ScDnsOptions *options,
		   const char *name,
		   char ***out_records,
		   guint *out_ttl,
		   gboolean *out_cached,
		   GError **error)
{
	g_autofree char *key = NULL;
	g_auto(GStrv) records = NULL;
	ScDnsResult result;
	guint ttl = 0;

	g_return_val_if_fail (options != NULL, SC_DNS_FAILED);
	g_return_val_if_fail (name != NULL, SC_DNS_FAILED);
	g_return_val_if_fail (out_records != NULL, SC_DNS_FAILED);

	*out_records = NULL;
	if (out_ttl != NULL)
		*out_ttl = 0;
	if (out_cached != NULL)
		*out_cached = FALSE;
	key = normalize_name (name);
	if (key == NULL)
		return SC_DNS_NO_RECORD;
	if (cache_lookup (key, &result, &records, &ttl)) {
		if (out_cached != NULL)
			*out_cached = TRUE;
	} else {
		result = query (options, key, &records, &ttl, error);
		if (result == SC_DNS_FAILED)
			return result;
		ttl = MIN (ttl, SC_DNS_TTL_MAX);
		g_debug ("TXT %s: %s, %u records, kept %u s",
			 key,
			 result == SC_DNS_RECORDS ? "records" : "no record",
			 records != NULL ? g_strv_length (records) : 0,
			 ttl);
		cache_store (key, result, records, ttl);
	}
	if (out_ttl != NULL)
		*out_ttl = ttl;
	*out_records = g_steal_pointer (&records);
	return result;
}
