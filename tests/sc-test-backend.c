/* sc-test-backend.c — see sc-test-backend.h. */
#include "config.h"

#include "sc-test-backend.h"
#include "sc-test-postgres.h"

#include <sqlite3.h>
#include <stdlib.h>
#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

static ScTestPostgres *server;   /* started on first use, stopped at exit */
static GHashTable *uris;         /* fixture dir → its database's URI */
static guint databases;

gboolean
sc_test_backend_is_postgresql (void)
{
	return g_strcmp0 (g_getenv ("SC_TEST_SPOOL_BACKEND"), "postgresql") == 0;
}

static void
stop_server (void)
{
	g_clear_pointer (&server, sc_test_postgres_stop);
	g_clear_pointer (&uris, g_hash_table_unref);
}

static gboolean
skip_all (const char *why)
{
	g_print ("1..0 # SKIP %s\n", why);
	return FALSE;
}

gboolean
sc_test_backend_init (void)
{
	g_autoptr(GError) error = NULL;

	if (!sc_test_backend_is_postgresql ())
		return TRUE;
#ifndef HAVE_PG_SPOOL
	return skip_all ("this build has no PostgreSQL spool (libpq not found)");
#endif
	if (!sc_test_postgres_available ())
		return skip_all (sc_test_postgres_why_unavailable ());
	server = sc_test_postgres_start (&error);
	if (server == NULL)
		g_error ("private PostgreSQL: %s", error->message);
	uris = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	atexit (stop_server);
	return TRUE;
}

char *
sc_test_backend_spool_lines (const char *dir)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *name = NULL;
	char *uri;

	if (!sc_test_backend_is_postgresql ())
		return g_strdup ("spool=spool\n");
	g_assert_nonnull (server); /* sc_test_backend_init () first */
	name = g_strdup_printf ("fixture%u", ++databases);
	if (!sc_test_postgres_create_database (server, name, &error))
		g_error ("CREATE DATABASE %s: %s", name, error->message);
	uri = sc_test_postgres_get_uri (server, name);
	g_hash_table_replace (uris, g_strdup (dir), uri);
	return g_strdup_printf ("spool=%s\nstate-dir=state\n", uri);
}

char *
sc_test_backend_spool_location (const char *dir)
{
	if (!sc_test_backend_is_postgresql ())
		return g_build_filename (dir, "spool", NULL);
	g_assert_nonnull (uris);
	return g_strdup (g_hash_table_lookup (uris, dir));
}

char *
sc_test_backend_state_dir (const char *dir)
{
	return g_build_filename (dir, sc_test_backend_is_postgresql () ? "state" : "spool", NULL);
}

/* ---- plain SQL on either backend ---- */

static char *
sqlite_query (const char *folder, const char *sql, gboolean want_row)
{
	g_autofree char *path = g_build_filename (folder, "spool.db", NULL);
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	char *value = NULL;
	int rc;

	g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
	sqlite3_busy_timeout (db, 10000);
	if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
		g_error ("%s: %s", sql, sqlite3_errmsg (db));
	rc = sqlite3_step (stmt);
	if (want_row) {
		g_assert_cmpint (rc, ==, SQLITE_ROW);
		value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
	} else if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		g_error ("%s: %s", sql, sqlite3_errmsg (db));
	}
	sqlite3_finalize (stmt);
	sqlite3_close (db);
	return value;
}

#ifdef HAVE_LIBPQ
/* One connection per spool, kept: a test that polls a count in a loop
 * must not open a session per look (that starved the main loop under
 * test, whose notifier then missed its receiver's timeouts). */
static GHashTable *connections; /* location → PGconn */

static void
close_connections (void)
{
	g_clear_pointer (&connections, g_hash_table_unref);
}

static PGconn *
pg_connection (const char *uri)
{
	PGconn *conn;

	if (connections == NULL) {
		connections = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) PQfinish);
		atexit (close_connections);
	}
	conn = g_hash_table_lookup (connections, uri);
	if (conn != NULL && PQstatus (conn) == CONNECTION_OK)
		return conn;
	conn = PQconnectdb (uri);
	if (PQstatus (conn) != CONNECTION_OK)
		g_error ("%s: %s", uri, PQerrorMessage (conn));
	g_hash_table_replace (connections, g_strdup (uri), conn);
	return conn;
}

static char *
pg_query (const char *uri, const char *sql, gboolean want_row)
{
	PGconn *conn = pg_connection (uri);
	PGresult *result = PQexec (conn, sql);
	char *value = NULL;

	if (PQresultStatus (result) != PGRES_TUPLES_OK && PQresultStatus (result) != PGRES_COMMAND_OK) {
		/* a connection the test's server restart or termination cut:
		 * once more on a new one */
		PQclear (result);
		PQreset (conn);
		result = PQexec (conn, sql);
	}
	if (PQresultStatus (result) != PGRES_TUPLES_OK && PQresultStatus (result) != PGRES_COMMAND_OK)
		g_error ("%s: %s", sql, PQerrorMessage (conn));
	if (want_row) {
		g_assert_cmpint (PQntuples (result), >=, 1);
		if (!PQgetisnull (result, 0, 0))
			value = g_strdup (PQgetvalue (result, 0, 0));
	}
	PQclear (result);
	return value;
}
#endif

static char *
query (const char *location, const char *sql, gboolean want_row)
{
	if (!sc_test_backend_is_postgresql ())
		return sqlite_query (location, sql, want_row);
#ifdef HAVE_LIBPQ
	return pg_query (location, sql, want_row);
#else
	g_assert_not_reached ();
#endif
}

gint64
sc_test_backend_query_int (const char *location, const char *sql)
{
	g_autofree char *text = query (location, sql, TRUE);

	g_assert_nonnull (text);
	return g_ascii_strtoll (text, NULL, 10);
}

char *
sc_test_backend_query_text (const char *location, const char *sql)
{
	return query (location, sql, TRUE);
}

void
sc_test_backend_exec (const char *location, const char *sql)
{
	g_free (query (location, sql, FALSE));
}
