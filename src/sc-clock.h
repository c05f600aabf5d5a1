/* sc-clock.h — the time source, injectable so tests never sleep.
 *
 * Times are microseconds since the Unix epoch (wall clock, UTC), the unit
 * the spool stores.  A fixed clock only moves when a test advances it.
 * Safe to read from any thread.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScClock ScClock;

ScClock *sc_clock_new_system (void);
ScClock *sc_clock_new_fixed (gint64 now);
ScClock *sc_clock_ref (ScClock *clock);
void sc_clock_unref (ScClock *clock);
gint64 sc_clock_now (ScClock *clock);
/* Fixed clocks only. */
void sc_clock_set (ScClock *clock, gint64 now);
void sc_clock_advance (ScClock *clock, gint64 delta);

/* (transfer full): "2026-11-23T12:00:00.123456Z", or NULL for 0. */
char *sc_time_to_iso8601 (gint64 time);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScClock, sc_clock_unref)

G_END_DECLS
