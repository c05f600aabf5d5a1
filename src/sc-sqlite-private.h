/* sc-sqlite-private.h — what the SQLite backend's files share: the
 * connection, the statement cache, the error conversion and its verbs.  Not for other modules. */
#pragma once

#include <sqlite3.h>

#include "sc-spool-backend.h"

G_BEGIN_DECLS

/* Every SQL statement the spool runs, prepared once on first use. */
typedef enum {
	SC_SQL_BEGIN_IMMEDIATE,
	SC_SQL_COMMIT,
	SC_SQL_SYNC_NORMAL,
	SC_SQL_SYNC_FULL,
	SC_SQL_ROLLBACK,
	SC_SQL_SAVEPOINT,
	SC_SQL_SAVEPOINT_RELEASE,
	SC_SQL_SAVEPOINT_ROLLBACK,
	SC_SQL_INSERT_MESSAGE,
	SC_SQL_INSERT_BODY,
	SC_SQL_INSERT_RECIPIENT,
	SC_SQL_ACCEPTED_LOOKUP,
	SC_SQL_ACCEPTED_INSERT,
	SC_SQL_ACCEPTED_PRUNE,
	SC_SQL_CLAIM,
	SC_SQL_CLAIM_ONE,
	SC_SQL_SELECT_CLAIMED,
	SC_SQL_SELECT_RECIPIENT_ADDRESSES,
	SC_SQL_UPDATE_RECIPIENT,
	SC_SQL_RESET_RECIPIENTS,
	SC_SQL_SELECT_COMPLETED,
	SC_SQL_SELECT_ATTEMPT_COUNTS,
	SC_SQL_SELECT_BODY,
	SC_SQL_SELECT_CURRENT_OUTPUT,
	SC_SQL_UPDATE_RESULT,
	SC_SQL_INSERT_STAGE,
	SC_SQL_INSERT_ATTEMPT,
	SC_SQL_INSERT_NOTIFICATION,
	SC_SQL_RENEW_LEASES,
	SC_SQL_RELEASE_OWNER,
	SC_SQL_SELECT_PROGRESS,
	SC_SQL_CLOCK_READ,
	SC_SQL_CLOCK_WRITE,
	SC_SQL_CLOCK_SHIFT_DUE,
	SC_SQL_CLOCK_SHIFT_CYCLE,
	SC_SQL_CLOCK_SHIFT_LEASES,
	SC_SQL_CLOCK_SHIFT_NOTIFICATIONS,
	SC_SQL_SELECT_ACTIVE,
	SC_SQL_RECLAIM_ONE,
	SC_SQL_NEXT_DUE,
	SC_SQL_COUNT_ALL,
	SC_SQL_COUNT_LIST,
	SC_SQL_SUMMARY_BY_QUEUE_ID,
	SC_SQL_SELECT_STAGES,
	SC_SQL_SELECT_ATTEMPTS,
	SC_SQL_SELECT_RECIPIENTS,
	SC_SQL_SELECT_STAGE_OUTPUT,
	SC_SQL_DELETE_STAGE,
	SC_SQL_RETRY,
	SC_SQL_SELECT_MATCHING,
	SC_SQL_HOLD,
	SC_SQL_RELEASE,
	SC_SQL_DELETE_MESSAGE,
	SC_SQL_INSERT_AUDIT,
	/* sc-sqlite-notify.c */
	SC_SQL_NOTIFY_CLAIM,
	SC_SQL_NOTIFY_MARK_SENT,
	SC_SQL_NOTIFY_MARK_FAILED,
	SC_SQL_NOTIFY_COUNT_DUE,
	SC_SQL_NOTIFY_NEXT_DUE,
	SC_SQL_NOTIFY_INSERT_EVENT,
	SC_SQL_NOTIFY_COUNT_BACKLOG,
	/* sc-sqlite-search.c */
	SC_SQL_SEARCH,
	SC_SQL_SEARCH_STATE,
	SC_SQL_SEARCH_LIST,
	SC_SQL_SEARCH_STATE_LIST,
	SC_SQL_COUNT_BY_LIST,
	SC_SQL_AUDIT_PAGE,
	SC_SQL_NOTIFICATIONS_PAGE,
	SC_SQL_COUNT_NOTIFICATIONS_PENDING,
	SC_SQL_RECENT_ATTEMPTS,
	SC_SQL_ATTEMPTS_SINCE,
	SC_SQL_LAST,
} ScSql;

/* What one process knows about one spool file's durability, shared by
 * its connections to it (sc-sqlite-spool.c): commits are numbered under
 * the process's writer lock, and a durable commit (or a sync of the WAL)
 * makes every earlier one durable, whichever connection made it. */
typedef struct _ScSqliteDurability ScSqliteDurability;

/* The SQLite backend's connection (sc-spool-backend.h embeds ScSpool first). */
typedef struct {
	ScSpool parent;
	sqlite3 *db;			  /* (owned) */
	gboolean holds_writer;		  /* between sc_sqlite_begin and commit/rollback */
	gboolean unsynced;		  /* synchronous=NORMAL until commit/rollback */
	gboolean full_sync_only;	  /* never unsynced: WAL writes gathered (sc-sqlite-walbuf.c) */
	ScSqliteDurability *durability;	  /* (owned, a reference) this file's, per process */
	guint64 unsynced_through;	  /* this connection's last commit not known durable, or 0 */
	gboolean wrote_frames;		  /* the last COMMIT wrote WAL frames (wal_committed) */
	char *folder;			  /* (owned) */
	sqlite3_stmt *stmts[SC_SQL_LAST]; /* (owned) prepared lazily */
} ScSqliteSpool;

static inline ScSqliteSpool *
sc_sqlite (ScSpool *spool)
{
	return (ScSqliteSpool *)spool;
}

/* The backend's verbs (sc-spool-backend.h; each has its sc-spool.h
 * verb's contract), defined across the sc-sqlite-*.c files. */
gboolean
sc_sqlite_inject_batch (ScSpool *spool,
			const ScNewMessage *const *messages,
			guint n_messages,
			gint64 dedupe_window,
			char **out_queue_ids,
			guint *out_duplicates,
			char **out_duplicate_of,
			ScMessage **out_claimed,
			GError **error);
gboolean
sc_sqlite_prune_accepted (
    ScSpool *spool, gint64 before, guint limit, guint *out_pruned, GError **error);
GPtrArray *
sc_sqlite_claim_within (ScSpool *spool,
			const char *owner,
			gint64 now,
			gint64 lease_expires_at,
			guint limit,
			guint64 max_bytes,
			gboolean take_first,
			GError **error);
gboolean
sc_sqlite_commit_batch (ScSpool *spool,
			const char *owner,
			ScRecipientGroup *groups,
			guint n_groups,
			ScStageResult *const *results,
			guint n_results,
			gboolean durable,
			GError **error);
gboolean
sc_sqlite_renew_leases (ScSpool *spool,
			const char *owner,
			const ScLease *leases,
			guint n_leases,
			gint64 lease_expires_at,
			GError **error);
gboolean
sc_sqlite_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error);
guint
sc_sqlite_reclaim (ScSpool *spool,
		   const char *self_owner,
		   const ScLeaseProbe *probe,
		   gint64 now,
		   guint crash_limit,
		   GError **error);
gboolean
sc_sqlite_check_clock (ScSpool *spool,
		       gint64 wall,
		       gint64 boottime,
		       const char *boot_id,
		       gint64 threshold,
		       gint64 *out_step,
		       GError **error);
gboolean
sc_sqlite_next_due (ScSpool *spool, gint64 *out_time, GError **error);
ScOwner *
sc_sqlite_register_runner (ScSpool *spool, GError **error);
gboolean
sc_sqlite_runner_is_alive (ScSpool *spool, const char *owner);
GHashTable *
sc_sqlite_runner_in_handler (ScSpool *spool, const char *owner);
void
sc_sqlite_forget_runner (ScSpool *spool, const char *owner);
void
sc_sqlite_wake_runners (ScSpool *spool);
GSource *
sc_sqlite_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error);
gboolean
sc_sqlite_count_states (ScSpool *spool,
			const char *list_id,
			gint64 counts[SC_STATE_LAST],
			GError **error);
GPtrArray *
sc_sqlite_search (ScSpool *spool, const ScMessageSearch *search, GError **error);
ScMessageSummary *
sc_sqlite_get_summary (ScSpool *spool, const char *queue_id, GError **error);
GPtrArray *
sc_sqlite_get_stages (ScSpool *spool, gint64 id, GError **error);
GPtrArray *
sc_sqlite_get_attempts (ScSpool *spool, gint64 id, GError **error);
GPtrArray *
sc_sqlite_get_recipients (ScSpool *spool, gint64 id, GError **error);
GBytes *
sc_sqlite_get_raw (ScSpool *spool, gint64 id, GError **error);
GBytes *
sc_sqlite_get_stage_output (ScSpool *spool, gint64 id, const char *stage, GError **error);
gboolean
sc_sqlite_retry (ScSpool *spool,
		 const char *queue_id,
		 const char *from_stage,
		 const ScAuditContext *audit,
		 GError **error);
gboolean
sc_sqlite_retry_matching (ScSpool *spool,
			  ScMessageState state,
			  const char *list_id,
			  const ScAuditContext *audit,
			  guint *out_count,
			  GError **error);
gboolean
sc_sqlite_retry_list (ScSpool *spool,
		      GPtrArray *queue_ids,
		      const char *detail,
		      const ScAuditContext *audit,
		      guint *inout_count,
		      GError **error);
gboolean
sc_sqlite_hold (ScSpool *spool,
		const char *queue_id,
		const char *reason,
		const ScAuditContext *audit,
		GError **error);
gboolean
sc_sqlite_release (ScSpool *spool,
		   const char *queue_id,
		   const ScAuditContext *audit,
		   GError **error);
gboolean
sc_sqlite_delete_message (ScSpool *spool,
			  const char *queue_id,
			  const ScAuditContext *audit,
			  GError **error);
GPtrArray *
sc_sqlite_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error);
gboolean
sc_sqlite_notify_mark_sent (
    ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error);
gboolean
sc_sqlite_notify_mark_failed (ScSpool *spool,
			      const gint64 *ids,
			      guint n_ids,
			      gint64 next_attempt_at,
			      const char *last_error,
			      GError **error);
gboolean
sc_sqlite_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error);
gboolean
sc_sqlite_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error);
gboolean
sc_sqlite_notify_insert_event (
    ScSpool *spool, const char *kind, const char *detail, gint64 now, GError **error);
gboolean
sc_sqlite_notify_count_backlog (
    ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error);
GPtrArray *
sc_sqlite_count_by_list (ScSpool *spool, GError **error);
GPtrArray *
sc_sqlite_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error);
GPtrArray *
sc_sqlite_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error);
gboolean
sc_sqlite_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error);
GArray *
sc_sqlite_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error);
gboolean
sc_sqlite_fold_attempts (ScSpool *spool,
			 gint64 *inout_after_id,
			 guint limit,
			 ScAttemptFunc func,
			 gpointer user_data,
			 GError **error);

/* sc-sqlite-copy.c: the copy entries of the SQLite backend's table */
gboolean sc_sqlite_copy_begin (ScSpool *spool, gboolean write, GError **error);
GPtrArray *sc_sqlite_copy_out (
    ScSpool *spool, const ScCopyTable *table, GVariant *after, guint limit, GError **error);
gboolean sc_sqlite_copy_in (ScSpool *spool, const ScCopyTable *table, GPtrArray *rows, GError **error);
gboolean sc_sqlite_copy_count (ScSpool *spool, const ScCopyTable *table, guint64 *out_rows, GError **error);
gboolean sc_sqlite_copy_commit (ScSpool *spool, GError **error);
void sc_sqlite_copy_rollback (ScSpool *spool);

/* Resets and clears a cached statement when it goes out of scope. */
typedef sqlite3_stmt ScStatement;
void
sc_statement_reset (ScStatement *stmt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScStatement, sc_statement_reset)

ScStatement *
sc_sqlite_statement (ScSpool *spool, ScSql sql, GError **error);

/* A row of the summary column list (id, queue_id, state, … size), shared
 * by every query that lists messages. (transfer full) */
ScMessageSummary *
sc_sqlite_summary_from_row (ScStatement *stmt);

/* Steps @sql newest first from :after (0: from the newest) for at most
 * :limit rows (0: all), one object per row from @from_row. (transfer full) */
GPtrArray *
sc_sqlite_select_page (ScSpool *spool,
		       ScSql sql,
		       gint64 after_id,
		       guint limit,
		       gpointer (*from_row) (ScStatement *stmt),
		       GDestroyNotify free_func,
		       GError **error);

/* Named-parameter binding; a name the SQL lacks is a programming error. */
void
sc_bind_text (ScStatement *stmt, const char *name, const char *value);
void
sc_bind_int64 (ScStatement *stmt, const char *name, gint64 value);
void
sc_bind_bytes (ScStatement *stmt, const char *name, GBytes *value);
char *
sc_column_dup (ScStatement *stmt, int column);

/* SQLite result code → SC_SPOOL_ERROR, with what was being done. */
void
sc_sqlite_set_error (ScSpool *spool, int rc, GError **error, const char *doing);
gboolean
sc_sqlite_exec_simple (ScSpool *spool, ScSql sql, GError **error);
/* Steps a write statement to completion. */
gboolean
sc_sqlite_step_done (ScSpool *spool, ScStatement *stmt, GError **error, const char *doing);

gboolean
sc_sqlite_begin (ScSpool *spool, GError **error);
gboolean
sc_sqlite_commit (ScSpool *spool, GError **error);
gboolean
sc_sqlite_begin_unsynced (ScSpool *spool, GError **error);
guint64
sc_sqlite_unsynced_mark (ScSpool *spool);
gboolean
sc_sqlite_sync (ScSpool *spool, guint64 mark, GError **error);
void
sc_sqlite_rollback (ScSpool *spool);

/* For tests: the statement text and the connection, to check query plans
 * and to set limits (PRAGMA max_page_count) on the spool's own connection. */
const char *
sc_sqlite_sql_text (ScSql sql);
sqlite3 *
sc_sqlite_get_db (ScSpool *spool);

/* sc-sqlite-admin.c: one audit row, inside the caller's transaction */
gboolean
sc_sqlite_write_audit (ScSpool *spool,
		       const ScAuditContext *audit,
		       const char *action,
		       const char *queue_id,
		       const char *detail,
		       GError **error);

/* sc-sqlite-schema.c */
gboolean
sc_sqlite_schema_migrate (sqlite3 *db, GError **error);
extern const int sc_sqlite_schema_version;

G_END_DECLS
