/* sc-deliver-mailer.c — per-mailer circuit breakers and connection pools.
 *
 * Circuit: after `circuit-failures` consecutive mailer-level failures
 * (connect, TLS, AUTH, server-wide 4xx/5xx) the mailer is skipped for
 * `circuit-cooldown`, so a dead relay does not add its timeout to every
 * message.  When the cool-down is over, one transaction is let through
 * (half-open); its success closes the circuit, its failure opens it again.
 * The cool-down is measured on the monotonic clock: a wall clock stepped
 * forward or back (NTP, an operator) neither ends it early nor stretches
 * it; only what is shown to people is converted to wall-clock time.
 *
 * Pool: idle ScSmtpConnection handles are kept per mailer so consecutive
 * messages reuse the TCP/TLS connection (no new EHLO), and no more than
 * `max-connections` transactions run against one mailer at once; threads
 * waiting for a slot get it in the order they asked.
 *
 * Must never: hold the lock while talking SMTP.
 */
#include "config.h"

#include "sc-deliver-mailer.h"

#include "sc-events.h"

struct _ScMailerState {
	char *name;
	char *fingerprint;     /* url + TLS + credentials settings: a change drops the pool */
	GMutex lock;
	GPtrArray *idle;       /* (element-type ScSmtpConnection) guarded by lock */
	guint in_use;          /* slots taken, granted waiters' included */
	guint max_connections; /* the mailer's, as its last acquire saw it */
	GQueue waiters;        /* (element-type PoolWaiter) first come, first served */
	guint consecutive_failures;
	gint64 open_until;     /* monotonic µs (g_get_monotonic_time), 0: closed */
	gboolean trial_running; /* half-open: one transaction is testing it */
	guint transactions;
	guint connects;
	guint failures;
	char *last_error;
};

/* One thread waiting for a slot of the pool, on its own stack: a release
 * wakes the one it grants, not every waiter. */
typedef struct {
	GCond granted_cond;
	gboolean granted; /* a slot was passed to it (counted in in_use) */
} PoolWaiter;

static GMutex registry_lock;
static GHashTable *registry; /* name → ScMailerState*, guarded by registry_lock */

static char *
fingerprint_for (const ScMailerConfig *mailer)
{
	return g_strdup_printf ("%s|%d|%d|%s|%s|%s", mailer->url, mailer->starttls,
				mailer->tls_verify, mailer->username != NULL ? mailer->username : "",
				mailer->password_file != NULL ? mailer->password_file : "",
				mailer->helo != NULL ? mailer->helo : "");
}

static void
state_free (ScMailerState *state)
{
	g_ptr_array_unref (state->idle);
	g_mutex_clear (&state->lock);
	g_free (state->name);
	g_free (state->fingerprint);
	g_free (state->last_error);
	g_free (state);
}

ScMailerState *
sc_mailer_state_get (const ScMailerConfig *mailer)
{
	ScMailerState *state;
	g_autofree char *fingerprint = fingerprint_for (mailer);
	g_autoptr(GPtrArray) stale = NULL; /* freed last, outside the locks */

	g_mutex_lock (&registry_lock);
	if (registry == NULL)
		registry = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) state_free);
	state = g_hash_table_lookup (registry, mailer->name);
	if (state == NULL) {
		state = g_new0 (ScMailerState, 1);
		state->name = g_strdup (mailer->name);
		state->fingerprint = g_steal_pointer (&fingerprint);
		state->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_smtp_connection_free);
		g_mutex_init (&state->lock);
		g_hash_table_insert (registry, state->name, state);
	} else {
		g_mutex_lock (&state->lock);
		if (strcmp (state->fingerprint, fingerprint) != 0) {
			/* reconfigured: old connections go to the old place,
			 * their QUITs after the locks (below) */
			stale = state->idle;
			state->idle = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_smtp_connection_free);
			g_free (state->fingerprint);
			state->fingerprint = g_steal_pointer (&fingerprint);
			state->consecutive_failures = 0;
			state->open_until = 0;
		}
		g_mutex_unlock (&state->lock);
	}
	g_mutex_unlock (&registry_lock);
	return state;
}

gboolean
sc_mailer_state_try_use (ScMailerState *state)
{
	gint64 now = g_get_monotonic_time ();
	gboolean usable;

	g_mutex_lock (&state->lock);
	if (state->open_until == 0) {
		usable = TRUE;
	} else if (now >= state->open_until && !state->trial_running) {
		state->trial_running = TRUE; /* half-open: this caller tests it */
		usable = TRUE;
	} else {
		usable = FALSE;
	}
	g_mutex_unlock (&state->lock);
	return usable;
}

/* The monotonic @open_until as a wall-clock time, for people. */
static gint64
wall_time_of (gint64 open_until)
{
	if (open_until == 0)
		return 0;
	return g_get_real_time () + (open_until - g_get_monotonic_time ());
}

gint64
sc_mailer_state_get_open_until (ScMailerState *state)
{
	gint64 open_until;

	g_mutex_lock (&state->lock);
	open_until = state->open_until;
	g_mutex_unlock (&state->lock);
	return wall_time_of (open_until);
}

gboolean
sc_mailer_state_is_open (const ScMailerConfig *mailer)
{
	g_autofree char *fingerprint = fingerprint_for (mailer);
	gint64 now = g_get_monotonic_time ();
	ScMailerState *state;
	gboolean open = FALSE;

	/* a lookup only: sc_mailer_state_get() would create the state, or
	 * drop a reconfigured mailer's connections (QUIT: network I/O) */
	g_mutex_lock (&registry_lock);
	state = registry != NULL ? g_hash_table_lookup (registry, mailer->name) : NULL;
	if (state != NULL) {
		g_mutex_lock (&state->lock);
		/* the same test as sc_mailer_state_try_use(), without taking
		 * the half-open trial */
		open = strcmp (state->fingerprint, fingerprint) == 0 && state->open_until != 0 &&
		       (now < state->open_until || state->trial_running);
		g_mutex_unlock (&state->lock);
	}
	g_mutex_unlock (&registry_lock);
	return open;
}

const ScMailerConfig *
sc_deliver_mailer_key_for_list (const ScConfig *config, const ScListConfig *list)
{
	g_autoptr(GPtrArray) mailers = sc_config_list_mailers (config, list);

	for (guint i = 0; i < mailers->len; i++) {
		const ScMailerConfig *mailer = mailers->pdata[i];

		if (!sc_mailer_state_is_open (mailer))
			return mailer;
	}
	return NULL;
}

/* Slots go to waiters in the order they came (under state->lock): a
 * thread that releases a connection and at once wants one again (the
 * next batch of a large message) queues behind those already waiting.
 * Without the queue it took the slot back before the waiter it woke
 * could run: in one crash-suite run 602 of 10,546 acquisitions waited
 * over 100 ms, the longest 414 ms, while messages beside them flowed. */
static void
grant_waiters (ScMailerState *state, guint max_connections)
{
	while (state->in_use < max_connections && !g_queue_is_empty (&state->waiters)) {
		PoolWaiter *waiter = g_queue_pop_head (&state->waiters);
		waiter->granted = TRUE;
		state->in_use++;
		g_cond_signal (&waiter->granted_cond);
	}
}

/* Under state->lock: takes a slot if one is free and nobody waits. */
static gboolean
take_free_slot (ScMailerState *state, const ScMailerConfig *mailer)
{
	state->max_connections = mailer->max_connections;
	if (state->in_use >= mailer->max_connections || !g_queue_is_empty (&state->waiters))
		return FALSE;
	state->in_use++;
	return TRUE;
}

/* With a slot taken and state->lock held, which it releases: an idle
 * connection, else a new one (made outside the lock). */
static ScSmtpConnection *
connection_for_slot (ScMailerState *state, const ScMailerConfig *mailer)
{
	ScSmtpConnection *connection =
	    state->idle->len > 0 ? g_ptr_array_steal_index (state->idle, state->idle->len - 1) : NULL;

	g_mutex_unlock (&state->lock);
	return connection != NULL ? connection : sc_smtp_connection_new (mailer);
}

ScSmtpConnection *
sc_mailer_state_try_acquire (ScMailerState *state, const ScMailerConfig *mailer)
{
	g_mutex_lock (&state->lock);
	if (!take_free_slot (state, mailer)) {
		g_mutex_unlock (&state->lock);
		return NULL;
	}
	return connection_for_slot (state, mailer);
}

ScSmtpConnection *
sc_mailer_state_acquire (ScMailerState *state, const ScMailerConfig *mailer, GCancellable *cancellable)
{
	g_mutex_lock (&state->lock);
	if (!take_free_slot (state, mailer)) {
		PoolWaiter waiter = {.granted = FALSE};

		g_cond_init (&waiter.granted_cond);
		g_queue_push_tail (&state->waiters, &waiter);
		while (!waiter.granted) {
			if (cancellable != NULL && g_cancellable_is_cancelled (cancellable)) {
				g_queue_remove (&state->waiters, &waiter);
				g_mutex_unlock (&state->lock);
				g_cond_clear (&waiter.granted_cond);
				return NULL;
			}
			/* max-connections raised by a reload: no release grants it */
			grant_waiters (state, mailer->max_connections);
			if (!waiter.granted)
				g_cond_wait_until (&waiter.granted_cond, &state->lock,
						   g_get_monotonic_time () + 100 * G_TIME_SPAN_MILLISECOND);
		}
		g_cond_clear (&waiter.granted_cond);
	}
	return connection_for_slot (state, mailer);
}

void
sc_mailer_state_release (ScMailerState *state, ScSmtpConnection *connection, gboolean reusable)
{
	if (!reusable) {
		/* QUIT and its reply (up to a second) outside the lock, which
		 * every other transaction to this mailer needs; the slot is
		 * given back only once the connection is closed, so a new
		 * one never makes more than max-connections */
		guint connects = sc_smtp_connection_get_connects (connection);

		sc_smtp_connection_free (connection);
		g_mutex_lock (&state->lock);
		state->connects += connects;
	} else {
		g_mutex_lock (&state->lock);
		g_ptr_array_add (state->idle, connection);
	}
	state->in_use--;
	state->transactions++;
	/* the next in line gets the slot; a max-connections lowered by a
	 * reload lets none through until in_use is under it */
	grant_waiters (state, state->max_connections);
	g_mutex_unlock (&state->lock);
}

void
sc_mailer_state_record_success (ScMailerState *state)
{
	gboolean closed;

	g_mutex_lock (&state->lock);
	closed = state->open_until != 0;
	state->consecutive_failures = 0;
	state->open_until = 0;
	state->trial_running = FALSE;
	g_mutex_unlock (&state->lock);
	if (closed) {
		g_autofree char *detail = g_strdup_printf ("mailer %s works again", state->name);
		g_message ("mailer %s: circuit closed, it works again", state->name);
		sc_events_push ("mailer.circuit_closed", detail);
	}
}

gboolean
sc_mailer_state_record_failure (ScMailerState *state,
				const char *reply,
				guint threshold,
				gint64 cooldown)
{
	gint64 now = g_get_monotonic_time ();
	gboolean opened = FALSE;

	g_mutex_lock (&state->lock);
	state->failures++;
	state->consecutive_failures++;
	g_free (state->last_error);
	state->last_error = g_strdup (reply);
	if (state->trial_running || (state->open_until == 0 && state->consecutive_failures >= threshold)) {
		opened = state->open_until == 0 || state->trial_running;
		state->open_until = now + cooldown;
		state->trial_running = FALSE;
	}
	g_mutex_unlock (&state->lock);
	if (opened) {
		g_autofree char *shown = g_strescape (reply != NULL ? reply : "", NULL);
		g_autofree char *detail = g_strdup_printf ("mailer %s skipped for %" G_GINT64_FORMAT
							   "s after %u failure(s): %s", state->name,
							   cooldown / G_USEC_PER_SEC,
							   state->consecutive_failures, reply != NULL ? reply : "");
		g_message ("mailer %s: circuit open after %u failure(s), skipped for %" G_GINT64_FORMAT
			   "s: %s", state->name, state->consecutive_failures,
			   cooldown / G_USEC_PER_SEC, shown);
		sc_events_push ("mailer.circuit_open", detail);
	}
	return opened;
}

void
sc_mailer_state_get_stats (ScMailerState *state, ScMailerStats *out_stats)
{
	g_mutex_lock (&state->lock);
	out_stats->transactions = state->transactions;
	out_stats->failures = state->failures;
	out_stats->consecutive_failures = state->consecutive_failures;
	out_stats->open_until = wall_time_of (state->open_until);
	out_stats->last_error = g_strdup (state->last_error);
	out_stats->connects = state->connects;
	out_stats->waiting = g_queue_get_length (&state->waiters);
	for (guint i = 0; i < state->idle->len; i++)
		out_stats->connects += sc_smtp_connection_get_connects (state->idle->pdata[i]);
	g_mutex_unlock (&state->lock);
}

void
sc_mailer_state_log_all (void)
{
	GHashTableIter iter;
	gpointer value;

	g_mutex_lock (&registry_lock);
	if (registry != NULL) {
		g_hash_table_iter_init (&iter, registry);
		while (g_hash_table_iter_next (&iter, NULL, &value)) {
			ScMailerState *state = value;
			ScMailerStats stats = {0};
			sc_mailer_state_get_stats (state, &stats);
			g_message ("mailer %s: transactions=%u connections=%u failures=%u",
				   state->name, stats.transactions, stats.connects, stats.failures);
			g_free (stats.last_error);
		}
	}
	g_mutex_unlock (&registry_lock);
}

void
sc_mailer_state_reset_all (void)
{
	GHashTable *states;

	g_mutex_lock (&registry_lock);
	states = g_steal_pointer (&registry);
	g_mutex_unlock (&registry_lock);
	/* the idle connections' QUITs, without holding up sc_mailer_state_get() */
	g_clear_pointer (&states, g_hash_table_unref);
}
