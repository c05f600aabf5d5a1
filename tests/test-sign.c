/* test-sign.c — the sign stage: DKIM signatures checked by another implementation.
 *
 * Every signature here is verified by dkimpy (tests/dkim-verify.py, run
 * with /usr/bin/python3), which looks the public key up over real DNS: a
 * private dnsmasq on 127.0.0.1 (sc-test-dns.h) serving the record that
 * sc_dkim_txt_record() or `stagecoach dkim-record` produced.  Keys are
 * made once per run with OpenSSL: RSA-2048, Ed25519, and the kinds that
 * must be refused (RSA-1024, EC P-256, an encrypted key).
 *
 * The corpus cases run the real daemon, `decorate;sign;deliver` into
 * Postfix's smtp-sink, inject every corpus message, and verify the bytes
 * the sink received — which must also equal the sign stage's recorded
 * output: the signature covers exactly what deliver sends.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sc-dkim.h"
#include "sc-handler.h"
#include "sc-list-unsubscribe.h"
#include "sc-test-dns.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)

#define PYTHON "/usr/bin/python3"
#define LIST_ID "dev.lists.example.org"
#define DOMAIN "lists.example.org"

/* Made in main(), removed at the end. */
static char *keys_dir;
static char *rsa_key;
static char *ed25519_key;
static char *rsa1024_key;
static char *ec_key;
static char *encrypted_key;
static char *truncated_key; /* the first half of an RSA-2048 PEM: its lines must never show */

static void
write_key (EVP_PKEY *key, const char *path, gboolean encrypt)
{
	FILE *stream = fopen (path, "w");

	g_assert_nonnull (key);
	g_assert_nonnull (stream);
	if (encrypt)
		g_assert_cmpint (PEM_write_PrivateKey (stream, key, EVP_aes_256_cbc (),
						       (unsigned char *) "secret", 6, NULL, NULL),
				 ==, 1);
	else
		g_assert_cmpint (PEM_write_PrivateKey (stream, key, NULL, NULL, 0, NULL, NULL), ==, 1);
	g_assert_cmpint (fclose (stream), ==, 0);
	g_assert_cmpint (g_chmod (path, 0600), ==, 0);
}

static void
make_keys (void)
{
	g_autoptr(EVP_PKEY) rsa = EVP_RSA_gen (2048);
	g_autoptr(EVP_PKEY) ed25519 = EVP_PKEY_Q_keygen (NULL, NULL, "ED25519");
	g_autoptr(EVP_PKEY) rsa1024 = EVP_RSA_gen (1024);
	g_autoptr(EVP_PKEY) ec = EVP_EC_gen ("P-256");
	g_autofree char *pem = NULL;
	gsize length = 0;

	keys_dir = sc_test_make_tmpdir ("sc-sign-keys");
	rsa_key = g_build_filename (keys_dir, "rsa.pem", NULL);
	ed25519_key = g_build_filename (keys_dir, "ed25519.pem", NULL);
	rsa1024_key = g_build_filename (keys_dir, "rsa1024.pem", NULL);
	ec_key = g_build_filename (keys_dir, "ec.pem", NULL);
	encrypted_key = g_build_filename (keys_dir, "encrypted.pem", NULL);
	truncated_key = g_build_filename (keys_dir, "truncated.pem", NULL);
	write_key (rsa, rsa_key, FALSE);
	write_key (ed25519, ed25519_key, FALSE);
	write_key (rsa1024, rsa1024_key, FALSE);
	write_key (ec, ec_key, FALSE);
	write_key (rsa, encrypted_key, TRUE);
	g_assert_true (g_file_get_contents (rsa_key, &pem, &length, NULL));
	g_assert_true (g_file_set_contents (truncated_key, pem, length / 2, NULL));
}

/* The base64 lines of a PEM file: none may appear in any output. */
static GPtrArray *
key_lines (const char *path)
{
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;
	GPtrArray *result = g_ptr_array_new_with_free_func (g_free);

	g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
	lines = g_strsplit (contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		/* a partial last line of the truncated key is still key material */
		if (lines[i][0] != '-' && strlen (lines[i]) >= 16)
			g_ptr_array_add (result, g_strndup (lines[i], 16));
	}
	g_assert_cmpuint (result->len, >=, 1);
	return result;
}

static void
assert_no_key_material (const char *text, const char *key_path)
{
	g_autoptr(GPtrArray) lines = key_lines (key_path);

	for (guint i = 0; i < lines->len; i++) {
		if (strstr (text, lines->pdata[i]) != NULL)
			g_error ("key material from %s appears in: %s", key_path, text);
	}
}

/* ---- the verifier --------------------------------------------------------- */

typedef struct {
	int status;          /* the script's exit status; 77: dkimpy missing */
	GHashTable *results; /* path → "ok …" or "FAIL …: reason" */
	char *output;
} ScVerify;

static void
verify_clear (ScVerify *verify)
{
	g_clear_pointer (&verify->results, g_hash_table_unref);
	g_clear_pointer (&verify->output, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ScVerify, verify_clear)

/* Runs dkim-verify.py on @paths against @dns.  FALSE (after g_test_skip)
 * when dkimpy, dnspython or /usr/bin/python3 is missing. */
static gboolean
verify_files (ScTestDns *dns, GPtrArray *paths, ScVerify *verify)
{
	g_autofree char *script = g_test_build_filename (G_TEST_DIST, "dkim-verify.py", NULL);
	g_autofree char *port = g_strdup_printf ("%u", sc_test_dns_get_port (dns));
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *err = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_test (PYTHON, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip (PYTHON " is not installed");
		return FALSE;
	}
	g_ptr_array_add (argv, (gpointer) PYTHON);
	g_ptr_array_add (argv, script);
	g_ptr_array_add (argv, (gpointer) "--port");
	g_ptr_array_add (argv, port);
	for (guint i = 0; i < paths->len; i++)
		g_ptr_array_add (argv, paths->pdata[i]);
	g_ptr_array_add (argv, NULL);
	process = g_subprocess_newv ((const char *const *) argv->pdata,
				     G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
				     &error);
	g_assert_no_error (error);
	g_subprocess_communicate_utf8 (process, NULL, NULL, &verify->output, &err, &error);
	g_assert_no_error (error);
	verify->status = g_subprocess_get_exit_status (process);
	if (verify->status == 77) {
		g_test_skip (verify->output);
		return FALSE;
	}
	if (verify->status != 0 && verify->status != 1)
		g_error ("dkim-verify.py exited %d: %s%s", verify->status, verify->output, err);
	verify->results = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	lines = g_strsplit (verify->output, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		const char *line = lines[i];
		const char *path = NULL;
		if (g_str_has_prefix (line, "ok "))
			path = line + 3;
		else if (g_str_has_prefix (line, "FAIL "))
			path = line + 5;
		else
			continue;
		for (guint j = 0; j < paths->len; j++) {
			const char *candidate = paths->pdata[j];
			gsize length = strlen (candidate);
			if (strncmp (path, candidate, length) == 0 &&
			    (path[length] == ' ' || path[length] == ':'))
				g_hash_table_replace (verify->results, g_strdup (candidate),
						      g_strdup (line));
		}
	}
	g_assert_cmpuint (g_hash_table_size (verify->results), ==, paths->len);
	return TRUE;
}

static gboolean
verified (ScVerify *verify, const char *path)
{
	const char *line = g_hash_table_lookup (verify->results, path);
	g_assert_nonnull (line);
	return g_str_has_prefix (line, "ok ");
}

/* ---- fixtures ------------------------------------------------------------------ */

typedef struct {
	char *dir;
	ScListConfig list;
	ScStageContext context;
	const char *recipients[2];
	ScTestDns *dns;
	guint files;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	gboolean ed25519 = g_strcmp0 (user_data, "ed25519") == 0;

	memset (fixture, 0, sizeof (*fixture));
	fixture->dir = sc_test_make_tmpdir ("sc-sign");
	fixture->list.id = (char *) LIST_ID;
	fixture->list.name = (char *) "dev";
	fixture->list.dkim_domain = (char *) DOMAIN;
	fixture->list.dkim_selector = ed25519 ? (char *) "ed1" : (char *) "rsa1";
	fixture->list.dkim_key_file = ed25519 ? ed25519_key : rsa_key;
	fixture->recipients[0] = "bob@example.net";
	fixture->context.queue_id = "q0123456789";
	fixture->context.stage = "sign";
	fixture->context.list_id = LIST_ID;
	fixture->context.sender = "alice@example.org";
	fixture->context.recipients = fixture->recipients;
	fixture->context.list = &fixture->list;
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	sc_stage_context_clear_outputs (&fixture->context);
	g_clear_pointer (&fixture->dns, sc_test_dns_free);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

/* dnsmasq serving the list's record; FALSE after g_test_skip(). */
static gboolean
fixture_dns (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *name = sc_dkim_record_name (&fixture->list);
	g_autofree char *text = sc_dkim_txt_record (&fixture->list, NULL, &error);
	const char *records[] = {name, text, NULL};

	g_assert_no_error (error);
	fixture->dns = sc_test_dns_start (records, 60);
	return fixture->dns != NULL;
}

/* Runs the stage on @message; its output (transfer none). */
static GBytes *
sign_bytes (Fixture *fixture, GBytes *message)
{
	g_autoptr(GError) error = NULL;

	sc_stage_context_clear_outputs (&fixture->context);
	fixture->context.raw = message;
	fixture->context.current = message;
	g_assert_true (sc_handler_sign.run (&fixture->context, &error));
	g_assert_no_error (error);
	g_assert_nonnull (fixture->context.output);
	return fixture->context.output;
}

static GBytes *
sign_text (Fixture *fixture, const char *text)
{
	g_autoptr(GBytes) message = g_bytes_new (text, strlen (text));
	return sign_bytes (fixture, message);
}

/* Writes @data to a new file in the fixture's folder. (transfer full) */
static char *
fixture_file (Fixture *fixture, const char *name, const void *data, gsize length)
{
	g_autofree char *base = g_strdup_printf ("%02u-%s.eml", fixture->files++, name);
	char *path = g_build_filename (fixture->dir, base, NULL);

	g_assert_true (g_file_set_contents (path, data, length, NULL));
	return path;
}

static char *
fixture_bytes_file (Fixture *fixture, const char *name, GBytes *bytes)
{
	gsize length = 0;
	const void *data = g_bytes_get_data (bytes, &length);
	return fixture_file (fixture, name, data, length);
}

/* The DKIM-Signature field's value, unfolded. (transfer full) */
static char *
signature_value (GBytes *message)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	g_autofree char *copy = g_strndup (data, MIN (length, 4096));
	GString *value = g_string_new (NULL);
	const char *p;

	g_assert_true (g_str_has_prefix (copy, "DKIM-Signature: "));
	p = copy + strlen ("DKIM-Signature: ");
	for (;;) {
		const char *end = strstr (p, "\r\n");
		g_assert_nonnull (end);
		g_string_append_len (value, p, end - p);
		if (end[2] != ' ' && end[2] != '\t')
			break;
		p = end + 2;
	}
	return g_string_free (value, FALSE);
}

/* The value of tag @tag in a signature, white space removed. (transfer full) */
static char *
signature_tag (const char *signature, const char *tag)
{
	g_auto(GStrv) parts = g_strsplit (signature, ";", -1);

	for (guint i = 0; parts[i] != NULL; i++) {
		g_autofree char *part = g_strstrip (g_strdup (parts[i]));
		gsize tag_length = strlen (tag);
		if (strncmp (part, tag, tag_length) == 0 && part[tag_length] == '=') {
			GString *value = g_string_new (NULL);
			for (const char *c = part + tag_length + 1; *c != '\0'; c++) {
				if (!g_ascii_isspace (*c))
					g_string_append_c (value, *c);
			}
			return g_string_free (value, FALSE);
		}
	}
	return NULL;
}

/* How often @name (any case) is in the colon-separated @list. */
static guint
count_name (const char *list, const char *name)
{
	g_auto(GStrv) names = g_strsplit (list, ":", -1);
	guint count = 0;

	for (guint i = 0; names[i] != NULL; i++)
		count += g_ascii_strcasecmp (names[i], name) == 0;
	return count;
}

/* @message with @field ("Name: value\r\n") inserted right after the
 * DKIM-Signature field (the top, where an attacker's copy is read last). */
static GBytes *
insert_after_signature (GBytes *message, const char *field)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	GByteArray *out = g_byte_array_new ();
	const char *p = data;

	/* the end of the folded signature field */
	for (;;) {
		const char *end = strstr (p, "\r\n");
		p = end + 2;
		if (*p != ' ' && *p != '\t')
			break;
	}
	g_byte_array_append (out, (const guint8 *) data, p - data);
	g_byte_array_append (out, (const guint8 *) field, strlen (field));
	g_byte_array_append (out, (const guint8 *) p, length - (p - data));
	return g_byte_array_free_to_bytes (out);
}

static const char *simple_message = "From: Alice <alice@example.org>\r\n"
				    "To: dev@lists.example.org\r\n"
				    "Subject: [dev] hello\r\n"
				    "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
				    "Message-ID: <m1@example.org>\r\n"
				    "MIME-Version: 1.0\r\n"
				    "Content-Type: text/plain; charset=utf-8\r\n"
				    "List-Id: dev <dev.lists.example.org>\r\n"
				    "Received: from somewhere by lists.example.org; Tue, 1 Dec 2026\r\n"
				    "X-Mailer: test\r\n"
				    "\r\n"
				    "Hello,   list.  \r\n"
				    "\r\n"
				    "-- \r\n"
				    "footer\r\n"
				    "\r\n";

/* ---- cases ------------------------------------------------------------------- */

/* A signature verifies; the note says how it was made; h= has the header
 * set, with the over-signed fields once more than they occur. */
static void
test_verifies (Fixture *fixture, gconstpointer user_data)
{
	gboolean ed25519 = g_strcmp0 (user_data, "ed25519") == 0;
	g_auto(ScVerify) verify = {0};
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	GBytes *output;
	g_autofree char *signature = NULL;
	g_autofree char *h = NULL;
	g_autofree char *a = NULL;
	g_autofree char *c = NULL;
	g_autofree char *expected_note = NULL;

	if (ed25519 && !sc_dkim_ed25519_supported ()) {
		g_test_skip ("this libopendkim cannot sign with Ed25519");
		return;
	}
	output = sign_text (fixture, simple_message);
	expected_note = g_strdup_printf ("signed as d=%s s=%s (%s)", DOMAIN,
					 fixture->list.dkim_selector,
					 ed25519 ? "ed25519-sha256, 256-bit key"
						 : "rsa-sha256, 2048-bit key");
	g_assert_cmpstr (fixture->context.note, ==, expected_note);
	g_test_message ("%s", fixture->context.note);

	signature = signature_value (output);
	g_test_message ("DKIM-Signature: %s", signature);
	a = signature_tag (signature, "a");
	c = signature_tag (signature, "c");
	h = signature_tag (signature, "h");
	g_assert_cmpstr (a, ==, ed25519 ? "ed25519-sha256" : "rsa-sha256");
	g_assert_cmpstr (c, ==, "relaxed/relaxed");
	g_assert_nonnull (h);
	/* over-signed: present ones twice, absent ones once */
	g_assert_cmpuint (count_name (h, "From"), ==, 2);
	g_assert_cmpuint (count_name (h, "Subject"), ==, 2);
	g_assert_cmpuint (count_name (h, "List-Id"), ==, 2);
	g_assert_cmpuint (count_name (h, "List-Unsubscribe"), ==, 1);
	g_assert_cmpuint (count_name (h, "List-Unsubscribe-Post"), ==, 1);
	/* signed once, not over-signed; unsigned fields absent */
	g_assert_cmpuint (count_name (h, "To"), ==, 1);
	g_assert_cmpuint (count_name (h, "Date"), ==, 1);
	g_assert_cmpuint (count_name (h, "Message-ID"), ==, 1);
	g_assert_cmpuint (count_name (h, "Content-Type"), ==, 1);
	g_assert_cmpuint (count_name (h, "Received"), ==, 0);
	g_assert_cmpuint (count_name (h, "X-Mailer"), ==, 0);
	/* the message itself follows unchanged */
	g_assert_cmpuint (g_bytes_get_size (output), >, strlen (simple_message));
	g_assert_cmpmem ((const char *) g_bytes_get_data (output, NULL) +
			     g_bytes_get_size (output) - strlen (simple_message),
			 strlen (simple_message), simple_message, strlen (simple_message));

	if (!fixture_dns (fixture))
		return;
	g_ptr_array_add (paths, fixture_bytes_file (fixture, "signed", output));
	if (!verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	g_assert_true (verified (&verify, paths->pdata[0]));
	/* the verifier did ask our DNS server */
	{
		g_autofree char *name = sc_dkim_record_name (&fixture->list);
		g_assert_cmpuint (sc_test_dns_count_queries (fixture->dns, name), >=, 1);
	}
}

/* A copy of an over-signed field added after signing breaks the signature;
 * so does any change to the body.  Fields outside the set, or a signed but
 * not over-signed field (To) added above the original, do not: that is
 * exactly what over-signing is for. */
static void
test_oversign (Fixture *fixture, gconstpointer user_data)
{
	static const struct {
		const char *name;
		const char *field;
		gboolean verifies;
	} cases[] = {
	    {"control", NULL, TRUE},
	    {"x-added", "X-Added: harmless\r\n", TRUE},
	    {"to-above", "To: someone-else@example.net\r\n", TRUE},
	    {"subject", "Subject: Urgent: your password\r\n", FALSE},
	    {"from", "From: Bank <security@bank.example>\r\n", FALSE},
	    {"list-id", "List-Id: other <other.example.net>\r\n", FALSE},
	    {"list-unsubscribe", "List-Unsubscribe: <https://evil.example/u>\r\n", FALSE},
	    {"list-unsubscribe-post", "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", FALSE},
	};
	g_auto(ScVerify) verify = {0};
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	GBytes *output;

	if (g_strcmp0 (user_data, "ed25519") == 0 && !sc_dkim_ed25519_supported ()) {
		g_test_skip ("this libopendkim cannot sign with Ed25519");
		return;
	}
	output = sign_text (fixture, simple_message);
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(GBytes) changed = cases[i].field != NULL
						? insert_after_signature (output, cases[i].field)
						: g_bytes_ref (output);
		g_ptr_array_add (paths, fixture_bytes_file (fixture, cases[i].name, changed));
	}
	{
		/* one body byte */
		gsize length = 0;
		const char *data = g_bytes_get_data (output, &length);
		g_autofree char *copy = g_memdup2 (data, length);
		char *hello = g_strstr_len (copy, length, "Hello");
		g_assert_nonnull (hello);
		hello[0] = 'J';
		g_ptr_array_add (paths, fixture_file (fixture, "body", copy, length));
	}
	if (!fixture_dns (fixture) || !verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		if (verified (&verify, paths->pdata[i]) != cases[i].verifies)
			g_error ("%s: expected %s: %s", cases[i].name,
				 cases[i].verifies ? "a valid signature" : "a broken one",
				 (const char *) g_hash_table_lookup (verify.results, paths->pdata[i]));
	}
	g_assert_false (verified (&verify, paths->pdata[G_N_ELEMENTS (cases)]));
}

/* A list whose unsubscribe-url names $recipient: the stage leaves the
 * message unsigned (each copy gets its own List-Unsubscribe at delivery)
 * and says so; what deliver does per recipient — the fields on top, then
 * sc_dkim_sign() — verifies, each copy with its own List-Unsubscribe
 * covered (over-signed). */
static void
test_personal (Fixture *fixture, gconstpointer user_data)
{
	const char *recipients[] = {"alice@example.net", "bob+lists@example.com"};
	g_auto(ScVerify) verify = {0};
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	GBytes *output;

	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/leave?list=$list_id&who=$recipient";
	output = sign_text (fixture, simple_message);
	g_test_message ("%s", fixture->context.note);
	g_assert_true (g_str_has_prefix (fixture->context.note, "left for deliver to sign"));
	g_assert_false (g_str_has_prefix (g_bytes_get_data (output, NULL), "DKIM-Signature:"));
	for (guint i = 0; i < G_N_ELEMENTS (recipients); i++) {
		g_autoptr(GBytes) personal = sc_list_unsubscribe_add (output, &fixture->list, recipients[i], NULL);
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) copy = sc_dkim_sign (&fixture->list, personal, &error);
		g_autofree char *signature = NULL;
		g_autofree char *h = NULL;
		g_autofree char *escaped = g_uri_escape_string (recipients[i], NULL, FALSE);

		g_assert_no_error (error);
		g_assert_nonnull (g_strstr_len (g_bytes_get_data (copy, NULL), g_bytes_get_size (copy),
						escaped));
		signature = signature_value (copy);
		h = signature_tag (signature, "h");
		g_assert_cmpuint (count_name (h, "List-Unsubscribe"), ==, 2);
		g_assert_cmpuint (count_name (h, "List-Unsubscribe-Post"), ==, 2);
		g_ptr_array_add (paths, fixture_bytes_file (fixture, "personal", copy));
	}
	if (!fixture_dns (fixture) || !verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	for (guint i = 0; i < paths->len; i++)
		g_assert_true (verified (&verify, paths->pdata[i]));
}

/* Through the binary: a personal unsubscribe-url with sign in the
 * pipeline.  Each recipient's copy, as smtp-sink received it, carries its
 * own List-Unsubscribe and verifies (deliver signed it after adding them). */
static void
test_personal_delivered (Fixture *fixture, gconstpointer user_data)
{
	const char *const recipients[] = {"alice@example.net", "bob@example.net", "carol@example.com", NULL};
	g_autoptr(ScTestSink) sink = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	g_auto(ScVerify) verify = {0};
	g_autofree char *url = NULL;
	g_autofree char *text = NULL;
	g_autofree char *config_path = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GBytes) input = g_bytes_new_static (simple_message, strlen (simple_message));

	if (!fixture_dns (fixture))
		return;
	sink = sc_test_sink_start (NULL);
	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	text = g_strdup_printf ("[stagecoach]\nspool=spool\n[admin]\nlisten=\n"
				"[mailer:sink]\nurl=%s\nstarttls=off\n"
				"[list:" LIST_ID "]\npipeline=decorate;sign;deliver\nsubject-prefix=[dev]\n"
				"address=dev@" DOMAIN "\nfrom-rewrite=never\n"
				"unsubscribe-url=https://" DOMAIN "/leave?who=$recipient\n"
				"dkim-domain=%s\ndkim-selector=%s\ndkim-key-file=%s\n",
				url, fixture->list.dkim_domain, fixture->list.dkim_selector,
				fixture->list.dkim_key_file);
	config_path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	g_assert_cmpint (sc_test_run (config_path, input, NULL, NULL, "inject", "--list", LIST_ID,
				      recipients[0], recipients[1], recipients[2], NULL), ==, 0);
	g_assert_cmpint (sc_test_run (config_path, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	g_assert_cmpint (sc_test_count (config_path, "done"), ==, 1);
	g_assert_true (sc_test_sink_wait_messages (sink, 3, 5000));
	messages = sc_test_sink_get_messages (sink);
	g_assert_cmpuint (messages->len, ==, 3);
	for (guint i = 0; i < messages->len; i++) {
		ScTestSinkMessage *message = messages->pdata[i];
		g_autofree char *escaped = NULL;
		g_autofree char *expected = NULL;

		g_assert_cmpuint (message->recipients->len, ==, 1);
		escaped = g_uri_escape_string (message->recipients->pdata[0], NULL, FALSE);
		expected = g_strdup_printf ("List-Unsubscribe: <https://" DOMAIN "/leave?who=%s>\r\n",
					    escaped);
		g_assert_true (g_str_has_prefix (g_bytes_get_data (message->data, NULL), "DKIM-Signature:"));
		g_assert_nonnull (g_strstr_len (g_bytes_get_data (message->data, NULL),
						g_bytes_get_size (message->data), expected));
		g_ptr_array_add (paths, fixture_bytes_file (fixture, "delivered", message->data));
	}
	if (!verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	for (guint i = 0; i < paths->len; i++)
		g_assert_true (verified (&verify, paths->pdata[i]));
}

/* Not CRLF, a bare CR, an mbox "From " line, no final newline: the stage
 * signs the CRLF form, which is also what it outputs (what deliver will
 * send). */
static void
test_normalize (Fixture *fixture, gconstpointer user_data)
{
	static const char *input = "From alice@example.org Tue Dec  1 10:00:00 2026\n"
				   "From: Alice <alice@example.org>\n"
				   "Subject: lf only\n"
				   "\n"
				   "line one\n"
				   "line two with a bare CR\r here\n"
				   "no final newline";
	static const char *expected = "From: Alice <alice@example.org>\r\n"
				      "Subject: lf only\r\n"
				      "\r\n"
				      "line one\r\n"
				      "line two with a bare CR\r\n here\r\n"
				      "no final newline\r\n";
	g_auto(ScVerify) verify = {0};
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GBytes) crlf = g_bytes_new_static (expected, strlen (expected));
	g_autoptr(GBytes) same = NULL;
	GBytes *output = sign_text (fixture, input);
	gsize length = 0;
	const char *data = g_bytes_get_data (output, &length);
	const char *end_of_signature;

	/* the normal form of a normal form is itself, not a copy */
	same = sc_dkim_normalize (crlf);
	g_assert_true (same == crlf);

	end_of_signature = strstr (data, "\r\nFrom: Alice");
	g_assert_nonnull (end_of_signature);
	g_assert_cmpmem (end_of_signature + 2, length - (end_of_signature + 2 - data), expected,
			 strlen (expected));
	for (gsize i = 0; i < length; i++) {
		if (data[i] == '\n')
			g_assert_cmpint (data[i - 1], ==, '\r');
		if (data[i] == '\r')
			g_assert_cmpint (data[i + 1], ==, '\n');
	}
	if (!fixture_dns (fixture))
		return;
	g_ptr_array_add (paths, fixture_bytes_file (fixture, "normalized", output));
	if (!verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	g_assert_true (verified (&verify, paths->pdata[0]));
}

/* Messages with a header block sign, even odd ones (no body, no From: it
 * is over-signed as absent; a header block that runs into the body without
 * the empty line gets it); messages without one fail permanently, saying
 * why. */
static void
test_shapes (Fixture *fixture, gconstpointer user_data)
{
	static const char *good[] = {
	    "From: a@example.org\r\nSubject: headers only\r\n",
	    "Subject: no From at all\r\nContent-Type: text/plain\r\n\r\nbody\r\n",
	    "From: a@example.org\r\nSubject: folded\r\n and continued\r\n\tagain\r\n\r\nbody\r\n",
	    "From: a@example.org\r\nDKIM-Signature: garbage;;; not=a=signature\r\n\r\nbody\r\n",
	    "From: a@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?= \xc3\xa9t\xc3\xa9\r\n\r\n"
	    "8-bit \xff\xfe body\r\n",
	};
	static const struct {
		const char *text;
		const char *reason;
	} bad[] = {
	    {"", "empty message"},
	    {"\r\nbody only\r\n", "starts with a blank line"},
	    {"<html><body>hello</body></html>\r\n", "the first line is not a header field"},
	    {"  From: indented\r\n\r\nbody\r\n", "the first line is not a header field"},
	};
	g_auto(ScVerify) verify = {0};
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);

	for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
		g_autoptr(GBytes) message = g_bytes_new (bad[i].text, strlen (bad[i].text));
		g_autoptr(GError) error = NULL;

		sc_stage_context_clear_outputs (&fixture->context);
		fixture->context.current = message;
		g_assert_false (sc_handler_sign.run (&fixture->context, &error));
		g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
		g_test_message ("refused: %s", error->message);
		g_assert_nonnull (strstr (error->message, "cannot be DKIM-signed"));
		g_assert_nonnull (strstr (error->message, bad[i].reason));
		g_assert_null (fixture->context.output);
	}
	for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
		g_autofree char *name = g_strdup_printf ("good%u", i);
		GBytes *output = sign_text (fixture, good[i]);
		g_autofree char *signature = signature_value (output);
		g_autofree char *h = signature_tag (signature, "h");
		/* From is in h= whether or not the message has one (RFC 6376 §5.4) */
		g_assert_cmpuint (count_name (h, "From"), >=, 1);
		g_assert_null (strstr (fixture->context.note, "empty line"));
		g_ptr_array_add (paths, fixture_bytes_file (fixture, name, output));
	}
	{
		/* a header block that runs into a body line without the empty
		 * line: signed with the empty line put in, and the note says so */
		static const char *stray = "From: a@example.org\r\nTo: b@example.org\r\n"
					   "this is the body already\r\nmore body\r\n";
		GBytes *output = sign_text (fixture, stray);
		const char *data = g_bytes_get_data (output, NULL);
		g_test_message ("%s", fixture->context.note);
		g_assert_nonnull (strstr (fixture->context.note,
					  "an empty line put before header line 3"));
		g_assert_nonnull (g_strstr_len (data, g_bytes_get_size (output),
						"To: b@example.org\r\n\r\nthis is the body already\r\n"));
		g_ptr_array_add (paths, fixture_bytes_file (fixture, "stray-line", output));
	}
	if (!fixture_dns (fixture) || !verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	for (guint i = 0; i < paths->len; i++)
		g_assert_true (verified (&verify, paths->pdata[i]));
}

typedef struct {
	Fixture *fixture;
	GBytes *message;
	GPtrArray *outputs; /* (element-type GBytes) */
	GMutex *lock;
} ThreadData;

static gpointer
sign_thread (gpointer user_data)
{
	ThreadData *data = user_data;

	for (guint i = 0; i < 25; i++) {
		g_autoptr(GError) error = NULL;
		GBytes *output = sc_dkim_sign (&data->fixture->list, data->message, &error);
		g_assert_no_error (error);
		g_mutex_lock (data->lock);
		g_ptr_array_add (data->outputs, output);
		g_mutex_unlock (data->lock);
	}
	return NULL;
}

/* Four workers sign at once with the one library handle; every result is
 * the same but for t= (and b=, which covers t=): retries are repeatable. */
static void
test_threads (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GBytes) message = g_bytes_new_static (simple_message, strlen (simple_message));
	g_autoptr(GPtrArray) outputs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	GMutex lock;
	ThreadData data = {fixture, message, outputs, &lock};
	GThread *threads[4];
	g_autofree char *first = NULL;
	g_autofree char *first_bh = NULL;
	g_autofree char *first_h = NULL;

	g_mutex_init (&lock);
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		threads[i] = g_thread_new ("sign", sign_thread, &data);
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
		g_thread_join (threads[i]);
	g_mutex_clear (&lock);
	g_assert_cmpuint (outputs->len, ==, 100);
	first = signature_value (outputs->pdata[0]);
	first_bh = signature_tag (first, "bh");
	first_h = signature_tag (first, "h");
	for (guint i = 0; i < outputs->len; i++) {
		g_autofree char *signature = signature_value (outputs->pdata[i]);
		g_autofree char *bh = signature_tag (signature, "bh");
		g_autofree char *h = signature_tag (signature, "h");
		g_autofree char *t = signature_tag (signature, "t");
		g_autofree char *t0 = signature_tag (first, "t");
		g_assert_cmpstr (bh, ==, first_bh);
		g_assert_cmpstr (h, ==, first_h);
		/* RSA PKCS#1 v1.5 and Ed25519 are deterministic */
		if (g_strcmp0 (t, t0) == 0)
			g_assert_true (g_bytes_equal (outputs->pdata[i], outputs->pdata[0]));
	}
}

/* Signing leaves nothing behind: libopendkim's dkim_free() keeps what it
 * made for an Ed25519 signature (~470 bytes a message, a copy of the key
 * among them) unless sc-dkim.c's arena frees it.  Heap in use before and
 * after 1,000 signatures, once warm (OpenSSL's caches grow for the first
 * ~3,000 by some 25 KB, then stay). */
static void
test_memory (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GBytes) message = g_bytes_new_static (simple_message, strlen (simple_message));
	size_t before;
	size_t after;

	if (g_getenv ("SC_SANITIZED") != NULL) {
		g_test_skip ("the sanitizer's allocator: its leak check covers this instead");
		return;
	}
	if (g_strcmp0 (user_data, "ed25519") == 0 && !sc_dkim_ed25519_supported ()) {
		g_test_skip ("this libopendkim cannot sign with Ed25519");
		return;
	}
	for (guint i = 0; i < 1500; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) output = sc_dkim_sign (&fixture->list, message, &error);
		g_assert_no_error (error);
	}
	before = mallinfo2 ().uordblks;
	for (guint i = 0; i < 1000; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) output = sc_dkim_sign (&fixture->list, message, &error);
		g_assert_no_error (error);
	}
	after = mallinfo2 ().uordblks;
	g_test_message ("heap in use: %zu bytes before, %zu after 1,000 signatures (%s)", before, after,
			(const char *) user_data);
	/* unfixed, Ed25519 grows by ~470,000 bytes here */
	g_assert_cmpuint (after, <, before + 100000);
}

/* ---- keys ----------------------------------------------------------------------- */

/* A config with one list; @list_extra goes into its section, @sections after it. */
static char *
write_config (const char *dir, const char *pipeline, const char *key_file, const char *list_extra,
	      const char *sections)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "[mailer:m]\n"
						 "url=smtp://127.0.0.1:9\n"
						 "[list:" LIST_ID "]\n"
						 "pipeline=%s\n"
						 "address=dev@" DOMAIN "\n"
						 "from-rewrite=never\n"
						 "dkim-key-file=%s\n"
						 "%s"
						 "%s",
						 pipeline, key_file,
						 list_extra != NULL ? list_extra : "dkim-selector=s1\n",
						 sections != NULL ? sections : "");
	return sc_test_write_file (dir, "stagecoach.conf", text);
}

/* A bad key file: the configuration loads with a warning naming the key and
 * the file (list software's inject must go on working), check-config exits
 * 78 saying so, the stage fails transiently naming the file; no line of the
 * key is ever shown. */
static void
test_bad_keys (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *missing = g_build_filename (fixture->dir, "missing.pem", NULL);
	g_autofree char *garbage = sc_test_write_file (fixture->dir, "garbage.pem",
						       "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
						       "-----END PRIVATE KEY-----\n");
	g_autofree char *empty = sc_test_write_file (fixture->dir, "empty.pem", "");
	g_autofree char *folder = g_build_filename (fixture->dir, "folder.pem", NULL);
	g_autofree char *unreadable = g_build_filename (fixture->dir, "unreadable.pem", NULL);
	const struct {
		const char *path;
		const char *reason;
	} cases[] = {
	    {missing, "No such file or directory"},
	    {garbage, "not a private key in PEM form"},
	    {empty, "empty"},
	    {folder, "not a regular file"},
	    {truncated_key, "not a private key in PEM form"},
	    {rsa1024_key, "an RSA key of 1024 bits"},
	    {ec_key, "a key of type EC; DKIM signs with RSA or Ed25519 keys"},
	    {encrypted_key, "encrypted with a passphrase"},
	    {unreadable, getuid () == 0 ? NULL : "Permission denied"},
	};

	g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
	g_free (sc_test_write_file (fixture->dir, "unreadable.pem", "x"));
	g_assert_cmpint (g_chmod (unreadable, 0), ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *config_path = NULL;
		g_autoptr(ScConfig) config = NULL;
		g_autoptr(GError) error = NULL;
		g_autofree char *out = NULL;
		g_autofree char *err = NULL;
		g_autofree char *key_message = NULL;

		if (cases[i].reason == NULL) {
			g_test_message ("%s: root reads any file; not checked", cases[i].path);
			continue;
		}
		config_path = write_config (fixture->dir, "decorate;sign;deliver", cases[i].path, NULL, NULL);
		/* loads (inject must still work), with the problem as a warning */
		config = sc_config_load (config_path, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (config->warnings->len, ==, 1);
		g_test_message ("load: %s", (const char *) config->warnings->pdata[0]);
		key_message = g_strdup_printf ("[list:" LIST_ID "] dkim-key-file %s: %s", cases[i].path,
					       cases[i].reason);
		g_assert_nonnull (strstr (config->warnings->pdata[0], key_message));
		assert_no_key_material (config->warnings->pdata[0], rsa_key);

		g_assert_cmpint (sc_test_run (config_path, NULL, &out, &err, "check-config", NULL), ==, 78);
		g_assert_nonnull (strstr (err, key_message));
		assert_no_key_material (err, rsa_key);
		assert_no_key_material (out, rsa_key);
		g_clear_pointer (&key_message, g_free);
		key_message = g_strdup_printf ("dkim-key-file %s: %s", cases[i].path, cases[i].reason);

		/* at run time (the file changed after the load): transient */
		fixture->list.dkim_key_file = (char *) cases[i].path;
		sc_stage_context_clear_outputs (&fixture->context);
		{
			g_autoptr(GBytes) message = g_bytes_new_static (simple_message, strlen (simple_message));
			fixture->context.current = message;
			g_assert_false (sc_handler_sign.run (&fixture->context, &error));
		}
		g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
		g_test_message ("run: %s", error->message);
		g_assert_nonnull (strstr (error->message, key_message));
		assert_no_key_material (error->message, rsa_key);
	}
	g_assert_cmpint (g_chmod (unreadable, 0600), ==, 0);
}

/* Through the binary: with the key file missing, inject still accepts (list
 * software is not stopped), the message waits at sign with the file named,
 * and goes on once the key is in place. */
static void
test_key_wait (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *key = g_build_filename (fixture->dir, "later.pem", NULL);
	g_autofree char *config_path = write_config (fixture->dir, "decorate;sign", key, NULL, NULL);
	g_autofree char *queue_id = NULL;
	g_autofree char *err = NULL;
	g_autofree char *contents = NULL;
	g_autoptr(JsonObject) shown = NULL;
	const char *last_error;
	gsize length = 0;

	queue_id = sc_test_inject (config_path, LIST_ID, simple_message);
	g_assert_cmpint (sc_test_run (config_path, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	shown = sc_test_show (config_path, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "state"), ==, "deferred");
	last_error = json_object_get_string_member (shown, "last_error");
	g_test_message ("waiting: %s", last_error);
	g_assert_nonnull (strstr (last_error, key));
	g_assert_nonnull (strstr (last_error, "No such file or directory"));
	g_clear_pointer (&shown, json_object_unref);

	g_assert_true (g_file_get_contents (rsa_key, &contents, &length, NULL));
	g_assert_true (g_file_set_contents (key, contents, length, NULL));
	g_assert_cmpint (sc_test_run (config_path, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	g_assert_cmpint (sc_test_run (config_path, NULL, NULL, NULL, "run", "--once", NULL), ==, 0);
	shown = sc_test_show (config_path, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "state"), ==, "done");
}

/* The key file is read at every use: a new key in its place signs the next
 * message without a reload, and a removed one fails it at once. */
static void
test_key_rotation (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = g_build_filename (fixture->dir, "current.pem", NULL);
	g_autofree char *rsa = NULL;
	g_autofree char *ed = NULL;
	g_autoptr(GBytes) message = g_bytes_new_static (simple_message, strlen (simple_message));
	g_autoptr(GError) error = NULL;
	gsize rsa_length = 0;
	gsize ed_length = 0;

	g_assert_true (g_file_get_contents (rsa_key, &rsa, &rsa_length, NULL));
	g_assert_true (g_file_get_contents (ed25519_key, &ed, &ed_length, NULL));
	fixture->list.dkim_key_file = path;
	for (guint round = 0; round < 2; round++) {
		g_autofree char *signature = NULL;
		g_autofree char *a = NULL;

		g_assert_true (g_file_set_contents (path, round == 0 ? rsa : ed,
						    round == 0 ? rsa_length : ed_length, NULL));
		signature = signature_value (sign_bytes (fixture, message));
		a = signature_tag (signature, "a");
		g_assert_cmpstr (a, ==, round == 0 ? "rsa-sha256" : "ed25519-sha256");
		g_test_message ("%s", fixture->context.note);
	}
	g_assert_cmpint (g_unlink (path), ==, 0);
	sc_stage_context_clear_outputs (&fixture->context);
	g_assert_false (sc_handler_sign.run (&fixture->context, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_assert_nonnull (strstr (error->message, path));
}

/* The list's dkim-* settings are checked only where sign is in the
 * pipeline, and sign must follow every stage that may change the message. */
static void
test_check (Fixture *fixture, gconstpointer user_data)
{
	static const char *replacing = "[handler:tag]\ncommand=/bin/cat\nreplace=true\n";
	static const char *logging = "[handler:log]\ncommand=/bin/true\n";
	const struct {
		const char *pipeline;
		const char *list_extra; /* NULL: dkim-selector=s1 */
		const char *sections;
		const char *problem;    /* NULL: loads */
	} cases[] = {
	    {"decorate;sign;deliver", NULL, NULL, NULL},
	    {"decorate;exec:tag;sign;archive;deliver", NULL, replacing, NULL},
	    {"decorate;sign;exec:log;deliver", NULL, logging, NULL},
	    {"sign;decorate;deliver", NULL, NULL, "pipeline: “decorate” comes after sign"},
	    {"decorate;sign;exec:tag;deliver", NULL, replacing, "pipeline: “exec:tag” comes after sign"},
	    {"decorate;deliver;sign", NULL, NULL, "pipeline: deliver comes before sign"},
	    {"decorate;sign;deliver", "", NULL, "dkim-selector: missing"},
	    {"decorate;sign;deliver", "dkim-selector=bad selector\n", NULL, "is not a selector"},
	    {"decorate;sign;deliver", "dkim-selector=s1\ndkim-domain=exa mple.org\n", NULL,
	     "dkim-domain: “exa mple.org” is not a domain name"},
	    /* without sign, nothing of it is checked */
	    {"decorate;deliver", "", NULL, NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *config_path =
		    write_config (fixture->dir, cases[i].pipeline, rsa_key, cases[i].list_extra,
				  cases[i].sections);
		g_autoptr(ScConfig) config = NULL;
		g_autoptr(GError) error = NULL;

		config = sc_config_load (config_path, &error);
		if (cases[i].problem == NULL) {
			g_assert_no_error (error);
			g_assert_nonnull (config);
		} else {
			g_assert_null (config);
			g_test_message ("%s: %s", cases[i].pipeline, error->message);
			g_assert_nonnull (strstr (error->message, cases[i].problem));
		}
	}
}

/* ---- dkim-record ------------------------------------------------------------------- */

/* Parses `NAME. IN TXT ( "…" "…" )`: the name without its dot, and the
 * strings joined; each string at most 255 bytes. */
static void
parse_record (const char *line, char **out_name, char **out_text)
{
	const char *space = strchr (line, ' ');
	const char *p;
	GString *text = g_string_new (NULL);

	g_assert_nonnull (space);
	g_assert_cmpint (space[-1], ==, '.');
	*out_name = g_strndup (line, space - 1 - line);
	g_assert_true (g_str_has_prefix (space, " IN TXT ( \""));
	g_assert_true (g_str_has_suffix (line, "\" )\n"));
	g_assert_true (strchr (line, '\n') == line + strlen (line) - 1);
	p = strchr (line, '"');
	while (p != NULL) {
		const char *close = strchr (p + 1, '"');
		g_assert_nonnull (close);
		g_assert_cmpint (close - p - 1, <=, 255);
		g_assert_cmpint (close - p - 1, >, 0);
		g_string_append_len (text, p + 1, close - p - 1);
		p = strchr (close + 1, '"');
	}
	*out_text = g_string_free (text, FALSE);
}

/* `stagecoach dkim-record` for an RSA and an Ed25519 list: the records it
 * prints, served by dnsmasq, verify what the lists sign.  It works before
 * sign is in the pipeline; an unknown list exits 64 (as inject), a list
 * without its settings 78. */
static void
test_dkim_record (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "[list:rsa.example.org]\n"
						 "pipeline=decorate;archive\n"
						 "address=rsa@" DOMAIN "\n"
						 "from-rewrite=never\n"
						 "dkim-selector=2026a\n"
						 "dkim-key-file=%s\n"
						 "[list:ed.example.org]\n"
						 "pipeline=decorate;sign;archive\n"
						 "address=ed@" DOMAIN "\n"
						 "from-rewrite=never\n"
						 "dkim-selector=2026e\n"
						 "dkim-key-file=%s\n"
						 "[list:none.example.org]\n"
						 "pipeline=decorate;archive\n"
						 "address=none@" DOMAIN "\n",
						 rsa_key, ed25519_key);
	g_autofree char *config_path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	const char *lists[] = {"rsa.example.org", "ed.example.org"};
	g_autoptr(GPtrArray) records = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(ScConfig) config = NULL;
	g_autoptr(GError) error = NULL;
	g_auto(ScVerify) verify = {0};
	g_autoptr(GBytes) message = g_bytes_new_static (simple_message, strlen (simple_message));
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;

	if (!sc_dkim_ed25519_supported ()) {
		g_test_skip ("this libopendkim cannot sign with Ed25519");
		return;
	}
	config = sc_config_load (config_path, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < G_N_ELEMENTS (lists); i++) {
		g_autofree char *line = NULL;
		g_autofree char *line_err = NULL;
		char *name = NULL;
		char *record = NULL;
		const ScListConfig *list = sc_config_get_list (config, lists[i]);
		g_autoptr(GBytes) output = NULL;

		g_assert_cmpint (sc_test_run (config_path, NULL, &line, &line_err, "dkim-record", lists[i], NULL),
				 ==, 0);
		g_test_message ("%s", line);
		g_assert_cmpstr (line_err, ==, "");
		parse_record (line, &name, &record);
		g_assert_cmpstr (name, ==, i == 0 ? "2026a._domainkey." DOMAIN : "2026e._domainkey." DOMAIN);
		g_assert_true (g_str_has_prefix (record, i == 0 ? "v=DKIM1; k=rsa; p=MII" : "v=DKIM1; k=ed25519; p="));
		if (i == 0)
			g_assert_cmpuint (strlen (record), >, 255); /* RSA-2048 needs two strings */
		else
			g_assert_cmpuint (strlen (record), ==, strlen ("v=DKIM1; k=ed25519; p=") + 44);
		g_ptr_array_add (records, name);
		g_ptr_array_add (records, record);
		output = sc_dkim_sign (list, message, &error);
		g_assert_no_error (error);
		g_ptr_array_add (paths, fixture_bytes_file (fixture, lists[i], output));
	}
	g_ptr_array_add (records, NULL);

	g_assert_cmpint (sc_test_run (config_path, NULL, &out, &err, "dkim-record", "nope.example.org", NULL), ==, 64);
	g_assert_nonnull (strstr (err, "unknown list “nope.example.org”"));
	g_clear_pointer (&err, g_free);
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (config_path, NULL, &out, &err, "dkim-record", "none.example.org", NULL), ==, 78);
	g_test_message ("%s", err);
	g_assert_nonnull (strstr (err, "dkim-selector: missing"));
	g_assert_cmpstr (out, ==, "");
	g_clear_pointer (&err, g_free);
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (config_path, NULL, &out, &err, "dkim-record", NULL), ==, 64);

	fixture->dns = sc_test_dns_start ((const char *const *) records->pdata, 60);
	if (fixture->dns == NULL || !verify_files (fixture->dns, paths, &verify))
		return;
	g_test_message ("%s", verify.output);
	for (guint i = 0; i < paths->len; i++)
		g_assert_true (verified (&verify, paths->pdata[i]));
}

/* ---- the corpus, end to end ------------------------------------------------------------ */

/* Runs the binary with @config; stdout as bytes. */
static GBytes *
run_bytes (const char *config, int *out_status, const char *first_arg, ...)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GError) error = NULL;
	GBytes *out = NULL;
	va_list args;

	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", config, TRUE);
	g_ptr_array_add (argv, (gpointer) sc_test_binary ());
	va_start (args, first_arg);
	for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
		g_ptr_array_add (argv, (gpointer) arg);
	va_end (args);
	g_ptr_array_add (argv, NULL);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	g_subprocess_communicate (process, NULL, NULL, &out, NULL, &error);
	g_assert_no_error (error);
	*out_status = g_subprocess_get_exit_status (process);
	return out;
}

static const char *
member (JsonObject *object, const char *name)
{
	JsonNode *node = json_object_get_member (object, name);
	return node != NULL && !json_node_is_null (node) ? json_node_get_string (node) : NULL;
}

/* The note @stage recorded, or NULL. */
static const char *
stage_note (JsonObject *shown, const char *stage)
{
	JsonArray *stages = json_object_get_array_member (shown, "stages");

	for (guint i = 0; i < json_array_get_length (stages); i++) {
		JsonObject *item = json_array_get_object_element (stages, i);
		if (g_strcmp0 (member (item, "stage"), stage) == 0)
			return member (item, "note");
	}
	return NULL;
}

static gboolean
stage_done (JsonObject *shown, const char *stage)
{
	JsonArray *stages = json_object_get_array_member (shown, "stages");

	for (guint i = 0; i < json_array_get_length (stages); i++) {
		if (g_strcmp0 (member (json_array_get_object_element (stages, i), "stage"), stage) == 0)
			return TRUE;
	}
	return FALSE;
}

static void
test_corpus (Fixture *fixture, gconstpointer user_data)
{
	const char *kind = user_data;
	gboolean ed25519 = g_strcmp0 (kind, "ed25519") == 0;
	g_autoptr(GPtrArray) corpus = sc_test_corpus_files ();
	g_autoptr(ScTestSink) sink = NULL;
	g_autoptr(GSubprocess) daemon = NULL;
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) names = g_ptr_array_new ();
	g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) delivered = g_ptr_array_new (); /* corpus names, as paths */
	g_autoptr(GPtrArray) messages = NULL;
	g_autoptr(GHashTable) by_recipient = g_hash_table_new (g_str_hash, g_str_equal);
	g_auto(ScVerify) verify = {0};
	g_autofree char *config_path = NULL;
	g_autofree char *log_path = g_build_filename (fixture->dir, "daemon.log", NULL);
	g_autofree char *received_dir = g_build_filename (fixture->dir, "received", NULL);
	g_autofree char *url = NULL;
	g_autofree char *text = NULL;
	g_autofree char *log = NULL;
	guint refused_at_inject = 0;
	guint decorated = 0;
	guint passed_through = 0;
	guint passed_signed = 0;
	guint with_list_id = 0;
	guint dead = 0;
	guint ok = 0;
	gint64 deadline;

	if (sc_test_corpus_dir () == NULL) {
		g_test_skip ("corpus not found (SC_CORPUS, default ../shared/corpus)");
		return;
	}
	if (ed25519 && !sc_dkim_ed25519_supported ()) {
		g_test_skip ("this libopendkim cannot sign with Ed25519");
		return;
	}
	if (!fixture_dns (fixture))
		return;
	sink = sc_test_sink_start (NULL);
	if (sink == NULL)
		return;
	url = sc_test_sink_get_url (sink);
	text = g_strdup_printf ("[stagecoach]\n"
				"spool=spool\n"
				"workers=2\n"
				"lease=1m\n"
				/* nothing may ask a real resolver */
				"dns-server=%s\n"
				"[retry]\n"
				"initial=1s\n"
				"max-delay=2s\n"
				"[mailer:sink]\n"
				"url=%s\n"
				"starttls=off\n"
				"timeout=30s\n"
				"[list:" LIST_ID "]\n"
				"pipeline=decorate;sign;deliver\n"
				"subject-prefix=[dev]\n"
				"footer=footer.txt\n"
				"address=dev@" DOMAIN "\n"
				"help=https://" DOMAIN "/help\n"
				"unsubscribe=https://" DOMAIN "/unsubscribe;mailto:dev-leave@" DOMAIN "\n"
				"unsubscribe-one-click=true\n"
				"from-rewrite=never\n"
				"dkim-domain=%s\n"
				"dkim-selector=%s\n"
				"dkim-key-file=%s\n",
				sc_test_dns_get_server (fixture->dns), url, fixture->list.dkim_domain,
				fixture->list.dkim_selector, fixture->list.dkim_key_file);
	g_free (sc_test_write_file (fixture->dir, "footer.txt", "-- \nfooter of $list_name\n"));
	config_path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	g_assert_cmpint (g_mkdir (received_dir, 0700), ==, 0);

	/* as sc_test_spawn(), with debug logging on: the key must not show even there */
	{
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
		g_autoptr(GError) error = NULL;

		g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", config_path, TRUE);
		g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
		g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
		g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
		g_subprocess_launcher_set_child_setup (launcher, sc_test_die_with_parent,
						       GINT_TO_POINTER (getpid ()), NULL);
		daemon = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "run", NULL);
		g_assert_no_error (error);
	}

	for (guint i = 0; i < corpus->len; i++) {
		const char *corpus_name = corpus->pdata[i];
		g_autofree char *path = g_build_filename (sc_test_corpus_dir (), corpus_name, NULL);
		g_autofree char *contents = NULL;
		g_autofree char *out = NULL;
		g_autofree char *err = NULL;
		g_autofree char *recipient = g_strdup_printf ("c%03u@example.net", i);
		g_autoptr(GBytes) input = NULL;
		gsize length = 0;
		int status;

		g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
		input = g_bytes_new_take (g_steal_pointer (&contents), length);
		status = sc_test_run (config_path, input, &out, &err, "inject", "--list", LIST_ID,
				      recipient, NULL);
		if (status != 0) {
			g_test_message ("%s: refused by inject (%d): %s", corpus_name, status, g_strstrip (err));
			refused_at_inject++;
			continue;
		}
		g_ptr_array_add (queue_ids, g_strdup (g_strstrip (out)));
		g_ptr_array_add (names, (gpointer) corpus_name);
	}

	/* wait until every message is done or dead */
	deadline = g_get_monotonic_time () + 240 * G_USEC_PER_SEC;
	for (;;) {
		gint64 finished = sc_test_count (config_path, "done") + sc_test_count (config_path, "dead");
		if (finished == (gint64) queue_ids->len)
			break;
		if (g_get_monotonic_time () > deadline) {
			g_autofree char *daemon_log = NULL;
			g_file_get_contents (log_path, &daemon_log, NULL, NULL);
			g_error ("only %" G_GINT64_FORMAT " of %u finished; deferred %" G_GINT64_FORMAT
				 "; log:\n%s",
				 finished, queue_ids->len, sc_test_count (config_path, "deferred"), daemon_log);
		}
		g_usleep (200 * 1000);
	}
	g_subprocess_send_signal (daemon, SIGTERM);
	g_assert_true (g_subprocess_wait (daemon, NULL, NULL));

	/* what each message went through */
	for (guint i = 0; i < queue_ids->len; i++) {
		g_autoptr(JsonObject) shown = sc_test_show (config_path, queue_ids->pdata[i]);
		const char *note = stage_note (shown, "decorate");
		gboolean through = note != NULL && g_str_has_prefix (note, "passed through");
		const char *state = member (shown, "state");

		g_assert_true (stage_done (shown, "decorate"));
		if (through)
			passed_through++;
		else
			decorated++;
		if (g_strcmp0 (state, "dead") == 0) {
			const char *reason = member (shown, "last_error");
			dead++;
			g_test_message ("%s: not signed: %s (decorate: %s)", (const char *) names->pdata[i],
					reason, note);
			/* only what decorate could not read either, and for that reason */
			g_assert_true (through);
			g_assert_nonnull (strstr (reason, "cannot be DKIM-signed"));
			g_assert_nonnull (strstr (reason, "not a message"));
			continue;
		}
		g_assert_cmpstr (state, ==, "done");
		g_assert_true (stage_done (shown, "sign"));
		if (through)
			passed_signed++;
		g_ptr_array_add (delivered, GUINT_TO_POINTER (i + 1));
	}

	/* the bytes the sink received are the sign stage's output, and verify */
	g_assert_true (sc_test_sink_wait_messages (sink, delivered->len, 30000));
	messages = sc_test_sink_get_messages (sink);
	g_assert_cmpuint (messages->len, ==, delivered->len);
	for (guint i = 0; i < messages->len; i++) {
		ScTestSinkMessage *message = messages->pdata[i];
		g_assert_cmpuint (message->recipients->len, ==, 1);
		g_hash_table_insert (by_recipient, message->recipients->pdata[0], message);
	}
	for (guint d = 0; d < delivered->len; d++) {
		guint i = GPOINTER_TO_UINT (delivered->pdata[d]) - 1;
		g_autofree char *recipient = NULL;
		g_autofree char *file = NULL;
		g_autoptr(GBytes) exported = NULL;
		ScTestSinkMessage *message;
		int status = 0;
		guint corpus_index;

		/* the recipient names the corpus file */
		for (corpus_index = 0; corpus_index < corpus->len; corpus_index++) {
			if (corpus->pdata[corpus_index] == names->pdata[i])
				break;
		}
		recipient = g_strdup_printf ("c%03u@example.net", corpus_index);
		message = g_hash_table_lookup (by_recipient, recipient);
		g_assert_nonnull (message);
		exported = run_bytes (config_path, &status, "export", "--stage", "sign",
				      (const char *) queue_ids->pdata[i], NULL);
		g_assert_cmpint (status, ==, 0);
		if (!g_bytes_equal (exported, message->data))
			g_error ("%s: the sink received %" G_GSIZE_FORMAT " bytes, sign recorded %" G_GSIZE_FORMAT,
				 (const char *) names->pdata[i], g_bytes_get_size (message->data),
				 g_bytes_get_size (exported));
		/* every message, those decorate could not follow included, carries the
		 * list's List-Id in its header block (issue 11, item 4) */
		{
			const char *data = g_bytes_get_data (message->data, NULL);
			gsize size = g_bytes_get_size (message->data);
			const char *blank = g_strstr_len (data, size, "\r\n\r\n");
			const char *list_id = g_strstr_len (data, size, "\r\nList-Id: dev <" LIST_ID ">\r\n");

			if (list_id == NULL || (blank != NULL && list_id > blank))
				g_error ("%s: no List-Id in the header block as delivered",
					 (const char *) names->pdata[i]);
			with_list_id++;
		}
		file = g_build_filename (received_dir, names->pdata[i], NULL);
		g_assert_true (g_file_set_contents (file, g_bytes_get_data (message->data, NULL),
						    g_bytes_get_size (message->data), NULL));
		g_ptr_array_add (paths, g_steal_pointer (&file));
	}
	if (!verify_files (fixture->dns, paths, &verify))
		return;
	for (guint i = 0; i < paths->len; i++) {
		if (verified (&verify, paths->pdata[i]))
			ok++;
		else
			g_test_message ("%s", (const char *) g_hash_table_lookup (verify.results, paths->pdata[i]));
	}

	/* no key material in the daemon's log, debug lines included */
	g_assert_true (g_file_get_contents (log_path, &log, NULL, NULL));
	assert_no_key_material (log, fixture->list.dkim_key_file);

	g_test_message ("%u of %u verified (%s); corpus %u: %u refused by inject, %u decorated "
			"(all must verify), %u passed through by decorate (%u signed, %u refused by sign)",
			ok, paths->len, kind, corpus->len, refused_at_inject, decorated, passed_through,
			passed_signed, dead);
	g_print ("# %u of %u verified (%s); %u of %u delivered carry List-Id\n", ok, paths->len, kind,
		 with_list_id, paths->len);
	g_assert_cmpuint (ok, ==, paths->len);
	g_assert_cmpuint (paths->len, ==, decorated + passed_signed);
	g_assert_cmpuint (decorated, >, 0);
}

int
main (int argc, char **argv)
{
	int result;

	g_test_init (&argc, &argv, NULL);
	make_keys ();

#define ADD(path, data, function) \
	g_test_add (path, Fixture, data, fixture_setup, function, fixture_teardown)
	ADD ("/sign/verifies/rsa", "rsa", test_verifies);
	ADD ("/sign/verifies/ed25519", "ed25519", test_verifies);
	ADD ("/sign/oversign/rsa", "rsa", test_oversign);
	ADD ("/sign/oversign/ed25519", "ed25519", test_oversign);
	ADD ("/sign/normalize", "rsa", test_normalize);
	ADD ("/sign/personal", "ed25519", test_personal);
	ADD ("/sign/personal-delivered/rsa", "rsa", test_personal_delivered);
	ADD ("/sign/shapes", "ed25519", test_shapes);
	ADD ("/sign/threads", "rsa", test_threads);
	ADD ("/sign/memory/rsa", "rsa", test_memory);
	ADD ("/sign/memory/ed25519", "ed25519", test_memory);
	ADD ("/sign/keys/bad", "rsa", test_bad_keys);
	ADD ("/sign/keys/rotation", "rsa", test_key_rotation);
	ADD ("/sign/keys/wait", "rsa", test_key_wait);
	ADD ("/sign/check", "rsa", test_check);
	ADD ("/sign/dkim-record", "rsa", test_dkim_record);
	ADD ("/sign/corpus/rsa", "rsa", test_corpus);
	ADD ("/sign/corpus/ed25519", "ed25519", test_corpus);
#undef ADD

	result = g_test_run ();
	sc_test_remove_tree (keys_dir);
	return result;
}
