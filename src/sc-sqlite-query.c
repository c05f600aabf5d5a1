/* sc-sqlite-query.c — the spool's read side: counts, listings, one message's
 * history.  Nothing here writes; nothing here scans the queue for counts
 * (state_counts is kept by triggers). */
#include "config.h"

#include "sc-i18n.h"
#include "sc-sqlite-private.h"

gboolean
sc_sqlite_count_states (ScSpool *spool, const char *list_id, gint64 counts[SC_STATE_LAST], GError **error)
{
	g_autoptr(ScStatement) stmt =
	    sc_sqlite_statement (spool, list_id != NULL ? SC_SQL_COUNT_LIST : SC_SQL_COUNT_ALL, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	for (guint i = 0; i < SC_STATE_LAST; i++)
		counts[i] = 0;
	if (list_id != NULL)
		sc_bind_text (stmt, ":list_id", list_id);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		ScMessageState state;
		if (sc_message_state_from_string ((const char *) sqlite3_column_text (stmt, 0), &state))
			counts[state] += sqlite3_column_int64 (stmt, 1);
	}
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "count");
		return FALSE;
	}
	return TRUE;
}

ScMessageSummary *
sc_sqlite_summary_from_row (ScStatement *stmt)
{
	ScMessageSummary *summary = g_new0 (ScMessageSummary, 1);

	summary->id = sqlite3_column_int64 (stmt, 0);
	summary->queue_id = sc_column_dup (stmt, 1);
	(void) sc_message_state_from_string ((const char *) sqlite3_column_text (stmt, 2),
					     &summary->state);
	summary->list_id = sc_column_dup (stmt, 3);
	summary->sender = sc_column_dup (stmt, 4);
	summary->subject = sc_column_dup (stmt, 5);
	summary->message_id = sc_column_dup (stmt, 6);
	summary->last_error = sc_column_dup (stmt, 7);
	summary->hold_reason = sc_column_dup (stmt, 8);
	summary->pipeline = sc_column_dup (stmt, 9);
	summary->attempts = sqlite3_column_int (stmt, 10);
	summary->cycle = sqlite3_column_int (stmt, 11);
	summary->created_at = sqlite3_column_int64 (stmt, 12);
	summary->next_attempt_at = sqlite3_column_int64 (stmt, 13);
	summary->updated_at = sqlite3_column_int64 (stmt, 14);
	summary->size = sqlite3_column_int64 (stmt, 15);
	return summary;
}

ScMessageSummary *
sc_sqlite_get_summary (ScSpool *spool, const char *queue_id, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SUMMARY_BY_QUEUE_ID, error);
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_text (stmt, ":queue_id", queue_id);
	rc = sqlite3_step (stmt);
	if (rc == SQLITE_ROW)
		return sc_sqlite_summary_from_row (stmt);
	if (rc == SQLITE_DONE)
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_NOT_FOUND,
			     _("no message with queue id %s"),
			     queue_id);
	else
		sc_sqlite_set_error (spool, rc, error, "show");
	return NULL;
}

static void
stage_record_free (ScStageRecord *record)
{
	g_free (record->stage);
	g_free (record->note);
	g_free (record);
}

static void
attempt_record_free (ScAttemptRecord *record)
{
	g_free (record->stage);
	g_free (record->error);
	g_free (record->mailer);
	g_free (record);
}

static GPtrArray *
select_rows (ScSpool *spool,
	     ScSql sql,
	     gint64 rowid,
	     gpointer (*from_row) (ScStatement *stmt),
	     GDestroyNotify free_func,
	     GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":id", rowid);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
		g_ptr_array_add (rows, from_row (stmt));
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "read history");
		return NULL;
	}
	return g_steal_pointer (&rows);
}

GPtrArray *
sc_sqlite_select_page (ScSpool *spool,
		      ScSql sql,
		      gint64 after_id,
		      guint limit,
		      gpointer (*from_row) (ScStatement *stmt),
		      GDestroyNotify free_func,
		      GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":after", after_id > 0 ? after_id : G_MAXINT64);
	sc_bind_int64 (stmt, ":limit", limit > 0 ? (gint64) limit : -1);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
		g_ptr_array_add (rows, from_row (stmt));
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "list");
		return NULL;
	}
	return g_steal_pointer (&rows);
}

static gpointer
stage_from_row (ScStatement *stmt)
{
	ScStageRecord *record = g_new0 (ScStageRecord, 1);
	record->stage = sc_column_dup (stmt, 0);
	record->completed_at = sqlite3_column_int64 (stmt, 1);
	record->note = sc_column_dup (stmt, 2);
	record->output_size =
	    sqlite3_column_type (stmt, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64 (stmt, 3);
	return record;
}

static gpointer
attempt_from_row (ScStatement *stmt)
{
	ScAttemptRecord *record = g_new0 (ScAttemptRecord, 1);
	const char *outcome = (const char *) sqlite3_column_text (stmt, 1);

	record->stage = sc_column_dup (stmt, 0);
	for (ScOutcome o = SC_OUTCOME_OK; o <= SC_OUTCOME_RELEASED; o++) {
		if (g_strcmp0 (outcome, sc_outcome_to_string (o)) == 0)
			record->outcome = o;
	}
	record->error = sc_column_dup (stmt, 2);
	record->mailer = sc_column_dup (stmt, 3);
	record->cycle = sqlite3_column_int (stmt, 4);
	record->started_at = sqlite3_column_int64 (stmt, 5);
	record->finished_at = sqlite3_column_int64 (stmt, 6);
	return record;
}

static gpointer
recipient_from_row (ScStatement *stmt)
{
	ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);
	record->address = sc_column_dup (stmt, 0);
	record->status = sc_column_dup (stmt, 1);
	record->code = sqlite3_column_int (stmt, 2);
	record->reply = sc_column_dup (stmt, 3);
	record->mailer = sc_column_dup (stmt, 4);
	record->updated_at = sqlite3_column_int64 (stmt, 5);
	record->position = sqlite3_column_int (stmt, 6);
	return record;
}

GPtrArray *
sc_sqlite_get_stages (ScSpool *spool, gint64 rowid, GError **error)
{
	return select_rows (spool,
			    SC_SQL_SELECT_STAGES,
			    rowid,
			    stage_from_row,
			    (GDestroyNotify) stage_record_free,
			    error);
}

GPtrArray *
sc_sqlite_get_attempts (ScSpool *spool, gint64 rowid, GError **error)
{
	return select_rows (spool,
			    SC_SQL_SELECT_ATTEMPTS,
			    rowid,
			    attempt_from_row,
			    (GDestroyNotify) attempt_record_free,
			    error);
}

GPtrArray *
sc_sqlite_get_recipients (ScSpool *spool, gint64 rowid, GError **error)
{
	return select_rows (spool,
			    SC_SQL_SELECT_RECIPIENTS,
			    rowid,
			    recipient_from_row,
			    (GDestroyNotify) sc_recipient_record_free,
			    error);
}
