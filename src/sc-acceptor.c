/* sc-acceptor.c — one writer for everything the doors accept: a queue of
 * checked messages committed together on the ingress thread.
 *
 * A submission is checked on the caller's thread, then queued; the first
 * one queued attaches an idle source at idle priority: it runs once no
 * connection has input waiting, so every session that could still reach
 * its final "." in this round does, and all of them share one commit.
 * It cannot starve: each session then waits for its answer, so at most
 * one message per connection comes before it.  The idle commits the
 * whole queue in one transaction and answers each caller.  An idle
 * daemon commits each message at once, a busy one many per fsync, with
 * no timer anywhere.  (At default priority the commit ran beside the
 * first ready socket: about one message per fsync with 8 sessions.)
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-ingress-private.h"

/* pairs forgotten per prune (each prune is one short write transaction) */
#define PRUNE_BATCH 10000
#define PRUNE_INTERVAL_SECONDS 60

struct _ScAcceptor {
	GMutex lock;
	GPtrArray *pending;       /* (owned) (element-type GTask) under lock; task data: ScPrepared */
	GSource *commit_source;   /* (nullable) (owned) under lock */
	ScConfig *config;         /* (owned) under lock */
	gboolean stopping;        /* under lock */
	GMainContext *context;    /* (owned) the ingress thread's */
	ScSpool *spool;           /* (owned) used on the ingress thread only */
	GSource *prune_source;    /* (owned) */
	GSourceFunc hook;         /* (nullable) on @hook_context after a commit that stored */
	gpointer hook_data;
	GMainContext *hook_context; /* (owned) (nullable) */
};

static void
return_error (GTask *task, ScIngressError code, const char *message)
{
	g_task_return_new_error (task, SC_INGRESS_ERROR, code, "%s", message);
}

static gboolean
commit_cb (gpointer user_data)
{
	ScAcceptor *acceptor = user_data;
	g_autoptr(GPtrArray) batch = NULL;
	g_autoptr(ScConfig) config = NULL;
	g_autofree ScPrepared **prepared = NULL;
	g_autofree ScAccepted **accepted = NULL;
	g_autoptr(GError) error = NULL;
	guint stored = 0;

	g_mutex_lock (&acceptor->lock);
	batch = g_steal_pointer (&acceptor->pending);
	acceptor->pending = g_ptr_array_new_with_free_func (g_object_unref);
	g_clear_pointer (&acceptor->commit_source, g_source_unref);
	config = sc_config_ref (acceptor->config);
	g_mutex_unlock (&acceptor->lock);
	if (batch->len == 0)
		return G_SOURCE_REMOVE;

	prepared = g_new0 (ScPrepared *, batch->len);
	accepted = g_new0 (ScAccepted *, batch->len);
	for (guint i = 0; i < batch->len; i++)
		prepared[i] = g_task_get_task_data (batch->pdata[i]);
	if (!sc_ingress_store (acceptor->spool, prepared, batch->len, config->ingress.dedupe_window,
			       g_get_real_time (), accepted, &error)) {
		g_warning ("ingress: %u message(s) not accepted, the spool failed: %s", batch->len,
			   error->message);
		for (guint i = 0; i < batch->len; i++)
			g_task_return_error (batch->pdata[i], g_error_copy (error));
		return G_SOURCE_REMOVE;
	}
	for (guint i = 0; i < batch->len; i++) {
		const ScPrepared *p = prepared[i];
		ScAccepted *a = accepted[i];
		if (a->queue_id != NULL)
			stored++;
		g_info ("ingress %s%s%s: %s list=%s message-id=%s size=%" G_GSIZE_FORMAT
			" recipients=%u duplicates=%u",
			p->door, p->peer != NULL ? " from " : "", p->peer != NULL ? p->peer : "",
			a->queue_id != NULL ? a->queue_id : "(all duplicates)", a->list_id,
			a->message_id, g_bytes_get_size (p->raw), a->n_recipients, a->n_duplicates);
		g_task_return_pointer (batch->pdata[i], a, (GDestroyNotify) sc_accepted_free);
	}
	if (stored > 0 && acceptor->hook != NULL)
		g_main_context_invoke (acceptor->hook_context, acceptor->hook, acceptor->hook_data);
	return G_SOURCE_REMOVE;
}

static gboolean
prune_cb (gpointer user_data)
{
	ScAcceptor *acceptor = user_data;
	g_autoptr(ScConfig) config = NULL;
	g_autoptr(GError) error = NULL;
	guint pruned = 0;

	g_mutex_lock (&acceptor->lock);
	config = sc_config_ref (acceptor->config);
	g_mutex_unlock (&acceptor->lock);
	/* a window turned off keeps nothing */
	if (!sc_spool_prune_accepted (acceptor->spool,
				      g_get_real_time () - config->ingress.dedupe_window,
				      PRUNE_BATCH, &pruned, &error))
		g_warning ("ingress: forgetting old accepted Message-IDs failed (tried again later): %s",
			   error->message);
	return G_SOURCE_CONTINUE;
}

ScAcceptor *
sc_acceptor_new (ScConfig *config, GMainContext *context, GError **error)
{
	g_autoptr(ScSpool) spool = sc_spool_open (config->spool, config->busy_timeout, error);
	ScAcceptor *acceptor;

	if (spool == NULL)
		return NULL;
	acceptor = g_new0 (ScAcceptor, 1);
	g_mutex_init (&acceptor->lock);
	acceptor->pending = g_ptr_array_new_with_free_func (g_object_unref);
	acceptor->config = sc_config_ref (config);
	acceptor->context = g_main_context_ref (context);
	acceptor->spool = g_steal_pointer (&spool);
	acceptor->prune_source = g_timeout_source_new_seconds (PRUNE_INTERVAL_SECONDS);
	g_source_set_callback (acceptor->prune_source, prune_cb, acceptor, NULL);
	g_source_attach (acceptor->prune_source, context);
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
	if (acceptor->commit_source == NULL) {
		acceptor->commit_source = g_idle_source_new ();
		g_source_set_priority (acceptor->commit_source, G_PRIORITY_DEFAULT_IDLE);
		g_source_set_callback (acceptor->commit_source, commit_cb, acceptor, NULL);
		g_source_attach (acceptor->commit_source, acceptor->context);
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
	GSource *source;

	g_mutex_lock (&acceptor->lock);
	acceptor->stopping = TRUE;
	source = g_steal_pointer (&acceptor->commit_source);
	g_mutex_unlock (&acceptor->lock);
	if (source != NULL) {
		g_source_destroy (source);
		g_source_unref (source);
	}
	/* what was queued before the stop is committed and answered */
	(void) commit_cb (acceptor);
}

void
sc_acceptor_free (ScAcceptor *acceptor)
{
	if (acceptor == NULL)
		return;
	sc_acceptor_stop (acceptor);
	g_source_destroy (acceptor->prune_source);
	g_source_unref (acceptor->prune_source);
	g_ptr_array_unref (acceptor->pending);
	sc_config_unref (acceptor->config);
	g_clear_pointer (&acceptor->hook_context, g_main_context_unref);
	g_main_context_unref (acceptor->context);
	sc_spool_close (acceptor->spool);
	g_mutex_clear (&acceptor->lock);
	g_free (acceptor);
}
