/* sc-spool-private.h — what the spool's own files share: the connection,
 * the statement cache and the error conversion.  Not for other modules. */
#pragma once

#include <sqlite3.h>

#include "sc-spool.h"

G_BEGIN_DECLS

/* Every SQL statement the spool runs, prepared once on first use. */
typedef enum {
	SC_SQL_BEGIN_IMMEDIATE,
	SC_SQL_COMMIT,
	SC_SQL_SYNC_NORMAL,
	SC_SQL_SYNC_FULL,
	SC_SQL_ROLLBACK,
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
	/* sc-spool-notify.c */
	SC_SQL_NOTIFY_CLAIM,
	SC_SQL_NOTIFY_MARK_SENT,
	SC_SQL_NOTIFY_MARK_FAILED,
	SC_SQL_NOTIFY_COUNT_DUE,
	SC_SQL_NOTIFY_NEXT_DUE,
	SC_SQL_NOTIFY_INSERT_EVENT,
	SC_SQL_NOTIFY_COUNT_BACKLOG,
	/* sc-spool-search.c */
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

struct _ScSpool {
	sqlite3 *db;                     /* (owned) */
	gboolean holds_writer;           /* between sc_spool_begin and commit/rollback */
	gboolean unsynced;               /* synchronous=NORMAL until commit/rollback */
	char *folder;                    /* (owned) */
	sqlite3_stmt *stmts[SC_SQL_LAST]; /* (owned) prepared lazily */
};

/* Resets and clears a cached statement when it goes out of scope. */
typedef sqlite3_stmt ScStatement;
void sc_statement_reset (ScStatement *stmt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScStatement, sc_statement_reset)

ScStatement *sc_spool_statement (ScSpool *spool, ScSql sql, GError **error);

/* A row of the summary column list (id, queue_id, state, … size), shared
 * by every query that lists messages. (transfer full) */
ScMessageSummary *sc_spool_summary_from_row (ScStatement *stmt);

/* Steps @sql newest first from :after (0: from the newest) for at most
 * :limit rows (0: all), one object per row from @from_row. (transfer full) */
GPtrArray *sc_spool_select_page (ScSpool *spool,
				 ScSql sql,
				 gint64 after_id,
				 guint limit,
				 gpointer (*from_row) (ScStatement *stmt),
				 GDestroyNotify free_func,
				 GError **error);

/* Named-parameter binding; a name the SQL lacks is a programming error. */
void sc_bind_text (ScStatement *stmt, const char *name, const char *value);
void sc_bind_int64 (ScStatement *stmt, const char *name, gint64 value);
void sc_bind_bytes (ScStatement *stmt, const char *name, GBytes *value);
char *sc_column_dup (ScStatement *stmt, int column);

/* SQLite result code → SC_SPOOL_ERROR, with what was being done. */
void sc_spool_set_error (ScSpool *spool, int rc, GError **error, const char *doing);
gboolean sc_spool_exec_simple (ScSpool *spool, ScSql sql, GError **error);
/* Steps a write statement to completion. */
gboolean sc_spool_step_done (ScSpool *spool, ScStatement *stmt, GError **error, const char *doing);

gboolean sc_spool_begin (ScSpool *spool, GError **error);
gboolean sc_spool_commit (ScSpool *spool, GError **error);
gboolean sc_spool_begin_unsynced (ScSpool *spool, GError **error);
void sc_spool_rollback (ScSpool *spool);

/* For tests: the statement text and the connection, to check query plans
 * and to set limits (PRAGMA max_page_count) on the spool's own connection. */
const char *sc_spool_sql_text (ScSql sql);
sqlite3 *sc_spool_get_db (ScSpool *spool);

/* sc-spool-admin.c: one audit row, inside the caller's transaction */
gboolean sc_spool_write_audit (ScSpool *spool,
			       const ScAuditContext *audit,
			       const char *action,
			       const char *queue_id,
			       const char *detail,
			       GError **error);

/* sc-spool-schema.c */
gboolean sc_spool_schema_migrate (sqlite3 *db, GError **error);
extern const int sc_spool_schema_version;

G_END_DECLS
