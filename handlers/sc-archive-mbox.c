/* sc-archive-mbox.c — archive backend appending each message to one mbox file.
 *
 * mbox:PATH appends one mboxrd entry per message, under a lock:
 *
 *	From sender@example.org Mon Nov 23 12:00:00 2026
 *	X-Stagecoach-Queue-Id: 0123456789abcdef
 *	X-Stagecoach-Length: 4711
 *	…the message: LF line ends, lines matching ^>*From  get one more '>'…
 *	(an empty line)
 *
 * X-Stagecoach-Length counts the bytes after its own line through the
 * empty line, which tells a whole entry from one a crash cut short.  The
 * lock is an fcntl lock (the open-file-description kind, so that two of our
 * own threads exclude each other too; it conflicts with the POSIX locks of
 * mutt, procmail or Dovecot), held until the entry is fsynced and indexed.
 *
 * Idempotency without reading the archive for every message.  Scanning the
 * whole file would make each message cost as much as the archive is large;
 * checking only the tail is not enough, since other workers or lists sharing
 * the file append between a crash and its rerun.  So PATH.idx, a small
 * SQLite index, maps queue ids to entry offsets and records how much of the
 * file (device, inode, size) it has seen.  Under the lock:
 *   1. a different file (new inode: rotated) or one shorter than seen
 *      (rewritten) empties the index;
 *   2. bytes past what the index has seen — an entry whose index commit a
 *      crash lost, another program's appends, a new index — are scanned;
 *   3. a queue id found is done; else the entry is appended and fsynced,
 *      then indexed, and the index transaction commits.
 * The mbox is the truth and the index a cache of it: a lost or corrupt index
 * is rebuilt by one scan, and an index write that fails after the append is
 * repaired by step 2 of the next message.  A message costs one B-tree lookup
 * and one small commit however large the archive grows.
 *
 * Must never: append without the lock; leave a partial entry behind after a
 * write failure it saw (it truncates back); trust an X-Stagecoach-Queue-Id
 * anywhere but on the line after a From_ line (a sender can put any header
 * in a message); or cut an entry it did not just write itself.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sc-archive-private.h"
#include "sc-i18n.h"

#define SC_ARCHIVE_MBOX_FILE_MODE 0660
#define SC_ARCHIVE_MBOX_DIR_MODE 0770
/* how long to wait for a mail reader that holds the lock */
#define SC_ARCHIVE_MBOX_LOCK_WAIT (30 * G_USEC_PER_SEC)
#define SC_ARCHIVE_MBOX_BUSY_TIMEOUT_MS 10000
#define SC_ARCHIVE_MBOX_QUEUE_ID_HEADER "X-Stagecoach-Queue-Id: "
#define SC_ARCHIVE_MBOX_LENGTH_HEADER "X-Stagecoach-Length: "

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

static const char *const mbox_schemes[] = {"mbox", NULL};

typedef struct {
	const char *path;
	char *index_path;  /* (owned) PATH.idx */
	int fd;            /* (owned) the mbox, or -1; locked once opened */
	struct stat info;  /* of fd, kept current after each write */
	sqlite3 *db;       /* (owned) (nullable) the index, inside BEGIN IMMEDIATE */
	gboolean corrupt;  /* the last index error says the file is damaged */
} ScArchiveMbox;

static void
sc_archive_mbox_close_index (ScArchiveMbox *mbox)
{
	if (mbox->db == NULL)
		return;
	if (!sqlite3_get_autocommit (mbox->db))
		(void) sqlite3_exec (mbox->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close (mbox->db);
	mbox->db = NULL;
}

static void
sc_archive_mbox_clear (ScArchiveMbox *mbox)
{
	sc_archive_mbox_close_index (mbox);
	g_clear_pointer (&mbox->index_path, g_free);
	if (mbox->fd != -1) {
		close (mbox->fd); /* releases the lock */
		mbox->fd = -1;
	}
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ScArchiveMbox, sc_archive_mbox_clear)

static gboolean
sc_archive_mbox_index_error (ScArchiveMbox *mbox, GError **error)
{
	int code = mbox->db != NULL ? sqlite3_errcode (mbox->db) : SQLITE_NOMEM;

	mbox->corrupt = code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
	/* the index is rebuilt from the mbox, so nothing here is permanent */
	g_set_error (error,
		     SC_STAGE_ERROR,
		     SC_STAGE_ERROR_TRANSIENT,
		     _("index %s: %s"),
		     mbox->index_path,
		     mbox->db != NULL ? sqlite3_errmsg (mbox->db) : sqlite3_errstr (code));
	return FALSE;
}

static gboolean
sc_archive_mbox_exec (ScArchiveMbox *mbox, const char *sql, GError **error)
{
	if (sqlite3_exec (mbox->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sc_archive_mbox_index_error (mbox, error);
	return TRUE;
}

static sqlite3_stmt *
sc_archive_mbox_prepare (ScArchiveMbox *mbox, const char *sql, GError **error)
{
	sqlite3_stmt *statement = NULL;

	if (sqlite3_prepare_v2 (mbox->db, sql, -1, &statement, NULL) != SQLITE_OK) {
		sc_archive_mbox_index_error (mbox, error);
		return NULL;
	}
	return statement;
}

/* Binds by name, as Fossil's paramIdx(): a misspelt name is a bug, loudly. */
static void
sc_archive_mbox_bind_int64 (sqlite3_stmt *statement, const char *name, gint64 value)
{
	int index = sqlite3_bind_parameter_index (statement, name);

	g_return_if_fail (index > 0);
	sqlite3_bind_int64 (statement, index, value);
}

static void
sc_archive_mbox_bind_text (sqlite3_stmt *statement, const char *name, const char *value)
{
	int index = sqlite3_bind_parameter_index (statement, name);

	g_return_if_fail (index > 0);
	sqlite3_bind_text (statement, index, value, -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
static gboolean
sc_archive_mbox_step_done (ScArchiveMbox *mbox, sqlite3_stmt *statement, GError **error)
{
	if (sqlite3_step (statement) != SQLITE_DONE)
		return sc_archive_mbox_index_error (mbox, error);
	return TRUE;
}

static gboolean
sc_archive_mbox_open_index (ScArchiveMbox *mbox, GError **error)
{
	int rc = sqlite3_open_v2 (mbox->index_path,
				  &mbox->db,
				  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
				  NULL);
	if (rc != SQLITE_OK)
		return sc_archive_mbox_index_error (mbox, error);
	sqlite3_busy_timeout (mbox->db, SC_ARCHIVE_MBOX_BUSY_TIMEOUT_MS);
	/* No fsync: the index only ever records entries already fsynced in the
	 * mbox, so a power cut can only make it older (the scan catches up) or
	 * damaged (it is rebuilt); a crashed process loses nothing either way.
	 * This halves the cost of a message. */
	return sc_archive_mbox_exec (mbox,
				     "PRAGMA synchronous = OFF;"
				     "BEGIN IMMEDIATE;"
				     "CREATE TABLE IF NOT EXISTS seen ("
				     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
				     "  device INTEGER NOT NULL,"
				     "  inode INTEGER NOT NULL,"
				     "  size INTEGER NOT NULL);"
				     "CREATE TABLE IF NOT EXISTS entries ("
				     "  queue_id TEXT PRIMARY KEY,"
				     "  offset INTEGER NOT NULL) WITHOUT ROWID;",
				     error);
}

static gboolean
sc_archive_mbox_set_seen (ScArchiveMbox *mbox, GError **error)
{
	g_autoptr(sqlite3_stmt) statement = NULL;

	statement = sc_archive_mbox_prepare (mbox,
					     "INSERT OR REPLACE INTO seen (id, device, inode, size) "
					     "VALUES (1, :device, :inode, :size)",
					     error);
	if (statement == NULL)
		return FALSE;
	sc_archive_mbox_bind_int64 (statement, ":device", (gint64) mbox->info.st_dev);
	sc_archive_mbox_bind_int64 (statement, ":inode", (gint64) mbox->info.st_ino);
	sc_archive_mbox_bind_int64 (statement, ":size", (gint64) mbox->info.st_size);
	return sc_archive_mbox_step_done (mbox, statement, error);
}

static gboolean
sc_archive_mbox_add_entry (ScArchiveMbox *mbox,
			   const char *queue_id,
			   goffset offset,
			   GError **error)
{
	g_autoptr(sqlite3_stmt) statement = NULL;

	/* OR IGNORE: the first copy of a queue id is the one that counts */
	statement = sc_archive_mbox_prepare (mbox,
					     "INSERT OR IGNORE INTO entries (queue_id, offset) "
					     "VALUES (:queue_id, :offset)",
					     error);
	if (statement == NULL)
		return FALSE;
	sc_archive_mbox_bind_text (statement, ":queue_id", queue_id);
	sc_archive_mbox_bind_int64 (statement, ":offset", offset);
	return sc_archive_mbox_step_done (mbox, statement, error);
}

typedef enum {
	SC_ARCHIVE_MBOX_SCAN_OUTSIDE,  /* before the first From_ line */
	SC_ARCHIVE_MBOX_SCAN_FROM,     /* just read a From_ line */
	SC_ARCHIVE_MBOX_SCAN_QUEUE_ID, /* ours: read the queue id line */
	SC_ARCHIVE_MBOX_SCAN_BODY,     /* ours: inside the counted bytes */
	SC_ARCHIVE_MBOX_SCAN_FOREIGN,  /* an entry another program wrote */
} ScArchiveMboxScanState;

typedef struct {
	ScArchiveMboxScanState state;
	goffset start;  /* of the From_ line */
	goffset end;    /* where a whole entry ends, once its length is read */
	char *queue_id; /* (owned) (nullable) */
} ScArchiveMboxScan;

/* The entry in @scan ends where the next From_ line starts (or the file
 * ends), at @next: it is ours and whole if its counted bytes fit. */
static gboolean
sc_archive_mbox_scan_finish (ScArchiveMbox *mbox,
			     ScArchiveMboxScan *scan,
			     goffset next,
			     GError **error)
{
	if (scan->state == SC_ARCHIVE_MBOX_SCAN_BODY && next >= scan->end) {
		if (!sc_archive_mbox_add_entry (mbox, scan->queue_id, scan->start, error))
			return FALSE;
	} else if (scan->state == SC_ARCHIVE_MBOX_SCAN_QUEUE_ID ||
		   scan->state == SC_ARCHIVE_MBOX_SCAN_BODY) {
		g_warning ("mbox %s: the entry for %s at offset %" G_GINT64_FORMAT
			   " is incomplete (a crash during a write?); not counted as archived",
			   mbox->path,
			   scan->queue_id,
			   (gint64) scan->start);
	}
	g_clear_pointer (&scan->queue_id, g_free);
	scan->state = SC_ARCHIVE_MBOX_SCAN_OUTSIDE;
	return TRUE;
}

/* Indexes the entries from @from to the end of the file. */
static gboolean
sc_archive_mbox_scan (ScArchiveMbox *mbox, goffset from, GError **error)
{
	ScArchiveMboxScan scan = {SC_ARCHIVE_MBOX_SCAN_OUTSIDE, 0, 0, NULL};
	g_autofree char *line = NULL;
	size_t capacity = 0;
	ssize_t length;
	goffset offset = from;
	gboolean line_start = TRUE;
	gboolean ok = TRUE;
	FILE *stream;
	int fd;

	g_debug ("mbox %s: indexing from offset %" G_GINT64_FORMAT, mbox->path, (gint64) from);
	if (from > 0) {
		char before = '\n';
		if (pread (mbox->fd, &before, 1, from - 1) != 1) {
			sc_stage_error_set_errno (error, errno != 0 ? errno : EIO, _("failed to read"));
			return FALSE;
		}
		line_start = before == '\n';
	}
	fd = dup (mbox->fd);
	stream = fd != -1 ? fdopen (fd, "r") : NULL;
	if (stream == NULL || fseeko (stream, from, SEEK_SET) != 0) {
		int saved_errno = errno;
		if (stream != NULL)
			fclose (stream);
		else if (fd != -1)
			close (fd);
		sc_stage_error_set_errno (error, saved_errno, _("failed to read"));
		return FALSE;
	}
	while (ok && (length = getline (&line, &capacity, stream)) != -1) {
		if (!line_start) {
			/* the index saw up to the middle of a line: the file changed */
			line_start = TRUE;
		} else if (length >= 5 && memcmp (line, "From ", 5) == 0) {
			ok = sc_archive_mbox_scan_finish (mbox, &scan, offset, error);
			scan.state = SC_ARCHIVE_MBOX_SCAN_FROM;
			scan.start = offset;
		} else if (scan.state == SC_ARCHIVE_MBOX_SCAN_FROM) {
			if (g_str_has_prefix (line, SC_ARCHIVE_MBOX_QUEUE_ID_HEADER)) {
				const char *value = line + strlen (SC_ARCHIVE_MBOX_QUEUE_ID_HEADER);
				scan.queue_id = g_strstrip (g_strdup (value));
				scan.state = SC_ARCHIVE_MBOX_SCAN_QUEUE_ID;
			} else {
				scan.state = SC_ARCHIVE_MBOX_SCAN_FOREIGN;
			}
		} else if (scan.state == SC_ARCHIVE_MBOX_SCAN_QUEUE_ID) {
			guint64 counted = 0;
			if (g_str_has_prefix (line, SC_ARCHIVE_MBOX_LENGTH_HEADER) &&
			    g_ascii_string_to_unsigned (
				g_strstrip (line + strlen (SC_ARCHIVE_MBOX_LENGTH_HEADER)),
				10,
				0,
				G_MAXINT64,
				&counted,
				NULL)) {
				scan.end = offset + length + (goffset) counted;
				scan.state = SC_ARCHIVE_MBOX_SCAN_BODY;
			} else {
				g_clear_pointer (&scan.queue_id, g_free);
				scan.state = SC_ARCHIVE_MBOX_SCAN_FOREIGN;
			}
		}
		offset += length;
	}
	if (ok && ferror (stream)) {
		sc_stage_error_set_errno (error, errno != 0 ? errno : EIO, _("failed to read"));
		ok = FALSE;
	}
	fclose (stream);
	if (ok)
		ok = sc_archive_mbox_scan_finish (mbox, &scan, offset, error);
	g_free (scan.queue_id);
	return ok;
}

/* Steps 1 and 2: brings the index up to date with the file. */
static gboolean
sc_archive_mbox_sync_index (ScArchiveMbox *mbox, GError **error)
{
	g_autoptr(sqlite3_stmt) statement = NULL;
	goffset seen = 0;
	int rc;

	statement =
	    sc_archive_mbox_prepare (mbox, "SELECT device, inode, size FROM seen WHERE id = 1", error);
	if (statement == NULL)
		return FALSE;
	rc = sqlite3_step (statement);
	if (rc == SQLITE_ROW) {
		if ((dev_t) sqlite3_column_int64 (statement, 0) == mbox->info.st_dev &&
		    (ino_t) sqlite3_column_int64 (statement, 1) == mbox->info.st_ino &&
		    sqlite3_column_int64 (statement, 2) <= mbox->info.st_size) {
			seen = sqlite3_column_int64 (statement, 2);
		} else {
			g_info ("mbox %s was replaced or rewritten; rebuilding %s",
				mbox->path,
				mbox->index_path);
			if (!sc_archive_mbox_exec (mbox, "DELETE FROM entries", error))
				return FALSE;
		}
	} else if (rc != SQLITE_DONE) {
		return sc_archive_mbox_index_error (mbox, error);
	}
	if (seen == mbox->info.st_size)
		return TRUE;
	if (!sc_archive_mbox_scan (mbox, seen, error))
		return FALSE;
	return sc_archive_mbox_set_seen (mbox, error);
}

static gboolean
sc_archive_mbox_index_has (ScArchiveMbox *mbox,
			   const char *queue_id,
			   gboolean *out_found,
			   GError **error)
{
	g_autoptr(sqlite3_stmt) statement = NULL;
	int rc;

	statement = sc_archive_mbox_prepare (mbox,
					     "SELECT offset FROM entries WHERE queue_id = :queue_id",
					     error);
	if (statement == NULL)
		return FALSE;
	sc_archive_mbox_bind_text (statement, ":queue_id", queue_id);
	rc = sqlite3_step (statement);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sc_archive_mbox_index_error (mbox, error);
	*out_found = rc == SQLITE_ROW;
	return TRUE;
}

/* Opens the index, syncs it and looks @queue_id up; a damaged index is
 * deleted and rebuilt once. */
static gboolean
sc_archive_mbox_lookup (ScArchiveMbox *mbox,
			const char *queue_id,
			gboolean *out_found,
			GError **error)
{
	for (guint attempt = 0;; attempt++) {
		g_autoptr(GError) error_local = NULL;
		g_autofree char *journal = NULL;

		if (sc_archive_mbox_open_index (mbox, &error_local) &&
		    sc_archive_mbox_sync_index (mbox, &error_local) &&
		    sc_archive_mbox_index_has (mbox, queue_id, out_found, &error_local))
			return TRUE;
		if (!mbox->corrupt || attempt > 0) {
			g_propagate_error (error, g_steal_pointer (&error_local));
			return FALSE;
		}
		g_warning ("mbox %s: deleting the damaged index: %s",
			   mbox->path,
			   error_local->message);
		sc_archive_mbox_close_index (mbox);
		journal = g_strconcat (mbox->index_path, "-journal", NULL);
		(void) unlink (mbox->index_path);
		(void) unlink (journal);
		mbox->corrupt = FALSE;
	}
}

static gboolean
sc_archive_mbox_open (ScArchiveMbox *mbox, gboolean *out_created, GError **error)
{
	g_autofree char *folder = g_path_get_dirname (mbox->path);

	if (g_mkdir_with_parents (folder, SC_ARCHIVE_MBOX_DIR_MODE) == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to create %s"), folder);
		return FALSE;
	}
	mbox->fd = open (mbox->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (mbox->fd == -1 && errno == ENOENT) {
		mbox->fd = open (mbox->path,
				 O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
				 SC_ARCHIVE_MBOX_FILE_MODE);
		if (mbox->fd != -1)
			*out_created = TRUE;
		else if (errno == EEXIST)
			mbox->fd = open (mbox->path, O_RDWR | O_APPEND | O_CLOEXEC);
	}
	if (mbox->fd == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to open"));
		return FALSE;
	}
	return TRUE;
}

static gboolean
sc_archive_mbox_lock (ScArchiveMbox *mbox, GCancellable *cancellable, GError **error)
{
	struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	gint64 deadline = g_get_monotonic_time () + SC_ARCHIVE_MBOX_LOCK_WAIT;

	/* polled, not F_OFD_SETLKW: a reader that never lets go must not hang
	 * a worker, and shutdown must not wait for it */
	while (fcntl (mbox->fd, F_OFD_SETLK, &lock) == -1) {
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			sc_stage_error_set_errno (error, errno, _("failed to lock"));
			return FALSE;
		}
		if (g_cancellable_is_cancelled (cancellable)) {
			g_set_error_literal (error,
					     SC_STAGE_ERROR,
					     SC_STAGE_ERROR_TRANSIENT,
					     _("cancelled while waiting for the lock"));
			return FALSE;
		}
		if (g_get_monotonic_time () > deadline) {
			g_set_error (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("locked by another program for more than %d seconds"),
				     (int) (SC_ARCHIVE_MBOX_LOCK_WAIT / G_USEC_PER_SEC));
			return FALSE;
		}
		g_usleep (50 * 1000);
	}
	if (fstat (mbox->fd, &mbox->info) == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to read"));
		return FALSE;
	}
	if (!S_ISREG (mbox->info.st_mode)) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("not a regular file"));
		return FALSE;
	}
	return TRUE;
}

/* asctime()'s form in UTC, with English names whatever the locale, as mbox
 * readers parse it: "Mon Nov 23 09:05:00 2026". (transfer full) */
static char *
sc_archive_mbox_date (gint64 now)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] =
	    {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t seconds = (time_t) (now / G_USEC_PER_SEC);
	struct tm tm;

	if (gmtime_r (&seconds, &tm) == NULL)
		return g_strdup ("Thu Jan  1 00:00:00 1970");
	return g_strdup_printf ("%s %s %2d %02d:%02d:%02d %d",
				days[tm.tm_wday],
				months[tm.tm_mon],
				tm.tm_mday,
				tm.tm_hour,
				tm.tm_min,
				tm.tm_sec,
				tm.tm_year + 1900);
}

/* The From_ line's address: one word, MAILER-DAEMON for the null sender. */
static char *
sc_archive_mbox_sender (const char *sender)
{
	char *word;

	if (sender == NULL || *sender == '\0')
		return g_strdup ("MAILER-DAEMON");
	word = sc_archive_sanitize_line (sender, strlen (sender), 512);
	g_strdelimit (word, " ", '_');
	return word;
}

/* Step 3: appends the entry and fsyncs it; on a failure it saw, cuts the
 * file back to where it was.  @out_offset: where the From_ line starts. */
static gboolean
sc_archive_mbox_append (ScArchiveMbox *mbox,
			ScStageContext *context,
			const char *queue_id,
			goffset *out_offset,
			GError **error)
{
	goffset size = mbox->info.st_size;
	gint64 now = context->clock != NULL ? sc_clock_now (context->clock) : g_get_real_time ();
	g_autofree char *sender = sc_archive_mbox_sender (context->sender);
	g_autofree char *date = sc_archive_mbox_date (now);
	const char *separator = "";
	gsize counted = 0;
	FILE *stream;
	int fd;

	/* an entry starts after an empty line, whoever wrote the one before */
	if (size > 0) {
		char tail[2] = {0, 0};
		gsize want = size >= 2 ? 2 : 1;
		if (pread (mbox->fd, tail + 2 - want, want, size - want) != (ssize_t) want) {
			sc_stage_error_set_errno (error, errno != 0 ? errno : EIO, _("failed to read"));
			return FALSE;
		}
		if (tail[1] != '\n')
			separator = "\n\n";
		else if (size >= 2 && tail[0] != '\n')
			separator = "\n";
	}
	(void) sc_archive_write_local (NULL, context->current, TRUE, &counted);

	fd = dup (mbox->fd);
	stream = fd != -1 ? fdopen (fd, "a") : NULL;
	if (stream == NULL) {
		int saved_errno = errno;
		if (fd != -1)
			close (fd);
		sc_stage_error_set_errno (error, saved_errno, _("failed to append"));
		return FALSE;
	}
	errno = 0;
	if (fprintf (stream,
		     "%sFrom %s %s\n" SC_ARCHIVE_MBOX_QUEUE_ID_HEADER
		     "%s\n" SC_ARCHIVE_MBOX_LENGTH_HEADER "%" G_GSIZE_FORMAT "\n",
		     separator,
		     sender,
		     date,
		     queue_id,
		     counted + 1) < 0 ||
	    !sc_archive_write_local (stream, context->current, TRUE, NULL) ||
	    fputc ('\n', stream) == EOF || fflush (stream) == EOF || ferror (stream) ||
	    fsync (mbox->fd) == -1) {
		int saved_errno = errno != 0 ? errno : EIO;
		fclose (stream);
		if (ftruncate (mbox->fd, size) == -1 || fsync (mbox->fd) == -1)
			g_warning ("mbox %s: failed to cut a failed append back to %" G_GINT64_FORMAT
				   " bytes: %s",
				   mbox->path,
				   (gint64) size,
				   g_strerror (errno));
		sc_stage_error_set_errno (error, saved_errno, _("failed to append"));
		return FALSE;
	}
	if (fclose (stream) == EOF || fstat (mbox->fd, &mbox->info) == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to append"));
		return FALSE;
	}
	*out_offset = size + (goffset) strlen (separator);
	return TRUE;
}

static gboolean
sc_archive_mbox_store (const char *path, ScStageContext *context, GError **error)
{
	g_auto(ScArchiveMbox) mbox = {.path = path, .fd = -1};
	g_autofree char *queue_id =
	    sc_archive_sanitize_line (context->queue_id, strlen (context->queue_id), 256);
	g_autoptr(GError) error_local = NULL;
	gboolean created = FALSE;
	gboolean found = FALSE;
	goffset offset = 0;

	mbox.index_path = g_strconcat (path, ".idx", NULL);
	if (!sc_archive_mbox_open (&mbox, &created, error))
		return FALSE;
	if (!sc_archive_mbox_lock (&mbox, context->cancellable, error))
		return FALSE;
	if (!sc_archive_mbox_lookup (&mbox, queue_id, &found, error))
		return FALSE;
	if (found) {
		g_debug ("%s: already in mbox %s", context->queue_id, path);
		context->note = g_strdup ("already archived");
		if (!sc_archive_mbox_exec (&mbox, "COMMIT", &error_local))
			g_warning ("mbox %s: %s", path, error_local->message);
		return TRUE;
	}
	if (!sc_archive_mbox_append (&mbox, context, queue_id, &offset, error))
		return FALSE;
	/* the entry is on disk: from here on, failures only cost a later scan */
	if (!sc_archive_mbox_add_entry (&mbox, queue_id, offset, &error_local) ||
	    !sc_archive_mbox_set_seen (&mbox, &error_local) ||
	    !sc_archive_mbox_exec (&mbox, "COMMIT", &error_local))
		g_warning ("mbox %s: the index missed an entry, the next message repairs it: %s",
			   path,
			   error_local->message);
	if (created) {
		g_autofree char *folder = g_path_get_dirname (path);
		return sc_archive_fsync_directory (folder, error);
	}
	return TRUE;
}

static gboolean
sc_archive_mbox_check (const char *location, GError **error)
{
	return sc_archive_check_local_path (location, error);
}

const ScArchiveBackend sc_archive_backend_mbox = {
    .name = "mbox",
    .schemes = mbox_schemes,
    .location_is_url = FALSE,
    .check = sc_archive_mbox_check,
    .store = sc_archive_mbox_store,
};
