/* sc-handler.h — the one interface every stage handler implements.
 *
 * A handler runs on a worker thread with a self-contained ScStageContext:
 * copies and references, never pointers into runner state.  It reports ok
 * (return TRUE), or fails with SC_STAGE_ERROR_TRANSIENT (retry later) or
 * SC_STAGE_ERROR_PERMANENT (no retry can help).  Its side effect must be
 * safe to repeat: a crash can fall between it and the commit that records it.
 */
#pragma once

#include <gio/gio.h>

#include "sc-clock.h"
#include "sc-config.h"
#include "sc-error.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct {
	/* Inputs: owned by the runner, valid for the whole run, read-only. */
	const char *queue_id;
	const char *stage;            /* full stage name, e.g. "exec:spamcheck" */
	const char *stage_argument;   /* (nullable) "spamcheck" for exec:spamcheck */
	const char *list_id;
	const char *const *pipeline;  /* (nullable) the message's stages, in order */
	const char *sender;           /* envelope sender, may be "" */
	const char *const *recipients; /* envelope recipients, NULL-terminated */
	GBytes *raw;                  /* the message as injected */
	GBytes *current;              /* output of the latest stage that had one, else raw */
	ScConfig *config;             /* snapshot taken when the message was claimed */
	const ScListConfig *list;     /* inside config; never NULL */
	ScClock *clock;
	GCancellable *cancellable;    /* cancelled on shutdown: give up as transient */
	GPtrArray *recipient_records; /* (element-type ScRecipientRecord) state at claim */
	/* Commits recipient states durably before returning (deliver calls it
	 * right after each SMTP transaction).  FALSE when the message's lease
	 * is lost: stop at once, another runner owns the message now.  The
	 * updates' rowid field is filled in by the callee. */
	gboolean (*record_recipients) (gpointer data,
				       ScRecipientUpdate *updates,
				       guint n_updates,
				       GError **error);
	gpointer record_recipients_data;
	/* TRUE: the stage's last recipient updates may go to last_updates
	 * (sc_stage_context_keep_last_updates) instead of record_recipients;
	 * the runner commits them in the same transaction as the stage's
	 * result, so the worker does not wait for a commit of its own.  As
	 * safe as committing at once: no later transaction to those
	 * recipients can start before that result is on disk, and a crash
	 * before it repeats only the transaction that was in flight. */
	gboolean record_last_with_result;
	/* (nullable) Called with TRUE while the handler only waits for
	 * something outside the message (deliver: a connection slot), FALSE
	 * when it works on the message again: a runner that
	 * dies meanwhile does not count it as the message's crash. */
	void (*waiting) (gpointer data, gboolean waiting);
	gpointer waiting_data;
	guint previous_attempts;      /* earlier tries of this stage for this message,
				       * crashes included: 0 means no side effect of
				       * this stage can exist yet, so an idempotency
				       * check may be skipped */

	/* Outputs: set by the handler, owned by the context afterwards. */
	GBytes *output; /* (nullable) the message as later stages must see it */
	char *note;     /* (nullable) recorded with the stage, e.g. why a message was passed through */
	char *mailer;   /* (nullable) recorded with the attempt: the mailer(s) used */
	char *notification_kind;   /* (nullable) ask for an admin notification, */
	char *notification_detail; /* e.g. "recipients.failed" with who and why */
	ScRecipientUpdate *last_updates;   /* (nullable) see record_last_with_result */
	guint n_last_updates;
	GStringChunk *last_update_strings; /* (nullable) owns their strings */
} ScStageContext;

typedef struct {
	const char *name; /* "decorate"; "exec" handles every "exec:NAME" */
	gboolean (*run) (ScStageContext *context, GError **error);
	/* (nullable) Checks a list's settings for this stage at config load;
	 * the error names the key and says what is wrong, without file.
	 * @warnings: (element-type utf8) where a run-time problem goes (a key
	 * file not readable now): the configuration still loads, check-config
	 * fails on it and `run` logs it (ScConfig.warnings). */
	gboolean (*check) (const ScConfig *config,
			   const ScListConfig *list,
			   const char *stage_argument,
			   GPtrArray *warnings,
			   GError **error);
	/* (nullable) Called once when the runner stops, after every worker
	 * has finished: close connections, log totals. */
	void (*shutdown) (void);
	/* Quick and local (CPU, a local file at most; no network, no child
	 * process): may run on deliver's thread just before it, its result
	 * committed with deliver's (sc-runner.c, plan_group). */
	gboolean inline_before_deliver;
} ScHandler;

/* Built-in handlers, one per file in handlers/. */
extern const ScHandler sc_handler_decorate;
extern const ScHandler sc_handler_archive;
extern const ScHandler sc_handler_exec;
extern const ScHandler sc_handler_deliver;
extern const ScHandler sc_handler_sign;

/* Finds the handler for a pipeline stage name ("archive", "exec:NAME").
 * @out_argument: (out) (optional) (transfer full): the part after ':' */
const ScHandler *sc_handler_registry_lookup (const char *stage,
					     char **out_argument,
					     GError **error);

/* Calls every built-in handler's shutdown (main thread, workers idle). */
void sc_handler_registry_shutdown (void);

/* Frees the outputs (the inputs belong to whoever filled them in). */
void sc_stage_context_clear_outputs (ScStageContext *context);

/* Copies @updates (and their strings) into the context's last_updates,
 * to be committed with the stage's result (record_last_with_result). */
void sc_stage_context_keep_last_updates (ScStageContext *context,
					 const ScRecipientUpdate *updates,
					 guint n_updates);

G_END_DECLS
