/* sc-runner.c — claim, dispatch, group-commit, sleep.
 *
 * The main thread alone touches the spool (one connection); handlers run
 * on a private GThreadPool with self-contained jobs and hand their results
 * back through a queue.  Every time the main loop drains that queue it
 * commits all results it finds in one transaction (group commit: while one
 * fsync runs, the next batch gathers), then sends messages whose stage
 * succeeded straight on to their next stage, still under the same lease.
 *
 * It never polls on a tick: one timer is set to the earliest due time
 * (capped by the rescan interval, the safety net for lost wakeups), and a
 * datagram from `inject` fires it at once.  Leases are renewed while work
 * runs; dead runners' leases are taken back at start and at every rescan.
 *
 * A lease belongs to one claim (owner + generation): every result and
 * recipient update carries it, so a job whose claim is gone records
 * nothing, and its message's chain stops there.  A group commit that fails
 * (locked or full spool) is kept and tried again; nothing is released
 * while a job of it may still run, so two jobs of one message never run.
 *
 * Jobs wait in lanes before they get a thread: deliver jobs in their
 * mailer's lane (at most twice its max-connections run: one per connection
 * sending, one ready), everything else in the workers lane (`workers`).
 * The pool has a thread for every lane slot, so a relay that hangs holds
 * only its own lane.  A suspect (a message that was in a handler when a
 * runner died) waits its turn in its lane like any other, then also for
 * the one suspect slot: suspects run one at a time, so when a poison
 * message kills the runner again it is the only suspect in a handler, and
 * the messages that merely ran beside it the first time are not held
 * with it.
 */
#include "config.h"

#include "sc-runner.h"

#include <glib-unix.h>
#include <time.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "sc-deliver-mailer.h"
#include "sc-duration.h"
#include "sc-events.h"
#include "sc-handler.h"
#include "sc-i18n.h"
#include "sc-owner.h"
#include "sc-retry.h"
#include "sc-spool.h"
#include "sc-timer.h"

/* How long SIGTERM waits for in-flight stages before releasing them. */
#define SC_RUNNER_STOP_GRACE (30 * G_USEC_PER_SEC)
/* A wall clock that moved this much against the boot clock was stepped. */
#define SC_RUNNER_CLOCK_STEP_THRESHOLD (3 * G_USEC_PER_SEC)
/* How soon a group commit that failed is tried again. */
#define SC_RUNNER_COMMIT_RETRY_MS 500
/* How long a delivered message's result may wait for the disk (see
 * record_all): under load another commit's sync takes it sooner. */
#define SC_RUNNER_SYNC_DELAY_MS 10

/* Deliver jobs a mailer's lane runs per connection: one sending, one
 * ready to take the connection the moment it is free (with one, each
 * connection idled while a result went through the main loop: measured
 * about 20 % fewer messages per second). */
#define SC_RUNNER_LANE_DEPTH 2

/* Where jobs wait for a thread; see the file comment. */
typedef struct {
	char *key;        /* "workers" or "mailer:NAME" */
	guint capacity;   /* jobs that may run at once */
	guint running;    /* handed to the pool, not yet drained */
	GQueue waiting;   /* ScJob*, in job_compare order */
} ScLane;

typedef struct {
	ScRunner *runner;       /* (unowned) */
	ScLane *lane;           /* (unowned) (nullable) the slot it holds, NULL once released
				 * (or handed to the next job of its group) */
	ScMessage *message;     /* (owned) unless handed_on */
	char **then;            /* (owned) (nullable) stages that run right after, on the same
				 * thread, their results in the same commit (plan_group) */
	gboolean handed_on;     /* the next job of its group took the message */
	gboolean suspect_slot;  /* holds the runner's one suspect slot (with its lane slot) */
	guint owner_slot;       /* its in-handler mark in the owner file, while it runs */
	gboolean after_uncommitted; /* stages of its group ran before it, not yet committed */
	ScConfig *config;       /* (owned) snapshot taken at claim */
	char *stage;            /* (owned) */
	guint stage_index;      /* position of its stage in the pipeline (its in-handler mark) */
	guint64 sequence;       /* dispatch order */
	gint64 started_at;
	/* filled in by the worker */
	gint64 finished_at;
	GError *error;          /* (owned) (nullable) */
	GBytes *output;         /* (owned) (nullable) */
	char *note;             /* (owned) (nullable) */
	char *mailer;           /* (owned) (nullable) */
	char *notification_kind;   /* (owned) (nullable) */
	char *notification_detail; /* (owned) (nullable) */
	char *final_error;      /* (owned) (nullable) the error, and why no retry follows */
	ScRecipientUpdate *last_updates; /* (owned) (nullable) committed with the result */
	guint n_last_updates;
	GStringChunk *last_update_strings; /* (owned) (nullable) their strings */
} ScJob;

/* A worker's request to commit recipient states, waited for. */
typedef struct {
	ScRecipientUpdate *updates; /* (unowned) the worker's */
	guint n_updates;
	gboolean done;              /* guarded by the runner's commit_lock */
	GError *error;              /* (owned) (nullable) set before done */
} ScRecipientCommit;

struct _ScRunner {
	ScConfig *config;          /* (owned) for new claims */
	ScClock *clock;            /* (owned) */
	ScSpool *spool;            /* (owned) main thread only */
	ScOwner *owner;            /* (owned) */
	GThreadPool *pool;         /* (owned) */
	GAsyncQueue *finished;     /* (owned) ScJob* from workers */
	GAsyncQueue *recipient_commits; /* (owned) ScRecipientCommit* from workers */
	GAsyncQueue *handed;       /* (owned) ScMessage* the acceptor stored leased to us */
	gint handover_credit;      /* atomic: how many more the acceptor may lease to us */
	GMutex commit_lock;        /* with commit_cond: workers wait for their commit */
	GCond commit_cond;
	gboolean closing;          /* guarded by commit_lock: no main loop will commit again */
	gint abandoned;            /* atomic: leases given up; queued jobs must not run */
	GMainContext *context;     /* (unowned) the thread-default context at new() */
	GMainLoop *loop;           /* (owned) (nullable) while running */
	GCancellable *cancellable; /* (owned) cancelled by stop */
	GSource *timer;            /* (owned) ready time = next claim */
	GSource *wake_source;      /* (owned) (nullable) */
	guint renew_id;
	guint drain_id;            /* idle that drains `finished` */
	GMutex drain_lock;         /* guards drain_id across threads */
	guint in_flight;           /* claimed messages not yet finished, main thread */
	guint64 in_flight_bytes;   /* what they hold in memory, estimated (claim_cost) */
	guint64 next_sequence;
	GHashTable *lanes;         /* (owned) key → ScLane*, main thread */
	gboolean suspect_running;  /* the suspect slot is taken, main thread */
	GQueue suspects;           /* ScJob*, out of their lanes, waiting for that slot */
	GHashTable *claims;        /* (owned) message id → generation of every claim in flight */
	GPtrArray *pending_jobs;   /* (owned) ScJob* finished, decided, not yet committed */
	GPtrArray *pending_results; /* (owned) their ScStageResult*, same order */
	GPtrArray *pending_commits; /* ScRecipientCommit* not yet committed (workers wait) */
	guint commit_retry_id;     /* a failed group commit's next try */
	guint sync_id;             /* a deferred commit's sync (record_all) */
	guint64 sync_mark;         /* what it syncs (sc_spool_unsynced_mark) */
	gboolean commit_failing;   /* logged once per failing streak */
	GMutex slot_lock;          /* guards slot_busy */
	GArray *slot_busy;         /* gboolean per in-handler slot of the owner file */
	gint64 memory_factor;      /* bytes held per raw byte in flight (see claim_cost) */
	char *boot_id;             /* (owned) this boot's, for the clock anchor */
	GSourceFunc notify_hook;   /* (nullable) */
	gpointer notify_hook_data;
	gboolean once;
	gboolean stopping;
	gint64 stop_deadline;
	gint64 once_started_at;
	gint64 last_rescan;
	gint64 last_renew;         /* monotonic */
	GError *fatal;             /* (owned) (nullable) a spool error that ends run() */
};

static void runner_schedule (ScRunner *runner, gint64 ready_time_real);
static void runner_claim (ScRunner *runner);
static void take_handed (ScRunner *runner);
static void refresh_credit (ScRunner *runner);

/* ---- jobs ---- */

static void
job_free (ScJob *job)
{
	if (!job->handed_on)
		sc_message_free (job->message);
	sc_config_unref (job->config);
	g_free (job->stage);
	g_strfreev (job->then);
	g_clear_error (&job->error);
	g_clear_pointer (&job->output, g_bytes_unref);
	g_free (job->note);
	g_free (job->mailer);
	g_free (job->notification_kind);
	g_free (job->notification_detail);
	g_free (job->final_error);
	g_free (job->last_updates);
	g_clear_pointer (&job->last_update_strings, g_string_chunk_free);
	g_free (job);
}

static gboolean drain_cb (gpointer user_data);
static void schedule_drain (ScRunner *runner);

/* Worker thread: hand recipient states to the main thread's next group
 * commit and wait until they are on disk. */
static gboolean
record_recipients_cb (gpointer data, ScRecipientUpdate *updates, guint n_updates, GError **error)
{
	ScJob *job = data;
	ScRunner *runner = job->runner;
	ScRecipientCommit commit = {.updates = updates, .n_updates = n_updates};

	if (job->after_uncommitted) {
		/* plan_group promised one transaction: committing recipients
		 * now would put them on disk before the stages that made the
		 * bytes they got */
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("stage %s ran with the stages before it and cannot commit on its own"),
			     job->stage);
		return FALSE;
	}
	for (guint i = 0; i < n_updates; i++) {
		updates[i].id = job->message->id;
		updates[i].lease_generation = job->message->lease_generation;
	}
	g_mutex_lock (&runner->commit_lock);
	if (runner->closing) {
		g_mutex_unlock (&runner->commit_lock);
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
			     _("the runner is stopping; nothing more is recorded"));
		return FALSE;
	}
	g_async_queue_push (runner->recipient_commits, &commit);
	g_mutex_unlock (&runner->commit_lock);
	schedule_drain (runner);
	g_mutex_lock (&runner->commit_lock);
	while (!commit.done)
		g_cond_wait (&runner->commit_cond, &runner->commit_lock);
	g_mutex_unlock (&runner->commit_lock);
	if (commit.error != NULL) {
		g_propagate_error (error, commit.error);
		return FALSE;
	}
	return TRUE;
}

/* Worker thread (ScStageContext.waiting): while the handler only waits,
 * its mark is cleared, so a crash meanwhile is not blamed on the message. */
static void
handler_waiting_cb (gpointer data, gboolean waiting)
{
	ScJob *job = data;

	sc_owner_mark_in_handler (job->runner->owner, job->owner_slot, waiting ? 0 : job->message->id,
				  waiting ? 0 : job->message->lease_generation, job->stage_index);
}

/* Worker threads: a slot in the owner file for the claim in a handler. */
static guint
slot_acquire (ScRunner *runner)
{
	gboolean busy = TRUE;
	guint slot;

	g_mutex_lock (&runner->slot_lock);
	for (slot = 0; slot < runner->slot_busy->len; slot++) {
		if (!g_array_index (runner->slot_busy, gboolean, slot))
			break;
	}
	if (slot == runner->slot_busy->len)
		g_array_append_val (runner->slot_busy, busy);
	else
		g_array_index (runner->slot_busy, gboolean, slot) = TRUE;
	g_mutex_unlock (&runner->slot_lock);
	return slot;
}

static void
slot_release (ScRunner *runner, guint slot)
{
	g_mutex_lock (&runner->slot_lock);
	g_array_index (runner->slot_busy, gboolean, slot) = FALSE;
	g_mutex_unlock (&runner->slot_lock);
}

/* Worker thread: run one job's stage; its outcome goes into the job. */
static void
run_stage (ScRunner *runner, ScJob *job)
{
	g_autofree char *argument = NULL;
	const ScHandler *handler;
	const ScListConfig *list = sc_config_get_list (job->config, job->message->list_id);
	g_autoptr(GError) error_local = NULL;

	handler = sc_handler_registry_lookup (job->stage, &argument, &error_local);
	if (handler == NULL) {
		g_set_error (&job->error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
			     "%s", error_local->message);
	} else if (list == NULL) {
		/* The operator removed the list: wait for the fix, never die of it. */
		g_set_error (&job->error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
			     _("list %s is not in the configuration"), job->message->list_id);
	} else {
		ScStageContext context = {
		    .queue_id = job->message->queue_id,
		    .stage = job->stage,
		    .stage_argument = argument,
		    .list_id = job->message->list_id,
		    .pipeline = (const char *const *) job->message->pipeline,
		    .sender = job->message->sender,
		    .recipients = (const char *const *) job->message->recipients,
		    .raw = job->message->raw,
		    .current = job->message->current,
		    .config = job->config,
		    .list = list,
		    .clock = runner->clock,
		    .cancellable = runner->cancellable,
		    .previous_attempts = sc_message_previous_attempts (job->message, job->stage),
		    .recipient_records = job->message->recipient_records,
		    .record_recipients = record_recipients_cb,
		    .record_recipients_data = job,
		    .record_last_with_result = TRUE,
		    .waiting = handler_waiting_cb,
		    .waiting_data = job,
		};
		if (!handler->run (&context, &job->error) && job->error == NULL)
			g_set_error (&job->error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
				     _("stage %s failed without saying why"), job->stage);
		job->output = g_steal_pointer (&context.output);
		job->note = g_steal_pointer (&context.note);
		job->mailer = g_steal_pointer (&context.mailer);
		job->notification_kind = g_steal_pointer (&context.notification_kind);
		job->notification_detail = g_steal_pointer (&context.notification_detail);
		job->last_updates = g_steal_pointer (&context.last_updates);
		job->n_last_updates = context.n_last_updates;
		job->last_update_strings = g_steal_pointer (&context.last_update_strings);
		for (guint i = 0; i < job->n_last_updates; i++) {
			job->last_updates[i].id = job->message->id;
			job->last_updates[i].lease_generation = job->message->lease_generation;
		}
		/* A handler that reports a non-stage error gets it classified. */
		if (job->error != NULL && job->error->domain != SC_STAGE_ERROR) {
			GError *foreign = job->error;
			job->error = NULL;
			sc_stage_error_propagate (&job->error, foreign, NULL);
			g_error_free (foreign);
		}
	}
	job->finished_at = sc_clock_now (runner->clock);
}

/* Where @stage is in @message's pipeline (stage names are unique in a
 * pipeline: UNIQUE (message, stage)).  Not the count of completed stages:
 * a group skips a stage already done. */
static guint
pipeline_position (const ScMessage *message, const char *stage)
{
	guint i;

	for (i = 0; message->pipeline[i] != NULL; i++) {
		if (g_strcmp0 (message->pipeline[i], stage) == 0)
			break;
	}
	return i;
}

/* Worker thread: the job for the next stage of @previous's group, which
 * takes the message (and @previous's output) over. */
static ScJob *
job_continue (ScJob *previous)
{
	ScJob *job = g_new0 (ScJob, 1);
	ScMessage *message = previous->message;

	job->runner = previous->runner;
	job->lane = g_steal_pointer (&previous->lane); /* the group's one slot */
	job->suspect_slot = previous->suspect_slot;
	previous->suspect_slot = FALSE;
	job->message = message;
	previous->handed_on = TRUE;
	job->config = sc_config_ref (previous->config);
	job->stage = g_strdup (previous->then[0]);
	job->then = previous->then[1] != NULL ? g_strdupv (previous->then + 1) : NULL;
	job->stage_index = pipeline_position (message, job->stage);
	job->sequence = previous->sequence;
	job->started_at = previous->finished_at;
	job->after_uncommitted = TRUE;
	/* the message is this thread's until the group is handed back */
	if (previous->output != NULL) {
		g_bytes_unref (message->current);
		message->current = g_bytes_ref (previous->output);
	}
	return job;
}

/* Worker thread: run a job's stage (and the rest of its group), hand the
 * jobs back to the main thread together, so one commit records them. */
static void
worker_cb (gpointer data, gpointer user_data)
{
	ScJob *job = data;
	ScRunner *runner = user_data;
	g_autoptr(GPtrArray) ran = g_ptr_array_new ();
	guint slot;

	/* the slot first: once the runner sees no busy slot after setting
	 * `abandoned`, no handler can start any more */
	slot = slot_acquire (runner);
	if (g_atomic_int_get (&runner->abandoned)) {
		/* the runner gave up its leases: another runner may own it now */
		slot_release (runner, slot);
		job_free (job);
		return;
	}
	for (;;) {
		/* each stage of a group marked: a crash is blamed on the one running */
		sc_owner_mark_in_handler (runner->owner, slot, job->message->id, job->message->lease_generation,
					  job->stage_index);
		job->owner_slot = slot;
		run_stage (runner, job);
		g_ptr_array_add (ran, job);
		if (job->error != NULL || job->then == NULL || g_cancellable_is_cancelled (runner->cancellable) ||
		    g_atomic_int_get (&runner->abandoned))
			break;
		job = job_continue (job);
	}
	sc_owner_mark_in_handler (runner->owner, slot, 0, 0, 0);
	slot_release (runner, slot);
	g_async_queue_lock (runner->finished);
	for (guint i = 0; i < ran->len; i++)
		g_async_queue_push_unlocked (runner->finished, ran->pdata[i]);
	g_async_queue_unlock (runner->finished);
	schedule_drain (runner);
}

static void
schedule_drain (ScRunner *runner)
{
	g_mutex_lock (&runner->drain_lock);
	if (runner->drain_id == 0) {
		/* Group commit without a delay: whatever finished while the
		 * last commit's fsync ran is in the queue by the time this runs.
		 * (A 2 ms gathering window was measured: it cost throughput.) */
		GSource *source = g_idle_source_new ();
		g_source_set_priority (source, G_PRIORITY_DEFAULT);
		g_source_set_callback (source, drain_cb, runner, NULL);
		g_source_set_static_name (source, "stagecoach-drain");
		runner->drain_id = g_source_attach (source, runner->context);
		g_source_unref (source);
	}
	g_mutex_unlock (&runner->drain_lock);
}

/* The pool's queue order: later stages first, then first come first
 * served.  A message that has started goes on to done before new ones
 * start, so a large claim does not finish all at once at the very end. */
static gint
job_compare (gconstpointer a, gconstpointer b, gpointer user_data)
{
	const ScJob *job_a = a;
	const ScJob *job_b = b;

	if (job_a->stage_index != job_b->stage_index)
		return job_a->stage_index > job_b->stage_index ? -1 : 1;
	return job_a->sequence < job_b->sequence ? -1 : job_a->sequence > job_b->sequence;
}

/* ---- lanes ---- */

static void
lane_free (gpointer data)
{
	ScLane *lane = data;
	g_queue_clear_full (&lane->waiting, (GDestroyNotify) job_free);
	g_free (lane->key);
	g_free (lane);
}

static ScLane *
lane_get (ScRunner *runner, const char *key, guint capacity)
{
	ScLane *lane = g_hash_table_lookup (runner->lanes, key);

	if (lane == NULL) {
		lane = g_new0 (ScLane, 1);
		lane->key = g_strdup (key);
		g_queue_init (&lane->waiting);
		g_hash_table_insert (runner->lanes, lane->key, lane);
	}
	lane->capacity = MAX (capacity, 1); /* the configuration may have changed */
	return lane;
}

/* Deliver jobs (and groups that end with deliver) wait in the lane of the
 * mailer they will use first (the first of the list's mailers whose
 * circuit is not open); the rest share the workers lane. */
static ScLane *
lane_for_job (ScRunner *runner, ScJob *job)
{
	const ScListConfig *list = sc_config_get_list (job->config, job->message->list_id);

	const char *runs = job->then != NULL ? job->then[g_strv_length (job->then) - 1] : job->stage;

	if (g_strcmp0 (runs, "deliver") == 0 && list != NULL) {
		const ScMailerConfig *first = sc_deliver_mailer_key_for_list (job->config, list);
		if (first != NULL) {
			g_autofree char *key = g_strconcat ("mailer:", first->name, NULL);
			return lane_get (runner, key, SC_RUNNER_LANE_DEPTH * first->max_connections);
		}
	}
	return lane_get (runner, "workers", job->config->workers);
}

/* A thread for every slot of every lane the configuration can make. */
static void
pool_size_for (ScRunner *runner, ScConfig *config)
{
	guint threads = config->workers;

	for (guint i = 0; i < config->mailers->len; i++) {
		const ScMailerConfig *mailer = config->mailers->pdata[i];
		threads += SC_RUNNER_LANE_DEPTH * mailer->max_connections;
	}
	/* lanes of mailers a reload removed may still run */
	threads = MAX (threads, (guint) g_thread_pool_get_max_threads (runner->pool));
	(void) g_thread_pool_set_max_threads (runner->pool, (int) threads, NULL);
}

static void
lane_start (ScRunner *runner, ScJob *job)
{
	job->lane->running++;
	g_thread_pool_push (runner->pool, job, NULL);
}

/* A job whose turn came: a suspect also needs the suspect slot, and
 * leaves its lane to wait for it (holding no slot there meanwhile). */
static void
lane_pump (ScRunner *runner, ScLane *lane)
{
	while (lane->running < lane->capacity && !g_queue_is_empty (&lane->waiting)) {
		ScJob *job = g_queue_pop_head (&lane->waiting);

		if (job->message->crashes > 0) {
			if (runner->suspect_running) {
				g_queue_insert_sorted (&runner->suspects, job, job_compare, NULL);
				continue;
			}
			runner->suspect_running = TRUE;
			job->suspect_slot = TRUE;
		}
		lane_start (runner, job);
	}
}

/* The suspect slot is free: the first suspect waiting for it starts, in
 * its own lane even when that lane is full (by one job at most). */
static void
suspect_release (ScRunner *runner, ScJob *job)
{
	ScJob *next;

	if (!job->suspect_slot)
		return;
	job->suspect_slot = FALSE;
	runner->suspect_running = FALSE;
	if (g_atomic_int_get (&runner->abandoned) || g_queue_is_empty (&runner->suspects))
		return;
	next = g_queue_pop_head (&runner->suspects);
	runner->suspect_running = TRUE;
	next->suspect_slot = TRUE;
	lane_start (runner, next);
}

/* @job's slot is free: the next job of its lane may start (none once the
 * runner gave its work up). */
static void
lane_release (ScRunner *runner, ScJob *job)
{
	if (job->lane == NULL)
		return;
	job->lane->running--;
	suspect_release (runner, job);
	if (!g_atomic_int_get (&runner->abandoned))
		lane_pump (runner, job->lane);
	job->lane = NULL;
}

/* Jobs waiting behind a mailer that is busy or hung, or for the suspect
 * slot: they hold no thread, and they must not stop the runner from
 * claiming other work. */
static guint
blocked_jobs (ScRunner *runner)
{
	GHashTableIter iter;
	gpointer value;
	guint blocked = g_queue_get_length (&runner->suspects);

	g_hash_table_iter_init (&iter, runner->lanes);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		ScLane *lane = value;
		if (g_str_has_prefix (lane->key, "mailer:"))
			blocked += g_queue_get_length (&lane->waiting);
	}
	return blocked;
}

/* The stages that run right after @stage on the same thread, their
 * results committed with its own: stages that do no I/O of their own
 * (ScHandler.inline_before_deliver) run with the deliver stage that
 * follows them when that deliver sends in one transaction, so it commits
 * nothing before its result.  One thread hop and one commit per message
 * instead of one per stage; a crash before that commit runs them all
 * again, as it would have run the deliver stage again.  NULL: @stage runs
 * alone. */
static char **
plan_group (const ScMessage *message, ScConfig *config, const char *stage)
{
	const ScListConfig *list = sc_config_get_list (config, message->list_id);
	g_autoptr(GStrvBuilder) then = g_strv_builder_new ();
	const char *last = stage;
	gboolean after = FALSE;

	if (list == NULL || message->recipient_records == NULL)
		return NULL;
	for (guint i = 0; message->pipeline[i] != NULL; i++) {
		const char *name = message->pipeline[i];
		const ScHandler *handler;

		if (!after) {
			after = strcmp (name, stage) == 0;
			continue;
		}
		if (message->completed != NULL && g_strv_contains ((const char *const *) message->completed, name))
			continue;
		handler = sc_handler_registry_lookup (last, NULL, NULL);
		if (handler == NULL || !handler->inline_before_deliver)
			return NULL;
		g_strv_builder_add (then, name);
		if (strcmp (name, "deliver") == 0)
			return sc_deliver_is_one_transaction (config, list, message->recipient_records)
				   ? g_strv_builder_end (then)
				   : NULL;
		last = name;
	}
	return NULL;
}

static void
dispatch (ScRunner *runner, ScMessage *message, ScConfig *config)
{
	ScJob *job = g_new0 (ScJob, 1);

	job->runner = runner;
	job->message = message;
	job->config = sc_config_ref (config);
	job->stage = g_strdup (sc_message_next_stage (message));
	job->then = plan_group (message, config, job->stage);
	job->stage_index = pipeline_position (message, job->stage);
	job->sequence = runner->next_sequence++;
	job->started_at = sc_clock_now (runner->clock);
	job->lane = lane_for_job (runner, job);
	g_queue_insert_sorted (&job->lane->waiting, job, job_compare, NULL);
	lane_pump (runner, job->lane);
}

/* ---- claims in flight ---- */

static void
claim_add (ScRunner *runner, const ScMessage *message)
{
	g_hash_table_insert (runner->claims,
			     g_memdup2 (&message->id, sizeof message->id),
			     g_memdup2 (&message->lease_generation, sizeof message->lease_generation));
	runner->in_flight++;
}

/* The message's chain ended (or its claim was lost): forget the claim. */
static void
claim_remove (ScRunner *runner, const ScMessage *message, guint64 cost)
{
	g_hash_table_remove (runner->claims, &message->id);
	runner->in_flight--;
	runner->in_flight_bytes -= MIN (cost, runner->in_flight_bytes);
}

static gboolean
claim_in_flight (ScRunner *runner, const ScLease *lease)
{
	const gint64 *generation = g_hash_table_lookup (runner->claims, &lease->id);
	return generation != NULL && *generation == lease->generation;
}

/* What a claimed message holds in memory until its chain ends: the raw
 * bytes, the latest output, and the copies a stage makes while it runs
 * (GMime's parse and the decorated output it builds; the wire copy).
 * Measured, see DECISIONS.md. */
static guint64
claim_cost (ScRunner *runner, const ScMessage *message)
{
	return (guint64) runner->memory_factor * g_bytes_get_size (message->raw);
}

/* ---- outcomes ---- */

static char *
escape_for_log (const char *text)
{
	return g_strescape (text != NULL ? text : "", NULL);
}

/* Decides what becomes of the message after one stage's end. */
static void
decide (ScRunner *runner, ScJob *job, ScStageResult *result)
{
	ScMessage *message = job->message;
	const ScRetryPolicy *policy = &job->config->retry;

	result->id = message->id;
	result->lease_generation = message->lease_generation;
	result->stage = job->stage;
	result->started_at = job->started_at;
	result->finished_at = job->finished_at;
	result->output = job->output;
	result->note = job->note;
	result->mailer = job->mailer;
	result->notification_kind = job->notification_kind;
	result->notification_detail = job->notification_detail;
	result->attempts = message->attempts;

	if (job->error == NULL) {
		result->outcome = SC_OUTCOME_OK;
		g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
		g_strv_builder_addv (builder, (const char **) message->completed);
		g_strv_builder_add (builder, job->stage);
		g_strfreev (message->completed);
		message->completed = g_strv_builder_end (builder);
		result->next_state = sc_message_next_stage (message) != NULL && !runner->stopping
					 ? SC_STATE_ACTIVE
				     : sc_message_next_stage (message) != NULL ? SC_STATE_QUEUED
									    : SC_STATE_DONE;
		result->next_attempt_at = job->finished_at;
		return;
	}
	result->error = job->error->message;
	if (g_cancellable_is_cancelled (runner->cancellable) &&
	    g_error_matches (job->error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT)) {
		/* Interrupted by shutdown: not the message's fault, no attempt used. */
		result->outcome = SC_OUTCOME_RELEASED;
		result->next_state = message->attempts > 0 ? SC_STATE_DEFERRED : SC_STATE_QUEUED;
		result->next_attempt_at = job->finished_at;
		return;
	}
	if (g_error_matches (job->error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT)) {
		result->outcome = SC_OUTCOME_PERMANENT;
		result->next_state = SC_STATE_DEAD;
		result->attempts = message->attempts + 1;
		return;
	}
	result->outcome = SC_OUTCOME_TRANSIENT;
	result->attempts = message->attempts + 1;
	if (sc_retry_next_attempt (policy,
				   result->attempts,
				   message->cycle_started_at,
				   job->finished_at,
				   g_random_double (),
				   &result->next_attempt_at)) {
		result->next_state = SC_STATE_DEFERRED;
	} else {
		/* Say why it ends here, so `show` and the notification tell
		 * "out of time" from "refused". */
		g_autofree char *limit = NULL;
		result->next_state = SC_STATE_DEAD;
		if (policy->max_attempts > 0 && result->attempts >= policy->max_attempts) {
			job->final_error = g_strdup_printf (_("%s (gave up after %u attempts: max-attempts)"),
							    job->error->message, result->attempts);
		} else {
			limit = sc_duration_format (policy->max_age);
			job->final_error = g_strdup_printf (_("%s (gave up: older than max-age %s in this cycle)"),
							    job->error->message, limit);
		}
		result->error = job->final_error;
	}
}

static void
log_result (ScJob *job, const ScStageResult *result)
{
	/* an error says why it did not go on; an ok stage may leave a note
	 * (who was skipped, what was rewritten), which is not an error */
	const char *label = result->error != NULL ? " error=\"" : " note=\"";
	g_autofree char *error = escape_for_log (result->error != NULL ? result->error : result->note);
	g_autofree char *delay = NULL;

	if (result->next_state == SC_STATE_DEFERRED)
		delay = sc_duration_format (result->next_attempt_at - result->finished_at);
	g_log_structured (G_LOG_DOMAIN,
			  result->outcome == SC_OUTCOME_OK ? G_LOG_LEVEL_INFO : G_LOG_LEVEL_MESSAGE,
			  "SC_QUEUE_ID", job->message->queue_id,
			  "SC_STAGE", job->stage,
			  "SC_OUTCOME", sc_outcome_to_string (result->outcome),
			  "MESSAGE", "%s stage=%s outcome=%s state=%s%s%s%s%s%s",
			  job->message->queue_id,
			  job->stage,
			  sc_outcome_to_string (result->outcome),
			  sc_message_state_to_string (result->next_state),
			  delay != NULL ? " delay=" : "",
			  delay != NULL ? delay : "",
			  *error != '\0' ? label : "",
			  error,
			  *error != '\0' ? "\"" : "");
}

static void
runner_fail (ScRunner *runner, GError *error)
{
	g_warning ("%s", error->message);
	g_atomic_int_set (&runner->abandoned, 1);
	if (runner->fatal == NULL)
		runner->fatal = g_error_copy (error);
	if (runner->loop != NULL)
		g_main_loop_quit (runner->loop);
}

static void
release_commits (ScRunner *runner, GPtrArray *commits, const GError *error)
{
	g_mutex_lock (&runner->commit_lock);
	for (guint i = 0; i < commits->len; i++) {
		ScRecipientCommit *commit = commits->pdata[i];
		if (error != NULL && commit->error == NULL)
			commit->error = g_error_copy (error);
		commit->done = TRUE;
	}
	g_cond_broadcast (&runner->commit_cond);
	g_mutex_unlock (&runner->commit_lock);
}

/* Whether a batch of results may reach the disk after its commit returns
 * (sc_spool_commit_batch, durable FALSE): only when no worker waits on it
 * before its next transaction to the same recipients, and every result
 * may (sc_stage_result_may_wait_for_disk).  A power cut before the sync
 * then delivers those messages again: what a power cut during their
 * delivery does anyway, and what Postfix risks for every message (it
 * marks recipients done and removes delivered queue files without
 * fsync).  Each saves the main thread an fdatasync; under load the
 * acceptor's next durable commit syncs them before the timer does. */
static gboolean
commits_may_wait_for_disk (GPtrArray *commits, GPtrArray *results)
{
	if (commits->len > 0)
		return FALSE;
	for (guint i = 0; i < results->len; i++)
		if (!sc_stage_result_may_wait_for_disk (results->pdata[i]))
			return FALSE;
	return TRUE;
}

/* A deferred commit's results on disk within two SC_RUNNER_SYNC_DELAY_MS:
 * the timer syncs what was committed when it was set, unless a durable
 * commit (the acceptor's, under load) did meanwhile, and is set again
 * for anything committed since.  A sync that fails may have lost them,
 * and SQLite would then read frames the kernel dropped: stop (PostgreSQL
 * panics for the same reason); on restart the WAL's checksums bring the
 * spool back to its last durable state. */
static void schedule_sync (ScRunner *runner);

static gboolean
sync_cb (gpointer user_data)
{
	ScRunner *runner = user_data;
	g_autoptr(GError) error = NULL;

	runner->sync_id = 0;
	if (!sc_spool_sync (runner->spool, runner->sync_mark, &error)) {
		runner_fail (runner, error);
		return G_SOURCE_REMOVE;
	}
	schedule_sync (runner);
	return G_SOURCE_REMOVE;
}

static void
schedule_sync (ScRunner *runner)
{
	if (runner->sync_id != 0)
		return;
	runner->sync_mark = sc_spool_unsynced_mark (runner->spool);
	if (runner->sync_mark != 0)
		runner->sync_id = g_timeout_add (SC_RUNNER_SYNC_DELAY_MS, sync_cb, runner);
}

/* One transaction for every recipient commit and stage result at hand,
 * each job's last recipient updates (record_last_with_result) just before
 * the results.  A recipient batch whose claim is gone is undone alone (its
 * worker is told); any other failure undoes everything, and all of it is
 * tried again later: the workers keep waiting, nothing is released
 * meanwhile. */
static gboolean
record_all (ScRunner *runner, GPtrArray *commits, GPtrArray *jobs, GPtrArray *results, GError **error)
{
	g_autofree ScRecipientGroup *groups = g_new0 (ScRecipientGroup, commits->len + jobs->len + 1);
	guint n_groups = 0;

	for (guint i = 0; i < commits->len; i++) {
		ScRecipientCommit *commit = commits->pdata[i];
		g_clear_error (&commit->error);
		groups[n_groups].updates = commit->updates;
		groups[n_groups++].n_updates = commit->n_updates;
	}
	for (guint i = 0; i < jobs->len; i++) {
		ScJob *job = jobs->pdata[i];
		if (job->n_last_updates == 0)
			continue;
		/* a lost claim undoes the group, and its result is then not
		 * applied either: the same claim */
		groups[n_groups].updates = job->last_updates;
		groups[n_groups++].n_updates = job->n_last_updates;
	}
	if (!sc_spool_commit_batch (runner->spool, sc_owner_get_name (runner->owner), groups, n_groups,
				    (ScStageResult *const *) results->pdata, results->len,
				    !commits_may_wait_for_disk (commits, results), error))
		return FALSE;
	for (guint i = 0; i < commits->len; i++) {
		ScRecipientCommit *commit = commits->pdata[i];
		if (groups[i].lease_lost)
			commit->error = g_error_new_literal (SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID,
							     _("the message is no longer leased to this runner"));
	}
	return TRUE;
}

/* Main thread: what workers handed back joins what waits for the next
 * group commit; each finished job's result is decided once, here. */
static void
collect_finished (ScRunner *runner)
{
	ScRecipientCommit *commit;
	ScJob *job;

	while ((job = g_async_queue_try_pop (runner->finished)) != NULL) {
		ScStageResult *result = g_new0 (ScStageResult, 1);
		/* its thread is free: the next job of its lane may start
		 * (none once the runner gave its work up) */
		/* a job whose last transaction is not committed yet keeps its
		 * lane's slot until it is: a lane has at most its capacity of
		 * delivered, uncommitted transactions (what a crash repeats),
		 * and none starts while commits fail */
		if (job->n_last_updates == 0)
			lane_release (runner, job);
		decide (runner, job, result);
		g_ptr_array_add (runner->pending_jobs, job);
		g_ptr_array_add (runner->pending_results, result);
	}
	while ((commit = g_async_queue_try_pop (runner->recipient_commits)) != NULL)
		g_ptr_array_add (runner->pending_commits, commit);
}

static gboolean
commit_retry_cb (gpointer user_data)
{
	ScRunner *runner = user_data;

	runner->commit_retry_id = 0;
	schedule_drain (runner);
	return G_SOURCE_REMOVE;
}

/* Main thread: what happens to one job once its result is on disk. */
static void
finish_job (ScRunner *runner, ScJob *job, ScStageResult *result)
{
	lane_release (runner, job);
	if (job->handed_on) {
		/* the next job of its group goes on with the message (or drops
		 * it, when the claim was lost: the same claim) */
		if (result->applied)
			log_result (job, result);
		job_free (job);
		return;
	}
	if (!result->applied) {
		/* The claim was taken back (lease expired, runner thought dead):
		 * whoever holds it now does the work; this chain ends here. */
		g_message ("%s: stage %s finished after its claim was lost; result dropped",
			   job->message->queue_id, job->stage);
		claim_remove (runner, job->message, claim_cost (runner, job->message));
		job_free (job);
		return;
	}
	log_result (job, result);
	if (result->next_state != SC_STATE_ACTIVE) {
		claim_remove (runner, job->message, claim_cost (runner, job->message));
	} else {
		ScMessage *message = g_steal_pointer (&job->message);
		if (job->output != NULL) {
			g_bytes_unref (message->current);
			message->current = g_bytes_ref (job->output);
		}
		dispatch (runner, message, job->config);
	}
	job_free (job);
}

/* Main thread: commit every finished job in one transaction, then move on. */
static gboolean
drain_cb (gpointer user_data)
{
	ScRunner *runner = user_data;
	g_autoptr(GPtrArray) jobs = NULL;
	g_autoptr(GPtrArray) results = NULL;
	g_autoptr(GPtrArray) commits = NULL;
	g_autoptr(GError) error_local = NULL;

	g_mutex_lock (&runner->drain_lock);
	runner->drain_id = 0;
	g_mutex_unlock (&runner->drain_lock);

	take_handed (runner);
	refresh_credit (runner);
	collect_finished (runner);
	if (runner->pending_jobs->len == 0 && runner->pending_commits->len == 0)
		return G_SOURCE_REMOVE;
	if (runner->commit_retry_id != 0)
		return G_SOURCE_REMOVE; /* a failing spool: wait for the retry */

	if (!record_all (runner, runner->pending_commits, runner->pending_jobs, runner->pending_results, &error_local)) {
		/* Nothing was recorded.  Keep everything and try again: the
		 * claims stay ours (renewed while the spool lets us), and if one
		 * is taken back meanwhile its result is dropped then. */
		if (!runner->commit_failing)
			g_warning ("cannot record %u stage result(s) and %u recipient batch(es),"
				   " will retry: %s",
				   runner->pending_results->len, runner->pending_commits->len,
				   error_local->message);
		runner->commit_failing = TRUE;
		if (runner->commit_retry_id == 0)
			runner->commit_retry_id =
			    g_timeout_add (SC_RUNNER_COMMIT_RETRY_MS, commit_retry_cb, runner);
		return G_SOURCE_REMOVE;
	}
	if (runner->commit_failing)
		g_message ("recording works again: %u stage result(s) recorded",
			   runner->pending_results->len);
	runner->commit_failing = FALSE;
	jobs = g_steal_pointer (&runner->pending_jobs);
	results = g_steal_pointer (&runner->pending_results);
	commits = g_steal_pointer (&runner->pending_commits);
	runner->pending_jobs = g_ptr_array_new ();
	runner->pending_results = g_ptr_array_new_with_free_func (g_free);
	runner->pending_commits = g_ptr_array_new ();
	release_commits (runner, commits, NULL);
	schedule_sync (runner);

	if (sc_events_drain (runner->spool, sc_clock_now (runner->clock)) > 0 && runner->notify_hook != NULL)
		runner->notify_hook (runner->notify_hook_data);
	for (guint i = 0; i < results->len && runner->notify_hook != NULL; i++) {
		ScStageResult *result = results->pdata[i];
		if (result->applied &&
		    (result->next_state == SC_STATE_DEAD || result->notification_kind != NULL)) {
			runner->notify_hook (runner->notify_hook_data);
			break;
		}
	}
	for (guint i = 0; i < jobs->len; i++)
		finish_job (runner, jobs->pdata[i], results->pdata[i]);
	runner_claim (runner);
	return G_SOURCE_REMOVE;
}

/* ---- claiming and sleeping ---- */

static guint
capacity (ScRunner *runner)
{
	/* A claim batch in flight keeps the pool busy while results are
	 * committed, and makes each claim transaction (an fsync) count:
	 * refill only once half the batch has drained, never one by one. */
	guint limit = MAX (runner->config->workers * 2, runner->config->claim_batch);
	/* Jobs parked behind a busy mailer do not count, up to a bound, so
	 * a hung relay does not stop other lists' work from being claimed. */
	guint blocked = MIN (blocked_jobs (runner), 7 * limit);
	guint active = runner->in_flight - MIN (blocked, runner->in_flight);
	guint room = active >= limit ? 0 : limit - active;

	if (runner->in_flight > 0 && runner->in_flight_bytes >= runner->config->claim_memory)
		return 0; /* big messages in flight: no more bodies in memory */
	if (active > runner->config->workers && room < limit / 2)
		return 0;
	return MIN (room, runner->config->claim_batch);
}

static void
maybe_quit (ScRunner *runner)
{
	if (runner->in_flight > 0 || runner->loop == NULL)
		return;
	if (runner->stopping) {
		g_main_loop_quit (runner->loop);
		return;
	}
	if (runner->once) {
		gint64 next_due = 0;
		g_autoptr(GError) error_local = NULL;
		if (!sc_spool_next_due (runner->spool, &next_due, &error_local) ||
		    next_due > runner->once_started_at) {
			if (error_local != NULL)
				runner_fail (runner, error_local);
			g_main_loop_quit (runner->loop);
		}
	}
}

typedef struct {
	ScRunner *runner;
	GHashTable *in_handler; /* owner → its in-handler claims, read once */
	GPtrArray *dead;        /* owners found dead: their files go after the commit */
} ReclaimProbe;

static gboolean
probe_alive_cb (const char *owner, gpointer user_data)
{
	ReclaimProbe *probe = user_data;
	gboolean alive = sc_spool_runner_is_alive (probe->runner->spool, owner);

	if (!alive)
		g_ptr_array_add (probe->dead, g_strdup (owner));
	return alive;
}

static gboolean
probe_in_handler_cb (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data)
{
	ReclaimProbe *probe = user_data;
	GHashTable *running = g_hash_table_lookup (probe->in_handler, owner);

	if (running == NULL) {
		running = sc_spool_runner_in_handler (probe->runner->spool, owner);
		g_hash_table_insert (probe->in_handler, g_strdup (owner), running);
	}
	return sc_owner_marks_find (running, lease->id, lease->generation, out_stage);
}

static gboolean
probe_in_flight_cb (const ScLease *lease, gpointer user_data)
{
	ReclaimProbe *probe = user_data;
	return claim_in_flight (probe->runner, lease);
}

static void
reclaim_dead_owners (ScRunner *runner)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(GHashTable) in_handler =
	    g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
	g_autoptr(GPtrArray) dead = g_ptr_array_new_with_free_func (g_free);
	ReclaimProbe probe = {.runner = runner, .in_handler = in_handler, .dead = dead};
	ScLeaseProbe lease_probe = {
	    .alive = probe_alive_cb,
	    .in_handler = probe_in_handler_cb,
	    .in_flight = probe_in_flight_cb,
	    .user_data = &probe,
	};
	guint count = sc_spool_reclaim (runner->spool,
					sc_owner_get_name (runner->owner),
					&lease_probe,
					sc_clock_now (runner->clock),
					SC_RUNNER_CRASH_LIMIT,
					&error_local);

	if (error_local != NULL) {
		g_warning ("reclaiming dead runners' messages: %s", error_local->message);
	} else {
		if (count > 0)
			g_message ("took back %u message(s) from runners that stopped", count);
		for (guint i = 0; i < dead->len; i++)
			sc_spool_forget_runner (runner->spool, dead->pdata[i]);
	}
	runner->last_rescan = sc_clock_now (runner->clock);
}

/* A message leased to this runner (claimed, or stored leased by the
 * acceptor) starts its chain. */
static void
take_claimed (ScRunner *runner, ScMessage *message, gint64 now)
{
	if (sc_message_next_stage (message) == NULL) {
		/* Every stage recorded but not marked done (an interrupted
		 * commit cannot cause this, but a pipeline edit by hand
		 * could): finish it. */
		ScStageResult result = {
		    .id = message->id,
		    .lease_generation = message->lease_generation,
		    .stage = NULL,
		    .outcome = SC_OUTCOME_OK,
		    .started_at = now,
		    .finished_at = now,
		    .next_state = SC_STATE_DONE,
		    .attempts = message->attempts,
		};
		ScStageResult *one = &result;
		(void) sc_spool_record_results (runner->spool, sc_owner_get_name (runner->owner), &one, 1,
						NULL, NULL);
		sc_message_free (message);
		return;
	}
	claim_add (runner, message);
	runner->in_flight_bytes += claim_cost (runner, message);
	dispatch (runner, message, runner->config);
}

/* What the acceptor may lease to us next: the room a claim would use. */
static void
refresh_credit (ScRunner *runner)
{
	g_atomic_int_set (&runner->handover_credit,
			  runner->stopping || runner->once ? 0 : (gint) capacity (runner));
}

/* Main thread: the messages the acceptor stored leased to us start.  Once
 * stopping they stay as they are: sc_runner_free() releases every lease
 * of ours, so they go back to the queue. */
static void
take_handed (ScRunner *runner)
{
	ScMessage *message;
	gint64 now = sc_clock_now (runner->clock);

	while ((message = g_async_queue_try_pop (runner->handed)) != NULL) {
		if (runner->stopping) {
			sc_message_free (message);
			continue;
		}
		take_claimed (runner, message, now);
	}
}

static void
runner_claim (ScRunner *runner)
{
	gint64 now = sc_clock_now (runner->clock);
	gint64 next_due = 0;
	g_autoptr(GError) error_local = NULL;
	guint room;

	take_handed (runner);
	if (runner->stopping) {
		maybe_quit (runner);
		return;
	}
	if (now - runner->last_rescan >= runner->config->rescan)
		reclaim_dead_owners (runner);
	while ((room = capacity (runner)) > 0) {
		g_autoptr(GPtrArray) messages = NULL;
		gint64 claim_time = runner->once ? MIN (now, runner->once_started_at) : now;

		messages = sc_spool_claim_within (runner->spool,
						  sc_owner_get_name (runner->owner),
						  claim_time,
						  now + runner->config->lease,
						  room,
						  runner->config->claim_memory > runner->in_flight_bytes
						      ? (runner->config->claim_memory - runner->in_flight_bytes) /
							    (guint64) runner->memory_factor
						      : 0,
						  runner->in_flight == 0,
						  &error_local);
		if (messages == NULL) {
			g_warning ("cannot claim messages: %s", error_local->message);
			/* A locked or full spool passes; try again shortly. */
			runner_schedule (runner, now + G_USEC_PER_SEC);
			return;
		}
		for (guint i = 0; i < messages->len; i++)
			take_claimed (runner, g_steal_pointer (&messages->pdata[i]), now);
		if (messages->len < room)
			break;
	}
	if (!sc_spool_next_due (runner->spool, &next_due, &error_local)) {
		if (error_local != NULL)
			g_warning ("cannot read the next due time: %s", error_local->message);
		next_due = G_MAXINT64;
	}
	if (runner->once) {
		maybe_quit (runner);
		if (next_due > runner->once_started_at)
			next_due = G_MAXINT64;
	}
	/* Due now but left unclaimed (no room, or the memory budget): a job's
	 * end claims again, so sleep; a timer at "now" would spin a core for
	 * as long as a relay hangs.  With nothing in flight no job will end:
	 * look again in a second. */
	if (next_due <= now)
		next_due = runner->in_flight > 0 ? G_MAXINT64 : now + G_USEC_PER_SEC;
	runner_schedule (runner, MIN (next_due, runner->last_rescan + runner->config->rescan));
	refresh_credit (runner);
}

static void
runner_schedule (ScRunner *runner, gint64 ready_time_real)
{
	gint64 delay = ready_time_real - sc_clock_now (runner->clock);
	sc_timer_source_arm (runner->timer, MAX (delay, 0));
}

static gboolean
timer_cb (gpointer user_data)
{
	runner_claim (user_data);
	return G_SOURCE_CONTINUE;
}

static gboolean
wake_cb (gpointer user_data)
{
	runner_claim (user_data);
	return G_SOURCE_CONTINUE;
}

/* The boot clock: never stepped, counts suspend (CLOCK_MONOTONIC does not). */
static gint64
boottime_now (void)
{
	struct timespec ts;

	if (clock_gettime (CLOCK_BOOTTIME, &ts) != 0)
		return g_get_monotonic_time ();
	return (gint64) ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static char *
read_boot_id (void)
{
	g_autofree char *text = NULL;

	if (!g_file_get_contents ("/proc/sys/kernel/random/boot_id", &text, NULL, NULL))
		return g_strdup_printf ("pid-%d", (int) getpid ()); /* compares with itself only */
	return g_strdup (g_strstrip (text));
}

/* A stepped wall clock: stored due times, cycle starts and leases move
 * with it (sc-sqlite-clock.c), then the timer is set again. */
static void
check_clock (ScRunner *runner)
{
	g_autoptr(GError) error_local = NULL;
	gint64 step = 0;

	if (!sc_spool_check_clock (runner->spool, sc_clock_now (runner->clock), boottime_now (),
				   runner->boot_id, SC_RUNNER_CLOCK_STEP_THRESHOLD, &step, &error_local)) {
		g_debug ("cannot check the clock: %s", error_local->message);
		return;
	}
	if (step != 0) {
		g_autofree char *amount = sc_duration_format (ABS (step));
		g_warning ("the wall clock was stepped %s by %s: due times, message ages and leases"
			   " moved with it",
			   step > 0 ? "forward" : "back", amount);
		runner_claim (runner);
	}
}

static gboolean
renew_cb (gpointer user_data)
{
	ScRunner *runner = user_data;
	g_autoptr(GError) error_local = NULL;

	check_clock (runner);
	/* monotonic: a wall clock stepped back must not stop renewals */
	gint64 elapsed = g_get_monotonic_time () - runner->last_renew;

	if (g_hash_table_size (runner->claims) > 0 && elapsed >= runner->config->lease / 3) {
		g_autoptr(GArray) leases = g_array_new (FALSE, FALSE, sizeof (ScLease));
		GHashTableIter iter;
		gpointer key, value;

		g_hash_table_iter_init (&iter, runner->claims);
		while (g_hash_table_iter_next (&iter, &key, &value)) {
			ScLease lease = {.id = *(gint64 *) key, .generation = *(gint64 *) value};
			g_array_append_val (leases, lease);
		}
		/* only the claims still worked on: one we dropped must expire */
		if (sc_spool_renew_leases (runner->spool,
					   sc_owner_get_name (runner->owner),
					   (const ScLease *) leases->data,
					   leases->len,
					   sc_clock_now (runner->clock) + runner->config->lease,
					   &error_local))
			runner->last_renew = g_get_monotonic_time ();
		else
			g_warning ("cannot renew leases: %s", error_local->message);
	}
	if (runner->stopping && sc_clock_now (runner->clock) >= runner->stop_deadline) {
		/* Workers did not finish in time.  Their messages are given
		 * back once the pool has been joined (sc_runner_free), never
		 * while a handler may still run. */
		g_message ("giving up on %u message(s) still in flight", runner->in_flight);
		g_atomic_int_set (&runner->abandoned, 1);
		g_main_loop_quit (runner->loop);
	}
	return G_SOURCE_CONTINUE;
}

/* ---- life ---- */

static guint
busy_slots (ScRunner *runner)
{
	guint busy = 0;

	g_mutex_lock (&runner->slot_lock);
	for (guint i = 0; i < runner->slot_busy->len; i++)
		busy += g_array_index (runner->slot_busy, gboolean, i) ? 1 : 0;
	g_mutex_unlock (&runner->slot_lock);
	return busy;
}

/* The loop has ended (stop deadline, or no loop at all) while handlers
 * still run: a deliver handler past the final "." waits for the reply
 * (bounded by the mailer's timeout).  Record what they report until the
 * last one returns, so a recipient the relay accepted is not sent again. */
static void
record_until_idle (ScRunner *runner)
{
	gint64 last_warning = 0;
	gint64 give_up_at = G_MAXINT64;

	for (;;) {
		ScRecipientCommit *commit;
		g_autoptr(GError) error_local = NULL;

		collect_finished (runner);
		if (runner->pending_jobs->len > 0 || runner->pending_commits->len > 0) {
			if (record_all (runner, runner->pending_commits, runner->pending_jobs, runner->pending_results, &error_local)) {
				release_commits (runner, runner->pending_commits, NULL);
				g_ptr_array_set_size (runner->pending_commits, 0);
				for (guint i = 0; i < runner->pending_jobs->len; i++) {
					ScJob *done = runner->pending_jobs->pdata[i];
					ScStageResult *result = runner->pending_results->pdata[i];
					if (result->applied)
						log_result (done, result);
					lane_release (runner, done);
					job_free (done);
				}
				g_ptr_array_set_size (runner->pending_jobs, 0);
				g_ptr_array_set_size (runner->pending_results, 0);
			} else {
				gint64 now = g_get_monotonic_time ();
				if (now - last_warning > 10 * G_USEC_PER_SEC) {
					g_warning ("stopping: cannot record results yet: %s", error_local->message);
					last_warning = now;
				}
				/* No handler runs any more and the spool still refuses
				 * (a full disk): stop trying after a while.  The claims
				 * stay ours until this process is gone; the next runner
				 * takes them back, blaming none, and the stages run again. */
				if (busy_slots (runner) == 0 && give_up_at == G_MAXINT64)
					give_up_at = now + 5 * G_USEC_PER_SEC;
				if (now >= give_up_at) {
					g_warning ("stopping without recording %u stage result(s): %s",
						   runner->pending_jobs->len, error_local->message);
					break;
				}
			}
			continue;
		}
		if (busy_slots (runner) == 0)
			break;
		commit = g_async_queue_timeout_pop (runner->recipient_commits, 50 * 1000);
		if (commit != NULL)
			g_ptr_array_add (runner->pending_commits, commit);
	}
}

ScRunner *
sc_runner_new (ScConfig *config, ScClock *clock, GError **error)
{
	g_autoptr(ScRunner) runner = g_new0 (ScRunner, 1);
	g_autoptr(GError) error_local = NULL;

	g_mutex_init (&runner->drain_lock);
	runner->config = sc_config_ref (config);
	runner->clock = sc_clock_ref (clock);
	runner->context = g_main_context_ref_thread_default ();
	runner->cancellable = g_cancellable_new ();
	runner->finished = g_async_queue_new ();
	runner->recipient_commits = g_async_queue_new ();
	runner->handed = g_async_queue_new_full ((GDestroyNotify) sc_message_free);
	g_mutex_init (&runner->commit_lock);
	g_cond_init (&runner->commit_cond);
	g_mutex_init (&runner->slot_lock);
	runner->slot_busy = g_array_new (FALSE, TRUE, sizeof (gboolean));
	runner->lanes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, lane_free);
	runner->claims = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
	runner->pending_jobs = g_ptr_array_new ();
	runner->pending_results = g_ptr_array_new_with_free_func (g_free);
	runner->pending_commits = g_ptr_array_new ();
	runner->memory_factor = SC_RUNNER_MEMORY_FACTOR;
	runner->boot_id = read_boot_id ();
	runner->last_renew = g_get_monotonic_time ();
	runner->spool = sc_spool_open (config->spool, config->busy_timeout, error);
	if (runner->spool == NULL)
		return NULL;
	runner->owner = sc_spool_register_runner (runner->spool, error);
	if (runner->owner == NULL)
		return NULL;
	runner->pool = g_thread_pool_new (worker_cb, runner, (int) config->workers, FALSE, error);
	if (runner->pool == NULL)
		return NULL;
	g_thread_pool_set_sort_function (runner->pool, job_compare, NULL);
	pool_size_for (runner, config);
	runner->timer = sc_timer_source_new (timer_cb, runner, "stagecoach-claim-timer");
	g_source_attach (runner->timer, runner->context);
	runner->wake_source = sc_spool_wake_source_new (runner->spool, wake_cb, runner, &error_local);
	if (runner->wake_source == NULL)
		g_warning ("no instant wakeups, rescanning every %" G_GINT64_FORMAT "s: %s",
			   config->rescan / G_USEC_PER_SEC, error_local->message);
	else
		g_source_attach (runner->wake_source, runner->context);
	return g_steal_pointer (&runner);
}

void
sc_runner_free (ScRunner *runner)
{
	if (runner == NULL)
		return;
	if (runner->pool != NULL) {
		ScRecipientCommit *commit;
		/* No new handler starts; the running ones are waited for
		 * anyway, so what they deliver meanwhile is still recorded. */
		g_atomic_int_set (&runner->abandoned, 1);
		runner->stopping = TRUE;
		if (runner->spool != NULL && runner->fatal == NULL)
			record_until_idle (runner);
		/* A worker may be waiting for a commit that will not be made
		 * now (fatal spool error): tell it and every later one, so the
		 * pool can be joined. */
		g_mutex_lock (&runner->commit_lock);
		runner->closing = TRUE;
		while ((commit = g_async_queue_try_pop (runner->recipient_commits)) != NULL) {
			g_set_error (&commit->error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
				     _("the runner is stopping; nothing more is recorded"));
			commit->done = TRUE;
		}
		/* and the ones kept for a commit that kept failing */
		for (guint i = 0; i < runner->pending_commits->len; i++) {
			commit = runner->pending_commits->pdata[i];
			g_clear_error (&commit->error);
			g_set_error (&commit->error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
				     _("the runner is stopping; nothing more is recorded"));
			commit->done = TRUE;
		}
		g_ptr_array_set_size (runner->pending_commits, 0);
		g_cond_broadcast (&runner->commit_cond);
		g_mutex_unlock (&runner->commit_lock);
		g_thread_pool_free (runner->pool, FALSE, TRUE);
		sc_handler_registry_shutdown ();
	}
	if (runner->lanes != NULL)
		g_hash_table_destroy (runner->lanes);
	g_queue_clear_full (&runner->suspects, (GDestroyNotify) job_free);
	if (runner->pending_jobs != NULL) {
		g_ptr_array_foreach (runner->pending_jobs, (GFunc) (void (*) (void)) job_free, NULL);
		g_ptr_array_unref (runner->pending_jobs);
	}
	g_clear_pointer (&runner->pending_results, g_ptr_array_unref);
	g_clear_pointer (&runner->pending_commits, g_ptr_array_unref);
	g_clear_pointer (&runner->claims, g_hash_table_unref);
	if (runner->commit_retry_id != 0)
		g_source_remove (runner->commit_retry_id);
	if (runner->sync_id != 0)
		g_source_remove (runner->sync_id);
	/* handed over after the loop stopped: their leases go back below */
	g_clear_pointer (&runner->handed, g_async_queue_unref);
	/* jobs that finished after the loop stopped */
	if (runner->finished != NULL) {
		ScJob *job;
		while ((job = g_async_queue_try_pop (runner->finished)) != NULL)
			job_free (job);
		g_async_queue_unref (runner->finished);
	}
	if (runner->drain_id != 0)
		g_source_remove (runner->drain_id);
	if (runner->renew_id != 0)
		g_source_remove (runner->renew_id);
	if (runner->timer != NULL) {
		g_source_destroy (runner->timer);
		g_source_unref (runner->timer);
	}
	if (runner->wake_source != NULL) {
		g_source_destroy (runner->wake_source);
		g_source_unref (runner->wake_source);
	}
	/* No handler runs any more (the pool was joined): what is still
	 * leased goes back at once rather than waiting for the lease. */
	if (runner->spool != NULL && runner->owner != NULL)
		(void) sc_spool_release_owner (runner->spool,
					       sc_owner_get_name (runner->owner),
					       sc_clock_now (runner->clock),
					       NULL);
	sc_owner_free (runner->owner);
	sc_spool_close (runner->spool);
	g_clear_object (&runner->cancellable);
	g_main_context_unref (runner->context);
	sc_clock_unref (runner->clock);
	sc_config_unref (runner->config);
	g_clear_error (&runner->fatal);
	g_mutex_clear (&runner->drain_lock);
	g_mutex_clear (&runner->commit_lock);
	g_cond_clear (&runner->commit_cond);
	g_mutex_clear (&runner->slot_lock);
	g_clear_pointer (&runner->slot_busy, g_array_unref);
	g_free (runner->boot_id);
	if (runner->recipient_commits != NULL)
		g_async_queue_unref (runner->recipient_commits);
	g_free (runner);
}

gboolean
sc_runner_run (ScRunner *runner, gboolean once, GError **error)
{
	runner->once = once;
	runner->loop = g_main_loop_new (runner->context, FALSE);
	runner->renew_id = g_timeout_add_seconds (1, renew_cb, runner);
	check_clock (runner);
	reclaim_dead_owners (runner);
	runner->once_started_at = sc_clock_now (runner->clock);
	/* first claim from inside the loop: a quit before g_main_loop_run() is lost */
	runner_schedule (runner, runner->once_started_at);
	g_main_loop_run (runner->loop);
	g_clear_pointer (&runner->loop, g_main_loop_unref);
	g_source_remove (runner->renew_id);
	runner->renew_id = 0;
	if (runner->fatal != NULL) {
		g_propagate_error (error, g_steal_pointer (&runner->fatal));
		return FALSE;
	}
	return TRUE;
}

void
sc_runner_stop (ScRunner *runner)
{
	if (runner->stopping) {
		/* Asked twice: do not wait for the grace period. */
		runner->stop_deadline = sc_clock_now (runner->clock);
		return;
	}
	g_message ("stopping: finishing %u stage(s) in flight", runner->in_flight);
	runner->stopping = TRUE;
	g_atomic_int_set (&runner->handover_credit, 0);
	runner->stop_deadline = sc_clock_now (runner->clock) + SC_RUNNER_STOP_GRACE;
	g_cancellable_cancel (runner->cancellable);
	maybe_quit (runner);
}

void
sc_runner_set_config (ScRunner *runner, ScConfig *config)
{
	ScConfig *old = runner->config;
	runner->config = sc_config_ref (config);
	sc_config_unref (old);
	pool_size_for (runner, config);
	runner_claim (runner);
}

ScSpool *
sc_runner_get_spool (ScRunner *runner)
{
	return runner->spool;
}

void
sc_runner_kick (ScRunner *runner)
{
	/* No room: runner_claim would only read the next due time and sleep
	 * until a job ends, which claims anyway.  Skipping it spares a spool
	 * read per commit while the doors accept faster than jobs end. */
	if (runner->in_flight > 0 && capacity (runner) == 0) {
		refresh_credit (runner);
		return;
	}
	runner_schedule (runner, sc_clock_now (runner->clock));
}

guint
sc_runner_reserve (gpointer runner_pointer, guint wanted)
{
	ScRunner *runner = runner_pointer;
	gint credit;

	do {
		credit = g_atomic_int_get (&runner->handover_credit);
		if (credit <= 0)
			return 0;
	} while (!g_atomic_int_compare_and_exchange (&runner->handover_credit, credit,
						      credit - (gint) MIN ((guint) credit, wanted)));
	return MIN ((guint) credit, wanted);
}

void
sc_runner_take (gpointer runner_pointer, GPtrArray *messages)
{
	ScRunner *runner = runner_pointer;

	for (guint i = 0; i < messages->len; i++)
		g_async_queue_push (runner->handed, g_steal_pointer (&messages->pdata[i]));
	g_ptr_array_unref (messages);
	schedule_drain (runner);
}

const char *
sc_runner_get_owner (ScRunner *runner)
{
	return sc_owner_get_name (runner->owner);
}

void
sc_runner_set_notify_hook (ScRunner *runner, GSourceFunc func, gpointer data)
{
	runner->notify_hook = func;
	runner->notify_hook_data = data;
}
