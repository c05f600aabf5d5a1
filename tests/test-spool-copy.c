/* test-spool-copy.c — `stagecoach spool-copy` (issue 10): a spool with
 * every kind of record copied whole, ids kept; the copy runs on; a
 * non-empty destination is refused untouched; a copy that fails midway
 * leaves the destination empty; a runner still working on the source
 * stops it; the command line's answers; SQLite → PostgreSQL → SQLite.
 *
 * Equality is checked twice, by means that share nothing with the copy:
 * through the public reads (search, stages, attempts, recipients, bytes,
 * audit, notifications, counts), and for SQLite spools row for row with
 * `SELECT *` on the files themselves (a column the copy forgot shows).
 */
#include "config.h"

#include <sqlite3.h>
#include <string.h>
#include <sysexits.h>

#include "sc-clock.h"
#include "sc-error.h"
#include "sc-owner.h"
#include "sc-spool-backend.h"
#include "sc-spool-copy.h"
#include "sc-spool.h"
#include "sc-sqlite-private.h"
#include "sc-test-postgres.h"
#include "sc-test-spool.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *from_dir;
	char *to_dir;
	ScSpool *from;
	ScClock *clock;
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-spool-copy");
	fixture->from_dir = g_build_filename (fixture->dir, "from", NULL);
	fixture->to_dir = g_build_filename (fixture->dir, "to", NULL);
	fixture->clock = sc_clock_new_fixed (T0);
	fixture->from = sc_spool_open (fixture->from_dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->from, sc_spool_close);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->from_dir);
	g_free (fixture->to_dir);
}

static ScSpool *
open_spool (const char *location)
{
	g_autoptr(GError) error = NULL;
	ScSpool *spool = sc_spool_open (location, BUSY_TIMEOUT, &error);

	g_assert_no_error (error);
	g_assert_nonnull (spool);
	return spool;
}

/* ---- a spool with every kind of record ---- */

static char *
inject_one (ScSpool *spool,
	    gint64 now,
	    const char *list_id,
	    const char *message_id,
	    const char *const *recipients,
	    const char *body,
	    guint *out_duplicates)
{
	g_autoptr(GBytes) raw = g_bytes_new (body, strlen (body));
	g_autoptr(GError) error = NULL;
	g_autofree char *subject = g_strdup_printf ("about %.20s", body);
	const ScNewMessage message = {
	    .list_id = list_id,
	    .sender = "owner@example.org",
	    .recipients = recipients,
	    .pipeline = PIPELINE,
	    .subject = subject,
	    .message_id = message_id,
	    .dedupe = message_id != NULL,
	    .raw = raw,
	    .now = now,
	    .door = "local",
	};
	const ScNewMessage *one = &message;
	char *queue_id = NULL;
	guint duplicates = 0;

	g_assert_true (sc_spool_inject_batch (spool, &one, 1, HOUR, &queue_id, &duplicates, NULL, NULL, &error));
	g_assert_no_error (error);
	if (out_duplicates != NULL)
		*out_duplicates = duplicates;
	return queue_id;
}

/* Runs @stage of @message (claimed; still leased after an ok stage) to @outcome/@next_state, with an output
 * for an ok stage and, when @recipients, recipient states in the same
 * commit. */
static void
run_stage (Fixture *fixture,
	   ScSpool *spool,
	   const char *owner,
	   ScMessage *message,
	   const char *stage,
	   ScOutcome outcome,
	   ScMessageState next_state,
	   gboolean recipients)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) output = g_bytes_new_static ("X-Decorated: yes\r\n\r\nbody\r\n", 26);
	ScStageResult result = sc_test_spool_result_for (fixture->clock, message, outcome, next_state);
	ScStageResult *results[] = {&result};
	const ScRecipientUpdate updates[] = {
	    {message->id, message->lease_generation, 0, "sent", 250, "250 2.0.0 Ok: queued as X1", "mx1",
	     sc_clock_now (fixture->clock)},
	    {message->id, message->lease_generation, 1, "deferred", 451, "451 4.7.1 greylisted",
	     "mx1", sc_clock_now (fixture->clock)},
	    {message->id, message->lease_generation, 2, "failed", 550, "550 5.1.1 no such user \xc3\xa9",
	     NULL, sc_clock_now (fixture->clock)},
	};
	ScRecipientGroup group = {updates, G_N_ELEMENTS (updates), FALSE};

	result.stage = stage;
	if (outcome == SC_OUTCOME_OK) {
		result.output = output;
		result.note = "decorated";
	}
	if (next_state == SC_STATE_DEFERRED)
		result.next_attempt_at = sc_clock_now (fixture->clock) + 10 * MINUTE;
	if (recipients) {
		result.mailer = "mx1";
		result.notification_kind = "recipients.failed";
		result.notification_detail = "c@example.com: 550 5.1.1 no such user";
	}
	g_assert_true (sc_spool_commit_batch (spool, owner, recipients ? &group : NULL, recipients ? 1 : 0,
					      results, 1, TRUE, &error));
	g_assert_no_error (error);
	g_assert_true (result.applied);
	g_assert_false (group.lease_lost);
}

typedef struct {
	char *done;      /* every stage ok */
	char *deferred;  /* a transient failure after a stage, recipient states */
	char *dead;      /* permanent failure */
	char *retried;   /* died, retried by an operator: queued in cycle 2 */
	char *held;      /* held with a reason */
	char *active;    /* leased by a runner that is gone */
	char *queued;    /* untouched, with a duplicate-deduped sibling */
	char *b_list;    /* another list */
} Spool;

static void
spool_clear (Spool *spool)
{
	g_free (spool->done);
	g_free (spool->deferred);
	g_free (spool->dead);
	g_free (spool->retried);
	g_free (spool->held);
	g_free (spool->active);
	g_free (spool->queued);
	g_free (spool->b_list);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Spool, spool_clear)

static const char *const three[] = {"a@example.org", "b@example.net", "c@example.com", NULL};

/* Claims the one due message, which must be @queue_id. */
static ScMessage *
claim_queue_id (Fixture *fixture, ScSpool *spool, const char *owner, const char *queue_id)
{
	return sc_test_spool_claim_one (spool, fixture->clock, owner, queue_id);
}

static void
populate (Fixture *fixture, ScSpool *spool, Spool *out)
{
	const ScAuditContext audit = {"local", "127.0.0.1", sc_clock_now (fixture->clock)};
	static const char *const again[] = {"a@example.org", "new@example.org", NULL};
	g_autoptr(GError) error = NULL;
	g_autofree char *dup = NULL;
	guint duplicates = 0;

	/* one at a time, so that the one due is the one to work on */
	out->done = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", "<done@x>", three,
				"done", NULL);
	{
		/* three stages ok under one claim, recipients recorded with the last */
		g_autoptr(ScMessage) m = claim_queue_id (fixture, spool, "r1", out->done);
		run_stage (fixture, spool, "r1", m, "decorate", SC_OUTCOME_OK, SC_STATE_ACTIVE, FALSE);
		sc_clock_advance (fixture->clock, SEC);
		run_stage (fixture, spool, "r1", m, "archive", SC_OUTCOME_OK, SC_STATE_ACTIVE, FALSE);
		run_stage (fixture, spool, "r1", m, "exec:deliver", SC_OUTCOME_OK, SC_STATE_DONE, TRUE);
	}
	out->deferred = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", "<deferred@x>",
				    three, "deferred", NULL);
	{
		/* decorate ok, then a transient failure with recipient states */
		g_autoptr(ScMessage) m = claim_queue_id (fixture, spool, "r1", out->deferred);
		run_stage (fixture, spool, "r1", m, "decorate", SC_OUTCOME_OK, SC_STATE_ACTIVE, FALSE);
		run_stage (fixture, spool, "r1", m, "archive", SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED, TRUE);
	}
	/* dead twice; one of them retried by an operator */
	out->dead = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", NULL, three, "dead",
				NULL);
	{
		g_autoptr(ScMessage) m = claim_queue_id (fixture, spool, "r1", out->dead);
		run_stage (fixture, spool, "r1", m, "decorate", SC_OUTCOME_PERMANENT, SC_STATE_DEAD, FALSE);
	}
	out->retried = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", NULL, three,
				   "retried", NULL);
	{
		g_autoptr(ScMessage) m = claim_queue_id (fixture, spool, "r1", out->retried);
		run_stage (fixture, spool, "r1", m, "decorate", SC_OUTCOME_PERMANENT, SC_STATE_DEAD, FALSE);
	}
	out->held = inject_one (spool, sc_clock_now (fixture->clock), "b.example.org", NULL, three, "held",
				NULL);
	g_assert_true (sc_spool_hold (spool, out->held, "bounces from \xe2\x80\x9c" "b\xe2\x80\x9d", &audit,
				      &error));
	g_assert_no_error (error);
	/* leased by a runner that no longer runs ("gone" never registered) */
	out->active = inject_one (spool, sc_clock_now (fixture->clock), "b.example.org", NULL, three,
				  "active", NULL);
	sc_message_free (claim_queue_id (fixture, spool, "gone", out->active));
	sc_clock_advance (fixture->clock, SEC);
	g_assert_true (sc_spool_retry (spool, out->retried, NULL, &audit, &error));
	g_assert_no_error (error);
	out->queued = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", "<queued@x>",
				  three, "queued", NULL);
	/* a resend: a@ is left out as a duplicate (audit row), new@ is kept */
	dup = inject_one (spool, sc_clock_now (fixture->clock), "a.example.org", "<queued@x>", again,
			  "queued again", &duplicates);
	g_assert_cmpuint (duplicates, ==, 1);
	g_assert_nonnull (dup);
	out->b_list = inject_one (spool, sc_clock_now (fixture->clock), "b.example.org", "<b@x>", three,
				  "b list", NULL);
	/* the outbox: one event sent, one failed once, the rest pending */
	g_assert_true (sc_spool_notify_insert_event (spool, "backlog.high", "12 due", sc_clock_now (fixture->clock),
						     &error));
	g_assert_no_error (error);
	g_assert_true (sc_spool_notify_insert_event (spool, "mailer.down", NULL, sc_clock_now (fixture->clock),
						     &error));
	g_assert_no_error (error);
	{
		g_autoptr(GPtrArray) due = sc_spool_notify_claim (spool, sc_clock_now (fixture->clock), 100, &error);
		gint64 first;
		gint64 second;
		g_assert_no_error (error);
		g_assert_cmpuint (due->len, >=, 3);
		first = ((ScNotification *) due->pdata[0])->id;
		second = ((ScNotification *) due->pdata[1])->id;
		g_assert_true (sc_spool_notify_mark_sent (spool, &first, 1, sc_clock_now (fixture->clock), &error));
		g_assert_no_error (error);
		g_assert_true (sc_spool_notify_mark_failed (spool, &second, 1, sc_clock_now (fixture->clock) + MINUTE,
							    "HTTP 502", &error));
		g_assert_no_error (error);
	}
}

/* ---- equality through the public reads ---- */

static void
assert_summaries_equal (const ScMessageSummary *a, const ScMessageSummary *b)
{
	g_assert_cmpint (a->id, ==, b->id);
	g_assert_cmpstr (a->queue_id, ==, b->queue_id);
	g_assert_cmpint (a->state, ==, b->state);
	g_assert_cmpstr (a->list_id, ==, b->list_id);
	g_assert_cmpstr (a->sender, ==, b->sender);
	g_assert_cmpstr (a->subject, ==, b->subject);
	g_assert_cmpstr (a->message_id, ==, b->message_id);
	g_assert_cmpstr (a->last_error, ==, b->last_error);
	g_assert_cmpstr (a->hold_reason, ==, b->hold_reason);
	g_assert_cmpstr (a->pipeline, ==, b->pipeline);
	g_assert_cmpuint (a->attempts, ==, b->attempts);
	g_assert_cmpuint (a->cycle, ==, b->cycle);
	g_assert_cmpint (a->created_at, ==, b->created_at);
	g_assert_cmpint (a->next_attempt_at, ==, b->next_attempt_at);
	g_assert_cmpint (a->updated_at, ==, b->updated_at);
	g_assert_cmpint (a->size, ==, b->size);
}

static void
assert_bytes_equal (GBytes *a, GBytes *b)
{
	g_assert_true ((a == NULL) == (b == NULL));
	if (a != NULL)
		g_assert_true (g_bytes_equal (a, b));
}

static void
assert_message_equal (ScSpool *a, ScSpool *b, gint64 id)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) stages_a = sc_spool_get_stages (a, id, &error);
	g_autoptr(GPtrArray) stages_b = sc_spool_get_stages (b, id, &error);
	g_autoptr(GPtrArray) attempts_a = sc_spool_get_attempts (a, id, &error);
	g_autoptr(GPtrArray) attempts_b = sc_spool_get_attempts (b, id, &error);
	g_autoptr(GPtrArray) recipients_a = sc_spool_get_recipients (a, id, &error);
	g_autoptr(GPtrArray) recipients_b = sc_spool_get_recipients (b, id, &error);
	g_autoptr(GBytes) raw_a = sc_spool_get_raw (a, id, &error);
	g_autoptr(GBytes) raw_b = sc_spool_get_raw (b, id, &error);

	g_assert_no_error (error);
	assert_bytes_equal (raw_a, raw_b);
	g_assert_cmpuint (stages_a->len, ==, stages_b->len);
	for (guint i = 0; i < stages_a->len; i++) {
		ScStageRecord *x = stages_a->pdata[i];
		ScStageRecord *y = stages_b->pdata[i];
		g_autoptr(GBytes) out_a = NULL;
		g_autoptr(GBytes) out_b = NULL;
		g_assert_cmpstr (x->stage, ==, y->stage);
		g_assert_cmpint (x->completed_at, ==, y->completed_at);
		g_assert_cmpstr (x->note, ==, y->note);
		g_assert_cmpint (x->output_size, ==, y->output_size);
		if (x->output_size < 0)
			continue; /* none recorded: NOT_FOUND on both */
		out_a = sc_spool_get_stage_output (a, id, x->stage, &error);
		g_assert_no_error (error);
		out_b = sc_spool_get_stage_output (b, id, y->stage, &error);
		g_assert_no_error (error);
		assert_bytes_equal (out_a, out_b);
	}
	g_assert_cmpuint (attempts_a->len, ==, attempts_b->len);
	for (guint i = 0; i < attempts_a->len; i++) {
		ScAttemptRecord *x = attempts_a->pdata[i];
		ScAttemptRecord *y = attempts_b->pdata[i];
		g_assert_cmpstr (x->stage, ==, y->stage);
		g_assert_cmpint (x->outcome, ==, y->outcome);
		g_assert_cmpstr (x->error, ==, y->error);
		g_assert_cmpstr (x->mailer, ==, y->mailer);
		g_assert_cmpuint (x->cycle, ==, y->cycle);
		g_assert_cmpint (x->started_at, ==, y->started_at);
		g_assert_cmpint (x->finished_at, ==, y->finished_at);
	}
	g_assert_cmpuint (recipients_a->len, ==, recipients_b->len);
	for (guint i = 0; i < recipients_a->len; i++) {
		ScRecipientRecord *x = recipients_a->pdata[i];
		ScRecipientRecord *y = recipients_b->pdata[i];
		g_assert_cmpuint (x->position, ==, y->position);
		g_assert_cmpstr (x->address, ==, y->address);
		g_assert_cmpstr (x->status, ==, y->status);
		g_assert_cmpint (x->code, ==, y->code);
		g_assert_cmpstr (x->reply, ==, y->reply);
		g_assert_cmpstr (x->mailer, ==, y->mailer);
		g_assert_cmpint (x->updated_at, ==, y->updated_at);
	}
}

static void
assert_spools_equal (ScSpool *a, ScSpool *b)
{
	g_autoptr(GError) error = NULL;
	const ScMessageSearch all = {0};
	g_autoptr(GPtrArray) messages_a = sc_spool_search (a, &all, &error);
	g_autoptr(GPtrArray) messages_b = sc_spool_search (b, &all, &error);
	g_autoptr(GPtrArray) audit_a = sc_spool_list_audit (a, 0, 0, &error);
	g_autoptr(GPtrArray) audit_b = sc_spool_list_audit (b, 0, 0, &error);
	g_autoptr(GPtrArray) notes_a = sc_spool_list_notifications (a, 0, 0, &error);
	g_autoptr(GPtrArray) notes_b = sc_spool_list_notifications (b, 0, 0, &error);
	g_autoptr(GPtrArray) lists_a = sc_spool_count_by_list (a, &error);
	g_autoptr(GPtrArray) lists_b = sc_spool_count_by_list (b, &error);
	gint64 counts_a[SC_STATE_LAST];
	gint64 counts_b[SC_STATE_LAST];

	g_assert_no_error (error);
	g_assert_cmpuint (messages_a->len, ==, messages_b->len);
	for (guint i = 0; i < messages_a->len; i++) {
		assert_summaries_equal (messages_a->pdata[i], messages_b->pdata[i]);
		assert_message_equal (a, b, ((ScMessageSummary *) messages_a->pdata[i])->id);
	}
	g_assert_cmpuint (audit_a->len, ==, audit_b->len);
	for (guint i = 0; i < audit_a->len; i++) {
		ScAuditEntry *x = audit_a->pdata[i];
		ScAuditEntry *y = audit_b->pdata[i];
		g_assert_cmpint (x->id, ==, y->id);
		g_assert_cmpint (x->at, ==, y->at);
		g_assert_cmpstr (x->actor, ==, y->actor);
		g_assert_cmpstr (x->remote, ==, y->remote);
		g_assert_cmpstr (x->action, ==, y->action);
		g_assert_cmpstr (x->queue_id, ==, y->queue_id);
		g_assert_cmpstr (x->detail, ==, y->detail);
	}
	g_assert_cmpuint (notes_a->len, ==, notes_b->len);
	for (guint i = 0; i < notes_a->len; i++) {
		ScNotificationEntry *x = notes_a->pdata[i];
		ScNotificationEntry *y = notes_b->pdata[i];
		g_assert_cmpint (x->id, ==, y->id);
		g_assert_cmpstr (x->kind, ==, y->kind);
		g_assert_cmpstr (x->queue_id, ==, y->queue_id);
		g_assert_cmpstr (x->detail, ==, y->detail);
		g_assert_cmpint (x->created_at, ==, y->created_at);
		g_assert_cmpstr (x->state, ==, y->state);
		g_assert_cmpuint (x->attempts, ==, y->attempts);
		g_assert_cmpint (x->sent_at, ==, y->sent_at);
		g_assert_cmpstr (x->last_error, ==, y->last_error);
		g_assert_cmpint (x->next_attempt_at, ==, y->next_attempt_at);
	}
	g_assert_cmpuint (lists_a->len, ==, lists_b->len);
	for (guint i = 0; i < lists_a->len; i++) {
		ScListCounts *x = lists_a->pdata[i];
		ScListCounts *y = lists_b->pdata[i];
		g_assert_cmpstr (x->list_id, ==, y->list_id);
		for (guint s = 0; s < SC_STATE_LAST; s++)
			g_assert_cmpint (x->counts[s], ==, y->counts[s]);
	}
	g_assert_true (sc_spool_count_states (a, NULL, counts_a, &error));
	g_assert_true (sc_spool_count_states (b, NULL, counts_b, &error));
	g_assert_no_error (error);
	for (guint s = 0; s < SC_STATE_LAST; s++)
		g_assert_cmpint (counts_a[s], ==, counts_b[s]);
}

/* ---- equality on the files: every column of every row ---- */

/* Its own list, not the copy's: what the schema holds. */
static const char *const sqlite_tables[][2] = {
    {"messages", "id"},
    {"bodies", "message_id"},
    {"stages", "id"},
    {"attempts", "id"},
    {"recipients", "message_id, position"},
    {"notifications", "id"},
    {"audit", "id"},
    {"accepted", "message_id, recipient"},
    /* the counts the destination's triggers made, as the source's */
    {"state_counts WHERE count <> 0", "state, list_id"},
};

static sqlite3 *
open_db (const char *folder)
{
	g_autofree char *path = g_build_filename (folder, "spool.db", NULL);
	sqlite3 *db = NULL;

	g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
	return db;
}

static guint64
assert_files_equal (const char *folder_a, const char *folder_b)
{
	sqlite3 *a = open_db (folder_a);
	sqlite3 *b = open_db (folder_b);
	guint64 values = 0;

	for (gsize t = 0; t < G_N_ELEMENTS (sqlite_tables); t++) {
		g_autofree char *sql =
		    g_strdup_printf ("SELECT * FROM %s ORDER BY %s", sqlite_tables[t][0], sqlite_tables[t][1]);
		sqlite3_stmt *x = NULL;
		sqlite3_stmt *y = NULL;
		int rc_x;
		int rc_y;
		guint rows = 0;

		g_assert_cmpint (sqlite3_prepare_v2 (a, sql, -1, &x, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_prepare_v2 (b, sql, -1, &y, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_column_count (x), ==, sqlite3_column_count (y));
		for (;;) {
			rc_x = sqlite3_step (x);
			rc_y = sqlite3_step (y);
			g_assert_cmpint (rc_x, ==, rc_y);
			if (rc_x != SQLITE_ROW)
				break;
			rows++;
			for (int c = 0; c < sqlite3_column_count (x); c++) {
				int type = sqlite3_column_type (x, c);
				if (type != sqlite3_column_type (y, c))
					g_error ("%s row %u column %s: type %d, copy %d", sqlite_tables[t][0], rows,
						 sqlite3_column_name (x, c), type, sqlite3_column_type (y, c));
				g_assert_cmpint (sqlite3_column_bytes (x, c), ==, sqlite3_column_bytes (y, c));
				if (type == SQLITE_INTEGER)
					g_assert_cmpint (sqlite3_column_int64 (x, c), ==, sqlite3_column_int64 (y, c));
				else if (type != SQLITE_NULL)
					g_assert_cmpmem (sqlite3_column_blob (x, c), sqlite3_column_bytes (x, c),
							 sqlite3_column_blob (y, c), sqlite3_column_bytes (y, c));
				values++;
			}
		}
		g_assert_cmpint (rc_x, ==, SQLITE_DONE);
		g_test_message ("%s: %u rows equal", sqlite_tables[t][0], rows);
		sqlite3_finalize (x);
		sqlite3_finalize (y);
	}
	sqlite3_close (a);
	sqlite3_close (b);
	return values;
}

static gint64
db_count (const char *folder, const char *table)
{
	sqlite3 *db = open_db (folder);
	g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM %s", table);
	sqlite3_stmt *stmt = NULL;
	gint64 count;

	g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
	count = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	sqlite3_close (db);
	return count;
}

/* Nothing in any copied table (nor counted). */
static void
assert_spool_empty (ScSpool *spool)
{
	g_autoptr(GError) error = NULL;
	const ScMessageSearch all = {0};
	g_autoptr(GPtrArray) messages = sc_spool_search (spool, &all, &error);
	g_autoptr(GPtrArray) audit = sc_spool_list_audit (spool, 0, 0, &error);
	g_autoptr(GPtrArray) notes = sc_spool_list_notifications (spool, 0, 0, &error);
	gint64 counts[SC_STATE_LAST];

	g_assert_no_error (error);
	g_assert_cmpuint (messages->len, ==, 0);
	g_assert_cmpuint (audit->len, ==, 0);
	g_assert_cmpuint (notes->len, ==, 0);
	g_assert_true (sc_spool_count_states (spool, NULL, counts, &error));
	g_assert_no_error (error);
	for (guint s = 0; s < SC_STATE_LAST; s++)
		g_assert_cmpint (counts[s], ==, 0);
}

static void
assert_folder_empty (const char *folder)
{
	for (gsize t = 0; t < SC_SPOOL_COPY_N_TABLES; t++)
		g_assert_cmpint (db_count (folder, sc_spool_copy_tables[t].name), ==, 0);
}

static void
copy_ok (ScSpool *from, ScSpool *to, guint64 rows[SC_SPOOL_COPY_N_TABLES])
{
	g_autoptr(GError) error = NULL;

	g_assert_true (sc_spool_copy (from, to, NULL, NULL, rows, &error));
	g_assert_no_error (error);
	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++)
		g_test_message ("copied %s: %" G_GUINT64_FORMAT, sc_spool_copy_tables[t].name, rows[t]);
}

/* ---- what a copy must do after the copy: run on ---- */

static void
assert_runs_on (Fixture *fixture, ScSpool *copy, const Spool *names)
{
	const ScAuditContext audit = {"local", NULL, sc_clock_now (fixture->clock)};
	static const char *const resend[] = {"b@example.net", "fresh@example.org", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(ScMessageSummary) queued = sc_test_spool_summary (copy, names->queued);
	g_autoptr(ScMessageSummary) dead = sc_test_spool_summary (copy, names->dead);
	g_autoptr(ScMessageSummary) before = sc_test_spool_summary (copy, names->b_list);
	g_autoptr(ScMessageSummary) fresh = NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	g_autoptr(GPtrArray) due = NULL;
	g_autofree char *new_id = NULL;
	g_autofree char *dup_id = NULL;
	gint64 max_id = 0;
	guint duplicates = 0;
	const ScMessageSearch all = {0};
	g_autoptr(GPtrArray) every = sc_spool_search (copy, &all, &error);

	g_assert_no_error (error);
	for (guint i = 0; i < every->len; i++)
		max_id = MAX (max_id, ((ScMessageSummary *) every->pdata[i])->id);

	/* a retry of the dead one, and runners claim what is due, ids and all */
	g_assert_true (sc_spool_retry (copy, names->dead, NULL, &audit, &error));
	g_assert_no_error (error);
	sc_clock_advance (fixture->clock, HOUR);
	claimed = sc_test_spool_claim (copy, fixture->clock, "after-copy", 100);
	{
		gboolean saw_queued = FALSE;
		gboolean saw_dead = FALSE;
		for (guint i = 0; i < claimed->len; i++) {
			ScMessage *m = claimed->pdata[i];
			if (strcmp (m->queue_id, names->queued) == 0) {
				g_assert_cmpint (m->id, ==, queued->id);
				saw_queued = TRUE;
			}
			if (strcmp (m->queue_id, names->dead) == 0) {
				g_autoptr(GBytes) body = g_bytes_new_static ("dead", 4);
				g_assert_cmpint (m->id, ==, dead->id);
				g_assert_true (g_bytes_equal (m->raw, body));
				g_assert_cmpuint (g_strv_length (m->completed), ==, 0);
				saw_dead = TRUE;
			}
			if (strcmp (m->queue_id, names->deferred) == 0) {
				/* its decorate output is the current bytes, its earlier try counted */
				g_assert_cmpuint (g_strv_length (m->completed), ==, 1);
				g_assert_cmpuint (m->attempts, ==, 1);
				g_assert_cmpuint (m->recipient_records->len, ==, 3);
			}
		}
		g_assert_true (saw_queued);
		g_assert_true (saw_dead);
		for (guint i = 0; i < claimed->len; i++) {
			ScMessage *m = claimed->pdata[i];
			ScStageResult r = sc_test_spool_result_for (fixture->clock, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
			g_assert_cmpuint (sc_test_spool_record (copy, "after-copy", &r), ==, 0);
		}
	}
	/* the leased one of a runner that is gone comes back */
	{
		ScTestOwnerCheck check = {.all_alive = FALSE};
		g_autoptr(ScMessageSummary) back = NULL;
		g_assert_cmpuint (sc_test_spool_reclaim (copy, "after-copy", &check, sc_clock_now (fixture->clock), 3),
				  ==, 1);
		back = sc_test_spool_summary (copy, names->active);
		g_assert_cmpint (back->state, !=, SC_STATE_ACTIVE);
	}
	/* new messages are numbered after the copied ones */
	new_id = inject_one (copy, sc_clock_now (fixture->clock), "a.example.org", NULL, three, "new", NULL);
	fresh = sc_test_spool_summary (copy, new_id);
	g_assert_cmpint (fresh->id, >, max_id);
	g_assert_cmpint (fresh->id, >, before->id);
	/* the accepted pairs came along: a resend is still a duplicate */
	dup_id = inject_one (copy, sc_clock_now (fixture->clock) - HOUR + MINUTE, "b.example.org", "<b@x>",
			     resend, "b again", &duplicates);
	g_assert_cmpuint (duplicates, ==, 1);
	/* the outbox goes on where it was */
	due = sc_spool_notify_claim (copy, sc_clock_now (fixture->clock), 100, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (due->len, >=, 2);
}

/* ---- the tests ---- */

static void
test_round_trip (Fixture *fixture, gconstpointer data)
{
	g_auto(Spool) names = {0};
	g_autoptr(ScSpool) to = NULL;
	guint64 rows[SC_SPOOL_COPY_N_TABLES];
	guint64 values;

	populate (fixture, fixture->from, &names);
	to = open_spool (fixture->to_dir);
	copy_ok (fixture->from, to, rows);
	g_assert_cmpuint (rows[0], ==, 9);  /* messages */
	g_assert_cmpuint (rows[1], ==, 9);  /* bodies */
	g_assert_cmpuint (rows[2], ==, 4);  /* stages: done 3, deferred 1 */
	g_assert_cmpuint (rows[3], ==, 7);  /* attempts: done 3, deferred 2, dead 1, retried 1 */
	g_assert_cmpuint (rows[4], ==, 25); /* recipients: 8 × 3 + the resend's new@ */
	g_assert_cmpuint (rows[5], ==, 6);  /* notifications: 2 recipients.failed, 2 dead, 2 events */
	g_assert_cmpuint (rows[6], ==, 3);  /* audit: hold, retry, duplicate */
	g_assert_cmpuint (rows[7], ==, 13); /* accepted: done, deferred, queued, b ×3 + new@ */
	assert_spools_equal (fixture->from, to);
	values = assert_files_equal (fixture->from_dir, fixture->to_dir);
	g_test_message ("%" G_GUINT64_FORMAT " values equal", values);

	/* the source is left as it was, and the copy runs on */
	assert_runs_on (fixture, to, &names);
}

static void
test_refuses_non_empty (Fixture *fixture, gconstpointer data)
{
	g_auto(Spool) names = {0};
	g_autoptr(ScSpool) to = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *there = NULL;
	g_autofree char *other_dir = g_build_filename (fixture->dir, "other", NULL);
	g_autoptr(ScSpool) other = NULL;
	g_autofree char *snapshot_dir = g_build_filename (fixture->dir, "snapshot", NULL);

	populate (fixture, fixture->from, &names);
	to = open_spool (fixture->to_dir);
	there = inject_one (to, T0, "c.example.org", NULL, three, "already here", NULL);
	g_assert_false (sc_spool_copy (fixture->from, to, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "messages (1)"));
	g_assert_nonnull (strstr (error->message, "not empty"));
	g_clear_error (&error);
	/* untouched: the one message, nothing of the source */
	g_assert_cmpint (db_count (fixture->to_dir, "messages"), ==, 1);
	g_assert_cmpint (db_count (fixture->to_dir, "recipients"), ==, 3);
	g_assert_cmpint (db_count (fixture->to_dir, "audit"), ==, 0);
	g_assert_cmpint (db_count (fixture->to_dir, "notifications"), ==, 0);
	g_assert_cmpint (sc_test_spool_count_of (to, NULL, SC_STATE_QUEUED), ==, 1);

	/* an outbox event alone is enough to refuse, and is named */
	other = open_spool (other_dir);
	g_assert_true (sc_spool_notify_insert_event (other, "backlog.high", NULL, T0, &error));
	g_assert_no_error (error);
	g_assert_false (sc_spool_copy (fixture->from, other, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, "notifications"));
	g_assert_null (strstr (error->message, "messages"));
	g_clear_error (&error);
	g_assert_cmpint (db_count (other_dir, "notifications"), ==, 1);

	/* the source was only read: a copy of it now equals it */
	{
		g_autoptr(ScSpool) snapshot = open_spool (snapshot_dir);
		guint64 rows[SC_SPOOL_COPY_N_TABLES];
		copy_ok (fixture->from, snapshot, rows);
		assert_files_equal (fixture->from_dir, snapshot_dir);
	}
}

/* A destination that fills up partway through: nothing of the copy is
 * left in it, and once there is room it takes the copy. */
static void
test_failure_leaves_empty (Fixture *fixture, gconstpointer data)
{
	g_auto(Spool) names = {0};
	g_autoptr(ScSpool) to = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *big = g_malloc (256 * 1024 + 1);
	guint64 rows[SC_SPOOL_COPY_N_TABLES];
	sqlite3 *db;
	gint64 pages = 0;

	populate (fixture, fixture->from, &names);
	/* big bodies after the small ones: the copy is well under way when
	 * the room runs out */
	memset (big, 'x', 256 * 1024);
	big[256 * 1024] = '\0';
	for (guint i = 0; i < 8; i++)
		g_free (inject_one (fixture->from, T0, "a.example.org", NULL, three, big, NULL));
	to = open_spool (fixture->to_dir);
	db = sc_sqlite_get_db (to);
	{
		sqlite3_stmt *stmt = NULL;
		g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA page_count", -1, &stmt, NULL), ==, SQLITE_OK);
		g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
		pages = sqlite3_column_int64 (stmt, 0);
		sqlite3_finalize (stmt);
	}
	{
		/* room for about a megabyte (4 KiB pages) */
		g_autofree char *limit = g_strdup_printf ("PRAGMA max_page_count = %" G_GINT64_FORMAT, pages + 256);
		g_assert_cmpint (sqlite3_exec (db, limit, NULL, NULL, NULL), ==, SQLITE_OK);
	}
	g_assert_false (sc_spool_copy (fixture->from, to, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "bodies"));
	g_clear_error (&error);
	assert_spool_empty (to);
	assert_folder_empty (fixture->to_dir);

	g_assert_cmpint (sqlite3_exec (db, "PRAGMA max_page_count = 1073741823", NULL, NULL, NULL), ==, SQLITE_OK);
	copy_ok (fixture->from, to, rows);
	g_assert_cmpuint (rows[0], ==, 17);
	assert_spools_equal (fixture->from, to);
	assert_files_equal (fixture->from_dir, fixture->to_dir);
}

/* A runner still working on the source: its claim fails the copy. */
static void
test_refuses_live_runner (Fixture *fixture, gconstpointer data)
{
	g_auto(Spool) names = {0};
	g_autoptr(ScSpool) to = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScOwner) runner = NULL;
	g_autoptr(GPtrArray) claimed = NULL;

	populate (fixture, fixture->from, &names);
	runner = sc_spool_register_runner (fixture->from, &error);
	g_assert_no_error (error);
	claimed = sc_test_spool_claim (fixture->from, fixture->clock, sc_owner_get_name (runner), 1);
	g_assert_cmpuint (claimed->len, ==, 1);
	to = open_spool (fixture->to_dir);
	g_assert_false (sc_spool_copy (fixture->from, to, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, sc_owner_get_name (runner)));
	g_clear_error (&error);
	assert_spool_empty (to);
	assert_folder_empty (fixture->to_dir);

	/* stopped (its claims given back): the copy goes through */
	g_assert_true (sc_spool_release_owner (fixture->from, sc_owner_get_name (runner), T0, &error));
	g_assert_no_error (error);
	g_clear_pointer (&runner, sc_owner_free);
	{
		guint64 rows[SC_SPOOL_COPY_N_TABLES];
		copy_ok (fixture->from, to, rows);
	}
}

/* ---- through the real binary ---- */

static int
run_copy (Fixture *fixture, char **out, char **err, const char *from, const char *to)
{
	/* no configuration is read without --config: point at none */
	g_autofree char *config = g_build_filename (fixture->dir, "no-such.conf", NULL);
	return sc_test_run (config, NULL, out, err, "spool-copy", from, to, NULL);
}

static void
test_cli (Fixture *fixture, gconstpointer data)
{
	g_auto(Spool) names = {0};
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *sqlite_to = g_strconcat ("sqlite:", fixture->to_dir, NULL);
	g_autofree char *dotted = g_build_filename (fixture->dir, "x", "..", "from", NULL);
	g_autofree char *missing = g_build_filename (fixture->dir, "missing", NULL);
	g_autofree char *other = g_build_filename (fixture->dir, "other", NULL);
	g_autofree char *config = NULL;
	g_autofree char *config_text = NULL;
	int status;

	populate (fixture, fixture->from, &names);
	g_clear_pointer (&fixture->from, sc_spool_close);

	status = run_copy (fixture, &out, &err, fixture->from_dir, sqlite_to);
	g_test_message ("stdout:\n%sstderr:\n%s", out, err);
	g_assert_cmpint (status, ==, EX_OK);
	g_assert_nonnull (strstr (out, "messages       9\n"));
	g_assert_nonnull (strstr (out, "recipients     25\n"));
	g_assert_nonnull (strstr (out, "accepted       13\n"));
	g_assert_nonnull (strstr (err, "the same rows per table"));
	assert_files_equal (fixture->from_dir, fixture->to_dir);
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	/* `status` of the copy, through a configuration that names it */
	config_text = g_strdup_printf ("[stagecoach]\nspool=%s\n", fixture->to_dir);
	config = sc_test_write_file (fixture->dir, "to.conf", config_text);
	g_assert_cmpint (sc_test_count (config, "done"), ==, 1);
	g_assert_cmpint (sc_test_count (config, "dead"), ==, 1);
	g_assert_cmpint (sc_test_count (config, "held"), ==, 1);
	g_assert_cmpint (sc_test_count (config, "active"), ==, 1);

	/* again into the same destination: refused, nothing changes */
	status = run_copy (fixture, NULL, &err, fixture->from_dir, fixture->to_dir);
	g_test_message ("%s", err);
	g_assert_cmpint (status, ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "not empty"));
	g_assert_nonnull (strstr (err, "messages (9)"));
	assert_files_equal (fixture->from_dir, fixture->to_dir);
	g_clear_pointer (&err, g_free);

	/* the same spool, however spelled */
	status = run_copy (fixture, NULL, &err, fixture->from_dir, dotted);
	g_assert_cmpint (status, ==, EX_USAGE);
	g_assert_nonnull (strstr (err, "the same spool"));
	g_clear_pointer (&err, g_free);
	/* a source that does not exist is not created */
	status = run_copy (fixture, NULL, &err, missing, other);
	g_assert_cmpint (status, ==, EX_NOINPUT);
	g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
	g_clear_pointer (&err, g_free);
	/* one operand */
	status = sc_test_run (config, NULL, NULL, &err, "spool-copy", fixture->from_dir, NULL);
	g_assert_cmpint (status, ==, EX_USAGE);
	g_clear_pointer (&err, g_free);
	/* an unknown scheme */
	status = run_copy (fixture, NULL, &err, fixture->from_dir, "mysql://127.0.0.1/x");
	g_assert_cmpint (status, ==, EX_SOFTWARE);
	g_assert_nonnull (strstr (err, "unknown spool backend"));
	g_clear_pointer (&err, g_free);
	/* --help names it and says to stop the daemons */
	status = sc_test_run (config, NULL, &out, NULL, "spool-copy", "--help", NULL);
	g_assert_cmpint (status, ==, EX_OK);
	g_assert_nonnull (strstr (out, "FROM TO"));
	g_assert_nonnull (strstr (out, "Stop every daemon"));
}

/* ---- SQLite → PostgreSQL → SQLite ---- */

static void
test_postgresql_round_trip (Fixture *fixture, gconstpointer data)
{
#ifndef HAVE_PG_SPOOL
	g_test_skip ("the PostgreSQL spool backend is not built (no libpq, or not merged yet)");
#else
	g_autoptr(ScTestPostgres) server = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *uri = NULL;
	g_autofree char *back_dir = g_build_filename (fixture->dir, "back", NULL);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *cli_dir = g_build_filename (fixture->dir, "cli-back", NULL);
	g_auto(Spool) names = {0};
	g_autoptr(ScSpool) pg = NULL;
	g_autoptr(ScSpool) sqlite = NULL;
	g_autoptr(ScSpool) cli_back = NULL;
	guint64 to_pg[SC_SPOOL_COPY_N_TABLES];
	guint64 back[SC_SPOOL_COPY_N_TABLES];

	if (!sc_test_postgres_available ()) {
		g_test_skip (sc_test_postgres_why_unavailable ());
		return;
	}
	server = sc_test_postgres_start (&error);
	g_assert_no_error (error);
	g_assert_true (sc_test_postgres_create_database (server, "copy", &error));
	g_assert_no_error (error);
	uri = sc_test_postgres_get_uri (server, "copy");

	populate (fixture, fixture->from, &names);
	pg = open_spool (uri);
	if (pg->backend->copy_begin == NULL) {
		/* sc-pg-spool.c's table lacks SC_PG_COPY_ENTRIES */
		g_test_skip ("the PostgreSQL backend's table has no copy entries yet");
		return;
	}

	/* a row PostgreSQL cannot take (text that is not UTF-8), met when
	 * messages, bodies, stages and attempts are already written: the
	 * database is left empty */
	g_assert_cmpint (sqlite3_exec (sc_sqlite_get_db (fixture->from),
				       "UPDATE recipients SET reply = CAST (x'ff2035353020' AS TEXT)"
				       " WHERE position = 2 AND status = 'failed'",
				       NULL, NULL, NULL),
			 ==, SQLITE_OK);
	g_assert_false (sc_spool_copy (fixture->from, pg, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "recipients.reply"));
	g_clear_error (&error);
	assert_spool_empty (pg);
	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
		guint64 n = 99;
		g_assert_true (pg->backend->copy_count (pg, &sc_spool_copy_tables[t], &n, &error));
		g_assert_no_error (error);
		g_assert_cmpuint (n, ==, 0);
	}
	g_assert_cmpint (sqlite3_exec (sc_sqlite_get_db (fixture->from),
				       "UPDATE recipients SET reply = '550 5.1.1 no such user'"
				       " WHERE position = 2 AND status = 'failed'",
				       NULL, NULL, NULL),
			 ==, SQLITE_OK);

	/* SQLite → PostgreSQL → SQLite: every value as it was */
	sqlite = open_spool (back_dir);
	copy_ok (fixture->from, pg, to_pg);
	assert_spools_equal (fixture->from, pg);
	copy_ok (pg, sqlite, back);
	g_assert_cmpmem (to_pg, sizeof to_pg, back, sizeof back);
	assert_files_equal (fixture->from_dir, back_dir);
	/* not twice into one database */
	g_assert_false (sc_spool_copy (fixture->from, pg, NULL, NULL, NULL, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, "messages (9)"));
	g_clear_error (&error);
	/* the PostgreSQL copy runs on: ids kept, new ones after them */
	assert_runs_on (fixture, pg, &names);

	/* and the command line, from PostgreSQL */
	g_assert_cmpint (run_copy (fixture, &out, &err, uri, cli_dir), ==, EX_OK);
	g_test_message ("%s%s", out, err);
	g_assert_nonnull (strstr (out, "messages       11\n"));
	cli_back = open_spool (cli_dir);
	assert_spools_equal (pg, cli_back);
#endif
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	sc_test_install_log_writer ();
	g_test_add ("/spool-copy/sqlite/round-trip", Fixture, NULL, setup, test_round_trip, teardown);
	g_test_add ("/spool-copy/sqlite/refuses-non-empty", Fixture, NULL, setup, test_refuses_non_empty, teardown);
	g_test_add ("/spool-copy/sqlite/failure-leaves-empty", Fixture, NULL, setup, test_failure_leaves_empty,
		    teardown);
	g_test_add ("/spool-copy/sqlite/refuses-live-runner", Fixture, NULL, setup, test_refuses_live_runner,
		    teardown);
	g_test_add ("/spool-copy/cli", Fixture, NULL, setup, test_cli, teardown);
	g_test_add ("/spool-copy/postgresql/round-trip", Fixture, NULL, setup, test_postgresql_round_trip,
		    teardown);
	return g_test_run ();
}
