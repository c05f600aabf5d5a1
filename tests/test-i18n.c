/* test-i18n.c — the translations: the .mo reader (sc-catalog.c) on
 * catalogues msgfmt writes in both byte orders and on damaged ones; the
 * dashboard's strings negotiated from Accept-Language over real HTTP
 * against the admin server (GET /i18n.json); and the CLI in German with
 * LANGUAGE=de where no German locale is generated (this machine has
 * C.UTF-8 only).  The build's catalogues come from $STAGECOACH_LOCALEDIR
 * (tests/meson.build points it at build/po).
 */
#include "config.h"

#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <string.h>
#include <sys/wait.h>

#include "sc-admin-server.h"
#include "sc-catalog.h"
#include "sc-clock.h"
#include "sc-config.h"
#include "sc-spool.h"
#include "sc-test-http.h"
#include "sc-test-util.h"

/* msgfmt's output for @po_text, LOCALEDIR-style under @dir:
 * DIR/LANGUAGE/LC_MESSAGES/stagecoach.mo; @endianness "little" or "big". */
static char *
compile_po (const char *dir, const char *language, const char *po_text, const char *endianness)
{
	g_autofree char *folder = g_build_filename (dir, language, "LC_MESSAGES", NULL);
	g_autofree char *po = g_build_filename (dir, "input.po", NULL);
	g_autofree char *mo = g_build_filename (folder, "stagecoach.mo", NULL);
	g_autofree char *option = g_strdup_printf ("--endianness=%s", endianness);
	g_autoptr(GError) error = NULL;
	g_autofree char *err = NULL;
	int status = 0;
	const char *argv[] = {"msgfmt", "--check", option, "-o", mo, po, NULL};

	g_assert_cmpint (g_mkdir_with_parents (folder, 0700), ==, 0);
	g_assert_true (g_file_set_contents (po, po_text, -1, &error));
	g_assert_no_error (error);
	g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
		      NULL, NULL, &err, &status, &error);
	g_assert_no_error (error);
	if (!g_spawn_check_wait_status (status, NULL))
		g_error ("msgfmt failed: %s", err);
	return g_steal_pointer (&mo);
}

#define PO_HEADER(plural)                                                                          \
	"msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n"                   \
	"\"Language: de\\n\"\n\"Plural-Forms: " plural "\\n\"\n\n"

static const char sample_po[] =
    PO_HEADER ("nplurals=2; plural=(n != 1);")
    "msgid \"Overview\"\nmsgstr \"Übersicht\"\n\n"
    "msgid \"%d attempt\"\nmsgid_plural \"%d attempts\"\nmsgstr[0] \"%d Versuch\"\nmsgstr[1] \"%d Versuche\"\n\n"
    "msgctxt \"menu\"\nmsgid \"Open\"\nmsgstr \"Öffnen\"\n\n"
    "msgid \"untranslated\"\nmsgstr \"\"\n\n"
    /* translations are data: quotes, markup, a backslash, a newline */
    "msgid \"Danger\"\nmsgstr \"</script><b onclick=\\\"x\\\">\\\\ \\n'\"\n";

static void
check_sample (ScCatalog *catalog)
{
	const char *msgid = NULL;
	const char *plural = NULL;
	const char *forms = NULL;
	gsize length = 0;
	gboolean seen_plural = FALSE;
	g_autofree char *rule = NULL;

	/* the header, four translated entries; msgfmt leaves out the untranslated one */
	g_assert_cmpuint (sc_catalog_get_size (catalog), ==, 5);
	g_assert_cmpstr (sc_catalog_lookup (catalog, "Overview"), ==, "Übersicht");
	g_assert_cmpstr (sc_catalog_lookup (catalog, "%d attempt"), ==, "%d Versuch");
	g_assert_cmpstr (sc_catalog_lookup (catalog, "menu\004Open"), ==, "Öffnen");
	g_assert_null (sc_catalog_lookup (catalog, "Open"));
	g_assert_null (sc_catalog_lookup (catalog, "untranslated"));
	g_assert_null (sc_catalog_lookup (catalog, "Overvie"));
	g_assert_null (sc_catalog_lookup (catalog, "Overviewx"));
	g_assert_null (sc_catalog_lookup (catalog, "zzz"));
	g_assert_cmpstr (sc_catalog_lookup (catalog, "Danger"), ==, "</script><b onclick=\"x\">\\ \n'");
	rule = sc_catalog_get_header (catalog, "Plural-Forms");
	g_assert_cmpstr (rule, ==, "nplurals=2; plural=(n != 1);");
	g_assert_null (sc_catalog_get_header (catalog, "Plural"));
	for (guint i = 0; i < sc_catalog_get_size (catalog); i++) {
		sc_catalog_get_entry (catalog, i, &msgid, &plural, &forms, &length);
		if (strcmp (msgid, "%d attempt") != 0)
			continue;
		seen_plural = TRUE;
		g_assert_cmpstr (plural, ==, "%d attempts");
		g_assert_cmpuint (length, ==, strlen ("%d Versuch") + 1 + strlen ("%d Versuche"));
		g_assert_cmpstr (forms, ==, "%d Versuch");
		g_assert_cmpstr (forms + strlen (forms) + 1, ==, "%d Versuche");
	}
	g_assert_true (seen_plural);
}

static void
test_catalog_both_byte_orders (void)
{
	g_autofree char *dir = sc_test_make_tmpdir ("sc-i18n");
	const char *orders[] = {"little", "big"};

	for (gsize i = 0; i < G_N_ELEMENTS (orders); i++) {
		g_autofree char *sub = g_build_filename (dir, orders[i], NULL);
		g_autofree char *mo = compile_po (sub, "de", sample_po, orders[i]);
		g_autoptr(GError) error = NULL;
		g_autoptr(ScCatalog) catalog = sc_catalog_new_from_file (mo, &error);

		g_test_message ("%s-endian", orders[i]);
		g_assert_no_error (error);
		check_sample (catalog);
	}
	sc_test_remove_tree (dir);
}

/* Every cut of a real catalogue and every damaged word is refused, never
 * read past (ASan/valgrind watch the reads). */
static void
test_catalog_damaged (void)
{
	g_autofree char *dir = sc_test_make_tmpdir ("sc-i18n");
	g_autofree char *mo = compile_po (dir, "de", sample_po, "little");
	g_autofree char *data = NULL;
	gsize size = 0;
	g_autoptr(GError) error = NULL;

	g_assert_true (g_file_get_contents (mo, &data, &size, &error));
	for (gsize cut = 0; cut < size; cut++) {
		g_autoptr(GBytes) bytes = g_bytes_new (data, cut);
		g_autoptr(GError) local = NULL;
		g_autoptr(ScCatalog) catalog = sc_catalog_new_from_bytes (bytes, &local);
		/* the last string's NUL is the file's last byte: any cut loses it */
		g_assert_null (catalog);
		g_assert_error (local, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
	{
		g_autofree char *copy = g_memdup2 (data, size);
		g_autoptr(GBytes) bytes = NULL;
		g_autoptr(ScCatalog) catalog = NULL;
		g_autoptr(GError) local = NULL;
		copy[0] ^= 0x01; /* the magic */
		bytes = g_bytes_new (copy, size);
		catalog = sc_catalog_new_from_bytes (bytes, &local);
		g_assert_null (catalog);
		g_assert_error (local, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
		g_assert_nonnull (strstr (local->message, "magic"));
	}
	/* every single byte of the tables flipped: refused, or read within bounds */
	for (gsize at = 8; at < MIN (size, 28 + 2 * 8 * 5); at++) {
		g_autofree char *copy = g_memdup2 (data, size);
		g_autoptr(GBytes) bytes = NULL;
		g_autoptr(ScCatalog) catalog = NULL;
		copy[at] ^= 0x80;
		bytes = g_bytes_new (copy, size);
		catalog = sc_catalog_new_from_bytes (bytes, NULL);
		if (catalog != NULL) {
			for (guint i = 0; i < sc_catalog_get_size (catalog); i++) {
				const char *msgid;
				sc_catalog_get_entry (catalog, i, &msgid, NULL, NULL, NULL);
				(void) sc_catalog_lookup (catalog, msgid);
			}
		}
	}
	{
		/* the originals out of order: the bisection would miss entries */
		g_autofree char *copy = g_memdup2 (data, size);
		guint32 table;
		guint32 first[2];
		g_autoptr(GBytes) bytes = NULL;
		g_autoptr(GError) local = NULL;
		g_autoptr(ScCatalog) catalog = NULL;
		memcpy (&table, copy + 12, 4);
		memcpy (first, copy + table + 8, 8);
		memmove (copy + table + 8, copy + table + 16, 8);
		memcpy (copy + table + 16, first, 8);
		bytes = g_bytes_new (copy, size);
		catalog = sc_catalog_new_from_bytes (bytes, &local);
		g_assert_null (catalog);
		g_assert_error (local, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	}
	{
		g_autofree char *missing = g_build_filename (dir, "none.mo", NULL);
		g_autoptr(GError) local = NULL;
		g_assert_null (sc_catalog_new_from_file (missing, &local));
		g_assert_error (local, G_FILE_ERROR, G_FILE_ERROR_NOENT);
	}
	sc_test_remove_tree (dir);
}

/* The build's German catalogue, found where the daemon looks. */
static void
test_catalog_build_de (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScCatalog) catalog = sc_catalog_open ("de", &error);
	g_autofree char *language = NULL;

	g_assert_no_error (error);
	g_assert_cmpstr (sc_catalog_lookup (catalog, "Commands:"), ==, "Befehle:");
	g_assert_cmpstr (sc_catalog_lookup (catalog, "Overview"), ==, "Übersicht");
	language = sc_catalog_get_header (catalog, "Language");
	g_assert_cmpstr (language, ==, "de");
	g_assert_true (g_str_has_prefix (sc_catalog_localedir (), g_getenv (SC_CATALOG_LOCALEDIR_ENV)));
}

/* ---- the admin server's GET /i18n.json ---- */

typedef struct {
	char *dir;
	ScConfig *config;
	ScClock *clock;
	ScSpool *spool;
	ScAdminServer *server;
	SoupSession *session;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *spool = NULL;
	g_autofree char *text = NULL;
	g_autofree char *path = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-i18n");
	spool = g_build_filename (fixture->dir, "spool", NULL);
	g_assert_cmpint (g_mkdir_with_parents (spool, 0700), ==, 0);
	text = g_strdup_printf ("[stagecoach]\nspool = %s\n[admin]\nlisten = 127.0.0.1:0\n"
				"[list:a.example.org]\npipeline = decorate\n",
				spool);
	path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
	fixture->config = sc_config_load (path, &error);
	g_assert_no_error (error);
	fixture->clock = sc_clock_new_fixed (G_GINT64_CONSTANT (1795435200000000));
	fixture->spool = sc_spool_open (fixture->config->spool, 100000, &error);
	g_assert_no_error (error);
	fixture->server = sc_admin_server_new (fixture->config, fixture->spool, fixture->clock, &error);
	g_assert_no_error (error);
	fixture->session = soup_session_new_with_options ("proxy-resolver", NULL, "timeout", 30, NULL);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	g_clear_object (&fixture->session);
	g_clear_pointer (&fixture->server, sc_admin_server_free);
	g_clear_pointer (&fixture->spool, sc_spool_close);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	g_clear_pointer (&fixture->config, sc_config_unref);
	while (g_main_context_iteration (NULL, FALSE))
		;
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

typedef struct {
	guint status;
	char *language;          /* "language" of the answer */
	char *content_language;  /* the header */
	char *vary;
	JsonObject *strings;     /* (nullable) */
	char *body;
} Answer;

static void
answer_free (Answer *answer)
{
	g_free (answer->language);
	g_free (answer->content_language);
	g_free (answer->vary);
	g_clear_pointer (&answer->strings, json_object_unref);
	g_free (answer->body);
	g_free (answer);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Answer, answer_free)

/* @accept_language: (nullable) no header; @form: (nullable) a form body */
static Answer *
fetch (Fixture *fixture, const char *method, const char *path, const char *accept_language, const char *form)
{
	g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u%s", sc_admin_server_get_port (fixture->server), path);
	g_autoptr(SoupMessage) message = soup_message_new (method, url);
	SoupMessageHeaders *headers = soup_message_get_response_headers (message);
	g_autoptr(GBytes) body = NULL;
	Answer *answer = g_new0 (Answer, 1);
	gsize size = 0;
	const char *data;

	if (accept_language != NULL)
		soup_message_headers_replace (soup_message_get_request_headers (message), "Accept-Language",
					      accept_language);
	if (form != NULL) {
		g_autoptr(GBytes) bytes = g_bytes_new (form, strlen (form));
		soup_message_set_request_body_from_bytes (message, "application/x-www-form-urlencoded", bytes);
	}
	body = sc_test_http_send (fixture->session, message);
	answer->status = soup_message_get_status (message);
	answer->content_language = g_strdup (soup_message_headers_get_one (headers, "Content-Language"));
	answer->vary = g_strdup (soup_message_headers_get_list (headers, "Vary"));
	data = g_bytes_get_data (body, &size);
	answer->body = g_strndup (data, size);
	if (answer->status == 200 && strcmp (method, "GET") == 0 && strcmp (path, "/i18n.json") == 0) {
		g_autoptr(JsonParser) parser = json_parser_new ();
		g_autoptr(GError) error = NULL;
		JsonObject *object;
		g_assert_cmpstr (soup_message_headers_get_content_type (headers, NULL), ==, "application/json");
		json_parser_load_from_data (parser, data, size, &error);
		g_assert_no_error (error);
		object = json_node_get_object (json_parser_get_root (parser));
		answer->language = g_strdup (json_object_get_string_member (object, "language"));
		answer->strings = json_object_ref (json_object_get_object_member (object, "strings"));
	}
	return answer;
}

#define fetch_strings(fixture, method, accept_language) fetch (fixture, method, "/i18n.json", accept_language, NULL)

/* The language the server picks for @accept_language, checked against
 * the headers too. (transfer full) */
static char *
negotiated (Fixture *fixture, const char *accept_language)
{
	g_autoptr(Answer) answer = fetch_strings (fixture, "GET", accept_language);

	g_assert_cmpuint (answer->status, ==, 200);
	g_assert_cmpstr (answer->content_language, ==, answer->language);
	g_assert_cmpstr (answer->vary, ==, "Accept-Language");
	if (strcmp (answer->language, "en") == 0)
		g_assert_cmpuint (json_object_get_size (answer->strings), ==, 0);
	else
		g_assert_cmpuint (json_object_get_size (answer->strings), >, 0);
	return g_strdup (answer->language);
}

static void
assert_negotiates (Fixture *fixture, const char *accept_language, const char *expected)
{
	g_autofree char *language = negotiated (fixture, accept_language);

	g_test_message ("Accept-Language: %s -> %s", accept_language != NULL ? accept_language : "(none)", language);
	g_assert_cmpstr (language, ==, expected);
}

static void
test_negotiation (Fixture *fixture, gconstpointer user_data)
{
	assert_negotiates (fixture, NULL, "en");
	assert_negotiates (fixture, "", "en");
	assert_negotiates (fixture, "de", "de");
	assert_negotiates (fixture, "DE", "de");
	/* region fallback: no de_DE catalogue, de's */
	assert_negotiates (fixture, "de-DE", "de");
	assert_negotiates (fixture, "de-DE,de;q=0.9,en;q=0.8", "de");
	assert_negotiates (fixture, "de-at, en;q=0.5", "de");
	/* q-values order the ranges, not their place in the header */
	assert_negotiates (fixture, "en;q=0.5, de", "de");
	assert_negotiates (fixture, "en, de;q=0.9", "en");
	assert_negotiates (fixture, "en-US,en;q=0.9,de;q=0.8", "en");
	assert_negotiates (fixture, "fr, de;q=0.5", "de");
	assert_negotiates (fixture, "de;q=0.500, fr;q=0.9", "de");
	/* q=0: not acceptable */
	assert_negotiates (fixture, "de;q=0", "en");
	assert_negotiates (fixture, "de;q=0.000, fr", "en");
	assert_negotiates (fixture, "de-DE, de;q=0", "en");
	assert_negotiates (fixture, "fr, de;q=0", "en");
	/* wildcards: the server's default, English, is any language */
	assert_negotiates (fixture, "*", "en");
	assert_negotiates (fixture, "*;q=0.5, de", "de");
	assert_negotiates (fixture, "fr, *;q=0.1, de;q=0.05", "en");
	assert_negotiates (fixture, "*;q=0, de", "de");
	/* unknown languages and junk: English */
	assert_negotiates (fixture, "fr", "en");
	assert_negotiates (fixture, "fr-CA, pt-BR;q=0.9", "en");
	assert_negotiates (fixture, "de;q=2", "en");
	assert_negotiates (fixture, "de;q=abc", "en");
	assert_negotiates (fixture, "../de, de/../../x", "en");
	assert_negotiates (fixture, "d e", "en");
	assert_negotiates (fixture, ",,,;;;=", "en");
	assert_negotiates (fixture, "toolonglanguage", "en");
	assert_negotiates (fixture, "de;foo=bar;q=0.3, en;q=0.2", "de");
}

static void
test_strings (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Answer) german = fetch_strings (fixture, "GET", "de-DE,de;q=0.9");
	g_autoptr(Answer) head = fetch_strings (fixture, "HEAD", "de");
	g_autoptr(Answer) post = fetch_strings (fixture, "POST", "de");
	JsonArray *forms;

	g_assert_cmpstr (german->language, ==, "de");
	g_assert_cmpstr (german->content_language, ==, "de");
	g_assert_cmpuint (json_object_get_size (german->strings), >, 400);
	/* the dashboard's strings (data/dashboard/app.js), from po/de.po */
	g_assert_cmpstr (json_object_get_string_member (german->strings, "Overview"), ==, "Übersicht");
	g_assert_cmpstr (json_object_get_string_member (german->strings, "Messages"), ==, "Nachrichten");
	g_assert_cmpstr (json_object_get_string_member (german->strings, "Sign in"), ==, "Anmelden");
	forms = json_object_get_array_member (german->strings, "%d attempt");
	g_assert_cmpuint (json_array_get_length (forms), ==, 2);
	g_assert_cmpstr (json_array_get_string_element (forms, 0), ==, "%d Versuch");
	g_assert_cmpstr (json_array_get_string_element (forms, 1), ==, "%d Versuche");
	/* the server's own messages, so app.js can show its errors translated */
	g_assert_cmpstr (json_object_get_string_member (german->strings, "authentication required"), ==,
			 "Anmeldung erforderlich");
	g_assert_false (json_object_has_member (german->strings, ""));
	/* open to everyone: the login page needs them */
	g_assert_cmpuint (head->status, ==, 200);
	g_assert_cmpstr (head->content_language, ==, "de");
	g_assert_cmpuint (post->status, ==, 405);
}

/* The script-free login page (GET /login, and a refused POST /login,
 * which the dashboard's form leads to) speaks the browser's language too. */
static void
test_login_page (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(Answer) german = fetch (fixture, "GET", "/login", "de-DE, en;q=0.5", NULL);
	g_autoptr(Answer) english = fetch (fixture, "GET", "/login", NULL, NULL);
	g_autoptr(Answer) refused = fetch (fixture, "POST", "/login", "de", "token=wrong-token-0123456789");

	g_assert_cmpuint (german->status, ==, 200);
	g_assert_cmpstr (german->content_language, ==, "de");
	g_assert_cmpstr (german->vary, ==, "Accept-Language");
	g_assert_nonnull (strstr (german->body, "<html lang=\"de\">"));
	g_assert_nonnull (strstr (german->body, "<title>stagecoach-Verwaltung</title>"));
	g_assert_nonnull (strstr (german->body, "Admin-Token"));
	g_assert_nonnull (strstr (german->body, ">Anmelden</button>"));
	g_assert_null (strstr (german->body, "Log in"));
	g_assert_cmpstr (english->content_language, ==, "en");
	g_assert_nonnull (strstr (english->body, "<html lang=\"en\">"));
	g_assert_nonnull (strstr (english->body, ">Log in</button>"));
	g_assert_cmpuint (refused->status, ==, 401);
	g_assert_nonnull (strstr (refused->body, "Dieses Token ist ungültig."));
}

/* Catalogues of other languages, in a LOCALEDIR of the test's own. */
static void
test_other_catalogues (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *localedir = g_build_filename (fixture->dir, "locale", NULL);
	g_autofree char *saved = g_strdup (g_getenv (SC_CATALOG_LOCALEDIR_ENV));
	g_autofree char *de_mo = NULL;
	g_autofree char *at_mo = NULL;
	g_autofree char *ru_mo = NULL;
	g_autofree char *xx_mo = NULL;

	de_mo = compile_po (localedir, "de", sample_po, "big");
	at_mo = compile_po (localedir, "de_AT", PO_HEADER ("nplurals=2; plural=n != 1;") "msgid \"Overview\"\nmsgstr \"Überblick\"\n", "little");
	/* three plural forms: app.js knows n != 1 only, so never offered */
	ru_mo = compile_po (localedir, "ru",
			    PO_HEADER ("nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);")
			    "msgid \"Overview\"\nmsgstr \"Обзор\"\n", "little");
	/* not a catalogue */
	xx_mo = compile_po (localedir, "xx", sample_po, "little");
	g_assert_true (g_file_set_contents (xx_mo, "garbage", -1, NULL));
	g_setenv (SC_CATALOG_LOCALEDIR_ENV, localedir, TRUE);

	assert_negotiates (fixture, "de-AT", "de-AT");
	assert_negotiates (fixture, "de-at;q=0.9, de", "de");
	assert_negotiates (fixture, "de-CH", "de");
	assert_negotiates (fixture, "ru, de;q=0.5", "de");
	assert_negotiates (fixture, "ru", "en");
	sc_test_expect_warning ("*ignoring the catalogue*");
	assert_negotiates (fixture, "xx, de;q=0.1", "de");
	g_assert_cmpuint (sc_test_expect_warning (NULL), ==, 1);
	{
		g_autoptr(Answer) answer = fetch_strings (fixture, "GET", "de-AT");
		g_autoptr(Answer) danger = fetch_strings (fixture, "GET", "de");
		g_assert_cmpstr (json_object_get_string_member (answer->strings, "Overview"), ==, "Überblick");
		/* escaped JSON, read back to the very bytes */
		g_assert_cmpstr (json_object_get_string_member (danger->strings, "Danger"), ==,
				 "</script><b onclick=\"x\">\\ \n'");
		g_assert_null (strstr (danger->body, "onclick=\"x"));
		/* entries with a msgctxt are none of app.js's */
		g_assert_false (json_object_has_member (danger->strings, "menu\004Open"));
		g_assert_false (json_object_has_member (danger->strings, "Open"));
	}
	if (saved != NULL)
		g_setenv (SC_CATALOG_LOCALEDIR_ENV, saved, TRUE);
	else
		g_unsetenv (SC_CATALOG_LOCALEDIR_ENV);
}

/* ---- the CLI ---- */

/* Runs the binary with exactly @envp; its exit status. */
static int
run_with_env (const char *const *envp, char **out, char **err, const char *first_arg, ...)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new ();
	g_autoptr(GError) error = NULL;
	int status = 0;
	va_list args;

	g_ptr_array_add (argv, (char *) sc_test_binary ());
	va_start (args, first_arg);
	for (const char *arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
		g_ptr_array_add (argv, (char *) arg);
	va_end (args);
	g_ptr_array_add (argv, NULL);
	g_spawn_sync (NULL, (char **) argv->pdata, (char **) envp, G_SPAWN_DEFAULT, NULL, NULL, out, err, &status,
		      &error);
	g_assert_no_error (error);
	return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

static void
test_cli_german (void)
{
	g_autofree char *localedir = g_strdup_printf ("%s=%s", SC_CATALOG_LOCALEDIR_ENV, g_getenv (SC_CATALOG_LOCALEDIR_ENV));
	g_autofree char *dir = sc_test_make_tmpdir ("sc-i18n");
	g_autofree char *bad = sc_test_write_file (dir, "bad.conf",
						   "[stagecoach]\nspool = spool\n[retry]\ninitial = soon\n");
	g_autofree char *config = g_strdup_printf ("STAGECOACH_CONFIG=%s", bad);
	/* C.UTF-8 as meson sets it; the plain C locale (LANG unset, as under
	 * systemd); a German locale that is not generated on this machine */
	const char *const locales[][2] = {
	    {"LC_ALL=C.UTF-8", NULL},
	    {NULL, NULL},
	    {"LANG=de_DE.UTF-8", NULL},
	    {"LC_ALL=de_DE.UTF-8", "LC_MESSAGES=de_DE.UTF-8"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (locales); i++) {
		const char *envp[] = {"PATH=/usr/bin:/bin", localedir, config, "LANGUAGE=de", locales[i][0], locales[i][1], NULL};
		const char *english[] = {"PATH=/usr/bin:/bin", localedir, config, "LC_ALL=C.UTF-8", NULL};
		g_autofree char *out = NULL;
		g_autofree char *err = NULL;

		g_test_message ("LANGUAGE=de %s %s", locales[i][0] != NULL ? locales[i][0] : "(no locale)",
				locales[i][1] != NULL ? locales[i][1] : "");
		/* the front execs stagecoach-main for --help: it prints */
		g_assert_cmpint (run_with_env (envp, &out, &err, "--help", NULL), ==, 0);
		g_assert_nonnull (strstr (out, "Befehle:"));
		g_assert_nonnull (strstr (out, "Aufruf: stagecoach [--config DATEI] BEFEHL [OPTIONEN…]"));
		g_assert_nonnull (strstr (out, "Nachrichten je Zustand zählen"));
		g_assert_null (strstr (out, "Commands:"));
		g_assert_null (strstr (out, "Count messages per state"));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);

		/* a command's options, GOption's headings from GLib's own catalogue */
		g_assert_cmpint (run_with_env (envp, &out, &err, "list", "--help", NULL), ==, 0);
		g_assert_nonnull (strstr (out, "Nachrichten auflisten, neueste zuerst."));
		g_assert_nonnull (strstr (out, "Nur Nachrichten dieser Liste"));
		g_assert_null (strstr (out, "List messages, newest first."));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);

		/* an error of the CLI */
		g_assert_cmpint (run_with_env (envp, &out, &err, "show", NULL), !=, 0);
		g_assert_nonnull (strstr (err, "stagecoach show: geben Sie eine Queue-ID an"));
		g_assert_null (strstr (err, "give one queue id"));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);

		/* check-config's diagnostics; the key stays as it is written */
		g_assert_cmpint (run_with_env (envp, &out, &err, "check-config", NULL), !=, 0);
		g_assert_nonnull (strstr (err, "die Konfiguration enthält Fehler:"));
		g_assert_nonnull (strstr (err, "„soon“ ist keine Dauer"));
		g_assert_nonnull (strstr (err, "initial"));
		g_assert_null (strstr (err, "is not a duration"));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);

		/* the daemon speaks English (logs, SMTP replies, the spool's
		 * texts); its --help is German */
		g_assert_cmpint (run_with_env (envp, &out, &err, "run", "--help", NULL), ==, 0);
		g_assert_nonnull (strstr (out, "Die Pipeline ausführen."));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);
		g_assert_cmpint (run_with_env (envp, &out, &err, "run", "--once", NULL), !=, 0);
		g_assert_nonnull (strstr (err, "“soon” is not a duration"));
		g_assert_null (strstr (err, "Dauer"));
		g_clear_pointer (&out, g_free);
		g_clear_pointer (&err, g_free);

		/* without LANGUAGE: English */
		g_assert_cmpint (run_with_env (english, &out, &err, "--help", NULL), ==, 0);
		g_assert_nonnull (strstr (out, "Commands:"));
		g_assert_null (strstr (out, "Befehle:"));
	}
	sc_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	sc_test_install_log_writer ();
	if (g_getenv (SC_CATALOG_LOCALEDIR_ENV) == NULL) {
		g_printerr ("%s is not set (tests/meson.build sets it to build/po)\n", SC_CATALOG_LOCALEDIR_ENV);
		return 1;
	}

	g_test_add_func ("/i18n/catalog/both-byte-orders", test_catalog_both_byte_orders);
	g_test_add_func ("/i18n/catalog/damaged", test_catalog_damaged);
	g_test_add_func ("/i18n/catalog/build-de", test_catalog_build_de);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD ("/i18n/admin/negotiation", test_negotiation);
	ADD ("/i18n/admin/strings", test_strings);
	ADD ("/i18n/admin/login-page", test_login_page);
	ADD ("/i18n/admin/other-catalogues", test_other_catalogues);
#undef ADD
	g_test_add_func ("/i18n/cli/german", test_cli_german);
	return g_test_run ();
}
