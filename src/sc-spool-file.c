/* sc-spool-file.c — the spool's folder and database file on disk.
 *
 * spool.db holds every message's bytes: it is created 0600 whatever the
 * umask, before SQLite opens it.  SQLite gives a database's WAL and SHM
 * files the mode of the database file, so they follow.  Not
 * group-readable: a WAL reader normally needs to write the SHM file too.
 */
#include "config.h"

#include "sc-spool-file.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc-error.h"
#include "sc-i18n.h"

gboolean
sc_spool_file_create (const char *folder, const char *path, GError **error)
{
	int fd;

	if (g_mkdir_with_parents (folder, 0750) != 0) {
		int saved_errno = errno;
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("spool %s: cannot create the folder: %s"), folder, g_strerror (saved_errno));
		return FALSE;
	}
	fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, SC_SPOOL_FILE_MODE);
	if (fd < 0) {
		int saved_errno = errno;
		if (saved_errno == EEXIST)
			return TRUE; /* there already, or another process just made it */
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("spool %s: cannot create %s: %s"), folder, path, g_strerror (saved_errno));
		return FALSE;
	}
	/* the umask only takes bits away; set exactly these */
	if (fchmod (fd, SC_SPOOL_FILE_MODE) != 0) {
		int saved_errno = errno;
		close (fd);
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("spool %s: cannot set the mode of %s: %s"), folder, path,
			     g_strerror (saved_errno));
		return FALSE;
	}
	close (fd);
	return TRUE;
}
