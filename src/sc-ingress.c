/* sc-ingress.c — the ingress thread: its own main loop, the acceptor
 * and the listeners, so accepting mail never waits behind the runner's
 * work on the main thread (and the runner never behind a slow client).
 */
#include "config.h"

#include "sc-handoff-server.h"
#include "sc-i18n.h"
#include "sc-ingress-private.h"
#include "sc-smtp-server.h"

struct _ScIngress {
	GThread *thread;
	GMainContext *context;   /* (owned) the ingress thread's */
	GMainLoop *loop;         /* (owned) */
	ScConfig *config;        /* (owned) the one it started with */
	ScAcceptor *acceptor;    /* (owned) created and freed on the thread */
	/* doors, created and freed on the thread */
	ScSmtpServer *smtp;      /* (owned) (nullable) [ingress] smtp= / lmtp= */
	ScHandoffServer *handoff; /* (owned) (nullable) */

	GMutex lock;
	GCond started_cond;
	gboolean started;
	GError *start_error;     /* (nullable) (owned) */
};

/* On the thread: what needs its context as the thread-default one. */
static gboolean
start_doors (ScIngress *ingress, GError **error)
{
	ingress->acceptor = sc_acceptor_new (ingress->config, ingress->context, error);
	if (ingress->acceptor == NULL)
		return FALSE;
	if (ingress->config->ingress.smtp != NULL || ingress->config->ingress.lmtp != NULL) {
		ingress->smtp = sc_smtp_server_new (ingress->config, ingress->acceptor, error);
		if (ingress->smtp == NULL)
			return FALSE;
	}
	{
		/* without it inject and sendmail still work, writing the spool themselves */
		g_autoptr(GError) handoff_error = NULL;
		ingress->handoff = sc_handoff_server_new (ingress->config, ingress->acceptor, &handoff_error);
		if (ingress->handoff == NULL)
			g_warning ("hand-off socket: %s", handoff_error->message);
	}
	return TRUE;
}

static gboolean
flush_tick (gpointer user_data)
{
	return G_SOURCE_CONTINUE; /* only wakes the iteration below */
}

/* Idle sessions' 421 4.3.2 (and answers still on their way) are written
 * before the server is freed, which would cancel them: a loaded machine
 * needs more than the iterations that happen to be ready at once (the
 * ingress-smtp /stop case saw the connection close without its 421 under
 * AddressSanitizer).  At most two seconds: a client that does not read
 * does not hold the daemon's exit. */
static void
flush_smtp (ScIngress *ingress)
{
	gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
	GSource *tick = g_timeout_source_new (20);

	g_source_set_callback (tick, flush_tick, NULL, NULL);
	g_source_attach (tick, ingress->context);
	while (sc_smtp_server_is_flushing (ingress->smtp) && g_get_monotonic_time () < deadline)
		g_main_context_iteration (ingress->context, TRUE);
	g_source_destroy (tick);
	g_source_unref (tick);
}

static void
stop_doors (ScIngress *ingress)
{
	/* first no new connections and messages, then the last commit */
	if (ingress->smtp != NULL)
		sc_smtp_server_stop (ingress->smtp);
	if (ingress->handoff != NULL)
		sc_handoff_server_stop (ingress->handoff);
	if (ingress->acceptor != NULL) {
		sc_acceptor_stop (ingress->acceptor);
		/* the answers to what was committed reach their clients */
		for (guint i = 0; i < 100 && g_main_context_iteration (ingress->context, FALSE); i++)
			;
	}
	if (ingress->smtp != NULL)
		flush_smtp (ingress);
	g_clear_pointer (&ingress->smtp, sc_smtp_server_free);
	g_clear_pointer (&ingress->acceptor, sc_acceptor_free);
	g_clear_pointer (&ingress->handoff, sc_handoff_server_free);
}

static gpointer
ingress_thread (gpointer user_data)
{
	ScIngress *ingress = user_data;
	g_autoptr(GError) error = NULL;
	gboolean ok;

	g_main_context_push_thread_default (ingress->context);
	ok = start_doors (ingress, &error);
	g_mutex_lock (&ingress->lock);
	ingress->started = TRUE;
	ingress->start_error = g_steal_pointer (&error);
	g_cond_signal (&ingress->started_cond);
	g_mutex_unlock (&ingress->lock);
	if (ok)
		g_main_loop_run (ingress->loop);
	stop_doors (ingress);
	/* answers the last GTasks queued on this context */
	while (g_main_context_iteration (ingress->context, FALSE))
		;
	g_main_context_pop_thread_default (ingress->context);
	return NULL;
}

ScIngress *
sc_ingress_new (ScConfig *config, GError **error)
{
	g_autoptr(ScIngress) ingress = g_new0 (ScIngress, 1);

	g_mutex_init (&ingress->lock);
	g_cond_init (&ingress->started_cond);
	ingress->config = sc_config_ref (config);
	ingress->context = g_main_context_new ();
	ingress->loop = g_main_loop_new (ingress->context, FALSE);
	ingress->thread = g_thread_new ("ingress", ingress_thread, ingress);
	g_mutex_lock (&ingress->lock);
	while (!ingress->started)
		g_cond_wait (&ingress->started_cond, &ingress->lock);
	g_mutex_unlock (&ingress->lock);
	if (ingress->start_error != NULL) {
		g_propagate_error (error, g_steal_pointer (&ingress->start_error));
		return NULL;
	}
	return g_steal_pointer (&ingress);
}

ScAcceptor *
sc_ingress_get_acceptor (ScIngress *ingress)
{
	return ingress->acceptor;
}

GMainContext *
sc_ingress_get_context (ScIngress *ingress)
{
	return ingress->context;
}

void
sc_ingress_set_accepted_hook (ScIngress *ingress, GSourceFunc hook, gpointer user_data)
{
	g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
	sc_acceptor_set_hook (ingress->acceptor, context, hook, user_data);
}

void
sc_ingress_set_handover (ScIngress *ingress, const ScHandover *handover)
{
	sc_acceptor_set_handover (ingress->acceptor, handover);
}

typedef struct {
	ScIngress *ingress;
	ScConfig *config;
} SetConfig;

static gboolean
set_config_cb (gpointer user_data)
{
	SetConfig *set = user_data;

	sc_acceptor_set_config (set->ingress->acceptor, set->config);
	if (set->ingress->smtp != NULL)
		sc_smtp_server_set_config (set->ingress->smtp, set->config);
	if (set->ingress->handoff != NULL)
		sc_handoff_server_set_config (set->ingress->handoff, set->config);
	sc_config_unref (set->config);
	g_free (set);
	return G_SOURCE_REMOVE;
}

void
sc_ingress_set_config (ScIngress *ingress, ScConfig *config)
{
	SetConfig *set = g_new0 (SetConfig, 1);

	set->ingress = ingress;
	set->config = sc_config_ref (config);
	g_main_context_invoke (ingress->context, set_config_cb, set);
}

static gboolean
quit_cb (gpointer user_data)
{
	ScIngress *ingress = user_data;
	g_main_loop_quit (ingress->loop);
	return G_SOURCE_REMOVE;
}

void
sc_ingress_free (ScIngress *ingress)
{
	if (ingress == NULL)
		return;
	if (ingress->thread != NULL) {
		g_main_context_invoke (ingress->context, quit_cb, ingress);
		g_thread_join (ingress->thread);
	}
	g_clear_error (&ingress->start_error);
	g_main_loop_unref (ingress->loop);
	g_main_context_unref (ingress->context);
	sc_config_unref (ingress->config);
	g_cond_clear (&ingress->started_cond);
	g_mutex_clear (&ingress->lock);
	g_free (ingress);
}
