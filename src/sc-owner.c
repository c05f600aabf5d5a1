/* sc-owner.c — runner lock files (see sc-owner.h). */
#include "config.h"

#include "sc-owner.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/file.h>
#include <unistd.h>

#include "sc-error.h"
#include "sc-i18n.h"

struct _ScOwner {
	char *name;
	char *lock_path;
	int fd;
};

static char *
lock_path_for (const char *spool_folder, const char *name)
{
	g_autofree char *file = g_strconcat (name, ".lock", NULL);
	return g_build_filename (spool_folder, "runners", file, NULL);
}

ScOwner *
sc_owner_register (const char *spool_folder, GError **error)
{
	g_autoptr(ScOwner) owner = g_new0 (ScOwner, 1);
	g_autofree char *dir = g_build_filename (spool_folder, "runners", NULL);
	char host[64] = "";

	owner->fd = -1;
	if (gethostname (host, sizeof host - 1) != 0)
		g_strlcpy (host, "localhost", sizeof host);
	g_strcanon (host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", '-');
	owner->name = g_strdup_printf ("%s-%d-%08x", host, (int) getpid (), g_random_int ());
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
	if (owner->fd >= 0) {
		(void) g_unlink (owner->lock_path);
		close (owner->fd);
	}
	g_free (owner->name);
	g_free (owner->lock_path);
	g_free (owner);
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
	if (!alive)
		(void) g_unlink (path); /* a dead runner's leftover */
	close (fd);
	return alive;
}
