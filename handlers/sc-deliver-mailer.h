/* sc-deliver-mailer.h — what the deliver stage remembers about each mailer
 * across messages and threads: its circuit breaker and its pool of open
 * SMTP connections.  Process-wide, thread-safe. */
#pragma once

#include "sc-config.h"
#include "sc-deliver-smtp.h"

G_BEGIN_DECLS

typedef struct _ScMailerState ScMailerState;

/* The state of the mailer named in @mailer (created on first use; a mailer
 * whose url or TLS settings changed in a reload starts with fresh
 * connections).  (transfer none): lives as long as the process. */
ScMailerState *sc_mailer_state_get (const ScMailerConfig *mailer);

/* FALSE while the circuit is open (too many failures, cool-down not over).
 * After the cool-down one caller at a time is let through to try it.
 * Cool-downs run on the monotonic clock, whatever the wall clock does. */
gboolean sc_mailer_state_try_use (ScMailerState *state);
/* The wall-clock time (µs since the epoch) the cool-down ends, for display;
 * 0 if closed. */
gint64 sc_mailer_state_get_open_until (ScMailerState *state);

/* A connection to use now; waits while max-connections are busy, behind
 * the threads that asked before. NULL when @cancellable fires.
 * (transfer full) give it back with release(). */
ScSmtpConnection *sc_mailer_state_acquire (ScMailerState *state,
					   const ScMailerConfig *mailer,
					   GCancellable *cancellable);
/* The same without waiting: NULL when acquire() would wait. */
ScSmtpConnection *sc_mailer_state_try_acquire (ScMailerState *state, const ScMailerConfig *mailer);
/* @reusable: FALSE after a failure, so the next use reconnects. */
void sc_mailer_state_release (ScMailerState *state, ScSmtpConnection *connection, gboolean reusable);

void sc_mailer_state_record_success (ScMailerState *state);
/* @cooldown: µs.  Returns TRUE when this failure opened the circuit. */
gboolean sc_mailer_state_record_failure (ScMailerState *state,
					 const char *reply,
					 guint threshold,
					 gint64 cooldown);

typedef struct {
	guint transactions;
	guint connects;     /* TCP connections opened */
	guint failures;     /* mailer-level failures */
	guint consecutive_failures;
	gint64 open_until;  /* wall clock (µs since the epoch) when the cool-down ends, 0: closed */
	char *last_error;   /* (nullable) */
	guint waiting;      /* threads queued for a connection slot now */
} ScMailerStats;

/* A snapshot for logs, metrics and tests.  @out_stats->last_error: (transfer full) */
void sc_mailer_state_get_stats (ScMailerState *state, ScMailerStats *out_stats);
/* For the runner (main thread, cheap: no I/O, no state created, one short
 * lock per mailer; safe from any thread).  A deliver job for @list tries
 * its mailers in this order, skipping those whose circuit is open.
 *
 * sc_mailer_state_is_open(): whether the circuit of @mailer's state is
 * open now (cool-down running, or its one half-open trial in flight).  A
 * mailer never used, or reconfigured since (url, TLS, credentials), is
 * closed. */
gboolean sc_mailer_state_is_open (const ScMailerConfig *mailer);

/* The mailer a deliver job for @list would try first: the first of the
 * list's mailers (sc_config_list_mailers() order) whose circuit is not
 * open; a key to count the deliver jobs one mailer occupies, bounded by
 * its ->max_connections.  NULL when the list has no mailer or every
 * circuit is open (the job would fail at once, transiently).
 * (transfer none): owned by @config. */
const ScMailerConfig *sc_deliver_mailer_key_for_list (const ScConfig *config,
						      const ScListConfig *list);

/* Whether a deliver stage for @list would send every recipient of
 * @recipient_records (element-type ScRecipientRecord) not yet sent or
 * failed in one SMTP transaction (one domain, within max-recipients, no
 * VERP or personal copies): then it commits nothing before its result,
 * and the stages just before it may run on the same thread, their results
 * in the same commit (sc-runner.c). */
gboolean sc_deliver_is_one_transaction (const ScConfig *config,
					const ScListConfig *list,
					GPtrArray *recipient_records);

/* One log line per mailer used: transactions, connections, failures. */
void sc_mailer_state_log_all (void);
/* Drops every state and connection (tests; process exit). */
void sc_mailer_state_reset_all (void);

G_END_DECLS
