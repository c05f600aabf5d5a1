/* test-spool.c — the spool: schema, every state transition, leases, crashes,
 * counts, listing, operator actions, query plans and bad conditions.
 *
 * Each test gets a spool in a fresh folder, a fixed clock and a second
 * SQLite connection (the "observer") that reads what was really committed.
 */
#include "config.h"

#include <sqlite3.h>

#include "sc-clock.h"
#include "sc-error.h"
#include "sc-spool-private.h"
#include "sc-spool.h"
#include "sc-test-util.h"

#define SEC G_GINT64_CONSTANT (1000000)
#define MINUTE (60 * SEC)
#define HOUR (3600 * SEC)
/* 2026-11-23T12:00:00Z */
#define T0 (G_GINT64_CONSTANT (1795435200) * SEC)
#define LEASE (5 * MINUTE)
#define BUSY_TIMEOUT (100 * 1000) /* 100 ms */

#define PIPELINE "decorate;archive;exec:deliver"

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

static char *
inject_full (Fixture *fixture, const char *list_id, const char *pipeline, const char *body, gint64 now)
{
	static const char *const recipients[] = {"a@example.org", "b@example.net", "c@example.com", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) raw = g_bytes_new (body, strlen (body));
	g_autofree char *subject = g_strdup_printf ("subject of %s", body);
	ScNewMessage message = {
	    .list_id = list_id,
	    .sender = "owner@example.org",
	    .recipients = recipients,
	    .pipeline = pipeline,
	    .subject = subject,
	    .message_id = "<id@example.org>",
	    .raw = raw,
	    .now = now,
	};
	char *queue_id = sc_spool_inject (fixture->spool, &message, &error);

	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	return queue_id;
}

static char *
inject (Fixture *fixture, const char *list_id)
{
	return inject_full (fixture, list_id, PIPELINE, "Subject: hi\r\n\r\nbody\r\n", sc_clock_now (fixture->clock));
}

static ScMessageSummary *
summary (Fixture *fixture, const char *queue_id)
{
	g_autoptr(GError) error = NULL;
	ScMessageSummary *result = sc_spool_get_summary (fixture->spool, queue_id, &error);

	g_assert_no_error (error);
	g_assert_nonnull (result);
	return result;
}

static ScMessageState
state_of (Fixture *fixture, const char *queue_id)
{
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	return s->state;
}

static GPtrArray *
claim (Fixture *fixture, const char *owner, guint limit)
{
	g_autoptr(GError) error = NULL;
	gint64 now = sc_clock_now (fixture->clock);
	GPtrArray *messages = sc_spool_claim (fixture->spool, owner, now, now + LEASE, limit, &error);

	g_assert_no_error (error);
	g_assert_nonnull (messages);
	return messages;
}

/* Claims exactly one message, which must be @queue_id when given. */
static ScMessage *
claim_one (Fixture *fixture, const char *owner, const char *queue_id)
{
	g_autoptr(GPtrArray) messages = claim (fixture, owner, 1);

	g_assert_cmpuint (messages->len, ==, 1);
	if (queue_id != NULL)
		g_assert_cmpstr (((ScMessage *) messages->pdata[0])->queue_id, ==, queue_id);
	return g_ptr_array_steal_index (messages, 0);
}

static void
assert_nothing_due (Fixture *fixture)
{
	g_autoptr(GPtrArray) messages = claim (fixture, "nobody", 10);
	g_assert_cmpuint (messages->len, ==, 0);
}

/* Records one result; returns how many were stale (0 or 1). */
static guint
record (Fixture *fixture, const char *owner, const ScStageResult *result)
{
	g_autoptr(GError) error = NULL;
	ScStageResult copy = *result;
	ScStageResult *one = &copy;
	guint stale = 99;

	g_assert_true (sc_spool_record_results (fixture->spool, owner, &one, 1, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, <=, 1);
	return stale;
}

static ScStageResult
result_for (Fixture *fixture, const ScMessage *message, ScOutcome outcome, ScMessageState next_state)
{
	gint64 now = sc_clock_now (fixture->clock);
	ScStageResult result = {
	    .rowid = message->rowid,
	    .lease_generation = message->lease_generation,
	    .stage = sc_message_next_stage (message),
	    .outcome = outcome,
	    .started_at = now - SEC,
	    .finished_at = now,
	    .error = outcome == SC_OUTCOME_OK ? NULL : "451 4.3.0 try again later",
	    .next_state = next_state,
	    .attempts = message->attempts + (outcome == SC_OUTCOME_OK ? 0 : 1),
	};
	return result;
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

static gint64
count_of (Fixture *fixture, const char *list_id, ScMessageState state)
{
	g_autoptr(GError) error = NULL;
	gint64 counts[SC_STATE_LAST];

	g_assert_true (sc_spool_count_states (fixture->spool, list_id, counts, &error));
	g_assert_no_error (error);
	return counts[state];
}

typedef struct {
	const char *const *alive; /* owners that are alive */
	guint calls;
	GArray *in_handler;       /* (nullable) ScLease: claims a handler ran; NULL: all */
	GArray *in_flight;        /* (nullable) ScLease: self's claims; NULL: all */
} OwnerCheck;

static gboolean
owner_alive_cb (const char *owner, gpointer user_data)
{
	OwnerCheck *check = user_data;
	check->calls++;
	return check->alive != NULL && g_strv_contains (check->alive, owner);
}

static gboolean
lease_listed (GArray *leases, const ScLease *lease)
{
	if (leases == NULL)
		return TRUE;
	for (guint i = 0; i < leases->len; i++) {
		ScLease *listed = &g_array_index (leases, ScLease, i);
		if (listed->rowid == lease->rowid && listed->generation == lease->generation)
			return TRUE;
	}
	return FALSE;
}

static gboolean
in_handler_cb (const char *owner, const ScLease *lease, gpointer user_data)
{
	OwnerCheck *check = user_data;
	return lease_listed (check->in_handler, lease);
}

static gboolean
in_flight_cb (const ScLease *lease, gpointer user_data)
{
	OwnerCheck *check = user_data;
	return lease_listed (check->in_flight, lease);
}

static guint
reclaim_checked (Fixture *fixture, const char *self, OwnerCheck *check, guint crash_limit)
{
	g_autoptr(GError) error = NULL;
	ScLeaseProbe probe = {
	    .alive = owner_alive_cb,
	    .in_handler = in_handler_cb,
	    .in_flight = in_flight_cb,
	    .user_data = check,
	};
	guint count = sc_spool_reclaim (fixture->spool, self, &probe, sc_clock_now (fixture->clock),
					crash_limit, &error);
	g_assert_no_error (error);
	return count;
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
	ScLease lease = {.rowid = message->rowid, .generation = message->lease_generation};
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

/* ---- names ---- */

static void
test_state_names (void)
{
	for (guint i = 0; i < SC_STATE_LAST; i++) {
		ScMessageState state = SC_STATE_LAST;
		g_assert_true (sc_message_state_from_string (sc_message_state_to_string (i), &state));
		g_assert_cmpuint (state, ==, i);
	}
	g_assert_cmpstr (sc_message_state_to_string (SC_STATE_DEFERRED), ==, "deferred");
	{
		ScMessageState state = SC_STATE_LAST;
		g_assert_false (sc_message_state_from_string ("Queued", &state));
		g_assert_false (sc_message_state_from_string (NULL, &state));
		g_assert_cmpuint (state, ==, SC_STATE_LAST);
	}
	g_assert_cmpstr (sc_outcome_to_string (SC_OUTCOME_OK), ==, "ok");
	g_assert_cmpstr (sc_outcome_to_string (SC_OUTCOME_TRANSIENT), ==, "transient");
	g_assert_cmpstr (sc_outcome_to_string (SC_OUTCOME_PERMANENT), ==, "permanent");
	g_assert_cmpstr (sc_outcome_to_string (SC_OUTCOME_CRASHED), ==, "crashed");
	g_assert_cmpstr (sc_outcome_to_string (SC_OUTCOME_RELEASED), ==, "released");
}

/* ---- open ---- */

static void
test_open_creates_and_migrates (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mode = db_text (fixture, "PRAGMA journal_mode");

	g_assert_cmpint (sc_spool_schema_version, >=, 1);
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_spool_schema_version);
	g_assert_cmpstr (mode, ==, "wal");
	g_assert_true (g_file_test (fixture->spool->folder, G_FILE_TEST_IS_DIR));
	g_assert_cmpstr (fixture->spool->folder, ==, fixture->dir);
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
		g_assert_cmpint (sqlite3_prepare_v2 (sc_spool_get_db (fixture->spool), "PRAGMA foreign_keys", -1, &stmt, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
		g_assert_cmpint (sqlite3_column_int (stmt, 0), ==, 1);
		sqlite3_finalize (stmt);
		g_assert_cmpint (sqlite3_prepare_v2 (sc_spool_get_db (fixture->spool), "PRAGMA synchronous", -1, &stmt, NULL), ==, SQLITE_OK);
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
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_spool_schema_version);
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
	db_exec (fixture->observer, "PRAGMA user_version = %d", sc_spool_schema_version + 1);
	spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_null (spool);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, fixture->dir));
	g_assert_nonnull (strstr (error->message, "newer"));
	/* and left as it was */
	g_assert_cmpint (db_int (fixture, "PRAGMA user_version"), ==, sc_spool_schema_version + 1);
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

static void
test_inject (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	const char *body = "Subject: hi\r\n\r\nbody\r\n";
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autofree char *other = inject (fixture, "l.example.org");
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(GPtrArray) recipients = NULL;
	g_autoptr(GPtrArray) stages = NULL;
	gint64 due = 0;

	g_assert_cmpuint (strlen (queue_id), ==, 16);
	for (const char *p = queue_id; *p != '\0'; p++)
		g_assert_true (g_ascii_isxdigit (*p));
	g_assert_cmpstr (queue_id, !=, other);
	g_assert_cmpstr (s->queue_id, ==, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_assert_cmpstr (s->list_id, ==, "l.example.org");
	g_assert_cmpstr (s->sender, ==, "owner@example.org");
	g_assert_cmpstr (s->subject, ==, "subject of Subject: hi\r\n\r\nbody\r\n");
	g_assert_cmpstr (s->message_id, ==, "<id@example.org>");
	g_assert_cmpstr (s->pipeline, ==, PIPELINE);
	g_assert_null (s->last_error);
	g_assert_null (s->hold_reason);
	g_assert_cmpuint (s->attempts, ==, 0);
	g_assert_cmpuint (s->cycle, ==, 1);
	g_assert_cmpint (s->created_at, ==, T0);
	g_assert_cmpint (s->updated_at, ==, T0);
	g_assert_cmpint (s->next_attempt_at, ==, T0);
	g_assert_cmpint (s->size, ==, (gint64) strlen (body));

	raw = sc_spool_get_raw (fixture->spool, s->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpmem (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw), body, strlen (body));
	recipients = sc_spool_get_recipients (fixture->spool, s->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (recipients->len, ==, 3);
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->address, ==, "a@example.org");
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->status, ==, "pending");
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[2])->address, ==, "c@example.com");
	stages = sc_spool_get_stages (fixture->spool, s->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (stages->len, ==, 0);

	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_QUEUED), ==, 2);
	g_assert_cmpint (count_of (fixture, "l.example.org", SC_STATE_QUEUED), ==, 2);
	g_assert_cmpint (count_of (fixture, "other.example.org", SC_STATE_QUEUED), ==, 0);
	/* durably there, seen from another connection */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE queue_id = '%s'", queue_id), ==, 1);

	/* the null sender and an empty body are accepted */
	{
		static const char *const rcpt[] = {"x@example.org", NULL};
		g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
		ScNewMessage message = {.list_id = "l.example.org", .sender = "", .recipients = rcpt,
					.pipeline = "decorate", .raw = empty, .now = T0};
		g_autofree char *id = sc_spool_inject (fixture->spool, &message, &error);
		g_autoptr(ScMessageSummary) e = NULL;
		g_autoptr(GBytes) back = NULL;
		g_assert_no_error (error);
		e = summary (fixture, id);
		g_assert_cmpstr (e->sender, ==, "");
		g_assert_null (e->subject);
		g_assert_cmpint (e->size, ==, 0);
		back = sc_spool_get_raw (fixture->spool, e->rowid, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (g_bytes_get_size (back), ==, 0);
	}
}

static void
test_get_summary_not_found (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScMessageSummary) s = sc_spool_get_summary (fixture->spool, "0123456789abcdef", &error);

	g_assert_null (s);
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
	g_clear_error (&error);
	g_assert_null (sc_spool_get_raw (fixture->spool, 4242, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
}

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

/* ---- claim ---- */

static void
test_claim_order_and_limit (Fixture *fixture, gconstpointer user_data)
{
	/* injected out of order: claimed by next_attempt_at, oldest first */
	g_autofree char *late = inject_full (fixture, "l.example.org", PIPELINE, "late", T0 - 1 * MINUTE);
	g_autofree char *early = inject_full (fixture, "l.example.org", PIPELINE, "early", T0 - 3 * MINUTE);
	g_autofree char *middle = inject_full (fixture, "l.example.org", PIPELINE, "middle", T0 - 2 * MINUTE);
	g_autoptr(GPtrArray) first = claim (fixture, "runner-a", 2);
	g_autoptr(GPtrArray) second = NULL;
	g_autoptr(GPtrArray) none = NULL;
	g_autoptr(GHashTable) got = g_hash_table_new (g_str_hash, g_str_equal);
	ScMessage *m;

	g_assert_cmpuint (first->len, ==, 2);
	for (guint i = 0; i < first->len; i++)
		g_hash_table_add (got, ((ScMessage *) first->pdata[i])->queue_id);
	g_assert_true (g_hash_table_contains (got, early));
	g_assert_true (g_hash_table_contains (got, middle));
	second = claim (fixture, "runner-b", 5);
	g_assert_cmpuint (second->len, ==, 1);
	m = second->pdata[0];
	g_assert_cmpstr (m->queue_id, ==, late);
	/* the claimed message, in full */
	g_assert_cmpstr (m->list_id, ==, "l.example.org");
	g_assert_cmpstr (m->sender, ==, "owner@example.org");
	g_assert_cmpuint (g_strv_length (m->recipients), ==, 3);
	g_assert_cmpstr (m->recipients[1], ==, "b@example.net");
	g_assert_cmpuint (g_strv_length (m->pipeline), ==, 3);
	g_assert_cmpstr (m->pipeline[2], ==, "exec:deliver");
	g_assert_nonnull (m->completed);
	g_assert_cmpuint (g_strv_length (m->completed), ==, 0);
	g_assert_cmpstr (sc_message_next_stage (m), ==, "decorate");
	g_assert_cmpuint (m->attempts, ==, 0);
	g_assert_cmpuint (m->crashes, ==, 0);
	g_assert_cmpint (m->cycle_started_at, ==, T0 - 1 * MINUTE);
	g_assert_cmpmem (g_bytes_get_data (m->raw, NULL), g_bytes_get_size (m->raw), "late", 4);
	g_assert_true (g_bytes_equal (m->current, m->raw));
	/* leased in the database */
	g_assert_cmpint (state_of (fixture, late), ==, SC_STATE_ACTIVE);
	{
		g_autofree char *owner = db_text (fixture, "SELECT lease_owner FROM messages WHERE queue_id = '%s'", late);
		g_assert_cmpstr (owner, ==, "runner-b");
	}
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE queue_id = '%s'", late), ==, T0 + LEASE);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 3);
	/* nothing left */
	none = claim (fixture, "runner-c", 5);
	g_assert_cmpuint (none->len, ==, 0);
	{
		g_autoptr(GError) error = NULL;
		gint64 due = 0;
		g_assert_false (sc_spool_next_due (fixture->spool, &due, &error));
		g_assert_no_error (error);
	}
}

static void
test_claim_limit_one_earliest (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *b = inject_full (fixture, "l.example.org", PIPELINE, "b", T0 - 10);
	g_autofree char *a = inject_full (fixture, "l.example.org", PIPELINE, "a", T0 - 20);
	g_autofree char *future = inject_full (fixture, "l.example.org", PIPELINE, "f", T0 + 1);
	g_autoptr(ScMessage) m1 = claim_one (fixture, "r", a);
	g_autoptr(ScMessage) m2 = claim_one (fixture, "r", b);

	assert_nothing_due (fixture);
	sc_clock_advance (fixture->clock, 1);
	{
		g_autoptr(ScMessage) m3 = claim_one (fixture, "r", future);
	}
}

/* ---- transitions ---- */

static void
test_transition_to_done (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", queue_id);
	g_autoptr(GBytes) decorated = g_bytes_new_static ("DECORATED", 9);
	g_autoptr(GBytes) output = NULL;
	g_autoptr(GPtrArray) stages = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	ScStageResult r;

	/* queued → active → active: decorate ok, with output, keeps the lease */
	sc_clock_advance (fixture->clock, 2 * SEC);
	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	r.output = decorated;
	r.note = "footer added";
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
	{
		g_autofree char *owner = db_text (fixture, "SELECT lease_owner FROM messages WHERE queue_id = '%s'", queue_id);
		g_assert_cmpstr (owner, ==, "runner-a");
	}
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE queue_id = '%s'", queue_id), ==, T0 + LEASE);
	output = sc_spool_get_stage_output (fixture->spool, m->rowid, "decorate", &error);
	g_assert_no_error (error);
	g_assert_true (g_bytes_equal (output, decorated));

	/* active → active: archive ok, no output */
	sc_clock_advance (fixture->clock, SEC);
	g_strfreev (m->completed);
	m->completed = g_strsplit ("decorate", ";", -1);
	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	g_assert_cmpstr (r.stage, ==, "archive");
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_null (sc_spool_get_stage_output (fixture->spool, m->rowid, "archive", &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
	g_clear_error (&error);

	/* active → done */
	sc_clock_advance (fixture->clock, SEC);
	g_strfreev (m->completed);
	m->completed = g_strsplit ("decorate;archive", ";", -1);
	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_DONE);
	r.mailer = "relay1";
	g_assert_cmpstr (r.stage, ==, "exec:deliver");
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);

	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DONE);
	g_assert_cmpint (db_int (fixture, "SELECT lease_owner IS NULL AND lease_expires_at IS NULL AND next_attempt_at IS NULL"
				 " FROM messages WHERE queue_id = '%s'", queue_id), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT updated_at FROM messages WHERE queue_id = '%s'", queue_id), ==, T0 + 4 * SEC);
	stages = sc_spool_get_stages (fixture->spool, m->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (stages->len, ==, 3);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[0])->stage, ==, "decorate");
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[0])->note, ==, "footer added");
	g_assert_cmpint (((ScStageRecord *) stages->pdata[0])->output_size, ==, 9);
	g_assert_cmpint (((ScStageRecord *) stages->pdata[0])->completed_at, ==, T0 + 2 * SEC);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[1])->stage, ==, "archive");
	g_assert_cmpint (((ScStageRecord *) stages->pdata[1])->output_size, ==, -1);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[2])->stage, ==, "exec:deliver");
	attempts = sc_spool_get_attempts (fixture->spool, m->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (attempts->len, ==, 3);
	for (guint i = 0; i < attempts->len; i++) {
		ScAttemptRecord *a = attempts->pdata[i];
		g_assert_cmpint (a->outcome, ==, SC_OUTCOME_OK);
		g_assert_cmpuint (a->cycle, ==, 1);
		g_assert_cmpint (a->finished_at - a->started_at, ==, SEC);
	}
	g_assert_cmpstr (((ScAttemptRecord *) attempts->pdata[2])->mailer, ==, "relay1");
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DONE), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 0);
	assert_nothing_due (fixture);
	assert_counts_match (fixture, NULL);
}

static void
test_transition_deferred (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", queue_id);
	g_autoptr(ScMessage) again = NULL;
	g_autoptr(GBytes) decorated = g_bytes_new_static ("DECORATED", 9);
	g_autoptr(ScMessageSummary) s = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	ScStageResult r;
	gint64 due = 0;

	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	r.output = decorated;
	record (fixture, "runner-a", &r);
	g_strfreev (m->completed);
	m->completed = g_strsplit ("decorate", ";", -1);
	/* archive fails transiently: deferred for 30 s */
	sc_clock_advance (fixture->clock, SEC);
	r = result_for (fixture, m, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	r.next_attempt_at = sc_clock_now (fixture->clock) + 30 * SEC;
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);

	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_DEFERRED);
	g_assert_cmpint (s->next_attempt_at, ==, T0 + 31 * SEC);
	g_assert_cmpuint (s->attempts, ==, 1);
	g_assert_cmpstr (s->last_error, ==, "451 4.3.0 try again later");
	g_assert_cmpint (db_int (fixture, "SELECT lease_owner IS NULL AND lease_expires_at IS NULL FROM messages WHERE queue_id = '%s'", queue_id), ==, 1);
	attempts = sc_spool_get_attempts (fixture->spool, m->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (attempts->len, ==, 2);
	g_assert_cmpstr (((ScAttemptRecord *) attempts->pdata[1])->stage, ==, "archive");
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[1])->outcome, ==, SC_OUTCOME_TRANSIENT);
	g_assert_cmpstr (((ScAttemptRecord *) attempts->pdata[1])->error, ==, "451 4.3.0 try again later");
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 31 * SEC);

	/* not claimable until due */
	assert_nothing_due (fixture);
	sc_clock_advance (fixture->clock, 29 * SEC);
	assert_nothing_due (fixture);
	sc_clock_advance (fixture->clock, SEC); /* exactly due */
	again = claim_one (fixture, "runner-b", queue_id);
	/* resumes at archive, with decorate's output as the current bytes */
	g_assert_cmpstr (sc_message_next_stage (again), ==, "archive");
	g_assert_cmpuint (again->attempts, ==, 1);
	g_assert_true (g_bytes_equal (again->current, decorated));
	g_assert_false (g_bytes_equal (again->raw, decorated));
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEFERRED), ==, 0);
	assert_counts_match (fixture, NULL);
}

static void
test_transition_dead (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", queue_id);
	g_autofree char *second = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m2 = claim_one (fixture, "runner-a", second);
	g_autoptr(ScMessageSummary) s = NULL;
	g_autofree char *kind = NULL;
	g_autofree char *qid = NULL;
	g_autofree char *detail = NULL;
	ScStageResult r;

	sc_clock_advance (fixture->clock, SEC);
	r = result_for (fixture, m, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	r.error = "message cannot be parsed";
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_DEAD);
	g_assert_cmpstr (s->last_error, ==, "message cannot be parsed");
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL AND lease_owner IS NULL FROM messages WHERE queue_id = '%s'", queue_id), ==, 1);
	/* a notification, durable, in the same commit */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 1);
	kind = db_text (fixture, "SELECT kind FROM notifications");
	qid = db_text (fixture, "SELECT queue_id FROM notifications");
	detail = db_text (fixture, "SELECT detail FROM notifications");
	g_assert_cmpstr (kind, ==, "message.dead");
	g_assert_cmpstr (qid, ==, queue_id);
	g_assert_cmpstr (detail, ==, "message cannot be parsed");
	g_assert_cmpint (db_int (fixture, "SELECT message_id FROM notifications"), ==, m->rowid);
	g_assert_cmpint (db_int (fixture, "SELECT state = 'pending' AND next_attempt_at = %" G_GINT64_FORMAT " FROM notifications", T0 + SEC), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT outcome = 'permanent' FROM attempts WHERE message_id = %" G_GINT64_FORMAT, m->rowid), ==, 1);

	/* the dead notification is part of the result's transaction: if it
	 * cannot be written, nothing of the result is */
	db_exec (fixture->observer,
		 "CREATE TRIGGER no_notify BEFORE INSERT ON notifications BEGIN SELECT RAISE(ABORT, 'refused'); END");
	r = result_for (fixture, m2, SC_OUTCOME_TRANSIENT, SC_STATE_DEAD);
	{
		ScStageResult *one = &r;
		g_assert_false (sc_spool_record_results (fixture->spool, "runner-a", &one, 1, NULL, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
		g_clear_error (&error);
	}
	g_assert_cmpint (state_of (fixture, second), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE message_id = %" G_GINT64_FORMAT, m2->rowid), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEAD), ==, 1);
	db_exec (fixture->observer, "DROP TRIGGER no_notify");
	/* out of time after a transient failure: dead too */
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_cmpint (state_of (fixture, second), ==, SC_STATE_DEAD);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 2);
	g_assert_cmpint (count_of (fixture, "l.example.org", SC_STATE_DEAD), ==, 2);
	assert_counts_match (fixture, NULL);
}

static void
test_result_batch (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-a", NULL);
	ScStageResult ra = result_for (fixture, ma, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	ScStageResult rb = result_for (fixture, mb, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	ScStageResult *both[] = {&ra, &rb};
	guint stale = 99;

	rb.next_attempt_at = T0 + MINUTE;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", both, 2, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts"), ==, 2);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEFERRED), ==, 1);
	/* nothing to record: TRUE, zero stale */
	stale = 99;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", NULL, 0, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 0);
}

static void
test_result_stale_owner (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autofree char *fresh = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) lost = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) kept = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) taken = NULL;
	g_autofree char *before = NULL;
	g_autofree char *after = NULL;
	const char *const alive[] = {"runner-a", "runner-b", NULL};
	ScStageResult r_lost;
	ScStageResult r_kept;
	ScStageResult *both[2];
	guint stale = 99;
	gint64 lost_rowid = lost->rowid;

	/* runner-a hangs past its lease: runner-b takes one message back */
	db_exec (fixture->observer, "UPDATE messages SET lease_expires_at = %" G_GINT64_FORMAT " WHERE id = %" G_GINT64_FORMAT,
		 T0 + SEC, lost_rowid);
	sc_clock_advance (fixture->clock, 2 * SEC);
	g_assert_cmpuint (reclaim (fixture, "runner-b", alive, 3), ==, 1);
	taken = claim_one (fixture, "runner-b", lost->queue_id);

	before = db_text (fixture, "SELECT json_array(state, lease_owner, lease_expires_at, attempts, updated_at, last_error,"
				   " (SELECT count(*) FROM stages WHERE message_id = m.id),"
				   " (SELECT count(*) FROM attempts WHERE message_id = m.id))"
				   " FROM messages m WHERE id = %" G_GINT64_FORMAT, lost_rowid);
	/* runner-a wakes up and reports both: the lost one is skipped */
	sc_clock_advance (fixture->clock, SEC);
	r_lost = result_for (fixture, lost, SC_OUTCOME_OK, SC_STATE_DONE);
	r_kept = result_for (fixture, kept, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	both[0] = &r_lost;
	both[1] = &r_kept;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", both, 2, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 1);
	after = db_text (fixture, "SELECT json_array(state, lease_owner, lease_expires_at, attempts, updated_at, last_error,"
				  " (SELECT count(*) FROM stages WHERE message_id = m.id),"
				  " (SELECT count(*) FROM attempts WHERE message_id = m.id))"
				  " FROM messages m WHERE id = %" G_GINT64_FORMAT, lost_rowid);
	g_assert_cmpstr (after, ==, before);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_ACTIVE);
	/* the kept one went through */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages WHERE message_id = %" G_GINT64_FORMAT, kept->rowid), ==, 1);

	/* a failure from the old owner is skipped too */
	r_lost = result_for (fixture, lost, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	g_assert_cmpuint (record (fixture, "runner-a", &r_lost), ==, 1);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications"), ==, 0);
	/* the new owner's result stands */
	r_lost = result_for (fixture, taken, SC_OUTCOME_OK, SC_STATE_DONE);
	g_assert_cmpuint (record (fixture, "runner-b", &r_lost), ==, 0);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_DONE);
	/* and a late result on a finished message changes nothing */
	r_lost = result_for (fixture, lost, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	r_lost.next_attempt_at = T0 + HOUR;
	g_assert_cmpuint (record (fixture, "runner-a", &r_lost), ==, 1);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_DONE);
	/* an unknown row is stale, not an error */
	r_lost.rowid = 999999;
	g_assert_cmpuint (record (fixture, "runner-a", &r_lost), ==, 1);
	assert_counts_match (fixture, NULL);
}

/* ---- leases and crashes ---- */

static void
test_reclaim_dead_owner (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-dead", queue_id);
	g_autoptr(ScMessage) again = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	g_autoptr(ScMessageSummary) s = NULL;
	const char *const alive[] = {"runner-b", NULL};
	ScStageResult r;
	gint64 due = 0;

	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	record (fixture, "runner-dead", &r);
	/* the process dies while archive runs; its lease has not expired */
	sc_clock_advance (fixture->clock, 10 * SEC);
	g_assert_cmpuint (reclaim (fixture, "runner-b", alive, 3), ==, 1);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_assert_cmpint (s->next_attempt_at, ==, T0 + 10 * SEC);
	g_assert_nonnull (s->last_error);
	g_assert_nonnull (strstr (s->last_error, "runner-dead"));
	g_assert_null (s->hold_reason);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE id = %" G_GINT64_FORMAT, m->rowid), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT lease_owner IS NULL AND lease_expires_at IS NULL FROM messages WHERE id = %" G_GINT64_FORMAT, m->rowid), ==, 1);
	attempts = sc_spool_get_attempts (fixture->spool, m->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (attempts->len, ==, 2);
	g_assert_cmpstr (((ScAttemptRecord *) attempts->pdata[1])->stage, ==, "archive");
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[1])->outcome, ==, SC_OUTCOME_CRASHED);
	g_assert_cmpuint (((ScAttemptRecord *) attempts->pdata[1])->cycle, ==, 1);
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[1])->finished_at, ==, T0 + 10 * SEC);
	/* due at once, and resumes at archive */
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 10 * SEC);
	again = claim_one (fixture, "runner-b", queue_id);
	g_assert_cmpstr (sc_message_next_stage (again), ==, "archive");
	g_assert_cmpuint (again->crashes, ==, 1);
	/* a second reclaim finds nothing: runner-b is alive and leased */
	g_assert_cmpuint (reclaim (fixture, "runner-c", alive, 3), ==, 0);
	assert_counts_match (fixture, NULL);
}

static void
test_reclaim_rules (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) claimed = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	const char *const owners[] = {"self", "alive-fresh", "alive-expired", "dead-1", "dead-1", "dead-2"};
	const char *const alive[] = {"self", "alive-fresh", "alive-expired", NULL};
	OwnerCheck check = {.alive = alive};
	g_autoptr(GError) error = NULL;
	guint count;

	for (guint i = 0; i < G_N_ELEMENTS (owners); i++) {
		g_ptr_array_add (ids, inject (fixture, "l.example.org"));
		g_ptr_array_add (claimed, claim_one (fixture, owners[i], NULL));
	}
	g_assert_true (renew_one (fixture, "alive-fresh", claimed->pdata[1], T0 + HOUR, &error));
	g_assert_no_error (error);
	/* past every lease but alive-fresh's renewed one */
	sc_clock_set (fixture->clock, T0 + LEASE + SEC);
	count = reclaim_checked (fixture, "self", &check, 3);
	/* alive-expired, dead-1 twice, dead-2; not self (its own business), not alive-fresh */
	g_assert_cmpuint (count, ==, 4);
	/* each owner asked about once, self never */
	g_assert_cmpuint (check.calls, ==, 4);
	for (guint i = 0; i < claimed->len; i++) {
		ScMessage *m = claimed->pdata[i];
		ScMessageState expected = (i == 0 || i == 1) ? SC_STATE_ACTIVE : SC_STATE_QUEUED;
		g_assert_cmpint (state_of (fixture, m->queue_id), ==, expected);
	}
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'crashed' AND stage = 'decorate'"), ==, 4);
	assert_counts_match (fixture, NULL);
}

static void
test_reclaim_crash_limit (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *poison = inject (fixture, "l.example.org");
	g_autoptr(ScMessageSummary) s = NULL;
	gint64 due = 0;

	for (guint crash = 1; crash <= 3; crash++) {
		g_autofree char *owner = g_strdup_printf ("runner-%u", crash);
		g_autoptr(ScMessage) m = claim_one (fixture, owner, poison);
		g_assert_cmpuint (m->crashes, ==, crash - 1);
		sc_clock_advance (fixture->clock, SEC);
		g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 3), ==, 1);
		g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE queue_id = '%s'", poison), ==, crash);
		if (crash < 3)
			g_assert_cmpint (state_of (fixture, poison), ==, SC_STATE_QUEUED);
	}
	s = summary (fixture, poison);
	g_assert_cmpint (s->state, ==, SC_STATE_HELD);
	g_assert_nonnull (s->hold_reason);
	g_assert_nonnull (strstr (s->hold_reason, "3"));
	g_assert_nonnull (strstr (s->hold_reason, "crash"));
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL AND lease_owner IS NULL FROM messages WHERE queue_id = '%s'", poison), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'crashed'"), ==, 3);
	/* held: not due, not claimable */
	g_assert_false (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_no_error (error);
	assert_nothing_due (fixture);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_HELD), ==, 1);
	/* an operator releases it: due, with a fresh crash count */
	{
		ScAuditContext audit = audit_at (fixture);
		g_autoptr(ScMessage) m = NULL;
		g_assert_true (sc_spool_release (fixture->spool, poison, &audit, &error));
		g_assert_no_error (error);
		m = claim_one (fixture, "runner-4", poison);
		g_assert_cmpuint (m->crashes, ==, 0);
	}
	assert_counts_match (fixture, NULL);
}

static void
test_lease_renew (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-b", NULL);
	const char *const alive[] = {"runner-a", "runner-b", NULL};

	sc_clock_advance (fixture->clock, 4 * MINUTE);
	g_assert_true (renew_one (fixture, "runner-a", ma, sc_clock_now (fixture->clock) + LEASE, &error));
	g_assert_no_error (error);
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE id = %" G_GINT64_FORMAT, ma->rowid), ==, T0 + 9 * MINUTE);
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0 + LEASE);
	/* after the first lease ran out: only runner-b's message goes back */
	sc_clock_advance (fixture->clock, 2 * MINUTE);
	g_assert_cmpuint (reclaim (fixture, "runner-c", alive, 3), ==, 1);
	g_assert_cmpint (state_of (fixture, ma->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (state_of (fixture, mb->queue_id), ==, SC_STATE_QUEUED);
	/* renewing touches only active rows: b's row stays unleased */
	g_assert_true (renew_one (fixture, "runner-b", mb, T0 + HOUR, &error));
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at IS NULL FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, 1);
}

static void
test_lease_release_owner (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autofree char *c = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) mb = NULL;
	g_autoptr(ScMessage) mb2 = NULL;
	g_autoptr(ScMessage) mc = NULL;
	ScStageResult r;
	gint64 due = 0;

	/* b has failed once before */
	mb = claim_one (fixture, "runner-a", NULL);
	r = result_for (fixture, mb, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	r.next_attempt_at = T0 - SEC; /* due before c */
	record (fixture, "runner-a", &r);
	mb2 = claim_one (fixture, "runner-a", mb->queue_id);
	mc = claim_one (fixture, "runner-other", NULL);

	sc_clock_advance (fixture->clock, 20 * SEC);
	g_assert_true (sc_spool_release_owner (fixture->spool, "runner-a", sc_clock_now (fixture->clock), &error));
	g_assert_no_error (error);
	g_assert_cmpint (state_of (fixture, ma->queue_id), ==, SC_STATE_QUEUED);
	g_assert_cmpint (state_of (fixture, mb->queue_id), ==, SC_STATE_DEFERRED);
	g_assert_cmpint (state_of (fixture, mc->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE lease_owner IS NOT NULL"), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE next_attempt_at = %" G_GINT64_FORMAT, T0 + 20 * SEC), ==, 2);
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 20 * SEC);
	{
		g_autoptr(GPtrArray) back = claim (fixture, "runner-a2", 10);
		g_assert_cmpuint (back->len, ==, 2);
	}
	assert_counts_match (fixture, NULL);
}

static void
test_next_due (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = NULL;
	g_autofree char *b = NULL;
	g_autoptr(ScMessage) m = NULL;
	gint64 due = -1;
	ScAuditContext audit = audit_at (fixture);

	g_assert_false (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_no_error (error);
	g_assert_cmpint (due, ==, -1);
	a = inject_full (fixture, "l.example.org", PIPELINE, "a", T0 + 5 * SEC);
	b = inject_full (fixture, "l.example.org", PIPELINE, "b", T0 + 9 * SEC);
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 5 * SEC);
	/* held messages are not due */
	g_assert_true (sc_spool_hold (fixture->spool, a, NULL, &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 9 * SEC);
	/* nor active ones */
	sc_clock_set (fixture->clock, T0 + 10 * SEC);
	m = claim_one (fixture, "r", b);
	g_assert_false (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_no_error (error);
}

/* ---- counts ---- */

static void
test_counts_random_walk (Fixture *fixture, gconstpointer user_data)
{
	static const char *const lists[] = {"a.example.org", "b.example.org", "c.example.org"};
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) claimed = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	g_autoptr(GPtrArray) owners = g_ptr_array_new (); /* parallel to claimed */
	GRand *rand = g_rand_new_with_seed (20261123);
	ScAuditContext audit = audit_at (fixture);

	for (guint step = 0; step < 600; step++) {
		g_autoptr(GError) error = NULL;
		guint op = g_rand_int_range (rand, 0, 10);
		const char *queue_id = ids->len > 0 ? ids->pdata[g_rand_int_range (rand, 0, ids->len)] : NULL;

		sc_clock_advance (fixture->clock, SEC);
		audit.now = sc_clock_now (fixture->clock);
		if (op == 0 || op == 2 || queue_id == NULL) {
			g_ptr_array_add (ids, inject (fixture, lists[g_rand_int_range (rand, 0, 3)]));
		} else if (op == 3) {
			const char *owner = g_rand_boolean (rand) ? "r1" : "r2";
			g_autoptr(GPtrArray) got = claim (fixture, owner, g_rand_int_range (rand, 1, 4));
			while (got->len > 0) {
				g_ptr_array_add (claimed, g_ptr_array_steal_index (got, 0));
				g_ptr_array_add (owners, (gpointer) owner);
			}
		} else if ((op == 4 || op == 1) && claimed->len > 0) {
			guint i = g_rand_int_range (rand, 0, claimed->len);
			ScMessage *m = claimed->pdata[i];
			const char *owner = owners->pdata[i];
			static const ScMessageState next[] = {SC_STATE_ACTIVE, SC_STATE_DONE, SC_STATE_DEFERRED, SC_STATE_DEAD};
			ScMessageState state = next[g_rand_int_range (rand, 0, 4)];
			ScStageResult r;
			if (sc_message_next_stage (m) == NULL)
				state = SC_STATE_DONE;
			r = result_for (fixture, m, state == SC_STATE_DONE || state == SC_STATE_ACTIVE ? SC_OUTCOME_OK : SC_OUTCOME_TRANSIENT, state);
			r.next_attempt_at = sc_clock_now (fixture->clock) + g_rand_int_range (rand, 0, 5) * SEC;
			/* now and then the wrong owner reports: skipped */
			if (g_rand_int_range (rand, 0, 5) == 0)
				owner = strcmp (owner, "r1") == 0 ? "r2" : "r1";
			record (fixture, owner, &r);
			if (state == SC_STATE_ACTIVE) {
				/* goes on with the next stage under the same lease */
				g_autofree char *done_stages = m->completed[0] != NULL ? g_strjoinv (";", m->completed) : NULL;
				g_autofree char *joined = done_stages != NULL ? g_strconcat (done_stages, ";", r.stage, NULL) : g_strdup (r.stage);
				g_strfreev (m->completed);
				m->completed = g_strsplit (joined, ";", -1);
			} else {
				g_ptr_array_remove_index_fast (claimed, i);
				g_ptr_array_remove_index_fast (owners, i);
			}
		} else if (op == 5) {
			const char *const alive[] = {"r1", NULL};
			reclaim (fixture, "r3", alive, 2);
		} else if (op == 6) {
			g_assert_true (sc_spool_release_owner (fixture->spool, g_rand_boolean (rand) ? "r1" : "r2", audit.now, &error));
		} else if (op == 7) {
			if (!sc_spool_hold (fixture->spool, queue_id, "test", &audit, &error))
				g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID) ||
					       g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND));
			g_clear_error (&error);
			if (!sc_spool_release (fixture->spool, ids->pdata[g_rand_int_range (rand, 0, ids->len)], &audit, &error))
				g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID) ||
					       g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND));
		} else if (op == 8) {
			if (!sc_spool_retry (fixture->spool, queue_id, g_rand_boolean (rand) ? "archive" : NULL, &audit, &error))
				g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID) ||
					       g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND));
		} else if (op == 9) {
			if (!sc_spool_delete (fixture->spool, queue_id, &audit, &error))
				g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID) ||
					       g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND));
		}
		assert_counts_match (fixture, NULL);
		if (step % 10 == 0) {
			for (guint l = 0; l < G_N_ELEMENTS (lists); l++)
				assert_counts_match (fixture, lists[l]);
		}
	}
	for (guint l = 0; l < G_N_ELEMENTS (lists); l++)
		assert_counts_match (fixture, lists[l]);
	/* every state was visited, so the walk did test the triggers */
	for (guint s = 0; s < SC_STATE_LAST; s++)
		g_test_message ("%s: %" G_GINT64_FORMAT " rows in state_counts, %" G_GINT64_FORMAT " messages", sc_message_state_to_string (s),
				db_int (fixture, "SELECT count(*) FROM state_counts WHERE state = '%s'", sc_message_state_to_string (s)),
				db_int (fixture, "SELECT count(*) FROM messages WHERE state = '%s'", sc_message_state_to_string (s)));
	for (guint s = 0; s < SC_STATE_LAST; s++)
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM state_counts WHERE state = '%s'", sc_message_state_to_string (s)), >, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit WHERE action = 'delete'"), >, 0);
	/* a state invariant: active ⇔ leased; queued/deferred ⇒ due time */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE (state = 'active') != (lease_owner IS NOT NULL)"), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state IN ('queued','deferred') AND next_attempt_at IS NULL"), ==, 0);
	g_rand_free (rand);
}

/* ---- listing ---- */

static void
assert_listed (GPtrArray *summaries, const char *const *queue_ids)
{
	guint n = queue_ids != NULL ? g_strv_length ((char **) queue_ids) : 0;

	g_assert_cmpuint (summaries->len, ==, n);
	for (guint i = 0; i < n; i++)
		g_assert_cmpstr (((ScMessageSummary *) summaries->pdata[i])->queue_id, ==, queue_ids[i]);
}

static GPtrArray *
list_messages (Fixture *fixture, const ScMessageSearch *filter)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *result = sc_spool_search (fixture->spool, filter, &error);

	g_assert_no_error (error);
	g_assert_nonnull (result);
	return result;
}

static void
test_list_filters (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a1 = inject (fixture, "a.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "r", a1);
	g_autofree char *b1 = inject (fixture, "b.example.org");
	g_autofree char *a2 = inject (fixture, "a.example.org");
	g_autofree char *b2 = inject (fixture, "b.example.org");
	ScAuditContext audit = audit_at (fixture);
	g_autoptr(GError) error = NULL;

	g_assert_true (sc_spool_hold (fixture->spool, b2, "spam?", &audit, &error));
	g_assert_no_error (error);
	{
		ScMessageSearch f = {0};
		g_autoptr(GPtrArray) all = list_messages (fixture, &f);
		assert_listed (all, (const char *const[]){b2, a2, b1, a1, NULL});
		g_assert_cmpint (((ScMessageSummary *) all->pdata[0])->state, ==, SC_STATE_HELD);
		g_assert_cmpstr (((ScMessageSummary *) all->pdata[0])->hold_reason, ==, "spam?");
		g_assert_cmpint (((ScMessageSummary *) all->pdata[3])->state, ==, SC_STATE_ACTIVE);
	}
	{
		ScMessageSearch f = {.list_id = "a.example.org"};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, (const char *const[]){a2, a1, NULL});
	}
	{
		ScMessageSearch f = {.has_state = TRUE, .state = SC_STATE_QUEUED};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, (const char *const[]){a2, b1, NULL});
	}
	{
		ScMessageSearch f = {.has_state = TRUE, .state = SC_STATE_QUEUED, .list_id = "b.example.org"};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, (const char *const[]){b1, NULL});
	}
	{
		ScMessageSearch f = {.has_state = TRUE, .state = SC_STATE_DEAD};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, NULL);
	}
	{
		ScMessageSearch f = {.list_id = "nosuch.example.org"};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, NULL);
	}
	{
		ScMessageSearch f = {.limit = 3};
		g_autoptr(GPtrArray) got = list_messages (fixture, &f);
		assert_listed (got, (const char *const[]){b2, a2, b1, NULL});
	}
}

static void
test_list_keyset (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GPtrArray) injected = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	ScMessageSearch filter = {.list_id = "a.example.org", .limit = 3};
	guint pages = 0;
	gint64 previous = G_MAXINT64;

	for (guint i = 0; i < 20; i++) {
		g_ptr_array_add (injected, inject (fixture, "a.example.org"));
		g_free (inject (fixture, "b.example.org"));
	}
	for (;;) {
		g_autoptr(GPtrArray) page = list_messages (fixture, &filter);
		if (page->len == 0)
			break;
		pages++;
		g_assert_cmpuint (page->len, <=, 3);
		for (guint i = 0; i < page->len; i++) {
			ScMessageSummary *s = page->pdata[i];
			g_assert_cmpint (s->rowid, <, previous);
			previous = s->rowid;
			g_assert_cmpstr (s->list_id, ==, "a.example.org");
			g_assert_true (g_hash_table_add (seen, g_strdup (s->queue_id)));
		}
		filter.after_rowid = ((ScMessageSummary *) page->pdata[page->len - 1])->rowid;
		/* new mail arrives between pages: it neither shifts nor repeats rows */
		g_free (inject (fixture, "a.example.org"));
		g_free (inject (fixture, "b.example.org"));
		g_assert_cmpuint (pages, <, 100);
	}
	g_assert_cmpuint (pages, ==, 7);
	g_assert_cmpuint (g_hash_table_size (seen), ==, 20);
	for (guint i = 0; i < injected->len; i++)
		g_assert_true (g_hash_table_contains (seen, injected->pdata[i]));
}

/* ---- operator actions ---- */

typedef struct {
	char *actor;
	char *remote;
	char *action;
	char *queue_id;
	char *detail;
	gint64 at;
} AuditRow;

static void
audit_row_free (AuditRow *row)
{
	g_free (row->actor);
	g_free (row->remote);
	g_free (row->action);
	g_free (row->queue_id);
	g_free (row->detail);
	g_free (row);
}

/* Every audit row, oldest first, read with a plain sqlite3 connection. */
static GPtrArray *
read_audit (Fixture *fixture)
{
	GPtrArray *rows = g_ptr_array_new_with_free_func ((GDestroyNotify) audit_row_free);
	sqlite3_stmt *stmt = NULL;

	g_assert_cmpint (sqlite3_prepare_v2 (fixture->observer,
					     "SELECT actor, remote, action, queue_id, detail, at FROM audit ORDER BY id",
					     -1, &stmt, NULL), ==, SQLITE_OK);
	while (sqlite3_step (stmt) == SQLITE_ROW) {
		AuditRow *row = g_new0 (AuditRow, 1);
		row->actor = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
		row->remote = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
		row->action = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
		row->queue_id = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
		row->detail = g_strdup ((const char *) sqlite3_column_text (stmt, 4));
		row->at = sqlite3_column_int64 (stmt, 5);
		g_ptr_array_add (rows, row);
	}
	sqlite3_finalize (stmt);
	return rows;
}

/* Drives a message to dead after decorate succeeded and archive failed. */
/* Injected a day early so that it is the first due, whatever else is queued. */
static char *
inject_first (Fixture *fixture, const char *list_id)
{
	return inject_full (fixture, list_id, PIPELINE, "first", sc_clock_now (fixture->clock) - 24 * HOUR);
}

static char *
make_dead (Fixture *fixture, const char *list_id)
{
	g_autofree char *queue_id = inject_first (fixture, list_id);
	g_autoptr(ScMessage) m = claim_one (fixture, "r", queue_id);
	ScStageResult r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);

	record (fixture, "r", &r);
	g_strfreev (m->completed);
	m->completed = g_strsplit ("decorate", ";", -1);
	r = result_for (fixture, m, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	r.attempts = 4;
	record (fixture, "r", &r);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DEAD);
	return g_steal_pointer (&queue_id);
}

static char *
make_done (Fixture *fixture, const char *list_id)
{
	g_autofree char *queue_id = inject_first (fixture, list_id);
	g_autoptr(ScMessage) m = claim_one (fixture, "r", queue_id);

	for (guint i = 0; i < 3; i++) {
		ScStageResult r = result_for (fixture, m, SC_OUTCOME_OK, i < 2 ? SC_STATE_ACTIVE : SC_STATE_DONE);
		record (fixture, "r", &r);
		g_strfreev (m->completed);
		m->completed = g_strsplit (i == 0 ? "decorate" : "decorate;archive", ";", -1);
	}
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DONE);
	return g_steal_pointer (&queue_id);
}

static void
test_admin_retry (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = make_dead (fixture, "l.example.org");
	g_autoptr(ScMessageSummary) s = NULL;
	g_autoptr(ScMessage) m = NULL;
	g_autoptr(GPtrArray) audit_rows = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	ScAuditContext audit;
	AuditRow *row;

	sc_clock_advance (fixture->clock, HOUR);
	audit = audit_at (fixture);
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, NULL, &audit, &error));
	g_assert_no_error (error);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_assert_cmpuint (s->cycle, ==, 2);
	g_assert_cmpuint (s->attempts, ==, 0);
	g_assert_cmpint (s->next_attempt_at, ==, T0 + HOUR);
	g_assert_cmpint (db_int (fixture, "SELECT cycle_started_at FROM messages WHERE id = %" G_GINT64_FORMAT, s->rowid), ==, T0 + HOUR);
	/* history kept, and the finished stage is not run again */
	attempts = sc_spool_get_attempts (fixture->spool, s->rowid, &error);
	g_assert_cmpuint (attempts->len, ==, 2);
	m = claim_one (fixture, "r", queue_id);
	g_assert_cmpstr (sc_message_next_stage (m), ==, "archive");
	g_assert_cmpint (m->cycle_started_at, ==, T0 + HOUR);
	g_assert_cmpuint (m->attempts, ==, 0);
	{
		/* attempts now belong to cycle 2 */
		ScStageResult r = result_for (fixture, m, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
		r.next_attempt_at = T0 + 2 * HOUR;
		record (fixture, "r", &r);
		g_assert_cmpint (db_int (fixture, "SELECT cycle FROM attempts WHERE message_id = %" G_GINT64_FORMAT " ORDER BY id DESC LIMIT 1", s->rowid), ==, 2);
	}
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 1);
	row = audit_rows->pdata[0];
	g_assert_cmpstr (row->actor, ==, "alice");
	g_assert_cmpstr (row->remote, ==, "192.0.2.7");
	g_assert_cmpstr (row->action, ==, "retry");
	g_assert_cmpstr (row->queue_id, ==, queue_id);
	g_assert_null (row->detail);
	g_assert_cmpint (row->at, ==, T0 + HOUR);
	/* a deferred message may be retried at once, too */
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, NULL, &audit, &error));
	g_assert_no_error (error);
	g_clear_pointer (&s, sc_message_summary_free);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_assert_cmpuint (s->cycle, ==, 3);
	assert_counts_match (fixture, NULL);
}

static void
test_admin_retry_from_stage (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = make_done (fixture, "l.example.org");
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	g_autoptr(GPtrArray) stages = NULL;
	g_autoptr(GPtrArray) audit_rows = NULL;
	ScAuditContext audit = audit_at (fixture);

	/* a done message needs --from-stage */
	g_assert_false (sc_spool_retry (fixture->spool, queue_id, NULL, &audit, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_clear_error (&error);
	/* a stage not in its pipeline is refused and nothing changes */
	g_assert_false (sc_spool_retry (fixture->spool, queue_id, "deliver", &audit, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, "deliver"));
	g_clear_error (&error);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_DONE);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages WHERE message_id = %" G_GINT64_FORMAT, s->rowid), ==, 3);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 0);

	/* from archive: decorate's record stays, archive and later go */
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, "archive", &audit, &error));
	g_assert_no_error (error);
	stages = sc_spool_get_stages (fixture->spool, s->rowid, &error);
	g_assert_cmpuint (stages->len, ==, 1);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[0])->stage, ==, "decorate");
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_QUEUED);
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "r", queue_id);
		g_assert_cmpstr (sc_message_next_stage (m), ==, "archive");
		/* active: refused */
		g_assert_false (sc_spool_retry (fixture->spool, queue_id, "decorate", &audit, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
		g_clear_error (&error);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages WHERE message_id = %" G_GINT64_FORMAT, s->rowid), ==, 1);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
		g_assert_true (sc_spool_release_owner (fixture->spool, "r", T0, &error));
	}
	/* from the first stage: everything is forgotten */
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, "decorate", &audit, &error));
	g_assert_no_error (error);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages WHERE message_id = %" G_GINT64_FORMAT, s->rowid), ==, 0);
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 2);
	g_assert_cmpstr (((AuditRow *) audit_rows->pdata[0])->detail, ==, "archive");
	g_assert_cmpstr (((AuditRow *) audit_rows->pdata[1])->detail, ==, "decorate");
	/* unknown queue id */
	g_assert_false (sc_spool_retry (fixture->spool, "ffffffffffffffff", NULL, &audit, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
	assert_counts_match (fixture, NULL);
}

static void
test_admin_retry_matching (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) audit_rows = NULL;
	g_autofree char *queued = NULL;
	ScAuditContext audit = audit_at (fixture);
	guint count = 99;

	for (guint i = 0; i < 3; i++)
		g_ptr_array_add (ids, make_dead (fixture, "a.example.org"));
	for (guint i = 0; i < 2; i++)
		g_ptr_array_add (ids, make_dead (fixture, "b.example.org"));
	queued = inject (fixture, "a.example.org");
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEAD), ==, 5);

	g_assert_true (sc_spool_retry_matching (fixture->spool, SC_STATE_DEAD, "a.example.org", &audit, &count, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (count, ==, 3);
	g_assert_cmpint (count_of (fixture, "a.example.org", SC_STATE_DEAD), ==, 0);
	g_assert_cmpint (count_of (fixture, "b.example.org", SC_STATE_DEAD), ==, 2);
	g_assert_cmpint (count_of (fixture, "a.example.org", SC_STATE_QUEUED), ==, 4);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE cycle = 2"), ==, 3);
	g_assert_true (sc_spool_retry_matching (fixture->spool, SC_STATE_DEAD, NULL, &audit, &count, &error));
	g_assert_cmpuint (count, ==, 2);
	g_assert_true (sc_spool_retry_matching (fixture->spool, SC_STATE_DEAD, NULL, &audit, &count, &error));
	g_assert_cmpuint (count, ==, 0);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEAD), ==, 0);
	/* the queued message was not part of it */
	g_assert_cmpint (db_int (fixture, "SELECT cycle FROM messages WHERE queue_id = '%s'", queued), ==, 1);
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 3);
	g_assert_cmpstr (((AuditRow *) audit_rows->pdata[0])->action, ==, "retry-bulk");
	g_assert_nonnull (strstr (((AuditRow *) audit_rows->pdata[0])->detail, "count=3"));
	g_assert_nonnull (strstr (((AuditRow *) audit_rows->pdata[0])->detail, "a.example.org"));
	g_assert_nonnull (strstr (((AuditRow *) audit_rows->pdata[1])->detail, "count=2"));
	g_assert_nonnull (strstr (((AuditRow *) audit_rows->pdata[2])->detail, "count=0"));

	/* leased messages are never touched by a bulk retry */
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "r", NULL);
		g_assert_false (sc_spool_retry_matching (fixture->spool, SC_STATE_ACTIVE, NULL, &audit, &count, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
		g_clear_error (&error);
		g_assert_cmpint (state_of (fixture, m->queue_id), ==, SC_STATE_ACTIVE);
	}
	/* nor done ones (retry one with --from-stage instead) */
	g_free (make_done (fixture, "a.example.org"));
	g_assert_false (sc_spool_retry_matching (fixture->spool, SC_STATE_DONE, NULL, &audit, &count, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_clear_error (&error);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DONE), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM audit"), ==, 3);
	assert_counts_match (fixture, NULL);
}

static void
test_admin_hold_release_delete (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *dead = make_dead (fixture, "l.example.org");
	g_autofree char *done = make_done (fixture, "l.example.org");
	g_autofree char *deferred = inject (fixture, "l.example.org");
	g_autofree char *active = NULL;
	g_autofree char *queued = NULL;
	g_autoptr(ScMessage) m = NULL;
	g_autoptr(GPtrArray) audit_rows = NULL;
	ScAuditContext audit = audit_at (fixture);
	gint64 dead_rowid;

	m = claim_one (fixture, "r", deferred);
	{
		ScStageResult r = result_for (fixture, m, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
		r.next_attempt_at = T0 + HOUR;
		record (fixture, "r", &r);
	}
	g_clear_pointer (&m, sc_message_free);
	active = inject (fixture, "l.example.org");
	m = claim_one (fixture, "r", active);
	queued = inject (fixture, "l.example.org");
	sc_clock_advance (fixture->clock, SEC);
	audit.now = sc_clock_now (fixture->clock);

	/* hold: from queued, deferred and dead only */
	g_assert_true (sc_spool_hold (fixture->spool, queued, "wait for the moderator", &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_hold (fixture->spool, deferred, NULL, &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_hold (fixture->spool, dead, NULL, &audit, &error));
	g_assert_no_error (error);
	for (const char *const *id = (const char *const[]){queued, active, done, NULL}; *id != NULL; id++) {
		g_assert_false (sc_spool_hold (fixture->spool, *id, NULL, &audit, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
		g_clear_error (&error);
	}
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queued);
		g_assert_cmpint (s->state, ==, SC_STATE_HELD);
		g_assert_cmpstr (s->hold_reason, ==, "wait for the moderator");
		g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at IS NULL FROM messages WHERE id = %" G_GINT64_FORMAT, s->rowid), ==, 1);
	}
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, deferred);
		g_assert_cmpint (s->state, ==, SC_STATE_HELD);
		g_assert_nonnull (s->hold_reason);
	}
	assert_nothing_due (fixture);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_HELD), ==, 3);

	/* release: from held only; one that had failed comes back deferred */
	sc_clock_advance (fixture->clock, MINUTE);
	audit.now = sc_clock_now (fixture->clock);
	g_assert_true (sc_spool_release (fixture->spool, queued, &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_release (fixture->spool, deferred, &audit, &error));
	g_assert_no_error (error);
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queued);
		g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
		g_assert_null (s->hold_reason);
		g_assert_cmpint (s->next_attempt_at, ==, audit.now);
	}
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, deferred);
		g_assert_cmpint (s->state, ==, SC_STATE_DEFERRED);
		g_assert_cmpint (s->next_attempt_at, ==, audit.now);
	}
	for (const char *const *id = (const char *const[]){queued, active, done, NULL}; *id != NULL; id++) {
		g_assert_false (sc_spool_release (fixture->spool, *id, &audit, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
		g_clear_error (&error);
	}

	/* delete: anything but active; the rows go with it */
	g_assert_false (sc_spool_delete (fixture->spool, active, &audit, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_clear_error (&error);
	g_assert_cmpint (state_of (fixture, active), ==, SC_STATE_ACTIVE);
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, dead);
		dead_rowid = s->rowid;
	}
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE message_id = %" G_GINT64_FORMAT, dead_rowid), ==, 1);
	g_assert_true (sc_spool_delete (fixture->spool, dead, &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_delete (fixture->spool, done, &audit, &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_delete (fixture->spool, queued, &audit, &error));
	g_assert_no_error (error);
	{
		g_autoptr(ScMessageSummary) gone = sc_spool_get_summary (fixture->spool, dead, &error);
		g_assert_null (gone);
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
		g_clear_error (&error);
	}
	g_assert_false (sc_spool_delete (fixture->spool, dead, &audit, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
	g_clear_error (&error);
	for (const char *const *table = (const char *const[]){"bodies", "stages", "attempts", "recipients", NULL}; *table != NULL; table++)
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM %s WHERE message_id = %" G_GINT64_FORMAT, *table, dead_rowid), ==, 0);
	/* the outbox keeps the notification, unlinked */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE message_id IS NULL AND queue_id = '%s'", dead), ==, 1);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages"), ==, 2);
	assert_counts_match (fixture, NULL);
	assert_counts_match (fixture, "l.example.org");

	/* the audit log has exactly the actions that happened */
	audit_rows = read_audit (fixture);
	{
		static const char *const expected[] = {"hold", "hold", "hold", "release", "release", "delete", "delete", "delete"};
		g_assert_cmpuint (audit_rows->len, ==, G_N_ELEMENTS (expected));
		for (guint i = 0; i < audit_rows->len; i++) {
			AuditRow *row = audit_rows->pdata[i];
			g_assert_cmpstr (row->action, ==, expected[i]);
			g_assert_cmpstr (row->actor, ==, "alice");
		}
		g_assert_cmpstr (((AuditRow *) audit_rows->pdata[0])->queue_id, ==, queued);
		g_assert_cmpstr (((AuditRow *) audit_rows->pdata[0])->detail, ==, "wait for the moderator");
		g_assert_cmpstr (((AuditRow *) audit_rows->pdata[5])->queue_id, ==, dead);
	}
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
		g_autofree char *plan = explain (db, sc_spool_sql_text (checked[i].sql));
		g_test_message ("%s\n%s", sc_spool_sql_text (checked[i].sql), plan);
		if (strstr (plan, "SCAN messages") != NULL)
			g_error ("full scan of messages in:\n%s\nplan:\n%s", sc_spool_sql_text (checked[i].sql), plan);
		/* a sort of the candidates would read every due message */
		if (checked[i].must_use != NULL && strstr (plan, "TEMP B-TREE") != NULL)
			g_error ("sorting in:\n%s\nplan:\n%s", sc_spool_sql_text (checked[i].sql), plan);
		if (checked[i].must_use != NULL && strstr (plan, checked[i].must_use) == NULL)
			g_error ("%s not used by:\n%s\nplan:\n%s", checked[i].must_use, sc_spool_sql_text (checked[i].sql), plan);
	}
	/* the counts never read messages at all */
	{
		g_autofree char *plan = explain (db, sc_spool_sql_text (SC_SQL_COUNT_ALL));
		g_assert_null (strstr (plan, "messages"));
	}
}

static void
test_plan_empty (Fixture *fixture, gconstpointer user_data)
{
	assert_plans (fixture->observer);
	assert_plans (sc_spool_get_db (fixture->spool));
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
	assert_plans (sc_spool_get_db (fixture->spool));

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
	sqlite3 *db = sc_spool_get_db (fixture->spool);
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
		g_autoptr(GBytes) back = sc_spool_get_raw (fixture->spool, s->rowid, &error);
		g_assert_no_error (error);
		g_assert_true (g_bytes_equal (back, big));
	}
}

/* ---- programming errors fail loudly ---- */

static void
test_bind_unknown_parameter (Fixture *fixture, gconstpointer user_data)
{
	if (g_test_subprocess ()) {
		g_autoptr(ScStatement) stmt = sc_spool_statement (fixture->spool, SC_SQL_NEXT_DUE, NULL);
		g_assert_nonnull (stmt);
		sc_bind_text (stmt, ":nosuch", "x");
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed ();
	g_test_trap_assert_stderr ("*no such bind parameter :nosuch*");
}

/* The one table of what operators may do in each state (issue 10): a
 * leased message allows nothing, a done one only --from-stage and delete,
 * bulk retry takes dead and deferred. */
static void
test_state_actions (void)
{
	/* rows: states in enum order; columns: retry, from-stage, matching, hold, release, delete */
	static const char *const expected[SC_STATE_LAST] = {
	    [SC_STATE_QUEUED] = "YY-Y-Y",
	    [SC_STATE_ACTIVE] = "------",
	    [SC_STATE_DEFERRED] = "YYYY-Y",
	    [SC_STATE_HELD] = "YY--YY",
	    [SC_STATE_DONE] = "-Y---Y",
	    [SC_STATE_DEAD] = "YYYY-Y",
	};

	for (guint state = 0; state < SC_STATE_LAST; state++)
		for (guint action = 0; action < SC_ACTION_LAST; action++)
			g_assert_cmpint (sc_message_state_allows (state, action), ==,
					 expected[state][action] == 'Y');
}

static void
test_state_out_of_range (void)
{
	if (g_test_subprocess ()) {
		(void) sc_message_state_to_string (SC_STATE_LAST);
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed ();
	g_test_trap_assert_stderr ("*CRITICAL*state < SC_STATE_LAST*");
}

/* A memory budget stops a claim early, but never below one message. */
static void
test_claim_memory_budget (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	gint64 now;
	g_autofree char *first = inject (fixture, "a.example.org");
	g_autofree char *second = inject (fixture, "a.example.org");
	g_autofree char *third = inject (fixture, "a.example.org");
	g_autoptr(GPtrArray) one = NULL;
	g_autoptr(GPtrArray) two = NULL;
	g_autoptr(ScMessageSummary) s = summary (fixture, first);

	now = sc_clock_now (fixture->clock);
	/* no room at all still takes one: a big message must not wait forever */
	one = sc_spool_claim_within (fixture->spool, "r", now, now + LEASE, 10, 0, TRUE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (one->len, ==, 1);
	/* room for one and a half messages: one */
	g_clear_pointer (&one, g_ptr_array_unref);
	one = sc_spool_claim_within (fixture->spool, "r", now, now + LEASE, 10, s->size + s->size / 2, TRUE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (one->len, ==, 1);
	g_assert_cmpint (state_of (fixture, third), ==, SC_STATE_QUEUED);
	/* with work in flight (take_first FALSE) a message over budget waits */
	two = sc_spool_claim_within (fixture->spool, "r", now, now + LEASE, 10, s->size - 1, FALSE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (two->len, ==, 0);
	g_assert_cmpint (state_of (fixture, third), ==, SC_STATE_QUEUED);
	g_clear_pointer (&two, g_ptr_array_unref);
	/* nothing left over was leased by the early stop */
	two = sc_spool_claim_within (fixture->spool, "r", now, now + LEASE, 10, G_MAXUINT64, TRUE, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (two->len, ==, 1);
	g_assert_cmpint (state_of (fixture, third), ==, SC_STATE_ACTIVE);
	(void) second;
}

static int
synchronous_level (ScSpool *spool)
{
	sqlite3_stmt *stmt = NULL;
	int level;

	g_assert_cmpint (sqlite3_prepare_v2 (spool->db, "PRAGMA synchronous", -1, &stmt, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	level = sqlite3_column_int (stmt, 0);
	sqlite3_finalize (stmt);
	return level;
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

/* Issue 7, defect 3: of a dead runner's claims only those a handler was
 * running are blamed; the merely claimed go back at once, uncounted. */
static void
test_reclaim_blames_in_handler_only (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-dead", a);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-dead", b);
	g_autoptr(GArray) running = g_array_new (FALSE, FALSE, sizeof (ScLease));
	ScLease lease = lease_of (ma);
	OwnerCheck check = {.in_handler = running};
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) attempts = NULL;

	g_array_append_val (running, lease);
	sc_clock_advance (fixture->clock, SEC);
	g_assert_cmpuint (reclaim_checked (fixture, "runner-b", &check, 3), ==, 2);
	/* a: its handler ran; blamed, due after the innocent */
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_QUEUED);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM messages WHERE id = %" G_GINT64_FORMAT, ma->rowid), ==, T0 + SEC);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE id = %" G_GINT64_FORMAT, ma->rowid), ==, 1);
	/* b: only claimed; back at once, no crash counted, last error untouched */
	g_assert_cmpint (state_of (fixture, b), ==, SC_STATE_QUEUED);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT last_error IS NULL FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, 1);
	attempts = sc_spool_get_attempts (fixture->spool, mb->rowid, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (attempts->len, ==, 1);
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[0])->outcome, ==, SC_OUTCOME_RELEASED);
	assert_counts_match (fixture, NULL);
}

/* Issue 7, defect 3: a message held after crashes raises a notification. */
static void
test_reclaim_held_notifies (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *poison = inject (fixture, "l.example.org");

	for (guint crash = 1; crash <= 3; crash++) {
		g_autofree char *owner = g_strdup_printf ("runner-%u", crash);
		g_autoptr(ScMessage) m = NULL;
		sc_clock_advance (fixture->clock, HOUR);
		m = claim_one (fixture, owner, poison);
		g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 3), ==, 1);
	}
	g_assert_cmpint (state_of (fixture, poison), ==, SC_STATE_HELD);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE kind = 'message.held'"
				 " AND queue_id = '%s' AND detail LIKE '%%crashing%%'", poison), ==, 1);
}

/* Issue 7, defect 2: this runner's own claims go back once their lease
 * ran out if it no longer works on them; the ones in flight stay. */
static void
test_reclaim_own_dropped_claims (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "self", a);
	g_autoptr(ScMessage) mb = claim_one (fixture, "self", b);
	g_autoptr(GArray) in_flight = g_array_new (FALSE, FALSE, sizeof (ScLease));
	ScLease lease = lease_of (ma);
	OwnerCheck check = {.in_flight = in_flight};

	g_array_append_val (in_flight, lease);
	/* before the lease ends nothing moves */
	g_assert_cmpuint (reclaim_checked (fixture, "self", &check, 3), ==, 0);
	sc_clock_set (fixture->clock, T0 + LEASE + SEC);
	g_assert_cmpuint (reclaim_checked (fixture, "self", &check, 3), ==, 1);
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (state_of (fixture, b), ==, SC_STATE_QUEUED);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, 0);
}

/* Issue 7, defect 1: a lease is one claim's.  The same runner claims a
 * message again after it was taken back: the first claim's job can record
 * neither its result nor recipient states, and renewing it does nothing. */
static void
test_lease_generation (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) first = claim_one (fixture, "runner-a", a);
	g_autoptr(ScMessage) second = NULL;
	g_autoptr(GError) error = NULL;
	ScStageResult old_result;
	ScStageResult *one = &old_result;
	ScRecipientUpdate update = {
	    .rowid = first->rowid,
	    .lease_generation = first->lease_generation,
	    .position = 0,
	    .status = "sent",
	    .code = 250,
	    .at = T0,
	};
	guint stale = 0;

	/* the runner gives the claim back (as a failed commit once did) and
	 * claims the message again, under the same owner name */
	g_assert_true (sc_spool_release_owner (fixture->spool, "runner-a", T0, &error));
	second = claim_one (fixture, "runner-a", a);
	g_assert_cmpint (second->lease_generation, >, first->lease_generation);

	old_result = result_for (fixture, first, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", &one, 1, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 1);
	g_assert_false (old_result.applied);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM stages WHERE message_id = %" G_GINT64_FORMAT, first->rowid), ==, 0);

	{
		/* the stale claim's recipient group is left out alone; the
		 * batch itself commits */
		ScRecipientGroup group = {&update, 1, FALSE};
		g_assert_true (sc_spool_commit_batch (fixture->spool, "runner-a", &group, 1, NULL, 0, &error));
		g_assert_no_error (error);
		g_assert_true (group.lease_lost);
		g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM recipients WHERE status = 'sent'"), ==, 0);
	}

	{
		ScLease lease = lease_of (first);
		gint64 before = db_int (fixture, "SELECT lease_expires_at FROM messages WHERE queue_id = '%s'", a);
		g_assert_true (sc_spool_renew_leases (fixture->spool, "runner-a", &lease, 1, T0 + HOUR, &error));
		g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE queue_id = '%s'", a), ==, before);
	}
	/* the current claim records */
	{
		ScStageResult result = result_for (fixture, second, SC_OUTCOME_OK, SC_STATE_ACTIVE);
		one = &result;
		g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", &one, 1, &stale, &error));
		g_assert_cmpuint (stale, ==, 0);
		g_assert_true (result.applied);
	}
}

/* Issue 7, defect 8: a stepped wall clock moves stored waits once. */
static void
test_clock_step (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", a);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-a", b);
	ScStageResult r = result_for (fixture, mb, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	g_autoptr(GError) error = NULL;
	gint64 step = -1;
	gint64 boot = 1000 * SEC;

	r.next_attempt_at = T0 + MINUTE;
	record (fixture, "runner-a", &r);
	/* the first look only writes the anchor */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0, boot, "boot-1", 3 * SEC, &step, &error));
	g_assert_no_error (error);
	g_assert_cmpint (step, ==, 0);
	/* 10 s later by both clocks: nothing */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 10 * SEC, boot + 10 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 0);
	/* the wall clock stepped back an hour */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 20 * SEC - HOUR, boot + 20 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, -HOUR);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0 + MINUTE - HOUR);
	g_assert_cmpint (db_int (fixture, "SELECT cycle_started_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0 - HOUR);
	g_assert_cmpint (db_int (fixture, "SELECT lease_expires_at FROM messages WHERE id = %" G_GINT64_FORMAT, ma->rowid), ==, T0 + LEASE - HOUR);
	/* a second runner looking at the same moment applies nothing more */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 20 * SEC - HOUR, boot + 20 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0 + MINUTE - HOUR);
	/* forward two hours */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 30 * SEC + HOUR, boot + 30 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 2 * HOUR);
	g_assert_cmpint (db_int (fixture, "SELECT cycle_started_at FROM messages WHERE id = %" G_GINT64_FORMAT, mb->rowid), ==, T0 + HOUR);
	/* after a reboot the boot clock restarts: no comparison, no step */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 5 * HOUR, 5 * SEC, "boot-2", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 0);
}

/* A stage that recorded recipient states in its claim was killed while
 * delivering, not killing the runner: the crash is recorded, not counted. */
static void
test_reclaim_progress_not_counted (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autoptr(GError) error = NULL;

	for (guint crash = 1; crash <= 4; crash++) {
		g_autoptr(ScMessage) m = NULL;
		ScRecipientUpdate update = {0};
		sc_clock_advance (fixture->clock, MINUTE);
		m = claim_one (fixture, "runner-a", a);
		update.rowid = m->rowid;
		update.lease_generation = m->lease_generation;
		update.position = 0;
		update.status = "deferred";
		update.code = 451;
		update.at = sc_clock_now (fixture->clock) + SEC;
		{
			ScRecipientGroup group = {&update, 1, FALSE};
			g_assert_true (sc_spool_commit_batch (fixture->spool, "runner-a", &group, 1, NULL, 0, &error));
			g_assert_no_error (error);
			g_assert_false (group.lease_lost);
		}
		sc_clock_advance (fixture->clock, 2 * SEC);
		g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 3), ==, 1);
	}
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_QUEUED);
	g_assert_cmpint (db_int (fixture, "SELECT crashes FROM messages WHERE queue_id = '%s'", a), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'crashed'"), ==, 4);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	g_test_add_func ("/spool/names", test_state_names);
	g_test_add_func ("/spool/names/out-of-range", test_state_out_of_range);
	g_test_add_func ("/spool/states/actions", test_state_actions);
	ADD ("/spool/bind/unknown-parameter", test_bind_unknown_parameter);
	ADD ("/spool/open/creates-and-migrates", test_open_creates_and_migrates);
	ADD ("/spool/open/creates-folder", test_open_creates_folder);
	ADD ("/spool/open/reopen-is-noop", test_open_reopen_noop);
	ADD ("/spool/open/newer-refused", test_open_newer_refused);
	ADD ("/spool/open/not-a-database", test_open_not_a_database);
	ADD ("/spool/inject/basic", test_inject);
	ADD ("/spool/inject/not-found", test_get_summary_not_found);
	ADD ("/spool/inject/atomic", test_inject_atomic);
	ADD ("/spool/claim/order-and-limit", test_claim_order_and_limit);
	ADD ("/spool/claim/only-when-due", test_claim_limit_one_earliest);
	ADD ("/spool/transition/to-done", test_transition_to_done);
	ADD ("/spool/transition/deferred", test_transition_deferred);
	ADD ("/spool/transition/dead", test_transition_dead);
	ADD ("/spool/result/batch", test_result_batch);
	ADD ("/spool/result/stale-owner", test_result_stale_owner);
	ADD ("/spool/reclaim/dead-owner", test_reclaim_dead_owner);
	ADD ("/spool/reclaim/rules", test_reclaim_rules);
	ADD ("/spool/reclaim/crash-limit", test_reclaim_crash_limit);
	ADD ("/spool/reclaim/blames-in-handler-only", test_reclaim_blames_in_handler_only);
	ADD ("/spool/reclaim/held-notifies", test_reclaim_held_notifies);
	ADD ("/spool/reclaim/progress-not-counted", test_reclaim_progress_not_counted);
	ADD ("/spool/reclaim/own-dropped-claims", test_reclaim_own_dropped_claims);
	ADD ("/spool/lease/generation", test_lease_generation);
	ADD ("/spool/lease/renew", test_lease_renew);
	ADD ("/spool/clock/step-moves-waits-once", test_clock_step);
	ADD ("/spool/lease/release-owner", test_lease_release_owner);
	ADD ("/spool/next-due", test_next_due);
	ADD ("/spool/count/random-walk", test_counts_random_walk);
	ADD ("/spool/list/filters", test_list_filters);
	ADD ("/spool/list/keyset", test_list_keyset);
	ADD ("/spool/admin/retry", test_admin_retry);
	ADD ("/spool/admin/retry-from-stage", test_admin_retry_from_stage);
	ADD ("/spool/admin/retry-matching", test_admin_retry_matching);
	ADD ("/spool/admin/hold-release-delete", test_admin_hold_release_delete);
	ADD ("/spool/plan/empty", test_plan_empty);
	ADD ("/spool/plan/large", test_plan_large);
	ADD ("/spool/bad/locked", test_bad_locked);
	ADD ("/spool/bad/full", test_bad_full);
#undef ADD
	g_test_add ("/spool/claim/memory-budget", Fixture, NULL, fixture_setup, test_claim_memory_budget, fixture_teardown);
	g_test_add ("/spool/claim/unsynced-then-full", Fixture, NULL, fixture_setup,
		    test_claim_unsynced_then_full, fixture_teardown);
	return g_test_run ();
}
