/* test-pg-spool.c — what only the PostgreSQL spool has to show (the
 * contract suite covers the verbs): runners on separate connections never
 * claim the same message; a killed connection costs one TEMPORARY call
 * and the next works; so does a server restart, with nothing committed
 * lost; a runner's liveness is its advisory lock, seen from another
 * connection and gone with its session; two processes creating a spool
 * at once migrate it once; a schema newer than known is refused; a
 * NOTIFY from another connection wakes the listening source; a runner
 * process killed while a handler ran on a claim gets exactly that claim
 * blamed by another (its marks are in the database), until the crash
 * limit holds it.
 *
 * Against a private server (tests/sc-test-postgres.c), one per binary,
 * a database per case; every case skips, saying why, without one. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sc-clock.h"
#include "sc-error.h"
#include "sc-owner.h"
#include "sc-spool.h"
#include "sc-test-postgres.h"
#include "sc-test-spool.h"
#include "sc-test-util.h"

/* this binary, for the cases that run a part of it as another process */
static char *self_path;

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>

static ScTestPostgres *postgres;

typedef struct {
	char *dbname; /* (owned) */
	char *uri;    /* (owned) */
	ScSpool *spool;
	ScClock *clock;
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	static guint databases;
	g_autoptr(GError) error = NULL;

	if (postgres == NULL)
		postgres = sc_test_postgres_start (&error);
	g_assert_no_error (error);
	fixture->dbname = g_strdup_printf ("pg_spool_%u", ++databases);
	g_assert_true (sc_test_postgres_create_database (postgres, fixture->dbname, &error));
	g_assert_no_error (error);
	fixture->uri = sc_test_postgres_get_uri (postgres, fixture->dbname);
	fixture->clock = sc_clock_new_fixed (T0);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->spool, sc_spool_close);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	g_free (fixture->uri);
	g_free (fixture->dbname);
}

static ScSpool *
open_spool (Fixture *fixture, gint64 busy_timeout)
{
	g_autoptr(GError) error = NULL;
	ScSpool *spool = sc_spool_open (fixture->uri, busy_timeout, &error);

	g_assert_no_error (error);
	g_assert_nonnull (spool);
	return spool;
}

static PGconn *
raw_connect (Fixture *fixture)
{
	PGconn *conn = PQconnectdb (fixture->uri);

	g_assert_cmpint (PQstatus (conn), ==, CONNECTION_OK);
	return conn;
}

static void
raw_exec (PGconn *conn, const char *sql)
{
	PGresult *result = PQexec (conn, sql);
	ExecStatusType status = PQresultStatus (result);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
	PQclear (result);
}

/* ---- claims from several runners ---- */

#define N_MESSAGES 300
#define N_CLAIMERS 3

typedef struct {
	const char *uri;
	char owner[32];
	GPtrArray *claimed; /* (owned) queue ids */
	guint errors;
	gint *ready;        /* claimers connected: all start claiming together */
} Claimer;

static gpointer
claimer_thread (gpointer data)
{
	Claimer *claimer = data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = sc_spool_open (claimer->uri, 5 * SEC, &error);
	guint empty = 0;

	g_assert_no_error (error);
	/* a connection that took longer to open must not find the queue
	 * drained already: the test is about claims that run at once */
	g_atomic_int_inc (claimer->ready);
	while (g_atomic_int_get (claimer->ready) < N_CLAIMERS)
		g_usleep (1000);
	/* until the queue stays empty: each claim takes a few, as a runner does */
	while (empty < 3) {
		g_autoptr(GPtrArray) messages = sc_spool_claim (spool, claimer->owner, T0, T0 + LEASE, 4, &error);
		if (messages == NULL) {
			/* a deadlock or lock timeout is TEMPORARY: a runner retries */
			g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
			g_clear_error (&error);
			claimer->errors++;
			continue;
		}
		empty = messages->len == 0 ? empty + 1 : 0;
		for (guint i = 0; i < messages->len; i++) {
			ScMessage *message = messages->pdata[i];
			g_ptr_array_add (claimer->claimed, g_strdup (message->queue_id));
		}
	}
	return NULL;
}

static void
test_concurrent_claims (Fixture *fixture, gconstpointer data)
{
	Claimer claimers[N_CLAIMERS];
	GThread *threads[N_CLAIMERS];
	g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GHashTable) injected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	guint total = 0;
	gint ready = 0;

	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	for (guint i = 0; i < N_MESSAGES; i++)
		g_hash_table_add (injected, sc_test_spool_inject_full (fixture->spool, "list", PIPELINE,
									"Subject: x\r\n\r\nbody\r\n", T0 - SEC));
	for (guint i = 0; i < N_CLAIMERS; i++) {
		claimers[i].uri = fixture->uri;
		g_snprintf (claimers[i].owner, sizeof claimers[i].owner, "runner-%u", i);
		claimers[i].claimed = g_ptr_array_new_with_free_func (g_free);
		claimers[i].errors = 0;
		claimers[i].ready = &ready;
	}
	for (guint i = 0; i < N_CLAIMERS; i++)
		threads[i] = g_thread_new ("claimer", claimer_thread, &claimers[i]);
	for (guint i = 0; i < N_CLAIMERS; i++)
		g_thread_join (threads[i]);
	for (guint i = 0; i < N_CLAIMERS; i++) {
		g_test_message ("%s claimed %u (%u temporary errors)", claimers[i].owner, claimers[i].claimed->len,
				claimers[i].errors);
		/* every runner got some: nobody waited for another's claim */
		g_assert_cmpuint (claimers[i].claimed->len, >, 0);
		for (guint j = 0; j < claimers[i].claimed->len; j++) {
			const char *queue_id = claimers[i].claimed->pdata[j];
			if (!g_hash_table_add (seen, (gpointer) queue_id))
				g_error ("%s was claimed twice", queue_id);
			g_assert_true (g_hash_table_contains (injected, queue_id));
			total++;
		}
	}
	g_assert_cmpuint (total, ==, N_MESSAGES);
	g_assert_cmpint (sc_test_spool_count_of (fixture->spool, NULL, SC_STATE_ACTIVE), ==, N_MESSAGES);
	for (guint i = 0; i < N_CLAIMERS; i++)
		g_ptr_array_unref (claimers[i].claimed);
}

/* ---- connection loss ---- */

static gboolean
next_due (ScSpool *spool, GError **error)
{
	gint64 due = 0;

	if (sc_spool_next_due (spool, &due, error))
		return TRUE;
	return error == NULL || *error == NULL;
}

static void
test_terminated_backend (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *before = NULL;
	g_autofree char *after = NULL;
	g_autoptr(ScMessage) message = NULL;
	int killed;

	fixture->spool = open_spool (fixture, 2 * SEC);
	before = inject (fixture, "list");
	killed = sc_test_postgres_terminate_backends (postgres, fixture->dbname, "stagecoach", &error);
	g_assert_no_error (error);
	g_assert_cmpint (killed, ==, 1);
	/* the call that finds the connection gone fails, TEMPORARY … */
	g_assert_false (next_due (fixture->spool, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_test_message ("after the kill: %s", error->message);
	g_clear_error (&error);
	/* … and the next one works, on a new session */
	after = inject (fixture, "list");
	message = claim_one (fixture, "runner", before);
	g_assert_cmpint (sc_test_spool_count_of (fixture->spool, "list", SC_STATE_QUEUED), ==, 1);

	/* a write that the kill interrupts is not half-done: it fails
	 * TEMPORARY and nothing of it is there */
	killed = sc_test_postgres_terminate_backends (postgres, fixture->dbname, "stagecoach", &error);
	g_assert_no_error (error);
	{
		ScStageResult result = result_for (fixture, message, SC_OUTCOME_OK, SC_STATE_ACTIVE);
		ScStageResult *one = &result;
		g_assert_false (sc_spool_record_results (fixture->spool, "runner", &one, 1, NULL, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
		g_clear_error (&error);
		/* the runner's retry of the same result applies it, once */
		g_assert_cmpuint (record (fixture, "runner", &result), ==, 0);
	}
	{
		g_autoptr(GPtrArray) stages = NULL;
		g_autoptr(ScMessageSummary) s = summary (fixture, before);
		stages = sc_spool_get_stages (fixture->spool, s->id, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (stages->len, ==, 1);
	}
}

static void
test_server_restart (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(ScMessageSummary) s = NULL;

	fixture->spool = open_spool (fixture, 5 * SEC);
	queue_id = inject (fixture, "list");
	/* immediate: no checkpoint, the inject must come back from the WAL */
	g_assert_true (sc_test_postgres_restart_immediate (postgres, &error));
	g_assert_no_error (error);
	g_assert_false (next_due (fixture->spool, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_clear_error (&error);
	s = summary (fixture, queue_id);
	g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
	g_clear_pointer (&s, sc_message_summary_free);

	/* a fast shutdown too, and the spool keeps working after it */
	g_assert_true (sc_test_postgres_restart (postgres, &error));
	g_assert_no_error (error);
	g_assert_false (next_due (fixture->spool, &error));
	g_clear_error (&error);
	{
		g_autoptr(ScMessage) message = claim_one (fixture, "runner", queue_id);
		g_assert_cmpstr (message->queue_id, ==, queue_id);
	}
}

/* ---- liveness ---- */

/* The server drops a closed session's locks a moment after the socket
 * closes: poll. */
static gboolean
wait_alive (ScSpool *spool, const char *owner, gboolean alive)
{
	for (guint i = 0; i < 500; i++) {
		if (sc_spool_runner_is_alive (spool, owner) == alive)
			return TRUE;
		g_usleep (10 * 1000);
	}
	return FALSE;
}

static void
test_liveness (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScSpool *runner_spool = open_spool (fixture, 2 * SEC);
	g_autoptr(ScOwner) owner = sc_spool_register_runner (runner_spool, &error);
	g_autofree char *name = NULL;

	g_assert_no_error (error);
	g_assert_nonnull (owner);
	name = g_strdup (sc_owner_get_name (owner));
	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	g_assert_true (sc_spool_runner_is_alive (fixture->spool, name));
	g_assert_false (sc_spool_runner_is_alive (fixture->spool, "some-other-runner"));
	/* its in-handler marks are read from another connection; a cleared
	 * slot is not one */
	sc_owner_mark_in_handler (owner, 0, 1, 1, 2);
	sc_owner_mark_in_handler (owner, 1, 2, 7, 0);
	sc_owner_mark_in_handler (owner, 1, 0, 0, 0);
	{
		g_autoptr(GHashTable) running = sc_spool_runner_in_handler (fixture->spool, name);
		gint stage = -2;
		g_assert_cmpuint (g_hash_table_size (running), ==, 1);
		g_assert_true (sc_owner_marks_find (running, 1, 1, &stage));
		g_assert_cmpint (stage, ==, 2);
		g_assert_false (sc_owner_marks_find (running, 2, 7, NULL));
	}

	/* its connection killed: dead until its next call reconnects and
	 * takes the lock again */
	g_assert_cmpint (sc_test_postgres_terminate_backends (postgres, fixture->dbname, "stagecoach", &error), >=, 1);
	g_assert_no_error (error);
	/* (the kill took ours too: this call reconnects it) */
	(void) sc_spool_runner_is_alive (fixture->spool, name);
	g_assert_true (wait_alive (fixture->spool, name, FALSE));
	g_assert_false (next_due (runner_spool, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_clear_error (&error);
	g_assert_true (next_due (runner_spool, &error));
	g_assert_no_error (error);
	g_assert_true (wait_alive (fixture->spool, name, TRUE));

	/* closed: dead, as a killed process's would be */
	g_clear_pointer (&owner, sc_owner_free);
	sc_spool_close (runner_spool);
	g_assert_true (wait_alive (fixture->spool, name, FALSE));
}

/* ---- in-handler marks across processes ---- */

/* The child: a runner on the spool at @uri that claims every due message
 * at @now, runs a "handler" on @poison's claim (slot 0; slot 1 ran
 * another and is idle again), says its name and waits to be killed. */
static int
marked_child (const char *uri, const char *poison, const char *now_text)
{
	g_autoptr(GError) error = NULL;
	gint64 now = g_ascii_strtoll (now_text, NULL, 10);
	ScSpool *spool = sc_spool_open (uri, 5 * SEC, &error);
	ScOwner *owner = spool != NULL ? sc_spool_register_runner (spool, &error) : NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	gboolean marked = FALSE;

	if (owner == NULL) {
		g_printerr ("child: %s\n", error->message);
		return 1;
	}
	claimed = sc_spool_claim (spool, sc_owner_get_name (owner), now, now + LEASE, 16, &error);
	if (claimed == NULL) {
		g_printerr ("child: %s\n", error->message);
		return 1;
	}
	for (guint i = 0; i < claimed->len; i++) {
		ScMessage *m = claimed->pdata[i];
		if (strcmp (m->queue_id, poison) == 0) {
			sc_owner_mark_in_handler (owner, 0, m->id, m->lease_generation, 0);
			marked = TRUE;
		} else {
			sc_owner_mark_in_handler (owner, 1, m->id, m->lease_generation, 0);
			sc_owner_mark_in_handler (owner, 1, 0, 0, 0);
		}
	}
	if (!marked) {
		g_printerr ("child: %s not claimed (%u claimed)\n", poison, claimed->len);
		return 1;
	}
	g_print ("%s %u\n", sc_owner_get_name (owner), claimed->len);
	fflush (stdout);
	for (;;)
		pause (); /* killed here, its handler "running" */
}

/* Starts the child and reads its runner's name. (transfer full) */
static char *
run_marked_child (Fixture *fixture, const char *poison, guint expect_claimed, GSubprocess **out_child)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *now = g_strdup_printf ("%" G_GINT64_FORMAT, sc_clock_now (fixture->clock));
	GSubprocess *child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, self_path, "--marked-child",
					       fixture->uri, poison, now, NULL);
	g_autoptr(GDataInputStream) out = NULL;
	g_autofree char *line = NULL;
	g_auto(GStrv) words = NULL;

	g_assert_no_error (error);
	out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child));
	line = g_data_input_stream_read_line (out, NULL, NULL, &error);
	g_assert_no_error (error);
	g_assert_nonnull (line);
	words = g_strsplit (line, " ", 2);
	g_assert_cmpuint (g_strv_length (words), ==, 2);
	g_assert_cmpuint ((guint) g_ascii_strtoull (words[1], NULL, 10), ==, expect_claimed);
	*out_child = child;
	return g_strdup (words[0]);
}

static gint64
raw_count_marks (Fixture *fixture, const char *owner)
{
	PGconn *conn = raw_connect (fixture);
	const char *values[1] = {owner};
	PGresult *result = PQexecParams (conn, "SELECT count(*) FROM handler_marks WHERE owner = $1", 1, NULL,
					 values, NULL, NULL, 0);
	gint64 count;

	g_assert_cmpint (PQresultStatus (result), ==, PGRES_TUPLES_OK);
	count = g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
	PQclear (result);
	PQfinish (conn);
	return count;
}

/* Reclaim's probe as the runner has it (sc-runner.c): liveness and marks
 * asked of the spool; the dead forgotten after. */
typedef struct {
	ScSpool *spool;
	GPtrArray *dead;
} RunnerProbe;

static gboolean
runner_alive_cb (const char *owner, gpointer user_data)
{
	RunnerProbe *probe = user_data;
	gboolean alive = sc_spool_runner_is_alive (probe->spool, owner);

	if (!alive)
		g_ptr_array_add (probe->dead, g_strdup (owner));
	return alive;
}

static gboolean
runner_in_handler_cb (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data)
{
	RunnerProbe *probe = user_data;
	g_autoptr(GHashTable) running = sc_spool_runner_in_handler (probe->spool, owner);

	return sc_owner_marks_find (running, lease->id, lease->generation, out_stage);
}

static gboolean
runner_in_flight_cb (const ScLease *lease, gpointer user_data)
{
	return FALSE;
}

static guint
count_outcome (Fixture *fixture, const char *queue_id, ScOutcome outcome)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
	g_autoptr(GPtrArray) attempts = sc_spool_get_attempts (fixture->spool, s->id, &error);
	guint count = 0;

	g_assert_no_error (error);
	for (guint i = 0; i < attempts->len; i++)
		count += ((ScAttemptRecord *) attempts->pdata[i])->outcome == outcome ? 1 : 0;
	return count;
}

#define CRASH_LIMIT 3

static void
test_marks_across_processes (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *poison = NULL;
	g_auto(GStrv) others = g_new0 (char *, 3); /* the two innocent ones, NULL-terminated */
	g_autoptr(GPtrArray) outbox = NULL;
	g_autoptr(ScMessageSummary) held = NULL;
	guint held_notes = 0;

	fixture->spool = open_spool (fixture, 2 * SEC);
	poison = inject (fixture, "list");
	others[0] = inject (fixture, "list");
	others[1] = inject (fixture, "list");
	for (guint crash = 1; crash <= CRASH_LIMIT; crash++) {
		g_autoptr(GSubprocess) child = NULL;
		g_autoptr(GPtrArray) dead = g_ptr_array_new_with_free_func (g_free);
		RunnerProbe runner = {.spool = fixture->spool, .dead = dead};
		ScLeaseProbe probe = {
		    .alive = runner_alive_cb,
		    .in_handler = runner_in_handler_cb,
		    .in_flight = runner_in_flight_cb,
		    .user_data = &runner,
		};
		g_autofree char *name = run_marked_child (fixture, poison, 3, &child);
		guint taken;

		/* runner A, on its own connections, is killed mid-handler */
		g_assert_true (sc_spool_runner_is_alive (fixture->spool, name));
		g_assert_cmpint (raw_count_marks (fixture, name), ==, 2);
		g_subprocess_send_signal (child, SIGKILL);
		g_assert_true (g_subprocess_wait (child, NULL, NULL));
		g_assert_true (wait_alive (fixture->spool, name, FALSE));

		/* runner B takes its claims back: the poison blamed, the rest released */
		sc_clock_advance (fixture->clock, SEC);
		taken = sc_spool_reclaim (fixture->spool, "runner-b", &probe, sc_clock_now (fixture->clock), CRASH_LIMIT,
					  &error);
		g_assert_no_error (error);
		g_assert_cmpuint (taken, ==, 3);
		g_assert_cmpuint (dead->len, ==, 1);
		g_assert_cmpstr (dead->pdata[0], ==, name);
		sc_spool_forget_runner (fixture->spool, name);
		g_assert_cmpint (raw_count_marks (fixture, name), ==, 0);

		g_assert_cmpuint (count_outcome (fixture, poison, SC_OUTCOME_CRASHED), ==, crash);
		g_assert_cmpuint (count_outcome (fixture, poison, SC_OUTCOME_RELEASED), ==, 0);
		for (guint i = 0; others[i] != NULL; i++) {
			g_autoptr(ScMessageSummary) s = summary (fixture, others[i]);
			g_assert_cmpint (s->state, ==, SC_STATE_QUEUED);
			g_assert_cmpuint (count_outcome (fixture, others[i], SC_OUTCOME_CRASHED), ==, 0);
			g_assert_cmpuint (count_outcome (fixture, others[i], SC_OUTCOME_RELEASED), ==, crash);
		}
		{
			g_autoptr(ScMessageSummary) s = summary (fixture, poison);
			g_assert_cmpint (s->state, ==, crash < CRASH_LIMIT ? SC_STATE_QUEUED : SC_STATE_HELD);
		}
	}
	held = summary (fixture, poison);
	g_assert_nonnull (held->hold_reason);
	g_test_message ("held: %s", held->hold_reason);
	g_assert_nonnull (strstr (held->hold_reason, "crash"));
	outbox = sc_spool_list_notifications (fixture->spool, 0, 0, &error);
	g_assert_no_error (error);
	for (guint i = 0; i < outbox->len; i++) {
		ScNotificationEntry *entry = outbox->pdata[i];
		if (strcmp (entry->kind, "message.held") == 0 && g_strcmp0 (entry->queue_id, poison) == 0)
			held_notes++;
	}
	g_assert_cmpuint (held_notes, ==, 1);
	/* the others were never counted: a claim reads 0 crashes */
	{
		g_autoptr(GPtrArray) rest = sc_spool_claim (fixture->spool, "runner-b", sc_clock_now (fixture->clock),
							    sc_clock_now (fixture->clock) + LEASE, 16, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (rest->len, ==, 2);
		for (guint i = 0; i < rest->len; i++)
			g_assert_cmpuint (((ScMessage *) rest->pdata[i])->crashes, ==, 0);
	}
}

/* The round trip of one mark, as a worker pays it before its handler
 * (reported, not asserted: the machine is shared). */
static void
test_mark_cost (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScSpool *runner_spool = open_spool (fixture, 2 * SEC);
	g_autoptr(ScOwner) owner = sc_spool_register_runner (runner_spool, &error);
	const guint n = 2000;
	gint64 start;
	gint64 elapsed;

	g_assert_no_error (error);
	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	sc_owner_mark_in_handler (owner, 0, 1, 1, 0); /* connects */
	start = g_get_monotonic_time ();
	for (guint i = 0; i < n; i++)
		sc_owner_mark_in_handler (owner, i % 4, i % 2 == 0 ? (gint64) i + 1 : 0, 1, 1);
	elapsed = g_get_monotonic_time () - start;
	g_test_message ("one in-handler mark: %.1f us (%u marks, one connection)", (double) elapsed / n, n);
	{
		g_autoptr(GHashTable) running = sc_spool_runner_in_handler (fixture->spool, sc_owner_get_name (owner));
		/* slots 0 and 2 hold the last even i's marks; 1 and 3 are idle */
		g_assert_cmpuint (g_hash_table_size (running), ==, 2);
		g_assert_true (sc_owner_marks_find (running, 1997, 1, NULL));
		g_assert_true (sc_owner_marks_find (running, 1999, 1, NULL));
	}
	/* a clean stop takes its rows away */
	{
		g_autofree char *name = g_strdup (sc_owner_get_name (owner));
		g_clear_pointer (&owner, sc_owner_free);
		sc_spool_close (runner_spool);
		g_assert_cmpint (raw_count_marks (fixture, name), ==, 0);
	}
}

/* What a reclaiming runner's probe asks, answered by the spool itself. */
static gboolean
probe_alive (const char *owner, gpointer user_data)
{
	return sc_spool_runner_is_alive (user_data, owner);
}

static gboolean
probe_no (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data)
{
	return FALSE;
}

static gboolean
probe_not_mine (const ScLease *lease, gpointer user_data)
{
	return FALSE;
}

/* A runner whose connection is cut keeps its claims while it reconnects:
 * another runner's reclaim in that moment takes nothing, and the cut
 * runner's result still applies.  (Reclaimed at once, its claims went to
 * others while it still delivered them from memory: the N-host test's
 * duplicates.) */
static void
test_cut_runner_keeps_claims (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScSpool *runner_spool = open_spool (fixture, 2 * SEC);
	g_autoptr(ScOwner) owner = sc_spool_register_runner (runner_spool, &error);
	g_autoptr(GPtrArray) claimed = NULL;
	g_autofree char *queue_id = NULL;
	const char *name;
	ScLeaseProbe probe = {probe_alive, probe_no, probe_not_mine, NULL};
	guint taken;

	g_assert_no_error (error);
	name = sc_owner_get_name (owner);
	fixture->spool = open_spool (fixture, SEC);
	probe.user_data = fixture->spool;
	queue_id = inject (fixture, "list");
	claimed = sc_spool_claim (runner_spool, name, T0, T0 + LEASE, 1, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (claimed->len, ==, 1);
	/* the other runner's passes have seen it alive (a runner never seen
	 * alive is dead as soon as its lock is gone) */
	g_assert_true (sc_spool_runner_is_alive (fixture->spool, name));

	g_assert_cmpint (sc_test_postgres_terminate_backends (postgres, fixture->dbname, "stagecoach", &error), >=, 1);
	g_assert_no_error (error);
	(void) next_due (fixture->spool, NULL); /* the observer's own reconnect */
	g_clear_error (&error);
	taken = sc_spool_reclaim (fixture->spool, "observer", &probe, T0 + SEC, 3, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (taken, ==, 0);

	/* the runner's next call finds its connection gone, the one after
	 * reconnects and takes its lock back; its result applies */
	g_assert_false (next_due (runner_spool, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY);
	g_clear_error (&error);
	{
		ScStageResult result = result_for (fixture, claimed->pdata[0], SC_OUTCOME_OK, SC_STATE_DONE);
		g_assert_cmpuint (sc_test_spool_record (runner_spool, name, &result), ==, 0);
	}
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
		g_assert_cmpint (s->state, ==, SC_STATE_DONE);
	}
	g_clear_pointer (&owner, sc_owner_free);
	sc_spool_close (runner_spool);
}

/* ---- a full database ---- */

/* PostgreSQL out of disk (SQLSTATE 53100, raised here by triggers as the
 * server raises it when a write finds no space): inject answers 75 and
 * keeps nothing; a stage result is not recorded and the message stays
 * the runner's, to be recorded when there is room — nothing lost. */
static void
test_disk_full (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = sc_test_make_tmpdir ("sc-pg-full");
	g_autofree char *config_text = g_strdup_printf ("[stagecoach]\nspool=%s\nstate-dir=state\nbusy-timeout=2s\n"
							"[list:test.example.org]\npipeline=archive\narchive=\n",
							fixture->uri);
	g_autofree char *config = sc_test_write_file (dir, "stagecoach.conf", config_text);
	static const char text[] = "Subject: full\r\n\r\nbody\r\n";
	g_autoptr(GBytes) input = g_bytes_new_static (text, sizeof text - 1);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	PGconn *conn;
	int status;

	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	queue_id = inject (fixture, "list"); /* before the disk fills */
	conn = raw_connect (fixture);
	raw_exec (conn, "CREATE FUNCTION full_disk () RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
			" RAISE EXCEPTION 'could not extend file: No space left on device'"
			" USING ERRCODE = 'disk_full'; END $$");
	raw_exec (conn, "CREATE TRIGGER messages_full BEFORE INSERT ON messages"
			" FOR EACH ROW EXECUTE FUNCTION full_disk ()");
	raw_exec (conn, "CREATE TRIGGER stages_full BEFORE INSERT ON stages"
			" FOR EACH ROW EXECUTE FUNCTION full_disk ()");

	/* the spool says NO_SPACE; the command says 75 and names the cause */
	{
		ScNewMessage message = {.list_id = "list",
					.sender = "",
					.recipients = (const char *const[]){"a@example.org", NULL},
					.pipeline = PIPELINE,
					.raw = input,
					.now = T0};
		g_autofree char *id = sc_spool_inject (fixture->spool, &message, &error);
		g_assert_null (id);
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE);
		g_clear_error (&error);
	}
	status = sc_test_run (config, input, &out, &err, "inject", "--list", "test.example.org", "b@example.org", NULL);
	g_test_message ("inject on a full database: %d, %s", status, err);
	g_assert_cmpint (status, ==, 75);
	g_assert_nonnull (strstr (err, "space"));
	g_assert_cmpint (sc_test_spool_count_of (fixture->spool, NULL, SC_STATE_QUEUED), ==, 1);

	/* a stage's result waits: not recorded, still the runner's */
	claimed = sc_spool_claim (fixture->spool, "runner", T0, T0 + LEASE, 1, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (claimed->len, ==, 1);
	{
		ScStageResult result = result_for (fixture, claimed->pdata[0], SC_OUTCOME_OK, SC_STATE_DONE);
		ScStageResult *one = &result;
		g_assert_false (sc_spool_record_results (fixture->spool, "runner", &one, 1, NULL, &error));
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE);
		g_clear_error (&error);
		g_assert_cmpint (sc_test_spool_count_of (fixture->spool, NULL, SC_STATE_ACTIVE), ==, 1);
		/* room again: the same result is recorded, once */
		raw_exec (conn, "DROP TRIGGER stages_full ON stages");
		g_assert_cmpuint (sc_test_spool_record (fixture->spool, "runner", &result), ==, 0);
	}
	{
		g_autoptr(ScMessageSummary) s = summary (fixture, queue_id);
		g_assert_cmpint (s->state, ==, SC_STATE_DONE);
	}
	PQfinish (conn);
	sc_test_remove_tree (dir);
}

/* ---- migration ---- */

typedef struct {
	const char *uri;
	GError *error;
	GMutex *start;
} Opener;

static gpointer
opener_thread (gpointer data)
{
	Opener *opener = data;
	ScSpool *spool;

	/* both released together */
	g_mutex_lock (opener->start);
	g_mutex_unlock (opener->start);
	spool = sc_spool_open (opener->uri, 10 * SEC, &opener->error);
	g_clear_pointer (&spool, sc_spool_close);
	return NULL;
}

static void
test_migrate_concurrently (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	GMutex start;
	Opener openers[4];
	GThread *threads[G_N_ELEMENTS (openers)];
	g_autofree char *server = NULL;
	int version = 0;

	g_mutex_init (&start);
	g_mutex_lock (&start);
	for (guint i = 0; i < G_N_ELEMENTS (openers); i++) {
		openers[i] = (Opener){.uri = fixture->uri, .start = &start};
		threads[i] = g_thread_new ("opener", opener_thread, &openers[i]);
	}
	g_usleep (50 * 1000);
	g_mutex_unlock (&start);
	for (guint i = 0; i < G_N_ELEMENTS (openers); i++) {
		g_thread_join (threads[i]);
		g_assert_no_error (openers[i].error);
	}
	g_mutex_clear (&start);

	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	g_assert_true (sc_spool_describe (fixture->spool, &server, &version, &error));
	g_assert_no_error (error);
	g_assert_true (g_str_has_prefix (server, "PostgreSQL "));
	/* v4: handler_marks, PostgreSQL's own; v5 changes nothing here; v6:
	 * handler_marks.stage (sc-pg-schema.c) */
	g_assert_cmpint (version, ==, 6);
	{
		PGconn *conn = raw_connect (fixture);
		PGresult *result = PQexec (conn, "SELECT count(*) FROM schema_version");
		g_assert_cmpint (PQresultStatus (result), ==, PGRES_TUPLES_OK);
		g_assert_cmpstr (PQgetvalue (result, 0, 0), ==, "1");
		PQclear (result);
		PQfinish (conn);
	}
	g_clear_pointer (&fixture->spool, sc_spool_close);

	/* and a spool from a newer stagecoach is refused, not touched */
	{
		PGconn *conn = raw_connect (fixture);
		raw_exec (conn, "UPDATE schema_version SET version = 99");
		PQfinish (conn);
	}
	g_assert_null (sc_spool_open (fixture->uri, BUSY_TIMEOUT, &error));
	g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED);
	g_assert_nonnull (strstr (error->message, "99"));
}

/* ---- wakeups ---- */

static gboolean
woken_cb (gpointer data)
{
	guint *woken = data;
	(*woken)++;
	return G_SOURCE_CONTINUE;
}

static void
pump (GMainContext *context)
{
	if (!g_main_context_iteration (context, FALSE))
		g_usleep (1000);
}

static void
test_wakeups (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GMainContext) context = g_main_context_new ();
	g_autoptr(ScSpool) other = NULL;
	GSource *source;
	guint woken = 0;
	gint64 deadline;

	fixture->spool = open_spool (fixture, BUSY_TIMEOUT);
	source = sc_spool_wake_source_new (fixture->spool, woken_cb, &woken, &error);
	g_assert_no_error (error);
	g_assert_nonnull (source);
	g_source_attach (source, context);
	other = open_spool (fixture, BUSY_TIMEOUT);
	sc_spool_wake_runners (other);
	deadline = g_get_monotonic_time () + 10 * SEC;
	while (woken == 0 && g_get_monotonic_time () < deadline)
		pump (context);
	g_assert_cmpuint (woken, >=, 1);

	/* its connection killed: it listens again and wakes its runner
	 * (what was notified meanwhile may be lost) */
	woken = 0;
	g_assert_cmpint (sc_test_postgres_terminate_backends (postgres, fixture->dbname, "stagecoach", &error), >=, 1);
	deadline = g_get_monotonic_time () + 10 * SEC;
	while (woken == 0 && g_get_monotonic_time () < deadline)
		pump (context);
	g_assert_cmpuint (woken, >=, 1);
	woken = 0;
	/* other's session was killed too: the first call reconnects */
	(void) next_due (other, NULL);
	deadline = g_get_monotonic_time () + 10 * SEC;
	while (woken == 0 && g_get_monotonic_time () < deadline) {
		sc_spool_wake_runners (other);
		for (guint i = 0; i < 100 && woken == 0; i++)
			pump (context);
	}
	g_assert_cmpuint (woken, >=, 1);
	g_source_destroy (source);
	g_source_unref (source);
}

#endif /* HAVE_LIBPQ */

static void
test_unavailable (void)
{
	g_test_skip (sc_test_postgres_why_unavailable ());
}

int
main (int argc, char **argv)
{
	int status;

#ifdef HAVE_LIBPQ
	if (argc == 5 && strcmp (argv[1], "--marked-child") == 0)
		return marked_child (argv[2], argv[3], argv[4]);
#endif
	self_path = g_canonicalize_filename (argv[0], NULL);
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_postgres_available ()) {
		g_test_add_func ("/pg-spool/skipped", test_unavailable);
		return g_test_run ();
	}
#ifdef HAVE_LIBPQ
	g_test_add ("/pg-spool/claim/concurrent-never-twice", Fixture, NULL, setup, test_concurrent_claims, teardown);
	g_test_add ("/pg-spool/connection/terminated", Fixture, NULL, setup, test_terminated_backend, teardown);
	g_test_add ("/pg-spool/connection/server-restart", Fixture, NULL, setup, test_server_restart, teardown);
	g_test_add ("/pg-spool/presence/advisory-lock", Fixture, NULL, setup, test_liveness, teardown);
	g_test_add ("/pg-spool/presence/marks-across-processes", Fixture, NULL, setup, test_marks_across_processes,
		    teardown);
	g_test_add ("/pg-spool/presence/mark-cost", Fixture, NULL, setup, test_mark_cost, teardown);
	g_test_add ("/pg-spool/presence/cut-runner-keeps-claims", Fixture, NULL, setup, test_cut_runner_keeps_claims,
		    teardown);
	g_test_add ("/pg-spool/presence/wakeups", Fixture, NULL, setup, test_wakeups, teardown);
	g_test_add ("/pg-spool/disk-full/inject-75-result-waits", Fixture, NULL, setup, test_disk_full, teardown);
	g_test_add ("/pg-spool/schema/migrate-concurrently", Fixture, NULL, setup, test_migrate_concurrently, teardown);
#endif
	status = g_test_run ();
#ifdef HAVE_LIBPQ
	g_clear_pointer (&postgres, sc_test_postgres_stop);
#endif
	g_free (self_path);
	return status;
}
