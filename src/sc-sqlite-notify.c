/* sc-sqlite-notify.c — the admin notification outbox: the notifier's verbs.
 *
 * Rows are written by the runner's transactions (message.dead,
 * recipients.failed) or here (events not tied to a message), and leave the
 * pending state only through sc_sqlite_notify_mark_sent, after a receiver
 * answered 2xx: a notification is never lost across restarts, at worst sent
 * twice under the same delivery id.  Every read walks the partial index
 * notifications_due; nothing here may scan the messages table or touch a
 * message's state.
 */
#include "config.h"

#include "sc-sqlite-private.h"

GPtrArray *
sc_sqlite_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error)
{
	g_autoptr(GPtrArray) rows =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) sc_notification_free);
	g_autoptr(ScStatement) stmt = NULL;
	int rc;

	g_return_val_if_fail (spool != NULL, NULL);
	stmt = sc_sqlite_statement (spool, SC_SQL_NOTIFY_CLAIM, error);
	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":now", now);
	sc_bind_int64 (stmt, ":limit", limit);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		ScNotification *row = g_new0 (ScNotification, 1);
		row->id = sqlite3_column_int64 (stmt, 0);
		row->kind = sc_column_dup (stmt, 1);
		row->message_rowid = sqlite3_column_int64 (stmt, 2); /* NULL reads as 0 */
		row->queue_id = sc_column_dup (stmt, 3);
		row->detail = sc_column_dup (stmt, 4);
		row->created_at = sqlite3_column_int64 (stmt, 5);
		row->attempts = (guint) sqlite3_column_int (stmt, 6);
		g_ptr_array_add (rows, row);
	}
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "read notifications");
		return NULL;
	}
	return g_steal_pointer (&rows);
}

static gboolean
update_each (ScSpool *spool,
	     ScSql sql,
	     const gint64 *ids,
	     guint n_ids,
	     gint64 now,
	     const char *last_error,
	     GError **error)
{
	if (n_ids == 0)
		return TRUE;
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	for (guint i = 0; i < n_ids; i++) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
		sc_bind_int64 (stmt, ":id", ids[i]);
		if (sql == SC_SQL_NOTIFY_MARK_SENT) {
			sc_bind_int64 (stmt, ":now", now);
		} else {
			sc_bind_int64 (stmt, ":next_attempt_at", now);
			sc_bind_text (stmt, ":last_error", last_error);
		}
		if (!sc_sqlite_step_done (spool, stmt, error, "update notification")) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
	}
	return sc_sqlite_commit (spool, error);
}

gboolean
sc_sqlite_notify_mark_sent (ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error)
{
	g_return_val_if_fail (spool != NULL, FALSE);
	return update_each (spool, SC_SQL_NOTIFY_MARK_SENT, ids, n_ids, now, NULL, error);
}

gboolean
sc_sqlite_notify_mark_failed (ScSpool *spool,
			     const gint64 *ids,
			     guint n_ids,
			     gint64 next_attempt_at,
			     const char *last_error,
			     GError **error)
{
	g_return_val_if_fail (spool != NULL, FALSE);
	return update_each (spool, SC_SQL_NOTIFY_MARK_FAILED, ids, n_ids, next_attempt_at,
			    last_error, error);
}

static gboolean
select_count (ScSpool *spool, ScStatement *stmt, guint64 *out_count, GError **error)
{
	int rc = sqlite3_step (stmt);

	if (rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, "count notifications");
		return FALSE;
	}
	*out_count = (guint64) sqlite3_column_int64 (stmt, 0);
	return TRUE;
}

gboolean
sc_sqlite_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error)
{
	g_autoptr(ScStatement) stmt = NULL;

	g_return_val_if_fail (spool != NULL && out_count != NULL, FALSE);
	stmt = sc_sqlite_statement (spool, SC_SQL_NOTIFY_COUNT_DUE, error);
	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":now", now);
	return select_count (spool, stmt, out_count, error);
}

gboolean
sc_sqlite_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	g_autoptr(ScStatement) stmt = NULL;
	int rc;

	g_return_val_if_fail (spool != NULL && out_time != NULL, FALSE);
	stmt = sc_sqlite_statement (spool, SC_SQL_NOTIFY_NEXT_DUE, error);
	if (stmt == NULL)
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, "next notification");
		return FALSE;
	}
	if (sqlite3_column_type (stmt, 0) == SQLITE_NULL)
		return FALSE; /* none pending */
	*out_time = sqlite3_column_int64 (stmt, 0);
	return TRUE;
}

gboolean
sc_sqlite_notify_insert_event (ScSpool *spool,
			      const char *kind,
			      const char *detail,
			      gint64 now,
			      GError **error)
{
	g_autoptr(ScStatement) stmt = NULL;

	g_return_val_if_fail (spool != NULL && kind != NULL, FALSE);
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	stmt = sc_sqlite_statement (spool, SC_SQL_NOTIFY_INSERT_EVENT, error);
	if (stmt == NULL) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	sc_bind_text (stmt, ":kind", kind);
	sc_bind_text (stmt, ":detail", detail);
	sc_bind_int64 (stmt, ":now", now);
	if (!sc_sqlite_step_done (spool, stmt, error, "record notification")) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	/* reset before COMMIT: a statement still stepping would hold the write */
	g_clear_pointer (&stmt, sc_statement_reset);
	return sc_sqlite_commit (spool, error);
}

gboolean
sc_sqlite_notify_count_backlog (ScSpool *spool,
			       gint64 now,
			       guint64 limit,
			       guint64 *out_count,
			       GError **error)
{
	g_autoptr(ScStatement) stmt = NULL;

	g_return_val_if_fail (spool != NULL && out_count != NULL, FALSE);
	stmt = sc_sqlite_statement (spool, SC_SQL_NOTIFY_COUNT_BACKLOG, error);
	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":now", now);
	sc_bind_int64 (stmt, ":limit", (gint64) MIN (limit, (guint64) G_MAXINT64));
	return select_count (spool, stmt, out_count, error);
}
