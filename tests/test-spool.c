/* test-spool.c — what only the SQLite spool shows: its schema, migrations
 * and pragmas, query plans, a full disk, a locked database, its lease
 * columns, failures injected with triggers, and the raw statement layer.
 * What every backend must do is in test-spool-contract.c (issue 10).
 *
 * Each test gets a spool in a fresh folder, a fixed clock and a second
 * SQLite connection (the "observer") that reads what was really committed.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc-clock.h"
#include "sc-error.h"
#include "sc-sqlite-private.h"
#include "sc-sqlite-walbuf.h"
#include "sc-spool.h"
#include "sc-test-spool.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;        /* (owned) */
	ScSpool *spool;   /* (owned) */
	ScClock *clock;   /* (owned) fixed at T0 */
	sqlite3 *observer; /* (owned) a second connection for checks */
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-spool");
	fixture->clock = sc_clock_new_fixed (T0);
	fixture->spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->spool);
	path = g_build_filename (fixture->dir, "spool.db", NULL);
	g_assert_cmpint (sqlite3_open_v2 (path, &fixture->observer, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
	sqlite3_busy_timeout (fixture->observer, 5000);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	g_clear_pointer (&fixture->spool, sc_spool_close);
	if (fixture->observer != NULL)
		g_assert_cmpint (sqlite3_close (fixture->observer), ==, SQLITE_OK);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

/* ---- observer helpers ---- */

static void G_GNUC_PRINTF (2, 3)
db_exec (sqlite3 *db, const char *format, ...)
{
	va_list args;
	g_autofree char *sql = NULL;
	char *message = NULL;

	va_start (args, format);
	sql = g_strdup_vprintf (format, args);
	va_end (args);
	if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
		g_error ("%s: %s", sql, message);
}

static sqlite3_stmt *
db_prepare_va (sqlite3 *db, const char *format, va_list args)
{
	g_autofree char *sql = g_strdup_vprintf (format, args);
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
		g_error ("%s: %s", sql, sqlite3_errmsg (db));
	return stmt;
}

/* The first column of the first row as an integer; -1 if NULL, -2 if no row. */
static gint64 G_GNUC_PRINTF (2, 3)
db_int (Fixture *fixture, const char *format, ...)
{
	va_list args;
	sqlite3_stmt *stmt;
	gint64 value = -2;

	va_start (args, format);
	stmt = db_prepare_va (fixture->observer, format, args);
	va_end (args);
	if (sqlite3_step (stmt) == SQLITE_ROW)
		value = sqlite3_column_type (stmt, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	return value;
}

/* (transfer full) (nullable) */
static char * G_GNUC_PRINTF (2, 3)
db_text (Fixture *fixture, const char *format, ...)
{
	va_list args;
	sqlite3_stmt *stmt;
	char *value = NULL;

	va_start (args, format);
	stmt = db_prepare_va (fixture->observer, format, args);
	va_end (args);
	if (sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL)
		value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
	sqlite3_finalize (stmt);
	return value;
}

/* ---- spool helpers ---- */

static ScMessageState
state_of (Fixture *fixture, const char *queue_id)
{
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	return s->state;
}

static void
assert_counts_match (Fixture *fixture, const char *list_id)
{
	g_autoptr(GError) error = NULL;
	gint64 counts[SC_STATE_LAST];

	g_assert_true (sc_spool_count_states (fixture->spool, list_id, counts, &error));
	g_assert_no_error (error);
	for (guint i = 0; i < SC_STATE_LAST; i++) {
		const char *state = sc_message_state_to_string (i);
		gint64 real = list_id != NULL
				  ? db_int (fixture, "SELECT count(*) FROM messages WHERE state = '%s' AND list_id = '%s'", state, list_id)
				  : db_int (fixture, "SELECT count(*) FROM messages WHERE state = '%s'", state);
		if (counts[i] != real)
			g_error ("count of %s (list %s): spool says %" G_GINT64_FORMAT ", messages hold %" G_GINT64_FORMAT,
				 state, list_id != NULL ? list_id : "*", counts[i], real);
	}
}

typedef ScTestOwnerCheck OwnerCheck;

static guint
reclaim_checked (Fixture *fixture, const char *self, OwnerCheck *check, guint crash_limit)
{
	return sc_test_spool_reclaim (fixture->spool, self, check, sc_clock_now (fixture->clock), crash_limit);
}

static guint
reclaim (Fixture *fixture, const char *self, const char *const *alive, guint crash_limit)
{
	OwnerCheck check = {.alive = alive};
	return reclaim_checked (fixture, self, &check, crash_limit);
}

static ScLease
lease_of (const ScMessage *message)
{
	ScLease lease = {.id = message->id, .generation = message->lease_generation};
	return lease;
}

static gboolean
renew_one (Fixture *fixture, const char *owner, const ScMessage *message, gint64 expires, GError **error)
{
	ScLease lease = lease_of (message);
	return sc_spool_renew_leases (fixture->spool, owner, &lease, 1, expires, error);
}

static ScAuditContext
audit_at (Fixture *fixture)
{
	ScAuditContext audit = {.actor = "alice", .remote = "192.0.2.7", .now = sc_clock_now (fixture->clock)};
	return audit;
}

/* ---- open ---- */

static void
test_open_creates_and_migrates (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mode = db_text (fixture, "PRAGMA journal_mode");

	g_assert_cmpint (sc_sqlite_schema_version, >=, 1);
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_sqlite_schema_version);
	g_assert_cmpstr (mode, ==, "wal");
	g_assert_true (g_file_test (sc_sqlite (fixture->spool)->folder, G_FILE_TEST_IS_DIR));
	g_assert_cmpstr (sc_sqlite (fixture->spool)->folder, ==, fixture->dir);
	for (const char *const *table = (const char *const[]){"messages", "bodies", "stages", "attempts", "recipients",
							      "notifications", "audit", "state_counts", NULL};
	     *table != NULL;
	     table++)
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", *table), ==, 1);
	for (const char *const *index = (const char *const[]){"messages_due", "messages_active", "messages_state",
							      "messages_list", "attempts_message", "notifications_due", NULL};
	     *index != NULL;
	     index++)
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = '%s'", *index), ==, 1);
	/* foreign keys are on for the spool's own connection */
	{
		sqlite3_stmt *stmt = NULL;
		g_assert_cmpint (sqlite3_prepare_v2 (sc_sqlite_get_db (fixture->spool), "PRAGMA foreign_keys", -1, &stmt, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
		g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 1);
		sqlite3_finalize (stmt);
		g_assert_cmpint (sqlite3_prepare_v2 (sc_sqlite_get_db (fixture->spool), "PRAGMA synchronous", -1, &stmt, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
		g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 2); /* FULL */
		sqlite3_finalize (stmt);
	}
}

static void
test_open_creates_folder (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *nested = g_build_filename (fixture->dir, "a", "b", "spool", NULL);
	g_autofree char *db = g_build_filename (nested, "spool.db", NULL);
	g_autoptr(ScSpool) spool = sc_spool_open (nested, BUSY_TIMEOUT, &error);

	g_assert_no_error (error);
	g_assert_nonnull (spool);
	g_assert_true (g_file_test (db, G_FILE_TEST_IS_REGULAR));
}

static void
test_open_reopen_noop (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autofree char *schema_before = db_text (fixture, "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)");
	g_autofree char *schema_after = NULL;
	g_autoptr(ScMessageSummary) kept = NULL;

	g_clear_pointer (&fixture->spool, sc_spool_close);
	fixture->spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_sqlite_schema_version);
	schema_after = db_text (fixture, "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema ORDER BY name)");
	g_assert_cmpstr (schema_after, ==, schema_before);
	kept = summary (fixture, queue_id);
	g_assert_cmpint (kept->state, ==, SC_STATE_QUEUED);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_QUEUED), ==, 1);
}

static void
test_open_newer_refused (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = NULL;

	g_clear_pointer (&fixture->spool, sc_spool_close);
	db_exec (fixture->observer, "PRAGMA user_version = %d", sc_sqlite_schema_version + 1);
	spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_null (spool);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, fixture->dir));
	g_assert_nonnull (strstr (error->message, "newer"));
	/* and left as it was */
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_sqlite_schema_version + 1);
}

static void
test_open_not_a_database (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = g_build_filename (fixture->dir, "garbage", NULL);
	g_autoptr(ScSpool) spool = NULL;

	g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
	g_free (sc_test_write_file (dir, "spool.db", "this is not an SQLite database, not even close; padding padding padding padding padding padding padding"));
	spool = sc_spool_open (dir, BUSY_TIMEOUT, &error);
	g_assert_null (spool);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, dir));
}

/* ---- inject ---- */

/* A failure part-way through (the third recipient) leaves no trace. */
static void
test_inject_atomic (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *first = inject (fixture, "l.example.org");
	static const char *const recipients[] = {"a@example.org", "b@example.org", "bad@example.org", NULL};
	g_autoptr(GBytes) raw = g_bytes_new_static ("x", 1);
	ScNewMessage message = {.list_id = "l.example.org", .sender = "", .recipients = recipients,
				.pipeline = "decorate", .raw = raw, .now = T0};
	g_autofree char *queue_id = NULL;

	db_exec (fixture->observer,
		 "CREATE TRIGGER refuse_bad BEFORE INSERT ON recipients WHEN NEW.address = 'bad@example.org'"
		 " BEGIN SELECT RAISE(ABORT, 'refused'); END");
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	g_assert_null (queue_id);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_clear_error (&error);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages"), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM bodies"), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM recipients"), ==, 3);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_QUEUED), ==, 1);
	/* no transaction left open: the next write works */
	db_exec (fixture->observer, "DROP TRIGGER refuse_bad");
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	g_assert_no_error (error);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_QUEUED), ==, 2);
}

/* ---- transitions ---- */

/* The dead notification is part of the result's transaction: if it cannot
 * be written, nothing of the result is (the failure is injected with a
 * trigger, which only this backend's test can do). */
static void
test_transition_dead_atomic (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", queue_id);
	ScStageResult r;

	sc_clock_advance (fixture->clock, SEC);
	db_exec (fixture->observer,
		 "CREATE TRIGGER no_notify BEFORE INSERT ON notifications BEGIN SELECT RAISE(ABORT, 'refused'); END");
	r = result_for (fixture, m, SC_OUTCOME_TRANSIENT, SC_STATE_DEAD);
	{
		ScStageResult *one = &r;
		g_assert_false (sc_spool_record_results (fixture->spool, "runner-a", &one, 1, NULL, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
		g_clear_error (&error);
	}
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE message_id = %" G_GINT64_FORMAT, m->id), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 0);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEAD), ==, 0);
	db_exec (fixture->observer, "DROP TRIGGER no_notify");
	/* no transaction left open: the same result goes through */
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DEAD);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE message_id = %" G_GINT64_FORMAT, m->id), ==, 1);
	assert_counts_match (fixture, NULL);
}

/* ---- the lease columns ---- */

static void
assert_unleased (Fixture *fixture, const char *queue_id)
{
	g_assert_cmpint (db_int (fixture, "SELECT lease_owner IS NULL AND lease_expires_at IS NULL FROM messages WHERE queue_id = '%s'",
				 queue_id), ==, 1);
}

static void
assert_leased (Fixture *fixture, const char *queue_id, const char *owner, gint64 expires)
{
	g_autofree char *got = db_text (fixture, "SELECT lease_owner FROM messages WHERE queue_id = '%s'", queue_id);

	g_assert_cmpstr (got, ==, owner);
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE queue_id = '%s'", queue_id), ==, expires);
}

/* What the interface does not show of a lease (the contract suite sees
 * leases only as reclaim and claims act on them): a claim sets owner and
 * end, a result that goes on keeps both exactly, renewing sets the end,
 * every way out of active clears both (and the due time where nothing is
 * due), and renewing a claim that is gone writes nothing. */
static void
test_lease_columns (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", a);
	g_autofree char *b = NULL;
	g_autofree char *c = NULL;
	g_autofree char *d = NULL;
	g_autofree char *e = NULL;
	g_autoptr(ScMessage) mb = NULL;
	g_autoptr(ScMessage) mc = NULL;
	g_autoptr(ScMessage) md = NULL;
	g_autoptr(ScMessage) me = NULL;
	ScStageResult r;

	assert_leased (fixture, a, "runner-a", T0 + LEASE);
	/* a stage that goes on keeps the lease as it was */
	sc_clock_advance (fixture->clock, 2 * SEC);
	r = result_for (fixture, ma, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	assert_leased (fixture, a, "runner-a", T0 + LEASE);
	g_assert_true (renew_one (fixture, "runner-a", ma, T0 + 9 * MINUTE, &error));
	g_assert_no_error (error);
	assert_leased (fixture, a, "runner-a", T0 + 9 * MINUTE);
	/* done */
	g_strfreev (ma->completed);
	ma->completed = g_strsplit ("decorate;archive", ";", -1);
	r = result_for (fixture, ma, SC_OUTCOME_OK, SC_STATE_DONE);
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	assert_unleased (fixture, a);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL FROM messages WHERE queue_id = '%s'", a), ==, 1);

	/* deferred */
	b = inject (fixture, "l.example.org");
	mb = claim_one (fixture, "runner-a", b);
	r = result_for (fixture, mb, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	r.next_attempt_at = T0 + HOUR;
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	assert_unleased (fixture, b);

	/* dead */
	c = inject (fixture, "l.example.org");
	mc = claim_one (fixture, "runner-a", c);
	r = result_for (fixture, mc, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	assert_unleased (fixture, c);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL FROM messages WHERE queue_id = '%s'", c), ==, 1);

	/* given back by a stopping runner */
	d = inject (fixture, "l.example.org");
	md = claim_one (fixture, "runner-x", d);
	g_assert_true (sc_spool_release_owner (fixture->spool, "runner-x", sc_clock_now (fixture->clock), &error));
	g_assert_no_error (error);
	assert_unleased (fixture, d);

	/* taken back from a dead runner, held at the first crash (limit 1) */
	e = inject_full (fixture, "l.example.org", PIPELINE, "e", T0 - HOUR);
	me = claim_one (fixture, "runner-dead", e);
	g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 1), ==, 1);
	g_assert_cmpint (state_of (fixture, e), ==, SC_STATE_HELD);
	assert_unleased (fixture, e);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE queue_id = '%s'", e), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL FROM messages WHERE queue_id = '%s'", e), ==, 1);
	/* renewing the claims that are gone writes nothing */
	g_assert_true (renew_one (fixture, "runner-dead", me, T0 + HOUR, &error));
	g_assert_true (renew_one (fixture, "runner-x", md, T0 + HOUR, &error));
	g_assert_no_error (error);
	assert_unleased (fixture, e);
	assert_unleased (fixture, d);

	/* the invariants: active ⇔ leased; queued/deferred ⇒ a due time */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE (state = 'active') != (lease_owner IS NOT NULL)"), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE (state = 'active') != (lease_expires_at IS NOT NULL)"), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state IN ('queued','deferred') AND next_attempt_at IS NULL"), ==, 0);
}

/* ---- query plans ---- */

static char *
explain (sqlite3 *db, const char *sql)
{
	g_autofree char *query = g_strconcat ("EXPLAIN QUERY PLAN ", sql, NULL);
	GString *plan = g_string_new (NULL);
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2 (db, query, -1, &stmt, NULL) != SQLITE_OK)
		g_error ("%s: %s", query, sqlite3_errmsg (db));
	while (sqlite3_step (stmt) == SQLITE_ROW)
		g_string_append_printf (plan, "%s\n", (const char *) sqlite3_column_text (stmt, 3));
	sqlite3_finalize (stmt);
	return g_string_free (plan, FALSE);
}

static void
assert_plans (sqlite3 *db)
{
	static const struct {
		ScSql sql;
		const char *must_use; /* (nullable) */
	} checked[] = {
	    {SC_SQL_CLAIM, "messages_due"},
	    {SC_SQL_NEXT_DUE, "messages_due"},
	    {SC_SQL_COUNT_ALL, NULL},
	    {SC_SQL_COUNT_LIST, NULL},
	    {SC_SQL_SELECT_ACTIVE, NULL},
	    {SC_SQL_RENEW_LEASES, NULL},
	    {SC_SQL_RELEASE_OWNER, NULL},
	    {SC_SQL_SUMMARY_BY_QUEUE_ID, NULL},
	    {SC_SQL_SEARCH_STATE, "messages_state"},
	    {SC_SQL_SEARCH_LIST, "messages_list"},
	    {SC_SQL_SEARCH_STATE_LIST, "messages_state"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (checked); i++) {
		g_autofree char *plan = explain (db, sc_sqlite_sql_text (checked[i].sql));
		g_test_message ("%s\n%s", sc_sqlite_sql_text (checked[i].sql), plan);
		if (strstr (plan, "SCAN messages") != NULL)
			g_error ("full scan of messages in:\n%s\nplan:\n%s", sc_sqlite_sql_text (checked[i].sql), plan);
		/* a sort of the candidates would read every due message */
		if (checked[i].must_use != NULL && strstr (plan, "TEMP B-TREE") != NULL)
			g_error ("sorting in:\n%s\nplan:\n%s", sc_sqlite_sql_text (checked[i].sql), plan);
		if (checked[i].must_use != NULL && strstr (plan, checked[i].must_use) == NULL)
			g_error ("%s not used by:\n%s\nplan:\n%s", checked[i].must_use, sc_sqlite_sql_text (checked[i].sql), plan);
	}
	/* the counts never read messages at all */
	{
		g_autofree char *plan = explain (db, sc_sqlite_sql_text (SC_SQL_COUNT_ALL));
		g_assert_null (strstr (plan, "messages"));
	}
}

static void
test_plan_empty (Fixture *fixture, gconstpointer user_data)
{
	assert_plans (fixture->observer);
	assert_plans (sc_sqlite_get_db (fixture->spool));
}

#define BULK 100000

static void
test_plan_large (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *first_due = NULL;
	g_autofree char *early = NULL;
	gint64 due = 0;

	/* 100,000 messages in one transaction: 10 % queued, 10 % deferred (due
	 * over the next 100,000 µs), the rest done; three lists */
	db_exec (fixture->observer,
		 "BEGIN;"
		 "INSERT INTO messages (queue_id, list_id, sender, pipeline, state, created_at, updated_at,"
		 " cycle_started_at, next_attempt_at, size)"
		 " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
		 " SELECT printf('bulk%%012d', i), 'list' || (i %% 3) || '.example.org', '', 'decorate',"
		 "  CASE i %% 10 WHEN 0 THEN 'queued' WHEN 1 THEN 'deferred' ELSE 'done' END,"
		 "  %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ","
		 "  CASE WHEN i %% 10 < 2 THEN %" G_GINT64_FORMAT " + (%d - i) ELSE NULL END, 1"
		 " FROM n;"
		 "INSERT INTO bodies (message_id, raw) SELECT id, x'41' FROM messages WHERE state IN ('queued','deferred');"
		 "COMMIT;",
		 BULK, T0, T0, T0, T0 + SEC, BULK);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages"), ==, BULK);
	assert_counts_match (fixture, NULL);
	assert_counts_match (fixture, "list1.example.org");
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DONE), ==, BULK * 8 / 10);

	assert_plans (fixture->observer);
	assert_plans (sc_sqlite_get_db (fixture->spool));

	/* the real claim of one takes the earliest due message */
	first_due = db_text (fixture, "SELECT queue_id FROM messages WHERE state IN ('queued','deferred') ORDER BY next_attempt_at LIMIT 1");
	g_assert_cmpstr (first_due, ==, "bulk000000100000");
	sc_clock_set (fixture->clock, T0 + 2 * SEC);
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "r", first_due);
	}
	/* a new message due earlier than all of them is next */
	early = inject_full (fixture, "list0.example.org", "decorate", "x", T0 - SEC);
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 - SEC);
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "r", early);
	}
	assert_counts_match (fixture, NULL);

	/* with statistics gathered (PRAGMA optimize may run ANALYZE) the plans hold */
	db_exec (fixture->observer, "ANALYZE");
	{
		g_autofree char *path = g_build_filename (fixture->dir, "spool.db", NULL);
		sqlite3 *fresh = NULL;
		g_assert_cmpint (sqlite3_open_v2 (path, &fresh, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
		assert_plans (fresh);
		sqlite3_close (fresh);
	}
}

/* ---- bad conditions ---- */

static void
assert_nothing_written (Fixture *fixture, gint64 messages)
{
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages"), ==, messages);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM bodies"), ==, messages);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM recipients"), ==, messages * 3);
	g_assert_cmpint (db_int (fixture, "SELECT coalesce(sum(count), 0) FROM state_counts"), ==, messages);
}

static void
test_bad_locked (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *first = inject (fixture, "l.example.org");
	g_autoptr(GBytes) raw = g_bytes_new_static ("x", 1);
	static const char *const rcpt[] = {"a@example.org", "b@example.org", "c@example.org", NULL};
	ScNewMessage message = {.list_id = "l.example.org", .sender = "", .recipients = rcpt,
				.pipeline = "decorate", .raw = raw, .now = T0};
	g_autoptr(ScMessage) m = claim_one (fixture, "r", first);
	ScStageResult r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_DONE);
	ScStageResult *one = &r;
	g_autofree char *queue_id = NULL;
	gint64 started;
	gint64 elapsed;

	/* another process holds the write lock */
	db_exec (fixture->observer, "BEGIN IMMEDIATE");
	started = g_get_monotonic_time ();
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	elapsed = g_get_monotonic_time () - started;
	g_assert_null (queue_id);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_assert_nonnull (strstr (error->message, fixture->dir));
	g_test_message ("inject gave up after %" G_GINT64_FORMAT " µs: %s", elapsed, error->message);
	/* it waited for the busy timeout, and not forever */
	g_assert_cmpint (elapsed, >=, BUSY_TIMEOUT / 2);
	g_assert_cmpint (elapsed, <, 30 * SEC);
	g_clear_error (&error);
	/* the other writers fail the same way, changing nothing */
	{
		gint64 now = sc_clock_now (fixture->clock);
		g_autoptr(GPtrArray) none = sc_spool_claim (fixture->spool, "r", now, now + LEASE, 10, &error);
		g_assert_null (none);
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
		g_clear_error (&error);
	}
	g_assert_false (sc_spool_record_results (fixture->spool, "r", &one, 1, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_clear_error (&error);
	{
		ScAuditContext audit = audit_at (fixture);
		g_assert_false (sc_spool_hold (fixture->spool, first, NULL, &audit, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
		g_clear_error (&error);
	}
	db_exec (fixture->observer, "ROLLBACK");

	assert_nothing_written (fixture, 1);
	g_assert_cmpint (state_of (fixture, first), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts"), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 0);
	/* once the lock is gone the same calls work */
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	g_assert_true (sc_spool_record_results (fixture->spool, "r", &one, 1, NULL, &error));
	g_assert_no_error (error);
	g_assert_cmpint (state_of (fixture, first), ==, SC_STATE_DONE);
	assert_nothing_written (fixture, 2);
}

static void
test_bad_full (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	sqlite3 *db = sc_sqlite_get_db (fixture->spool);
	g_autofree char *first = inject (fixture, "l.example.org");
	g_autofree char *big_body = g_malloc (1024 * 1024 + 1);
	g_autofree char *queue_id = NULL;
	g_autoptr(GBytes) big = NULL;
	static const char *const rcpt[] = {"a@example.org", "b@example.org", "c@example.org", NULL};
	ScNewMessage message = {.list_id = "l.example.org", .sender = "", .recipients = rcpt, .pipeline = "decorate", .now = T0};
	gint64 pages;

	memset (big_body, 'x', 1024 * 1024);
	big_body[1024 * 1024] = '\0';
	big = g_bytes_new_static (big_body, 1024 * 1024);
	message.raw = big;
	/* room for a few more pages only */
	pages = db_int (fixture, "PRAGMA page_count");
	db_exec (db, "PRAGMA max_page_count = %" G_GINT64_FORMAT, pages + 4);
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	g_assert_null (queue_id);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE);
	g_test_message ("%s", error->message);
	g_clear_error (&error);
	assert_nothing_written (fixture, 1);

	/* a stage output too big for the room left: the result is not half-recorded */
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "r", first);
		ScStageResult r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
		ScStageResult *one = &r;
		r.output = big;
		g_assert_false (sc_spool_record_results (fixture->spool, "r", &one, 1, NULL, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE);
		g_clear_error (&error);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages"), ==, 0);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts"), ==, 0);
		g_assert_cmpint (state_of (fixture, first), ==, SC_STATE_ACTIVE);
		/* small writes still fit */
		r.output = NULL;
		g_assert_true (sc_spool_record_results (fixture->spool, "r", &one, 1, NULL, &error));
		g_assert_no_error (error);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages"), ==, 1);
	}

	/* with room again, the spool works as before */
	db_exec (db, "PRAGMA max_page_count = 1073741823");
	queue_id = sc_spool_inject (fixture->spool, &message, &error);
	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	assert_nothing_written (fixture, 2);
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
		g_autoptr(GBytes) back = sc_spool_get_raw (fixture->spool, s->id, &error);
		g_assert_no_error (error);
		g_assert_true (g_bytes_equal (back, big));
	}
}

/* ---- programming errors fail loudly ---- */

/* ---- the acceptor's connection: WAL writes gathered (sc-sqlite-walbuf.c) ---- */

/* @n messages of @size bytes in one transaction on @spool. */
static void
inject_many (ScSpool *spool, guint n, gsize size)
{
	static const char *const recipients[] = {"a@example.org", NULL};
	g_autoptr(GPtrArray) bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autofree ScNewMessage *messages = g_new0 (ScNewMessage, n);
	g_autofree const ScNewMessage **pointers = g_new0 (const ScNewMessage *, n);
	g_autofree char **queue_ids = g_new0 (char *, n);
	g_autofree guint *duplicates = g_new0 (guint, n);
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < n; i++) {
		char *text = g_malloc (size);
		memset (text, 'a' + (int) (i % 26), size);
		g_ptr_array_add (bodies, g_bytes_new_take (text, size));
		messages[i] = (ScNewMessage) {.list_id = "l.example.org", .sender = "s@example.org",
					      .recipients = recipients, .pipeline = PIPELINE,
					      .raw = bodies->pdata[i], .now = T0};
		pointers[i] = &messages[i];
	}
	g_assert_true (sc_spool_inject_batch (spool, pointers, n, 0, queue_ids, duplicates, NULL, NULL, &error));
	g_assert_no_error (error);
	for (guint i = 0; i < n; i++)
		g_free (queue_ids[i]);
}

/* The first column of @sql's first row, on @db. */
static gint64
query_int (sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	gint64 value;

	g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	value = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	return value;
}

static gint64
observe_int (Fixture *fixture, const char *sql)
{
	return query_int (fixture->observer, sql);
}

/* A commit far larger than one write (the unix VFS writes at most
 * 0x1ffff bytes per call: a 300 KiB flush came back "disk full" before
 * it was cut in chunks); each frame's two writes are gathered; another
 * connection sees every row, and the file checks out. */
static void
test_walbuf_large_commit (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) acceptor = sc_spool_open_full (fixture->dir, BUSY_TIMEOUT,
							  SC_SPOOL_OPEN_FULL_SYNC_ONLY, &error);
	guint gathered_before, made_before, gathered, made;
	char *vfs = NULL;

	g_assert_no_error (error);
	g_assert_cmpint (sqlite3_file_control (sc_sqlite (acceptor)->db, "main", SQLITE_FCNTL_VFSNAME, &vfs), ==,
			 SQLITE_OK);
	g_assert_true (g_str_has_prefix (vfs, "sc-walbuf/"));
	sqlite3_free (vfs);
	/* never an unsynced commit on it: its WAL writes wait for the sync */
	g_assert_true (sc_sqlite_begin_unsynced (acceptor, &error));
	g_assert_cmpint (query_int (sc_sqlite (acceptor)->db, "PRAGMA synchronous"), ==, 2 /* FULL */);
	sc_sqlite_rollback (acceptor);
	sc_sqlite_walbuf_counts (&gathered_before, &made_before);
	inject_many (acceptor, 40, 8 * 1024);
	sc_sqlite_walbuf_counts (&gathered, &made);
	gathered -= gathered_before;
	made -= made_before;
	/* 40 bodies of 8 KiB span at least 80 pages: 160 writes asked for */
	g_assert_cmpuint (gathered, >=, 160);
	g_assert_cmpuint (made, <=, gathered / 8);
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM messages"), ==, 40);
	g_assert_cmpint (observe_int (fixture, "SELECT sum(length(raw)) FROM bodies"), ==, 40 * 8 * 1024);
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM bodies WHERE CAST(substr(raw, 8192, 1) AS TEXT) = char(97 + (message_id - 1) % 26)"), ==, 40);
	{
		sqlite3_stmt *stmt = NULL;
		g_assert_cmpint (sqlite3_prepare_v2 (fixture->observer, "PRAGMA integrity_check", -1, &stmt, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
		g_assert_cmpstr ((const char *) sqlite3_column_text (stmt, 0), ==, "ok");
		sqlite3_finalize (stmt);
	}
}

/* Commits alternate between the gathering connection and a plain one,
 * past several checkpoints and WAL restarts: every row stays readable
 * by both, and by a third connection opened afterwards. */
static void
test_walbuf_interleaved (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) acceptor = sc_spool_open_full (fixture->dir, BUSY_TIMEOUT,
							  SC_SPOOL_OPEN_FULL_SYNC_ONLY, &error);

	g_assert_no_error (error);
	for (guint i = 0; i < 60; i++) {
		inject_many (i % 2 == 0 ? acceptor : fixture->spool, 5, 3000);
		if (i % 20 == 19)
			g_assert_cmpint (sqlite3_wal_checkpoint_v2 (fixture->observer, NULL, SQLITE_CHECKPOINT_TRUNCATE,
								    NULL, NULL), ==, SQLITE_OK);
	}
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM messages"), ==, 300);
	g_clear_pointer (&acceptor, sc_spool_close);
	{
		g_autoptr(ScSpool) later = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
		g_autoptr(GPtrArray) claimed = sc_spool_claim (later, "r", T0, T0 + LEASE, 1000, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (claimed->len, ==, 300);
	}
}

/* A process killed right after its commit returned (no close, no
 * checkpoint) leaves every committed row: the frames were on disk before
 * the commit said so. */
static void
test_walbuf_exit_after_commit (Fixture *fixture, gconstpointer user_data)
{
	int status = 0;
	pid_t pid = fork ();

	g_assert_cmpint (pid, >=, 0);
	if (pid == 0) {
		/* the child: commit, then die at once, closing nothing */
		ScSpool *acceptor = sc_spool_open_full (fixture->dir, BUSY_TIMEOUT, SC_SPOOL_OPEN_FULL_SYNC_ONLY, NULL);
		if (acceptor == NULL)
			_exit (2);
		inject_many (acceptor, 30, 5000);
		kill (getpid (), SIGKILL);
		_exit (3);
	}
	g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
	g_assert_true (WIFSIGNALED (status));
	g_assert_cmpint (WTERMSIG (status), ==, SIGKILL);
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM messages"), ==, 30);
	g_assert_cmpint (observe_int (fixture, "SELECT sum(length(raw)) FROM bodies"), ==, 30 * 5000);
}

/* How many ephemeral b-trees @sql builds (EXPLAIN's OpenEphemeral). */
static gint64
ephemeral_tables (sqlite3 *db, const char *sql)
{
	g_autofree char *explain = g_strconcat ("EXPLAIN ", sql, NULL);
	sqlite3_stmt *stmt = NULL;
	gint64 n = 0;

	/* EXPLAIN does not check the schema cookie: a read does, and
	 * reloads a schema another connection changed */
	g_assert_cmpint (query_int (db, "SELECT count(*) FROM sqlite_schema"), >, 0);
	g_assert_cmpint (sqlite3_prepare_v2 (db, explain, -1, &stmt, NULL), ==, SQLITE_OK);
	while (sqlite3_step (stmt) == SQLITE_ROW)
		n += g_strcmp0 ((const char *) sqlite3_column_text (stmt, 1), "OpenEphemeral") == 0;
	sqlite3_finalize (stmt);
	return n;
}

static void
assert_integrity_ok (sqlite3 *db)
{
	sqlite3_stmt *stmt = NULL;

	/* integrity_check verifies CHECK constraints too */
	g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1, &stmt, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	g_assert_cmpstr ((const char *) sqlite3_column_text (stmt, 0), ==, "ok");
	sqlite3_finalize (stmt);
}

/* Puts back the CHECK texts v4 wrote (v5 rewrites them), the one on
 * recipients.status as @recipients_check, and user_version 4. */
static void
schema_back_to_v4 (Fixture *fixture, const char *recipients_check)
{
	gint64 schema_version = db_int (fixture, "PRAGMA schema_version");

	db_exec (fixture->observer, "PRAGMA writable_schema = ON");
	db_exec (fixture->observer,
		 "UPDATE sqlite_schema SET sql = replace (sql, 'CHECK (state = ''queued'' OR state = ''active'' OR "
		 "state = ''deferred'' OR state = ''held'' OR state = ''done'' OR state = ''dead'')', "
		 "'CHECK (state IN    (''queued'',''active'',''deferred'',''held'',''done'',''dead''))') "
		 "WHERE name = 'messages'");
	db_exec (fixture->observer,
		 "UPDATE sqlite_schema SET sql = replace (sql, 'CHECK (status = ''pending'' OR status = ''sent'' OR "
		 "status = ''deferred'' OR status = ''failed'')', '%s') WHERE name = 'recipients'",
		 recipients_check);
	db_exec (fixture->observer, "PRAGMA schema_version = %" G_GINT64_FORMAT, schema_version + 1);
	db_exec (fixture->observer, "PRAGMA writable_schema = OFF");
	db_exec (fixture->observer, "PRAGMA user_version = 4");
}

/* v5: the CHECKs on state and status are chains of `=`, which SQLite
 * evaluates in place, not IN lists, for which SQLite 3.40 built an
 * ephemeral b-tree at every insert and state change.  A v4 spool (put
 * back here as v4 wrote it) is migrated with its rows; every connection,
 * the acceptor's included, still refuses a state outside the list. */
static void
test_schema_checks_without_in_lists (Fixture *fixture, gconstpointer user_data)
{
	const char *update = "UPDATE messages SET state = ?1 WHERE id = ?2";
	const char *update_recipient = "UPDATE recipients SET status = ?1 WHERE message_id = ?2 AND position = 0";
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) acceptor = NULL;
	g_autoptr(ScMessageSummary) kept = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");

	g_assert_cmpint (ephemeral_tables (fixture->observer, update), ==, 0);
	g_assert_cmpint (ephemeral_tables (fixture->observer, update_recipient), ==, 0);

	g_clear_pointer (&fixture->spool, sc_spool_close);
	schema_back_to_v4 (fixture, "CHECK (status IN    (''pending'',''sent'',''deferred'',''failed''))");
	g_assert_cmpint (ephemeral_tables (fixture->observer, update), ==, 1);
	g_assert_cmpint (ephemeral_tables (fixture->observer, update_recipient), ==, 1);

	fixture->spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_sqlite_schema_version);
	g_assert_cmpint (ephemeral_tables (fixture->observer, update), ==, 0);
	g_assert_cmpint (ephemeral_tables (fixture->observer, update_recipient), ==, 0);
	kept = summary (fixture, queue_id);
	g_assert_cmpint (kept->state, ==, SC_STATE_QUEUED);
	assert_integrity_ok (fixture->observer);

	acceptor = sc_spool_open_full (fixture->dir, BUSY_TIMEOUT, SC_SPOOL_OPEN_FULL_SYNC_ONLY, &error);
	g_assert_no_error (error);
	inject_many (acceptor, 2, 10);
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM messages WHERE state = 'queued'"), ==, 3);
	for (ScSpool *const *spool = (ScSpool *const[]){fixture->spool, acceptor, NULL}; *spool != NULL; spool++) {
		g_assert_cmpint (sqlite3_exec (sc_sqlite (*spool)->db, "UPDATE messages SET state = 'bogus'", NULL, NULL, NULL),
				 ==, SQLITE_CONSTRAINT);
		g_assert_cmpint (sqlite3_exec (sc_sqlite (*spool)->db, "UPDATE recipients SET status = 'bogus'", NULL, NULL,
					       NULL),
				 ==, SQLITE_CONSTRAINT);
	}
	g_assert_cmpint (sqlite3_exec (sc_sqlite (acceptor)->db,
				       "UPDATE messages SET state = 'held' WHERE id = (SELECT max (id) FROM messages)",
				       NULL, NULL, NULL), ==, SQLITE_OK);
}

/* A schema whose text is not what v4 wrote is not guessed at: the
 * migration fails with a clear error and leaves the spool at v4. */
static void
test_schema_checks_unexpected_text (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = NULL;

	g_clear_pointer (&fixture->spool, sc_spool_close);
	schema_back_to_v4 (fixture, "CHECK (status IN (''pending'',''sent'',''deferred'',''failed'',''other''))");

	spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_null (spool);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, "version 5"));
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "recipients"));
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, 4);
	/* the rewrite of messages, done first, was undone with it */
	g_assert_cmpint (db_int (fixture, "SELECT instr (sql, 'state IN    (') > 0 FROM sqlite_schema"
					  " WHERE name = 'messages'"), ==, 1);
}

/* Queue ids grow: each new one is the last entry of the queue_id index,
 * so a batch dirties one leaf of it, not one random leaf per message. */
static void
test_queue_ids_grow (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
	sqlite3_stmt *stmt = NULL;

	inject_many (fixture->spool, 20, 10);
	inject_many (fixture->spool, 20, 10);
	g_assert_cmpint (sqlite3_prepare_v2 (fixture->observer, "SELECT queue_id FROM messages ORDER BY id", -1, &stmt, NULL),
			 ==, SQLITE_OK);
	while (sqlite3_step (stmt) == SQLITE_ROW)
		g_ptr_array_add (ids, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
	sqlite3_finalize (stmt);
	g_assert_cmpuint (ids->len, ==, 40);
	for (guint i = 0; i < ids->len; i++) {
		g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}$", ids->pdata[i], 0, 0));
		if (i > 0)
			g_assert_cmpstr (ids->pdata[i - 1], <, ids->pdata[i]);
	}
}

static void
test_bind_unknown_parameter (Fixture *fixture, gconstpointer user_data)
{
	if (g_test_subprocess ()) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (fixture->spool, SC_SQL_NEXT_DUE, NULL);
		g_assert_nonnull (stmt);
		sc_bind_text (stmt, ":nosuch", "x");
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed ();
	g_test_trap_assert_stderr ("*no such bind parameter :nosuch*");
}

static int
synchronous_level (ScSpool *spool)
{
	return (int) query_int (sc_sqlite (spool)->db, "PRAGMA synchronous");
}

/* A claim commits without waiting for the disk (its loss only undoes
 * it), but the connection is back at FULL afterwards, committed or not:
 * the next accepted message or stage result must be durable. */
static void
test_claim_unsynced_then_full (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	g_autoptr(GPtrArray) refused = NULL;
	g_autofree char *queue_id = inject (fixture, "a.example.org");
	gint64 now = sc_clock_now (fixture->clock);

	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	claimed = sc_spool_claim (fixture->spool, "r", now, now + LEASE, 10, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (claimed->len, ==, 1);
	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	/* a claim that cannot even begin (another process writes) */
	g_assert_cmpint (sqlite3_exec (fixture->observer, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	refused = sc_spool_claim (fixture->spool, "r", now, now + LEASE, 10, &error);
	g_assert_null (refused);
	g_assert_nonnull (error);
	g_assert_cmpint (sqlite3_exec (fixture->observer, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	(void) queue_id;
}

/* A batch of stages that only hand the message on, committed with
 * durable FALSE (the runner's choice for it), goes without an fsync (a
 * power cut would only run them again); the connection is FULL again
 * afterwards, and a durable batch that ends a message is FULL. */
static void
test_handover_unsynced_then_full (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "a.example.org");
	g_autoptr(ScMessage) message = claim_one (fixture, "r", queue_id);
	ScStageResult on = result_for (fixture, message, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	ScStageResult done = result_for (fixture, message, SC_OUTCOME_OK, SC_STATE_DONE);
	ScStageResult *one = &on;

	g_assert_true (sc_spool_commit_batch (fixture->spool, "r", NULL, 0, &one, 1, FALSE, &error));
	g_assert_no_error (error);
	g_assert_true (on.applied);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), >, 0);
	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	done.stage = "archive";
	one = &done;
	g_assert_true (sc_spool_commit_batch (fixture->spool, "r", NULL, 0, &one, 1, TRUE, &error));
	g_assert_no_error (error);
	g_assert_true (done.applied);
	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages"), ==, 2);
}

/* A deferred commit is seen at once and stays unsynced until a sync, or
 * a durable commit on the same spool file by any connection of this
 * process; one on another spool does not count.  A claim is unsynced too. */
static void
test_deferred_commit (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "a.example.org");
	g_autofree char *other_dir = sc_test_make_tmpdir ("sc-spool-other");
	g_autoptr(ScSpool) other = sc_spool_open (other_dir, BUSY_TIMEOUT, &error);
	g_autoptr(ScSpool) second = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_autoptr(ScMessage) message = NULL;
	g_autofree char *state = NULL;
	ScStageResult done;
	ScStageResult *one = &done;
	guint64 mark;

	g_assert_no_error (error);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, 0);
	message = claim_one (fixture, "r", queue_id);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), !=, 0);
	g_assert_true (sc_spool_sync (fixture->spool, G_MAXUINT64, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, 0);

	done = result_for (fixture, message, SC_OUTCOME_OK, SC_STATE_DONE);
	g_assert_true (sc_spool_commit_batch (fixture->spool, "r", NULL, 0, &one, 1, FALSE, &error));
	g_assert_no_error (error);
	g_assert_true (done.applied);
	mark = sc_spool_unsynced_mark (fixture->spool);
	g_assert_cmpuint (mark, !=, 0);
	g_assert_cmpint (synchronous_level (fixture->spool), ==, 2);
	state = db_text (fixture, "SELECT state FROM messages WHERE queue_id = '%s'", queue_id);
	g_assert_cmpstr (state, ==, "done");

	inject_many (other, 1, 100);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, mark);
	/* a sync asked for an older mark has nothing to do either */
	g_assert_true (sc_spool_sync (fixture->spool, mark - 1, &error));
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, mark);
	/* a durable commit that wrote nothing synced nothing */
	g_assert_true (sc_sqlite_begin (second, &error));
	g_assert_true (sc_sqlite_commit (second, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, mark);
	inject_many (second, 1, 100);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, 0);
	g_clear_pointer (&other, sc_spool_close);
	sc_test_remove_tree (other_dir);
}

/* The WAL is checkpointed every 10,000 pages, not SQLite's 1,000: past
 * 1,000 it keeps growing, and past 10,000 it starts over (a checkpoint,
 * then the next commit writes from the start of the file). */
static void
test_checkpoint_distance (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *wal = g_build_filename (fixture->dir, "spool.db-wal", NULL);
	GStatBuf st;
	const gsize frame = 4096 + 24;

	for (guint i = 0; i < 12; i++)
		inject_many (fixture->spool, 4, 128 * 1024); /* ~130 pages each */
	g_assert_cmpint (g_stat (wal, &st), ==, 0);
	g_assert_cmpint (st.st_size, >, 1400 * frame);
	for (guint i = 0; i < 24; i++)
		inject_many (fixture->spool, 4, 128 * 1024);
	/* ~4,700 pages written in all: no checkpoint yet */
	g_assert_cmpint (g_stat (wal, &st), ==, 0);
	g_assert_cmpint (st.st_size, >, 4500 * frame);
	for (guint i = 0; i < 60; i++)
		inject_many (fixture->spool, 4, 128 * 1024);
	/* ~12,500 pages: checkpointed once past 10,000, then written from
	 * the start again, so the file never reached 12,500 */
	g_assert_cmpint (g_stat (wal, &st), ==, 0);
	g_assert_cmpint (st.st_size, <, 10800 * frame);
	g_assert_cmpint (observe_int (fixture, "SELECT count(*) FROM messages"), ==, 384);
}

static int
failing_sync (sqlite3_file *file, int flags)
{
	return SQLITE_IOERR_FSYNC;
}

/* A sync the disk refuses is a clear error, and what it was to make
 * durable stays unsynced (the runner then stops: sc-runner.c, sync_cb). */
static void
test_deferred_sync_fails (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "a.example.org");
	g_autoptr(ScMessage) message = claim_one (fixture, "r", queue_id);
	ScStageResult done = result_for (fixture, message, SC_OUTCOME_OK, SC_STATE_DONE);
	ScStageResult *one = &done;
	static sqlite3_io_methods failing;
	const sqlite3_io_methods *real;
	sqlite3_file *wal = NULL;
	guint64 mark;

	g_assert_true (sc_spool_commit_batch (fixture->spool, "r", NULL, 0, &one, 1, FALSE, &error));
	g_assert_no_error (error);
	mark = sc_spool_unsynced_mark (fixture->spool);
	g_assert_cmpuint (mark, !=, 0);
	/* this connection's WAL handle, its sync made to fail */
	g_assert_cmpint (sqlite3_file_control (sc_sqlite (fixture->spool)->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal), ==,
			 SQLITE_OK);
	g_assert_nonnull (wal);
	real = wal->pMethods;
	failing = *real;
	failing.xSync = failing_sync;
	wal->pMethods = &failing;
	g_assert_false (sc_spool_sync (fixture->spool, G_MAXUINT64, &error));
	wal->pMethods = real;
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, "cannot write its log to disk"));
	g_assert_nonnull (strstr (error->message, fixture->dir));
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, mark);
	g_clear_error (&error);
	g_assert_true (sc_spool_sync (fixture->spool, G_MAXUINT64, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, 0);
}

/* Which results may wait for the disk: only those that end their message
 * or hand it on, with no one to notify. */
static void
test_deferred_which_results (Fixture *fixture, gconstpointer user_data)
{
	for (ScMessageState state = 0; state < SC_STATE_LAST; state++) {
		ScStageResult result = {.outcome = SC_OUTCOME_OK, .next_state = state};
		gboolean may = state == SC_STATE_DONE || state == SC_STATE_ACTIVE;

		g_assert_cmpint (sc_stage_result_may_wait_for_disk (&result), ==, may);
		result.notification_kind = "failure";
		g_assert_false (sc_stage_result_may_wait_for_disk (&result));
	}
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD ("/spool/bind/unknown-parameter", test_bind_unknown_parameter);
	ADD ("/spool/walbuf/large-commit", test_walbuf_large_commit);
	ADD ("/spool/walbuf/interleaved", test_walbuf_interleaved);
	ADD ("/spool/walbuf/exit-after-commit", test_walbuf_exit_after_commit);
	ADD ("/spool/schema/checks-without-in-lists", test_schema_checks_without_in_lists);
	ADD ("/spool/schema/checks-unexpected-text", test_schema_checks_unexpected_text);
	ADD ("/spool/inject/queue-ids-grow", test_queue_ids_grow);
	ADD ("/spool/open/creates-and-migrates", test_open_creates_and_migrates);
	ADD ("/spool/open/creates-folder", test_open_creates_folder);
	ADD ("/spool/open/reopen-is-noop", test_open_reopen_noop);
	ADD ("/spool/open/newer-refused", test_open_newer_refused);
	ADD ("/spool/open/not-a-database", test_open_not_a_database);
	ADD ("/spool/inject/atomic", test_inject_atomic);
	ADD ("/spool/transition/dead-atomic", test_transition_dead_atomic);
	ADD ("/spool/lease/columns", test_lease_columns);
	ADD ("/spool/commit/handover-unsynced-then-full", test_handover_unsynced_then_full);
	ADD ("/spool/plan/empty", test_plan_empty);
	ADD ("/spool/plan/large", test_plan_large);
	ADD ("/spool/bad/locked", test_bad_locked);
	ADD ("/spool/bad/full", test_bad_full);
	ADD ("/spool/claim/unsynced-then-full", test_claim_unsynced_then_full);
	ADD ("/spool/deferred/commit-and-sync", test_deferred_commit);
	ADD ("/spool/deferred/which-results", test_deferred_which_results);
	ADD ("/spool/deferred/sync-fails", test_deferred_sync_fails);
	ADD ("/spool/checkpoint/every-10000-pages", test_checkpoint_distance);
#undef ADD
	return g_test_run ();
}
