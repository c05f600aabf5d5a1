/* sc-archive-maildir.c — archive backend writing one file per message into a Maildir.
 *
 * maildir:PATH creates PATH/{tmp,new,cur} when missing, writes the message
 * to tmp/, flushes and fsyncs it, renames it into new/ and fsyncs new/, as
 * OpenSMTPD's mail.maildir.c (plus the directory sync, without which the
 * rename itself may not survive a power loss).  Any failure is transient:
 * a full disk or a wrong permission is for an operator to fix.
 *
 * The file name is a pure function of the queue id, "<queue id>.stagecoach",
 * so a rerun after a crash finds the first copy — in new/, or in cur/ where
 * a mail reader may have moved it, with ":2,FLAGS" appended — and writes
 * nothing.  new/ is one lookup, but the flags in cur/ cannot be guessed
 * (":2,S", ":2,RS", Dovecot keywords …), so cur/ must be read whole: about
 * 30 ms per message at 100,000 messages, measured on the reference box.
 * Only a rerun needs that, and the runner says which runs are reruns:
 * context->previous_attempts counts every earlier try of this stage for
 * this message, crashes included, so 0 means no copy can exist anywhere
 * and neither folder is searched.
 *
 * Must never: leave a partial file in new/ (readers take everything there
 * as complete), or name a file after anything but the queue id.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc-archive-private.h"
#include "sc-i18n.h"

/* Group access, no world: an archive is read by the list's archiver, which
 * often runs as another user of the same group; the umask applies on top. */
#define SC_ARCHIVE_MAILDIR_DIR_MODE 0770
#define SC_ARCHIVE_MAILDIR_FILE_MODE 0660

static const char *const maildir_schemes[] = {"maildir", NULL};

/* Maildir names must not hold '/' (a path) or ':' (starts the flags), and a
 * leading '.' would hide the file; anything but [A-Za-z0-9_-] is written as
 * =XX, which keeps the mapping one to one. (transfer full) */
static char *
sc_archive_maildir_name (const char *queue_id)
{
	GString *name = g_string_new (NULL);

	for (const char *cursor = queue_id; *cursor != '\0'; cursor++) {
		if (g_ascii_isalnum (*cursor) || *cursor == '-' || *cursor == '_')
			g_string_append_c (name, *cursor);
		else
			g_string_append_printf (name, "=%02X", (guchar) *cursor);
	}
	g_string_append (name, ".stagecoach");
	return g_string_free (name, FALSE);
}

static gboolean
sc_archive_maildir_prepare (const char *path, GError **error)
{
	const char *const subdirs[] = {"tmp", "new", "cur"};
	gboolean created = FALSE;

	if (g_mkdir_with_parents (path, SC_ARCHIVE_MAILDIR_DIR_MODE) == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to create %s"), path);
		return FALSE;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (subdirs); i++) {
		g_autofree char *subdir = g_build_filename (path, subdirs[i], NULL);
		if (mkdir (subdir, SC_ARCHIVE_MAILDIR_DIR_MODE) == 0) {
			created = TRUE;
		} else if (errno != EEXIST) {
			sc_stage_error_set_errno (error, errno, _("failed to create %s/"), subdirs[i]);
			return FALSE;
		}
	}
	if (created)
		return sc_archive_fsync_directory (path, error);
	return TRUE;
}

/* Is @name already in new/, or (with @search_cur) in cur/?  new/ costs one
 * lookup and is always checked; cur/ is read whole. */
static gboolean
sc_archive_maildir_find (const char *path,
			 const char *name,
			 gboolean search_cur,
			 gboolean *out_found,
			 GError **error)
{
	g_autofree char *new_path = g_build_filename (path, "new", name, NULL);
	g_autofree char *cur = g_build_filename (path, "cur", NULL);
	gsize name_length = strlen (name);
	struct stat info;
	struct dirent *entry;
	DIR *directory;

	if (lstat (new_path, &info) == 0) {
		*out_found = TRUE;
		return TRUE;
	}
	if (errno != ENOENT) {
		sc_stage_error_set_errno (error, errno, _("failed to look for new/%s"), name);
		return FALSE;
	}
	*out_found = FALSE;
	if (!search_cur)
		return TRUE;
	directory = opendir (cur);
	if (directory == NULL) {
		sc_stage_error_set_errno (error, errno, _("failed to read cur/"));
		return FALSE;
	}
	errno = 0;
	while ((entry = readdir (directory)) != NULL) {
		char after;

		if (strncmp (entry->d_name, name, name_length) != 0)
			continue;
		/* ':' is the standard flag separator; ';' and '!' stand in for it
		 * on file systems that forbid ':' (Dovecot's maildir_info_separator) */
		after = entry->d_name[name_length];
		if (after == '\0' || after == ':' || after == ';' || after == '!') {
			*out_found = TRUE;
			closedir (directory);
			return TRUE;
		}
	}
	if (errno != 0) {
		int saved_errno = errno;
		closedir (directory);
		sc_stage_error_set_errno (error, saved_errno, _("failed to read cur/"));
		return FALSE;
	}
	closedir (directory);
	return TRUE;
}

static gboolean
sc_archive_maildir_write (const char *tmp_path, GBytes *message)
{
	FILE *stream;
	int fd;
	int saved_errno;

	fd = open (tmp_path,
		   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		   SC_ARCHIVE_MAILDIR_FILE_MODE);
	if (fd == -1)
		return FALSE;
	stream = fdopen (fd, "w");
	if (stream == NULL) {
		saved_errno = errno;
		close (fd);
		errno = saved_errno;
		return FALSE;
	}
	if (!sc_archive_write_local (stream, message, FALSE, NULL) || fflush (stream) == EOF ||
	    ferror (stream) || fsync (fd) == -1) {
		saved_errno = errno != 0 ? errno : EIO;
		fclose (stream);
		errno = saved_errno;
		return FALSE;
	}
	return fclose (stream) == 0;
}

static gboolean
sc_archive_maildir_store (const char *path, ScStageContext *context, GError **error)
{
	g_autofree char *name = sc_archive_maildir_name (context->queue_id);
	g_autofree char *tmp_path = g_build_filename (path, "tmp", name, NULL);
	g_autofree char *new_path = g_build_filename (path, "new", name, NULL);
	g_autofree char *new_dir = g_build_filename (path, "new", NULL);
	gboolean tried_before = context->previous_attempts > 0;
	gboolean found = FALSE;

	if (!sc_archive_maildir_prepare (path, error))
		return FALSE;
	if (tried_before && !sc_archive_maildir_find (path, name, TRUE, &found, error))
		return FALSE;
	if (found) {
		g_debug ("%s: already in maildir %s as %s", context->queue_id, path, name);
		context->note = g_strdup_printf ("already archived as %s", name);
		return TRUE;
	}
	/* a tmp/ file left by a crashed attempt is ours: O_TRUNC starts it over */
	if (!sc_archive_maildir_write (tmp_path, context->current)) {
		int saved_errno = errno;
		(void) unlink (tmp_path);
		sc_stage_error_set_errno (error, saved_errno, _("failed to write tmp/%s"), name);
		return FALSE;
	}
	if (rename (tmp_path, new_path) == -1) {
		int saved_errno = errno;
		(void) unlink (tmp_path);
		sc_stage_error_set_errno (error,
					  saved_errno,
					  _("failed to move tmp/%s into new/"),
					  name);
		return FALSE;
	}
	/* if this fails the file is in new/ and a rerun finds it there */
	return sc_archive_fsync_directory (new_dir, error);
}

static gboolean
sc_archive_maildir_check (const char *location, GError **error)
{
	return sc_archive_check_local_path (location, error);
}

const ScArchiveBackend sc_archive_backend_maildir = {
    .name = "maildir",
    .schemes = maildir_schemes,
    .location_is_url = FALSE,
    .check = sc_archive_maildir_check,
    .store = sc_archive_maildir_store,
};
