/* sc-spool.h — the spool: every piece of stagecoach's state, behind verbs.
 *
 * As narrow as OpenSMTPD's scheduler backend, so that either store sits
 * behind it (sc-spool-backend.h: the embedded SQLite one, or PostgreSQL
 * claiming with FOR UPDATE SKIP LOCKED): callers see messages, stages,
 * attempts and recipients, never SQL.
 * An ScSpool is one connection and belongs to the thread that opened it.
 * Times are µs since the epoch; every write is one transaction.
 */
#pragma once

#include <glib.h>

#include "sc-error.h"

G_BEGIN_DECLS

typedef enum {
	SC_STATE_QUEUED,   /* due for its next stage (new, retried, released) */
	SC_STATE_ACTIVE,   /* leased by a runner */
	SC_STATE_DEFERRED, /* waiting for next_attempt_at after a transient failure */
	SC_STATE_HELD,     /* paused by an operator or after crashing runners */
	SC_STATE_DONE,
	SC_STATE_DEAD, /* gave up; needs a person */
	SC_STATE_LAST,
} ScMessageState;

const char *sc_message_state_to_string (ScMessageState state);
gboolean sc_message_state_from_string (const char *text, ScMessageState *out_state);

/* What an operator can do to a message (CLI, admin API, dashboard). */
typedef enum {
	SC_ACTION_RETRY,            /* a new cycle from the first stage not done */
	SC_ACTION_RETRY_FROM_STAGE, /* a new cycle from a named stage, done messages too */
	SC_ACTION_RETRY_MATCHING,   /* the bulk retry of every message in one state */
	SC_ACTION_HOLD,
	SC_ACTION_RELEASE,
	SC_ACTION_DELETE,
	SC_ACTION_LAST,
} ScAction;

/* The one table of which actions each state allows; every operator path
 * checks it (a message leased by a runner allows none: the runner's
 * result would overwrite the operator's decision). */
gboolean sc_message_state_allows (ScMessageState state, ScAction action);

typedef enum {
	SC_OUTCOME_OK,
	SC_OUTCOME_TRANSIENT,
	SC_OUTCOME_PERMANENT,
	SC_OUTCOME_CRASHED,  /* the runner died or hung while the stage ran */
	SC_OUTCOME_RELEASED, /* the runner stopped (SIGTERM) before the stage ended */
} ScOutcome;

const char *sc_outcome_to_string (ScOutcome outcome);

typedef struct _ScSpool ScSpool;

/* Opens (creating and migrating) the spool @location names: a folder or
 * sqlite:FOLDER (FOLDER/spool.db), or a postgresql:// URI or libpq
 * key=value string.  A locked, full or unreachable spool is
 * SC_SPOOL_ERROR_TEMPORARY; a spool newer than this program knows, or a
 * backend this build lacks, is SC_SPOOL_ERROR_FAILED. */
ScSpool *sc_spool_open (const char *location, gint64 busy_timeout, GError **error);
typedef enum {
	SC_SPOOL_OPEN_DEFAULT = 0,
	/* only synchronous=FULL commits on this connection (the acceptor's):
	 * SQLite may gather each commit's WAL writes into one */
	SC_SPOOL_OPEN_FULL_SYNC_ONLY = 1 << 0,
} ScSpoolOpenFlags;
ScSpool *sc_spool_open_full (const char *location, gint64 busy_timeout, ScSpoolOpenFlags flags, GError **error);
void sc_spool_close (ScSpool *spool);
/* "sqlite" or "postgresql". */
const char *sc_spool_backend_name (ScSpool *spool);
/* For check-config: the server ("SQLite 3.40.1", "PostgreSQL 15.10") and
 * the schema version the spool is at. */
gboolean sc_spool_describe (ScSpool *spool, char **out_server, int *out_schema_version, GError **error);

/* ---- ingress ---- */

typedef struct _ScMessage ScMessage; /* a claimed message: below */

typedef struct {
	const char *list_id;
	const char *sender;            /* "" for the null sender */
	const char *const *recipients; /* NULL-terminated, validated by the caller */
	const char *pipeline;          /* "decorate;archive", copied from the list */
	const char *subject;           /* (nullable) decoded, for listing and search */
	const char *message_id;        /* (nullable) */
	gboolean dedupe;               /* look its (message_id, recipient) pairs up */
	GBytes *raw;
	gint64 now;
	const char *door;              /* (nullable) "smtp", "local"… for the audit log */
	const char *peer;              /* (nullable) */
	/* (nullable) stored already claimed by this runner, lease until
	 * @lease_expires_at: no claim transaction before its first stage */
	const char *lease_owner;
	gint64 lease_expires_at;
} ScNewMessage;

/* Commits the message, durably; returns its queue id. (transfer full) */
char *sc_spool_inject (ScSpool *spool, const ScNewMessage *message, GError **error);

/* Commits @n_messages in one transaction (group commit).  With
 * @dedupe_window > 0 (µs), a recipient already accepted for the same
 * Message-ID within the window is left out (out_duplicates[i] counts
 * them; an "ingress-duplicate" audit row names them, and
 * out_duplicate_of[i], if asked, the queue id the first of them went to);
 * a message left with no recipient is not stored (out_queue_ids[i]
 * NULL).  On error nothing of the batch is stored.
 * out_claimed (nullable): for a message with a lease_owner that the
 * backend stored leased to it, the message as a claim would have loaded
 * it (transfer full); NULL where it was stored queued instead (a backend
 * may always do that: PostgreSQL's runners claim from the shared queue). */
gboolean sc_spool_inject_batch (ScSpool *spool,
				const ScNewMessage *const *messages,
				guint n_messages,
				gint64 dedupe_window,
				char **out_queue_ids,
				guint *out_duplicates,
				char **out_duplicate_of, /* (nullable) */
				ScMessage **out_claimed, /* (nullable) */
				GError **error);
/* Forgets at most @limit accepted pairs from before @before. */
gboolean sc_spool_prune_accepted (ScSpool *spool,
				  gint64 before,
				  guint limit,
				  guint *out_pruned,
				  GError **error);

/* ---- the runner's verbs ---- */

/* Ids: each message's key in its backend — opaque to callers, stable for
 * the message's life (kept by spool-copy), larger for later messages (the
 * keyset cursors of listings compare them), never reused. */
struct _ScMessage {
	gint64 id;
	gint64 lease_generation; /* this claim's: every update it makes checks it */
	char *queue_id;
	char *list_id;
	char *sender;
	char **recipients;
	char **pipeline;
	char **completed;        /* stages with a record, in completion order */
	GHashTable *stage_attempts; /* stage → earlier tries (any cycle, crashes included) */
	guint attempts;          /* failures in the current cycle */
	guint crashes;
	gint64 cycle_started_at;
	GBytes *raw;
	GBytes *current;         /* latest stage output, else raw */
	GPtrArray *recipient_records; /* (element-type ScRecipientRecord) as at claim */
};

void sc_message_free (ScMessage *message);
/* @message as a claim would load it right after it was stored with @id
 * and @queue_id, leased to message->lease_owner (generation 1, no stage
 * done, every recipient pending).  For backends storing leased. */
ScMessage *sc_message_new_leased (const ScNewMessage *message, gint64 id, const char *queue_id);
/* (nullable) the first pipeline stage without a record */
const char *sc_message_next_stage (const ScMessage *message);
/* (nullable) The stage a claim taken back was in: @marked (its position in
 * the pipeline, from its runner's in-handler mark) while it names a stage
 * without a record, else the first stage without one.  The mark decides
 * inside a group of stages that commit together (decorate;deliver): the
 * first stage without a record may have ended before the crash. */
const char *sc_message_crashed_stage (const ScMessage *message, gint marked);
/* Earlier tries of @stage, as known at claim time. */
guint sc_message_previous_attempts (const ScMessage *message, const char *stage);

/* Leases up to @limit due messages to @owner, oldest due first, in one
 * transaction. (transfer full) (element-type ScMessage) */
GPtrArray *sc_spool_claim (ScSpool *spool,
			   const char *owner,
			   gint64 now,
			   gint64 lease_expires_at,
			   guint limit,
			   GError **error);

/* The same, stopping before the claimed messages' sizes add up to more
 * than @max_bytes: bounds the memory that message bodies in flight can
 * take.  @take_first: the first is taken even when larger (a runner with
 * nothing in flight must not wait forever for a message over budget). */
GPtrArray *sc_spool_claim_within (ScSpool *spool,
				  const char *owner,
				  gint64 now,
				  gint64 lease_expires_at,
				  guint limit,
				  guint64 max_bytes,
				  gboolean take_first,
				  GError **error);

/* One stage's end, and what becomes of the message, as the runner decided. */
typedef struct {
	gint64 id;
	gint64 lease_generation; /* the claim it ran under */
	const char *stage;   /* (nullable) NULL: no stage ran, only the state changes */
	ScOutcome outcome;
	gint64 started_at;
	gint64 finished_at;
	const char *error;   /* (nullable) */
	const char *note;    /* (nullable) kept with the stage record */
	const char *mailer;  /* (nullable) */
	GBytes *output;      /* (nullable) ok only */
	ScMessageState next_state; /* ACTIVE: keeps the lease and goes on */
	gint64 next_attempt_at;    /* DEFERRED */
	guint attempts;            /* failures in this cycle after this result */
	const char *notification_kind;   /* (nullable) an extra admin notification, */
	const char *notification_detail; /* e.g. "recipients.failed" and who and why */
	gboolean applied;          /* (out) FALSE: the claim was gone, nothing recorded */
} ScStageResult;

/* One recipient's new delivery state, committed right after its SMTP
 * transaction, only while @lease_owner still holds the message. */
typedef struct {
	gint64 id;
	gint64 lease_generation;
	guint position;
	const char *status;  /* sent, deferred, failed */
	int code;
	const char *reply;   /* (nullable) verbatim */
	const char *mailer;  /* (nullable) */
	gint64 at;
} ScRecipientUpdate;

/* Commits many results in one transaction (group commit).  A result whose
 * claim (owner and generation) is gone is skipped, its `applied` left
 * FALSE, and counted in @out_stale. */
gboolean sc_spool_record_results (ScSpool *spool,
				  const char *owner,
				  ScStageResult *const *results,
				  guint n_results,
				  guint *out_stale,
				  GError **error);

/* One worker's recipient updates from one SMTP transaction: recorded
 * whole or not at all. */
typedef struct {
	const ScRecipientUpdate *updates;
	guint n_updates;
	gboolean lease_lost; /* (out) its claim was gone: none of it recorded */
} ScRecipientGroup;

/* The runner's group commit: every recipient group and stage result at
 * hand in one transaction.  A group whose claim is gone is left out
 * alone (lease_lost), a result likewise (`applied` FALSE); any other
 * failure records nothing and returns FALSE.
 * With @durable FALSE the commit need not be on disk when it returns
 * (SQLite: synchronous=NORMAL): what it records is seen at once and is
 * durable after the next durable commit on the spool by any connection
 * of this process, or after sc_spool_sync; a power cut before that undoes
 * it, as if the work had not been done.  The caller must sync before
 * anything relies on it being on disk.  Backends that cannot defer
 * commit durably. */
gboolean sc_spool_commit_batch (ScSpool *spool,
				const char *owner,
				ScRecipientGroup *groups,
				guint n_groups,
				ScStageResult *const *results,
				guint n_results,
				gboolean durable,
				GError **error);

/* Whether @result may be committed with @durable FALSE: it ends its
 * message (done) or hands it on (active), and no one is notified of it.
 * A deferral (its retry is the next transaction to the same recipients,
 * claimed from disk), a held or dead message and any notification stay
 * durable. */
gboolean sc_stage_result_may_wait_for_disk (const ScStageResult *result);
/* What this connection committed and is not known to be on disk yet (a
 * commit with @durable FALSE, or a claim), as a mark for sc_spool_sync;
 * 0 when nothing is. */
guint64 sc_spool_unsynced_mark (ScSpool *spool);
/* Makes what this connection committed up to @mark (G_MAXUINT64: all of
 * it) durable: nothing to do when a durable commit came since, else one
 * sync of the spool's log.  A failure means the disk may have lost those
 * commits: stop. */
gboolean sc_spool_sync (ScSpool *spool, guint64 mark, GError **error);

/* One claim of one message. */
typedef struct {
	gint64 id;
	gint64 generation;
} ScLease;

/* Extends the leases of exactly these claims (the ones still worked on),
 * in one transaction; claims that are gone are left alone. */
gboolean sc_spool_renew_leases (ScSpool *spool,
				const char *owner,
				const ScLease *leases,
				guint n_leases,
				gint64 lease_expires_at,
				GError **error);

/* Gives every message this owner holds back, due at @now (the runner has
 * stopped and none of its handlers runs). */
gboolean sc_spool_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error);

/* What reclaim asks about the holders of active messages. */
typedef struct {
	/* Does @owner's process still run? (never asked about self) */
	gboolean (*alive) (const char *owner, gpointer user_data);
	/* Was a handler of @owner running on this claim when it stopped or
	 * hung?  If so, @out_stage: the stage's position in the message's
	 * pipeline, or SC_OWNER_STAGE_UNKNOWN. */
	gboolean (*in_handler) (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data);
	/* Does this runner (self) still work on this claim? */
	gboolean (*in_flight) (const ScLease *lease, gpointer user_data);
	gpointer user_data;
} ScLeaseProbe;

/* Takes back messages whose owner is dead or whose lease expired, and this
 * runner's own expired claims it no longer works on.  Only a message whose
 * handler was running is blamed: a `crashed` attempt for its stage, due
 * at @now (behind the others); unless the stage was making progress
 * (recipient states recorded in that claim) the crash is counted, and
 * after @crash_limit counted crashes it is
 * held (a poison message must not crash-loop) with a message.held
 * notification.  The others go back with a `released` attempt, due when
 * they were (their place in the queue).  Returns how many were taken back. */
guint sc_spool_reclaim (ScSpool *spool,
			const char *self_owner,
			const ScLeaseProbe *probe,
			gint64 now,
			guint crash_limit,
			GError **error);

/* Compares the wall clock (@wall, µs since the epoch) with the boot clock
 * (@boottime, CLOCK_BOOTTIME µs, of boot @boot_id) against the anchor the
 * spool last saw.  When the wall clock moved more than @threshold away
 * from the boot clock, it was stepped: every stored time that measures a
 * wait (due times, cycle starts, leases, notification retries) moves by
 * the step, so a retry due in a minute is still due in a minute and a
 * message does not age by the step.  Done once per spool, whichever
 * runner notices first.  *@out_step: the step applied, 0 if none. */
gboolean sc_spool_check_clock (ScSpool *spool,
			       gint64 wall,
			       gint64 boottime,
			       const char *boot_id,
			       gint64 threshold,
			       gint64 *out_step,
			       GError **error);

/* ---- runners' presence and wakeups (sc-sqlite-presence.c for the embedded spool) ---- */

typedef struct _ScOwner ScOwner;

/* This process as a runner of the spool, for as long as it holds the
 * result (its name is the lease owner of what it claims). */
ScOwner *sc_spool_register_runner (ScSpool *spool, GError **error);
/* Whether runner @owner still runs (its process holds its registration). */
gboolean sc_spool_runner_is_alive (ScSpool *spool, const char *owner);
/* The claims runner @owner had a handler running on, and the stage of
 * each (sc_owner_marks_find). (transfer full) */
GHashTable *sc_spool_runner_in_handler (ScSpool *spool, const char *owner);
/* Forgets a dead runner (after its messages were taken back). */
void sc_spool_forget_runner (ScSpool *spool, const char *owner);
/* Best effort, never blocks: wakes every runner of the spool after a
 * commit that gave them work. */
void sc_spool_wake_runners (ScSpool *spool);
/* (transfer full) a source that calls @func each time the spool's runners
 * are woken; NULL with @error when wakeups cannot be had (the caller
 * rescans instead).  Attach it; destroying it stops listening. */
GSource *sc_spool_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error);

/* Earliest next_attempt_at of a queued/deferred message; FALSE if none. */
gboolean sc_spool_next_due (ScSpool *spool, gint64 *out_time, GError **error);

/* ---- reading ---- */

/* counts[state] for all lists, or one list. */
gboolean sc_spool_count_states (ScSpool *spool,
				const char *list_id,
				gint64 counts[SC_STATE_LAST],
				GError **error);

typedef struct {
	gint64 id;
	char *queue_id;
	ScMessageState state;
	char *list_id;
	char *sender;
	char *subject;
	char *message_id;
	char *last_error;
	char *hold_reason;
	char *pipeline;
	guint attempts;
	guint cycle;
	gint64 created_at;
	gint64 next_attempt_at;
	gint64 updated_at;
	gint64 size;
} ScMessageSummary;

void sc_message_summary_free (ScMessageSummary *summary);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScMessageSummary, sc_message_summary_free)

typedef struct {
	gboolean has_state;
	ScMessageState state;
	const char *list_id; /* (nullable) */
	const char *stage;   /* (nullable) last attempt's stage, else the first one */
	const char *query;   /* (nullable) substring of subject, sender, Message-ID,
			      * last error or queue id; ASCII case-insensitive */
	gint64 after_id;     /* keyset: rows with a smaller id come next; 0: newest */
	guint limit;         /* 0: no limit */
} ScMessageSearch;

/* Newest first: `stagecoach list` and the admin API's message list.
 * (transfer full) (element-type ScMessageSummary) */
GPtrArray *sc_spool_search (ScSpool *spool, const ScMessageSearch *search, GError **error);
ScMessageSummary *sc_spool_get_summary (ScSpool *spool, const char *queue_id, GError **error);

typedef struct {
	char *stage;
	gint64 completed_at;
	char *note;
	gint64 output_size; /* -1: no output */
} ScStageRecord;

typedef struct {
	char *stage;
	ScOutcome outcome;
	char *error;
	char *mailer;
	guint cycle;
	gint64 started_at;
	gint64 finished_at;
} ScAttemptRecord;

typedef struct {
	guint position;   /* order given at inject; the recipient's key */
	char *address;
	char *status;     /* pending, sent, deferred, failed */
	int code;
	char *reply;
	char *mailer;
	gint64 updated_at;
} ScRecipientRecord;

void sc_recipient_record_free (ScRecipientRecord *record);

/* (transfer full) (element-type ScStageRecord) in completion order */
GPtrArray *sc_spool_get_stages (ScSpool *spool, gint64 id, GError **error);
/* (transfer full) (element-type ScAttemptRecord) oldest first */
GPtrArray *sc_spool_get_attempts (ScSpool *spool, gint64 id, GError **error);
/* (transfer full) (element-type ScRecipientRecord) */
GPtrArray *sc_spool_get_recipients (ScSpool *spool, gint64 id, GError **error);
/* The injected bytes, or one stage's output. */
GBytes *sc_spool_get_raw (ScSpool *spool, gint64 id, GError **error);
GBytes *sc_spool_get_stage_output (ScSpool *spool, gint64 id, const char *stage, GError **error);

/* ---- operator actions; each writes an audit row in its transaction ---- */

typedef struct {
	const char *actor;  /* "local", a token name */
	const char *remote; /* (nullable) remote address */
	gint64 now;
} ScAuditContext;

/* New cycle, due now.  @from_stage: (nullable) forget that stage's record
 * and every later stage's first. */
gboolean sc_spool_retry (ScSpool *spool,
			 const char *queue_id,
			 const char *from_stage,
			 const ScAuditContext *audit,
			 GError **error);
/* Retries every message in @state (dead or deferred), optionally of one list. */
gboolean sc_spool_retry_matching (ScSpool *spool,
				  ScMessageState state,
				  const char *list_id,
				  const ScAuditContext *audit,
				  guint *out_count,
				  GError **error);
/* Retries each of @queue_ids (a batch of a search's result) in one
 * transaction; messages no longer retryable (or gone) are skipped, not
 * errors.  *@inout_count grows by those retried.  @detail: (nullable) with
 * it, one "retry-bulk" audit row "DETAIL count=TOTAL" (TOTAL: the new
 * *@inout_count) in the same transaction; without, none (a batch of a
 * larger job, whose last batch writes it). */
gboolean sc_spool_retry_list (ScSpool *spool,
			      GPtrArray *queue_ids,
			      const char *detail,
			      const ScAuditContext *audit,
			      guint *inout_count,
			      GError **error);
gboolean sc_spool_hold (ScSpool *spool,
			const char *queue_id,
			const char *reason,
			const ScAuditContext *audit,
			GError **error);
gboolean sc_spool_release (ScSpool *spool,
			   const char *queue_id,
			   const ScAuditContext *audit,
			   GError **error);
gboolean sc_spool_delete (ScSpool *spool,
			  const char *queue_id,
			  const ScAuditContext *audit,
			  GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScSpool, sc_spool_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScMessage, sc_message_free)

/* ---- the admin notification outbox ----
 * Only the notifier (main thread of `run`) sends; rows stay pending until
 * a receiver acknowledged them with a 2xx. */

typedef struct {
	gint64 id;
	char *kind;          /* message.dead, recipients.failed, backlog.high, … */
	gint64 message_rowid; /* 0: not about a message, or the message was deleted */
	char *queue_id;      /* (nullable) */
	char *detail;        /* (nullable) */
	gint64 created_at;
	guint attempts;      /* failed sends so far */
} ScNotification;

void sc_notification_free (ScNotification *notification);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScNotification, sc_notification_free)

/* Up to @limit pending notifications due at @now, earliest due first.
 * SQLite: reads only (one notifier per spool).  PostgreSQL: only while
 * this connection holds the outbox's lock (one notifier across hosts),
 * and the rows are leased to it until mark_sent/mark_failed. (transfer
 * full) (element-type ScNotification) */
GPtrArray *sc_spool_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error);
/* Marks rows sent, in one transaction. */
gboolean sc_spool_notify_mark_sent (ScSpool *spool,
				    const gint64 *ids,
				    guint n_ids,
				    gint64 now,
				    GError **error);
/* Counts a failed try and makes the rows due again at @next_attempt_at. */
gboolean sc_spool_notify_mark_failed (ScSpool *spool,
				      const gint64 *ids,
				      guint n_ids,
				      gint64 next_attempt_at,
				      const char *last_error,
				      GError **error);
/* Pending rows due at @now (G_MAXINT64: all pending). */
gboolean sc_spool_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error);
/* Earliest next_attempt_at of a pending row; FALSE without error if none. */
gboolean sc_spool_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error);
/* Queues an event not tied to a message (backlog.high, mailer.*). */
gboolean sc_spool_notify_insert_event (ScSpool *spool,
				       const char *kind,
				       const char *detail,
				       gint64 now,
				       GError **error);
/* Queued and deferred messages due at @now, counting no further than
 * @limit (cheap to ask "more than N?"). */
gboolean sc_spool_notify_count_backlog (ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error);

/* ---- the admin API's reads; main thread ---- */


typedef struct {
	char *list_id;
	gint64 counts[SC_STATE_LAST];
} ScListCounts;

void sc_list_counts_free (ScListCounts *counts);
/* Per list, lists with no messages left out. (transfer full) (element-type ScListCounts) */
GPtrArray *sc_spool_count_by_list (ScSpool *spool, GError **error);

typedef struct {
	gint64 id;
	gint64 at;
	char *actor;
	char *remote;   /* (nullable) */
	char *action;
	char *queue_id; /* (nullable) */
	char *detail;   /* (nullable) */
} ScAuditEntry;

void sc_audit_entry_free (ScAuditEntry *entry);
/* Newest first, ids below @after_id (0: from the newest).
 * (transfer full) (element-type ScAuditEntry) */
GPtrArray *sc_spool_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error);

typedef struct {
	gint64 id;
	char *kind;
	char *queue_id; /* (nullable) */
	char *detail;   /* (nullable) */
	gint64 created_at;
	char *state;    /* pending, sent, ... as the notifier writes it */
	guint attempts;
	gint64 sent_at; /* 0: not sent */
	char *last_error;
	gint64 next_attempt_at;
} ScNotificationEntry;

void sc_notification_entry_free (ScNotificationEntry *entry);
/* Newest first. (transfer full) (element-type ScNotificationEntry) */
GPtrArray *sc_spool_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error);
gboolean sc_spool_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error);

typedef struct {
	gint64 at;     /* the minute's start */
	guint done;    /* messages whose last stage completed */
	guint failed;  /* failed attempts: transient, permanent, crashed */
} ScThroughput;

/* @n_minutes per-minute buckets ending with the one holding @now, oldest
 * first; reads only the attempts of that window. (transfer full) */
GArray *sc_spool_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error);

/* Attempts with ids above *@inout_after_id, at most @limit, oldest first;
 * *@inout_after_id advances to the last one read.  For /metrics. */
typedef void (*ScAttemptFunc) (const char *stage,
			       const char *outcome,
			       const char *mailer,
			       gint64 duration,
			       gpointer user_data);
gboolean sc_spool_fold_attempts (ScSpool *spool,
				 gint64 *inout_after_id,
				 guint limit,
				 ScAttemptFunc func,
				 gpointer user_data,
				 GError **error);

G_END_DECLS
