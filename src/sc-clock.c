/* sc-clock.c — system and fixed clocks behind one handle. */
#include "config.h"

#include "sc-clock.h"

struct _ScClock {
	gint ref_count;
	gboolean fixed;
	gint64 now; /* fixed clocks only; accessed atomically */
};

ScClock *
sc_clock_new_system (void)
{
	ScClock *clock = g_new0 (ScClock, 1);
	clock->ref_count = 1;
	return clock;
}

ScClock *
sc_clock_new_fixed (gint64 now)
{
	ScClock *clock = sc_clock_new_system ();
	clock->fixed = TRUE;
	clock->now = now;
	return clock;
}

ScClock *
sc_clock_ref (ScClock *clock)
{
	g_return_val_if_fail (clock != NULL, NULL);
	g_atomic_int_inc (&clock->ref_count);
	return clock;
}

void
sc_clock_unref (ScClock *clock)
{
	if (clock != NULL && g_atomic_int_dec_and_test (&clock->ref_count))
		g_free (clock);
}

gint64
sc_clock_now (ScClock *clock)
{
	g_return_val_if_fail (clock != NULL, 0);
	if (clock->fixed)
		return __atomic_load_n (&clock->now, __ATOMIC_SEQ_CST);
	return g_get_real_time ();
}

void
sc_clock_set (ScClock *clock, gint64 now)
{
	g_return_if_fail (clock != NULL && clock->fixed);
	__atomic_store_n (&clock->now, now, __ATOMIC_SEQ_CST);
}

void
sc_clock_advance (ScClock *clock, gint64 delta)
{
	g_return_if_fail (clock != NULL && clock->fixed);
	__atomic_add_fetch (&clock->now, delta, __ATOMIC_SEQ_CST);
}

char *
sc_time_to_iso8601 (gint64 time)
{
	g_autoptr(GDateTime) date_time = NULL;
	g_autofree char *seconds = NULL;

	if (time <= 0)
		return NULL;
	date_time = g_date_time_new_from_unix_utc (time / G_USEC_PER_SEC);
	if (date_time == NULL)
		return NULL;
	seconds = g_date_time_format (date_time, "%Y-%m-%dT%H:%M:%S");
	return g_strdup_printf ("%s.%06" G_GINT64_FORMAT "Z", seconds, time % G_USEC_PER_SEC);
}
