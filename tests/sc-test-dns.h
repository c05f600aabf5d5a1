/* sc-test-dns.h — a real DNS server (dnsmasq) on 127.0.0.1 for the DMARC and DKIM tests. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScTestDns ScTestDns;

/* Starts dnsmasq on a free 127.0.0.1 port (UDP and TCP) serving the TXT
 * @records, given as NAME, TEXT, NAME, TEXT, …, NULL (a text longer than
 * 255 bytes is split into strings, as DNS requires; no commas), with
 * @ttl seconds.
 * It forwards nothing: every top-level domain named in @records is
 * answered from these records alone (NXDOMAIN for other names), and names
 * in other domains are REFUSED.  Every query is logged, for
 * sc_test_dns_count_queries().  Returns NULL after g_test_skip() when
 * dnsmasq (package dnsmasq-base) is not installed.  (transfer full) */
ScTestDns *sc_test_dns_start (const char *const *records, guint ttl);
/* Stops it and starts it again on the same port with other records. */
void sc_test_dns_restart (ScTestDns *dns, const char *const *records, guint ttl);
guint16 sc_test_dns_get_port (ScTestDns *dns);
/* "127.0.0.1:PORT", for dns-server= (transfer none) */
const char *sc_test_dns_get_server (ScTestDns *dns);
/* TXT queries for @name (any case) so far. */
guint sc_test_dns_count_queries (ScTestDns *dns, const char *name);
/* SIGTERM by PID, and waits for it. */
void sc_test_dns_stop (ScTestDns *dns);
/* Stops it if running and removes its folder. */
void sc_test_dns_free (ScTestDns *dns);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScTestDns, sc_test_dns_free)

/* A UDP socket on 127.0.0.1 that reads queries and never answers: a DNS
 * server that times out.  "127.0.0.1:PORT" (transfer full) in
 * @out_server; close the returned socket (g_object_unref) to end it. */
GObject *sc_test_dns_silent_new (char **out_server);

G_END_DECLS
