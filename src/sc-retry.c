/* sc-retry.c — exponential backoff with jitter, and the give-up rule.
 *
 * Jitter spreads retries of messages that failed together (a relay outage)
 * so they do not return as one burst.  Age counts from the start of the
 * current cycle: an operator's retry gives a message a fresh lifetime.
 */
#include "config.h"

#include "sc-retry.h"

#include <math.h>

gint64
sc_retry_delay (const ScRetryPolicy *policy, guint failures, double random01)
{
	double delay;
	double shake;

	g_return_val_if_fail (policy != NULL, 0);
	if (failures < 1)
		failures = 1;
	delay = (double) policy->initial * pow (policy->factor, (double) (failures - 1));
	if (!(delay < (double) policy->max_delay)) /* also catches inf */
		delay = (double) policy->max_delay;
	shake = 1.0 + policy->jitter * (2.0 * CLAMP (random01, 0.0, 1.0) - 1.0);
	delay *= shake;
	return delay < 0.0 ? 0 : (gint64) delay;
}

gboolean
sc_retry_next_attempt (const ScRetryPolicy *policy,
		       guint failures,
		       gint64 cycle_started_at,
		       gint64 now,
		       double random01,
		       gint64 *out_next_attempt_at)
{
	gint64 deadline;
	gint64 next;

	g_return_val_if_fail (policy != NULL, FALSE);
	if (policy->max_attempts > 0 && failures >= policy->max_attempts)
		return FALSE;
	deadline = cycle_started_at + policy->max_age;
	if (now >= deadline)
		return FALSE;
	next = now + sc_retry_delay (policy, failures, random01);
	*out_next_attempt_at = MIN (next, deadline);
	return TRUE;
}
