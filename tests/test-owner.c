/* test-owner.c — a runner's lock file: liveness and its in-handler marks
 * (src/sc-owner.c), read back as reclaim reads them. */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "sc-owner.h"

typedef struct {
	char *dir; /* (owned) a spool folder of the test's own */
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = g_dir_make_tmp ("sc-owner-XXXXXX", NULL);
	g_assert_nonnull (fixture->dir);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_autofree char *runners = g_build_filename (fixture->dir, "runners", NULL);
	g_autoptr(GDir) dir = g_dir_open (runners, 0, NULL);
	const char *name;

	while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
		g_autofree char *path = g_build_filename (runners, name, NULL);
		g_assert_cmpint (g_unlink (path), ==, 0);
	}
	(void) g_rmdir (runners);
	g_assert_cmpint (g_rmdir (fixture->dir), ==, 0);
	g_free (fixture->dir);
}

static char *
lock_path (Fixture *fixture, const char *name)
{
	g_autofree char *file = g_strconcat (name, ".lock", NULL);
	return g_build_filename (fixture->dir, "runners", file, NULL);
}

/* What each worker slot runs comes back with its stage; an idle slot and
 * an unmarked claim do not; the runner is alive until freed. */
static void
test_marks_name_the_stage (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScOwner *owner = sc_owner_register (fixture->dir, &error);
	g_autofree char *name = NULL;
	g_autoptr(GHashTable) marks = NULL;
	gint stage = -2;

	g_assert_no_error (error);
	name = g_strdup (sc_owner_get_name (owner));
	g_assert_true (sc_owner_is_alive (fixture->dir, name));
	sc_owner_mark_in_handler (owner, 0, 11, 3, 0);
	sc_owner_mark_in_handler (owner, 2, 12, 1, 1);
	sc_owner_mark_in_handler (owner, 1, 13, 1, 2);
	sc_owner_mark_in_handler (owner, 1, 0, 0, 0); /* slot 1 idle again */
	sc_owner_mark_in_handler (owner, 0, 11, 3, 1); /* slot 0's group: its next stage */

	marks = sc_owner_read_in_handler (fixture->dir, name);
	g_assert_cmpuint (g_hash_table_size (marks), ==, 2);
	g_assert_true (sc_owner_marks_find (marks, 11, 3, &stage));
	g_assert_cmpint (stage, ==, 1);
	g_assert_true (sc_owner_marks_find (marks, 12, 1, &stage));
	g_assert_cmpint (stage, ==, 1);
	g_assert_false (sc_owner_marks_find (marks, 13, 1, NULL));
	g_assert_false (sc_owner_marks_find (marks, 11, 2, NULL)); /* another claim of 11 */

	sc_owner_free (owner);
	g_assert_false (sc_owner_is_alive (fixture->dir, name));
}

/* A lock file as a runner from before schema 6 wrote it — (row,
 * generation) pairs from offset 0 — is read right, its stage unknown. */
static void
test_marks_older_layout_read (Fixture *fixture, gconstpointer data)
{
	g_autofree char *runners = g_build_filename (fixture->dir, "runners", NULL);
	g_autofree char *path = lock_path (fixture, "old-runner");
	const gint64 pairs[] = {5, 2, 0, 0, 7, 1};
	g_autoptr(GHashTable) marks = NULL;
	gint stage = -2;

	g_assert_cmpint (g_mkdir_with_parents (runners, 0750), ==, 0);
	g_assert_true (g_file_set_contents (path, (const char *) pairs, sizeof pairs, NULL));
	marks = sc_owner_read_in_handler (fixture->dir, "old-runner");
	g_assert_cmpuint (g_hash_table_size (marks), ==, 2);
	g_assert_true (sc_owner_marks_find (marks, 5, 2, &stage));
	g_assert_cmpint (stage, ==, SC_OWNER_STAGE_UNKNOWN);
	g_assert_true (sc_owner_marks_find (marks, 7, 1, &stage));
	g_assert_cmpint (stage, ==, SC_OWNER_STAGE_UNKNOWN);
}

/* ... and a runner from before schema 6, still running while a newer one
 * took the spool over, reads a new file as (row, generation) pairs: it
 * finds every marked claim, and every other pair it reads has generation
 * 0, which no claim has. */
static void
test_marks_readable_by_older_layout (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScOwner) owner = sc_owner_register (fixture->dir, &error);
	g_autofree char *path = NULL;
	g_autofree char *contents = NULL;
	gsize length = 0;
	guint claims = 0;

	g_assert_no_error (error);
	sc_owner_mark_in_handler (owner, 0, 21, 4, 2);
	sc_owner_mark_in_handler (owner, 3, 22, 9, 0);
	path = lock_path (fixture, sc_owner_get_name (owner));
	g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
	g_assert_cmpuint (length % (2 * sizeof (gint64)), ==, 0);
	for (gsize offset = 0; offset + 2 * sizeof (gint64) <= length; offset += 2 * sizeof (gint64)) {
		gint64 pair[2];
		memcpy (pair, contents + offset, sizeof pair);
		if (pair[0] == 0 || pair[1] == 0)
			continue;
		g_assert_true ((pair[0] == 21 && pair[1] == 4) || (pair[0] == 22 && pair[1] == 9));
		claims++;
	}
	g_assert_cmpuint (claims, ==, 2);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/owner/marks/name-the-stage", Fixture, NULL, setup, test_marks_name_the_stage, teardown);
	g_test_add ("/owner/marks/older-layout-read", Fixture, NULL, setup, test_marks_older_layout_read, teardown);
	g_test_add ("/owner/marks/readable-by-older-layout", Fixture, NULL, setup, test_marks_readable_by_older_layout,
		    teardown);
	return g_test_run ();
}
