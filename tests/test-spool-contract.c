/* test-spool-contract.c — what every spool backend must do (issue 10):
 * inject, claim, stage results and recipient groups, leases and crashes,
 * counts, search, operator actions, notifications and the audit log.
 *
 * Only the public interface (sc-spool.h) is used, to act and to look:
 * each test runs once per backend ("/spool-contract/BACKEND/…"), the
 * spool opened by open_backend().  What only one backend can show (its
 * schema, pragmas, query plans, a full disk, lease columns) is in that
 * backend's own test (test-spool.c for SQLite).
 */
#include "config.h"

#include <string.h>

#include "sc-clock.h"
#include "sc-error.h"
#include "sc-owner.h"
#include "sc-spool.h"
#include "sc-test-postgres.h"
#include "sc-test-spool.h"
#include "sc-test-util.h"

/* The backends the contract runs against.  PostgreSQL's cases run when
 * the server binaries and libpq are there; otherwise one case says,
 * skipped, why not. */
static const char *const backends[] = {"sqlite", "postgresql", NULL};

typedef struct {
	const char *backend; /* one of backends[] */
	char *dir;           /* (owned) scratch folder; the SQLite spool's */
	char *uri;           /* (owned) the PostgreSQL spool's: a database per case */
	ScSpool *spool;      /* (owned) */
	ScClock *clock;      /* (owned) fixed at T0 */
} Fixture;

/* One private server for the whole binary, started by the first case
 * that needs it (from the main thread, which outlives every case). */
static ScTestPostgres *postgres;

/* The one place that knows how a backend's spool is opened: each call is
 * a new connection to the same spool. */
static ScSpool *
open_backend (Fixture *fixture, GError **error)
{
	if (strcmp (fixture->backend, "sqlite") == 0)
		return sc_spool_open (fixture->dir, BUSY_TIMEOUT, error);
	if (strcmp (fixture->backend, "postgresql") == 0)
		return sc_spool_open (fixture->uri, BUSY_TIMEOUT, error);
	g_error ("unknown spool backend %s", fixture->backend);
	return NULL;
}

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	fixture->backend = user_data;
	fixture->dir = sc_test_make_tmpdir ("sc-spool-contract");
	fixture->clock = sc_clock_new_fixed (T0);
	if (strcmp (fixture->backend, "postgresql") == 0) {
		static guint databases;
		g_autofree char *name = g_strdup_printf ("contract_%u", ++databases);

		if (postgres == NULL)
			postgres = sc_test_postgres_start (&error);
		g_assert_no_error (error);
		g_assert_true (sc_test_postgres_create_database (postgres, name, &error));
		g_assert_no_error (error);
		fixture->uri = sc_test_postgres_get_uri (postgres, name);
	}
	fixture->spool = open_backend (fixture, &error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->spool);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	g_clear_pointer (&fixture->spool, sc_spool_close);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->uri);
}

/* ---- spool helpers ---- */

static ScMessageState
state_of (Fixture *fixture, const char *queue_id)
{
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	return s->state;
}

static gint64
next_attempt_of (Fixture *fixture, const char *queue_id)
{
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	return s->next_attempt_at;
}

static void
assert_nothing_due (Fixture *fixture)
{
	g_autoptr(GPtrArray) messages = claim (fixture, "nobody", 10);
	g_assert_cmpuint (messages->len, ==, 0);
}

/* Every message, newest first. (transfer full) */
static GPtrArray *
all_messages (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	ScMessageSearch everything = {0};
	GPtrArray *result = sc_spool_search (fixture->spool, &everything, &error);

	g_assert_no_error (error);
	g_assert_nonnull (result);
	return result;
}

/* The spool's state counts agree with its messages, as a search sees them. */
static void
assert_counts_match (Fixture *fixture, const char *list_id)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) messages = all_messages (fixture);
	gint64 counts[SC_STATE_LAST];
	gint64 real[SC_STATE_LAST] = {0};

	g_assert_true (sc_spool_count_states (fixture->spool, list_id, counts, &error));
	g_assert_no_error (error);
	for (guint i = 0; i < messages->len; i++) {
		ScMessageSummary *s = messages->pdata[i];
		if (list_id == NULL || strcmp (s->list_id, list_id) == 0)
			real[s->state]++;
	}
	for (guint i = 0; i < SC_STATE_LAST; i++) {
		if (counts[i] != real[i])
			g_error ("count of %s (list %s): spool says %" G_GINT64_FORMAT ", messages hold %" G_GINT64_FORMAT,
				 sc_message_state_to_string (i), list_id != NULL ? list_id : "*", counts[i], real[i]);
	}
}

/* (transfer full) (element-type ScAttemptRecord) */
static GPtrArray *
attempts_of (Fixture *fixture, gint64 rowid)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *attempts = sc_spool_get_attempts (fixture->spool, rowid, &error);

	g_assert_no_error (error);
	g_assert_nonnull (attempts);
	return attempts;
}

/* Attempts of the message with @outcome (-1: any) and @stage (NULL: any). */
static guint
count_attempts (Fixture *fixture, gint64 rowid, int outcome, const char *stage)
{
	g_autoptr(GPtrArray) attempts = attempts_of (fixture, rowid);
	guint count = 0;

	for (guint i = 0; i < attempts->len; i++) {
		ScAttemptRecord *a = attempts->pdata[i];
		if ((outcome < 0 || (int) a->outcome == outcome) && (stage == NULL || strcmp (a->stage, stage) == 0))
			count++;
	}
	return count;
}

/* The same over every message in the spool. */
static guint
count_all_attempts (Fixture *fixture, int outcome, const char *stage)
{
	g_autoptr(GPtrArray) messages = all_messages (fixture);
	guint count = 0;

	for (guint i = 0; i < messages->len; i++)
		count += count_attempts (fixture, ((ScMessageSummary *) messages->pdata[i])->id, outcome, stage);
	return count;
}

static guint
count_stages (Fixture *fixture, gint64 rowid)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) stages = sc_spool_get_stages (fixture->spool, rowid, &error);

	g_assert_no_error (error);
	g_assert_nonnull (stages);
	return stages->len;
}

/* The admin notification outbox, newest first. (transfer full)
 * (element-type ScNotificationEntry) */
static GPtrArray *
notifications (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *rows = sc_spool_list_notifications (fixture->spool, 0, 0, &error);

	g_assert_no_error (error);
	g_assert_nonnull (rows);
	return rows;
}

/* The pending notifications as the notifier claims them, which name the
 * message they are about by row id. (transfer full) (element-type ScNotification) */
static GPtrArray *
pending_notifications (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *rows = sc_spool_notify_claim (fixture->spool, G_MAXINT64, 1000, &error);

	g_assert_no_error (error);
	g_assert_nonnull (rows);
	return rows;
}

/* Every audit row, oldest first. (transfer full) (element-type ScAuditEntry) */
static GPtrArray *
read_audit (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *rows = sc_spool_list_audit (fixture->spool, 0, 0, &error);

	g_assert_no_error (error);
	g_assert_nonnull (rows);
	/* newest first from the spool */
	for (guint i = 0, j = rows->len > 0 ? rows->len - 1 : 0; i < j; i++, j--) {
		gpointer swap = rows->pdata[i];
		rows->pdata[i] = rows->pdata[j];
		rows->pdata[j] = swap;
	}
	return rows;
}

typedef ScTestOwnerCheck OwnerCheck;

static guint
reclaim_at (Fixture *fixture, const char *self, OwnerCheck *check, gint64 now, guint crash_limit)
{
	return sc_test_spool_reclaim (fixture->spool, self, check, now, crash_limit);
}

static guint
reclaim_checked (Fixture *fixture, const char *self, OwnerCheck *check, guint crash_limit)
{
	return reclaim_at (fixture, self, check, sc_clock_now (fixture->clock), crash_limit);
}

static guint
reclaim (Fixture *fixture, const char *self, const char *const *alive, guint crash_limit)
{
	OwnerCheck check = {.alive = alive};
	return reclaim_checked (fixture, self, &check, crash_limit);
}

/* ---- runners whose in-handler marks the backend keeps ---- */

/* A runner registered on a connection of its own, marking what its
 * "handlers" run as sc-runner.c's workers do (sc_owner_mark_in_handler),
 * the backend keeping the marks (SQLite: its lock file; PostgreSQL:
 * handler_marks).  It stays registered while reclaim runs: the probe
 * below declares it dead, as if its process had been killed — a clean
 * stop removes its marks on both backends. */
typedef struct {
	ScSpool *spool; /* (owned) */
	ScOwner *owner; /* (owned) */
} MarkedRunner;

static const char *
marked_runner_start (Fixture *fixture, MarkedRunner *runner)
{
	g_autoptr(GError) error = NULL;

	runner->spool = open_backend (fixture, &error);
	g_assert_no_error (error);
	runner->owner = sc_spool_register_runner (runner->spool, &error);
	g_assert_no_error (error);
	g_assert_nonnull (runner->owner);
	return sc_owner_get_name (runner->owner);
}

static void
marked_runner_stop (MarkedRunner *runner)
{
	g_clear_pointer (&runner->owner, sc_owner_free);
	g_clear_pointer (&runner->spool, sc_spool_close);
}

/* Slot @slot runs @message's stage at @stage (its pipeline position). */
static void
mark_stage (MarkedRunner *runner, guint slot, const ScMessage *message, guint stage)
{
	sc_owner_mark_in_handler (runner->owner, slot, message != NULL ? message->id : 0,
				  message != NULL ? message->lease_generation : 0, stage);
}

/* ... its next stage, as a worker starting a claim marks it. */
static void
mark (MarkedRunner *runner, guint slot, const ScMessage *message)
{
	mark_stage (runner, slot, message,
		    message != NULL && message->completed != NULL ? g_strv_length (message->completed) : 0);
}

/* Reclaim's probe as the runner's (sc-runner.c): every other owner dead,
 * and what it had in a handler read from the backend, once per owner. */
typedef struct {
	ScSpool *spool;
	GHashTable *running; /* owner → its in-handler keys */
} BackendProbe;

static gboolean
backend_alive_cb (const char *owner, gpointer user_data)
{
	return FALSE;
}

static gboolean
backend_in_handler_cb (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data)
{
	BackendProbe *probe = user_data;
	GHashTable *running = g_hash_table_lookup (probe->running, owner);

	if (running == NULL) {
		running = sc_spool_runner_in_handler (probe->spool, owner);
		g_hash_table_insert (probe->running, g_strdup (owner), running);
	}
	return sc_owner_marks_find (running, lease->id, lease->generation, out_stage);
}

static gboolean
backend_in_flight_cb (const ScLease *lease, gpointer user_data)
{
	return FALSE;
}

static guint
reclaim_by_marks (Fixture *fixture, const char *self, guint crash_limit)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GHashTable) running =
	    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
	BackendProbe backend = {.spool = fixture->spool, .running = running};
	ScLeaseProbe probe = {
	    .alive = backend_alive_cb,
	    .in_handler = backend_in_handler_cb,
	    .in_flight = backend_in_flight_cb,
	    .user_data = &backend,
	};
	guint count = sc_spool_reclaim (fixture->spool, self, &probe, sc_clock_now (fixture->clock), crash_limit, &error);

	g_assert_no_error (error);
	return count;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
	return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

/* The owners of active messages, sorted and joined by ",", as reclaim
 * asks about them; changes nothing as long as no lease ends by @now. */
static char *
lease_owners (Fixture *fixture, gint64 now)
{
	g_autoptr(GPtrArray) asked = g_ptr_array_new_with_free_func (g_free);
	OwnerCheck check = {.all_alive = TRUE, .asked = asked};

	g_assert_cmpuint (reclaim_at (fixture, "(observer)", &check, now, 3), ==, 0);
	g_ptr_array_sort (asked, compare_strings);
	g_ptr_array_add (asked, NULL);
	return g_strjoinv (",", (char **) asked->pdata);
}

/* The lease of active message @queue_id ends exactly at @expires, seen
 * as reclaim sees it with its owner alive.  Takes the message back. */
static void
assert_lease_ends (Fixture *fixture, const char *queue_id, gint64 expires)
{
	OwnerCheck check = {.all_alive = TRUE};

	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
	reclaim_at (fixture, "(observer)", &check, expires - 1, 3);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpuint (reclaim_at (fixture, "(observer)", &check, expires, 3), >=, 1);
	g_assert_cmpint (state_of (fixture, queue_id), !=, SC_STATE_ACTIVE);
}

/* Nothing that reclaim would take back, whoever is alive and whenever. */
static void
assert_no_lease (Fixture *fixture)
{
	OwnerCheck check = {0};
	g_assert_cmpuint (reclaim_at (fixture, "(observer)", &check, G_MAXINT64 / 2, 3), ==, 0);
	g_assert_cmpuint (check.calls, ==, 0);
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

/* Claims @queue_id (due now) only to read what the spool keeps of it:
 * its crash count and cycle start.  Leaves it claimed by "(reader)". */
static ScMessage *
claim_to_read (Fixture *fixture, const char *queue_id)
{
	g_autoptr(GError) error = NULL;
	gint64 due = next_attempt_of (fixture, queue_id);
	g_autoptr(GPtrArray) messages = NULL;
	ScMessage *found = NULL;

	g_assert_cmpint (due, !=, 0);
	messages = sc_spool_claim (fixture->spool, "(reader)", due, due + LEASE, 100, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < messages->len; i++)
		if (strcmp (((ScMessage *) messages->pdata[i])->queue_id, queue_id) == 0)
			found = g_ptr_array_steal_index (messages, i);
	g_assert_nonnull (found);
	return found;
}

static ScAuditContext
audit_at (Fixture *fixture)
{
	ScAuditContext audit = {.actor = "alice", .remote = "192.0.2.7", .now = sc_clock_now (fixture->clock)};
	return audit;
}

/* ---- names and the table of actions (no backend) ---- */

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

	raw = sc_spool_get_raw (fixture->spool, s->id, &error);
	g_assert_no_error (error);
	g_assert_cmpmem (g_bytes_get_data (raw, NULL), g_bytes_get_size (raw), body, strlen (body));
	recipients = sc_spool_get_recipients (fixture->spool, s->id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (recipients->len, ==, 3);
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->address, ==, "a@example.org");
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->status, ==, "pending");
	g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[2])->address, ==, "c@example.com");
	stages = sc_spool_get_stages (fixture->spool, s->id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (stages->len, ==, 0);

	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_QUEUED), ==, 2);
	g_assert_cmpint (count_of (fixture, "l.example.org", SC_STATE_QUEUED), ==, 2);
	g_assert_cmpint (count_of (fixture, "other.example.org", SC_STATE_QUEUED), ==, 0);
	/* durably there, seen from another connection */
	{
		g_autoptr(ScSpool) observer = open_backend (fixture, &error);
		g_autoptr(ScMessageSummary) seen = NULL;
		g_assert_no_error (error);
		seen = sc_spool_get_summary (observer, queue_id, &error);
		g_assert_no_error (error);
		g_assert_nonnull (seen);
		g_assert_cmpint (seen->id, ==, s->id);
		g_assert_cmpint (seen->state, ==, SC_STATE_QUEUED);
	}

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
		back = sc_spool_get_raw (fixture->spool, e->id, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (g_bytes_get_size (back), ==, 0);
	}
}

/* A message stored already leased (the acceptor hands it to the runner in
 * its process): the backend either stores it leased and returns it as a
 * claim would have loaded it, or (PostgreSQL) stores it queued.  Leased,
 * it is the owner's until the lease ends, and its results apply. */
static void
test_inject_leased (Fixture *fixture, gconstpointer user_data)
{
	static const char *const recipients[] = {"a@example.org", "b@example.net", NULL};
	g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: s\r\n\r\nbody\r\n", 20);
	g_autoptr(GError) error = NULL;
	ScNewMessage leased = {
	    .list_id = "l.example.org",
	    .sender = "owner@example.org",
	    .recipients = recipients,
	    .pipeline = PIPELINE,
	    .subject = "s",
	    .message_id = "<leased@example.org>",
	    .raw = raw,
	    .now = T0,
	    .lease_owner = "runner-a",
	    .lease_expires_at = T0 + LEASE,
	};
	ScNewMessage queued = leased;
	const ScNewMessage *batch[] = {&leased, &queued};
	char *queue_ids[2] = {NULL, NULL};
	guint duplicates[2] = {0, 0};
	ScMessage *claimed[2] = {NULL, NULL};
	g_autoptr(ScMessage) reference = NULL;
	g_autoptr(ScMessage) mine = NULL;
	ScStageResult r;

	queued.lease_owner = NULL;
	queued.message_id = "<queued@example.org>";
	g_assert_true (sc_spool_inject_batch (fixture->spool, batch, 2, 0, queue_ids, duplicates, NULL,
					      claimed, &error));
	g_assert_no_error (error);
	g_assert_null (claimed[1]);
	g_assert_cmpint (state_of (fixture, queue_ids[1]), ==, SC_STATE_QUEUED);
	if (strcmp (fixture->backend, "sqlite") == 0)
		g_assert_nonnull (claimed[0]);
	if (claimed[0] == NULL) {
		/* declined: queued like any other, claimed as usual */
		g_assert_cmpint (state_of (fixture, queue_ids[0]), ==, SC_STATE_QUEUED);
		g_free (queue_ids[0]);
		g_free (queue_ids[1]);
		return;
	}
	mine = claimed[0];
	g_assert_cmpint (state_of (fixture, queue_ids[0]), ==, SC_STATE_ACTIVE);
	{
		g_autofree char *owners = lease_owners (fixture, T0 + LEASE - 1);
		g_assert_cmpstr (owners, ==, "runner-a");
	}
	assert_counts_match (fixture, NULL);
	/* what a claim of the same message loads, field for field */
	reference = claim_one (fixture, "runner-b", queue_ids[1]);
	g_assert_cmpstr (mine->queue_id, ==, queue_ids[0]);
	g_assert_cmpint (mine->lease_generation, ==, reference->lease_generation);
	g_assert_cmpstr (mine->list_id, ==, reference->list_id);
	g_assert_cmpstr (mine->sender, ==, reference->sender);
	g_assert_true (g_strv_equal ((const char *const *) mine->recipients,
				     (const char *const *) reference->recipients));
	g_assert_true (g_strv_equal ((const char *const *) mine->pipeline,
				     (const char *const *) reference->pipeline));
	g_assert_cmpuint (g_strv_length (mine->completed), ==, 0);
	g_assert_cmpstr (sc_message_next_stage (mine), ==, sc_message_next_stage (reference));
	g_assert_cmpuint (g_hash_table_size (mine->stage_attempts), ==, g_hash_table_size (reference->stage_attempts));
	g_assert_cmpuint (mine->attempts, ==, reference->attempts);
	g_assert_cmpuint (mine->crashes, ==, reference->crashes);
	g_assert_cmpint (mine->cycle_started_at, ==, reference->cycle_started_at);
	g_assert_true (g_bytes_equal (mine->raw, reference->raw));
	g_assert_true (g_bytes_equal (mine->current, reference->current));
	g_assert_cmpuint (mine->recipient_records->len, ==, reference->recipient_records->len);
	for (guint i = 0; i < mine->recipient_records->len; i++) {
		ScRecipientRecord *a = mine->recipient_records->pdata[i];
		ScRecipientRecord *b = reference->recipient_records->pdata[i];
		g_assert_cmpuint (a->position, ==, b->position);
		g_assert_cmpstr (a->address, ==, b->address);
		g_assert_cmpstr (a->status, ==, b->status);
	}
	/* the lease is real: its owner's result applies, another's does not */
	r = result_for (fixture, mine, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	g_assert_cmpuint (record (fixture, "runner-b", &r), ==, 1);
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	assert_lease_ends (fixture, queue_ids[0], T0 + LEASE);
	g_free (queue_ids[0]);
	g_free (queue_ids[1]);
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
	g_autoptr(GError) error = NULL;
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
	g_assert_cmpint (state_of (fixture, late), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 3);
	/* nothing left */
	none = claim (fixture, "runner-c", 5);
	g_assert_cmpuint (none->len, ==, 0);
	{
		gint64 due = 0;
		g_assert_false (sc_spool_next_due (fixture->spool, &due, &error));
		g_assert_no_error (error);
	}
	/* leased: to these two owners, ... */
	{
		g_autofree char *owners = lease_owners (fixture, T0 + LEASE - 1);
		g_assert_cmpstr (owners, ==, "runner-a,runner-b");
	}
	/* ... the late one to runner-b (runner-a's stop leaves it), until T0 + LEASE */
	g_assert_true (sc_spool_release_owner (fixture->spool, "runner-a", T0, &error));
	g_assert_no_error (error);
	g_assert_cmpint (state_of (fixture, early), ==, SC_STATE_QUEUED);
	g_assert_cmpint (state_of (fixture, middle), ==, SC_STATE_QUEUED);
	assert_lease_ends (fixture, late, T0 + LEASE);
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
	g_autoptr(GPtrArray) outbox = NULL;
	g_autoptr(ScMessageSummary) s = NULL;
	ScStageResult r;

	/* queued → active → active: decorate ok, with output, keeps the lease */
	sc_clock_advance (fixture->clock, 2 * SEC);
	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	r.output = decorated;
	r.note = "footer added";
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
	/* still runner-a's, and not shorter than claimed (its exact end is
	 * checked per backend: test-spool.c /spool/lease/columns) */
	{
		g_autofree char *owners = lease_owners (fixture, T0 + LEASE - 1);
		g_assert_cmpstr (owners, ==, "runner-a");
	}
	output = sc_spool_get_stage_output (fixture->spool, m->id, "decorate", &error);
	g_assert_no_error (error);
	g_assert_true (g_bytes_equal (output, decorated));

	/* active → active: archive ok, no output */
	sc_clock_advance (fixture->clock, SEC);
	g_strfreev (m->completed);
	m->completed = g_strsplit ("decorate", ";", -1);
	r = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	g_assert_cmpstr (r.stage, ==, "archive");
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_null (sc_spool_get_stage_output (fixture->spool, m->id, "archive", &error));
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

	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_DONE);
	g_assert_cmpint (s->next_attempt_at, ==, 0);
	g_assert_cmpint (s->updated_at, ==, T0 + 4 * SEC);
	assert_no_lease (fixture);
	stages = sc_spool_get_stages (fixture->spool, m->id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (stages->len, ==, 3);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[0])->stage, ==, "decorate");
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[0])->note, ==, "footer added");
	g_assert_cmpint (((ScStageRecord *) stages->pdata[0])->output_size, ==, 9);
	g_assert_cmpint (((ScStageRecord *) stages->pdata[0])->completed_at, ==, T0 + 2 * SEC);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[1])->stage, ==, "archive");
	g_assert_cmpint (((ScStageRecord *) stages->pdata[1])->output_size, ==, -1);
	g_assert_cmpstr (((ScStageRecord *) stages->pdata[2])->stage, ==, "exec:deliver");
	attempts = sc_spool_get_attempts (fixture->spool, m->id, &error);
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
	outbox = notifications (fixture);
	g_assert_cmpuint (outbox->len, ==, 0);
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
	assert_no_lease (fixture);
	attempts = sc_spool_get_attempts (fixture->spool, m->id, &error);
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

/* (The dead notification's atomicity with the result needs a failure
 * injected inside the backend: test-spool.c /spool/transition/dead-atomic.) */
static void
test_transition_dead (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *queue_id = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", queue_id);
	g_autofree char *second = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m2 = claim_one (fixture, "runner-a", second);
	g_autoptr(ScMessageSummary) s = NULL;
	g_autoptr(GPtrArray) outbox = NULL;
	g_autoptr(GPtrArray) pending = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	ScNotificationEntry *entry;
	ScStageResult r;

	sc_clock_advance (fixture->clock, SEC);
	r = result_for (fixture, m, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	r.error = "message cannot be parsed";
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_DEAD);
	g_assert_cmpstr (s->last_error, ==, "message cannot be parsed");
	g_assert_cmpint (s->next_attempt_at, ==, 0);
	/* a notification, durable, in the same commit */
	outbox = notifications (fixture);
	g_assert_cmpuint (outbox->len, ==, 1);
	entry = outbox->pdata[0];
	g_assert_cmpstr (entry->kind, ==, "message.dead");
	g_assert_cmpstr (entry->queue_id, ==, queue_id);
	g_assert_cmpstr (entry->detail, ==, "message cannot be parsed");
	g_assert_cmpstr (entry->state, ==, "pending");
	g_assert_cmpint (entry->next_attempt_at, ==, T0 + SEC);
	pending = pending_notifications (fixture);
	g_assert_cmpuint (pending->len, ==, 1);
	g_assert_cmpint (((ScNotification *) pending->pdata[0])->message_rowid, ==, m->id);
	attempts = attempts_of (fixture, m->id);
	g_assert_cmpuint (attempts->len, ==, 1);
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[0])->outcome, ==, SC_OUTCOME_PERMANENT);

	/* out of time after a transient failure: dead too */
	r = result_for (fixture, m2, SC_OUTCOME_TRANSIENT, SC_STATE_DEAD);
	g_assert_cmpuint (record (fixture, "runner-a", &r), ==, 0);
	g_assert_cmpint (state_of (fixture, second), ==, SC_STATE_DEAD);
	g_clear_pointer (&outbox, g_ptr_array_unref);
	outbox = notifications (fixture);
	g_assert_cmpuint (outbox->len, ==, 2);
	g_assert_cmpint (count_of (fixture, "l.example.org", SC_STATE_DEAD), ==, 2);
	assert_no_lease (fixture);
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
	g_assert_true (ra.applied);
	g_assert_true (rb.applied);
	g_assert_cmpuint (count_all_attempts (fixture, -1, NULL), ==, 2);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_OK, "decorate"), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, mb->id, SC_OUTCOME_TRANSIENT, "decorate"), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 1);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEFERRED), ==, 1);
	/* nothing to record: TRUE, zero stale */
	stale = 99;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", NULL, 0, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 0);
	(void) a;
	(void) b;
}

/* One claim's stages that ran together (the runner's groups: decorate on
 * deliver's thread) come as consecutive results, recorded in one commit:
 * the last one's state stands, every stage and attempt is there; with
 * the claim gone, none of them. */
static void
test_result_chain (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", NULL);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-a", NULL);
	g_autofree char *c = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) mc = claim_one (fixture, "runner-a", NULL);
	g_autoptr(GBytes) decorated = g_bytes_new_static ("Subject: [l] x\r\n\r\nbody\r\n", 25);
	ScStageResult first = result_for (fixture, ma, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	ScStageResult second = result_for (fixture, ma, SC_OUTCOME_OK, SC_STATE_DONE);
	ScStageResult other = result_for (fixture, mb, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	ScStageResult *chain[] = {&first, &second, &other};
	guint stale = 99;

	g_assert_cmpstr (first.stage, ==, "decorate");
	first.output = decorated;
	second.stage = "deliver";
	second.mailer = "relay";
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", chain, 3, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 0);
	g_assert_true (first.applied && second.applied && other.applied);
	g_assert_cmpint (state_of (fixture, ma->queue_id), ==, SC_STATE_DONE);
	g_assert_cmpint (state_of (fixture, mb->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpuint (count_stages (fixture, ma->id), ==, 2);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_OK, "decorate"), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_OK, "deliver"), ==, 1);
	{
		g_autoptr(GBytes) stored = sc_spool_get_stage_output (fixture->spool, ma->id, "decorate", &error);
		g_assert_no_error (error);
		g_assert_true (g_bytes_equal (stored, decorated));
	}
	assert_counts_match (fixture, NULL);

	/* mc's claim is runner-a's: runner-b's chain for it records nothing */
	first = result_for (fixture, mc, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	second = result_for (fixture, mc, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
	second.stage = "deliver";
	second.next_attempt_at = T0 + MINUTE;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-b", chain, 2, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 2);
	g_assert_false (first.applied || second.applied);
	g_assert_cmpint (state_of (fixture, mc->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpuint (count_stages (fixture, mc->id), ==, 0);
	g_assert_cmpuint (count_all_attempts (fixture, -1, NULL), ==, 3);
	/* its owner's chain: deferred at deliver, decorate's record kept */
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", chain, 2, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 0);
	g_assert_cmpint (state_of (fixture, mc->queue_id), ==, SC_STATE_DEFERRED);
	g_assert_cmpuint (count_stages (fixture, mc->id), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, mc->id, SC_OUTCOME_OK, "decorate"), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, mc->id, SC_OUTCOME_TRANSIENT, "deliver"), ==, 1);
	assert_counts_match (fixture, NULL);
	(void) c;
	(void) a;
	(void) b;
}

/* What the interface shows of a message: summary, stage and attempt records. */
static char *
message_picture (Fixture *fixture, const char *queue_id)
{
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	g_autoptr(GPtrArray) attempts = attempts_of (fixture, s->id);

	return g_strdup_printf ("%s attempts=%u cycle=%u next=%" G_GINT64_FORMAT " updated=%" G_GINT64_FORMAT
				" error=%s hold=%s stages=%u attempt-records=%u",
				sc_message_state_to_string (s->state), s->attempts, s->cycle, s->next_attempt_at,
				s->updated_at, s->last_error != NULL ? s->last_error : "(null)",
				s->hold_reason != NULL ? s->hold_reason : "(null)", count_stages (fixture, s->id),
				attempts->len);
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
	g_autoptr(GPtrArray) outbox = NULL;
	g_autofree char *before = NULL;
	g_autofree char *after = NULL;
	const char *const alive[] = {"runner-a", "runner-b", NULL};
	ScStageResult r_lost;
	ScStageResult r_kept;
	ScStageResult *both[2];
	guint stale = 99;

	/* runner-a hangs past its lease on one message (it renewed the other):
	 * runner-b takes that one back */
	g_assert_true (renew_one (fixture, "runner-a", kept, T0 + HOUR, &error));
	g_assert_no_error (error);
	sc_clock_set (fixture->clock, T0 + LEASE + SEC);
	g_assert_cmpuint (reclaim (fixture, "runner-b", alive, 3), ==, 1);
	taken = claim_one (fixture, "runner-b", lost->queue_id);

	before = message_picture (fixture, lost->queue_id);
	/* runner-a wakes up and reports both: the lost one is skipped */
	sc_clock_advance (fixture->clock, SEC);
	r_lost = result_for (fixture, lost, SC_OUTCOME_OK, SC_STATE_DONE);
	r_kept = result_for (fixture, kept, SC_OUTCOME_OK, SC_STATE_ACTIVE);
	both[0] = &r_lost;
	both[1] = &r_kept;
	g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", both, 2, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, ==, 1);
	g_assert_false (r_lost.applied);
	g_assert_true (r_kept.applied);
	after = message_picture (fixture, lost->queue_id);
	g_assert_cmpstr (after, ==, before);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_ACTIVE);
	/* the kept one went through */
	g_assert_cmpuint (count_stages (fixture, kept->id), ==, 1);

	/* a failure from the old owner is skipped too */
	r_lost = result_for (fixture, lost, SC_OUTCOME_PERMANENT, SC_STATE_DEAD);
	g_assert_cmpuint (record (fixture, "runner-a", &r_lost), ==, 1);
	g_assert_cmpint (state_of (fixture, lost->queue_id), ==, SC_STATE_ACTIVE);
	outbox = notifications (fixture);
	g_assert_cmpuint (outbox->len, ==, 0);
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
	r_lost.id = 999999;
	g_assert_cmpuint (record (fixture, "runner-a", &r_lost), ==, 1);
	assert_counts_match (fixture, NULL);
	(void) queue_id;
	(void) fresh;
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
	assert_no_lease (fixture);
	attempts = sc_spool_get_attempts (fixture->spool, m->id, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (attempts->len, ==, 2);
	g_assert_cmpstr (((ScAttemptRecord *) attempts->pdata[1])->stage, ==, "archive");
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[1])->outcome, ==, SC_OUTCOME_CRASHED);
	g_assert_cmpuint (((ScAttemptRecord *) attempts->pdata[1])->cycle, ==, 1);
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[1])->finished_at, ==, T0 + 10 * SEC);
	/* due at once, and resumes at archive, one crash counted */
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
	g_assert_cmpuint (count_all_attempts (fixture, SC_OUTCOME_CRASHED, "decorate"), ==, 4);
	assert_counts_match (fixture, NULL);
}

/* A message whose handler kills its runner every time is held after
 * crash_limit crashes; what the same runners had merely claimed goes back
 * `released`, never counted.  The marks are the backend's (a runner on a
 * connection of its own marks, reclaim reads them back), as in a daemon. */
static void
test_reclaim_crash_limit (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *poison = inject (fixture, "l.example.org");
	g_autofree char *innocent = inject (fixture, "l.example.org");
	g_autoptr(ScMessageSummary) s = NULL;
	g_autoptr(ScMessageSummary) si = NULL;
	gint64 rowid = 0;
	gint64 innocent_rowid = 0;
	gint64 due = 0;

	for (guint crash = 1; crash <= 3; crash++) {
		MarkedRunner runner = {0};
		const char *owner = marked_runner_start (fixture, &runner);
		g_autoptr(GPtrArray) claimed = claim (fixture, owner, 2);
		ScMessage *m = NULL;

		g_assert_cmpuint (claimed->len, ==, 2);
		for (guint i = 0; i < claimed->len; i++) {
			ScMessage *c = claimed->pdata[i];
			if (strcmp (c->queue_id, poison) == 0)
				m = c;
			else
				innocent_rowid = c->id;
		}
		g_assert_nonnull (m);
		/* the crashes counted so far (the spool's count, read at claim) */
		g_assert_cmpuint (m->crashes, ==, crash - 1);
		rowid = m->id;
		/* its handler starts on the poison, and the runner dies */
		mark (&runner, 0, m);
		sc_clock_advance (fixture->clock, SEC);
		g_assert_cmpuint (reclaim_by_marks (fixture, "watcher", 3), ==, 2);
		marked_runner_stop (&runner);
		g_assert_cmpuint (count_attempts (fixture, rowid, SC_OUTCOME_CRASHED, NULL), ==, crash);
		g_assert_cmpuint (count_attempts (fixture, innocent_rowid, SC_OUTCOME_RELEASED, NULL), ==, crash);
		g_assert_cmpuint (count_attempts (fixture, innocent_rowid, SC_OUTCOME_CRASHED, NULL), ==, 0);
		if (crash < 3)
			g_assert_cmpint (state_of (fixture, poison), ==, SC_STATE_QUEUED);
	}
	/* the innocent one: back, uncounted, free to run */
	si = summary (fixture, innocent);
	g_assert_cmpint (si->state, ==, SC_STATE_QUEUED);
	{
		g_autoptr(ScMessage) m = claim_one (fixture, "runner-4", innocent);
		ScStageResult result = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_DONE);
		g_assert_cmpuint (m->crashes, ==, 0);
		g_assert_cmpuint (record (fixture, "runner-4", &result), ==, 0);
	}
	s = summary (fixture, poison);
	g_assert_cmpint (s->state, ==, SC_STATE_HELD);
	g_assert_nonnull (s->hold_reason);
	g_assert_nonnull (strstr (s->hold_reason, "3"));
	g_assert_nonnull (strstr (s->hold_reason, "crash"));
	g_assert_cmpint (s->next_attempt_at, ==, 0);
	assert_no_lease (fixture);
	g_assert_cmpuint (count_all_attempts (fixture, SC_OUTCOME_CRASHED, NULL), ==, 3);
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

/* Issue 7, defect 3: of a dead runner's claims only those a handler was
 * running are blamed; the merely claimed go back at once, uncounted. */
static void
test_reclaim_blames_in_handler_only (Fixture *fixture, gconstpointer user_data)
{
	MarkedRunner runner = {0};
	const char *dead = marked_runner_start (fixture, &runner);
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autofree char *c = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, dead, a);
	g_autoptr(ScMessage) mb = claim_one (fixture, dead, b);
	g_autoptr(ScMessage) mc = claim_one (fixture, dead, c);
	g_autoptr(GPtrArray) attempts = NULL;
	g_autoptr(ScMessageSummary) sb = NULL;
	ScMessage stale = {0};

	/* slot 0 runs a; slot 1 ran b and is idle again; slot 2's mark is
	 * of c's claim before this one (another generation) */
	mark (&runner, 0, ma);
	mark (&runner, 1, mb);
	mark (&runner, 1, NULL);
	stale.id = mc->id;
	stale.lease_generation = mc->lease_generation - 1;
	mark (&runner, 2, &stale);
	sc_clock_advance (fixture->clock, SEC);
	g_assert_cmpuint (reclaim_by_marks (fixture, "runner-b", 3), ==, 3);
	marked_runner_stop (&runner);
	/* a: its handler ran; blamed, due after the innocent */
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_QUEUED);
	g_assert_cmpint (next_attempt_of (fixture, a), ==, T0 + SEC);
	g_assert_cmpint (next_attempt_of (fixture, b), ==, T0);
	g_assert_cmpint (next_attempt_of (fixture, c), ==, T0);
	/* b and c: only claimed; back at once, last error untouched */
	sb = summary (fixture, b);
	g_assert_cmpint (sb->state, ==, SC_STATE_QUEUED);
	g_assert_null (sb->last_error);
	attempts = attempts_of (fixture, mb->id);
	g_assert_cmpuint (attempts->len, ==, 1);
	g_assert_cmpint (((ScAttemptRecord *) attempts->pdata[0])->outcome, ==, SC_OUTCOME_RELEASED);
	g_assert_cmpuint (count_attempts (fixture, mc->id, SC_OUTCOME_RELEASED, NULL), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_CRASHED, NULL), ==, 1);
	assert_counts_match (fixture, NULL);
	/* the crash counted for a only (the count a claim reads) */
	{
		g_autoptr(GPtrArray) all = claim (fixture, "runner-b", 3);
		g_assert_cmpuint (all->len, ==, 3);
		for (guint i = 0; i < all->len; i++) {
			ScMessage *m = all->pdata[i];
			g_assert_cmpuint (m->crashes, ==, strcmp (m->queue_id, a) == 0 ? 1 : 0);
		}
	}
}

/* A crash inside a group of stages that commit together (decorate, then
 * archive on the same thread, neither recorded yet): the stage the
 * runner's mark names is blamed — in the attempt, the last error and the
 * hold reason — not the first stage without a record. */
static void
test_reclaim_blames_marked_stage (Fixture *fixture, gconstpointer user_data)
{
	MarkedRunner runner = {0};
	const char *dead = marked_runner_start (fixture, &runner);
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, dead, a);
	g_autoptr(ScMessage) mb = claim_one (fixture, dead, b);
	g_autoptr(ScMessageSummary) sa = NULL;
	g_autoptr(ScMessageSummary) sb = NULL;

	g_assert_true (ma->completed == NULL || ma->completed[0] == NULL);
	mark_stage (&runner, 0, ma, 1); /* archive, after an uncommitted decorate */
	mark_stage (&runner, 1, mb, 0); /* decorate */
	sc_clock_advance (fixture->clock, SEC);
	/* a crash limit of 1: both held at once, each with its reason */
	g_assert_cmpuint (reclaim_by_marks (fixture, "runner-b", 1), ==, 2);
	marked_runner_stop (&runner);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_CRASHED, "archive"), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, ma->id, SC_OUTCOME_CRASHED, NULL), ==, 1);
	g_assert_cmpuint (count_attempts (fixture, mb->id, SC_OUTCOME_CRASHED, "decorate"), ==, 1);
	sa = summary (fixture, a);
	sb = summary (fixture, b);
	g_assert_cmpint (sa->state, ==, SC_STATE_HELD);
	g_assert_nonnull (strstr (sa->last_error, "archive stage"));
	g_assert_nonnull (strstr (sa->hold_reason, "archive stage"));
	g_assert_nonnull (strstr (sb->hold_reason, "decorate stage"));
	assert_counts_match (fixture, NULL);
}

/* Issue 7, defect 3: a message held after crashes raises a notification. */
static void
test_reclaim_held_notifies (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *poison = inject (fixture, "l.example.org");
	g_autoptr(GPtrArray) outbox = NULL;
	guint held = 0;

	for (guint crash = 1; crash <= 3; crash++) {
		g_autofree char *owner = g_strdup_printf ("runner-%u", crash);
		g_autoptr(ScMessage) m = NULL;
		sc_clock_advance (fixture->clock, HOUR);
		m = claim_one (fixture, owner, poison);
		g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 3), ==, 1);
	}
	g_assert_cmpint (state_of (fixture, poison), ==, SC_STATE_HELD);
	outbox = notifications (fixture);
	for (guint i = 0; i < outbox->len; i++) {
		ScNotificationEntry *entry = outbox->pdata[i];
		if (strcmp (entry->kind, "message.held") == 0 && g_strcmp0 (entry->queue_id, poison) == 0 &&
		    entry->detail != NULL && strstr (entry->detail, "crashing") != NULL)
			held++;
	}
	g_assert_cmpuint (held, ==, 1);
}

/* A deferred commit (the runner's, for delivered messages) records what
 * a durable one does, and a sync then leaves nothing unsynced: on
 * SQLite at once, on PostgreSQL (always durable) trivially. */
static void
test_result_deferred (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) m = claim_one (fixture, "runner-a", a);
	ScStageResult done = result_for (fixture, m, SC_OUTCOME_OK, SC_STATE_DONE);
	ScStageResult *one = &done;
	ScRecipientUpdate update = {.id = m->id, .lease_generation = m->lease_generation, .position = 0,
				    .status = "sent", .code = 250, .at = T0};
	ScRecipientGroup group = {&update, 1, FALSE};

	done.stage = "deliver";
	done.mailer = "relay";
	g_assert_true (sc_spool_commit_batch (fixture->spool, "runner-a", &group, 1, &one, 1, FALSE, &error));
	g_assert_no_error (error);
	g_assert_true (done.applied);
	g_assert_false (group.lease_lost);
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_DONE);
	g_assert_cmpuint (count_attempts (fixture, m->id, SC_OUTCOME_OK, "deliver"), ==, 1);
	{
		g_autoptr(GPtrArray) recipients = sc_spool_get_recipients (fixture->spool, m->id, &error);
		g_assert_no_error (error);
		g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->status, ==, "sent");
	}
	assert_counts_match (fixture, NULL);
	g_assert_true (sc_spool_sync (fixture->spool, G_MAXUINT64, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (sc_spool_unsynced_mark (fixture->spool), ==, 0);
}

/* A stage that recorded recipient states in its claim was killed while
 * delivering, not killing the runner: the crash is recorded, not counted. */
static void
test_reclaim_progress_not_counted (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScMessage) last = NULL;
	gint64 rowid = 0;

	for (guint crash = 1; crash <= 4; crash++) {
		g_autoptr(ScMessage) m = NULL;
		ScRecipientUpdate update = {0};
		sc_clock_advance (fixture->clock, MINUTE);
		m = claim_one (fixture, "runner-a", a);
		rowid = m->id;
		update.id = m->id;
		update.lease_generation = m->lease_generation;
		update.position = 0;
		update.status = "deferred";
		update.code = 451;
		update.at = sc_clock_now (fixture->clock) + SEC;
		{
			ScRecipientGroup group = {&update, 1, FALSE};
			g_assert_true (sc_spool_commit_batch (fixture->spool, "runner-a", &group, 1, NULL, 0, TRUE, &error));
			g_assert_no_error (error);
			g_assert_false (group.lease_lost);
		}
		sc_clock_advance (fixture->clock, 2 * SEC);
		g_assert_cmpuint (reclaim (fixture, "watcher", NULL, 3), ==, 1);
	}
	g_assert_cmpint (state_of (fixture, a), ==, SC_STATE_QUEUED);
	g_assert_cmpuint (count_all_attempts (fixture, SC_OUTCOME_CRASHED, NULL), ==, 4);
	/* the group was recorded */
	{
		g_autoptr(GPtrArray) recipients = sc_spool_get_recipients (fixture->spool, rowid, &error);
		g_assert_no_error (error);
		g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[0])->status, ==, "deferred");
		g_assert_cmpint (((ScRecipientRecord *) recipients->pdata[0])->code, ==, 451);
	}
	/* none of the four crashes counted */
	last = claim_to_read (fixture, a);
	g_assert_cmpuint (last->crashes, ==, 0);
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
	g_autoptr(ScMessage) back = NULL;
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
	/* no crash counted for it */
	back = claim_to_read (fixture, b);
	g_assert_cmpuint (back->crashes, ==, 0);
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
	    .id = first->id,
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
	g_assert_cmpuint (count_stages (fixture, first->id), ==, 0);

	{
		/* the stale claim's recipient group is left out alone; the
		 * batch itself commits */
		ScRecipientGroup group = {&update, 1, FALSE};
		g_autoptr(GPtrArray) recipients = NULL;
		g_assert_true (sc_spool_commit_batch (fixture->spool, "runner-a", &group, 1, NULL, 0, TRUE, &error));
		g_assert_no_error (error);
		g_assert_true (group.lease_lost);
		recipients = sc_spool_get_recipients (fixture->spool, first->id, &error);
		g_assert_no_error (error);
		for (guint i = 0; i < recipients->len; i++)
			g_assert_cmpstr (((ScRecipientRecord *) recipients->pdata[i])->status, ==, "pending");
	}

	{
		/* renewing the old claim does not extend the new one */
		ScLease lease = lease_of (first);
		g_assert_true (sc_spool_renew_leases (fixture->spool, "runner-a", &lease, 1, T0 + HOUR, &error));
		g_assert_no_error (error);
	}
	/* the current claim records */
	{
		ScStageResult result = result_for (fixture, second, SC_OUTCOME_OK, SC_STATE_ACTIVE);
		one = &result;
		g_assert_true (sc_spool_record_results (fixture->spool, "runner-a", &one, 1, &stale, &error));
		g_assert_cmpuint (stale, ==, 0);
		g_assert_true (result.applied);
	}
	/* still the second claim's lease, ending when it was claimed to */
	assert_lease_ends (fixture, a, T0 + LEASE);
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
	/* after the first lease ran out: only runner-b's message goes back */
	sc_clock_advance (fixture->clock, 2 * MINUTE);
	g_assert_cmpuint (reclaim (fixture, "runner-c", alive, 3), ==, 1);
	g_assert_cmpint (state_of (fixture, ma->queue_id), ==, SC_STATE_ACTIVE);
	g_assert_cmpint (state_of (fixture, mb->queue_id), ==, SC_STATE_QUEUED);
	/* renewing a claim that is gone leaves its message alone */
	g_assert_true (renew_one (fixture, "runner-b", mb, T0 + HOUR, &error));
	g_assert_no_error (error);
	g_assert_cmpint (state_of (fixture, mb->queue_id), ==, SC_STATE_QUEUED);
	{
		g_autofree char *owners = lease_owners (fixture, T0 + 9 * MINUTE - 1);
		g_assert_cmpstr (owners, ==, "runner-a");
	}
	/* a's lease was renewed to exactly T0 + 9 min */
	assert_lease_ends (fixture, ma->queue_id, T0 + 9 * MINUTE);
	(void) a;
	(void) b;
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
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_ACTIVE), ==, 1);
	{
		g_autofree char *owners = lease_owners (fixture, T0 + LEASE - 1);
		g_assert_cmpstr (owners, ==, "runner-other");
	}
	g_assert_cmpint (next_attempt_of (fixture, ma->queue_id), ==, T0 + 20 * SEC);
	g_assert_cmpint (next_attempt_of (fixture, mb->queue_id), ==, T0 + 20 * SEC);
	g_assert_true (sc_spool_next_due (fixture->spool, &due, &error));
	g_assert_cmpint (due, ==, T0 + 20 * SEC);
	{
		g_autoptr(GPtrArray) back = claim (fixture, "runner-a2", 10);
		g_assert_cmpuint (back->len, ==, 2);
	}
	assert_counts_match (fixture, NULL);
	(void) a;
	(void) b;
	(void) c;
}

/* Issue 7, defect 8: a stepped wall clock moves stored waits once. */
static void
test_clock_step (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *a = inject (fixture, "l.example.org");
	g_autofree char *b = inject (fixture, "l.example.org");
	g_autoptr(ScMessage) ma = claim_one (fixture, "runner-a", a);
	g_autoptr(ScMessage) mb = claim_one (fixture, "runner-a", b);
	g_autoptr(ScMessage) read_b = NULL;
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
	g_assert_cmpint (next_attempt_of (fixture, b), ==, T0 + MINUTE - HOUR);
	/* the lease now ends an hour earlier, still the same claim's */
	{
		g_autofree char *owners = lease_owners (fixture, T0 + LEASE - HOUR - 1);
		g_assert_cmpstr (owners, ==, "runner-a");
	}
	/* a second runner looking at the same moment applies nothing more */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 20 * SEC - HOUR, boot + 20 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 0);
	g_assert_cmpint (next_attempt_of (fixture, b), ==, T0 + MINUTE - HOUR);
	/* forward two hours */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 30 * SEC + HOUR, boot + 30 * SEC, "boot-1", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 2 * HOUR);
	g_assert_cmpint (next_attempt_of (fixture, b), ==, T0 + MINUTE + HOUR);
	/* after a reboot the boot clock restarts: no comparison, no step */
	g_assert_true (sc_spool_check_clock (fixture->spool, T0 + 5 * HOUR, 5 * SEC, "boot-2", 3 * SEC, &step, &error));
	g_assert_cmpint (step, ==, 0);
	g_assert_cmpint (next_attempt_of (fixture, b), ==, T0 + MINUTE + HOUR);

	/* what the two steps did to the other waits, -1 h then +2 h: the
	 * cycle start (read back by a claim) and the lease moved by +1 h */
	read_b = claim_to_read (fixture, b);
	g_assert_cmpint (read_b->cycle_started_at, ==, T0 + HOUR);
	assert_lease_ends (fixture, a, T0 + LEASE + HOUR);
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
	g_autoptr(GPtrArray) audit_rows = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	GRand *rand = g_rand_new_with_seed (20261123);
	ScAuditContext audit = audit_at (fixture);
	gint64 visited[SC_STATE_LAST] = {0}; /* steps after which a state had messages */
	guint deletes = 0;

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
		for (guint s = 0; s < SC_STATE_LAST; s++)
			if (count_of (fixture, NULL, s) > 0)
				visited[s]++;
	}
	for (guint l = 0; l < G_N_ELEMENTS (lists); l++)
		assert_counts_match (fixture, lists[l]);
	/* every state was visited, so the walk did test every count */
	for (guint s = 0; s < SC_STATE_LAST; s++) {
		g_test_message ("%s: had messages after %" G_GINT64_FORMAT " of 600 steps", sc_message_state_to_string (s), visited[s]);
		g_assert_cmpint (visited[s], >, 0);
	}
	audit_rows = read_audit (fixture);
	for (guint i = 0; i < audit_rows->len; i++)
		if (strcmp (((ScAuditEntry *) audit_rows->pdata[i])->action, "delete") == 0)
			deletes++;
	g_assert_cmpuint (deletes, >, 0);
	/* a state invariant: queued/deferred ⇒ a due time (active ⇔ leased is
	 * a backend's columns: test-spool.c /spool/lease/columns) */
	messages = all_messages (fixture);
	for (guint i = 0; i < messages->len; i++) {
		ScMessageSummary *s = messages->pdata[i];
		if (s->state == SC_STATE_QUEUED || s->state == SC_STATE_DEFERRED)
			g_assert_cmpint (s->next_attempt_at, !=, 0);
	}
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
			g_assert_cmpint (s->id, <, previous);
			previous = s->id;
			g_assert_cmpstr (s->list_id, ==, "a.example.org");
			g_assert_true (g_hash_table_add (seen, g_strdup (s->queue_id)));
		}
		filter.after_id = ((ScMessageSummary *) page->pdata[page->len - 1])->id;
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

/* Injected a day early so that it is the first due, whatever else is queued. */
static char *
inject_first (Fixture *fixture, const char *list_id)
{
	return inject_full (fixture, list_id, PIPELINE, "first", sc_clock_now (fixture->clock) - 24 * HOUR);
}

/* Drives a message to dead after decorate succeeded and archive failed. */
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
	ScAuditEntry *row;

	sc_clock_advance (fixture->clock, HOUR);
	audit = audit_at (fixture);
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, NULL, &audit, &error));
	g_assert_no_error (error);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_assert_cmpuint (s->cycle, ==, 2);
	g_assert_cmpuint (s->attempts, ==, 0);
	g_assert_cmpint (s->next_attempt_at, ==, T0 + HOUR);
	/* history kept, and the finished stage is not run again */
	attempts = sc_spool_get_attempts (fixture->spool, s->id, &error);
	g_assert_cmpuint (attempts->len, ==, 2);
	m = claim_one (fixture, "r", queue_id);
	g_assert_cmpstr (sc_message_next_stage (m), ==, "archive");
	/* the new cycle started with the retry */
	g_assert_cmpint (m->cycle_started_at, ==, T0 + HOUR);
	g_assert_cmpuint (m->attempts, ==, 0);
	{
		/* attempts now belong to cycle 2 */
		ScStageResult r = result_for (fixture, m, SC_OUTCOME_TRANSIENT, SC_STATE_DEFERRED);
		g_autoptr(GPtrArray) now_attempts = NULL;
		r.next_attempt_at = T0 + 2 * HOUR;
		record (fixture, "r", &r);
		now_attempts = attempts_of (fixture, s->id);
		g_assert_cmpuint (now_attempts->len, ==, 3);
		g_assert_cmpuint (((ScAttemptRecord *) now_attempts->pdata[2])->cycle, ==, 2);
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
	g_assert_cmpuint (count_stages (fixture, s->id), ==, 3);
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 0);
	g_clear_pointer (&audit_rows, g_ptr_array_unref);

	/* from archive: decorate's record stays, archive and later go */
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, "archive", &audit, &error));
	g_assert_no_error (error);
	stages = sc_spool_get_stages (fixture->spool, s->id, &error);
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
		g_assert_cmpuint (count_stages (fixture, s->id), ==, 1);
		g_assert_cmpint (state_of (fixture, queue_id), ==, SC_STATE_ACTIVE);
		g_assert_true (sc_spool_release_owner (fixture->spool, "r", T0, &error));
	}
	/* from the first stage: everything is forgotten */
	g_assert_true (sc_spool_retry (fixture->spool, queue_id, "decorate", &audit, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (count_stages (fixture, s->id), ==, 0);
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 2);
	g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[0])->detail, ==, "archive");
	g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[1])->detail, ==, "decorate");
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
	/* exactly the three dead of list a began a new cycle */
	for (guint i = 0; i < ids->len; i++) {
		g_autoptr(ScMessageSummary) s = summary (fixture, ids->pdata[i]);
		g_assert_cmpuint (s->cycle, ==, i < 3 ? 2 : 1);
	}
	g_assert_true (sc_spool_retry_matching (fixture->spool, SC_STATE_DEAD, NULL, &audit, &count, &error));
	g_assert_cmpuint (count, ==, 2);
	g_assert_true (sc_spool_retry_matching (fixture->spool, SC_STATE_DEAD, NULL, &audit, &count, &error));
	g_assert_cmpuint (count, ==, 0);
	g_assert_cmpint (count_of (fixture, NULL, SC_STATE_DEAD), ==, 0);
	/* the queued message was not part of it */
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queued);
		g_assert_cmpuint (s->cycle, ==, 1);
	}
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 3);
	g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[0])->action, ==, "retry-bulk");
	g_assert_nonnull (strstr (((ScAuditEntry *) audit_rows->pdata[0])->detail, "count=3"));
	g_assert_nonnull (strstr (((ScAuditEntry *) audit_rows->pdata[0])->detail, "a.example.org"));
	g_assert_nonnull (strstr (((ScAuditEntry *) audit_rows->pdata[1])->detail, "count=2"));
	g_assert_nonnull (strstr (((ScAuditEntry *) audit_rows->pdata[2])->detail, "count=0"));
	g_clear_pointer (&audit_rows, g_ptr_array_unref);

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
	audit_rows = read_audit (fixture);
	g_assert_cmpuint (audit_rows->len, ==, 3);
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
		g_assert_cmpint (s->next_attempt_at, ==, 0);
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
		dead_rowid = s->id;
	}
	{
		g_autoptr(GPtrArray) pending = pending_notifications (fixture);
		g_assert_cmpuint (pending->len, ==, 1);
		g_assert_cmpint (((ScNotification *) pending->pdata[0])->message_rowid, ==, dead_rowid);
	}
	g_assert_cmpuint (count_stages (fixture, dead_rowid), ==, 1);
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
	/* its body, stages, attempts and recipients went with it */
	g_assert_null (sc_spool_get_raw (fixture->spool, dead_rowid, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND);
	g_clear_error (&error);
	g_assert_cmpuint (count_stages (fixture, dead_rowid), ==, 0);
	g_assert_cmpuint (count_attempts (fixture, dead_rowid, -1, NULL), ==, 0);
	{
		g_autoptr(GPtrArray) recipients = sc_spool_get_recipients (fixture->spool, dead_rowid, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (recipients->len, ==, 0);
	}
	/* the outbox keeps the notification, unlinked */
	{
		g_autoptr(GPtrArray) pending = pending_notifications (fixture);
		g_assert_cmpuint (pending->len, ==, 1);
		g_assert_cmpint (((ScNotification *) pending->pdata[0])->message_rowid, ==, 0);
		g_assert_cmpstr (((ScNotification *) pending->pdata[0])->queue_id, ==, dead);
	}
	{
		g_autoptr(GPtrArray) left = all_messages (fixture);
		g_assert_cmpuint (left->len, ==, 2);
	}
	assert_counts_match (fixture, NULL);
	assert_counts_match (fixture, "l.example.org");

	/* the audit log has exactly the actions that happened */
	audit_rows = read_audit (fixture);
	{
		static const char *const expected[] = {"hold", "hold", "hold", "release", "release", "delete", "delete", "delete"};
		g_assert_cmpuint (audit_rows->len, ==, G_N_ELEMENTS (expected));
		for (guint i = 0; i < audit_rows->len; i++) {
			ScAuditEntry *row = audit_rows->pdata[i];
			g_assert_cmpstr (row->action, ==, expected[i]);
			g_assert_cmpstr (row->actor, ==, "alice");
		}
		g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[0])->queue_id, ==, queued);
		g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[0])->detail, ==, "wait for the moderator");
		g_assert_cmpstr (((ScAuditEntry *) audit_rows->pdata[5])->queue_id, ==, dead);
	}
}

typedef void (*ContractTest) (Fixture *fixture, gconstpointer user_data);

/* meson runs this binary twice (tests/meson.build 'postgres': true): as
 * spool-contract on SQLite, and as spool-contract-postgresql with
 * SC_TEST_SPOOL_BACKEND=postgresql (suite postgres) — which keeps the
 * unit suite, and valgrind's run of it, free of a database server. */
static gboolean
backend_selected (const char *backend)
{
	const char *wanted = g_getenv ("SC_TEST_SPOOL_BACKEND");

	return strcmp (backend, wanted != NULL && *wanted != '\0' ? wanted : "sqlite") == 0;
}

static void
add_contract_test (const char *name, ContractTest func)
{
	for (const char *const *backend = backends; *backend != NULL; backend++) {
		g_autofree char *path = g_strdup_printf ("/spool-contract/%s/%s", *backend, name);
		if (!backend_selected (*backend))
			continue;
		if (strcmp (*backend, "postgresql") == 0 && !sc_test_postgres_available ())
			continue; /* test_postgres_unavailable says so, once */
		g_test_add (path, Fixture, *backend, fixture_setup, func, fixture_teardown);
	}
}

static void
test_postgres_unavailable (void)
{
	g_test_skip (sc_test_postgres_why_unavailable ());
}

int
main (int argc, char **argv)
{
	int status;

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

	/* the interface's own tables, the same for every backend */
	g_test_add_func ("/spool-contract/names", test_state_names);
	g_test_add_func ("/spool-contract/names/out-of-range", test_state_out_of_range);
	g_test_add_func ("/spool-contract/states/actions", test_state_actions);

	add_contract_test ("inject/basic", test_inject);
	add_contract_test ("inject/not-found", test_get_summary_not_found);
	add_contract_test ("inject/leased", test_inject_leased);
	add_contract_test ("claim/order-and-limit", test_claim_order_and_limit);
	add_contract_test ("claim/only-when-due", test_claim_limit_one_earliest);
	add_contract_test ("claim/memory-budget", test_claim_memory_budget);
	add_contract_test ("transition/to-done", test_transition_to_done);
	add_contract_test ("transition/deferred", test_transition_deferred);
	add_contract_test ("transition/dead", test_transition_dead);
	add_contract_test ("result/batch", test_result_batch);
	add_contract_test ("result/stale-owner", test_result_stale_owner);
	add_contract_test ("result/chain", test_result_chain);
	add_contract_test ("result/deferred", test_result_deferred);
	add_contract_test ("reclaim/dead-owner", test_reclaim_dead_owner);
	add_contract_test ("reclaim/rules", test_reclaim_rules);
	add_contract_test ("reclaim/crash-limit", test_reclaim_crash_limit);
	add_contract_test ("reclaim/blames-in-handler-only", test_reclaim_blames_in_handler_only);
	add_contract_test ("reclaim/blames-marked-stage", test_reclaim_blames_marked_stage);
	add_contract_test ("reclaim/held-notifies", test_reclaim_held_notifies);
	add_contract_test ("reclaim/progress-not-counted", test_reclaim_progress_not_counted);
	add_contract_test ("reclaim/own-dropped-claims", test_reclaim_own_dropped_claims);
	add_contract_test ("lease/generation", test_lease_generation);
	add_contract_test ("lease/renew", test_lease_renew);
	add_contract_test ("lease/release-owner", test_lease_release_owner);
	add_contract_test ("clock/step-moves-waits-once", test_clock_step);
	add_contract_test ("next-due", test_next_due);
	add_contract_test ("count/random-walk", test_counts_random_walk);
	add_contract_test ("list/filters", test_list_filters);
	add_contract_test ("list/keyset", test_list_keyset);
	add_contract_test ("admin/retry", test_admin_retry);
	add_contract_test ("admin/retry-from-stage", test_admin_retry_from_stage);
	add_contract_test ("admin/retry-matching", test_admin_retry_matching);
	add_contract_test ("admin/hold-release-delete", test_admin_hold_release_delete);
	if (backend_selected ("postgresql") && !sc_test_postgres_available ())
		g_test_add_func ("/spool-contract/postgresql/skipped", test_postgres_unavailable);
	status = g_test_run ();
	g_clear_pointer (&postgres, sc_test_postgres_stop);
	return status;
}
