/* sc-retry.h — when to try a failed message again, or to give up.  Pure. */
#pragma once

#include "sc-config.h"

G_BEGIN_DECLS

/* The delay before try n+1 after the n-th failure in a cycle (n ≥ 1):
 * min(initial × factor^(n−1), max-delay), shaken by ±jitter.  @random01 is
 * a number in [0, 1) (the runner passes g_random_double(), tests a fixed one). */
gint64 sc_retry_delay (const ScRetryPolicy *policy, guint failures, double random01);

/* After the @failures-th transient failure at @now of a cycle that started at
 * @cycle_started_at: FALSE when the message must go dead (out of attempts, or
 * out of time), else TRUE with the time of the next try.  The last try is
 * pulled in to the max-age deadline, so a message gets one attempt at the
 * end of its life instead of dying early or living on past it. */
gboolean sc_retry_next_attempt (const ScRetryPolicy *policy,
				guint failures,
				gint64 cycle_started_at,
				gint64 now,
				double random01,
				gint64 *out_next_attempt_at);

G_END_DECLS
