/* test-postgres-harness.c — the private PostgreSQL server the PostgreSQL
 * spool tests stand on (tests/sc-test-postgres.c): it starts, runs 15 with
 * fsync on, gives each fixture its own database, has the claim and
 * liveness primitives the backend uses (FOR UPDATE SKIP LOCKED, session
 * advisory locks), kills connections, restarts without losing what was
 * committed, and stops without leaving a process or a folder behind.
 * Every case skips, saying why, when there are no server binaries. */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc-test-postgres.h"
#include "sc-test-util.h"

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>

typedef struct {
	ScTestPostgres *pg;
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	if (!sc_test_postgres_available ())
		return;
	fixture->pg = sc_test_postgres_start (&error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->pg);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->pg, sc_test_postgres_stop);
}

/* TRUE after g_test_skip() when there is no server to test. */
static gboolean
skipped (void)
{
	if (sc_test_postgres_available ())
		return FALSE;
	g_test_skip (sc_test_postgres_why_unavailable ());
	return TRUE;
}

static PGconn *
connect_conninfo (const char *conninfo)
{
	PGconn *conn = PQconnectdb (conninfo);

	if (PQstatus (conn) != CONNECTION_OK)
		g_error ("connecting to %s: %s", conninfo, PQerrorMessage (conn));
	return conn;
}

static PGconn *
connect_db (Fixture *fixture, const char *dbname)
{
	g_autofree char *conninfo = sc_test_postgres_get_conninfo (fixture->pg, dbname);

	return connect_conninfo (conninfo);
}

static void
exec_ok (PGconn *conn, const char *sql)
{
	PGresult *result = PQexec (conn, sql);
	ExecStatusType status = PQresultStatus (result);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
	PQclear (result);
}

/* The first column of each row, joined with ","; @param: (nullable) $1. */
static char *
query (PGconn *conn, const char *sql, const char *param)
{
	const char *const params[] = {param};
	PGresult *result =
	    PQexecParams (conn, sql, param != NULL ? 1 : 0, NULL, params, NULL, NULL, 0);
	GString *out = g_string_new (NULL);

	if (PQresultStatus (result) != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
	for (int row = 0; row < PQntuples (result); row++)
		g_string_append_printf (out, "%s%s", row > 0 ? "," : "",
					PQgetvalue (result, row, 0));
	PQclear (result);
	return g_string_free (out, FALSE);
}

/* The SQLSTATE of @sql's error, NULL when it succeeded. */
static char *
query_error (PGconn *conn, const char *sql)
{
	PGresult *result = PQexec (conn, sql);
	ExecStatusType status = PQresultStatus (result);
	char *sqlstate = NULL;

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		const char *field = PQresultErrorField (result, PG_DIAG_SQLSTATE);
		sqlstate = g_strdup (field != NULL ? field : "(none)");
	}
	PQclear (result);
	return sqlstate;
}

static void
test_start (Fixture *fixture, gconstpointer data)
{
	g_autofree char *uri = NULL;
	g_autofree char *expected = NULL;
	g_autofree char *version = NULL;
	g_autofree char *value = NULL;
	g_autofree char *proc = NULL;
	PGconn *tcp;
	PGconn *unix_socket;
	struct stat st;

	if (skipped ())
		return;
	/* over TCP, by URI */
	uri = sc_test_postgres_get_uri (fixture->pg, "postgres");
	g_assert_true (g_str_has_prefix (uri, "postgresql://stagecoach@127.0.0.1:"));
	tcp = connect_conninfo (uri);
	version = query (tcp, "SELECT version()", NULL);
	g_test_message ("%s", version);
	/* Debian 12's server; the version of the binaries the harness found */
	g_assert_cmpuint (sc_test_postgres_get_major (), >=, 15);
	expected = g_strdup_printf ("PostgreSQL %u.", sc_test_postgres_get_major ());
	g_assert_true (g_str_has_prefix (version, expected));
	value = query (tcp, "SELECT host(inet_server_addr())", NULL);
	g_assert_cmpstr (value, ==, "127.0.0.1");
	g_clear_pointer (&value, g_free);
	value = query (tcp, "SELECT current_user", NULL);
	g_assert_cmpstr (value, ==, "stagecoach");
	PQfinish (tcp);

	/* over the unix socket in the folder, by conninfo */
	unix_socket = connect_db (fixture, "postgres");
	g_assert_cmpstr (PQhost (unix_socket), ==, sc_test_postgres_get_dir (fixture->pg));
	g_clear_pointer (&value, g_free);
	value = query (unix_socket,
		       "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)"
		       " FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit',"
		       " 'max_connections', 'server_encoding', 'lc_collate', 'listen_addresses')",
		       NULL);
	g_assert_cmpstr (value, ==,
			 "fsync=on lc_collate=C listen_addresses=127.0.0.1 max_connections=50 "
			 "server_encoding=UTF8 synchronous_commit=on");
	PQfinish (unix_socket);

	/* never as root (initdb and postgres refuse to) */
	proc = g_strdup_printf ("/proc/%d", (int) sc_test_postgres_get_pid (fixture->pg));
	g_assert_cmpint (g_stat (proc, &st), ==, 0);
	g_assert_cmpuint (st.st_uid, !=, 0);
	if (geteuid () != 0)
		g_assert_cmpuint (st.st_uid, ==, geteuid ());
}

static void
test_databases (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *seen = NULL;
	g_autofree char *sqlstate = NULL;
	PGconn *a;
	PGconn *b;

	if (skipped ())
		return;
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "spool_a", &error));
	g_assert_no_error (error);
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "spool-b", &error));
	g_assert_no_error (error);
	/* a name taken: an error, not a crash */
	g_assert_false (sc_test_postgres_create_database (fixture->pg, "spool_a", &error));
	g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, "already exists"));

	a = connect_db (fixture, "spool_a");
	b = connect_db (fixture, "spool-b");
	exec_ok (a, "CREATE TABLE messages (id bigint PRIMARY KEY)");
	exec_ok (a, "INSERT INTO messages VALUES (1)");
	seen = query (a, "SELECT count(*) FROM messages", NULL);
	g_assert_cmpstr (seen, ==, "1");
	/* separate databases: b has no such table */
	sqlstate = query_error (b, "SELECT count(*) FROM messages");
	g_assert_cmpstr (sqlstate, ==, "42P01");
	PQfinish (a);
	PQfinish (b);
}

/* The claim the backend makes: a row locked by one transaction is skipped
 * by another, not waited for — and it really is locked (NOWAIT fails). */
static void
test_skip_locked (Fixture *fixture, gconstpointer data)
{
	static const char claim[] =
		"SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1"
		" FOR UPDATE SKIP LOCKED";
	g_autoptr(GError) error = NULL;
	g_autofree char *first = NULL;
	g_autofree char *second = NULL;
	g_autofree char *rest = NULL;
	g_autofree char *again = NULL;
	g_autofree char *sqlstate = NULL;
	PGconn *one;
	PGconn *two;

	if (skipped ())
		return;
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "claims", &error));
	g_assert_no_error (error);
	one = connect_db (fixture, "claims");
	two = connect_db (fixture, "claims");
	exec_ok (one, "CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL)");
	exec_ok (one, "INSERT INTO jobs VALUES (1, 'queued'), (2, 'queued'), (3, 'queued')");

	exec_ok (one, "BEGIN");
	first = query (one, claim, NULL);
	g_assert_cmpstr (first, ==, "1");
	exec_ok (two, "BEGIN");
	second = query (two, claim, NULL);
	g_assert_cmpstr (second, ==, "2");
	rest = query (two, "SELECT id FROM jobs ORDER BY id FOR UPDATE SKIP LOCKED", NULL);
	g_assert_cmpstr (rest, ==, "2,3");
	exec_ok (two, "ROLLBACK");
	/* without SKIP LOCKED the row held by one is refused at once */
	exec_ok (two, "BEGIN");
	sqlstate = query_error (two, "SELECT id FROM jobs WHERE id = 1 FOR UPDATE NOWAIT");
	g_assert_cmpstr (sqlstate, ==, "55P03");
	exec_ok (two, "ROLLBACK");

	/* once one commits its claim, two sees the next free row */
	exec_ok (one, "UPDATE jobs SET state = 'active' WHERE id = 1");
	exec_ok (one, "COMMIT");
	again = query (two, claim, NULL);
	g_assert_cmpstr (again, ==, "2");
	PQfinish (one);
	PQfinish (two);
}

/* Runner liveness: a session advisory lock is refused to others while its
 * holder lives and freed when sc_test_postgres_terminate_backends() kills
 * the holder's connection; connections to other databases are spared. */
static void
test_advisory_lock (Fixture *fixture, gconstpointer data)
{
	static const char try_lock[] = "SELECT pg_try_advisory_lock($1::bigint)";
	g_autoptr(GError) error = NULL;
	g_autofree char *held = NULL;
	g_autofree char *refused = NULL;
	g_autofree char *mine = NULL;
	g_autofree char *spared = NULL;
	PGconn *holder;
	PGconn *other;
	PGconn *elsewhere;
	PGconn *later;
	PGresult *result;
	int killed;

	if (skipped ())
		return;
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "live", &error));
	g_assert_no_error (error);
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "bystander", &error));
	g_assert_no_error (error);
	{
		g_autofree char *conninfo = sc_test_postgres_get_conninfo (fixture->pg, "live");
		g_autofree char *named = g_strconcat (conninfo, " application_name=runner-1", NULL);
		holder = connect_conninfo (named);
	}
	other = connect_db (fixture, "live");
	elsewhere = connect_db (fixture, "bystander");

	held = query (holder, try_lock, "42");
	g_assert_cmpstr (held, ==, "t");
	refused = query (other, try_lock, "42");
	g_assert_cmpstr (refused, ==, "f");

	/* a filter that matches nobody terminates nobody */
	killed = sc_test_postgres_terminate_backends (fixture->pg, "live", "no-such-runner",
						      &error);
	g_assert_no_error (error);
	g_assert_cmpint (killed, ==, 0);
	g_clear_pointer (&refused, g_free);
	refused = query (other, try_lock, "42");
	g_assert_cmpstr (refused, ==, "f");

	/* only the holder, by application_name */
	killed = sc_test_postgres_terminate_backends (fixture->pg, "live", "runner-1", &error);
	g_assert_no_error (error);
	g_assert_cmpint (killed, ==, 1);
	result = PQexec (holder, "SELECT 1");
	g_assert_cmpint (PQresultStatus (result), ==, PGRES_FATAL_ERROR);
	PQclear (result);
	g_assert_cmpint (PQstatus (holder), ==, CONNECTION_BAD);
	mine = query (other, try_lock, "42");
	g_assert_cmpstr (mine, ==, "t");

	/* every backend on the database; the other database's stays */
	killed = sc_test_postgres_terminate_backends (fixture->pg, "live", NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpint (killed, ==, 1);
	result = PQexec (other, "SELECT 1");
	g_assert_cmpint (PQresultStatus (result), ==, PGRES_FATAL_ERROR);
	PQclear (result);
	later = connect_db (fixture, "live");
	g_clear_pointer (&mine, g_free);
	mine = query (later, try_lock, "42");
	g_assert_cmpstr (mine, ==, "t");
	spared = query (elsewhere, "SELECT 1", NULL);
	g_assert_cmpstr (spared, ==, "1");

	PQfinish (holder);
	PQfinish (other);
	PQfinish (elsewhere);
	PQfinish (later);
}

static void
restart_keeps_data (Fixture *fixture, gboolean immediate)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *uri = sc_test_postgres_get_uri (fixture->pg, "kept");
	g_autofree char *rows = NULL;
	g_autofree char *before_dir = g_strdup (sc_test_postgres_get_dir (fixture->pg));
	guint16 before_port = sc_test_postgres_get_port (fixture->pg);
	GPid before_pid = sc_test_postgres_get_pid (fixture->pg);
	PGconn *old;
	PGconn *fresh;
	PGresult *result;

	g_assert_true (sc_test_postgres_create_database (fixture->pg, "kept", &error));
	g_assert_no_error (error);
	old = connect_db (fixture, "kept");
	exec_ok (old, "CREATE TABLE messages (id bigint PRIMARY KEY, body text)");
	exec_ok (old, "INSERT INTO messages VALUES (1, 'committed')");
	/* open, never committed: must not come back */
	exec_ok (old, "BEGIN");
	exec_ok (old, "INSERT INTO messages VALUES (2, 'in flight')");

	if (immediate)
		g_assert_true (sc_test_postgres_restart_immediate (fixture->pg, &error));
	else
		g_assert_true (sc_test_postgres_restart (fixture->pg, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (sc_test_postgres_get_port (fixture->pg), ==, before_port);
	g_assert_cmpstr (sc_test_postgres_get_dir (fixture->pg), ==, before_dir);
	g_assert_cmpint (sc_test_postgres_get_pid (fixture->pg), !=, before_pid);
	g_assert_cmpint (kill (before_pid, 0), ==, -1);

	/* the old connection is gone: an error, not a hang */
	result = PQexec (old, "COMMIT");
	g_assert_cmpint (PQresultStatus (result), ==, PGRES_FATAL_ERROR);
	g_test_message ("old connection: %s", PQresultErrorMessage (result));
	PQclear (result);
	/* (libpq may still say CONNECTION_OK here; it never reconnects) */
	result = PQexec (old, "SELECT 1");
	g_assert_cmpint (PQresultStatus (result), ==, PGRES_FATAL_ERROR);
	PQclear (result);
	PQfinish (old);

	/* a new one, over TCP on the same port, sees the committed row only */
	fresh = connect_conninfo (uri);
	rows = query (fresh, "SELECT id || ':' || body FROM messages ORDER BY id", NULL);
	g_assert_cmpstr (rows, ==, "1:committed");
	PQfinish (fresh);
	if (immediate) {
		g_autofree char *log = sc_test_postgres_get_log (fixture->pg);
		/* it did come back from the WAL, not from a shutdown checkpoint */
		g_assert_nonnull (strstr (log, "was not properly shut down"));
	}
}

static void
test_restart (Fixture *fixture, gconstpointer data)
{
	if (skipped ())
		return;
	restart_keeps_data (fixture, FALSE);
}

static void
test_restart_immediate (Fixture *fixture, gconstpointer data)
{
	if (skipped ())
		return;
	restart_keeps_data (fixture, TRUE);
}

/* Stop leaves neither the postmaster nor any of its processes, nor the folder. */
static void
test_stop (Fixture *fixture, gconstpointer data)
{
	g_autofree char *dir = NULL;
	g_auto(GStrv) pids = NULL;
	g_autofree char *list = NULL;
	GPid pid;
	PGconn *conn;

	if (skipped ())
		return;
	dir = g_strdup (sc_test_postgres_get_dir (fixture->pg));
	pid = sc_test_postgres_get_pid (fixture->pg);
	conn = connect_db (fixture, "postgres");
	/* a client still connected must not hold the stop up */
	list = query (conn, "SELECT string_agg(pid::text, ',') FROM pg_stat_activity", NULL);
	pids = g_strsplit (list, ",", -1);
	g_assert_cmpuint (g_strv_length (pids), >=, 3);
	g_assert_cmpint (kill (pid, 0), ==, 0);

	g_clear_pointer (&fixture->pg, sc_test_postgres_stop);
	errno = 0;
	g_assert_cmpint (kill (pid, 0), ==, -1);
	g_assert_cmpint (errno, ==, ESRCH);
	for (guint i = 0; pids[i] != NULL; i++) {
		errno = 0;
		g_assert_cmpint (kill ((pid_t) g_ascii_strtoll (pids[i], NULL, 10), 0), ==, -1);
		g_assert_cmpint (errno, ==, ESRCH);
	}
	g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
	PQfinish (conn);
}

/* Two at once (as two test binaries would): own folder, port and socket. */
static void
test_two_servers (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScTestPostgres) second = NULL;
	g_autofree char *conninfo = NULL;
	g_autofree char *one = NULL;
	g_autofree char *two = NULL;
	PGconn *a;
	PGconn *b;

	if (skipped ())
		return;
	second = sc_test_postgres_start (&error);
	g_assert_no_error (error);
	g_assert_cmpuint (sc_test_postgres_get_port (second), !=,
			  sc_test_postgres_get_port (fixture->pg));
	g_assert_cmpstr (sc_test_postgres_get_dir (second), !=,
			 sc_test_postgres_get_dir (fixture->pg));
	g_assert_true (sc_test_postgres_create_database (fixture->pg, "only_in_first", &error));
	g_assert_no_error (error);
	a = connect_db (fixture, "postgres");
	conninfo = sc_test_postgres_get_conninfo (second, "postgres");
	b = connect_conninfo (conninfo);
	one = query (a, "SELECT count(*) FROM pg_database WHERE datname = 'only_in_first'", NULL);
	two = query (b, "SELECT count(*) FROM pg_database WHERE datname = 'only_in_first'", NULL);
	g_assert_cmpstr (one, ==, "1");
	g_assert_cmpstr (two, ==, "0");
	PQfinish (a);
	PQfinish (b);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	sc_test_install_log_writer ();
	if (!sc_test_postgres_available ())
		g_test_message ("skipping: %s", sc_test_postgres_why_unavailable ());

	g_test_add ("/postgres-harness/start", Fixture, NULL, setup, test_start, teardown);
	g_test_add ("/postgres-harness/databases", Fixture, NULL, setup, test_databases, teardown);
	g_test_add ("/postgres-harness/skip-locked", Fixture, NULL, setup, test_skip_locked,
		    teardown);
	g_test_add ("/postgres-harness/advisory-lock", Fixture, NULL, setup, test_advisory_lock,
		    teardown);
	g_test_add ("/postgres-harness/restart", Fixture, NULL, setup, test_restart, teardown);
	g_test_add ("/postgres-harness/restart-immediate", Fixture, NULL, setup,
		    test_restart_immediate, teardown);
	g_test_add ("/postgres-harness/stop", Fixture, NULL, setup, test_stop, teardown);
	g_test_add ("/postgres-harness/two-servers", Fixture, NULL, setup, test_two_servers,
		    teardown);
	return g_test_run ();
}

#else /* !HAVE_LIBPQ */

static void
test_without_libpq (void)
{
	g_test_skip (sc_test_postgres_why_unavailable ());
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/postgres-harness/start", test_without_libpq);
	return g_test_run ();
}

#endif
