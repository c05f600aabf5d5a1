/* test-nhost.c — N hosts on one PostgreSQL spool (issue 10, section 3):
 * three `stagecoach run` daemons (the real binary) that share nothing but
 * the database — each its own folder, config, state-dir and log, no lock
 * file in common, only the spool= URI, which differs in its
 * application_name so that the server tells their sessions apart — deliver
 * a stream of messages × recipients to one smtp-sink while runner 0 is
 * SIGKILLed and restarted again and again and runner 1 has its database
 * connections ended by pg_terminate_backend.
 *
 * The messages enter through the spool API (sc_spool_inject_batch in a
 * thread of the test, 50 per transaction, then sc_spool_wake_runners: the
 * fastest path, and the runners see them only through the database),
 * spread over SC_NHOST_INJECT_S seconds so that the kills and terminations
 * land while there is work.
 *
 * Claims are recorded by the server itself: a trigger the test installs on
 * messages logs every transition into 'active' (message, lease owner,
 * generation, the session's application_name, clock_timestamp()) and every
 * transition out of it into nhost_claims.  From that log, for each message,
 * a claim taken while the previous claim had not been ended by its own
 * runner is a double claim unless that runner had been SIGKILLed, or its
 * connections terminated, before the later claim (a reclaim).  Each daemon
 * instance gets its own application_name in its spool URI
 * ("nhost-r0.3": runner 0's fourth start), so the log names the process
 * behind every change, a restarted runner taking back its predecessor's
 * claims included.
 *
 * Asserted: every message done (none held, dead or left over), every
 * recipient row 'sent', every (Message-ID, recipient) pair received at the
 * sink, no double claim, each runner exits 0 on the final SIGTERM, and
 * duplicates within the documented window: a runner that dies (or loses
 * its session) after the relay's 250 and before its commit leaves that
 * transaction to be repeated.  Each deliver job commits a transaction's
 * recipient states before its next one (sc-deliver.c), but a runner runs
 * up to twice max-connections deliver jobs per mailer (sc-runner.c's
 * lanes: one sending per connection, one ready), and a job waiting for
 * its commit no longer holds its connection, so up to 2 × 4 = 8
 * transactions — here 8 messages of 5 recipients — can be delivered and
 * not yet committed when a runner dies.  The bound used: per kill or
 * termination, one transaction per deliver job the runner may run
 * (LANE).  Checked three ways: per pair, extra copies ≤ kills +
 * terminations (the issue's "each recipient once except ≤ one per
 * kill"); in all, duplicates ≤ (kills + terminations) × LANE × 5; per
 * daemon instance, the messages received twice that the claim log shows
 * taken over from it ≤ LANE × its kills and terminations — and a message
 * received twice that was never taken over from a killed or cut-off
 * runner fails the test.
 * The figures are printed (g_test_message) for the lead to quote.
 *
 * Parameters (environment; defaults in brackets):
 *   SC_SEED                 random seed of the kill intervals [clock; printed]
 *   SC_NHOST_MESSAGES       messages [5000]
 *   SC_NHOST_RECIPIENTS     recipients per message [5]
 *   SC_NHOST_INJECT_S       seconds the injection is spread over [15]
 *   SC_NHOST_KILLS          SIGKILLs of runner 0 (at least 5 must land) [8]
 *   SC_NHOST_KILL_MS        mean interval between kills [2000]
 *   SC_NHOST_TERMINATIONS   pg_terminate_backend rounds on runner 1 [2]
 *   SC_NHOST_DRAIN_S        the limit for everything to be done [240]
 *   SC_NHOST_KEEP           1: keep a failed run's folders (configs, logs)
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "rel-util.h"
#include "sc-spool.h"
#include "sc-test-postgres.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

#define RUNNERS 3
#define KILLED_SLOT 0     /* SIGKILLed repeatedly */
#define TERMINATED_SLOT 1 /* its connections ended by the server */
#define WORKERS 4
#define MAX_CONNECTIONS 4
#define MAX_RECIPIENTS 10 /* ≥ recipients per message: one transaction each */
/* deliver jobs a runner runs at once per mailer (sc-runner.c): each may
 * have one transaction delivered and not yet committed */
#define LANE (2 * MAX_CONNECTIONS)
#define INJECT_BATCH 50
#define MIN_KILLS 5
#define LIST "nhost.example.org"
#define DBNAME "nhost"

#ifdef HAVE_LIBPQ

typedef struct {
	guint64 seed;
	guint messages;
	guint recipients;
	guint inject_s;
	guint kills;
	guint kill_ms;
	guint terminations;
	guint drain_s;
} Params;

/* One daemon process: a runner slot is restarted as new instances, each
 * with an application_name of its own, so that the server's log of who
 * changed a row names the process. */
typedef struct {
	guint slot;
	char *app;         /* application_name: "nhost-rSLOT.N" */
	GPid pid;
	gint64 started_at; /* g_get_real_time () before the spawn */
	gint64 killed_at;  /* before SIGKILL was sent; 0: not killed */
	guint terminated;  /* its connections ended so many times */
	guint duplicated;  /* messages received twice after it lost them */
} Instance;

/* When an instance's connections were terminated: between @before (the
 * call began) and @after (every one of them gone). */
typedef struct {
	guint instance; /* index in the instances */
	gint64 before;
	gint64 after;
	int backends;
} Termination;

typedef struct {
	guint slot;
	char *name;   /* "nhost-rN" */
	guint starts;
	guint instance; /* the running instance's index */
	char *dir;    /* its own folder: config, state/, run.log */
	char *config;
	char *log;
	RelDaemon *daemon;
} Runner;

typedef struct {
	Params params;
	char *uri; /* the spool, without application_name */
	char **queue_ids;
	gint injected; /* atomic: messages committed */
	gint inject_failed; /* atomic */
	char *inject_error;
} Nhost;

static guint
env_uint (const char *name, guint fallback)
{
	const char *value = g_getenv (name);

	return value != NULL && *value != '\0' ? (guint) g_ascii_strtoull (value, NULL, 10) : fallback;
}

static void
params_load (Params *params)
{
	const char *seed = g_getenv ("SC_SEED");

	params->seed = seed != NULL && *seed != '\0' ? g_ascii_strtoull (seed, NULL, 10)
						      : (guint64) g_get_real_time () % 1000000000;
	params->messages = MAX (env_uint ("SC_NHOST_MESSAGES", 5000), 1);
	params->recipients = CLAMP (env_uint ("SC_NHOST_RECIPIENTS", 5), 1, MAX_RECIPIENTS);
	params->inject_s = env_uint ("SC_NHOST_INJECT_S", 15);
	params->kills = env_uint ("SC_NHOST_KILLS", 8);
	params->kill_ms = MAX (env_uint ("SC_NHOST_KILL_MS", 2000), 500);
	params->terminations = env_uint ("SC_NHOST_TERMINATIONS", 2);
	params->drain_s = env_uint ("SC_NHOST_DRAIN_S", 240);
}

static void G_GNUC_PRINTF (1, 2)
check_fail (const char *format, ...)
{
	g_autofree char *text = NULL;
	va_list args;

	va_start (args, format);
	text = g_strdup_vprintf (format, args);
	va_end (args);
	g_test_message ("FAILED CHECK: %s", text);
	g_test_fail_printf ("%s", text);
}

/* ---- the database, from the test's own connection ---- */

static PGconn *
db_connect (ScTestPostgres *pg)
{
	g_autofree char *conninfo = sc_test_postgres_get_conninfo (pg, DBNAME);
	g_autofree char *full = g_strconcat (conninfo, " application_name=nhost-test", NULL);
	PGconn *conn = PQconnectdb (full);

	if (PQstatus (conn) != CONNECTION_OK)
		g_error ("connecting to the test's PostgreSQL: %s", PQerrorMessage (conn));
	return conn;
}

/* Statements without values (DDL, counts): no parameters to bind. */
static PGresult *
db_query (PGconn *conn, const char *sql)
{
	PGresult *result = PQexecParams (conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	ExecStatusType status = PQresultStatus (result);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
	return result;
}

static gint64
db_int (PGconn *conn, const char *sql)
{
	PGresult *result = db_query (conn, sql);
	gint64 value = PQntuples (result) > 0 && !PQgetisnull (result, 0, 0)
			   ? g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10)
			   : 0;

	PQclear (result);
	return value;
}

/* The claim log: every transition into and out of 'active', as the server
 * saw it.  seq follows commit order per message: a second update of a row
 * waits for the first one's commit, so its trigger runs later; a rolled
 * back claim (a terminated session) takes its log row with it. */
static void
install_claim_log (PGconn *conn)
{
	PQclear (db_query (conn,
			   "CREATE TABLE nhost_claims ("
			   "  seq BIGSERIAL PRIMARY KEY,"
			   "  message BIGINT NOT NULL,"
			   "  kind TEXT NOT NULL," /* 'claim' or 'leave' */
			   "  owner TEXT,"
			   "  generation BIGINT,"
			   "  new_state TEXT NOT NULL,"
			   "  actor TEXT NOT NULL," /* application_name of the session */
			   "  at BIGINT NOT NULL)")); /* clock_timestamp(), µs */
	PQclear (db_query (conn,
			   "CREATE FUNCTION nhost_log_claims () RETURNS trigger LANGUAGE plpgsql AS $$"
			   " DECLARE"
			   "  now_us BIGINT := (extract (epoch FROM clock_timestamp ()) * 1000000)::bigint;"
			   "  actor TEXT := current_setting ('application_name');"
			   "  moved BOOLEAN := NEW.lease_owner IS DISTINCT FROM OLD.lease_owner"
			   "   OR NEW.lease_generation <> OLD.lease_generation;"
			   " BEGIN"
			   "  IF OLD.state = 'active' AND (NEW.state <> 'active' OR moved) THEN"
			   "   INSERT INTO nhost_claims (message, kind, owner, generation, new_state, actor, at)"
			   "    VALUES (OLD.id, 'leave', OLD.lease_owner, OLD.lease_generation, NEW.state, actor, now_us);"
			   "  END IF;"
			   "  IF NEW.state = 'active' AND (OLD.state <> 'active' OR moved) THEN"
			   "   INSERT INTO nhost_claims (message, kind, owner, generation, new_state, actor, at)"
			   "    VALUES (NEW.id, 'claim', NEW.lease_owner, NEW.lease_generation, NEW.state, actor, now_us);"
			   "  END IF;"
			   "  RETURN NULL;"
			   " END $$"));
	PQclear (db_query (conn,
			   "CREATE TRIGGER nhost_claims AFTER UPDATE ON messages"
			   "  FOR EACH ROW EXECUTE FUNCTION nhost_log_claims ()"));
}

/* ---- injection, in a thread with a spool of its own ---- */

static GBytes *
make_message (guint64 seed, guint index, char **out_message_id)
{
	char *text;

	*out_message_id = g_strdup_printf ("<%" G_GUINT64_FORMAT ".%u@nhost.test>", seed, index);
	text = g_strdup_printf ("From: poster@nhost.example\r\n"
				"To: %s\r\n"
				"Subject: nhost %u\r\n"
				"Message-ID: %s\r\n"
				"\r\n"
				"message %u of the N-host test\r\n",
				LIST, index, *out_message_id, index);
	return g_bytes_new_take (text, strlen (text));
}

static char *
recipient_address (guint message, guint recipient)
{
	return g_strdup_printf ("m%u.r%u@rcpt.nhost.example", message, recipient);
}

static gpointer
injector (gpointer data)
{
	Nhost *nhost = data;
	const Params *params = &nhost->params;
	g_autoptr(GError) error = NULL;
	ScSpool *spool = sc_spool_open (nhost->uri, 10 * G_USEC_PER_SEC, &error);
	gint64 started = g_get_monotonic_time ();
	guint batches = (params->messages + INJECT_BATCH - 1) / INJECT_BATCH;

	if (spool == NULL) {
		nhost->inject_error = g_strdup (error->message);
		g_atomic_int_set (&nhost->inject_failed, 1);
		return NULL;
	}
	for (guint b = 0; b < batches; b++) {
		guint first = b * INJECT_BATCH;
		guint n = MIN (INJECT_BATCH, params->messages - first);
		ScNewMessage messages[INJECT_BATCH];
		const ScNewMessage *pointers[INJECT_BATCH];
		char **recipients[INJECT_BATCH];
		char *message_ids[INJECT_BATCH];
		char *subjects[INJECT_BATCH];
		GBytes *raws[INJECT_BATCH];
		char *out[INJECT_BATCH] = {0};
		guint duplicates[INJECT_BATCH] = {0};
		gint64 due = started + (gint64) params->inject_s * G_USEC_PER_SEC * b / batches;
		gboolean committed = FALSE;

		while (g_get_monotonic_time () < due)
			g_usleep (5 * 1000);
		for (guint i = 0; i < n; i++) {
			recipients[i] = g_new0 (char *, params->recipients + 1);
			for (guint r = 0; r < params->recipients; r++)
				recipients[i][r] = recipient_address (first + i, r);
			raws[i] = make_message (params->seed, first + i, &message_ids[i]);
			subjects[i] = g_strdup_printf ("nhost %u", first + i);
			messages[i] = (ScNewMessage){
			    .list_id = LIST,
			    .sender = "bounces@" LIST,
			    .recipients = (const char *const *) recipients[i],
			    .pipeline = "deliver",
			    .subject = subjects[i],
			    .message_id = message_ids[i],
			    .raw = raws[i],
			    .now = g_get_real_time (),
			};
			pointers[i] = &messages[i];
		}
		/* a TEMPORARY failure is tried again, as list software would */
		for (guint attempt = 0; attempt < 50 && !committed; attempt++) {
			g_clear_error (&error);
			committed = sc_spool_inject_batch (spool, pointers, n, 0, out, duplicates, NULL, NULL, &error);
			if (!committed && !g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY))
				break;
			if (!committed)
				g_usleep (100 * 1000);
		}
		for (guint i = 0; i < n; i++) {
			nhost->queue_ids[first + i] = out[i];
			g_strfreev (recipients[i]);
			g_free (message_ids[i]);
			g_free (subjects[i]);
			g_bytes_unref (raws[i]);
		}
		if (!committed) {
			nhost->inject_error = g_strdup (error->message);
			g_atomic_int_set (&nhost->inject_failed, 1);
			break;
		}
		sc_spool_wake_runners (spool);
		g_atomic_int_add (&nhost->injected, (gint) n);
	}
	sc_spool_close (spool);
	return NULL;
}

/* ---- the runners ---- */

static void
runner_write_config (Runner *runner, const char *uri, const char *sink_url, const char *app)
{
	g_autofree char *state = g_build_filename (runner->dir, "state", NULL);
	/* the URI's own parameter: libpq takes it over its default name */
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=%s?application_name=%s\n"
						 "state-dir=%s\n"
						 "workers=%u\n"
						 /* long: only a dead or cut-off runner's claims go
						  * back to others, never a slow one's */
						 "lease=30s\n"
						 "busy-timeout=10s\n"
						 "rescan=1s\n"
						 "[retry]\n"
						 "initial=1s\n"
						 "max-delay=2s\n"
						 "[admin]\n"
						 "listen=\n"
						 "[deliver]\n"
						 "circuit-cooldown=1s\n"
						 "[mailer:sink]\n"
						 "url=%s\n"
						 "starttls=off\n"
						 "timeout=10s\n"
						 "max-recipients=%u\n"
						 "max-connections=%u\n"
						 "[list:" LIST "]\n"
						 "pipeline=deliver\n"
						 "bounces=bounces@" LIST "\n",
						 uri, app, state, WORKERS, sink_url, MAX_RECIPIENTS,
						 MAX_CONNECTIONS);

	g_assert_true (g_file_set_contents (runner->config, text, -1, NULL));
}

static void
instance_clear (gpointer data)
{
	g_free (((Instance *) data)->app);
}

/* A new instance: its config (its own application_name), its process. */
static void
runner_start (Runner *runner, GArray *instances, const char *uri, const char *sink_url)
{
	Instance instance = {.slot = runner->slot, .started_at = g_get_real_time ()};

	instance.app = g_strdup_printf ("%s.%u", runner->name, runner->starts++);
	runner_write_config (runner, uri, sink_url, instance.app);
	runner->daemon = rel_daemon_start (runner->config, runner->log, NULL);
	instance.pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (runner->daemon->process), NULL, 10);
	runner->instance = instances->len;
	g_array_append_val (instances, instance);
}

/* Until @instance has a session on the server (at most 30 s), or its
 * process ended. */
static void
wait_connected (PGconn *conn, const Instance *instance, RelDaemon *daemon)
{
	const char *values[] = {instance->app};
	gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

	while (rel_daemon_alive (daemon) && g_get_monotonic_time () < deadline) {
		PGresult *result = PQexecParams (conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
						 1, NULL, values, NULL, NULL, 0);
		gboolean connected = PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) == 1 &&
				     g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10) > 0;

		PQclear (result);
		if (connected)
			return;
		g_usleep (20 * 1000);
	}
}

/* The instance whose sessions carry @app; NULL for none of ours. */
static Instance *
instance_of (GArray *instances, const char *app)
{
	for (guint i = 0; i < instances->len; i++) {
		Instance *instance = &g_array_index (instances, Instance, i);
		if (g_strcmp0 (instance->app, app) == 0)
			return instance;
	}
	return NULL;
}

/* ---- the claim log, checked ---- */

typedef struct {
	guint claims;
	guint taken_back;       /* claims ended by another session (reclaim) */
	guint after_kill;       /* claims of a message whose previous owner was killed */
	guint after_termination; /* … whose previous owner's connections were ended */
	guint double_claims;
	guint unknown_actors;
} ClaimFigures;

static gboolean
terminated_between (GArray *instances, GArray *terminations, Instance *instance, gint64 claimed_at, gint64 next_at)
{
	for (guint i = 0; i < terminations->len; i++) {
		Termination *t = &g_array_index (terminations, Termination, i);

		if (&g_array_index (instances, Instance, t->instance) == instance && t->backends > 0 &&
		    claimed_at <= t->after && t->before <= next_at)
			return TRUE;
	}
	return FALSE;
}

/* @lost_by: message id → the Instance whose claim was taken over after
 * it was killed or cut off (the last one), to blame duplicates on. */
static void
check_claims (PGconn *conn, GArray *instances, GArray *terminations, ClaimFigures *figures, GHashTable *lost_by)
{
	PGresult *result = db_query (conn,
				     "SELECT message, kind, owner, generation, actor, at FROM nhost_claims"
				     " ORDER BY message, seq");
	gint64 message = -1;
	const char *owner = NULL; /* the message's latest claim */
	const char *actor = NULL;
	gint64 generation = 0, claimed_at = 0;
	gboolean ended = TRUE;

	for (int row = 0; row < PQntuples (result); row++) {
		gint64 id = g_ascii_strtoll (PQgetvalue (result, row, 0), NULL, 10);
		const char *kind = PQgetvalue (result, row, 1);
		const char *row_owner = PQgetisnull (result, row, 2) ? NULL : PQgetvalue (result, row, 2);
		gint64 row_generation = g_ascii_strtoll (PQgetvalue (result, row, 3), NULL, 10);
		const char *row_actor = PQgetvalue (result, row, 4);
		gint64 at = g_ascii_strtoll (PQgetvalue (result, row, 5), NULL, 10);

		if (id != message) {
			message = id;
			owner = NULL;
			ended = TRUE;
		}
		if (strcmp (kind, "leave") == 0) {
			/* ended by its own runner, or taken back by another */
			if (owner != NULL && !ended && g_strcmp0 (row_owner, owner) == 0 &&
			    row_generation == generation) {
				if (strcmp (row_actor, actor) == 0)
					ended = TRUE;
				else
					figures->taken_back++;
			}
			continue;
		}
		figures->claims++;
		/* a claim is made by its owner's own session */
		if (instance_of (instances, row_actor) == NULL)
			figures->unknown_actors++;
		if (owner != NULL && !ended) {
			Instance *previous = instance_of (instances, actor);

			if (previous != NULL && previous->killed_at != 0 && previous->killed_at <= at) {
				figures->after_kill++;
				g_hash_table_insert (lost_by, g_memdup2 (&id, sizeof id), previous);
			} else if (previous != NULL && terminated_between (instances, terminations, previous, claimed_at, at)) {
				figures->after_termination++;
				g_hash_table_insert (lost_by, g_memdup2 (&id, sizeof id), previous);
			} else {
				figures->double_claims++;
				if (figures->double_claims <= 20)
					g_test_message ("double claim of message %" G_GINT64_FORMAT ": %s (%s, "
							"generation %" G_GINT64_FORMAT ") at %" G_GINT64_FORMAT
							" while %s (%s, generation %" G_GINT64_FORMAT
							", claimed at %" G_GINT64_FORMAT ") was alive and connected",
							id, row_owner, row_actor, row_generation, at, owner, actor,
							generation, claimed_at);
			}
		}
		owner = row_owner;
		actor = row_actor;
		generation = row_generation;
		claimed_at = at;
		ended = FALSE;
	}
	PQclear (result);
}

/* A message's claim log, for a failure's message. */
static void
print_history (PGconn *conn, gint64 id)
{
	g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT, id);
	const char *const values[] = {text};
	PGresult *result = PQexecParams (conn,
					 "SELECT kind, owner, generation, new_state, actor, at FROM nhost_claims"
					 " WHERE message = $1::bigint ORDER BY seq",
					 1, NULL, values, NULL, NULL, 0);

	for (int row = 0; PQresultStatus (result) == PGRES_TUPLES_OK && row < PQntuples (result); row++)
		g_test_message ("  message %s: %s owner=%s generation=%s state→%s by %s at %s", text,
				PQgetvalue (result, row, 0), PQgetvalue (result, row, 1), PQgetvalue (result, row, 2),
				PQgetvalue (result, row, 3), PQgetvalue (result, row, 4), PQgetvalue (result, row, 5));
	PQclear (result);
}

/* ---- the test ---- */

static void
test_nhost_stream (void)
{
	Nhost nhost = {0};
	Params *params = &nhost.params;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScTestPostgres) pg = NULL;
	g_autoptr(ScTestSink) sink = NULL;
	g_autoptr(GArray) instances = g_array_new (FALSE, TRUE, sizeof (Instance));
	g_autoptr(GArray) terminations = g_array_new (FALSE, TRUE, sizeof (Termination));
	g_autoptr(GHashTable) pairs = NULL;
	g_autoptr(GHashTable) lost_by = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
	g_autoptr(GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GRand) rand = NULL;
	g_autofree char *top = NULL;
	g_autofree char *sink_url = NULL;
	Runner runners[RUNNERS] = {0};
	GThread *thread;
	PGconn *conn = NULL;
	ClaimFigures claims = {0};
	ScSpool *spool;
	gint64 started, injected_at = 0, done_at = 0, next_kill, deadline;
	gint64 terminate_at[16];
	guint kills = 0, term_rounds = 0, term_backends = 0, missing = 0, duplicates = 0, dup_pairs = 0;
	guint max_extra = 0, pairs_expected = 0, events, unblamed = 0, over_blamed = 0, most_blamed = 0;
	gint64 done = 0, held, dead, left, not_sent, crashed, released, total;
	int exits[RUNNERS];

	params_load (params);
	g_test_message ("N-host seed=%" G_GUINT64_FORMAT " messages=%u recipients=%u inject-s=%u kills=%u "
			"kill-ms=%u terminations=%u (repeat with SC_SEED=%" G_GUINT64_FORMAT ")",
			params->seed, params->messages, params->recipients, params->inject_s, params->kills,
			params->kill_ms, params->terminations, params->seed);
	if (!sc_test_postgres_available ()) {
		g_test_skip (sc_test_postgres_why_unavailable ());
		return;
	}
	sink = sc_test_sink_start (NULL);
	if (sink == NULL)
		return;
	pg = sc_test_postgres_start (&error);
	g_assert_no_error (error);
	g_assert_true (sc_test_postgres_create_database (pg, DBNAME, &error));
	g_assert_no_error (error);
	nhost.uri = sc_test_postgres_get_uri (pg, DBNAME);

	/* the schema, made by the spool itself, then the claim log on it */
	spool = sc_spool_open (nhost.uri, 10 * G_USEC_PER_SEC, &error);
	if (spool == NULL && g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED)) {
		g_test_skip_printf ("no PostgreSQL spool in this build: %s", error->message);
		g_free (nhost.uri);
		return;
	}
	g_assert_no_error (error);
	sc_spool_close (spool);
	conn = db_connect (pg);
	install_claim_log (conn);

	g_array_set_clear_func (instances, instance_clear);
	rand = g_rand_new_with_seed ((guint32) params->seed);
	nhost.queue_ids = g_new0 (char *, params->messages);
	top = sc_test_make_tmpdir ("sc-nhost");
	sink_url = sc_test_sink_get_url (sink);
	for (guint i = 0; i < RUNNERS; i++) {
		Runner *runner = &runners[i];

		runner->slot = i;
		runner->name = g_strdup_printf ("nhost-r%u", i);
		runner->dir = g_build_filename (top, runner->name, NULL);
		g_assert_cmpint (g_mkdir (runner->dir, 0755), ==, 0);
		runner->config = g_build_filename (runner->dir, "stagecoach.conf", NULL);
		runner->log = g_build_filename (runner->dir, "run.log", NULL);
	}

	started = g_get_monotonic_time ();
	for (guint i = 0; i < RUNNERS; i++)
		runner_start (&runners[i], instances, nhost.uri, sink_url);
	thread = g_thread_new ("injector", injector, &nhost);
	/* the terminations spread over the injection, the kills every
	 * kill-ms ± 50 % while there is work */
	for (guint i = 0; i < MIN (params->terminations, G_N_ELEMENTS (terminate_at)); i++)
		terminate_at[i] = started + (gint64) params->inject_s * G_USEC_PER_SEC * (2 * i + 1) /
						(2 * params->terminations);
	next_kill = started + (gint64) g_rand_int_range (rand, params->kill_ms / 2, params->kill_ms * 3 / 2) * 1000;
	deadline = started + (gint64) (params->inject_s + params->drain_s) * G_USEC_PER_SEC;
	for (;;) {
		gint64 now = g_get_monotonic_time ();
		gint injected = g_atomic_int_get (&nhost.injected);

		if (g_atomic_int_get (&nhost.inject_failed))
			break;
		if (injected_at == 0 && injected >= (gint) params->messages)
			injected_at = now;
		done = db_int (conn, "SELECT count(*) FROM messages WHERE state = 'done'");
		if (done >= params->messages) {
			done_at = now;
			break;
		}
		if (now >= deadline)
			break;
		for (guint i = 0; i < RUNNERS; i++) /* none may die by itself */
			g_assert_true (rel_daemon_alive (runners[i].daemon));
		if (kills < params->kills && now >= next_kill) {
			Runner *runner = &runners[KILLED_SLOT];
			Instance *instance = NULL;

			for (guint i = instances->len; instance == NULL && i-- > 0;) {
				if (g_array_index (instances, Instance, i).slot == KILLED_SLOT)
					instance = &g_array_index (instances, Instance, i);
			}
			instance->killed_at = g_get_real_time ();
			rel_daemon_kill (runner->daemon);
			g_clear_pointer (&runner->daemon, rel_daemon_free);
			kills++;
			g_usleep ((gulong) g_rand_int_range (rand, 50, 250) * 1000);
			runner_start (runner, instances, nhost.uri, sink_url);
			next_kill = g_get_monotonic_time () +
				    (gint64) g_rand_int_range (rand, params->kill_ms / 2, params->kill_ms * 3 / 2) * 1000;
		}
		if (term_rounds < MIN (params->terminations, G_N_ELEMENTS (terminate_at)) &&
		    now >= terminate_at[term_rounds]) {
			Runner *runner = &runners[TERMINATED_SLOT];
			Instance *instance = &g_array_index (instances, Instance, runner->instance);
			Termination t = {.instance = runner->instance, .before = g_get_real_time ()};

			t.backends = sc_test_postgres_terminate_backends (pg, DBNAME, instance->app, &error);
			g_assert_no_error (error);
			t.after = g_get_real_time ();
			g_array_append_val (terminations, t);
			term_rounds++;
			term_backends += (guint) MAX (t.backends, 0);
			if (t.backends > 0)
				instance->terminated++;
			g_test_message ("terminated %d connections of %s", t.backends, instance->app);
		}
		g_usleep (50 * 1000);
	}
	g_thread_join (thread);
	if (nhost.inject_error != NULL)
		check_fail ("injection failed: %s", nhost.inject_error);

	/* the end: every runner stops cleanly, once it has started (the
	 * killed one may have been restarted just now: a SIGTERM before its
	 * process set its handlers ends it by the signal, 143).  It sets them
	 * before it connects, so a session under its name means it has. */
	for (guint i = 0; i < RUNNERS; i++)
		wait_connected (conn, &g_array_index (instances, Instance, runners[i].instance), runners[i].daemon);
	for (guint i = 0; i < RUNNERS; i++) {
		gboolean alive = rel_daemon_alive (runners[i].daemon);

		exits[i] = alive ? rel_daemon_stop (runners[i].daemon, 30000) : -2;
	}
	g_usleep (1000 * 1000); /* smtp-sink may close a dump just after its reply */
	sc_test_sink_stop (sink);

	/* the spool */
	total = db_int (conn, "SELECT count(*) FROM messages");
	done = db_int (conn, "SELECT count(*) FROM messages WHERE state = 'done'");
	held = db_int (conn, "SELECT count(*) FROM messages WHERE state = 'held'");
	dead = db_int (conn, "SELECT count(*) FROM messages WHERE state = 'dead'");
	left = total - done - held - dead;
	not_sent = db_int (conn, "SELECT count(*) FROM recipients WHERE status <> 'sent'");
	crashed = db_int (conn, "SELECT count(*) FROM attempts WHERE outcome = 'crashed'");
	released = db_int (conn, "SELECT count(*) FROM attempts WHERE outcome = 'released'");
	check_claims (conn, instances, terminations, &claims, lost_by);
	{
		PGresult *result = db_query (conn, "SELECT message_id, id FROM messages");

		for (int row = 0; row < PQntuples (result); row++) {
			gint64 id = g_ascii_strtoll (PQgetvalue (result, row, 1), NULL, 10);
			g_hash_table_insert (ids, g_strdup (PQgetvalue (result, row, 0)), g_memdup2 (&id, sizeof id));
		}
		PQclear (result);
	}

	/* the sink */
	pairs = rel_sink_pair_counts (sink);
	for (guint i = 0; i < params->messages; i++) {
		g_autofree char *message_id = g_strdup_printf ("<%" G_GUINT64_FORMAT ".%u@nhost.test>", params->seed, i);
		gboolean duplicated = FALSE;

		for (guint r = 0; r < params->recipients; r++) {
			g_autofree char *address = recipient_address (i, r);
			g_autofree char *key = g_strdup_printf ("%s %s", message_id, address);
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (pairs, key));

			pairs_expected++;
			if (copies == 0) {
				if (++missing <= 20)
					g_test_message ("never received: %s (queue id %s)", key,
							nhost.queue_ids[i] != NULL ? nhost.queue_ids[i] : "none");
			} else if (copies > 1) {
				dup_pairs++;
				duplicates += copies - 1;
				max_extra = MAX (max_extra, copies - 1);
				duplicated = TRUE;
			}
		}
		/* a second copy needs a runner that lost the message after
		 * delivering it: the one whose claim was taken over */
		if (duplicated) {
			gint64 *id = g_hash_table_lookup (ids, message_id);
			Instance *instance = id != NULL ? g_hash_table_lookup (lost_by, id) : NULL;

			if (instance != NULL) {
				instance->duplicated++;
			} else if (++unblamed <= 10) {
				g_test_message ("%s was received twice but never taken over from a killed or cut-off runner",
						message_id);
				if (id != NULL)
					print_history (conn, *id);
			}
		}
	}
	for (guint i = 0; i < instances->len; i++) {
		Instance *instance = &g_array_index (instances, Instance, i);
		guint losses = (instance->killed_at != 0 ? 1 : 0) + instance->terminated;

		most_blamed = MAX (most_blamed, instance->duplicated);
		if (instance->duplicated > losses * LANE) {
			over_blamed++;
			g_test_message ("runner instance %s (pid %d) lost %u messages after delivering them, more than %u "
					"(one transaction per deliver job, %u kills/terminations)",
					instance->app, (int) instance->pid, instance->duplicated,
					losses * LANE, losses);
		}
	}

	PQfinish (conn);

	/* a kill or a termination may repeat what its runner had in flight:
	 * at most one transaction per deliver job (every message is one
	 * transaction of params->recipients), and a pair once per event */
	events = kills + term_rounds;
	g_test_message ("N-host figures: runners=%u messages=%u spooled=%" G_GINT64_FORMAT " recipients=%u "
			"kills=%u runner-starts=%u terminations=%u (backends ended %u) exits=%d,%d,%d",
			RUNNERS, params->messages, total, pairs_expected, kills, instances->len, term_rounds,
			term_backends, exits[0], exits[1], exits[2]);
	g_test_message ("N-host figures: done=%" G_GINT64_FORMAT " held=%" G_GINT64_FORMAT " dead=%" G_GINT64_FORMAT
			" left=%" G_GINT64_FORMAT " recipient-rows-not-sent=%" G_GINT64_FORMAT " missing=%u "
			"duplicates=%u (pairs %u, most per pair %u; bound %u; most messages per lost runner %u, "
			"bound %u per kill/termination) crashed-attempts=%" G_GINT64_FORMAT
			" released-attempts=%" G_GINT64_FORMAT,
			done, held, dead, left, not_sent, missing, duplicates, dup_pairs, max_extra,
			events * LANE * params->recipients, most_blamed, LANE, crashed, released);
	g_test_message ("N-host figures: claims=%u taken-back=%u reclaimed-after-kill=%u "
			"reclaimed-after-termination=%u double-claims=%u unknown-claimers=%u "
			"injected-in=%.1fs all-done-in=%.1fs (%.0f messages/s) wall=%.1fs",
			claims.claims, claims.taken_back, claims.after_kill, claims.after_termination,
			claims.double_claims, claims.unknown_actors,
			injected_at > 0 ? (injected_at - started) / 1e6 : -1.0,
			done_at > 0 ? (done_at - started) / 1e6 : -1.0,
			done_at > 0 ? params->messages / ((done_at - started) / 1e6) : 0.0,
			(g_get_monotonic_time () - started) / 1e6);

	if (kills < MIN (MIN_KILLS, params->kills))
		check_fail ("only %u kills landed before the work ran out (raise SC_NHOST_MESSAGES or "
			    "SC_NHOST_INJECT_S)", kills);
	if (params->terminations > 0 && term_backends == 0)
		check_fail ("no connection of %s was terminated", runners[TERMINATED_SLOT].name);
	for (guint i = 0; i < RUNNERS; i++) {
		if (exits[i] != 0)
			check_fail ("%s exited %d on SIGTERM (-2: it had died before; see %s)",
				    runners[i].name, exits[i], runners[i].log);
	}
	if (total != params->messages)
		check_fail ("%" G_GINT64_FORMAT " messages in the spool, %u injected", total, params->messages);
	if (done != params->messages)
		check_fail ("%" G_GINT64_FORMAT " of %u messages done (%" G_GINT64_FORMAT " held, %" G_GINT64_FORMAT
			    " dead, %" G_GINT64_FORMAT " not finished)", done, params->messages, held, dead, left);
	if (held > 0 || dead > 0)
		check_fail ("%" G_GINT64_FORMAT " held, %" G_GINT64_FORMAT " dead", held, dead);
	if (not_sent > 0)
		check_fail ("%" G_GINT64_FORMAT " recipient rows not 'sent'", not_sent);
	if (missing > 0)
		check_fail ("%u (Message-ID, recipient) pairs never received", missing);
	if (max_extra > events)
		check_fail ("a pair was received %u extra times, more than the %u kills and terminations",
			    max_extra, events);
	if (duplicates > events * LANE * params->recipients)
		check_fail ("%u duplicates, more than one transaction per deliver job per kill or termination (%u)",
			    duplicates, events * LANE * params->recipients);
	if (unblamed > 0)
		check_fail ("%u messages received twice without a kill or termination of the runner that had them",
			    unblamed);
	if (over_blamed > 0)
		check_fail ("%u runner instances repeated more than one transaction per deliver job per kill or termination",
			    over_blamed);
	if (claims.double_claims > 0)
		check_fail ("%u messages claimed by a runner while the previous owner was alive and connected",
			    claims.double_claims);
	if (claims.unknown_actors > 0)
		check_fail ("%u claims made by a session that is none of the test's daemons",
			    claims.unknown_actors);

	if (g_test_failed () && g_strcmp0 (g_getenv ("SC_NHOST_KEEP"), "1") == 0)
		g_test_message ("kept for inspection: %s (configs and run.log of each runner)", top);
	else
		sc_test_remove_tree (top);
	for (guint i = 0; i < RUNNERS; i++) {
		g_clear_pointer (&runners[i].daemon, rel_daemon_free);
		g_free (runners[i].name);
		g_free (runners[i].dir);
		g_free (runners[i].config);
		g_free (runners[i].log);
	}
	for (guint i = 0; i < params->messages; i++)
		g_free (nhost.queue_ids[i]);
	g_free (nhost.queue_ids);
	g_free (nhost.inject_error);
	g_free (nhost.uri);
}

#else /* !HAVE_LIBPQ */

static void
test_nhost_stream (void)
{
	g_test_skip ("built without libpq");
}

#endif

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func ("/reliability/nhost/stream", test_nhost_stream);
	return g_test_run ();
}
