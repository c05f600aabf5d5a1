/* sc-sqlite-admin.c — operator actions on the spool: retry, hold, release,
 * delete.  Each checks the message's state, changes it and writes an audit
 * row in one transaction, so the log never claims an action that did not
 * happen.  A message leased by a runner is never touched: the runner's
 * result would overwrite the operator's decision. */
#include "config.h"

#include "sc-i18n.h"
#include "sc-sqlite-private.h"

gboolean
sc_sqlite_write_audit (ScSpool *spool,
	     const ScAuditContext *audit,
	     const char *action,
	     const char *queue_id,
	     const char *detail,
	     GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_AUDIT, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":now", audit->now);
	sc_bind_text (stmt, ":actor", audit->actor != NULL ? audit->actor : "local");
	sc_bind_text (stmt, ":remote", audit->remote);
	sc_bind_text (stmt, ":action", action);
	sc_bind_text (stmt, ":queue_id", queue_id);
	sc_bind_text (stmt, ":detail", detail);
	return sc_sqlite_step_done (spool, stmt, error, "audit");
}

/* Changes @message only while it is still in the state its
 * check read: under a backend with several writers another runner or
 * operator may have moved it since (SQLite's single writer makes the
 * check and the change one step, but the spool must not depend on it). */
static gboolean
update_message (ScSpool *spool,
		ScSql sql,
		const ScMessageSummary *message,
		gint64 now,
		const char *reason,
		GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":id", message->id);
	sc_bind_text (stmt, ":expected", sc_message_state_to_string (message->state));
	if (sql != SC_SQL_DELETE_MESSAGE)
		sc_bind_int64 (stmt, ":now", now);
	if (sql == SC_SQL_HOLD)
		sc_bind_text (stmt, ":reason", reason);
	if (!sc_sqlite_step_done (spool, stmt, error, "update"))
		return FALSE;
	if (sqlite3_changes (sc_sqlite (spool)->db) == 0) {
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID,
			     _("%s changed while this was being done (it was %s); nothing was changed"),
			     message->queue_id, sc_message_state_to_string (message->state));
		return FALSE;
	}
	return TRUE;
}

/* A new cycle gives refused recipients another chance (the operator fixed
 * the cause); recipients already sent are never sent again. */
static gboolean
reset_recipients (ScSpool *spool, gint64 rowid, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_RESET_RECIPIENTS, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":id", rowid);
	return sc_sqlite_step_done (spool, stmt, error, "retry");
}

/* Forgets the records of @from_stage and every later stage in the pipeline. */
static gboolean
forget_stages_from (ScSpool *spool, const ScMessageSummary *summary, const char *from_stage, GError **error)
{
	g_auto(GStrv) pipeline = g_strsplit (summary->pipeline, ";", -1);
	gboolean found = FALSE;

	for (guint i = 0; pipeline[i] != NULL; i++) {
		g_autoptr(ScStatement) stmt = NULL;
		if (!found && strcmp (pipeline[i], from_stage) != 0)
			continue;
		found = TRUE;
		stmt = sc_sqlite_statement (spool, SC_SQL_DELETE_STAGE, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_int64 (stmt, ":id", summary->id);
		sc_bind_text (stmt, ":stage", pipeline[i]);
		if (!sc_sqlite_step_done (spool, stmt, error, "retry"))
			return FALSE;
	}
	if (!found) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_INVALID,
			     _("stage %s is not in the pipeline of %s (%s)"),
			     from_stage,
			     summary->queue_id,
			     summary->pipeline);
		return FALSE;
	}
	return TRUE;
}

static gboolean
retry_locked (ScSpool *spool,
	      const char *queue_id,
	      const char *from_stage,
	      const ScAuditContext *audit,
	      GError **error)
{
	g_autoptr(ScMessageSummary) summary = sc_sqlite_get_summary (spool, queue_id, error);

	if (summary == NULL)
		return FALSE;
	if (summary->state == SC_STATE_DONE && from_stage == NULL) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_INVALID,
			     _("%s is done; use --from-stage to run stages again"),
			     queue_id);
		return FALSE;
	}
	if (!sc_message_state_allows (summary->state,
				      from_stage != NULL ? SC_ACTION_RETRY_FROM_STAGE : SC_ACTION_RETRY))
		return sc_spool_refuse_state (summary, "retry", error);
	if (from_stage != NULL && !forget_stages_from (spool, summary, from_stage, error))
		return FALSE;
	if (!update_message (spool, SC_SQL_RETRY, summary, audit->now, NULL, error))
		return FALSE;
	if (!reset_recipients (spool, summary->id, error))
		return FALSE;
	return sc_sqlite_write_audit (spool, audit, "retry", queue_id, from_stage, error);
}

gboolean
sc_sqlite_retry (ScSpool *spool,
		const char *queue_id,
		const char *from_stage,
		const ScAuditContext *audit,
		GError **error)
{
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	if (!retry_locked (spool, queue_id, from_stage, audit, error)) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	return sc_sqlite_commit (spool, error);
}

gboolean
sc_sqlite_retry_matching (ScSpool *spool,
			 ScMessageState state,
			 const char *list_id,
			 const ScAuditContext *audit,
			 guint *out_count,
			 GError **error)
{
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *detail = NULL;

	if (!sc_message_state_allows (state, SC_ACTION_RETRY_MATCHING)) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_INVALID,
			     _("cannot retry every %s message"),
			     sc_message_state_to_string (state));
		return FALSE;
	}
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SELECT_MATCHING, error);
		int rc;
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
		sc_bind_text (stmt, ":state", sc_message_state_to_string (state));
		sc_bind_text (stmt, ":list_id", list_id);
		while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
			g_ptr_array_add (queue_ids, sc_column_dup (stmt, 0));
		if (rc != SQLITE_DONE) {
			sc_sqlite_set_error (spool, rc, error, "retry");
			sc_sqlite_rollback (spool);
			return FALSE;
		}
	}
	for (guint i = 0; i < queue_ids->len; i++) {
		g_autoptr(ScMessageSummary) summary =
		    sc_sqlite_get_summary (spool, queue_ids->pdata[i], error);
		if (summary == NULL ||
		    !update_message (spool, SC_SQL_RETRY, summary, audit->now, NULL, error) ||
		    !reset_recipients (spool, summary->id, error)) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
	}
	detail = g_strdup_printf ("state=%s list=%s count=%u",
				  sc_message_state_to_string (state),
				  list_id != NULL ? list_id : "*",
				  queue_ids->len);
	if (!sc_sqlite_write_audit (spool, audit, "retry-bulk", NULL, detail, error)) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	if (!sc_sqlite_commit (spool, error))
		return FALSE;
	if (out_count != NULL)
		*out_count = queue_ids->len;
	return TRUE;
}

gboolean
sc_sqlite_retry_list (ScSpool *spool,
		     GPtrArray *queue_ids,
		     const char *detail,
		     const ScAuditContext *audit,
		     guint *inout_count,
		     GError **error)
{
	guint count = 0;
	g_autofree char *summary = NULL;

	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	for (guint i = 0; i < queue_ids->len; i++) {
		g_autoptr(ScMessageSummary) message = sc_sqlite_get_summary (spool, queue_ids->pdata[i], error);
		if (message == NULL) {
			if (g_error_matches (*error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND)) {
				g_clear_error (error); /* deleted since the search */
				continue;
			}
			sc_sqlite_rollback (spool);
			return FALSE;
		}
		if (!sc_message_state_allows (message->state, SC_ACTION_RETRY_MATCHING))
			continue; /* moved on since the search: not ours to retry */
		if (!update_message (spool, SC_SQL_RETRY, message, audit->now, NULL, error) ||
		    !reset_recipients (spool, message->id, error)) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
		count++;
	}
	/* a batch of a larger job has no row of its own: the last one says the total */
	if (detail != NULL) {
		summary = g_strdup_printf ("%s count=%u", detail, count + (inout_count != NULL ? *inout_count : 0));
		if (!sc_sqlite_write_audit (spool, audit, "retry-bulk", NULL, summary, error)) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
	}
	if (!sc_sqlite_commit (spool, error))
		return FALSE;
	if (inout_count != NULL)
		*inout_count += count;
	return TRUE;
}

typedef enum {
	ACTION_HOLD,
	ACTION_RELEASE,
	ACTION_DELETE,
} Action;

static gboolean
act_locked (ScSpool *spool,
	    Action action,
	    const char *queue_id,
	    const char *reason,
	    const ScAuditContext *audit,
	    GError **error)
{
	g_autoptr(ScMessageSummary) summary = sc_sqlite_get_summary (spool, queue_id, error);

	if (summary == NULL)
		return FALSE;
	switch (action) {
	case ACTION_HOLD:
		if (!sc_message_state_allows (summary->state, SC_ACTION_HOLD))
			return sc_spool_refuse_state (summary, "hold", error);
		if (!update_message (spool, SC_SQL_HOLD, summary, audit->now, reason, error))
			return FALSE;
		return sc_sqlite_write_audit (spool, audit, "hold", queue_id, reason, error);
	case ACTION_RELEASE:
		if (!sc_message_state_allows (summary->state, SC_ACTION_RELEASE))
			return sc_spool_refuse_state (summary, "release", error);
		if (!update_message (spool, SC_SQL_RELEASE, summary, audit->now, NULL, error))
			return FALSE;
		return sc_sqlite_write_audit (spool, audit, "release", queue_id, NULL, error);
	case ACTION_DELETE:
	default:
		if (!sc_message_state_allows (summary->state, SC_ACTION_DELETE))
			return sc_spool_refuse_state (summary, "delete", error);
		if (!update_message (spool, SC_SQL_DELETE_MESSAGE, summary, audit->now, NULL, error))
			return FALSE;
		return sc_sqlite_write_audit (spool, audit, "delete", queue_id, summary->subject, error);
	}
}

static gboolean
act (ScSpool *spool,
     Action action,
     const char *queue_id,
     const char *reason,
     const ScAuditContext *audit,
     GError **error)
{
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	if (!act_locked (spool, action, queue_id, reason, audit, error)) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	return sc_sqlite_commit (spool, error);
}

gboolean
sc_sqlite_hold (ScSpool *spool,
	       const char *queue_id,
	       const char *reason,
	       const ScAuditContext *audit,
	       GError **error)
{
	return act (spool, ACTION_HOLD, queue_id, reason != NULL ? reason : _("held by an operator"), audit, error);
}

gboolean
sc_sqlite_release (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return act (spool, ACTION_RELEASE, queue_id, NULL, audit, error);
}

gboolean
sc_sqlite_delete_message (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return act (spool, ACTION_DELETE, queue_id, NULL, audit, error);
}
