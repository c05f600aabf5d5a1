/* test-retry.c — backoff, jitter and the give-up rule. */
#include "config.h"

#include "sc-retry.h"

#define SEC G_GINT64_CONSTANT (1000000)
#define MINUTE (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)
/* 2026-11-23T12:00:00Z */
#define T0 (G_GINT64_CONSTANT (1795435200) * SEC)

static ScRetryPolicy
default_policy (double jitter)
{
	ScRetryPolicy policy = {
	    .initial = 30 * SEC,
	    .factor = 2.0,
	    .max_delay = HOUR,
	    .jitter = jitter,
	    .max_age = 5 * DAY,
	    .max_attempts = 0,
	};
	return policy;
}

static void
test_schedule_no_jitter (void)
{
	ScRetryPolicy policy = default_policy (0.0);
	static const gint64 expected[] = {
	    30 * SEC, 60 * SEC, 120 * SEC, 240 * SEC, 480 * SEC, 960 * SEC, 1920 * SEC,
	    HOUR, /* 3840 s capped */
	    HOUR, HOUR,
	};

	for (guint n = 1; n <= G_N_ELEMENTS (expected); n++) {
		/* without jitter, random01 changes nothing */
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.0), ==, expected[n - 1]);
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.5), ==, expected[n - 1]);
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.999), ==, expected[n - 1]);
	}
	/* far along the exponent overflows to inf: still the cap */
	g_assert_cmpint (sc_retry_delay (&policy, 2000, 0.5), ==, HOUR);
	g_assert_cmpint (sc_retry_delay (&policy, G_MAXUINT, 0.5), ==, HOUR);
	/* n = 0 is read as the first failure */
	g_assert_cmpint (sc_retry_delay (&policy, 0, 0.5), ==, 30 * SEC);
}

static void
test_schedule_factor (void)
{
	ScRetryPolicy policy = default_policy (0.0);

	policy.factor = 1.0; /* constant delay */
	for (guint n = 1; n < 50; n++)
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.3), ==, 30 * SEC);
	policy.factor = 3.0;
	policy.initial = 10 * SEC;
	policy.max_delay = 100 * SEC;
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.5), ==, 10 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 2, 0.5), ==, 30 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 3, 0.5), ==, 90 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 4, 0.5), ==, 100 * SEC);
	/* max-delay equal to initial: flat */
	policy.max_delay = policy.initial;
	g_assert_cmpint (sc_retry_delay (&policy, 7, 0.5), ==, 10 * SEC);
}

static void
test_jitter_bounds (void)
{
	ScRetryPolicy policy = default_policy (0.1);

	for (guint n = 1; n <= 12; n++) {
		ScRetryPolicy plain = default_policy (0.0);
		gint64 base = sc_retry_delay (&plain, n, 0.5);
		gint64 low = sc_retry_delay (&policy, n, 0.0);
		gint64 mid = sc_retry_delay (&policy, n, 0.5);
		gint64 high = sc_retry_delay (&policy, n, 0.999);

		/* random01 = 0 is the lower bound, 0.5 the centre, → 1 the upper */
		g_assert_cmpint (low, ==, base * 9 / 10);
		g_assert_cmpint (mid, ==, base);
		g_assert_cmpint (high, >, base);
		g_assert_cmpint (high, <, base * 11 / 10);
		g_assert_cmpint (high, >=, (gint64) ((double) base * 1.0998) - 1);
		/* monotonic in random01 */
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.25), >, low);
		g_assert_cmpint (sc_retry_delay (&policy, n, 0.25), <, mid);
	}
	/* first retry with ±10 %: 27 s … 33 s */
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.0), ==, 27 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.999), <, 33 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.999), >, 32 * SEC);
	/* values outside [0, 1) are clamped, never beyond ±jitter */
	g_assert_cmpint (sc_retry_delay (&policy, 1, -5.0), ==, 27 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 7.0), ==, 33 * SEC);
	/* full jitter (1.0): 0 … 2× */
	policy.jitter = 1.0;
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.0), ==, 0);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.5), ==, 30 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.999), <, 60 * SEC);
	g_assert_cmpint (sc_retry_delay (&policy, 1, 0.999), >, 59 * SEC);
}

static void
test_next_attempt_schedule (void)
{
	ScRetryPolicy policy = default_policy (0.0);
	gint64 next = 0;

	g_assert_true (sc_retry_next_attempt (&policy, 1, T0, T0 + SEC, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + SEC + 30 * SEC);
	g_assert_true (sc_retry_next_attempt (&policy, 4, T0, T0 + HOUR, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + HOUR + 240 * SEC);
	g_assert_true (sc_retry_next_attempt (&policy, 100, T0, T0 + 2 * DAY, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + 2 * DAY + HOUR);
}

static void
test_max_attempts (void)
{
	ScRetryPolicy policy = default_policy (0.0);
	gint64 next = -1;

	policy.max_attempts = 3;
	g_assert_true (sc_retry_next_attempt (&policy, 1, T0, T0, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + 30 * SEC);
	g_assert_true (sc_retry_next_attempt (&policy, 2, T0, T0 + MINUTE, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + MINUTE + 60 * SEC);
	next = -1;
	/* the third failure is the last: dead, and the out value is untouched */
	g_assert_false (sc_retry_next_attempt (&policy, 3, T0, T0 + 3 * MINUTE, 0.5, &next));
	g_assert_cmpint (next, ==, -1);
	g_assert_false (sc_retry_next_attempt (&policy, 4, T0, T0 + 3 * MINUTE, 0.5, &next));
	/* max-attempts = 1: the first failure is final */
	policy.max_attempts = 1;
	g_assert_false (sc_retry_next_attempt (&policy, 1, T0, T0, 0.5, &next));
	/* 0: only max-age limits */
	policy.max_attempts = 0;
	g_assert_true (sc_retry_next_attempt (&policy, 10000, T0, T0 + DAY, 0.5, &next));
	g_assert_cmpint (next, ==, T0 + DAY + HOUR);
}

static void
test_max_age_deadline (void)
{
	ScRetryPolicy policy = default_policy (0.0);
	gint64 deadline = T0 + 5 * DAY;
	gint64 next = -1;

	/* the regular delay would overshoot the deadline: pulled in to it */
	g_assert_true (sc_retry_next_attempt (&policy, 50, T0, deadline - 10 * MINUTE, 0.5, &next));
	g_assert_cmpint (next, ==, deadline);
	g_assert_true (sc_retry_next_attempt (&policy, 50, T0, deadline - 1, 0.5, &next));
	g_assert_cmpint (next, ==, deadline);
	/* a delay that ends exactly at the deadline is unchanged */
	g_assert_true (sc_retry_next_attempt (&policy, 50, T0, deadline - HOUR, 0.5, &next));
	g_assert_cmpint (next, ==, deadline);
	/* one that ends before it too */
	g_assert_true (sc_retry_next_attempt (&policy, 50, T0, deadline - HOUR - 1, 0.5, &next));
	g_assert_cmpint (next, ==, deadline - 1);
	/* jitter never pushes past the deadline either */
	policy.jitter = 0.5;
	g_assert_true (sc_retry_next_attempt (&policy, 50, T0, deadline - HOUR, 0.999, &next));
	g_assert_cmpint (next, ==, deadline);
	policy.jitter = 0.0;
	/* at and after the deadline: dead */
	next = -1;
	g_assert_false (sc_retry_next_attempt (&policy, 50, T0, deadline, 0.5, &next));
	g_assert_false (sc_retry_next_attempt (&policy, 1, T0, deadline, 0.5, &next));
	g_assert_false (sc_retry_next_attempt (&policy, 50, T0, deadline + 1, 0.5, &next));
	g_assert_false (sc_retry_next_attempt (&policy, 1, T0, deadline + DAY, 0.5, &next));
	g_assert_cmpint (next, ==, -1);
	/* age counts from the cycle's start: a new cycle lives again */
	g_assert_true (sc_retry_next_attempt (&policy, 1, deadline, deadline, 0.5, &next));
	g_assert_cmpint (next, ==, deadline + 30 * SEC);
}

/* A message that fails every time: the tries follow the schedule, the last
 * one lands exactly on the deadline, and the failure there is final. */
static void
test_whole_life (void)
{
	ScRetryPolicy policy = default_policy (0.0);
	gint64 now = T0;
	gint64 last_try = T0;
	guint failures = 0;
	gint64 next = 0;

	policy.max_age = DAY;
	for (;;) {
		failures++;
		if (!sc_retry_next_attempt (&policy, failures, T0, now, 0.5, &next))
			break;
		g_assert_cmpint (next, >, now);
		g_assert_cmpint (next, <=, T0 + DAY);
		g_assert_cmpint (next - now, <=, HOUR);
		now = last_try = next;
		g_assert_cmpuint (failures, <, 1000);
	}
	g_assert_cmpint (last_try, ==, T0 + DAY);
	g_assert_cmpint (now, ==, T0 + DAY);
	/* 30+60+…+1920 s = 3810 s in 7 tries, then hourly, then the deadline */
	g_assert_cmpuint (failures, ==, 7 + (guint) ((DAY - 3810 * SEC) / HOUR) + 1 + 1);
}

static void
test_null_policy (void)
{
	if (g_test_subprocess ()) {
		gint64 next = 0;
		(void) sc_retry_next_attempt (NULL, 1, T0, T0, 0.5, &next);
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed ();
	g_test_trap_assert_stderr ("*CRITICAL*policy != NULL*");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

	g_test_add_func ("/retry/delay/no-jitter", test_schedule_no_jitter);
	g_test_add_func ("/retry/delay/factor", test_schedule_factor);
	g_test_add_func ("/retry/delay/jitter-bounds", test_jitter_bounds);
	g_test_add_func ("/retry/next/schedule", test_next_attempt_schedule);
	g_test_add_func ("/retry/next/max-attempts", test_max_attempts);
	g_test_add_func ("/retry/next/max-age-deadline", test_max_age_deadline);
	g_test_add_func ("/retry/next/whole-life", test_whole_life);
	g_test_add_func ("/retry/next/null-policy", test_null_policy);
	return g_test_run ();
}
