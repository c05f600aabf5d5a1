/* sc-sqlite-walbuf.h — an SQLite VFS that writes a transaction's WAL
 * frames in one write instead of two per frame, for connections that
 * only commit with synchronous=FULL (the acceptor's). */
#pragma once

#include <glib.h>

/* The VFS's name for sqlite3_open_v2(), registered on first use. */
const char *sc_sqlite_walbuf_vfs (void);
/* Since start: WAL writes SQLite made through it, and the writes they
 * became (for the tests). */
void sc_sqlite_walbuf_counts (guint *out_gathered, guint *out_made);
