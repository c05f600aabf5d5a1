/* sc-test-util.c — corpus discovery and temp-folder helpers for tests. */
#include "config.h"

#include "sc-test-util.h"

#include <gio/gio.h>

const char *
sc_test_corpus_dir (void)
{
	static char *dir = NULL;
	const char *env;

	if (dir != NULL)
		return dir;
	env = g_getenv ("SC_CORPUS");
	if (env == NULL || *env == '\0')
		env = "../shared/corpus";
	if (!g_file_test (env, G_FILE_TEST_IS_DIR))
		return NULL;
	dir = g_canonicalize_filename (env, NULL);
	return dir;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
sc_test_corpus_files (void)
{
	GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
	const char *dir_path = sc_test_corpus_dir ();
	g_autoptr(GDir) dir = NULL;
	const char *name;

	if (dir_path == NULL)
		return names;
	dir = g_dir_open (dir_path, 0, NULL);
	if (dir == NULL)
		return names;
	while ((name = g_dir_read_name (dir)) != NULL) {
		if (g_str_has_suffix (name, ".eml"))
			g_ptr_array_add (names, g_strdup (name));
	}
	g_ptr_array_sort (names, compare_names);
	return names;
}

const char *
sc_test_binary (void)
{
	const char *path = g_getenv ("STAGECOACH_BIN");
	g_assert_nonnull (path);
	return path;
}

char *
sc_test_make_tmpdir (const char *prefix)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *template = g_strdup_printf ("%s-XXXXXX", prefix);
	char *path = g_dir_make_tmp (template, &error);
	g_assert_no_error (error);
	return path;
}

static void
remove_recursive (GFile *file)
{
	g_autoptr(GFileEnumerator) children = NULL;

	children = g_file_enumerate_children (file,
					      G_FILE_ATTRIBUTE_STANDARD_NAME,
					      G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
					      NULL,
					      NULL);
	if (children != NULL) {
		GFileInfo *info;
		while ((info = g_file_enumerator_next_file (children, NULL, NULL)) != NULL) {
			g_autoptr(GFile) child = g_file_get_child (file, g_file_info_get_name (info));
			g_object_unref (info);
			remove_recursive (child);
		}
	}
	(void) g_file_delete (file, NULL, NULL);
}

void
sc_test_remove_tree (const char *path)
{
	g_autoptr(GFile) file = NULL;

	if (path == NULL)
		return;
	file = g_file_new_for_path (path);
	remove_recursive (file);
}

char *
sc_test_write_file (const char *dir, const char *name, const char *contents)
{
	g_autoptr(GError) error = NULL;
	char *path = g_build_filename (dir, name, NULL);
	g_file_set_contents (path, contents, -1, &error);
	g_assert_no_error (error);
	return path;
}
