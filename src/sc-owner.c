/* sc-owner.c — runner lock files (see sc-owner.h). */
#include "config.h"

#include "sc-owner.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <glib/gstdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "sc-error.h"
#include "sc-i18n.h"

struct _ScOwner {
	char *name;
	char *lock_path;
	int fd;
	ScOwnerMarkFunc mark_func; /* (nullable) a folderless runner's marks */
	gpointer mark_data;
	GDestroyNotify mark_destroy;
};

/* The file's layout.  Since schema version 6: a header slot (MARKS_MAGIC,
 * 0, 0, 0), then per worker (message row, lease generation, stage
 * position + 1, 0), int64s in the host's order (only read back on the
 * same host: the spool folder is local).  Before: (row, generation) pairs
 * from offset 0.  Each format reads the other right but for the stage: a
 * runner still running an older stagecoach while a newer one takes over
 * the spool reads a new slot as the pairs (row, generation) and (stage,
 * 0), and no claim has generation 0 (the first claim makes it 1). */
#define MARKS_MAGIC G_GINT64_CONSTANT (0x73636d61726b7332) /* "scmarks2" */
#define SLOT_SIZE (4 * sizeof (gint64))
#define OLD_SLOT_SIZE (2 * sizeof (gint64))

static gboolean
write_header (int fd)
{
	gint64 header[4] = {MARKS_MAGIC, 0, 0, 0};
	return pwrite (fd, header, SLOT_SIZE, 0) == (ssize_t) SLOT_SIZE;
}

static char *
lock_path_for (const char *spool_folder, const char *name)
{
	g_autofree char *file = g_strconcat (name, ".lock", NULL);
	return g_build_filename (spool_folder, "runners", file, NULL);
}

char *
sc_owner_make_name (void)
{
	char host[64] = "";

	if (gethostname (host, sizeof host - 1) != 0)
		g_strlcpy (host, "localhost", sizeof host);
	g_strcanon (host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", '-');
	return g_strdup_printf ("%s-%d-%08x", host, (int) getpid (), g_random_int ());
}

ScOwner *
sc_owner_new_named (const char *name)
{
	ScOwner *owner = g_new0 (ScOwner, 1);

	owner->fd = -1;
	owner->name = g_strdup (name);
	return owner;
}

ScOwner *
sc_owner_register (const char *spool_folder, GError **error)
{
	g_autoptr(ScOwner) owner = g_new0 (ScOwner, 1);
	g_autofree char *dir = g_build_filename (spool_folder, "runners", NULL);

	owner->fd = -1;
	owner->name = sc_owner_make_name ();
	if (g_mkdir_with_parents (dir, 0750) != 0) {
		int saved_errno = errno;
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("cannot create %s: %s"), dir, g_strerror (saved_errno));
		return NULL;
	}
	owner->lock_path = lock_path_for (spool_folder, owner->name);
	owner->fd = g_open (owner->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (owner->fd < 0 || flock (owner->fd, LOCK_EX | LOCK_NB) != 0) {
		int saved_errno = errno;
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("cannot lock %s: %s"), owner->lock_path, g_strerror (saved_errno));
		return NULL;
	}
	if (!write_header (owner->fd)) {
		int saved_errno = errno;
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("cannot write %s: %s"), owner->lock_path, g_strerror (saved_errno));
		return NULL;
	}
	return g_steal_pointer (&owner);
}

const char *
sc_owner_get_name (ScOwner *owner)
{
	return owner->name;
}

void
sc_owner_free (ScOwner *owner)
{
	if (owner == NULL)
		return;
	if (owner->mark_destroy != NULL)
		owner->mark_destroy (owner->mark_data);
	if (owner->fd >= 0) {
		(void) g_unlink (owner->lock_path);
		close (owner->fd);
	}
	g_free (owner->name);
	g_free (owner->lock_path);
	g_free (owner);
}

void
sc_owner_set_mark_func (ScOwner *owner, ScOwnerMarkFunc func, gpointer data, GDestroyNotify destroy)
{
	g_return_if_fail (owner->mark_func == NULL && owner->mark_destroy == NULL);
	owner->mark_func = func;
	owner->mark_data = data;
	owner->mark_destroy = destroy;
}

gboolean
sc_owner_is_alive (const char *spool_folder, const char *name)
{
	g_autofree char *path = NULL;
	int fd;
	gboolean alive;

	if (strchr (name, '/') != NULL)
		return FALSE;
	path = lock_path_for (spool_folder, name);
	fd = g_open (path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return FALSE; /* no lock file: its runner is gone */
	alive = flock (fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close (fd);
	return alive;
}

void
sc_owner_forget (const char *spool_folder, const char *name)
{
	g_autofree char *path = NULL;

	if (strchr (name, '/') != NULL || sc_owner_is_alive (spool_folder, name))
		return;
	path = lock_path_for (spool_folder, name);
	(void) g_unlink (path); /* a dead runner's leftover */
}

void
sc_owner_mark_in_handler (ScOwner *owner, guint slot, gint64 id, gint64 generation, guint stage)
{
	gint64 record[4] = {id, id != 0 ? generation : 0, id != 0 ? (gint64) stage + 1 : 0, 0};

	if (owner->mark_func != NULL) {
		owner->mark_func (slot, id, record[1], stage, owner->mark_data);
		return;
	}
	if (owner->fd < 0)
		return; /* a folderless runner (sc_owner_new_named) without a mark function */
	if (pwrite (owner->fd, record, SLOT_SIZE, (off_t) (slot + 1) * SLOT_SIZE) != (ssize_t) SLOT_SIZE)
		g_debug ("cannot record slot %u in %s: %s", slot, owner->lock_path, g_strerror (errno));
}

GHashTable *
sc_owner_read_in_handler (const char *spool_folder, const char *name)
{
	GHashTable *running = sc_owner_marks_new ();
	g_autofree char *path = NULL;
	g_autofree char *contents = NULL;
	gsize length = 0;
	gint64 first = 0;

	if (strchr (name, '/') != NULL)
		return running;
	path = lock_path_for (spool_folder, name);
	if (!g_file_get_contents (path, &contents, &length, NULL))
		return running;
	if (length >= sizeof first)
		memcpy (&first, contents, sizeof first);
	if (first != MARKS_MAGIC) {
		for (gsize offset = 0; offset + OLD_SLOT_SIZE <= length; offset += OLD_SLOT_SIZE) {
			gint64 record[2];
			memcpy (record, contents + offset, OLD_SLOT_SIZE);
			if (record[0] != 0)
				sc_owner_marks_add (running, record[0], record[1], SC_OWNER_STAGE_UNKNOWN);
		}
		return running;
	}
	for (gsize offset = SLOT_SIZE; offset + SLOT_SIZE <= length; offset += SLOT_SIZE) {
		gint64 record[4];
		memcpy (record, contents + offset, SLOT_SIZE);
		if (record[0] != 0)
			sc_owner_marks_add (running, record[0], record[1],
					    record[2] > 0 && record[2] <= G_MAXINT ? (gint) (record[2] - 1)
										    : SC_OWNER_STAGE_UNKNOWN);
	}
	return running;
}

static char *
marks_key (gint64 id, gint64 generation)
{
	return g_strdup_printf ("%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT, id, generation);
}

GHashTable *
sc_owner_marks_new (void)
{
	return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

void
sc_owner_marks_add (GHashTable *marks, gint64 id, gint64 generation, gint stage)
{
	g_hash_table_insert (marks, marks_key (id, generation), GINT_TO_POINTER (stage));
}

gboolean
sc_owner_marks_find (GHashTable *marks, gint64 id, gint64 generation, gint *out_stage)
{
	g_autofree char *key = marks_key (id, generation);
	gpointer stage = NULL;

	if (!g_hash_table_lookup_extended (marks, key, NULL, &stage))
		return FALSE;
	if (out_stage != NULL)
		*out_stage = GPOINTER_TO_INT (stage);
	return TRUE;
}
