/* test-doc.c — the man pages keep up with the code.
 *
 * Every subcommand in the commands[] table of src/sc-main.c has an
 * ".It Cm NAME" entry in doc/stagecoach.1, every long option of the
 * subcommands' GOptionEntry tables (src/sc-cli-*.c) and of the global ones
 * (sc-main.c) appears there as "Fl -NAME", and every SC_KEY_ of
 * src/sc-config.h has an ".It Cm KEY Ns =" entry in doc/stagecoach.conf.5.
 * The sources are read as text from the source tree (G_TEST_SRCDIR is
 * tests/), so a new option without its documentation fails here.
 */
#include <glib.h>
#include <string.h>

/* (transfer full) the text of ../PART/NAME beside the tests folder */
static char *
read_source (const char *part, const char *name)
{
	g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", part, name, NULL);
	g_autoptr(GError) error = NULL;
	char *contents = NULL;

	if (!g_file_get_contents (path, &contents, NULL, &error))
		g_error ("cannot read %s: %s", path, error->message);
	return contents;
}

/* Every first capture group of @pattern in @text, in order, without
 * duplicates. (transfer full) */
static GPtrArray *
collect_matches (const char *text, const char *pattern)
{
	g_autoptr(GRegex) regex = g_regex_new (pattern, G_REGEX_MULTILINE, 0, NULL);
	g_autoptr(GMatchInfo) match = NULL;
	GPtrArray *found = g_ptr_array_new_with_free_func (g_free);

	g_assert_nonnull (regex);
	g_regex_match (regex, text, 0, &match);
	while (g_match_info_matches (match)) {
		g_autofree char *word = g_match_info_fetch (match, 1);
		if (!g_ptr_array_find_with_equal_func (found, word, g_str_equal, NULL))
			g_ptr_array_add (found, g_steal_pointer (&word));
		g_match_info_next (match, NULL);
	}
	return found;
}

/* Whether @text has a line matching ^PREFIX WORD SUFFIX, where WORD is
 * taken literally and SUFFIX is a regular expression. */
static gboolean
has_line (const char *text, const char *prefix, const char *word, const char *suffix)
{
	g_autofree char *escaped = g_regex_escape_string (word, -1);
	g_autofree char *pattern = g_strconcat (prefix, escaped, suffix, NULL);

	return g_regex_match_simple (pattern, text, G_REGEX_MULTILINE, 0);
}

/* Fails with one message naming everything missing, not only the first. */
static void
assert_none_missing (GPtrArray *checked, GPtrArray *missing, const char *what, const char *page)
{
	g_autoptr(GString) list = g_string_new (NULL);
	g_autoptr(GString) all = g_string_new (NULL);

	for (guint i = 0; i < checked->len; i++)
		g_string_append_printf (all, " %s", (const char *) checked->pdata[i]);
	g_test_message ("%u %s checked:%s", checked->len, what, all->str);

	for (guint i = 0; i < missing->len; i++)
		g_string_append_printf (list, " %s", (const char *) missing->pdata[i]);
	if (missing->len > 0)
		g_test_message ("%s not documented in %s:%s", what, page, list->str);
	g_assert_cmpstr (list->str, ==, "");
}

static void
test_every_command_documented (void)
{
	g_autofree char *main_c = read_source ("src", "sc-main.c");
	g_autofree char *page = read_source ("doc", "stagecoach.1");
	g_autoptr(GPtrArray) missing = g_ptr_array_new ();
	g_autoptr(GPtrArray) commands = NULL;
	const char *table;
	g_autofree char *table_text = NULL;
	const char *end;

	/* only the table: other strings in sc-main.c are not commands */
	table = strstr (main_c, "commands[] = {");
	g_assert_nonnull (table);
	end = strstr (table, "};");
	g_assert_nonnull (end);
	table_text = g_strndup (table, end - table);
	commands = collect_matches (table_text, "^\\s*\\{\\s*\"([a-z][a-z0-9-]*)\"\\s*,\\s*sc_cli_");
	/* a pattern that stopped matching must not pass by finding nothing */
	g_assert_cmpuint (commands->len, >=, 10);
	g_assert_true (g_ptr_array_find_with_equal_func (commands, "run", g_str_equal, NULL));
	g_assert_true (g_ptr_array_find_with_equal_func (commands, "check-config", g_str_equal, NULL));

	for (guint i = 0; i < commands->len; i++) {
		const char *name = commands->pdata[i];
		if (!has_line (page, "^\\.It Cm ", name, "(\\s|$)"))
			g_ptr_array_add (missing, (gpointer) name);
	}
	assert_none_missing (commands, missing, "commands", "doc/stagecoach.1 (as .It Cm NAME)");
}

static void
test_every_option_documented (void)
{
	g_autofree char *page = read_source ("doc", "stagecoach.1");
	g_autofree char *src_dir = g_test_build_filename (G_TEST_DIST, "..", "src", NULL);
	g_autoptr(GDir) dir = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) options = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) missing = g_ptr_array_new ();
	g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
	const char *name;

	dir = g_dir_open (src_dir, 0, &error);
	g_assert_no_error (error);
	while ((name = g_dir_read_name (dir)) != NULL) {
		if (g_pattern_match_simple ("sc-cli-*.c", name))
			g_ptr_array_add (files, g_strdup (name));
	}
	g_assert_cmpuint (files->len, >=, 4);
	g_ptr_array_add (files, g_strdup ("sc-main.c"));

	for (guint f = 0; f < files->len; f++) {
		g_autofree char *text = read_source ("src", files->pdata[f]);
		/* GOptionEntry tables: {"from-stage", 0, 0, G_OPTION_ARG_STRING, … */
		g_autoptr(GPtrArray) entries = collect_matches (
		    text,
		    "\\{\\s*\"([a-z][a-z0-9-]*)\"\\s*,\\s*(?:'.'|0)\\s*,[^,{}]*,\\s*G_OPTION_ARG_");
		/* options compared by hand: the global "--config" of sc-main.c,
		 * sendmail's "--list" */
		g_autoptr(GPtrArray) literals = collect_matches (text, "\"--([a-z][a-z0-9-]*)");

		g_ptr_array_extend_and_steal (entries, g_steal_pointer (&literals));
		for (guint i = 0; i < entries->len; i++) {
			if (!g_ptr_array_find_with_equal_func (options, entries->pdata[i], g_str_equal, NULL))
				g_ptr_array_add (options, g_strdup (entries->pdata[i]));
		}
	}
	g_assert_cmpuint (options->len, >=, 10);
	g_assert_true (g_ptr_array_find_with_equal_func (options, "json", g_str_equal, NULL));
	g_assert_true (g_ptr_array_find_with_equal_func (options, "from-stage", g_str_equal, NULL));
	g_assert_true (g_ptr_array_find_with_equal_func (options, "config", g_str_equal, NULL));

	for (guint i = 0; i < options->len; i++) {
		const char *option = options->pdata[i];
		if (!has_line (page, "Fl -", option, "(?![A-Za-z0-9-])"))
			g_ptr_array_add (missing, (gpointer) option);
	}
	assert_none_missing (options, missing, "options", "doc/stagecoach.1 (as Fl -NAME)");
}

static void
test_every_config_key_documented (void)
{
	g_autofree char *header = read_source ("src", "sc-config.h");
	g_autofree char *page = read_source ("doc", "stagecoach.conf.5");
	g_autoptr(GPtrArray) keys = NULL;
	g_autoptr(GPtrArray) missing = g_ptr_array_new ();

	keys = collect_matches (header, "^#define\\s+SC_KEY_\\w+\\s+\"([^\"]+)\"");
	g_assert_cmpuint (keys->len, >=, 20);
	g_assert_true (g_ptr_array_find_with_equal_func (keys, "max-age", g_str_equal, NULL));

	/* the convention of stagecoach.conf.5: ".It Cm key Ns = Ns Ar value",
	 * which a stage or value named like a key (archive) does not match */
	for (guint i = 0; i < keys->len; i++) {
		const char *key = keys->pdata[i];
		if (!has_line (page, "^\\.It Cm ", key, " Ns =(\\s|$)"))
			g_ptr_array_add (missing, (gpointer) key);
	}
	assert_none_missing (keys, missing, "keys", "doc/stagecoach.conf.5 (as .It Cm KEY Ns =)");
}

/* Every source file with translatable strings is in po/POTFILES.in, and
 * every file listed there exists: otherwise its strings never reach a
 * translator (or xgettext fails). */
static void
test_potfiles_current (void)
{
	g_autofree char *potfiles_path = g_test_build_filename (G_TEST_DIST, "..", "po", "POTFILES.in", NULL);
	g_autofree char *potfiles = NULL;
	g_auto(GStrv) listed = NULL;
	const char *folders[] = {"src", "handlers"};

	g_assert_true (g_file_get_contents (potfiles_path, &potfiles, NULL, NULL));
	listed = g_strsplit (potfiles, "\n", -1);
	for (guint i = 0; listed[i] != NULL; i++) {
		g_autofree char *path = NULL;
		if (*listed[i] == '\0' || *listed[i] == '#')
			continue;
		path = g_test_build_filename (G_TEST_DIST, "..", listed[i], NULL);
		if (!g_file_test (path, G_FILE_TEST_EXISTS))
			g_error ("po/POTFILES.in lists %s, which does not exist", listed[i]);
	}
	for (gsize f = 0; f < G_N_ELEMENTS (folders); f++) {
		g_autofree char *dir_path = g_test_build_filename (G_TEST_DIST, "..", folders[f], NULL);
		g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
		const char *name;

		g_assert_nonnull (dir);
		while ((name = g_dir_read_name (dir)) != NULL) {
			g_autofree char *path = NULL;
			g_autofree char *text = NULL;
			g_autofree char *relative = NULL;
			if (!g_str_has_suffix (name, ".c"))
				continue;
			path = g_build_filename (dir_path, name, NULL);
			g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
			if (strstr (text, " _(") == NULL && strstr (text, "N_(") == NULL &&
			    strstr (text, "(_(") == NULL && strstr (text, "\t_(") == NULL)
				continue;
			relative = g_strdup_printf ("%s/%s", folders[f], name);
			if (!g_strv_contains ((const char *const *) listed, relative))
				g_error ("%s has translatable strings but is not in po/POTFILES.in", relative);
		}
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func ("/doc/every-command-documented", test_every_command_documented);
	g_test_add_func ("/doc/every-option-documented", test_every_option_documented);
	g_test_add_func ("/doc/every-config-key-documented", test_every_config_key_documented);
	g_test_add_func ("/doc/potfiles-current", test_potfiles_current);
	return g_test_run ();
}
