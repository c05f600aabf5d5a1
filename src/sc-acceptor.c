/* sc-acceptor.c — one writer for everything the doors accept: a queue of
 * checked messages committed together on the acceptor's own thread.
 *
 * A submission is checked on the caller's thread, then queued; the first
 * one queued attaches an idle source to the ingress thread's context: it
 * runs once no connection has input waiting, so every session that could
 * still reach its final "." in this round does, and hands the whole round
 * to the writer thread.  The writer loops: take everything handed over,
 * store it in one transaction (one fsync), answer each caller on its own
 * context.  While it commits, the doors go on serving their sessions, and
 * what is handed over meanwhile waits for the next commit: group commit
 * with no timer, one message per fsync when idle, many under load (where
 * the writer also waits, at most LINGER_USEC, for as many as it last
 * committed: writer_thread()).
 * (Committing on the ingress thread itself stopped every session for the
 * whole commit: the doors and the disk took turns.  Waking the writer at
 * each submission instead of once per round halved the messages per
 * fsync.)
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-ingress-private.h"

/* How long the writer waits, at most, for the rest of a round's cohort:
 * see writer_thread() */
#define LINGER_USEC 1000

/* pairs forgotten per prune (each prune is one short write transaction) */
#define PRUNE_BATCH 10000
#define PRUNE_INTERVAL_SECONDS 60

struct _ScAcceptor {
	GMutex lock;
	GCond wake;               /* wake_at reached, or stopping */
	guint wake_at;            /* the writer sleeps until this many are handed
				   * over (0: it is not sleeping); under lock */
	GPtrArray *pending;       /* (owned) (element-type GTask) under lock; task data: ScPrepared */
	GPtrArray *handed;        /* (owned) the same, handed to the writer; under lock */
	GSource *handover_source; /* (nullable) (owned) under lock */
	GMainContext *context;    /* (owned) the ingress thread's */
	ScConfig *config;         /* (owned) under lock */
	gboolean stopping;        /* under lock */
	GThread *writer;          /* (nullable) joined by sc_acceptor_stop() */
	ScSpool *spool;           /* (owned) used on the writer thread only */
	ScHandover handover;      /* .reserve NULL: none; .owner owned; under lock */
	GSourceFunc hook;         /* (nullable) on @hook_context after a commit that queued; under lock */
	gpointer hook_data;
	GMainContext *hook_context; /* (owned) (nullable) */
	gint64 linger;            /* µs, LINGER_USEC but in tests; under lock */
};

static void
return_error (GTask *task, ScIngressError code, const char *message)
{
	g_task_return_new_error (task, SC_INGRESS_ERROR, code, "%s", message);
}

/* The answers of one commit for the callers on one context, given there
 * by one source: a GTask returned from the writer thread attaches its
 * own idle source to its context, a wakeup (eventfd write, poll, read)
 * per message; this is one per commit and context.  Dispatched on the
 * tasks' context, g_task_return_*() calls each callback at once. */
typedef struct {
	GTask *task;          /* (owned) */
	ScAccepted *accepted; /* (owned) (nullable) */
	GError *error;        /* (owned) (nullable) */
} Answer;

static void
answer_clear (Answer *answer)
{
	g_clear_object (&answer->task);
	g_clear_pointer (&answer->accepted, sc_accepted_free);
	g_clear_error (&answer->error);
}

static gboolean
answers_cb (gpointer user_data)
{
	GArray *answers = user_data;

	for (guint i = 0; i < answers->len; i++) {
		Answer *answer = &g_array_index (answers, Answer, i);
		if (answer->error != NULL)
			g_task_return_error (answer->task, g_steal_pointer (&answer->error));
		else
			g_task_return_pointer (answer->task, g_steal_pointer (&answer->accepted),
					       (GDestroyNotify) sc_accepted_free);
	}
	return G_SOURCE_REMOVE;
}

/* Answers each task of @batch: accepted[i], or a copy of @error. */
static void
answer_batch (GPtrArray *batch, ScAccepted **accepted, const GError *error)
{
	g_autoptr(GPtrArray) contexts = g_ptr_array_new ();
	g_autoptr(GPtrArray) groups = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);

	for (guint i = 0; i < batch->len; i++) {
		GMainContext *context = g_task_get_context (batch->pdata[i]);
		Answer answer = {.task = g_object_ref (batch->pdata[i])};
		guint group;

		for (group = 0; group < contexts->len && contexts->pdata[group] != context; group++)
			;
		if (group == contexts->len) {
			GArray *answers = g_array_sized_new (FALSE, FALSE, sizeof (Answer), batch->len);
			g_array_set_clear_func (answers, (GDestroyNotify) answer_clear);
			g_ptr_array_add (contexts, context);
			g_ptr_array_add (groups, answers);
		}
		if (error != NULL)
			answer.error = g_error_copy (error);
		else
			answer.accepted = g_steal_pointer (&accepted[i]);
		g_array_append_val ((GArray *) groups->pdata[group], answer);
	}
	for (guint group = 0; group < groups->len; group++) {
		g_autoptr(GSource) source = g_idle_source_new ();
		g_source_set_priority (source, G_PRIORITY_DEFAULT);
		g_source_set_static_name (source, "[stagecoach] acceptor answers");
		g_source_set_callback (source, answers_cb, g_array_ref (groups->pdata[group]),
				       (GDestroyNotify) g_array_unref);
		g_source_attach (source, contexts->pdata[group]);
	}
}

static void
commit_batch (ScAcceptor *acceptor, GPtrArray *batch, ScConfig *config)
{
	g_autofree ScPrepared **prepared = NULL;
	g_autofree ScAccepted **accepted = NULL;
	g_autofree ScMessage **claimed = g_new0 (ScMessage *, batch->len);
	g_autoptr(GPtrArray) handed = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	g_autoptr(GError) error = NULL;
	g_autofree char *owner = NULL;
	ScHandover handover;
	GSourceFunc hook;
	gpointer hook_data;
	g_autoptr(GMainContext) hook_context = NULL;
	gint64 now = g_get_real_time ();
	ScIngressLease lease = {.claimed = claimed};
	guint queued = 0;
	gboolean log_each;

	g_mutex_lock (&acceptor->lock);
	handover = acceptor->handover;
	owner = g_strdup (handover.owner);
	g_mutex_unlock (&acceptor->lock);
	/* as many as the runner has room for go to it leased: no claim
	 * transaction, no wakeup, no second read of what we hold here */
	if (handover.reserve != NULL) {
		lease.owner = owner;
		lease.expires_at = now + config->lease;
		lease.count = handover.reserve (handover.runner, batch->len);
	}
	prepared = g_new0 (ScPrepared *, batch->len);
	accepted = g_new0 (ScAccepted *, batch->len);
	for (guint i = 0; i < batch->len; i++)
		prepared[i] = g_task_get_task_data (batch->pdata[i]);
	if (!sc_ingress_store (acceptor->spool, prepared, batch->len, config->ingress.dedupe_window, now,
			       lease.count > 0 ? &lease : NULL, accepted, &error)) {
		g_warning ("ingress: %u message(s) not accepted, the spool failed: %s", batch->len,
			   error->message);
		answer_batch (batch, NULL, error);
		return;
	}
	/* formatting the line costs more than the rest of the loop: skipped
	 * when the default writer would drop it (no --verbose) */
	log_each = !g_log_writer_default_would_drop (G_LOG_LEVEL_INFO, G_LOG_DOMAIN);
	for (guint i = 0; i < batch->len; i++) {
		const ScPrepared *p = prepared[i];
		ScAccepted *a = accepted[i];
		if (claimed[i] != NULL)
			g_ptr_array_add (handed, claimed[i]);
		else if (a->queue_id != NULL)
			queued++;
		if (log_each)
			g_info ("ingress %s%s%s: %s list=%s message-id=%s size=%" G_GSIZE_FORMAT
				" recipients=%u duplicates=%u",
				p->door, p->peer != NULL ? " from " : "", p->peer != NULL ? p->peer : "",
				a->queue_id != NULL ? a->queue_id : "(all duplicates)", a->list_id,
				a->message_id, g_bytes_get_size (p->raw), a->n_recipients, a->n_duplicates);
	}
	answer_batch (batch, accepted, NULL);
	if (handed->len > 0)
		handover.take (handover.runner, g_steal_pointer (&handed));
	g_mutex_lock (&acceptor->lock);
	hook = acceptor->hook;
	hook_data = acceptor->hook_data;
	hook_context = acceptor->hook_context != NULL ? g_main_context_ref (acceptor->hook_context) : NULL;
	g_mutex_unlock (&acceptor->lock);
	if (queued > 0 && hook != NULL)
		g_main_context_invoke (hook_context, hook, hook_data);
}

static void
prune (ScAcceptor *acceptor, const ScConfig *config)
{
	g_autoptr(GError) error = NULL;
	guint pruned = 0;

	/* a window turned off keeps nothing */
	if (!sc_spool_prune_accepted (acceptor->spool,
				      g_get_real_time () - config->ingress.dedupe_window,
				      PRUNE_BATCH, &pruned, &error))
		g_warning ("ingress: forgetting old accepted Message-IDs failed (tried again later): %s",
			   error->message);
}

/* Under the lock: what is queued goes to the writer. */
static void
hand_over_locked (ScAcceptor *acceptor)
{
	g_ptr_array_extend_and_steal (acceptor->handed, g_steal_pointer (&acceptor->pending));
	acceptor->pending = g_ptr_array_new_with_free_func (g_object_unref);
}

static gboolean
handover_cb (gpointer user_data)
{
	ScAcceptor *acceptor = user_data;

	g_mutex_lock (&acceptor->lock);
	hand_over_locked (acceptor);
	g_clear_pointer (&acceptor->handover_source, g_source_unref);
	/* GCond signals with a futex call even when no one waits: only when
	 * the writer sleeps and this is what it waits for */
	if (acceptor->wake_at > 0 && acceptor->handed->len >= acceptor->wake_at)
		g_cond_signal (&acceptor->wake);
	g_mutex_unlock (&acceptor->lock);
	return G_SOURCE_REMOVE;
}

/* The writer: commits what is handed over, prunes once a minute, and on stop
 * commits what was queued before it and ends.
 *
 * Each commit costs the same whatever it holds: an fdatasync (~60 µs of
 * CPU on this VM, a virtio exit), a dozen pages written whatever the batch
 * (page 1, each index's last leaf, state_counts), the WAL locks.  Under
 * load the sessions answered by one commit come back together, a few
 * hundred µs later, but the writer, done with the other cohort, would
 * take the first of them alone.  So when fewer are handed over than the
 * last commit held, it waits, at most LINGER_USEC, until as many are
 * there: one message alone after a commit of one (the idle case) never
 * waits.  accept.sh (smtp-source -s 8 into [ingress] smtp=) alternated,
 * 3 rounds each: fdatasync 0.28-0.32 -> 0.14-0.16 per message, the
 * acceptor thread's CPU 82-109 -> 58-75 µs per message. */
static gpointer
writer_thread (gpointer user_data)
{
	ScAcceptor *acceptor = user_data;
	gint64 next_prune = g_get_monotonic_time () + PRUNE_INTERVAL_SECONDS * G_USEC_PER_SEC;
	guint last_batch = 0;

	for (;;) {
		g_autoptr(GPtrArray) batch = NULL;
		g_autoptr(ScConfig) config = NULL;
		gboolean prune_due;

		g_mutex_lock (&acceptor->lock);
		acceptor->wake_at = 1;
		while (acceptor->handed->len == 0 && !acceptor->stopping &&
		       g_cond_wait_until (&acceptor->wake, &acceptor->lock, next_prune))
			;
		if (acceptor->handed->len > 0 && acceptor->handed->len < last_batch) {
			gint64 until = g_get_monotonic_time () + acceptor->linger;
			acceptor->wake_at = last_batch;
			while (acceptor->handed->len < last_batch && !acceptor->stopping &&
			       g_cond_wait_until (&acceptor->wake, &acceptor->lock, until))
				;
		}
		acceptor->wake_at = 0;
		if (acceptor->stopping) /* what was queued before the stop is committed */
			hand_over_locked (acceptor);
		if (acceptor->handed->len == 0 && acceptor->stopping) {
			g_mutex_unlock (&acceptor->lock);
			return NULL;
		}
		batch = g_steal_pointer (&acceptor->handed);
		last_batch = batch->len;
		acceptor->handed = g_ptr_array_new_with_free_func (g_object_unref);
		config = sc_config_ref (acceptor->config);
		g_mutex_unlock (&acceptor->lock);

		if (batch->len > 0)
			commit_batch (acceptor, batch, config);
		prune_due = g_get_monotonic_time () >= next_prune;
		if (prune_due) {
			prune (acceptor, config);
			next_prune = g_get_monotonic_time () + PRUNE_INTERVAL_SECONDS * G_USEC_PER_SEC;
		}
	}
}

ScAcceptor *
sc_acceptor_new (ScConfig *config, GMainContext *context, GError **error)
{
	g_autoptr(ScSpool) spool = sc_spool_open_full (config->spool, config->busy_timeout,
							 SC_SPOOL_OPEN_FULL_SYNC_ONLY,
							 error);
	ScAcceptor *acceptor;

	if (spool == NULL)
		return NULL;
	acceptor = g_new0 (ScAcceptor, 1);
	g_mutex_init (&acceptor->lock);
	g_cond_init (&acceptor->wake);
	acceptor->pending = g_ptr_array_new_with_free_func (g_object_unref);
	acceptor->handed = g_ptr_array_new_with_free_func (g_object_unref);
	acceptor->context = g_main_context_ref (context);
	acceptor->config = sc_config_ref (config);
	acceptor->spool = g_steal_pointer (&spool);
	acceptor->linger = LINGER_USEC;
	acceptor->writer = g_thread_new ("acceptor", writer_thread, acceptor);
	return acceptor;
}

void
sc_acceptor_set_hook (ScAcceptor *acceptor, GMainContext *context, GSourceFunc hook, gpointer user_data)
{
	g_mutex_lock (&acceptor->lock);
	g_clear_pointer (&acceptor->hook_context, g_main_context_unref);
	acceptor->hook_context = context != NULL ? g_main_context_ref (context) : NULL;
	acceptor->hook = hook;
	acceptor->hook_data = user_data;
	g_mutex_unlock (&acceptor->lock);
}

void
sc_acceptor_set_handover (ScAcceptor *acceptor, const ScHandover *handover)
{
	g_mutex_lock (&acceptor->lock);
	g_free ((char *) acceptor->handover.owner);
	acceptor->handover = *handover;
	acceptor->handover.owner = g_strdup (handover->owner);
	g_mutex_unlock (&acceptor->lock);
}

void
sc_acceptor_set_linger (ScAcceptor *acceptor, gint64 usec)
{
	g_mutex_lock (&acceptor->lock);
	acceptor->linger = usec;
	g_mutex_unlock (&acceptor->lock);
}

void
sc_acceptor_set_config (ScAcceptor *acceptor, ScConfig *config)
{
	g_mutex_lock (&acceptor->lock);
	sc_config_unref (acceptor->config);
	acceptor->config = sc_config_ref (config);
	g_mutex_unlock (&acceptor->lock);
}

void
sc_acceptor_accept_async (ScAcceptor *acceptor,
			  const ScSubmission *submission,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data)
{
	g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
	g_autoptr(ScConfig) config = NULL;
	g_autoptr(GError) error = NULL;
	ScPrepared *prepared;

	g_mutex_lock (&acceptor->lock);
	config = sc_config_ref (acceptor->config);
	g_mutex_unlock (&acceptor->lock);
	prepared = sc_ingress_prepare (config, submission, &error);
	if (prepared == NULL) {
		g_task_return_error (task, g_steal_pointer (&error));
		return;
	}
	g_task_set_task_data (task, prepared, (GDestroyNotify) sc_prepared_free);
	g_mutex_lock (&acceptor->lock);
	if (acceptor->stopping) {
		g_mutex_unlock (&acceptor->lock);
		return_error (task, SC_INGRESS_ERROR_SPOOL_BUSY, _("stagecoach is stopping"));
		return;
	}
	g_ptr_array_add (acceptor->pending, g_steal_pointer (&task));
	if (acceptor->handover_source == NULL) {
		acceptor->handover_source = g_idle_source_new ();
		g_source_set_priority (acceptor->handover_source, G_PRIORITY_DEFAULT_IDLE);
		g_source_set_callback (acceptor->handover_source, handover_cb, acceptor, NULL);
		g_source_attach (acceptor->handover_source, acceptor->context);
	}
	g_mutex_unlock (&acceptor->lock);
}

ScAccepted *
sc_acceptor_accept_finish (ScAcceptor *acceptor, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
	return g_task_propagate_pointer (G_TASK (result), error);
}

void
sc_acceptor_stop (ScAcceptor *acceptor)
{
	GThread *writer;
	GSource *source;

	g_mutex_lock (&acceptor->lock);
	acceptor->stopping = TRUE;
	writer = g_steal_pointer (&acceptor->writer);
	source = g_steal_pointer (&acceptor->handover_source);
	g_cond_signal (&acceptor->wake);
	g_mutex_unlock (&acceptor->lock);
	if (source != NULL) {
		g_source_destroy (source);
		g_source_unref (source);
	}
	/* what was queued before the stop is committed; its answers wait on
	 * their callers' contexts */
	if (writer != NULL)
		g_thread_join (writer);
}

void
sc_acceptor_free (ScAcceptor *acceptor)
{
	if (acceptor == NULL)
		return;
	sc_acceptor_stop (acceptor);
	g_ptr_array_unref (acceptor->pending);
	g_ptr_array_unref (acceptor->handed);
	g_main_context_unref (acceptor->context);
	sc_config_unref (acceptor->config);
	g_clear_pointer (&acceptor->hook_context, g_main_context_unref);
	g_free ((char *) acceptor->handover.owner);
	sc_spool_close (acceptor->spool);
	g_cond_clear (&acceptor->wake);
	g_mutex_clear (&acceptor->lock);
	g_free (acceptor);
}
