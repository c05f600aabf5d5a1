/* fuzz-config.c — the real configuration loader (sc_config_load: GKeyFile,
 * durations, sizes, lists, mailers, handlers' per-list checks) on arbitrary
 * file contents, written to a private temporary folder.
 *
 * Property beyond "no crash": a load either gives a configuration or an
 * error with a message, never both, never neither.
 *
 * Inputs naming special files are skipped: a template path such as
 * /dev/zero or a FIFO would make any loader read forever, which is the
 * operator's own doing, not a parser bug.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <glib/gstdio.h>

#include "fuzz.h"
#include "sc-config.h"

static char *dir;
static char *path;

static void
remove_dir (void)
{
	g_unlink (path);
	g_rmdir (dir);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	g_autoptr(GError) error = NULL;

	dir = g_dir_make_tmp ("sc-fuzz-config-XXXXXX", &error);
	if (dir == NULL) {
		g_printerr ("fuzz-config: %s\n", error->message);
		abort ();
	}
	path = g_build_filename (dir, "stagecoach.conf", NULL);
	atexit (remove_dir);
	return 0;
}

static gboolean
names_special_file (const uint8_t *data, size_t size)
{
	static const char *const prefixes[] = {"/dev", "/proc", "/sys", "/run", "/var/run", "~"};

	for (gsize i = 0; i < G_N_ELEMENTS (prefixes); i++) {
		if (g_strstr_len ((const char *) data, (gssize) size, prefixes[i]) != NULL)
			return TRUE;
	}
	/* a relative path may climb out of the private folder */
	return g_strstr_len ((const char *) data, (gssize) size, "..") != NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = NULL;
	FILE *file;

	if (names_special_file (data, size))
		return 0;
	file = fopen (path, "wb");
	SC_FUZZ_ASSERT (file != NULL);
	SC_FUZZ_ASSERT (size == 0 || fwrite (data, 1, size, file) == size);
	SC_FUZZ_ASSERT (fclose (file) == 0);

	config = sc_config_load (path, &error);
	SC_FUZZ_ASSERT ((config == NULL) != (error == NULL));
	if (error != NULL)
		SC_FUZZ_ASSERT (error->message != NULL && error->message[0] != '\0');
	return 0;
}
