/* test-dmarc.c — decorate's DMARC mitigation (from-rewrite) against a real DNS server.
 *
 * One dnsmasq (tests/sc-test-dns.h) publishes p=reject, p=quarantine and
 * p=none for three author domains and nothing for a fourth, plus an
 * organizational-domain case under co.uk (the real public suffix list):
 * From is rewritten, byte for byte as pinned here, exactly for the first
 * two and the subdomain whose organizational domain says sp=reject.  A
 * DNS server that never answers, or refuses, and a missing public suffix
 * list defer the stage (transient); never a guess.  Through the binary:
 * the message is deferred, not passed on, and goes through once DNS
 * answers.
 */
#include "config.h"

#include <gmime/gmime.h>

#include "sc-dmarc.h"
#include "sc-dns.h"
#include "sc-handler.h"
#include "sc-test-backend.h"
#include "sc-test-dns.h"
#include "sc-test-util.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (InternetAddressList, g_object_unref)

#define LIST_ADDRESS "dev@lists.example.org"
#define PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"

static char *long_record;

typedef struct {
	ScTestDns *dns; /* (nullable) without dnsmasq */
	GPtrArray *strings; /* (owned) what fields() returned, freed at teardown */
	ScConfig config;
	char *servers[2];
	ScListConfig list;
	ScStageContext context;
	const char *recipients[2];
	GBytes *input;
} Fixture;

static const char *const *
dns_records (void)
{
	static const char *records[32];
	guint n = 0;

	if (long_record == NULL) {
		GString *text = g_string_new ("v=DMARC1; ");

		/* longer than one 255-byte character-string: p= in the second one */
		while (text->len < 300)
			g_string_append (text, "rua=mailto:reports@long.test; ");
		g_string_append (text, "p=reject");
		long_record = g_string_free (text, FALSE);
	}

	records[n++] = "_dmarc.reject.test";
	records[n++] = "v=DMARC1; p=reject; rua=mailto:dmarc@reject.test";
	records[n++] = "_dmarc.quarantine.test";
	records[n++] = "v=DMARC1; p=quarantine";
	records[n++] = "_dmarc.none.test";
	records[n++] = "v=DMARC1; p=none";
	/* norecord.test: nothing at all */
	/* a subdomain without a record of its own falls under sp= */
	records[n++] = "_dmarc.orgreject.co.uk";
	records[n++] = "v=DMARC1; p=none; sp=reject";
	/* two DMARC records: no policy (RFC 7489 §6.6.3 step 5) */
	records[n++] = "_dmarc.twice.test";
	records[n++] = "v=DMARC1; p=reject";
	records[n++] = "_dmarc.twice.test";
	records[n++] = "v=DMARC1; p=none";
	/* a TXT that is not DMARC is no record: the organizational domain's p= */
	records[n++] = "_dmarc.sub.other.test";
	records[n++] = "v=spf1 -all";
	records[n++] = "_dmarc.other.test";
	records[n++] = "v=DMARC1; p=quarantine";
	records[n++] = "_dmarc.long.test";
	records[n++] = long_record;
	records[n++] = "_dmarc.badp.test";
	records[n++] = "v=DMARC1; p=bogus";
	records[n++] = "_dmarc.upper.test";
	records[n++] = "V=DMARC1;P=Reject";
	records[n++] = NULL;
	g_assert_cmpuint (n, <=, G_N_ELEMENTS (records));
	return records;
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	memset (fixture, 0, sizeof *fixture);
	fixture->strings = g_ptr_array_new_with_free_func (g_free);
	sc_dns_cache_clear ();
	/* a server per case: its query log counts this case's queries only */
	fixture->dns = sc_test_dns_start (dns_records (), 300);
	if (fixture->dns != NULL)
		fixture->servers[0] = (char *) sc_test_dns_get_server (fixture->dns);
	fixture->config.dns_servers = fixture->servers;
	fixture->config.dns_timeout = 3 * G_USEC_PER_SEC;
	fixture->config.public_suffix_list = (char *) PSL_PATH;
	fixture->list.id = (char *) "dev.lists.example.org";
	fixture->list.name = (char *) "dev";
	fixture->list.post = (char *) LIST_ADDRESS;
	fixture->list.address = (char *) LIST_ADDRESS;
	fixture->list.from_rewrite = SC_FROM_REWRITE_DMARC;
	fixture->list.from_original = SC_FROM_ORIGINAL_REPLY_TO;
	fixture->recipients[0] = "bob@example.net";
	fixture->context.queue_id = "q0123456789";
	fixture->context.stage = "decorate";
	fixture->context.list_id = fixture->list.id;
	fixture->context.sender = "alice@example.org";
	fixture->context.recipients = fixture->recipients;
	fixture->context.config = &fixture->config;
	fixture->context.list = &fixture->list;
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	sc_stage_context_clear_outputs (&fixture->context);
	g_clear_pointer (&fixture->input, g_bytes_unref);
	g_clear_pointer (&fixture->dns, sc_test_dns_free);
	g_ptr_array_unref (fixture->strings);
	sc_dns_cache_clear ();
}

/* Runs decorate on @message (LF line ends are fine: decorate makes CRLF). */
static gboolean
decorate (Fixture *fixture, const char *message, GError **error)
{
	sc_stage_context_clear_outputs (&fixture->context);
	g_clear_pointer (&fixture->input, g_bytes_unref);
	fixture->input = g_bytes_new (message, strlen (message));
	fixture->context.raw = fixture->input;
	fixture->context.current = fixture->input;
	return sc_handler_decorate.run (&fixture->context, error);
}

static void
decorate_ok (Fixture *fixture, const char *message)
{
	g_autoptr(GError) error = NULL;

	g_assert_true (decorate (fixture, message, &error));
	g_assert_no_error (error);
	g_assert_nonnull (fixture->context.output);
}

/* The whole output as a string. (transfer none) */
static const char *
output_text (Fixture *fixture)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (fixture->context.output, &length);

	g_ptr_array_add (fixture->strings, g_strndup (data, length));
	return g_ptr_array_index (fixture->strings, fixture->strings->len - 1);
}

/* The header block of the output, with CRLF. (transfer none) */
static const char *
output_headers (Fixture *fixture)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (fixture->context.output, &length);
	g_autofree char *text = g_strndup (data, length);
	char *end = strstr (text, "\r\n\r\n");

	g_assert_nonnull (end);
	g_ptr_array_add (fixture->strings, g_strndup (text, (gsize) (end - text) + 2));
	return g_ptr_array_index (fixture->strings, fixture->strings->len - 1);
}

/* Every field named @name (any case) in the output, raw, each with its
 * CRLF, concatenated; NULL when there is none. (transfer none) */
static const char *
fields (Fixture *fixture, const char *name)
{
	const char *headers = output_headers (fixture);
	g_auto(GStrv) lines = g_strsplit (headers, "\r\n", -1);
	GString *result = g_string_new (NULL);
	gboolean in_field = FALSE;
	gsize name_length = strlen (name);

	for (gsize i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++) {
		if (lines[i][0] == ' ' || lines[i][0] == '\t') {
			if (in_field)
				g_string_append_printf (result, "%s\r\n", lines[i]);
			continue;
		}
		in_field = g_ascii_strncasecmp (lines[i], name, name_length) == 0 &&
			   lines[i][name_length] == ':';
		if (in_field)
			g_string_append_printf (result, "%s\r\n", lines[i]);
	}
	if (result->len == 0) {
		g_string_free (result, TRUE);
		return NULL;
	}
	g_ptr_array_add (fixture->strings, g_string_free (result, FALSE));
	return g_ptr_array_index (fixture->strings, fixture->strings->len - 1);
}

static guint
queries (Fixture *fixture, const char *name)
{
	/* dnsmasq logs a moment after it answers */
	g_usleep (100 * 1000);
	return sc_test_dns_count_queries (fixture->dns, name);
}

/* sc_test_dns_start has called g_test_skip */
#define SKIP_WITHOUT_DNS()                                                                         \
	do {                                                                                       \
		if (fixture->dns == NULL)                                                          \
			return;                                                                    \
	} while (0)

/* ---- the record and the organizational domain ---- */

static void
test_record_parse (void)
{
	static const struct {
		const char *record;
		gboolean dmarc;
		ScDmarcPolicy p;
		ScDmarcPolicy sp;
	} cases[] = {
	    {"v=DMARC1; p=reject", TRUE, SC_DMARC_POLICY_REJECT, SC_DMARC_POLICY_REJECT},
	    {"v=DMARC1;p=quarantine;sp=none", TRUE, SC_DMARC_POLICY_QUARANTINE, SC_DMARC_POLICY_NONE},
	    {" v = DMARC1 ; p = none ; sp = reject ;", TRUE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_REJECT},
	    {"V=DMARC1; P=Reject", TRUE, SC_DMARC_POLICY_REJECT, SC_DMARC_POLICY_REJECT},
	    {"v=DMARC1; rua=mailto:d@example.com; p=reject; pct=10", TRUE, SC_DMARC_POLICY_REJECT, SC_DMARC_POLICY_REJECT},
	    /* the first of a repeated tag */
	    {"v=DMARC1; p=reject; p=none", TRUE, SC_DMARC_POLICY_REJECT, SC_DMARC_POLICY_REJECT},
	    /* §6.6.3 step 6: no valid p=, an invalid sp=: nothing to enforce */
	    {"v=DMARC1", TRUE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=DMARC1; p=bogus", TRUE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=DMARC1; p=reject; sp=bogus", TRUE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=DMARC1; sp=reject", TRUE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    /* not DMARC: v= not first, another version, no v= at all */
	    {"p=reject; v=DMARC1", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=DMARC2; p=reject", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=DMARC1 p=reject", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"v=spf1 -all", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	    {"DMARC1; p=reject", FALSE, SC_DMARC_POLICY_NONE, SC_DMARC_POLICY_NONE},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		ScDmarcPolicy p = SC_DMARC_POLICY_QUARANTINE;
		ScDmarcPolicy sp = SC_DMARC_POLICY_QUARANTINE;

		g_test_message ("%s", cases[i].record);
		g_assert_cmpint (sc_dmarc_record_parse (cases[i].record, &p, &sp, NULL),
				 ==,
				 cases[i].dmarc);
		g_assert_cmpint (p, ==, cases[i].p);
		g_assert_cmpint (sp, ==, cases[i].sp);
	}
}

static void
test_organizational (void)
{
	static const struct {
		const char *domain;
		const char *organizational;
	} cases[] = {
	    {"mail.orgreject.co.uk", "orgreject.co.uk"},
	    {"orgreject.co.uk", "orgreject.co.uk"},
	    {"a.b.example.com", "example.com"},
	    {"example.com", "example.com"},
	    {"co.uk", NULL},
	    {"com", NULL},
	    {"x.reject.test", "reject.test"},
	};
	g_autoptr(GError) error = NULL;
	char *organizational = NULL;

	if (!g_file_test (PSL_PATH, G_FILE_TEST_EXISTS)) {
		g_test_skip (PSL_PATH " (package publicsuffix) is not installed");
		return;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_assert_true (sc_dmarc_organizational_domain (PSL_PATH,
							       cases[i].domain,
							       &organizational,
							       &error));
		g_assert_no_error (error);
		g_assert_cmpstr (organizational, ==, cases[i].organizational);
		g_clear_pointer (&organizational, g_free);
	}
	g_assert_false (sc_dmarc_organizational_domain ("/nonexistent/public_suffix_list.dat",
							"example.com",
							&organizational,
							&error));
	g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	g_assert_nonnull (strstr (error->message, "/nonexistent/public_suffix_list.dat"));
	g_assert_null (organizational);
}

static void
test_lookup (Fixture *fixture, gconstpointer data)
{
	static const struct {
		const char *domain;
		ScDmarcPolicy policy;
		const char *record_domain;
		const char *tag;
	} cases[] = {
	    {"reject.test", SC_DMARC_POLICY_REJECT, "reject.test", "p"},
	    {"Quarantine.Test", SC_DMARC_POLICY_QUARANTINE, "quarantine.test", "p"},
	    {"none.test", SC_DMARC_POLICY_NONE, "none.test", "p"},
	    {"norecord.test", SC_DMARC_POLICY_NONE, NULL, NULL},
	    {"mail.orgreject.co.uk", SC_DMARC_POLICY_REJECT, "orgreject.co.uk", "sp"},
	    {"orgreject.co.uk", SC_DMARC_POLICY_NONE, "orgreject.co.uk", "p"},
	    {"twice.test", SC_DMARC_POLICY_NONE, NULL, NULL},
	    {"sub.other.test", SC_DMARC_POLICY_QUARANTINE, "other.test", "p"},
	    {"long.test", SC_DMARC_POLICY_REJECT, "long.test", "p"},
	    {"badp.test", SC_DMARC_POLICY_NONE, "badp.test", "p"},
	    {"upper.test", SC_DMARC_POLICY_REJECT, "upper.test", "p"},
	    {"[192.0.2.1]", SC_DMARC_POLICY_NONE, NULL, NULL},
	};
	ScDmarcOptions options = {(const char *const *) fixture->servers,
				  fixture->config.dns_timeout,
				  PSL_PATH};

	SKIP_WITHOUT_DNS ();
	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		ScDmarcResult result = {SC_DMARC_POLICY_QUARANTINE, NULL, NULL};
		g_autoptr(GError) error = NULL;

		g_test_message ("%s", cases[i].domain);
		g_assert_true (sc_dmarc_lookup (&options, cases[i].domain, &result, &error));
		g_assert_no_error (error);
		g_assert_cmpint (result.policy, ==, cases[i].policy);
		g_assert_cmpstr (result.record_domain, ==, cases[i].record_domain);
		g_assert_cmpstr (result.tag, ==, cases[i].tag);
		sc_dmarc_result_clear (&result);
	}
	/* the subdomain's own name was asked first, then its organizational domain */
	g_assert_cmpuint (queries (fixture, "_dmarc.mail.orgreject.co.uk"), ==, 1);
	/* a domain with its own record: no second lookup */
	g_assert_cmpuint (queries (fixture, "_dmarc.test"), ==, 0);
}

/* ---- decorate ---- */

static const char reject_message[] = "From: Alice Example <alice@reject.test>\n"
				     "To: dev@lists.example.org\n"
				     "Subject: hello\n"
				     "Message-ID: <m1@reject.test>\n"
				     "\n"
				     "Body.\n";

/* p=reject: From is the list's, the author in Reply-To and X-Original-From. */
static void
test_decorate_reject (Fixture *fixture, gconstpointer data)
{
	const char *headers;

	SKIP_WITHOUT_DNS ();
	decorate_ok (fixture, reject_message);
	headers = output_headers (fixture);
	g_test_message ("%s", headers);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example via dev <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"), ==, "Reply-To: Alice Example <alice@reject.test>\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: Alice Example <alice@reject.test>\r\n");
	g_assert_null (fields (fixture, "Cc"));
	/* From keeps its place: still the first field */
	g_assert_true (g_str_has_prefix (headers, "From: Alice Example via dev"));
	g_assert_cmpstr (fixture->context.note, ==, "From rewritten: reject.test publishes p=reject");
	/* the body is untouched */
	g_assert_true (g_str_has_suffix (output_text (fixture), "\r\n\r\nBody.\r\n"));
}

/* p=quarantine with from-original=cc: the author joins an existing Cc;
 * a Reply-To the poster set stays as it was. */
static void
test_decorate_quarantine_cc (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	fixture->list.from_original = SC_FROM_ORIGINAL_CC;
	decorate_ok (fixture,
		     "From: \"Quentin Q. Public\" <quentin@quarantine.test>\n"
		     "To: dev@lists.example.org\n"
		     "Cc: Bob <bob@example.net>\n"
		     "Reply-To: <elsewhere@example.net>\n"
		     "Subject: hello\n"
		     "\n"
		     "Body.\n");
	g_test_message ("%s", output_headers (fixture));
	g_assert_cmpstr (fields (fixture, "From"),
			 ==,
			 "From: \"Quentin Q. Public via dev\" <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Cc"),
			 ==,
			 "Cc: Bob <bob@example.net>, \"Quentin Q. Public\" <quentin@quarantine.test>\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"), ==, "Reply-To: <elsewhere@example.net>\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: \"Quentin Q. Public\" <quentin@quarantine.test>\r\n");
	g_assert_cmpstr (fixture->context.note,
			 ==,
			 "From rewritten: quarantine.test publishes p=quarantine");
}

/* p=none, no record, two records, a record without valid p=: From stays. */
static void
test_decorate_kept (Fixture *fixture, gconstpointer data)
{
	static const char *const domains[] = {"none.test", "norecord.test", "twice.test",
					      "badp.test", "orgreject.co.uk"};

	SKIP_WITHOUT_DNS ();
	for (gsize i = 0; i < G_N_ELEMENTS (domains); i++) {
		g_autofree char *message = g_strdup_printf ("From: Alice <alice@%s>\n"
							    "To: dev@lists.example.org\n"
							    "Subject: hello\n"
							    "\n"
							    "Body.\n",
							    domains[i]);
		g_autofree char *from = g_strdup_printf ("From: Alice <alice@%s>\r\n", domains[i]);
		g_autofree char *name = g_strdup_printf ("_dmarc.%s", domains[i]);

		g_test_message ("%s", domains[i]);
		decorate_ok (fixture, message);
		g_assert_cmpstr (fields (fixture, "From"), ==, from);
		g_assert_null (fields (fixture, "Reply-To"));
		g_assert_null (fields (fixture, "X-Original-From"));
		g_assert_null (fixture->context.note);
		g_assert_cmpuint (queries (fixture, name), ==, 1);
	}
}

/* A subdomain without a record of its own: its organizational domain's sp=. */
static void
test_decorate_organizational (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	decorate_ok (fixture,
		     "From: Olga <olga@mail.orgreject.co.uk>\n"
		     "Reply-To: Olga <OLGA@mail.orgreject.co.uk>\n"
		     "Subject: hello\n"
		     "\n"
		     "Body.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Olga via dev <" LIST_ADDRESS ">\r\n");
	/* already in Reply-To (in another case): the field is left as it was */
	g_assert_cmpstr (fields (fixture, "Reply-To"), ==, "Reply-To: Olga <OLGA@mail.orgreject.co.uk>\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: Olga <olga@mail.orgreject.co.uk>\r\n");
	g_assert_cmpstr (fixture->context.note,
			 ==,
			 "From rewritten: orgreject.co.uk publishes sp=reject");
	g_assert_cmpuint (queries (fixture, "_dmarc.mail.orgreject.co.uk"), ==, 1);
	g_assert_cmpuint (queries (fixture, "_dmarc.orgreject.co.uk"), ==, 1);
}

/* Names: none (the local part), an address as the name (its local part),
 * non-ASCII (RFC 2047 both ways: GMime picks the smallest charset that
 * holds the text), a folded original kept byte for byte. */
static void
test_decorate_names (Fixture *fixture, gconstpointer data)
{
	g_autoptr(InternetAddressList) parsed = NULL;
	const char *from;

	SKIP_WITHOUT_DNS ();
	decorate_ok (fixture, "From: alice@reject.test\nSubject: a\n\nBody.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: alice via dev <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"), ==, "Reply-To: alice@reject.test\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"), ==, "X-Original-From: alice@reject.test\r\n");

	decorate_ok (fixture, "From: \"alice@reject.test\" <alice@reject.test>\nSubject: a\n\nBody.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: alice via dev <" LIST_ADDRESS ">\r\n");

	decorate_ok (fixture,
		     "From: =?utf-8?q?Ren=C3=A9e_Fran=C3=A7ois?=\n"
		     " <renee@reject.test>\n"
		     "Subject: a\n"
		     "\n"
		     "Body.\n");
	g_test_message ("%s", output_headers (fixture));
	g_assert_cmpstr (fields (fixture, "From"),
			 ==,
			 "From: =?iso-8859-1?q?Ren=E9e_Fran=E7ois?= via dev <" LIST_ADDRESS ">\r\n");
	from = fields (fixture, "From");
	parsed = internet_address_list_parse (NULL, from + strlen ("From:"));
	g_assert_cmpstr (internet_address_get_name (internet_address_list_get_address (parsed, 0)),
			 ==,
			 "Renée François via dev");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: =?utf-8?q?Ren=C3=A9e_Fran=C3=A7ois?=\r\n"
			 " <renee@reject.test>\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"),
			 ==,
			 "Reply-To: =?iso-8859-1?q?Ren=E9e_Fran=E7ois?= <renee@reject.test>\r\n");

	/* a list named in UTF-8 */
	fixture->list.name = (char *) "Développeurs";
	decorate_ok (fixture, "From: Bob <bob@reject.test>\nSubject: a\n\nBody.\n");
	g_test_message ("%s", output_headers (fixture));
	g_clear_pointer (&parsed, g_object_unref);
	from = fields (fixture, "From");
	parsed = internet_address_list_parse (NULL, from + strlen ("From:"));
	g_assert_cmpstr (internet_address_get_name (internet_address_list_get_address (parsed, 0)),
			 ==,
			 "Bob via Développeurs");
	g_assert_true (g_str_is_ascii (from));
}

/* Several authors: each domain asked, the strictest wins, all in Reply-To. */
static void
test_decorate_several (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	decorate_ok (fixture,
		     "From: Ann <ann@none.test>, Bea <bea@quarantine.test>\n"
		     "Sender: Ann <ann@none.test>\n"
		     "Reply-To: Ann <ann@none.test>\n"
		     "Subject: a\n"
		     "\n"
		     "Body.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: \"Ann, Bea via dev\" <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"),
			 ==,
			 "Reply-To: Ann <ann@none.test>, Bea <bea@quarantine.test>\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: Ann <ann@none.test>, Bea <bea@quarantine.test>\r\n");
	g_assert_cmpstr (fields (fixture, "Sender"), ==, "Sender: Ann <ann@none.test>\r\n");
	g_assert_cmpstr (fixture->context.note,
			 ==,
			 "From rewritten: quarantine.test publishes p=quarantine");

	/* two From fields become one; each original is kept; a stale
	 * X-Original-From goes */
	decorate_ok (fixture,
		     "From: Ann <ann@reject.test>\n"
		     "X-Original-From: forged@example.net\n"
		     "Subject: a\n"
		     "From: Cy <cy@none.test>\n"
		     "\n"
		     "Body.\n");
	g_test_message ("%s", output_headers (fixture));
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: \"Ann, Cy via dev\" <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "X-Original-From"),
			 ==,
			 "X-Original-From: Ann <ann@reject.test>\r\n"
			 "X-Original-From: Cy <cy@none.test>\r\n");
}

/* Left alone: the list's own address, a From without an address. */
static void
test_decorate_left_alone (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	decorate_ok (fixture, "From: The dev list <DEV@lists.example.org>\nSubject: a\n\nBody.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: The dev list <DEV@lists.example.org>\r\n");
	g_assert_null (fields (fixture, "X-Original-From"));
	g_assert_null (fixture->context.note);
	g_assert_cmpuint (queries (fixture, "_dmarc.lists.example.org"), ==, 0);

	decorate_ok (fixture, "From: undisclosed\nSubject: a\n\nBody.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: undisclosed\r\n");
	g_assert_null (fields (fixture, "X-Original-From"));
	g_assert_cmpstr (fixture->context.note, ==, "From not rewritten: it holds no author address");

	decorate_ok (fixture, "Subject: no from at all\n\nBody.\n");
	g_assert_null (fields (fixture, "From"));
	g_assert_cmpstr (fixture->context.note, ==, "From not rewritten: it holds no author address");
}

/* always: without a lookup; never: neither lookup nor rewrite. */
static void
test_decorate_always_never (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	fixture->list.from_rewrite = SC_FROM_REWRITE_ALWAYS;
	decorate_ok (fixture, "From: Nora <nora@none.test>\nSubject: a\n\nBody.\n");
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Nora via dev <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Reply-To"), ==, "Reply-To: Nora <nora@none.test>\r\n");
	g_assert_cmpstr (fixture->context.note, ==, "From rewritten (from-rewrite=always)");
	g_assert_cmpuint (queries (fixture, "_dmarc.none.test"), ==, 0);

	fixture->list.from_rewrite = SC_FROM_REWRITE_NEVER;
	decorate_ok (fixture, reject_message);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example <alice@reject.test>\r\n");
	g_assert_null (fields (fixture, "X-Original-From"));
	g_assert_null (fixture->context.note);
	g_assert_cmpuint (queries (fixture, "_dmarc.reject.test"), ==, 0);

	/* a list without an address cannot rewrite (the loader says never) */
	fixture->list.from_rewrite = SC_FROM_REWRITE_ALWAYS;
	fixture->list.address = NULL;
	decorate_ok (fixture, reject_message);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example <alice@reject.test>\r\n");
}

/* The policy is asked once per TTL, not once per message. */
static void
test_decorate_cached (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	for (guint i = 0; i < 3; i++) {
		decorate_ok (fixture, reject_message);
		g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example via dev <" LIST_ADDRESS ">\r\n");
		decorate_ok (fixture, "From: n@norecord.test\nSubject: a\n\nBody.\n");
		g_assert_cmpstr (fields (fixture, "From"), ==, "From: n@norecord.test\r\n");
	}
	g_assert_cmpuint (queries (fixture, "_dmarc.reject.test"), ==, 1);
	g_assert_cmpuint (queries (fixture, "_dmarc.norecord.test"), ==, 1);
}

/* The decorated message and the footer: the From note comes first. */
static void
test_decorate_with_footer (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	fixture->list.footer_template = (char *) "-- \nfooter\n";
	fixture->list.subject_prefix = (char *) "[dev]";
	decorate_ok (fixture, reject_message);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example via dev <" LIST_ADDRESS ">\r\n");
	g_assert_cmpstr (fields (fixture, "Subject"), ==, "Subject: [dev] hello\r\n");
	g_assert_true (g_str_has_suffix (output_text (fixture),
					 "Body.\r\n-- \r\nfooter\r\n"));
	g_assert_cmpstr (fixture->context.note, ==, "From rewritten: reject.test publishes p=reject");
}

static void
assert_transient (Fixture *fixture, const char *message, const char *expected_text)
{
	g_autoptr(GError) error = NULL;

	g_assert_false (decorate (fixture, message, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, expected_text));
	g_assert_null (fixture->context.output);
}

/* A server that never answers: transient after dns-timeout, nothing cached. */
static void
test_decorate_timeout (Fixture *fixture, gconstpointer data)
{
	g_autofree char *server = NULL;
	g_autoptr(GObject) silent = sc_test_dns_silent_new (&server);
	gint64 started;

	fixture->servers[0] = server;
	fixture->config.dns_timeout = G_USEC_PER_SEC;
	started = g_get_monotonic_time ();
	assert_transient (fixture, reject_message, "no DNS answer for _dmarc.reject.test");
	g_assert_cmpint (g_get_monotonic_time () - started, <, 2 * G_USEC_PER_SEC);

	/* always needs no DNS: it goes through */
	fixture->list.from_rewrite = SC_FROM_REWRITE_ALWAYS;
	decorate_ok (fixture, reject_message);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example via dev <" LIST_ADDRESS ">\r\n");

	/* the server answers now: the same message is rewritten */
	SKIP_WITHOUT_DNS ();
	fixture->list.from_rewrite = SC_FROM_REWRITE_DMARC;
	fixture->servers[0] = (char *) sc_test_dns_get_server (fixture->dns);
	decorate_ok (fixture, reject_message);
	g_assert_cmpstr (fields (fixture, "From"), ==, "From: Alice Example via dev <" LIST_ADDRESS ">\r\n");
}

/* REFUSED is no answer either; nor is one author's failure among several. */
static void
test_decorate_refused (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	assert_transient (fixture,
			  "From: a@none.test, b@example.invalid\nSubject: a\n\nBody.\n",
			  "_dmarc.example.invalid");
}

/* No public suffix list: transient, naming the file, before any query. */
static void
test_decorate_no_suffix_list (Fixture *fixture, gconstpointer data)
{
	SKIP_WITHOUT_DNS ();
	fixture->config.public_suffix_list = (char *) "/nonexistent/public_suffix_list.dat";
	assert_transient (fixture, reject_message, "/nonexistent/public_suffix_list.dat");
	g_assert_cmpuint (queries (fixture, "_dmarc.reject.test"), ==, 0);
	/* an unparsable file is no list either */
	fixture->config.public_suffix_list = (char *) "/dev/null";
	assert_transient (fixture, reject_message, "/dev/null");
}

/* ---- through the binary ---- */

static char *
find_archived (const char *dir)
{
	const char *folders[] = {"new", "cur"};

	for (gsize i = 0; i < G_N_ELEMENTS (folders); i++) {
		g_autofree char *path = g_build_filename (dir, folders[i], NULL);
		g_autoptr(GDir) handle = g_dir_open (path, 0, NULL);
		const char *name;

		while (handle != NULL && (name = g_dir_read_name (handle)) != NULL) {
			g_autofree char *file = g_build_filename (path, name, NULL);
			char *contents = NULL;

			g_assert_true (g_file_get_contents (file, &contents, NULL, NULL));
			return contents;
		}
	}
	return NULL;
}

static void
write_config (const char *dir, const char *spool_lines, const char *server)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "%s"
						 "dns-server=%s\n"
						 "dns-timeout=1s\n"
						 "[list:dev.lists.example.org]\n"
						 "pipeline=decorate;archive\n"
						 "archive=maildir:archive\n"
						 "post=" LIST_ADDRESS "\n",
						 spool_lines,
						 server);
	g_autofree char *path = sc_test_write_file (dir, "stagecoach.conf", text);
}

/* The daemon defers the message while DNS is silent, and rewrites it
 * once DNS answers; the default from-rewrite is dmarc for a list with
 * an address. */
static void
test_binary (Fixture *fixture, gconstpointer data)
{
	g_autofree char *dir = NULL;
	g_autofree char *spool_lines = NULL;
	g_autofree char *config = NULL;
	g_autofree char *archive = NULL;
	g_autofree char *server = NULL;
	g_autofree char *queue_id = NULL;
	g_autofree char *archived = NULL;
	g_autofree char *log = NULL;
	g_autoptr(GObject) silent = NULL;
	g_autoptr(JsonObject) shown = NULL;
	JsonArray *stages;
	const char *note = NULL;

	SKIP_WITHOUT_DNS ();
	dir = sc_test_make_tmpdir ("sc-dmarc");
	spool_lines = sc_test_backend_spool_lines (dir);
	config = g_build_filename (dir, "stagecoach.conf", NULL);
	archive = g_build_filename (dir, "archive", NULL);
	silent = sc_test_dns_silent_new (&server);
	write_config (dir, spool_lines, server);

	queue_id = sc_test_inject (config, "dev.lists.example.org", reject_message);
	g_assert_cmpint (sc_test_run (config, NULL, NULL, NULL, "run", "--once", NULL), ==, 0);
	shown = sc_test_show (config, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "state"), ==, "deferred");
	g_test_message ("%s", json_object_get_string_member (shown, "last_error"));
	g_assert_nonnull (strstr (json_object_get_string_member (shown, "last_error"),
				  "no DNS answer for _dmarc.reject.test"));
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "stages")), ==, 0);
	/* not passed on: nothing archived */
	g_assert_null (find_archived (archive));
	g_clear_pointer (&shown, json_object_unref);

	/* DNS answers now */
	write_config (dir, spool_lines, sc_test_dns_get_server (fixture->dns));
	g_assert_cmpint (sc_test_run (config, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	/* the ok stage's log line (GLib writes info to stdout) carries the rewrite as a note, not as an error */
	g_assert_cmpint (sc_test_run (config, NULL, &log, NULL, "--verbose", "run", "--once", NULL), ==, 0);
	g_test_message ("%s", log);
	g_assert_nonnull (strstr (log, " stage=decorate outcome=ok state=active note=\"From rewritten: reject.test publishes p=reject\"\n"));
	g_assert_null (strstr (log, "error="));
	shown = sc_test_show (config, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "state"), ==, "done");
	stages = json_object_get_array_member (shown, "stages");
	for (guint i = 0; i < json_array_get_length (stages); i++) {
		JsonObject *stage = json_array_get_object_element (stages, i);
		if (g_strcmp0 (json_object_get_string_member (stage, "stage"), "decorate") == 0)
			note = json_object_get_string_member (stage, "note");
	}
	g_assert_cmpstr (note, ==, "From rewritten: reject.test publishes p=reject");
	archived = find_archived (archive);
	g_assert_nonnull (archived);
	g_assert_nonnull (strstr (archived, "From: Alice Example via dev <" LIST_ADDRESS ">\n"));
	g_assert_nonnull (strstr (archived, "Reply-To: Alice Example <alice@reject.test>\n"));
	g_assert_nonnull (strstr (archived, "X-Original-From: Alice Example <alice@reject.test>\n"));
	sc_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
	int result;

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_mime_init ();
	if (!sc_test_backend_init ())
		return 0;
	g_test_add_func ("/dmarc/record/parse", test_record_parse);
	g_test_add_func ("/dmarc/organizational", test_organizational);
#define ADD(path, function) g_test_add (path, Fixture, NULL, setup, function, teardown)
	ADD ("/dmarc/lookup", test_lookup);
	ADD ("/dmarc/decorate/reject", test_decorate_reject);
	ADD ("/dmarc/decorate/quarantine-cc", test_decorate_quarantine_cc);
	ADD ("/dmarc/decorate/kept", test_decorate_kept);
	ADD ("/dmarc/decorate/organizational", test_decorate_organizational);
	ADD ("/dmarc/decorate/names", test_decorate_names);
	ADD ("/dmarc/decorate/several", test_decorate_several);
	ADD ("/dmarc/decorate/left-alone", test_decorate_left_alone);
	ADD ("/dmarc/decorate/always-never", test_decorate_always_never);
	ADD ("/dmarc/decorate/cached", test_decorate_cached);
	ADD ("/dmarc/decorate/with-footer", test_decorate_with_footer);
	ADD ("/dmarc/decorate/timeout", test_decorate_timeout);
	ADD ("/dmarc/decorate/refused", test_decorate_refused);
	ADD ("/dmarc/decorate/no-suffix-list", test_decorate_no_suffix_list);
	ADD ("/dmarc/binary", test_binary);
#undef ADD
	result = g_test_run ();
	g_free (long_record);
	return result;
}
