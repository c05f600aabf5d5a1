/* sc-timer.h — one long-lived GSource that fires once at a chosen time and
 * then sleeps until re-armed: the "sleep until the next due thing" timer of
 * the runner and the notifier (never a polling tick). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Disarmed; attach it to a context yourself. (transfer full) */
GSource *sc_timer_source_new (GSourceFunc callback, gpointer user_data, const char *static_name);
/* Fire after @delay µs (≤ 0: at the next iteration); -1 disarms. */
void sc_timer_source_arm (GSource *source, gint64 delay);

G_END_DECLS
