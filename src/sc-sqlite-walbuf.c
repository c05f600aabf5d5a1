/* sc-sqlite-walbuf.c — an SQLite VFS that gathers a transaction's WAL
 * frames into one write (sc-sqlite-walbuf.h).
 *
 * SQLite writes each WAL frame as two pwrite()s (its 24-byte header, then
 * the page): about ten per message the doors accept, and on this kind of
 * VM every syscall is dear (a third of the acceptor thread's time was in
 * pwrite).  This shim wraps the default VFS and keeps a WAL file's
 * consecutive writes in memory until something needs them on disk: a
 * sync (every synchronous=FULL commit syncs the WAL before it publishes
 * the frames in the wal-index), a read, a truncate, a size query, a
 * close, a non-consecutive write, or any shared-memory call (the
 * wal-index: readers learn of frames only from it).
 *
 * Only for connections that commit with synchronous=FULL: then every
 * commit's frames are written and synced before the wal-index names
 * them, and a failed write is the commit's error, as without the shim.
 * A shared-memory call finding frames still unwritten (a commit that did
 * not sync) writes them, and aborts if it cannot: its caller cannot be
 * told, and publishing frames that are not on disk would corrupt the
 * spool, while a crash there loses only the commit in progress (nothing
 * acknowledged). */
#include "config.h"

#include "sc-sqlite-walbuf.h"

#include <string.h>

#include <glib.h>
#include <sqlite3.h>

#define WALBUF_VFS_NAME "sc-walbuf"
/* a batch of messages is a few dozen frames; beyond this, write through */
#define WALBUF_LIMIT (4 * 1024 * 1024)

typedef struct WalbufFile WalbufFile;

struct WalbufFile {
	sqlite3_file base;
	sqlite3_file *real;       /* the default VFS's file, right after us */
	gboolean wal;             /* a -wal file: its writes are gathered */
	guint8 *data;             /* (owned) writes not yet on disk */
	gsize length;
	gsize capacity;
	sqlite3_int64 start;      /* file offset of data[0] */
};

static sqlite3_vfs *root;
static gint gathered_count; /* atomic (wraps): WAL writes SQLite asked for */
static gint made_count;     /* atomic (wraps): writes made for them */
static sqlite3_vfs walbuf_vfs;
/* the WAL file this thread has unwritten frames in (one connection, one
 * thread at a time: SQLite writes frames and then publishes them in the
 * same call) */
static __thread WalbufFile *pending_here;

/* The unix VFS writes at most 0x1ffff bytes of one xWrite (it masks the
 * count): larger ones come back short, as SQLITE_FULL.  Chunks of this
 * size are always written whole. */
#define WALBUF_CHUNK (64 * 1024)

static int
walbuf_flush (WalbufFile *f)
{
	int rc = SQLITE_OK;

	for (gsize done = 0; done < f->length && rc == SQLITE_OK; done += WALBUF_CHUNK) {
		rc = f->real->pMethods->xWrite (f->real, f->data + done, (int) MIN (WALBUF_CHUNK, f->length - done),
						f->start + (sqlite3_int64) done);
		g_atomic_int_inc (&made_count);
	}
	f->length = 0;
	if (pending_here == f)
		pending_here = NULL;
	return rc;
}

/* Before anything that could let someone see the frames. */
static void
flush_pending_here (void)
{
	if (pending_here != NULL && walbuf_flush (pending_here) != SQLITE_OK)
		g_error ("spool: cannot write WAL frames before publishing them; stopping rather than "
			 "corrupting the spool (the commit in progress was not acknowledged)");
}

static int
walbuf_close (sqlite3_file *file)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);
	int close_rc = f->real->pMethods->xClose (f->real);

	g_free (f->data);
	f->data = NULL;
	return rc != SQLITE_OK ? rc : close_rc;
}

static int
walbuf_read (sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead (f->real, buffer, amount, offset);
}

static int
walbuf_write (sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc;

	if (!f->wal)
		return f->real->pMethods->xWrite (f->real, buffer, amount, offset);
	if (f->length > 0 && offset == f->start + (sqlite3_int64) f->length &&
	    f->length + (gsize) amount <= WALBUF_LIMIT) {
		/* the next frame: gathered */
	} else {
		rc = walbuf_flush (f);
		if (rc != SQLITE_OK)
			return rc;
		if ((gsize) amount > WALBUF_LIMIT)
			return f->real->pMethods->xWrite (f->real, buffer, amount, offset);
		f->start = offset;
	}
	if (f->length + (gsize) amount > f->capacity) {
		f->capacity = MAX (f->capacity * 2, MAX (f->length + (gsize) amount, 64 * 1024));
		f->data = g_realloc (f->data, f->capacity);
	}
	memcpy (f->data + f->length, buffer, (gsize) amount);
	f->length += (gsize) amount;
	g_atomic_int_inc (&gathered_count);
	if (pending_here != NULL && pending_here != f)
		flush_pending_here ();
	pending_here = f;
	return SQLITE_OK;
}

static int
walbuf_truncate (sqlite3_file *file, sqlite3_int64 size)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate (f->real, size);
}

static int
walbuf_sync (sqlite3_file *file, int flags)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync (f->real, flags);
}

static int
walbuf_file_size (sqlite3_file *file, sqlite3_int64 *size)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize (f->real, size);
}

static int
walbuf_lock (sqlite3_file *file, int level)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xLock (f->real, level);
}

static int
walbuf_unlock (sqlite3_file *file, int level)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xUnlock (f->real, level);
}

static int
walbuf_check_reserved_lock (sqlite3_file *file, int *out)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xCheckReservedLock (f->real, out);
}

static int
walbuf_file_control (sqlite3_file *file, int op, void *argument)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	if (rc != SQLITE_OK)
		return rc;
	if (op == SQLITE_FCNTL_VFSNAME) {
		/* name the shim in front of the default VFS's own name */
		int rc_real = f->real->pMethods->xFileControl (f->real, op, argument);
		if (rc_real == SQLITE_OK) {
			char **name = argument;
			char *both = sqlite3_mprintf ("%s/%z", WALBUF_VFS_NAME, *name);
			*name = both;
		}
		return rc_real;
	}
	return f->real->pMethods->xFileControl (f->real, op, argument);
}

static int
walbuf_sector_size (sqlite3_file *file)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xSectorSize (f->real);
}

static int
walbuf_device_characteristics (sqlite3_file *file)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xDeviceCharacteristics (f->real);
}

/* The wal-index (shared memory) lives on the database file: each call
 * first writes this thread's gathered frames. */
static int
walbuf_shm_map (sqlite3_file *file, int page, int page_size, int extend, void volatile **out)
{
	WalbufFile *f = (WalbufFile *) file;
	flush_pending_here ();
	return f->real->pMethods->xShmMap (f->real, page, page_size, extend, out);
}

static int
walbuf_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{
	WalbufFile *f = (WalbufFile *) file;
	flush_pending_here ();
	return f->real->pMethods->xShmLock (f->real, offset, n, flags);
}

static void
walbuf_shm_barrier (sqlite3_file *file)
{
	WalbufFile *f = (WalbufFile *) file;
	flush_pending_here ();
	f->real->pMethods->xShmBarrier (f->real);
}

static int
walbuf_shm_unmap (sqlite3_file *file, int delete_flag)
{
	WalbufFile *f = (WalbufFile *) file;
	flush_pending_here ();
	return f->real->pMethods->xShmUnmap (f->real, delete_flag);
}

static int
walbuf_fetch (sqlite3_file *file, sqlite3_int64 offset, int amount, void **out)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc = walbuf_flush (f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch (f->real, offset, amount, out);
}

static int
walbuf_unfetch (sqlite3_file *file, sqlite3_int64 offset, void *pointer)
{
	WalbufFile *f = (WalbufFile *) file;
	return f->real->pMethods->xUnfetch (f->real, offset, pointer);
}

static const sqlite3_io_methods walbuf_methods = {
    .iVersion = 3,
    .xClose = walbuf_close,
    .xRead = walbuf_read,
    .xWrite = walbuf_write,
    .xTruncate = walbuf_truncate,
    .xSync = walbuf_sync,
    .xFileSize = walbuf_file_size,
    .xLock = walbuf_lock,
    .xUnlock = walbuf_unlock,
    .xCheckReservedLock = walbuf_check_reserved_lock,
    .xFileControl = walbuf_file_control,
    .xSectorSize = walbuf_sector_size,
    .xDeviceCharacteristics = walbuf_device_characteristics,
    .xShmMap = walbuf_shm_map,
    .xShmLock = walbuf_shm_lock,
    .xShmBarrier = walbuf_shm_barrier,
    .xShmUnmap = walbuf_shm_unmap,
    .xFetch = walbuf_fetch,
    .xUnfetch = walbuf_unfetch,
};

static int
walbuf_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	WalbufFile *f = (WalbufFile *) file;
	int rc;

	memset (f, 0, sizeof *f);
	f->real = (sqlite3_file *) &f[1];
	rc = root->xOpen (root, name, f->real, flags, out_flags);
	if (f->real->pMethods == NULL) {
		file->pMethods = NULL; /* nothing to close */
		return rc;
	}
	/* the shim's methods are version 3; the file below must have them */
	g_assert (f->real->pMethods->iVersion >= 3);
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	file->pMethods = &walbuf_methods;
	return rc;
}

static gpointer
register_vfs (gpointer data)
{
	root = sqlite3_vfs_find (NULL);
	g_assert (root != NULL);
	walbuf_vfs = *root;
	walbuf_vfs.zName = WALBUF_VFS_NAME;
	walbuf_vfs.szOsFile = (int) sizeof (WalbufFile) + root->szOsFile;
	walbuf_vfs.xOpen = walbuf_open;
	walbuf_vfs.pNext = NULL;
	if (sqlite3_vfs_register (&walbuf_vfs, 0) != SQLITE_OK)
		return NULL;
	return (gpointer) WALBUF_VFS_NAME;
}

void
sc_sqlite_walbuf_counts (guint *out_gathered, guint *out_made)
{
	*out_gathered = (guint) g_atomic_int_get (&gathered_count);
	*out_made = (guint) g_atomic_int_get (&made_count);
}

const char *
sc_sqlite_walbuf_vfs (void)
{
	static GOnce once = G_ONCE_INIT;

	return g_once (&once, register_vfs, NULL);
}
