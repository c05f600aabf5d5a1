/* test-config.c — loading, defaults, path resolution and every reported problem. */
#include "config.h"

#include <glib/gstdio.h>

#include "sc-config.h"
#include "sc-duration.h"
#include "sc-error.h"
#include "sc-handler.h"
#include "sc-spool-uri.h"
#include "sc-test-util.h"

#define SEC G_GINT64_CONSTANT (1000000)

typedef struct {
	char *dir; /* (owned) a fresh temp folder per test */
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-config");
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

static char *
data_path (const char *name)
{
	return g_test_build_filename (G_TEST_DIST, "data", "config", name, NULL);
}

static ScConfig *
load_ok (const char *path)
{
	g_autoptr(GError) error = NULL;
	ScConfig *config = sc_config_load (path, &error);

	g_assert_no_error (error);
	g_assert_nonnull (config);
	return config;
}

/* Writes @contents as stagecoach.conf in the fixture folder and loads it;
 * the load must fail.  Returns the error message. (transfer full) */
static char *
load_fails (Fixture *fixture, const char *contents, char **out_path)
{
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", contents);
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	if (out_path != NULL)
		*out_path = g_steal_pointer (&path);
	return g_strdup (error->message);
}

static guint
count_lines (const char *text)
{
	g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
	return g_strv_length (lines);
}

/* Asserts that one line of @message reads "FILE: [SECTION] KEY: …FRAGMENT…"
 * (or "FILE: [SECTION]: …" when @key is NULL). */
static void
assert_problem (const char *message,
		const char *file,
		const char *section,
		const char *key,
		const char *fragment)
{
	g_auto(GStrv) lines = g_strsplit (message, "\n", -1);
	g_autofree char *prefix = key != NULL ? g_strdup_printf ("%s: [%s] %s: ", file, section, key)
					      : g_strdup_printf ("%s: [%s]: ", file, section);

	for (gsize i = 0; lines[i] != NULL; i++) {
		if (g_str_has_prefix (lines[i], prefix) &&
		    (fragment == NULL || strstr (lines[i] + strlen (prefix), fragment) != NULL))
			return;
	}
	g_error ("no problem “%s…%s” in:\n%s", prefix, fragment != NULL ? fragment : "", message);
}

/* A single problem: exactly one line, naming file, section and key. */
static void
assert_one_problem (Fixture *fixture,
		    const char *contents,
		    const char *section,
		    const char *key,
		    const char *fragment)
{
	g_autofree char *path = NULL;
	g_autofree char *message = load_fails (fixture, contents, &path);

	assert_problem (message, path, section, key, fragment);
	g_assert_cmpuint (count_lines (message), ==, 1);
}

/* ---- valid files ---- */

static void
test_full (void)
{
	g_autofree char *path = data_path ("full.conf");
	g_autofree char *dir = g_path_get_dirname (path);
	g_autoptr(ScConfig) config = load_ok (path);
	g_autofree char *expected = NULL;
	const ScListConfig *list;
	const ScExecConfig *exec;

	g_assert_cmpstr (config->path, ==, path);
	/* [stagecoach] */
	expected = g_build_filename (dir, "spool", NULL);
	g_assert_cmpstr (config->spool, ==, expected);
	g_assert_cmpuint (config->workers, ==, 8);
	g_assert_cmpint (config->lease, ==, 120 * SEC);
	g_assert_cmpint (config->busy_timeout, ==, 250 * 1000);
	g_assert_cmpuint (config->max_message_size, ==, 64 * 1024 * 1024);
	g_assert_cmpstr (config->default_list, ==, "announce.example.org");
	g_assert_cmpint (config->rescan, ==, 90 * SEC);
	g_assert_cmpuint (config->claim_batch, ==, 16);
	/* [retry] */
	g_assert_cmpint (config->retry.initial, ==, 45 * SEC);
	g_assert_cmpfloat (config->retry.factor, ==, 1.5);
	g_assert_cmpint (config->retry.max_delay, ==, 7200 * SEC);
	g_assert_cmpfloat (config->retry.jitter, ==, 0.25);
	g_assert_cmpint (config->retry.max_age, ==, 3 * 86400 * SEC);
	g_assert_cmpuint (config->retry.max_attempts, ==, 12);

	/* [list:announce.example.org], every key */
	g_assert_cmpuint (g_hash_table_size (config->lists), ==, 2);
	list = sc_config_get_list (config, "announce.example.org");
	g_assert_nonnull (list);
	g_assert_cmpstr (list->id, ==, "announce.example.org");
	g_assert_cmpuint (g_strv_length (list->pipeline), ==, 3);
	g_assert_cmpstr (list->pipeline[0], ==, "decorate");
	g_assert_cmpstr (list->pipeline[1], ==, "exec:spamcheck");
	g_assert_cmpstr (list->pipeline[2], ==, "archive");
	g_assert_cmpstr (list->pipeline_text, ==, "decorate;exec:spamcheck;archive");
	g_assert_cmpstr (list->name, ==, "Announcements");
	g_assert_cmpstr (list->subject_prefix, ==, "[announce]");
	g_clear_pointer (&expected, g_free);
	expected = g_build_filename (dir, "header.txt", NULL);
	g_assert_cmpstr (list->header_path, ==, expected);
	g_assert_cmpstr (list->header_template, ==, "Posted to $list_name.\n");
	g_clear_pointer (&expected, g_free);
	expected = g_build_filename (dir, "templates", "footer.txt", NULL);
	g_assert_cmpstr (list->footer_path, ==, expected);
	g_assert_cmpstr (list->footer_template, ==, "-- \nYou are subscribed to $list_name.\n");
	g_clear_pointer (&expected, g_free);
	expected = g_strdup_printf ("maildir:%s/archive/announce", dir);
	g_assert_cmpstr (list->archive, ==, expected);
	g_assert_cmpstr (list->post, ==, "mailto:announce@lists.example.org");
	g_assert_cmpstr (list->help, ==, "mailto:announce-request@lists.example.org?subject=help");
	g_assert_cmpstr (list->archive_url, ==, "https://lists.example.org/archive/announce/");
	g_assert_nonnull (list->unsubscribe);
	g_assert_cmpuint (g_strv_length (list->unsubscribe), ==, 2);
	g_assert_cmpstr (list->unsubscribe[0], ==, "mailto:announce-leave@lists.example.org");
	g_assert_cmpstr (list->unsubscribe[1], ==, "https://lists.example.org/unsubscribe/announce");
	g_assert_true (list->unsubscribe_one_click);

	/* [list:dev.example.org]: only a pipeline, the rest defaults */
	list = sc_config_get_list (config, "dev.example.org");
	g_assert_nonnull (list);
	g_assert_cmpstr (list->pipeline_text, ==, "decorate");
	g_assert_cmpstr (list->name, ==, "dev");
	g_assert_null (list->subject_prefix);
	g_assert_null (list->header_path);
	g_assert_null (list->header_template);
	g_assert_null (list->footer_path);
	g_assert_null (list->footer_template);
	g_assert_null (list->archive);
	g_assert_null (list->post);
	g_assert_null (list->help);
	g_assert_null (list->archive_url);
	g_assert_null (list->unsubscribe);
	g_assert_false (list->unsubscribe_one_click);
	g_assert_null (sc_config_get_list (config, "nosuch.example.org"));
	g_assert_null (sc_config_get_list (config, NULL));

	/* [handler:spamcheck]: argv split with shell quoting, relative program resolved */
	exec = sc_config_get_exec (config, "spamcheck");
	g_assert_nonnull (exec);
	g_assert_cmpstr (exec->name, ==, "spamcheck");
	g_assert_cmpuint (g_strv_length (exec->argv), ==, 3);
	g_clear_pointer (&expected, g_free);
	expected = g_build_filename (dir, "bin", "filter", NULL);
	g_assert_cmpstr (exec->argv[0], ==, expected);
	g_assert_cmpstr (exec->argv[1], ==, "--mode");
	g_assert_cmpstr (exec->argv[2], ==, "strict mode");
	g_assert_true (exec->replace);
	g_assert_cmpint (exec->timeout, ==, 30 * SEC);
	g_assert_null (sc_config_get_exec (config, "nosuch"));
}

static void
assert_defaults (const ScConfig *config, const char *spool)
{
	gint64 value = 0;

	g_assert_cmpstr (config->spool, ==, spool);
	g_assert_cmpuint (config->workers, ==, SC_DEF_WORKERS);
	g_assert_true (sc_duration_parse (SC_DEF_LEASE, &value, NULL));
	g_assert_cmpint (config->lease, ==, value);
	g_assert_cmpint (config->lease, ==, 300 * SEC);
	g_assert_cmpint (config->busy_timeout, ==, 10 * SEC);
	g_assert_cmpint (config->rescan, ==, 30 * SEC);
	g_assert_cmpuint (config->claim_batch, ==, SC_DEF_CLAIM_BATCH);
	g_assert_cmpuint (config->max_message_size, ==, 100 * 1024 * 1024);
	g_assert_null (config->default_list);
	g_assert_cmpint (config->retry.initial, ==, 30 * SEC);
	g_assert_cmpfloat (config->retry.factor, ==, SC_DEF_RETRY_FACTOR);
	g_assert_cmpint (config->retry.max_delay, ==, 3600 * SEC);
	g_assert_cmpfloat (config->retry.jitter, ==, SC_DEF_RETRY_JITTER);
	g_assert_cmpint (config->retry.max_age, ==, 5 * 86400 * SEC);
	g_assert_cmpuint (config->retry.max_attempts, ==, SC_DEF_RETRY_MAX_ATTEMPTS);
}

static void
test_defaults_empty_file (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (fixture->dir, "empty.conf", "# nothing\n");
	g_autoptr(ScConfig) config = load_ok (path);

	assert_defaults (config, SC_DEF_SPOOL);
	g_assert_cmpuint (g_hash_table_size (config->lists), ==, 0);
	g_assert_cmpuint (g_hash_table_size (config->execs), ==, 0);
}

static void
test_defaults_absent_sections (Fixture *fixture, gconstpointer user_data)
{
	/* [stagecoach] present but partial; [retry] absent; a list with no keys */
	g_autofree char *path = sc_test_write_file (fixture->dir,
						    "partial.conf",
						    "[stagecoach]\nworkers = 2\n\n"
						    "[list:users.example.org]\n");
	g_autoptr(ScConfig) config = load_ok (path);
	const ScListConfig *list;

	g_assert_cmpuint (config->workers, ==, 2);
	g_assert_cmpint (config->retry.initial, ==, 30 * SEC);
	g_assert_cmpint (config->retry.max_age, ==, 5 * 86400 * SEC);
	list = sc_config_get_list (config, "users.example.org");
	g_assert_nonnull (list);
	g_assert_cmpstr (list->pipeline_text, ==, SC_DEF_LIST_PIPELINE);
	g_assert_cmpuint (g_strv_length (list->pipeline), ==, 2);
	g_assert_cmpstr (list->name, ==, "users");
	g_assert_false (list->unsubscribe_one_click);
}

static void
test_defaults_no_file (void)
{
	g_autoptr(ScConfig) config = load_ok (NULL);

	g_assert_null (config->path);
	assert_defaults (config, SC_DEF_SPOOL);
	g_assert_cmpuint (g_hash_table_size (config->lists), ==, 0);
}

static void
test_relative_paths (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *sub = g_build_filename (fixture->dir, "etc", NULL);
	g_autofree char *path = NULL;
	g_autofree char *footer = NULL;
	g_autofree char *expected = NULL;
	g_autofree char *cwd = g_get_current_dir ();
	g_autofree char *relative = NULL;
	g_autoptr(ScConfig) config = NULL;
	const ScListConfig *list;

	g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
	g_free (sc_test_write_file (fixture->dir, "footer.txt", "bye\n"));
	g_free (sc_test_write_file (sub, "header.txt", "hello\n"));
	path = sc_test_write_file (sub,
				   "stagecoach.conf",
				   "[stagecoach]\nspool = ../queue/./spool\n"
				   "[list:l.example.org]\n"
				   "pipeline = decorate;archive\n"
				   "header = header.txt\n"
				   "footer = ../footer.txt\n"
				   "archive = mbox:archives/l.mbox\n"
				   "[list:m.example.org]\n"
				   "pipeline = archive\n"
				   "archive = maildir:/srv/archive/m\n"
				   "[list:n.example.org]\n"
				   "pipeline = archive\n"
				   "archive = https://archive.example.org/api/n\n");
	/* loaded through a relative file name: still resolved against its folder */
	g_assert_cmpint (g_chdir (fixture->dir), ==, 0);
	relative = g_build_filename ("etc", "stagecoach.conf", NULL);
	config = load_ok (relative);
	g_assert_cmpint (g_chdir (cwd), ==, 0);

	g_assert_true (g_path_is_absolute (config->path));
	g_assert_cmpstr (config->path, ==, path);
	expected = g_build_filename (fixture->dir, "queue", "spool", NULL);
	g_assert_cmpstr (config->spool, ==, expected);
	list = sc_config_get_list (config, "l.example.org");
	g_clear_pointer (&expected, g_free);
	expected = g_build_filename (sub, "header.txt", NULL);
	g_assert_cmpstr (list->header_path, ==, expected);
	g_assert_cmpstr (list->header_template, ==, "hello\n");
	footer = g_build_filename (fixture->dir, "footer.txt", NULL);
	g_assert_cmpstr (list->footer_path, ==, footer);
	g_assert_cmpstr (list->footer_template, ==, "bye\n");
	g_clear_pointer (&expected, g_free);
	expected = g_strdup_printf ("mbox:%s/archives/l.mbox", sub);
	g_assert_cmpstr (list->archive, ==, expected);
	/* absolute paths and URLs are kept as written */
	list = sc_config_get_list (config, "m.example.org");
	g_assert_cmpstr (list->archive, ==, "maildir:/srv/archive/m");
	list = sc_config_get_list (config, "n.example.org");
	g_assert_cmpstr (list->archive, ==, "https://archive.example.org/api/n");
}

static void
test_empty_archive_disables (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (fixture->dir,
						    "stagecoach.conf",
						    "[list:quiet.example.org]\n"
						    "pipeline = decorate\n"
						    "archive =\n"
						    "unsubscribe = ; mailto:x@example.org ;;\n");
	g_autoptr(ScConfig) config = load_ok (path);
	const ScListConfig *list = sc_config_get_list (config, "quiet.example.org");

	g_assert_cmpstr (list->archive, ==, "");
	g_assert_cmpuint (g_strv_length (list->unsubscribe), ==, 1);
	g_assert_cmpstr (list->unsubscribe[0], ==, "mailto:x@example.org");
}

static void
test_booleans (Fixture *fixture, gconstpointer user_data)
{
	static const struct {
		const char *text;
		gboolean value;
	} cases[] = {
	    {"true", TRUE}, {"True", TRUE}, {"yes", TRUE}, {"1", TRUE},
	    {"false", FALSE}, {"FALSE", FALSE}, {"no", FALSE}, {"0", FALSE},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *contents = g_strdup_printf ("[handler:h]\ncommand = /bin/cat\nreplace = %s\n",
							     cases[i].text);
		g_autofree char *path = sc_test_write_file (fixture->dir, "bool.conf", contents);
		g_autoptr(ScConfig) config = load_ok (path);
		g_assert_cmpint (sc_config_get_exec (config, "h")->replace, ==, cases[i].value);
		g_assert_cmpint (sc_config_get_exec (config, "h")->timeout, ==, 300 * SEC);
	}
}

static void
test_ref_counting (void)
{
	ScConfig *config = load_ok (NULL);

	g_assert_true (sc_config_ref (config) == config);
	sc_config_unref (config);
	/* still alive: one reference left */
	g_assert_cmpuint (config->workers, ==, SC_DEF_WORKERS);
	sc_config_unref (config);
	sc_config_unref (NULL);
}

static void
test_find_path (void)
{
	g_autofree char *explicit = NULL;
	g_autofree char *from_env = NULL;
	g_autofree char *system_path = g_build_filename (SYSCONFDIR, "stagecoach", "stagecoach.conf", NULL);

	g_setenv ("STAGECOACH_CONFIG", "/etc/from-env.conf", TRUE);
	explicit = sc_config_find_path ("/tmp/explicit.conf");
	g_assert_cmpstr (explicit, ==, "/tmp/explicit.conf");
	from_env = sc_config_find_path (NULL);
	g_assert_cmpstr (from_env, ==, "/etc/from-env.conf");
	g_setenv ("STAGECOACH_CONFIG", "", TRUE);
	if (!g_file_test (system_path, G_FILE_TEST_EXISTS)) {
		g_autofree char *none = sc_config_find_path (NULL);
		g_assert_null (none);
	}
	g_unsetenv ("STAGECOACH_CONFIG");
}

/* ---- problems ---- */

static void
test_error_unknown_section (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nworkers = 2\n[mailers]\nurl = x\n", "mailers", NULL, "unknown section");
	assert_one_problem (fixture, "[list]\npipeline = decorate\n", "list", NULL, "unknown section");
}

static void
test_error_unknown_key (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nworker = 2\n", "stagecoach", "worker", "unknown key");
	assert_one_problem (fixture, "[retry]\nmax-age = 1d\nmaxage = 2d\n", "retry", "maxage", "unknown key");
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate\nfooter-file = x\n",
			    "list:l.example.org",
			    "footer-file",
			    "unknown key");
	assert_one_problem (fixture,
			    "[handler:h]\ncommand = /bin/cat\nargs = -n\n",
			    "handler:h",
			    "args",
			    "unknown key");
}

static void
test_error_bad_duration (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nlease = 5x\n", "stagecoach", "lease", "“5x” is not a duration");
	assert_one_problem (fixture, "[stagecoach]\nbusy-timeout = 1h30\n", "stagecoach", "busy-timeout", "“1h30”");
	assert_one_problem (fixture, "[stagecoach]\nrescan = \n", "stagecoach", "rescan", "not a duration");
	assert_one_problem (fixture, "[retry]\ninitial = -30s\n", "retry", "initial", "“-30s”");
	assert_one_problem (fixture, "[retry]\nmax-age = 99999999999999d\n", "retry", "max-age", "not a duration");
	assert_one_problem (fixture,
			    "[handler:h]\ncommand = /bin/cat\ntimeout = soon\n",
			    "handler:h",
			    "timeout",
			    "“soon”");
}

static void
test_error_bad_number (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nworkers = four\n", "stagecoach", "workers", "“four” is not a whole number from 1 to 256");
	assert_one_problem (fixture, "[stagecoach]\nworkers = 0\n", "stagecoach", "workers", "“0”");
	assert_one_problem (fixture, "[stagecoach]\nworkers = 257\n", "stagecoach", "workers", "“257”");
	assert_one_problem (fixture, "[stagecoach]\nworkers = -1\n", "stagecoach", "workers", "“-1”");
	assert_one_problem (fixture, "[stagecoach]\nclaim-batch = 1.5\n", "stagecoach", "claim-batch", "“1.5”");
	assert_one_problem (fixture, "[retry]\nmax-attempts = lots\n", "retry", "max-attempts", "“lots”");
	assert_one_problem (fixture, "[retry]\nfactor = 2x\n", "retry", "factor", "“2x” is not a number from 1 to 100");
	assert_one_problem (fixture, "[retry]\nfactor = 0.5\n", "retry", "factor", "“0.5”");
	assert_one_problem (fixture, "[retry]\nfactor = nan\n", "retry", "factor", "“nan”");
	assert_one_problem (fixture, "[retry]\njitter = 1.5\n", "retry", "jitter", "“1.5” is not a number from 0 to 1");
	assert_one_problem (fixture, "[retry]\njitter = -0.1\n", "retry", "jitter", "“-0.1”");
	assert_one_problem (fixture, "[retry]\njitter =\n", "retry", "jitter", "is not a number");
}

static void
test_error_bad_boolean (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate\nunsubscribe-one-click = maybe\n",
			    "list:l.example.org",
			    "unsubscribe-one-click",
			    "“maybe” is not true or false");
	assert_one_problem (fixture,
			    "[handler:h]\ncommand = /bin/cat\nreplace = 2\n",
			    "handler:h",
			    "replace",
			    "“2”");
}

static void
test_error_bad_size (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nmax-message-size = 10X\n", "stagecoach", "max-message-size", "“10X” is not a size");
	assert_one_problem (fixture, "[stagecoach]\nmax-message-size = -1M\n", "stagecoach", "max-message-size", "“-1M”");
	assert_one_problem (fixture,
			    "[stagecoach]\nmax-message-size = 99999999999999999999999\n",
			    "stagecoach",
			    "max-message-size",
			    "is not a size");
}

static void
test_error_lease_too_short (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = NULL;
	g_autoptr(ScConfig) config = NULL;

	assert_one_problem (fixture, "[stagecoach]\nlease = 4s\n", "stagecoach", "lease", "at least 5s");
	assert_one_problem (fixture, "[stagecoach]\nlease = 4999ms\n", "stagecoach", "lease", "at least 5s");
	assert_one_problem (fixture, "[stagecoach]\nrescan = 500ms\n", "stagecoach", "rescan", "at least 1s");
	/* exactly 5 s is allowed */
	path = sc_test_write_file (fixture->dir, "ok.conf", "[stagecoach]\nlease = 5s\nrescan = 1s\n");
	config = load_ok (path);
	g_assert_cmpint (config->lease, ==, 5 * SEC);
	g_assert_cmpint (config->rescan, ==, SEC);
}

static void
test_error_max_delay_below_initial (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = NULL;
	g_autoptr(ScConfig) config = NULL;

	assert_one_problem (fixture,
			    "[retry]\ninitial = 10m\nmax-delay = 5m\n",
			    "retry",
			    "max-delay",
			    "must not be shorter than initial");
	/* against the default initial (30s) too */
	assert_one_problem (fixture, "[retry]\nmax-delay = 29s\n", "retry", "max-delay", "initial");
	/* equal is fine */
	path = sc_test_write_file (fixture->dir, "ok.conf", "[retry]\ninitial = 1m\nmax-delay = 60s\n");
	config = load_ok (path);
	g_assert_cmpint (config->retry.max_delay, ==, config->retry.initial);
}

static void
test_error_empty_pipeline (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[list:l.example.org]\npipeline =\n", "list:l.example.org", "pipeline", "names no stage");
	assert_one_problem (fixture, "[list:l.example.org]\npipeline = ; ;\n", "list:l.example.org", "pipeline", "names no stage");
}

static void
test_error_duplicate_stage (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate; archive; decorate\narchive = maildir:/srv/a\n",
			    "list:l.example.org",
			    "pipeline",
			    "stage “decorate” appears twice");
}

static void
test_error_unknown_stage (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate;deliverr\n",
			    "list:l.example.org",
			    "pipeline",
			    "unknown stage “deliverr”");
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate:x\n",
			    "list:l.example.org",
			    "pipeline",
			    "unknown stage “decorate:x”");
}

static void
test_error_exec_without_name (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate;exec:\n",
			    "list:l.example.org",
			    "pipeline",
			    "exec:");
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = exec\n",
			    "list:l.example.org",
			    "pipeline",
			    "exec:NAME");
}

static void
test_error_exec_without_handler (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = NULL;
	g_autofree char *message = NULL;

	if (sc_handler_exec.check == NULL) {
		g_test_incomplete ("handlers/sc-exec.c has no check yet: exec:NAME without [handler:NAME] passes");
		return;
	}
	message = load_fails (fixture, "[list:l.example.org]\npipeline = exec:spamcheck\n", &path);
	g_assert_nonnull (strstr (message, path));
	g_assert_nonnull (strstr (message, "[list:l.example.org]"));
	g_assert_nonnull (strstr (message, "pipeline"));
	g_assert_nonnull (strstr (message, "[handler:spamcheck]"));
	g_assert_cmpuint (count_lines (message), ==, 1);
}

static void
test_error_handler_command (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[handler:h]\nreplace = yes\n", "handler:h", "command", "missing");
	assert_one_problem (fixture, "[handler:h]\ncommand =\n", "handler:h", "command", "missing");
	assert_one_problem (fixture, "[handler:h]\ncommand = /bin/filter 'unterminated\n", "handler:h", "command", NULL);
}

static void
test_error_missing_template (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *expected = g_build_filename (fixture->dir, "nosuch-footer.txt", NULL);

	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate\nfooter = nosuch-footer.txt\n",
			    "list:l.example.org",
			    "footer",
			    expected);
	g_clear_pointer (&expected, g_free);
	expected = g_build_filename (fixture->dir, "nosuch-header.txt", NULL);
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate\nheader = nosuch-header.txt\n",
			    "list:l.example.org",
			    "header",
			    expected);
}

static void
test_error_template_not_utf8 (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *latin1 = data_path ("latin1-footer.txt");
	g_autofree char *contents = g_strdup_printf ("[list:l.example.org]\npipeline = decorate\nfooter = %s\n", latin1);
	g_autofree char *fragment = g_strdup_printf ("template %s is not valid UTF-8", latin1);

	assert_one_problem (fixture, contents, "list:l.example.org", "footer", fragment);
}

static void
test_error_value_not_utf8 (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[list:l.example.org]\npipeline = decorate\nsubject-prefix = [caf\xe9]\n",
			    "list:l.example.org",
			    "subject-prefix",
			    "not valid UTF-8");
}

static void
test_error_default_list_unknown (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture,
			    "[stagecoach]\ndefault-list = nosuch.example.org\n"
			    "[list:other.example.org]\npipeline = decorate\n",
			    "stagecoach",
			    "default-list",
			    "no section [list:nosuch.example.org]");
}

static void
test_error_spool_empty (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[stagecoach]\nspool =\n", "stagecoach", "spool", "must not be empty");
}

/* The spool names its backend by scheme: sqlite: or a bare folder is the
 * embedded spool; a PostgreSQL URI or connection string is kept as
 * written for libpq, or refused by name in a build without it — never
 * taken for a folder. */
static void
test_spool_backend (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *sqlite_path =
	    sc_test_write_file (fixture->dir, "sqlite.conf", "[stagecoach]\nspool = sqlite:/var/tmp/sc-q\n");
	g_autofree char *bare_path =
	    sc_test_write_file (fixture->dir, "bare.conf", "[stagecoach]\nspool = /var/tmp/sc-q\n");
	g_autoptr(ScConfig) sqlite = load_ok (sqlite_path);
	g_autoptr(ScConfig) bare = load_ok (bare_path);
	const char *postgresql[] = {
	    "postgresql://sc@127.0.0.1/spool",
	    "postgres://sc@db.example.org:5433/spool?sslmode=verify-full",
	    "host=127.0.0.1 dbname=spool",
	    /* a socket folder: a slash after the first '=' is still libpq's */
	    "host=/var/run/postgresql dbname=spool user=sc",
	    "dbname = spool",
	};

	g_assert_cmpstr (sqlite->spool, ==, "/var/tmp/sc-q");
	g_assert_cmpstr (bare->spool, ==, "/var/tmp/sc-q");
	g_assert_cmpint (sqlite->spool_kind, ==, SC_SPOOL_URI_FOLDER);
	g_assert_cmpint (bare->spool_kind, ==, SC_SPOOL_URI_FOLDER);
	for (gsize i = 0; i < G_N_ELEMENTS (postgresql); i++) {
		g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s\n", postgresql[i]);
#ifdef HAVE_LIBPQ
		g_autofree char *path = sc_test_write_file (fixture->dir, "pg.conf", text);
		g_autoptr(ScConfig) config = load_ok (path);

		g_assert_cmpstr (config->spool, ==, postgresql[i]);
		g_assert_cmpint (config->spool_kind, ==, SC_SPOOL_URI_POSTGRESQL);
		g_assert_cmpstr (config->state_dir, ==, SC_DEF_STATE_DIR);
		g_assert_cmpstr (config->state_dir, ==, "/var/lib/stagecoach");
#else
		assert_one_problem (fixture, text, "stagecoach", "spool",
				    "a PostgreSQL spool needs stagecoach built with libpq");
#endif
	}
#ifdef HAVE_LIBPQ
	g_test_message ("built with libpq: PostgreSQL values accepted (the refusal is the other build's)");
#else
	g_test_message ("built without libpq: PostgreSQL values refused by name");
#endif
	/* not libpq's: a folder with '=' after a slash, a scheme we lack */
	{
		g_autofree char *path =
		    sc_test_write_file (fixture->dir, "odd.conf", "[stagecoach]\nspool = queue/a=b\n");
		g_autoptr(ScConfig) config = load_ok (path);
		g_autofree char *expected = g_build_filename (fixture->dir, "queue", "a=b", NULL);
		g_assert_cmpint (config->spool_kind, ==, SC_SPOOL_URI_FOLDER);
		g_assert_cmpstr (config->spool, ==, expected);
	}
	assert_one_problem (fixture, "[stagecoach]\nspool = mysql://sc@127.0.0.1/spool\n", "stagecoach",
			    "spool", "unknown spool backend");
	assert_one_problem (fixture, "[stagecoach]\nspool = sqlite:\n", "stagecoach", "spool",
			    "must not be empty");
}

/* state-dir= holds what is this host's own (the hand-off socket, the
 * generated admin token): beside a folder spool unless set, in
 * /var/lib/stagecoach for a database spool; relative to the file. */
static void
test_state_dir (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *folder_path =
	    sc_test_write_file (fixture->dir, "folder.conf", "[stagecoach]\nspool = queue\n");
	g_autofree char *set_path = sc_test_write_file (fixture->dir, "set.conf",
							"[stagecoach]\nspool = sqlite:queue\nstate-dir = run/../state\n");
	g_autoptr(ScConfig) folder = load_ok (folder_path);
	g_autoptr(ScConfig) set = load_ok (set_path);
	g_autoptr(ScConfig) defaults = NULL;
	g_autofree char *queue = g_build_filename (fixture->dir, "queue", NULL);
	g_autofree char *state = g_build_filename (fixture->dir, "state", NULL);
	g_autoptr(GError) error = NULL;

	g_assert_cmpstr (folder->state_dir, ==, queue);
	g_assert_cmpstr (set->spool, ==, queue);
	g_assert_cmpstr (set->state_dir, ==, state);
	defaults = sc_config_load (NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpstr (defaults->state_dir, ==, SC_DEF_SPOOL);
#ifdef HAVE_LIBPQ
	{
		g_autofree char *pg_path = sc_test_write_file (fixture->dir, "pg.conf",
							       "[stagecoach]\nspool = postgresql://sc@127.0.0.1/q\n"
							       "state-dir = /srv/sc-host-a\n");
		g_autoptr(ScConfig) pg = load_ok (pg_path);
		g_assert_cmpstr (pg->state_dir, ==, "/srv/sc-host-a");
	}
#endif
	assert_one_problem (fixture, "[stagecoach]\nstate-dir =\n", "stagecoach", "state-dir", "must not be empty");
}

typedef struct {
	const char *value;
	const char *shown;
	gboolean has_password;
} MaskCase;

/* What libpq would take for a password is what is hidden, and nothing
 * else: the user, host, port, database and other parameters stay, so an
 * operator can still tell which spool it is. */
static void
test_spool_mask (void)
{
	const MaskCase cases[] = {
	    {"/var/spool/stagecoach", "/var/spool/stagecoach", FALSE},
	    {"sqlite:/srv/a:b@c", "sqlite:/srv/a:b@c", FALSE},
	    {"postgresql://sc@127.0.0.1/spool", "postgresql://sc@127.0.0.1/spool", FALSE},
	    {"postgresql://sc:s3cret@127.0.0.1:5432/spool", "postgresql://sc:***@127.0.0.1:5432/spool", TRUE},
	    {"postgres://sc:p%40ss@db/spool", "postgres://sc:***@db/spool", TRUE},
	    {"postgresql://sc:@db/spool", "postgresql://sc:***@db/spool", FALSE},
	    /* the user part ends at the first '@' before any '/', as libpq reads it */
	    {"postgresql://db:5432/spool@x", "postgresql://db:5432/spool@x", FALSE},
	    {"postgresql://sc@db/spool?sslmode=require&password=s3cret&connect_timeout=5",
	     "postgresql://sc@db/spool?sslmode=require&password=***&connect_timeout=5", TRUE},
	    {"postgresql:///spool?host=/run/postgresql&pass%77ord=s3cret",
	     "postgresql:///spool?host=/run/postgresql&pass%77ord=***", TRUE},
	    {"postgresql://sc:a@db/spool?password=b", "postgresql://sc:***@db/spool?password=***", TRUE},
	    {"host=db dbname=spool user=sc", "host=db dbname=spool user=sc", FALSE},
	    {"host=db password=s3cret dbname=spool", "host=db password=*** dbname=spool", TRUE},
	    {"host=db password = s3cret", "host=db password=***", TRUE},
	    {"password='s3 cr\\'et' host=db", "password=*** host=db", TRUE},
	    {"host=/run/postgresql passfile=/etc/stagecoach/pgpass dbname=spool",
	     "host=/run/postgresql passfile=/etc/stagecoach/pgpass dbname=spool", FALSE},
	    /* libpq skips the spaces after '=': the password here is "host=db" */
	    {"password= host=db", "password=***", TRUE},
	    {"password='' host=db", "password=*** host=db", FALSE},
	    /* libpq expands a dbname that is itself a URI or connection string */
	    {"dbname=postgresql://sc:s3cret@db/spool connect_timeout=5",
	     "dbname='postgresql://sc:***@db/spool' connect_timeout=5", TRUE},
	    {"dbname='host=db password=s3cret' user=sc", "dbname='host=db password=***' user=sc", TRUE},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *shown = sc_spool_uri_mask (cases[i].value);
		g_test_message ("%s → %s", cases[i].value, shown);
		g_assert_cmpstr (shown, ==, cases[i].shown);
		g_assert_cmpint (sc_spool_uri_has_password (cases[i].value), ==, cases[i].has_password);
		g_assert_null (strstr (shown, "s3cret"));
		g_assert_null (strstr (shown, "s3 cr"));
	}
}

/* A password written into spool= is named (without itself) where the
 * permissions of secrets are checked: check-config and run warn. */
static void
test_spool_password_warning (Fixture *fixture, gconstpointer user_data)
{
#ifdef HAVE_LIBPQ
	g_autofree char *with = sc_test_write_file (fixture->dir, "with.conf",
						    "[stagecoach]\nspool = postgresql://sc:s3cret@127.0.0.1/q\n"
						    "state-dir = state\n");
	g_autofree char *without = sc_test_write_file (fixture->dir, "without.conf",
						       "[stagecoach]\nspool = host=127.0.0.1 dbname=q "
						       "passfile=pgpass\nstate-dir = state\n");
	g_autoptr(ScConfig) config = load_ok (with);
	g_autoptr(ScConfig) clean = load_ok (without);
	g_autoptr(GPtrArray) warnings = sc_config_check_permissions (config);
	g_autoptr(GPtrArray) none = sc_config_check_permissions (clean);

	g_assert_cmpuint (warnings->len, ==, 1);
	g_test_message ("%s", (const char *) warnings->pdata[0]);
	g_assert_true (g_str_has_prefix (warnings->pdata[0], with));
	g_assert_nonnull (strstr (warnings->pdata[0], "[stagecoach] spool holds a password"));
	g_assert_nonnull (strstr (warnings->pdata[0], ".pgpass"));
	g_assert_nonnull (strstr (warnings->pdata[0], "passfile="));
	g_assert_null (strstr (warnings->pdata[0], "s3cret"));
	g_assert_cmpuint (none->len, ==, 0);
#else
	g_test_skip ("built without libpq: a PostgreSQL spool= is refused before any warning");
#endif
}

static void
test_error_list_id (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[list:]\npipeline = decorate\n", "list:", NULL, "not a valid list id");
	assert_one_problem (fixture, "[list:<a.example.org>]\npipeline = decorate\n", "list:<a.example.org>", NULL, "not a valid list id");
}

static void
test_error_unparsable (void)
{
	g_autofree char *path = data_path ("unparsable.conf");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_true (g_str_has_prefix (error->message, path));
}

static void
test_error_missing_file (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = g_build_filename (fixture->dir, "nosuch.conf", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_true (g_str_has_prefix (error->message, path));
}

static void
test_error_many (void)
{
	g_autofree char *path = data_path ("many-problems.conf");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);
	g_auto(GStrv) lines = NULL;

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	assert_problem (error->message, path, "stagecoach", "workers", "“many”");
	assert_problem (error->message, path, "stagecoach", "lease", "at least 5s");
	assert_problem (error->message, path, "stagecoach", "colour", "unknown key");
	assert_problem (error->message, path, "retry", "max-delay", "initial");
	assert_problem (error->message, path, "retry", "jitter", "“1.5”");
	assert_problem (error->message, path, "list:a.example.org", "pipeline", "“decorate” appears twice");
	assert_problem (error->message, path, "list:a.example.org", "pipeline", "“frobnicate”");
	assert_problem (error->message, path, "mailers", NULL, "unknown section");
	/* one problem per line, each naming the file; none twice */
	lines = g_strsplit (error->message, "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 8);
	for (gsize i = 0; lines[i] != NULL; i++) {
		g_assert_true (g_str_has_prefix (lines[i], path));
		for (gsize j = 0; j < i; j++)
			g_assert_cmpstr (lines[i], !=, lines[j]);
	}
}

/* ---- deliverability (issue 11) ---- */

static void
test_deliverability (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (
	    fixture->dir, "stagecoach.conf",
	    "[stagecoach]\ndns-server=127.0.0.1:5353;[::1]\ndns-timeout=2s\n"
	    "public-suffix-list=/nonexistent/psl.dat\n"
	    "[list:posted.example.org]\npost=mailto:dev@lists.example.org\n"
	    "unsubscribe-url=https://lists.example.org/u/$recipient\ndkim-selector=s1\n"
	    "dkim-key-file=dkim.pem\nfrom-original=cc\n"
	    "[list:bare.example.org]\npipeline=decorate\n"
	    "[list:own.example.org]\naddress=own@example.net\npost=NO\nfrom-rewrite=always\n"
	    "footer-if-absent=false\ndkim-domain=sign.example.net\n"
	    "unsubscribe-secret-file=missing.secret\n");
	g_autoptr(ScConfig) config = load_ok (path);
	const ScListConfig *posted = sc_config_get_list (config, "posted.example.org");
	const ScListConfig *bare = sc_config_get_list (config, "bare.example.org");
	const ScListConfig *own = sc_config_get_list (config, "own.example.org");
	g_autofree char *key = g_build_filename (fixture->dir, "dkim.pem", NULL);
	g_autofree char *message = NULL;
	g_autofree char *bad_path = NULL;

	g_assert_cmpuint (g_strv_length (config->dns_servers), ==, 2);
	g_assert_cmpint (config->dns_timeout, ==, 2 * G_USEC_PER_SEC);
	/* the list address from post=, and with it DMARC and the DKIM domain */
	g_assert_cmpstr (posted->address, ==, "dev@lists.example.org");
	g_assert_cmpint (posted->from_rewrite, ==, SC_FROM_REWRITE_DMARC);
	g_assert_cmpint (posted->from_original, ==, SC_FROM_ORIGINAL_CC);
	g_assert_true (posted->footer_if_absent);
	g_assert_cmpstr (posted->dkim_domain, ==, "lists.example.org");
	g_assert_cmpstr (posted->dkim_key_file, ==, key);
	/* no address: the default means never */
	g_assert_null (bare->address);
	g_assert_cmpint (bare->from_rewrite, ==, SC_FROM_REWRITE_NEVER);
	g_assert_null (bare->dkim_domain);
	g_assert_cmpstr (own->address, ==, "own@example.net");
	g_assert_cmpint (own->from_rewrite, ==, SC_FROM_REWRITE_ALWAYS);
	g_assert_false (own->footer_if_absent);
	g_assert_cmpstr (own->dkim_domain, ==, "sign.example.net");
	/* an unreadable $token secret, and a DMARC list without the public
	 * suffix list: a warning each, naming the file */
	g_assert_cmpuint (config->warnings->len, ==, 2);
	g_test_message ("%s", (const char *) config->warnings->pdata[0]);
	g_test_message ("%s", (const char *) config->warnings->pdata[1]);
	g_assert_nonnull (strstr (config->warnings->pdata[0], "unsubscribe-secret-file"));
	g_assert_nonnull (strstr (config->warnings->pdata[1], "public-suffix-list: /nonexistent/psl.dat"));
	g_assert_nonnull (strstr (config->warnings->pdata[1], "[list:posted.example.org]"));

	message = load_fails (fixture,
			      "[stagecoach]\ndns-server=dns.example.org\n"
			      "[list:a.example.org]\nfrom-rewrite=dmarc\nfrom-original=bcc\n"
			      "unsubscribe-url=http://lists.example.org/u\n"
			      "[list:b.example.org]\nfrom-rewrite=sometimes\naddress=not an address\n",
			      &bad_path);
	assert_problem (message, bad_path, "stagecoach", "dns-server", "not an IP address");
	assert_problem (message, bad_path, "list:a.example.org", "from-rewrite", "needs the list's address");
	assert_problem (message, bad_path, "list:a.example.org", "from-original", "not reply-to or cc");
	assert_problem (message, bad_path, "list:a.example.org", "unsubscribe-url", "https://");
	assert_problem (message, bad_path, "list:b.example.org", "from-rewrite", "not never, always or dmarc");
	assert_problem (message, bad_path, "list:b.example.org", "address", "");
}

/* ---- mailers and the deliver stage ---- */

static void
test_mailers (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", "pw\n");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[deliver]\ncircuit-failures=5\ncircuit-cooldown=2m\n"
						    "[mailer:z-backup]\nurl=smtps://relay2.example:465\npriority=20\n"
						    "[mailer:primary]\nurl=smtp://relay.example:587\npriority=5\n"
						    "starttls=required\ntls-verify=false\nusername=list\n"
						    "password-file=secret\nmax-recipients=50\nmax-connections=8\n"
						    "timeout=10s\nhelo=lists.example\n"
						    "[mailer:a-backup]\nurl=smtp://relay3.example\npriority=20\n"
						    "[list:all.example.org]\npipeline=deliver\n"
						    "[list:some.example.org]\npipeline=deliver\nmailers=z-backup;primary\n"
						    "bounces=some-bounces@example.org\nverp=true\n");
	g_autoptr(ScConfig) config = load_ok (path);
	const ScMailerConfig *primary = sc_config_get_mailer (config, "primary");
	g_autoptr(GPtrArray) all = sc_config_list_mailers (config, sc_config_get_list (config, "all.example.org"));
	g_autoptr(GPtrArray) some = sc_config_list_mailers (config, sc_config_get_list (config, "some.example.org"));
	const ScListConfig *list = sc_config_get_list (config, "some.example.org");

	g_assert_cmpuint (config->circuit_failures, ==, 5);
	g_assert_cmpint (config->circuit_cooldown, ==, 120 * G_USEC_PER_SEC);
	g_assert_nonnull (primary);
	g_assert_cmpint (primary->starttls, ==, SC_STARTTLS_REQUIRED);
	g_assert_false (primary->tls_verify);
	g_assert_cmpstr (primary->password_file, ==, secret);
	g_assert_cmpuint (primary->max_recipients, ==, 50);
	g_assert_cmpuint (primary->max_connections, ==, 8);
	g_assert_cmpint (primary->timeout, ==, 10 * G_USEC_PER_SEC);
	g_assert_cmpstr (primary->helo, ==, "lists.example");
	g_assert_cmpuint (config->warnings->len, ==, 0);
	/* all mailers by priority, then name */
	g_assert_cmpuint (all->len, ==, 3);
	g_assert_cmpstr (((ScMailerConfig *) all->pdata[0])->name, ==, "primary");
	g_assert_cmpstr (((ScMailerConfig *) all->pdata[1])->name, ==, "a-backup");
	g_assert_cmpstr (((ScMailerConfig *) all->pdata[2])->name, ==, "z-backup");
	/* a list's own order */
	g_assert_cmpuint (some->len, ==, 2);
	g_assert_cmpstr (((ScMailerConfig *) some->pdata[0])->name, ==, "z-backup");
	g_assert_cmpstr (list->bounces, ==, "some-bounces@example.org");
	g_assert_true (list->verp);
	/* defaults */
	g_assert_cmpint (sc_config_get_mailer (config, "a-backup")->starttls, ==, SC_STARTTLS_OPPORTUNISTIC);
	g_assert_true (sc_config_get_mailer (config, "a-backup")->tls_verify);
	g_assert_cmpuint (sc_config_get_mailer (config, "a-backup")->max_recipients, ==, 100);
}

static void
test_error_mailers (Fixture *fixture, gconstpointer user_data)
{
	assert_one_problem (fixture, "[mailer:m]\npriority=1\n", "mailer:m", "url", "missing");
	assert_one_problem (fixture, "[mailer:m]\nurl=http://relay.example\n", "mailer:m", "url", "smtp://");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://user:pw@relay.example\n", "mailer:m", "url", "credentials");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\nstarttls=maybe\n", "mailer:m", "starttls", "maybe");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\ntimeout=0s\n", "mailer:m", "timeout", "1s");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\nusername=u\n", "mailer:m", "password-file", "username");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\nmax-recipients=0\n", "mailer:m", "max-recipients", NULL);
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\nport=25\n", "mailer:m", "port", "unknown key");
	assert_one_problem (fixture, "[deliver]\ncircuit-cooldown=later\n", "deliver", "circuit-cooldown", NULL);
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\n[list:l.example]\npipeline=deliver\nmailers=m;nope\n",
			    "list:l.example", "mailers", "[mailer:nope]");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\n[list:l.example]\npipeline=deliver\nverp=true\n",
			    "list:l.example", "verp", "bounces");
	assert_one_problem (fixture, "[mailer:m]\nurl=smtp://r.example\n[list:l.example]\npipeline=deliver\nbounces=not an address\n",
			    "list:l.example", "bounces", "invalid address");
	/* deliver without any mailer: the list's pipeline is named */
	assert_one_problem (fixture, "[list:l.example]\npipeline=deliver\n", "list:l.example", NULL, "mailer");
}

/* An unreadable password file is not a load error (the daemon starts and
 * that mailer fails transiently) but a warning check-config reports. */
static void
test_password_file_warning (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[mailer:m]\nurl=smtp://r.example\nusername=u\n"
						    "password-file=/nonexistent/secret\n");
	g_autoptr(ScConfig) config = load_ok (path);

	g_assert_cmpuint (config->warnings->len, ==, 1);
	g_assert_nonnull (strstr (config->warnings->pdata[0], "[mailer:m] password-file:"));
	g_assert_nonnull (strstr (config->warnings->pdata[0], path));
}

/* A password file without a username is never read (no AUTH without a
 * name): a warning says so rather than a silently ignored secret. */
static void
test_password_file_unused (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", "s3cret\n");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[mailer:m]\nurl=smtp://r.example\nstarttls=off\n"
						    "password-file=secret\n");
	g_autoptr(ScConfig) config = load_ok (path);

	g_assert_cmpuint (config->warnings->len, ==, 1);
	g_test_message ("%s", (const char *) config->warnings->pdata[0]);
	g_assert_nonnull (strstr (config->warnings->pdata[0], "[mailer:m] password-file: not used without username"));
	g_assert_null (strstr (config->warnings->pdata[0], "s3cret"));
}

static void
test_admin_and_notify (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *tokens = sc_test_write_file (fixture->dir, "tokens", "ops s3cret-0123456789abcdef\n");
	g_autofree char *secret = sc_test_write_file (fixture->dir, "hook.key", "k\n");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[admin]\nlisten=0.0.0.0:8470\ntoken-file=tokens\n"
						    "public-url=https://mail.example/admin\n"
						    "[notify]\nwebhook=https://hooks.example/stagecoach\n"
						    "secret-file=hook.key\ndigest-interval=5m\n"
						    "digest-threshold=10\nbacklog-threshold=0\ntimeout=5s\n");
	g_autoptr(ScConfig) config = load_ok (path);
	g_autofree char *empty = sc_test_write_file (fixture->dir, "empty.conf", "");
	g_autoptr(ScConfig) defaults = load_ok (empty);

	g_assert_cmpstr (config->admin_listen, ==, "0.0.0.0:8470");
	g_assert_cmpstr (config->admin_token_file, ==, tokens);
	g_assert_cmpstr (config->notify_webhook, ==, "https://hooks.example/stagecoach");
	g_assert_cmpstr (config->notify_secret_file, ==, secret);
	g_assert_cmpint (config->notify_digest_interval, ==, 300 * G_USEC_PER_SEC);
	g_assert_cmpuint (config->notify_digest_threshold, ==, 10);
	g_assert_cmpuint (config->notify_backlog_threshold, ==, 0);
	/* defaults: loopback dashboard, no webhook */
	g_assert_cmpstr (defaults->admin_listen, ==, "127.0.0.1:8470");
	g_assert_null (defaults->admin_token_file);
	g_assert_null (defaults->notify_webhook);
}

static void
test_error_admin_and_notify (Fixture *fixture, gconstpointer user_data)
{
	/* anyone who can reach a public port could delete mail */
	assert_one_problem (fixture, "[admin]\nlisten=0.0.0.0:8470\n", "admin", "listen", "token-file");
	assert_one_problem (fixture, "[admin]\nlisten=localhost\n", "admin", "listen", "HOST:PORT");
	assert_one_problem (fixture, "[admin]\nlisten=127.0.0.1:99999\n", "admin", "listen", "HOST:PORT");
	assert_one_problem (fixture, "[admin]\ntoken-file=/nonexistent/tokens\n", "admin", "token-file", "cannot read");
	assert_one_problem (fixture, "[notify]\nwebhook=https://hooks.example/x\n", "notify", "secret-file", "webhook");
	assert_one_problem (fixture, "[notify]\nwebhook=ftp://hooks.example/x\nsecret-file=/etc/hostname\n",
			    "notify", "webhook", "http");
}

/* Where the problems are, for ingress to tell "try again" from "wrong". */
static void
test_failure_places (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[stagecoach]\nworkerz=4\n"
						    "[list:a.example.org]\npipeline=nonsense\n"
						    "[list:b.example.org]\n");
	g_autofree char *cut = sc_test_write_file (fixture->dir, "cut.conf", "[stagecoach]\nspool=x\n[list:a.exa");
	ScConfigFailure failure = {0};
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load_full (path, &failure, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_false (failure.unparsed);
	g_assert_true (sc_config_failure_has (&failure, "stagecoach", "workerz"));
	g_assert_false (sc_config_failure_has (&failure, "stagecoach", "spool"));
	g_assert_true (sc_config_failure_has (&failure, "list:a.example.org", NULL));
	g_assert_true (sc_config_failure_has (&failure, "list:a.example.org", "pipeline"));
	g_assert_false (sc_config_failure_has (&failure, "list:b.example.org", NULL));
	g_assert_false (sc_config_failure_has (&failure, "list:a", NULL)); /* a section, not a prefix */
	sc_config_failure_clear (&failure);
	g_clear_error (&error);

	config = sc_config_load_full (cut, &failure, &error);
	g_assert_null (config);
	g_assert_true (failure.unparsed);
	g_assert_null (failure.places);
	sc_config_failure_clear (&failure);
}

/* Secrets and spool files others can read are named, one warning each. */
static void
test_permission_warnings (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *password = sc_test_write_file (fixture->dir, "password", "pw\n");
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", "s\n");
	g_autofree char *spool = g_build_filename (fixture->dir, "spool", NULL);
	g_autofree char *db = NULL;
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf",
						    "[stagecoach]\nspool=spool\n"
						    "[notify]\nwebhook=http://127.0.0.1:9/\nsecret-file=secret\n"
						    "[mailer:m]\nurl=smtp://127.0.0.1:9\nusername=u\npassword-file=password\n"
						    "[list:l.example.org]\ndkim-key-file=dkim.pem\n");
	g_autofree char *dkim_key = sc_test_write_file (fixture->dir, "dkim.pem", "key\n");
	g_autoptr(ScConfig) config = load_ok (path);
	g_autoptr(GPtrArray) warnings = NULL;

	g_assert_cmpint (g_mkdir (spool, 0700), ==, 0);
	db = sc_test_write_file (spool, "spool.db", "");
	g_assert_cmpint (g_chmod (password, 0600), ==, 0);
	g_assert_cmpint (g_chmod (secret, 0640), ==, 0);
	g_assert_cmpint (g_chmod (db, 0600), ==, 0);
	g_assert_cmpint (g_chmod (dkim_key, 0640), ==, 0);
	warnings = sc_config_check_permissions (config);
	g_assert_cmpuint (warnings->len, ==, 0);
	g_ptr_array_unref (warnings);

	/* a DKIM private key (the sign stage) that everyone may read */
	g_assert_cmpint (g_chmod (dkim_key, 0644), ==, 0);
	warnings = sc_config_check_permissions (config);
	g_assert_cmpuint (warnings->len, ==, 1);
	g_assert_true (g_str_has_prefix (warnings->pdata[0], dkim_key));
	g_ptr_array_unref (warnings);
	g_assert_cmpint (g_chmod (dkim_key, 0640), ==, 0);

	g_assert_cmpint (g_chmod (password, 0604), ==, 0);
	g_assert_cmpint (g_chmod (db, 0644), ==, 0);
	warnings = sc_config_check_permissions (config);
	g_assert_cmpuint (warnings->len, ==, 2);
	g_assert_true (g_str_has_prefix (warnings->pdata[0], password));
	g_assert_nonnull (strstr (warnings->pdata[0], "0604"));
	g_assert_true (g_str_has_prefix (warnings->pdata[1], db));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	g_test_add_func ("/config/load/full", test_full);
	ADD ("/config/load/defaults/empty-file", test_defaults_empty_file);
	ADD ("/config/load/defaults/absent-sections", test_defaults_absent_sections);
	g_test_add_func ("/config/load/defaults/no-file", test_defaults_no_file);
	ADD ("/config/load/relative-paths", test_relative_paths);
	ADD ("/config/load/empty-archive", test_empty_archive_disables);
	ADD ("/config/load/booleans", test_booleans);
	g_test_add_func ("/config/ref", test_ref_counting);
	g_test_add_func ("/config/find-path", test_find_path);
	ADD ("/config/error/unknown-section", test_error_unknown_section);
	ADD ("/config/error/unknown-key", test_error_unknown_key);
	ADD ("/config/error/bad-duration", test_error_bad_duration);
	ADD ("/config/error/bad-number", test_error_bad_number);
	ADD ("/config/error/bad-boolean", test_error_bad_boolean);
	ADD ("/config/error/bad-size", test_error_bad_size);
	ADD ("/config/error/lease-too-short", test_error_lease_too_short);
	ADD ("/config/error/max-delay-below-initial", test_error_max_delay_below_initial);
	ADD ("/config/error/empty-pipeline", test_error_empty_pipeline);
	ADD ("/config/error/duplicate-stage", test_error_duplicate_stage);
	ADD ("/config/error/unknown-stage", test_error_unknown_stage);
	ADD ("/config/error/exec-without-name", test_error_exec_without_name);
	ADD ("/config/error/exec-without-handler", test_error_exec_without_handler);
	ADD ("/config/error/handler-command", test_error_handler_command);
	ADD ("/config/error/missing-template", test_error_missing_template);
	ADD ("/config/error/template-not-utf8", test_error_template_not_utf8);
	ADD ("/config/error/value-not-utf8", test_error_value_not_utf8);
	ADD ("/config/error/default-list-unknown", test_error_default_list_unknown);
	ADD ("/config/error/spool-empty", test_error_spool_empty);
	ADD ("/config/spool/backend-by-scheme", test_spool_backend);
	ADD ("/config/spool/state-dir", test_state_dir);
	g_test_add_func ("/config/spool/mask-password", test_spool_mask);
	ADD ("/config/spool/password-warning", test_spool_password_warning);
	ADD ("/config/error/list-id", test_error_list_id);
	g_test_add_func ("/config/error/unparsable", test_error_unparsable);
	ADD ("/config/error/missing-file", test_error_missing_file);
	g_test_add_func ("/config/error/many", test_error_many);
	g_test_add ("/config/error/places", Fixture, NULL, fixture_setup, test_failure_places, fixture_teardown);
	g_test_add ("/config/permission-warnings", Fixture, NULL, fixture_setup, test_permission_warnings,
		    fixture_teardown);
	ADD ("/config/load/mailers", test_mailers);
	ADD ("/config/load/deliverability", test_deliverability);
	ADD ("/config/error/mailers", test_error_mailers);
	ADD ("/config/warning/password-file", test_password_file_warning);
	ADD ("/config/warning/password-file-unused", test_password_file_unused);
	ADD ("/config/load/admin-and-notify", test_admin_and_notify);
	ADD ("/config/error/admin-and-notify", test_error_admin_and_notify);
#undef ADD
	return g_test_run ();
}
