/* sc-timer.c — see sc-timer.h.  The ready time disarms itself when it
 * fires, so the callback's return value only decides whether the source
 * stays attached. */
#include "config.h"

#include "sc-timer.h"

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
	g_source_set_ready_time (source, -1);
	return callback (user_data);
}

static GSourceFuncs timer_funcs = {
    .dispatch = timer_dispatch,
};

GSource *
sc_timer_source_new (GSourceFunc callback, gpointer user_data, const char *static_name)
{
	GSource *source = g_source_new (&timer_funcs, sizeof (GSource));

	g_source_set_callback (source, callback, user_data, NULL);
	g_source_set_static_name (source, static_name);
	g_source_set_ready_time (source, -1);
	return source;
}

void
sc_timer_source_arm (GSource *source, gint64 delay)
{
	if (delay == -1) {
		g_source_set_ready_time (source, -1);
		return;
	}
	g_source_set_ready_time (source, g_get_monotonic_time () + MAX (delay, 0));
}
