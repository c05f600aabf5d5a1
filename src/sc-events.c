/* sc-events.c — a process-wide queue of admin events (see sc-events.h).
 * An event that cannot be written is logged and dropped: it describes a
 * passing state that the dashboard also shows, never a message. */
#include "config.h"

#include "sc-events.h"

typedef struct {
	char *kind;
	char *detail;
} ScEvent;

static GAsyncQueue *
event_queue (void)
{
	static gsize once = 0;
	static GAsyncQueue *queue;

	if (g_once_init_enter (&once)) {
		queue = g_async_queue_new ();
		g_once_init_leave (&once, 1);
	}
	return queue;
}

void
sc_events_push (const char *kind, const char *detail)
{
	ScEvent *event = g_new0 (ScEvent, 1);

	event->kind = g_strdup (kind);
	event->detail = g_strdup (detail);
	g_async_queue_push (event_queue (), event);
}

guint
sc_events_drain (ScSpool *spool, gint64 now)
{
	ScEvent *event;
	guint count = 0;

	while ((event = g_async_queue_try_pop (event_queue ())) != NULL) {
		g_autoptr(GError) error_local = NULL;
		if (!sc_spool_notify_insert_event (spool, event->kind, event->detail, now, &error_local))
			g_warning ("cannot record %s: %s", event->kind, error_local->message);
		else
			count++;
		g_free (event->kind);
		g_free (event->detail);
		g_free (event);
	}
	return count;
}
