/* sc-cli-copy.c — `stagecoach spool-copy FROM TO`: a whole spool into a
 * new, empty one, between any two backends (SQLite → PostgreSQL when a
 * list host grows to several machines, and back).  The work and its
 * guarantees are sc-spool-copy.c's; this is the command line: which
 * spools, progress, and what was copied.
 *
 * FROM and TO are `spool=` values (a folder, sqlite:FOLDER, a
 * postgresql:// URI or a libpq key=value string), relative folders from
 * the current directory.  The configuration is read only when --config
 * names one, for its busy-timeout: the spools are the command line's.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "sc-cli.h"
#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-spool-copy.h"
#include "sc-spool-uri.h"

/* busy-timeout's default (SC_DEF_BUSY_TIMEOUT) */
#define DEFAULT_BUSY_TIMEOUT (10 * G_USEC_PER_SEC)

/* A folder as the file system knows it: symlinks and ".." resolved when
 * it exists, so two spellings of one spool compare equal. */
static char *
canonical_folder (const char *folder)
{
	char resolved[PATH_MAX];

	if (realpath (folder, resolved) != NULL)
		return g_strdup (resolved);
	return g_canonicalize_filename (folder, NULL);
}

static gboolean
same_spool (const char *from, const char *to)
{
	const char *from_folder = NULL;
	const char *to_folder = NULL;

	if (strcmp (from, to) == 0)
		return TRUE;
	if (sc_spool_uri_parse (from, &from_folder) == SC_SPOOL_URI_FOLDER &&
	    sc_spool_uri_parse (to, &to_folder) == SC_SPOOL_URI_FOLDER) {
		g_autofree char *a = canonical_folder (from_folder);
		g_autofree char *b = canonical_folder (to_folder);
		return strcmp (a, b) == 0;
	}
	/* two spellings of one PostgreSQL database are not told apart here;
	 * the copy refuses it anyway: the destination is not empty */
	return FALSE;
}

/* Opening a spool creates it: a mistyped FROM folder must not become an
 * empty spool copied over. */
static gboolean
source_exists (const char *from, GError **error)
{
	const char *folder = NULL;
	g_autofree char *db = NULL;

	if (sc_spool_uri_parse (from, &folder) != SC_SPOOL_URI_FOLDER)
		return TRUE;
	db = g_build_filename (folder, "spool.db", NULL);
	if (g_file_test (db, G_FILE_TEST_IS_REGULAR))
		return TRUE;
	g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND, _("FROM: no spool in %s"),
		     folder[0] != '\0' ? folder : ".");
	return FALSE;
}

typedef struct {
	gint64 last_report; /* monotonic µs */
} Progress;

static void
report (const ScCopyTable *table, guint64 rows, gboolean done, gpointer user_data)
{
	Progress *progress = user_data;
	gint64 now = g_get_monotonic_time ();

	if (done) {
		printf ("%-14s %" G_GUINT64_FORMAT "\n", table->name, rows);
		fflush (stdout);
		return;
	}
	/* a line a second at most: a large spool takes a while */
	if (now - progress->last_report < G_USEC_PER_SEC)
		return;
	progress->last_report = now;
	fprintf (stderr, _("stagecoach spool-copy: %s: %llu rows so far\n"), table->name, (unsigned long long) rows);
}

int
sc_cli_spool_copy (ScCli *cli, int argc, char **argv)
{
	const GOptionEntry entries[] = {{NULL}};
	gint64 busy_timeout = DEFAULT_BUSY_TIMEOUT;
	g_autoptr(ScSpool) from = NULL;
	g_autoptr(ScSpool) to = NULL;
	g_autoptr(GError) error = NULL;
	Progress progress = {0};

	if (!sc_cli_parse (cli, _("FROM TO"),
			   _("Copy every record of spool FROM into the new, empty spool TO (between "
			     "backends: a folder, sqlite:FOLDER, postgresql://…).  Stop every daemon of "
			     "FROM first: what happens to FROM during the copy is not copied."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 3) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("spool-copy takes two spools, FROM and TO"));
		return sc_cli_fail (cli, error);
	}
	if (same_spool (argv[1], argv[2])) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("FROM and TO are the same spool"));
		return sc_cli_fail (cli, error);
	}
	if (cli->config_path != NULL) {
		if (sc_cli_get_config (cli) == NULL)
			return EX_CONFIG;
		busy_timeout = cli->config->busy_timeout;
	}
	if (!source_exists (argv[1], &error))
		return sc_cli_fail (cli, error);
	from = sc_spool_open (argv[1], busy_timeout, &error);
	if (from == NULL) {
		g_prefix_error (&error, _("FROM: "));
		return sc_cli_fail (cli, error);
	}
	to = sc_spool_open (argv[2], busy_timeout, &error);
	if (to == NULL) {
		g_prefix_error (&error, _("TO: "));
		return sc_cli_fail (cli, error);
	}
	progress.last_report = g_get_monotonic_time ();
	if (!sc_spool_copy (from, to, report, &progress, NULL, &error)) {
		g_prefix_error (&error, _("nothing was copied: "));
		return sc_cli_fail (cli, error);
	}
	fprintf (stderr,
		 _("stagecoach spool-copy: copied from the %s spool to the %s spool; both hold the same "
		   "rows per table and messages per state\n"),
		 sc_spool_backend_name (from), sc_spool_backend_name (to));
	return fflush (stdout) == 0 ? EX_OK : EX_IOERR;
}
