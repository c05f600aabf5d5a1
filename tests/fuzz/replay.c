/* replay.c — runs a fuzz target over checked-in inputs, one GTest case per
 * file, so the default (gcc) build checks every seed and every crash ever
 * found without clang or libFuzzer.
 *
 *   replay-TARGET [GTest options] DIR...   every regular file in each DIR
 */
#include "config.h"

#include <stdlib.h>

#include <gio/gio.h>

#include "fuzz.h"

static void
replay_file (gconstpointer data)
{
	const char *path = data;
	g_autoptr(GError) error = NULL;
	g_autofree char *contents = NULL;
	g_autofree guint8 *copy = NULL;
	gsize length = 0;

	g_file_get_contents (path, &contents, &length, &error);
	g_assert_no_error (error);
	/* an exact-size heap copy, as libFuzzer passes it: overreads show */
	copy = g_memdup2 (contents, length);
	g_assert_cmpint (LLVMFuzzerTestOneInput (copy, length), ==, 0);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
add_dir (const char *dir)
{
	g_autoptr(GDir) handle = g_dir_open (dir, 0, NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *base = g_path_get_basename (dir);
	g_autofree char *parent = g_path_get_dirname (dir);
	g_autofree char *kind = g_path_get_basename (parent);
	const char *name;

	if (handle == NULL)
		return; /* no crash kept for this target: git keeps no empty folder */
	while ((name = g_dir_read_name (handle)) != NULL) {
		g_autofree char *path = g_build_filename (dir, name, NULL);
		if (name[0] != '.' && g_file_test (path, G_FILE_TEST_IS_REGULAR))
			g_ptr_array_add (names, g_strdup (name));
	}
	g_ptr_array_sort (names, compare_names);
	for (guint i = 0; i < names->len; i++) {
		g_autofree char *test = g_strdup_printf ("/fuzz/%s/%s/%s", base, kind,
							 (char *) names->pdata[i]);
		/* the path lives as long as the process */
		g_test_add_data_func_full (test, g_build_filename (dir, names->pdata[i], NULL),
					   replay_file, g_free);
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	LLVMFuzzerInitialize (&argc, &argv);
	for (int i = 1; i < argc; i++)
		add_dir (argv[i]);
	return g_test_run ();
}
