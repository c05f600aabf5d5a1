/* sc-test-postgres.h — a private PostgreSQL server on 127.0.0.1 and a unix
 * socket, in a fresh temporary folder, for the PostgreSQL spool tests. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScTestPostgres ScTestPostgres;

/* Whether server binaries (initdb, postgres) were found and libpq is linked.
 * Callers g_test_skip (sc_test_postgres_why_unavailable ()) when not. */
gboolean sc_test_postgres_available (void);
/* Why not, for g_test_skip(); NULL when available. */
const char *sc_test_postgres_why_unavailable (void);
/* The folder holding initdb and postgres: $SC_TEST_PG_BINDIR, else
 * `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin. */
const char *sc_test_postgres_get_bindir (void);
/* The binaries' major version (15 for Debian 12), 0 when unavailable. */
guint sc_test_postgres_get_major (void);

/* initdb (superuser "stagecoach", trust, UTF8, C locale) into a fresh
 * temporary folder and start postgres on a free 127.0.0.1 port and a unix
 * socket in that folder, fsync on; returns once it accepts connections.
 * As root, initdb and postgres run as the "postgres" user (else "nobody").
 * The server gets SIGQUIT if the calling thread dies, so start it from the
 * thread that lives as long as the test. */
ScTestPostgres *sc_test_postgres_start (GError **error);
guint16 sc_test_postgres_get_port (ScTestPostgres *pg);
/* The folder: data/, postgres.log and the unix socket. */
const char *sc_test_postgres_get_dir (ScTestPostgres *pg);
/* The postmaster's PID (changes on restart). */
GPid sc_test_postgres_get_pid (ScTestPostgres *pg);
/* "postgresql://stagecoach@127.0.0.1:PORT/DBNAME" (transfer full) */
char *sc_test_postgres_get_uri (ScTestPostgres *pg, const char *dbname);
/* "host=DIR port=PORT user=stagecoach dbname=DBNAME" over the unix socket
 * (transfer full) */
char *sc_test_postgres_get_conninfo (ScTestPostgres *pg, const char *dbname);
/* The server log so far, "" when there is none. (transfer full) */
char *sc_test_postgres_get_log (ScTestPostgres *pg);

/* CREATE DATABASE @name (a fresh one per fixture). */
gboolean sc_test_postgres_create_database (ScTestPostgres *pg, const char *name, GError **error);
/* pg_terminate_backend() for every backend connected to @dbname (with
 * @application_name, when not NULL), waiting up to 10 s for each to exit,
 * so that its session locks are gone on return.  Returns how many, or -1. */
int sc_test_postgres_terminate_backends (ScTestPostgres *pg, const char *dbname,
					 const char *application_name, GError **error);
/* Fast shutdown (clients disconnected, checkpoint) and start again on the
 * same port and folder. */
gboolean sc_test_postgres_restart (ScTestPostgres *pg, GError **error);
/* Immediate shutdown (SIGQUIT: no checkpoint, as after a crash) and start
 * again: what was committed must come back from the WAL. */
gboolean sc_test_postgres_restart_immediate (ScTestPostgres *pg, GError **error);
/* Stops the server by PID (SIGINT, then SIGQUIT, then SIGKILL), removes
 * the folder and frees @pg.  NULL is ignored. */
void sc_test_postgres_stop (ScTestPostgres *pg);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScTestPostgres, sc_test_postgres_stop)

G_END_DECLS
