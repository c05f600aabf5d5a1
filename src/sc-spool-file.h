/* sc-spool-file.h — creating the spool's folder and database file. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The mode of spool.db, and through it of its WAL and SHM files. */
#define SC_SPOOL_FILE_MODE 0600

/* Creates @folder (0750, as needed) and, when it does not exist yet, the
 * empty database file @path with SC_SPOOL_FILE_MODE whatever the umask.
 * An existing file is left as it is (check-config warns when others can
 * read it).  Errors are SC_SPOOL_ERROR_TEMPORARY. */
gboolean sc_spool_file_create (const char *folder, const char *path, GError **error);

G_END_DECLS
