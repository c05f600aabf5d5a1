/* sc-sqlite-search.c — the reads behind the admin API: message search with
 * keyset pagination, per-list counts, the audit log, the notification
 * outbox, recent throughput and the attempt feed of /metrics.
 *
 * Nothing here writes, and nothing here may read the whole queue: a
 * search walks messages_state or messages_list (or the rowid) backwards
 * from its cursor and stops at its limit; the text filter is a LIKE on the
 * rows that walk meets, so a rare needle may walk far, but never with
 * OFFSET and never sorting the table.  Throughput reads attempts newest
 * first and stops at the first row older than its window.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-sqlite-private.h"

/* A finished stage can be recorded a little after a later one started
 * (workers run in parallel); rows this much older than the window still
 * belong to the walk before it stops. */
#define THROUGHPUT_SLACK (10 * G_USEC_PER_SEC * 60)

/* "50%_off" → "%50\%\_off%" for LIKE … ESCAPE '\' */
static char *
like_pattern (const char *query)
{
	GString *pattern = g_string_new ("%");

	for (const char *p = query; *p != '\0'; p++) {
		if (*p == '%' || *p == '_' || *p == '\\')
			g_string_append_c (pattern, '\\');
		g_string_append_c (pattern, *p);
	}
	g_string_append_c (pattern, '%');
	return g_string_free (pattern, FALSE);
}

GPtrArray *
sc_sqlite_search (ScSpool *spool, const ScMessageSearch *search, GError **error)
{
	ScSql sql = search->has_state
			? (search->list_id != NULL ? SC_SQL_SEARCH_STATE_LIST : SC_SQL_SEARCH_STATE)
			: (search->list_id != NULL ? SC_SQL_SEARCH_LIST : SC_SQL_SEARCH);
	g_autoptr(ScStatement) stmt = NULL;
	g_autoptr(GPtrArray) summaries =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_summary_free);
	g_autofree char *pattern = NULL;
	int rc;

	g_return_val_if_fail (spool != NULL, NULL);
	g_return_val_if_fail (search != NULL, NULL);

	stmt = sc_sqlite_statement (spool, sql, error);
	if (stmt == NULL)
		return NULL;
	if (search->has_state)
		sc_bind_text (stmt, ":state", sc_message_state_to_string (search->state));
	if (search->list_id != NULL)
		sc_bind_text (stmt, ":list_id", search->list_id);
	if (search->query != NULL && *search->query != '\0')
		pattern = like_pattern (search->query);
	sc_bind_text (stmt, ":query", pattern);
	sc_bind_text (stmt, ":stage", search->stage != NULL && *search->stage != '\0' ? search->stage : NULL);
	sc_bind_int64 (stmt, ":after", search->after_id > 0 ? search->after_id : G_MAXINT64);
	sc_bind_int64 (stmt, ":limit", search->limit > 0 ? (gint64) search->limit : -1);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
		g_ptr_array_add (summaries, sc_sqlite_summary_from_row (stmt));
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "search");
		return NULL;
	}
	return g_steal_pointer (&summaries);
}

GPtrArray *
sc_sqlite_count_by_list (ScSpool *spool, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_COUNT_BY_LIST, error);
	g_autoptr(GPtrArray) lists = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_list_counts_free);
	ScListCounts *current = NULL;
	int rc;

	if (stmt == NULL)
		return NULL;
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		const char *list_id = (const char *) sqlite3_column_text (stmt, 1);
		ScMessageState state;

		if (list_id == NULL)
			continue;
		/* rows come ordered by list */
		if (current == NULL || strcmp (current->list_id, list_id) != 0) {
			current = g_new0 (ScListCounts, 1);
			current->list_id = g_strdup (list_id);
			g_ptr_array_add (lists, current);
		}
		if (sc_message_state_from_string ((const char *) sqlite3_column_text (stmt, 0), &state))
			current->counts[state] += sqlite3_column_int64 (stmt, 2);
	}
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "count");
		return NULL;
	}
	return g_steal_pointer (&lists);
}

static gpointer
audit_from_row (ScStatement *stmt)
{
	ScAuditEntry *entry = g_new0 (ScAuditEntry, 1);

	entry->id = sqlite3_column_int64 (stmt, 0);
	entry->at = sqlite3_column_int64 (stmt, 1);
	entry->actor = sc_column_dup (stmt, 2);
	entry->remote = sc_column_dup (stmt, 3);
	entry->action = sc_column_dup (stmt, 4);
	entry->queue_id = sc_column_dup (stmt, 5);
	entry->detail = sc_column_dup (stmt, 6);
	return entry;
}

GPtrArray *
sc_sqlite_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return sc_sqlite_select_page (spool, SC_SQL_AUDIT_PAGE, after_id, limit, audit_from_row,
				     (GDestroyNotify) sc_audit_entry_free, error);
}

static gpointer
notification_from_row (ScStatement *stmt)
{
	ScNotificationEntry *entry = g_new0 (ScNotificationEntry, 1);

	entry->id = sqlite3_column_int64 (stmt, 0);
	entry->kind = sc_column_dup (stmt, 1);
	entry->queue_id = sc_column_dup (stmt, 2);
	entry->detail = sc_column_dup (stmt, 3);
	entry->created_at = sqlite3_column_int64 (stmt, 4);
	entry->state = sc_column_dup (stmt, 5);
	entry->attempts = sqlite3_column_int (stmt, 6);
	entry->sent_at = sqlite3_column_int64 (stmt, 7);
	entry->last_error = sc_column_dup (stmt, 8);
	entry->next_attempt_at = sqlite3_column_int64 (stmt, 9);
	return entry;
}

GPtrArray *
sc_sqlite_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return sc_sqlite_select_page (spool, SC_SQL_NOTIFICATIONS_PAGE, after_id, limit,
				     notification_from_row,
				     (GDestroyNotify) sc_notification_entry_free, error);
}

gboolean
sc_sqlite_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error)
{
	g_autoptr(ScStatement) stmt =
	    sc_sqlite_statement (spool, SC_SQL_COUNT_NOTIFICATIONS_PENDING, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, "notifications");
		return FALSE;
	}
	*out_count = sqlite3_column_int64 (stmt, 0);
	return TRUE;
}

GArray *
sc_sqlite_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error)
{
	const gint64 minute = 60 * G_USEC_PER_SEC;
	gint64 last_start = now - now % minute;
	gint64 first_start = last_start - (gint64) (n_minutes - 1) * minute;
	g_autoptr(GArray) buckets = g_array_sized_new (FALSE, TRUE, sizeof (ScThroughput), n_minutes);
	g_autoptr(ScStatement) stmt = NULL;
	int rc;

	g_return_val_if_fail (n_minutes > 0, NULL);
	g_array_set_size (buckets, n_minutes);
	for (guint i = 0; i < n_minutes; i++)
		g_array_index (buckets, ScThroughput, i).at = first_start + (gint64) i * minute;
	stmt = sc_sqlite_statement (spool, SC_SQL_RECENT_ATTEMPTS, error);
	if (stmt == NULL)
		return NULL;
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		gint64 finished_at = sqlite3_column_int64 (stmt, 0);
		const char *outcome = (const char *) sqlite3_column_text (stmt, 1);
		gboolean last_stage = sqlite3_column_int (stmt, 2) != 0;
		ScThroughput *bucket;

		if (finished_at < first_start - THROUGHPUT_SLACK)
			break;
		if (finished_at < first_start || finished_at >= last_start + minute)
			continue;
		bucket = &g_array_index (buckets, ScThroughput, (finished_at - first_start) / minute);
		if (g_strcmp0 (outcome, "ok") == 0) {
			if (last_stage)
				bucket->done++;
		} else if (g_strcmp0 (outcome, "released") != 0) {
			bucket->failed++;
		}
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, "throughput");
		return NULL;
	}
	return g_steal_pointer (&buckets);
}

gboolean
sc_sqlite_fold_attempts (ScSpool *spool,
			gint64 *inout_after_id,
			guint limit,
			ScAttemptFunc func,
			gpointer user_data,
			GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_ATTEMPTS_SINCE, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":after", *inout_after_id);
	sc_bind_int64 (stmt, ":limit", limit > 0 ? (gint64) limit : -1);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		*inout_after_id = sqlite3_column_int64 (stmt, 0);
		func ((const char *) sqlite3_column_text (stmt, 1),
		      (const char *) sqlite3_column_text (stmt, 2),
		      (const char *) sqlite3_column_text (stmt, 3),
		      sqlite3_column_int64 (stmt, 4),
		      user_data);
	}
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "attempts");
		return FALSE;
	}
	return TRUE;
}
