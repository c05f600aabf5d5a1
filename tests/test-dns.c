/* test-dns.c — sc-dns against a real DNS server (dnsmasq, tests/sc-test-dns.h).
 *
 * Answers (records, several strings, NXDOMAIN), failures that must never
 * pass for answers (REFUSED, a server that never answers: within
 * dns-timeout, not glibc's default 10 s), and the cache, counted in the
 * server's own query log: no second query within the TTL, a new one
 * after it, negative answers cached too, failures never.
 */
#include "config.h"

#include <gio/gio.h>

#include "sc-dns.h"
#include "sc-test-dns.h"
#include "sc-test-util.h"

#define LONG_TEXT_LENGTH 600

typedef struct {
	ScTestDns *dns;
	const char *servers[3];
	ScDnsOptions options;
	char *long_text;
} Fixture;

static void
setup_records (Fixture *fixture, guint ttl)
{
	const char *records[] = {
	    "txt.example.test",    "v=spf1 -all",
	    "two.example.test",    "first record",
	    "two.example.test",    "second record",
	    "long.example.test",   fixture->long_text,
	    "_dmarc.example.test", "v=DMARC1; p=reject",
	    NULL,
	};

	fixture->dns = sc_test_dns_start (records, ttl);
	if (fixture->dns == NULL)
		return;
	fixture->servers[0] = sc_test_dns_get_server (fixture->dns);
	fixture->options.servers = fixture->servers;
	fixture->options.timeout = 3 * G_USEC_PER_SEC;
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	GString *text = g_string_new (NULL);

	memset (fixture, 0, sizeof *fixture);
	/* more than one 255-byte character-string: dnsmasq sends three */
	for (guint i = 0; text->len < LONG_TEXT_LENGTH; i++)
		g_string_append_printf (text, "word%u;", i);
	g_string_truncate (text, LONG_TEXT_LENGTH);
	fixture->long_text = g_string_free (text, FALSE);
	sc_dns_cache_clear ();
	setup_records (fixture, GPOINTER_TO_UINT (data) != 0 ? GPOINTER_TO_UINT (data) : 60);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->dns, sc_test_dns_free);
	g_free (fixture->long_text);
	sc_dns_cache_clear ();
}

/* dnsmasq writes its log a moment after answering: the count once it
 * reaches @expected, or what it is after a while. */
static guint
queries (Fixture *fixture, const char *name, guint expected)
{
	gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
	guint count;

	while ((count = sc_test_dns_count_queries (fixture->dns, name)) < expected &&
	       g_get_monotonic_time () < deadline)
		g_usleep (20 * 1000);
	/* and nothing more comes */
	g_usleep (100 * 1000);
	return sc_test_dns_count_queries (fixture->dns, name);
}

static ScDnsResult
lookup (Fixture *fixture, const char *name, char ***out_records, guint *out_ttl, gboolean *out_cached, GError **error)
{
	return sc_dns_lookup_txt (&fixture->options, name, out_records, out_ttl, out_cached, error);
}

static void
test_txt (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	guint ttl = 0;
	gboolean cached = TRUE;

	if (fixture->dns == NULL)
		return;
	g_assert_cmpint (lookup (fixture, "txt.example.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_false (cached);
	g_assert_cmpuint (g_strv_length (records), ==, 1);
	g_assert_cmpstr (records[0], ==, "v=spf1 -all");
	g_assert_cmpuint (ttl, ==, 60);
	g_clear_pointer (&records, g_strfreev);

	/* any case, a trailing dot: the same name, from the cache */
	g_assert_cmpint (lookup (fixture, "TXT.Example.Test.", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_true (cached);
	g_assert_cmpstr (records[0], ==, "v=spf1 -all");
	g_assert_cmpuint (ttl, <=, 60);
	g_assert_cmpuint (ttl, >, 50);
	g_assert_cmpuint (queries (fixture, "txt.example.test", 1), ==, 1);
}

static void
test_strings (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_auto(GStrv) long_records = NULL;
	g_autoptr(GError) error = NULL;

	if (fixture->dns == NULL)
		return;
	/* two records: two strings, in either order */
	g_assert_cmpint (lookup (fixture, "two.example.test", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_cmpuint (g_strv_length (records), ==, 2);
	g_assert_true (g_strv_contains ((const char *const *) records, "first record"));
	g_assert_true (g_strv_contains ((const char *const *) records, "second record"));

	/* one record of three character-strings: joined without separator */
	g_assert_cmpint (lookup (fixture, "long.example.test", &long_records, NULL, NULL, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_cmpuint (g_strv_length (long_records), ==, 1);
	g_assert_cmpuint (strlen (long_records[0]), ==, LONG_TEXT_LENGTH);
	g_assert_cmpstr (long_records[0], ==, fixture->long_text);
}

static void
test_nxdomain (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	guint ttl = 0;
	gboolean cached = TRUE;

	if (fixture->dns == NULL)
		return;
	g_assert_cmpint (lookup (fixture, "_dmarc.nothing.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_NO_RECORD);
	g_assert_no_error (error);
	g_assert_null (records);
	g_assert_false (cached);
	/* dnsmasq sends no SOA with it: the default negative TTL */
	g_assert_cmpuint (ttl, ==, SC_DNS_NEGATIVE_TTL_DEFAULT);

	/* cached negatively: no second query */
	g_assert_cmpint (lookup (fixture, "_dmarc.nothing.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_NO_RECORD);
	g_assert_true (cached);
	g_assert_cmpuint (queries (fixture, "_dmarc.nothing.test", 1), ==, 1);

	/* a name DNS cannot carry is no record, without a query */
	g_assert_cmpint (lookup (fixture,
				 "_dmarc.a-label-of-sixty-four-bytes-is-one-byte-too-long-for-dns-xxxxxxx.test",
				 &records,
				 &ttl,
				 &cached,
				 &error),
			 ==,
			 SC_DNS_NO_RECORD);
	g_assert_no_error (error);
	g_assert_cmpuint (ttl, ==, 0);
}

/* dnsmasq refuses names outside its zones; a refusal is no answer. */
static void
test_refused (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	gint64 started;
	guint first;

	if (fixture->dns == NULL)
		return;
	started = g_get_monotonic_time ();
	g_assert_cmpint (lookup (fixture, "_dmarc.example.invalid", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_FAILED);
	g_assert_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_TEMPORARY_FAILURE);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "_dmarc.example.invalid"));
	g_assert_nonnull (strstr (error->message, sc_test_dns_get_server (fixture->dns)));
	g_assert_null (records);
	/* an answer, if a refusing one: no waiting out the timeout */
	g_assert_cmpint (g_get_monotonic_time () - started, <, G_USEC_PER_SEC);

	/* never cached: asked again */
	first = queries (fixture, "_dmarc.example.invalid", 1);
	g_assert_cmpuint (first, >=, 1);
	g_clear_error (&error);
	g_assert_cmpint (lookup (fixture, "_dmarc.example.invalid", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_FAILED);
	g_assert_cmpuint (queries (fixture, "_dmarc.example.invalid", first + 1), >, first);
}

static void
check_timeout (gint64 timeout, gint64 at_least, gint64 at_most)
{
	g_autofree char *server = NULL;
	g_autoptr(GObject) silent = sc_test_dns_silent_new (&server);
	const char *servers[] = {server, NULL};
	ScDnsOptions options = {servers, timeout};
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	gint64 started = g_get_monotonic_time ();
	gint64 elapsed;

	g_assert_cmpint (sc_dns_lookup_txt (&options, "_dmarc.example.test", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_FAILED);
	elapsed = g_get_monotonic_time () - started;
	g_assert_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_TEMPORARY_FAILURE);
	g_test_message ("dns-timeout %" G_GINT64_FORMAT " µs: failed after %" G_GINT64_FORMAT
			" µs: %s",
			timeout,
			elapsed,
			error->message);
	g_assert_nonnull (strstr (error->message, "within"));
	g_assert_cmpint (elapsed, >=, at_least);
	g_assert_cmpint (elapsed, <=, at_most);
}

/* A server that never answers: the lookup fails after dns-timeout. */
static void
test_timeout (void)
{
	sc_dns_cache_clear ();
	check_timeout (2 * G_USEC_PER_SEC, 1900 * 1000, 2600 * 1000);
	/* glibc counts whole seconds: below one second is one second */
	check_timeout (300 * 1000, 900 * 1000, 1600 * 1000);
	check_timeout (5 * G_USEC_PER_SEC, 3900 * 1000, 5600 * 1000);
}

/* The first server never answers, the second does, within the budget. */
static void
test_failover (Fixture *fixture, gconstpointer data)
{
	g_autofree char *server = NULL;
	g_autoptr(GObject) silent = NULL;
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	gint64 started;

	if (fixture->dns == NULL)
		return;
	silent = sc_test_dns_silent_new (&server);
	fixture->servers[0] = server;
	fixture->servers[1] = sc_test_dns_get_server (fixture->dns);
	started = g_get_monotonic_time ();
	g_assert_cmpint (lookup (fixture, "txt.example.test", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_cmpstr (records[0], ==, "v=spf1 -all");
	g_assert_cmpint (g_get_monotonic_time () - started, <=, fixture->options.timeout);
	fixture->servers[0] = sc_test_dns_get_server (fixture->dns);
	fixture->servers[1] = NULL;
}

/* An IPv6 server address takes glibc's other slots (_u._ext.nsaddrs);
 * an IPv4-mapped one reaches dnsmasq on 127.0.0.1 through them.  Next
 * to an IPv4 server, and more servers than glibc asks (three). */
static void
test_ipv6_server (Fixture *fixture, gconstpointer data)
{
	g_autofree char *mapped = NULL;
	const char *servers[5];
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;

	if (fixture->dns == NULL)
		return;
	mapped = g_strdup_printf ("[::ffff:127.0.0.1]:%u", sc_test_dns_get_port (fixture->dns));
	servers[0] = mapped;
	servers[1] = NULL;
	fixture->options.servers = servers;
	g_assert_cmpint (lookup (fixture, "txt.example.test", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_cmpstr (records[0], ==, "v=spf1 -all");
	g_clear_pointer (&records, g_strfreev);

	servers[0] = sc_test_dns_get_server (fixture->dns);
	servers[1] = mapped;
	servers[2] = mapped;
	servers[3] = mapped;
	servers[4] = NULL;
	g_assert_cmpint (lookup (fixture, "two.example.test", &records, NULL, NULL, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_cmpuint (g_strv_length (records), ==, 2);
	fixture->options.servers = fixture->servers;
}

/* ttl=1: cached for a second, asked again after it. */
static void
test_expiry (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	gboolean cached = TRUE;
	guint ttl = 0;

	if (fixture->dns == NULL)
		return;
	g_assert_cmpint (lookup (fixture, "_dmarc.example.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_cmpuint (ttl, ==, 1);
	g_assert_false (cached);
	g_clear_pointer (&records, g_strfreev);
	g_assert_cmpint (lookup (fixture, "_dmarc.example.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_true (cached);
	g_assert_cmpuint (queries (fixture, "_dmarc.example.test", 1), ==, 1);
	g_clear_pointer (&records, g_strfreev);

	g_usleep (1100 * 1000);
	g_assert_cmpint (lookup (fixture, "_dmarc.example.test", &records, &ttl, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_no_error (error);
	g_assert_false (cached);
	g_assert_cmpstr (records[0], ==, "v=DMARC1; p=reject");
	g_assert_cmpuint (queries (fixture, "_dmarc.example.test", 2), ==, 2);
}

/* Clearing the cache forgets answers, negative ones too. */
static void
test_clear (Fixture *fixture, gconstpointer data)
{
	g_auto(GStrv) records = NULL;
	g_autoptr(GError) error = NULL;
	gboolean cached = TRUE;

	if (fixture->dns == NULL)
		return;
	g_assert_cmpint (lookup (fixture, "_dmarc.nothing.test", &records, NULL, &cached, &error),
			 ==,
			 SC_DNS_NO_RECORD);
	g_assert_cmpint (lookup (fixture, "txt.example.test", &records, NULL, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_clear_pointer (&records, g_strfreev);
	sc_dns_cache_clear ();
	g_assert_cmpint (lookup (fixture, "_dmarc.nothing.test", &records, NULL, &cached, &error),
			 ==,
			 SC_DNS_NO_RECORD);
	g_assert_false (cached);
	g_assert_cmpint (lookup (fixture, "txt.example.test", &records, NULL, &cached, &error),
			 ==,
			 SC_DNS_RECORDS);
	g_assert_false (cached);
	g_assert_cmpuint (queries (fixture, "_dmarc.nothing.test", 2), ==, 2);
	g_assert_cmpuint (queries (fixture, "txt.example.test", 2), ==, 2);
}

typedef struct {
	Fixture *fixture;
	guint failures;
} ThreadData;

static gpointer
lookup_thread (gpointer user_data)
{
	ThreadData *data = user_data;

	for (guint i = 0; i < 50; i++) {
		g_auto(GStrv) records = NULL;
		g_autoptr(GError) error = NULL;
		const char *name = i % 2 == 0 ? "txt.example.test" : "two.example.test";

		if (lookup (data->fixture, name, &records, NULL, NULL, &error) != SC_DNS_RECORDS)
			g_atomic_int_inc (&data->failures);
		if (i % 10 == 0)
			sc_dns_cache_clear ();
	}
	return NULL;
}

/* Worker threads look up at once, clearing the cache under each other. */
static void
test_threads (Fixture *fixture, gconstpointer data)
{
	ThreadData shared = {fixture, 0};
	GThread *threads[8];

	if (fixture->dns == NULL)
		return;
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		threads[i] = g_thread_new ("lookup", lookup_thread, &shared);
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		g_thread_join (threads[i]);
	g_assert_cmpuint (shared.failures, ==, 0);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, function, ttl) \
	g_test_add (path, Fixture, GUINT_TO_POINTER (ttl), setup, function, teardown)
	ADD ("/dns/txt", test_txt, 0);
	ADD ("/dns/strings", test_strings, 0);
	ADD ("/dns/nxdomain", test_nxdomain, 0);
	ADD ("/dns/refused", test_refused, 0);
	ADD ("/dns/failover", test_failover, 0);
	ADD ("/dns/ipv6-server", test_ipv6_server, 0);
	ADD ("/dns/cache/expiry", test_expiry, 1);
	ADD ("/dns/cache/clear", test_clear, 0);
	ADD ("/dns/threads", test_threads, 0);
#undef ADD
	g_test_add_func ("/dns/timeout", test_timeout);
	return g_test_run ();
}
