/* sc-pg-private.h — what the PostgreSQL spool's files (sc-pg-*.c) share:
 * the connection, parameterised statements prepared once per connection,
 * the error conversion and transactions.  Not for other modules.
 *
 * Statements: each is a static ScPgStatement with a name unique across
 * sc-pg-*.c ("sc_FILE_WHAT"), prepared on first use on each connection
 * (again after a reconnect).  Parameters are $1…$n, passed as text
 * (NULL: SQL NULL) or bytea in binary; cast a parameter whose type the
 * server cannot infer ($1::text IS NULL, $2::bigint[]).  Results come
 * back as text, or all in binary with binary_result (for statements
 * that read only bytea: no hex doubling of bodies on the wire).
 *
 * Connection loss: a call that fails because the connection is gone
 * (SQLSTATE class 08, 57P01–57P03, or no SQLSTATE and a dead socket)
 * resets the connection with backoff bounded by busy_timeout, takes the
 * runner's advisory lock again and reports SC_SPOOL_ERROR_TEMPORARY: the
 * caller retries.  Nothing is retried here — a COMMIT whose outcome is
 * unknown must not be sent twice (inject's dedupe and the lease checks
 * make the caller's retry safe).
 */
#pragma once

#include <libpq-fe.h>

#include "sc-spool-backend.h"

G_BEGIN_DECLS

typedef struct {
	ScSpool parent;          /* first: sc-spool.c dispatches through it */
	PGconn *conn;            /* (owned) */
	char *conninfo;          /* (owned) for the wake source's own connection */
	gint64 busy_timeout;     /* µs: lock waits and reconnects */
	GHashTable *prepared;    /* (owned) names of the statements prepared on conn */
	gboolean in_transaction; /* between sc_pg_begin and commit/rollback */
	char *runner;            /* (owned) (nullable) the registered runner's name */
	gint64 runner_key;       /* its session advisory lock key */
	gboolean runner_locked;  /* this session holds it (FALSE after a reconnect until retaken) */
	gboolean reconnecting;   /* inside reconnect: no recursion */
	char *display;           /* (owned) host/db for error messages, no password */
	GHashTable *seen_alive;   /* (owned) runners seen holding their lock (sc-pg-presence.c) */
	GHashTable *lock_missing; /* (owned) of those, runner → monotonic µs its lock was first seen gone */
} ScPgSpool;

#define SC_PG_SPOOL(spool) ((ScPgSpool *) (spool))

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGresult, PQclear)

typedef struct {
	const char *name; /* unique across sc-pg-*.c */
	const char *sql;
	gboolean binary_result;
} ScPgStatement;

#define SC_PG_MAX_PARAMS 24

/* One call's parameters, in order; int64s are rendered into the struct,
 * arrays into owned strings (freed by sc_pg_params_clear). */
typedef struct {
	guint n;
	const char *values[SC_PG_MAX_PARAMS];
	int lengths[SC_PG_MAX_PARAMS];
	int formats[SC_PG_MAX_PARAMS];
	char ints[SC_PG_MAX_PARAMS][24];
	char *owned[SC_PG_MAX_PARAMS];
	GBytes *bytes[SC_PG_MAX_PARAMS]; /* (owned) refs kept until the call */
} ScPgParams;

void sc_pg_params_text (ScPgParams *params, const char *value); /* NULL: SQL NULL */
void sc_pg_params_int64 (ScPgParams *params, gint64 value);
void sc_pg_params_null (ScPgParams *params);
void sc_pg_params_bytes (ScPgParams *params, GBytes *value); /* binary bytea; NULL: SQL NULL */
/* "{1,2,3}", for $n::bigint[] */
void sc_pg_params_int64_array (ScPgParams *params, const gint64 *values, guint n_values);
/* '{"a","b"}' (NULL elements: NULL), for $n::text[] */
void sc_pg_params_text_array (ScPgParams *params, const char *const *values, guint n_values);
void sc_pg_params_clear (ScPgParams *params);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ScPgParams, sc_pg_params_clear)

/* Runs @stmt (prepared on this connection if it is not yet) with
 * @params (nullable: none).  (transfer full) a result whose status is
 * COMMAND_OK or TUPLES_OK; NULL with @error otherwise (@doing names the
 * verb in the message). */
PGresult *sc_pg_exec (ScPgSpool *pg,
		      const ScPgStatement *stmt,
		      const ScPgParams *params,
		      const char *doing,
		      GError **error);
/* The same for a statement that returns nothing worth keeping;
 * *@out_changed (nullable): the rows it changed. */
gboolean sc_pg_exec_done (ScPgSpool *pg,
			  const ScPgStatement *stmt,
			  const ScPgParams *params,
			  const char *doing,
			  guint64 *out_changed,
			  GError **error);

/* A new connection (application_name "stagecoach", connect_timeout
 * from @busy_timeout; @conninfo overrides both).  Failure is TEMPORARY. */
PGconn *sc_pg_connect (const char *conninfo, gint64 busy_timeout, GError **error);
/* pg_try_advisory_lock on pg->runner_key for this session. */
gboolean sc_pg_take_runner_lock (ScPgSpool *pg, GError **error);

/* Reading a result: NULL and 0 for SQL NULL. */
gboolean sc_pg_is_null (const PGresult *result, int row, int column);
gint64 sc_pg_get_int64 (const PGresult *result, int row, int column);
gboolean sc_pg_get_bool (const PGresult *result, int row, int column);
char *sc_pg_dup_text (const PGresult *result, int row, int column);
/* A bytea column, text (hex) or binary result alike. (transfer full) */
GBytes *sc_pg_get_bytes (const PGresult *result, int row, int column);
/* Rows an INSERT/UPDATE/DELETE changed. */
guint64 sc_pg_changed (const PGresult *result);

/* SQLSTATE → SC_SPOOL_ERROR: class 08 (connection), 57P01–57P03
 * (shutdown), 57014 (cancelled), 40001, 40P01, 55P03 (lock), 53xxx
 * (resources) and 58xxx (I/O) are TEMPORARY, 53100 (disk full)
 * NO_SPACE, anything else FAILED; NULL (no answer) TEMPORARY. */
ScSpoolError sc_pg_error_code (const char *sqlstate);
/* Sets @error from @result (nullable: from the connection), "spool
 * HOST/DB: DOING: MESSAGE". */
void sc_pg_set_error (ScPgSpool *pg, const PGresult *result, GError **error, const char *doing);

/* One transaction (READ COMMITTED: every update names the state it
 * expects, so it needs no more).  Rollback is harmless after a failed
 * or lost connection. */
gboolean sc_pg_begin (ScPgSpool *pg, GError **error);
gboolean sc_pg_commit (ScPgSpool *pg, GError **error);
void sc_pg_rollback (ScPgSpool *pg);

/* One audit row, inside the caller's transaction (sc-pg-spool.c; the
 * operator actions write theirs with it too). */
gboolean sc_pg_write_audit (ScPgSpool *pg,
			    const ScAuditContext *audit,
			    const char *action,
			    const char *queue_id,
			    const char *detail,
			    GError **error);

/* ---- the runner's verbs: sc-pg-claim.c, sc-pg-reclaim.c, sc-pg-presence.c ---- */

GPtrArray *sc_pg_claim_within (ScSpool *spool,
			       const char *owner,
			       gint64 now,
			       gint64 lease_expires_at,
			       guint limit,
			       guint64 max_bytes,
			       gboolean take_first,
			       GError **error);
gboolean sc_pg_commit_batch (ScSpool *spool,
			     const char *owner,
			     ScRecipientGroup *groups,
			     guint n_groups,
			     ScStageResult *const *results,
			     guint n_results,
			     gboolean durable,
			     GError **error);
gboolean sc_pg_renew_leases (ScSpool *spool,
			     const char *owner,
			     const ScLease *leases,
			     guint n_leases,
			     gint64 lease_expires_at,
			     GError **error);
gboolean sc_pg_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error);
guint sc_pg_reclaim (ScSpool *spool,
		     const char *self_owner,
		     const ScLeaseProbe *probe,
		     gint64 now,
		     guint crash_limit,
		     GError **error);
gboolean sc_pg_check_clock (ScSpool *spool,
			    gint64 wall,
			    gint64 boottime,
			    const char *boot_id,
			    gint64 threshold,
			    gint64 *out_step,
			    GError **error);
gboolean sc_pg_next_due (ScSpool *spool, gint64 *out_time, GError **error);
ScOwner *sc_pg_register_runner (ScSpool *spool, GError **error);
gboolean sc_pg_runner_is_alive (ScSpool *spool, const char *owner);
GHashTable *sc_pg_runner_in_handler (ScSpool *spool, const char *owner);
void sc_pg_forget_runner (ScSpool *spool, const char *owner);
void sc_pg_wake_runners (ScSpool *spool);
GSource *sc_pg_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error);

/* A notification about message @message_id (its queue id copied), inside
 * the caller's transaction (sc-pg-claim.c). */
gboolean sc_pg_insert_notification (ScPgSpool *pg,
				    gint64 message_id,
				    const char *kind,
				    const char *detail,
				    gint64 now,
				    GError **error);

/* sc-pg-schema.c */
extern const int sc_pg_schema_version;
/* Creates or migrates the schema on @conn (under an advisory lock). */
gboolean sc_pg_schema_migrate (PGconn *conn, GError **error);
/* Folds state_counts' delta rows into one row per (state, list); safe
 * to run from several connections at once.  state_counts is read as
 * SELECT state, list_id, sum(count) … GROUP BY state, list_id. */
gboolean sc_pg_fold_state_counts (ScPgSpool *pg, GError **error);

/* ---- sc-pg-query.c, sc-pg-admin.c, sc-pg-notify.c (the read, operator
 * and outbox verbs; same contracts as the sc-spool.h verbs) ---- */

gboolean sc_pg_count_states (ScSpool *spool, const char *list_id, gint64 counts[SC_STATE_LAST], GError **error);
GPtrArray *sc_pg_search (ScSpool *spool, const ScMessageSearch *search, GError **error);
ScMessageSummary *sc_pg_get_summary (ScSpool *spool, const char *queue_id, GError **error);
GPtrArray *sc_pg_get_stages (ScSpool *spool, gint64 id, GError **error);
GPtrArray *sc_pg_get_attempts (ScSpool *spool, gint64 id, GError **error);
GPtrArray *sc_pg_get_recipients (ScSpool *spool, gint64 id, GError **error);
GBytes *sc_pg_get_raw (ScSpool *spool, gint64 id, GError **error);
GBytes *sc_pg_get_stage_output (ScSpool *spool, gint64 id, const char *stage, GError **error);

gboolean sc_pg_retry (ScSpool *spool,
		      const char *queue_id,
		      const char *from_stage,
		      const ScAuditContext *audit,
		      GError **error);
gboolean sc_pg_retry_matching (ScSpool *spool,
			       ScMessageState state,
			       const char *list_id,
			       const ScAuditContext *audit,
			       guint *out_count,
			       GError **error);
gboolean sc_pg_retry_list (ScSpool *spool,
			   GPtrArray *queue_ids,
			   const char *detail,
			   const ScAuditContext *audit,
			   guint *inout_count,
			   GError **error);
gboolean sc_pg_hold (ScSpool *spool,
		     const char *queue_id,
		     const char *reason,
		     const ScAuditContext *audit,
		     GError **error);
gboolean sc_pg_release (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error);
gboolean sc_pg_delete_message (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error);

GPtrArray *sc_pg_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error);
gboolean sc_pg_notify_mark_sent (ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error);
gboolean sc_pg_notify_mark_failed (ScSpool *spool,
				   const gint64 *ids,
				   guint n_ids,
				   gint64 next_attempt_at,
				   const char *last_error,
				   GError **error);
gboolean sc_pg_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error);
gboolean sc_pg_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error);
gboolean sc_pg_notify_insert_event (ScSpool *spool, const char *kind, const char *detail, gint64 now, GError **error);
gboolean sc_pg_notify_count_backlog (ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error);

GPtrArray *sc_pg_count_by_list (ScSpool *spool, GError **error);
GPtrArray *sc_pg_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error);
GPtrArray *sc_pg_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error);
gboolean sc_pg_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error);
GArray *sc_pg_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error);
gboolean sc_pg_fold_attempts (ScSpool *spool,
			      gint64 *inout_after_id,
			      guint limit,
			      ScAttemptFunc func,
			      gpointer user_data,
			      GError **error);

/* sc-pg-copy.c: the copy entries of the PostgreSQL backend's table */
gboolean sc_pg_copy_begin (ScSpool *spool, gboolean write, GError **error);
GPtrArray *sc_pg_copy_out (
    ScSpool *spool, const ScCopyTable *table, GVariant *after, guint limit, GError **error);
gboolean sc_pg_copy_in (ScSpool *spool, const ScCopyTable *table, GPtrArray *rows, GError **error);
gboolean sc_pg_copy_count (ScSpool *spool, const ScCopyTable *table, guint64 *out_rows, GError **error);
gboolean sc_pg_copy_commit (ScSpool *spool, GError **error);
void sc_pg_copy_rollback (ScSpool *spool);

G_END_DECLS
