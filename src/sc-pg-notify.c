/* sc-pg-notify.c — the PostgreSQL spool's notification outbox and the
 * admin API's other reads (per-list counts, audit log, outbox listing,
 * throughput, the attempt feed of /metrics), with the contracts of
 * sc-spool-notify.c and sc-spool-search.c.
 *
 * With several hosts each running a notifier, two must not send the same
 * row.  Two locks see to it:
 *
 *  - one notifier at a time: notify_claim takes rows only while its
 *    connection holds the session advisory lock SC_PG_NOTIFIER_LOCK (the
 *    first to ask gets it; it dies with the connection, so when that
 *    notifier's process dies the next one to drain takes over).  One
 *    sender keeps the receiver's view what it is with SQLite: one request
 *    at a time, one digest rate for the whole spool.  The others find
 *    nothing to claim and look again later (the notifier re-drains after
 *    SC_NOTIFY_SPOOL_RETRY when a claim comes back empty).
 *  - a lease per row: the claim takes the due rows FOR UPDATE SKIP LOCKED
 *    and moves their next_attempt_at SC_PG_NOTIFY_LEASE ahead, so a
 *    notifier that took over after a connection loss does not resend what
 *    the old one may still be sending.  mark_sent and mark_failed end the
 *    lease; a row whose notifier died is due again when the lease ends.
 *
 * What remains is the outbox's documented window: a row whose 2xx came
 * but whose mark_sent did not commit goes again, under the same delivery
 * id.  Every read walks the partial index notifications_due.
 */
#include "config.h"

#include <string.h>

#include "sc-pg-query-private.h"

/* ---- the outbox ---- */

static const ScPgStatement notifier_lock = {
    "sc_notify_lock",
    "SELECT pg_try_advisory_lock($1::int, $2::int)",
};

/* Ordered as SQLite's claim (earliest due first, then id) by the due
 * time the rows had before the lease moved it. */
static const ScPgStatement notify_claim = {
    "sc_notify_claim",
    "WITH due AS ("
    "  SELECT id, next_attempt_at AS due_at FROM notifications"
    "  WHERE state = 'pending' AND next_attempt_at <= $1"
    "  ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " leased AS ("
    "  UPDATE notifications AS n SET next_attempt_at = $3 FROM due WHERE n.id = due.id"
    "  RETURNING n.id, n.kind, n.message_id, n.queue_id, n.detail, n.created_at, n.attempts,"
    "  due.due_at)"
    " SELECT id, kind, message_id, queue_id, detail, created_at, attempts FROM leased"
    " ORDER BY due_at, id",
};

static const ScPgStatement notify_mark_sent = {
    "sc_notify_mark_sent",
    "UPDATE notifications SET state = 'sent', sent_at = $2, attempts = attempts + 1,"
    " last_error = NULL WHERE id = ANY ($1::bigint[]) AND state = 'pending'",
};

static const ScPgStatement notify_mark_failed = {
    "sc_notify_mark_failed",
    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $2,"
    " last_error = $3 WHERE id = ANY ($1::bigint[]) AND state = 'pending'",
};

static const ScPgStatement notify_count_due = {
    "sc_notify_count_due",
    "SELECT count(*) FROM notifications WHERE state = 'pending' AND next_attempt_at <= $1",
};

static const ScPgStatement notify_next_due = {
    "sc_notify_next_due",
    "SELECT min(next_attempt_at) FROM notifications WHERE state = 'pending'",
};

static const ScPgStatement notify_insert_event = {
    "sc_notify_insert_event",
    "INSERT INTO notifications (kind, detail, created_at, next_attempt_at)"
    " VALUES ($1, $2, $3, $3)",
};

/* bounded: stops counting past the threshold */
static const ScPgStatement notify_count_backlog = {
    "sc_notify_count_backlog",
    "SELECT count(*) FROM (SELECT 1 FROM messages"
    " WHERE state IN ('queued','deferred') AND next_attempt_at <= $1 LIMIT $2) AS due",
};

static gboolean
claim_locked (ScPgSpool *pg, gint64 now, guint limit, GPtrArray *rows, GError **error)
{
	g_auto(ScPgParams) lock = {0};
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) locked = NULL;
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_int64 (&lock, SC_PG_NOTIFIER_LOCK_CLASS);
	sc_pg_params_int64 (&lock, SC_PG_NOTIFIER_LOCK_ID);
	locked = sc_pg_exec (pg, &notifier_lock, &lock, "read notifications", error);
	if (locked == NULL)
		return FALSE;
	if (!sc_pg_get_bool (locked, 0, 0))
		return TRUE; /* another notifier sends */
	sc_pg_params_int64 (&params, now);
	sc_pg_params_int64 (&params, limit);
	/* saturating: the contract suite claims at G_MAXINT64 ("all") */
	sc_pg_params_int64 (&params, now > G_MAXINT64 - SC_PG_NOTIFY_LEASE ? G_MAXINT64 : now + SC_PG_NOTIFY_LEASE);
	result = sc_pg_exec (pg, &notify_claim, &params, "read notifications", error);
	if (result == NULL)
		return FALSE;
	for (int row = 0; row < PQntuples (result); row++) {
		ScNotification *notification = g_new0 (ScNotification, 1);
		notification->id = sc_pg_get_int64 (result, row, 0);
		notification->kind = sc_pg_dup_text (result, row, 1);
		notification->message_rowid = sc_pg_get_int64 (result, row, 2); /* NULL reads as 0 */
		notification->queue_id = sc_pg_dup_text (result, row, 3);
		notification->detail = sc_pg_dup_text (result, row, 4);
		notification->created_at = sc_pg_get_int64 (result, row, 5);
		notification->attempts = (guint) sc_pg_get_int64 (result, row, 6);
		g_ptr_array_add (rows, notification);
	}
	return TRUE;
}

GPtrArray *
sc_pg_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_notification_free);

	g_return_val_if_fail (spool != NULL, NULL);
	if (!sc_pg_begin (pg, error))
		return NULL;
	if (!claim_locked (pg, now, limit, rows, error)) {
		sc_pg_rollback (pg);
		return NULL;
	}
	if (!sc_pg_commit (pg, error))
		return NULL;
	return g_steal_pointer (&rows);
}

/* One statement over all the rows: atomic without a transaction of its own. */
static gboolean
update_all (ScPgSpool *pg,
	    const ScPgStatement *stmt,
	    const gint64 *ids,
	    guint n_ids,
	    gint64 time,
	    const char *last_error,
	    GError **error)
{
	g_auto(ScPgParams) params = {0};

	if (n_ids == 0)
		return TRUE;
	sc_pg_params_int64_array (&params, ids, n_ids);
	sc_pg_params_int64 (&params, time);
	if (stmt == &notify_mark_failed)
		sc_pg_params_text (&params, last_error);
	return sc_pg_exec_done (pg, stmt, &params, "update notification", NULL, error);
}

gboolean
sc_pg_notify_mark_sent (ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error)
{
	g_return_val_if_fail (spool != NULL, FALSE);
	return update_all (SC_PG_SPOOL (spool), &notify_mark_sent, ids, n_ids, now, NULL, error);
}

gboolean
sc_pg_notify_mark_failed (ScSpool *spool,
			  const gint64 *ids,
			  guint n_ids,
			  gint64 next_attempt_at,
			  const char *last_error,
			  GError **error)
{
	g_return_val_if_fail (spool != NULL, FALSE);
	return update_all (SC_PG_SPOOL (spool), &notify_mark_failed, ids, n_ids, next_attempt_at,
			   last_error, error);
}

/* A one-number read; *@out_null (nullable) tells SQL NULL apart. */
static gboolean
select_number (ScPgSpool *pg,
	       const ScPgStatement *stmt,
	       const ScPgParams *params,
	       const char *doing,
	       gint64 *out_value,
	       gboolean *out_null,
	       GError **error)
{
	g_autoptr(PGresult) result = sc_pg_exec (pg, stmt, params, doing, error);

	if (result == NULL)
		return FALSE;
	if (out_null != NULL)
		*out_null = sc_pg_is_null (result, 0, 0);
	*out_value = sc_pg_get_int64 (result, 0, 0);
	return TRUE;
}

gboolean
sc_pg_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error)
{
	g_auto(ScPgParams) params = {0};
	gint64 count = 0;

	g_return_val_if_fail (spool != NULL && out_count != NULL, FALSE);
	sc_pg_params_int64 (&params, now);
	if (!select_number (SC_PG_SPOOL (spool), &notify_count_due, &params, "count notifications", &count,
			    NULL, error))
		return FALSE;
	*out_count = (guint64) count;
	return TRUE;
}

gboolean
sc_pg_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	gboolean none = TRUE;
	gint64 time = 0;

	g_return_val_if_fail (spool != NULL && out_time != NULL, FALSE);
	if (!select_number (SC_PG_SPOOL (spool), &notify_next_due, NULL, "next notification", &time, &none,
			    error))
		return FALSE;
	if (none)
		return FALSE; /* none pending */
	*out_time = time;
	return TRUE;
}

gboolean
sc_pg_notify_insert_event (ScSpool *spool, const char *kind, const char *detail, gint64 now, GError **error)
{
	g_auto(ScPgParams) params = {0};

	g_return_val_if_fail (spool != NULL && kind != NULL, FALSE);
	sc_pg_params_text (&params, kind);
	sc_pg_params_text (&params, detail);
	sc_pg_params_int64 (&params, now);
	return sc_pg_exec_done (SC_PG_SPOOL (spool), &notify_insert_event, &params, "record notification",
				NULL, error);
}

gboolean
sc_pg_notify_count_backlog (ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error)
{
	g_auto(ScPgParams) params = {0};
	gint64 count = 0;

	g_return_val_if_fail (spool != NULL && out_count != NULL, FALSE);
	sc_pg_params_int64 (&params, now);
	sc_pg_params_int64 (&params, (gint64) MIN (limit, (guint64) G_MAXINT64));
	if (!select_number (SC_PG_SPOOL (spool), &notify_count_backlog, &params, "count notifications",
			    &count, NULL, error))
		return FALSE;
	*out_count = (guint64) count;
	return TRUE;
}

/* ---- the admin API's reads ---- */

/* Ordered by list_id in byte order (COLLATE "C"), as SQLite's BINARY:
 * each list's rows come together, lists in the same order on both. */
static const ScPgStatement count_by_list = {
    "sc_notify_count_by_list",
    "SELECT state, list_id, sum(count)::bigint FROM state_counts GROUP BY state, list_id"
    " HAVING sum(count) > 0 ORDER BY list_id COLLATE \"C\"",
};

static const ScPgStatement audit_page = {
    "sc_notify_audit_page",
    "SELECT id, at, actor, remote, action, queue_id, detail FROM audit"
    " WHERE id < $1 ORDER BY id DESC LIMIT $2::bigint",
};

static const ScPgStatement notifications_page = {
    "sc_notify_notifications_page",
    "SELECT id, kind, queue_id, detail, created_at, state, attempts, sent_at, last_error,"
    " next_attempt_at FROM notifications WHERE id < $1 ORDER BY id DESC LIMIT $2::bigint",
};

static const ScPgStatement count_notifications_pending = {
    "sc_notify_count_pending_all",
    "SELECT count(*) FROM notifications WHERE state = 'pending'",
};

/* Newest first by id, a page at a time from $1: the caller stops at the
 * first row older than its window, so only the last hour's attempts are
 * read.  The third column: was this the pipeline's last stage? */
static const ScPgStatement recent_attempts = {
    "sc_notify_recent_attempts",
    "SELECT a.id, a.finished_at, a.outcome, m.pipeline = a.stage"
    " OR right(m.pipeline, length(a.stage) + 1) = ';' || a.stage"
    " FROM attempts AS a LEFT JOIN messages AS m ON m.id = a.message_id"
    " WHERE a.id < $1 ORDER BY a.id DESC LIMIT $2",
};

/* attempts is append-only: /metrics folds in what is new since its last read */
static const ScPgStatement attempts_since = {
    "sc_notify_attempts_since",
    "SELECT id, stage, outcome, mailer, finished_at - started_at FROM attempts"
    " WHERE id > $1 ORDER BY id LIMIT $2::bigint",
};

/* A finished stage can be recorded a little after a later one started
 * (workers run in parallel); rows this much older than the window still
 * belong to the walk before it stops. */
#define THROUGHPUT_SLACK (10 * G_USEC_PER_SEC * 60)
#define THROUGHPUT_PAGE 1000

void
sc_pg_notify_plan_statements (const ScPgStatement *const **out_ordered, const ScPgStatement *const **out_indexed)
{
	static const ScPgStatement *const ordered[] = {
	    &audit_page, &notifications_page, &recent_attempts, &attempts_since, NULL,
	};
	/* the claim sorts the few rows it took (ties on due time by id) */
	static const ScPgStatement *const indexed[] = {
	    &notify_claim, &notify_count_due, &notify_next_due, &notify_count_backlog,
	    &count_notifications_pending, NULL,
	};

	*out_ordered = ordered;
	*out_indexed = indexed;
}

GPtrArray *
sc_pg_count_by_list (ScSpool *spool, GError **error)
{
	g_autoptr(GPtrArray) lists = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_list_counts_free);
	g_autoptr(PGresult) result = sc_pg_exec (SC_PG_SPOOL (spool), &count_by_list, NULL, "count", error);
	ScListCounts *current = NULL;

	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++) {
		const char *list_id = PQgetvalue (result, row, 1);
		ScMessageState state;

		if (sc_pg_is_null (result, row, 1))
			continue;
		/* rows come ordered by list */
		if (current == NULL || strcmp (current->list_id, list_id) != 0) {
			current = g_new0 (ScListCounts, 1);
			current->list_id = g_strdup (list_id);
			g_ptr_array_add (lists, current);
		}
		if (sc_message_state_from_string (PQgetvalue (result, row, 0), &state))
			current->counts[state] += sc_pg_get_int64 (result, row, 2);
	}
	return g_steal_pointer (&lists);
}

/* @stmt from $1 (0: the newest) for at most $2 rows (0: all). */
static GPtrArray *
select_page (ScSpool *spool,
	     const ScPgStatement *stmt,
	     gint64 after_id,
	     guint limit,
	     gpointer (*from_row) (const PGresult *result, int row),
	     GDestroyNotify free_func,
	     GError **error)
{
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_int64 (&params, after_id > 0 ? after_id : G_MAXINT64);
	if (limit > 0)
		sc_pg_params_int64 (&params, limit);
	else
		sc_pg_params_null (&params);
	result = sc_pg_exec (SC_PG_SPOOL (spool), stmt, &params, "list", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++)
		g_ptr_array_add (rows, from_row (result, row));
	return g_steal_pointer (&rows);
}

static gpointer
audit_from_row (const PGresult *result, int row)
{
	ScAuditEntry *entry = g_new0 (ScAuditEntry, 1);

	entry->id = sc_pg_get_int64 (result, row, 0);
	entry->at = sc_pg_get_int64 (result, row, 1);
	entry->actor = sc_pg_dup_text (result, row, 2);
	entry->remote = sc_pg_dup_text (result, row, 3);
	entry->action = sc_pg_dup_text (result, row, 4);
	entry->queue_id = sc_pg_dup_text (result, row, 5);
	entry->detail = sc_pg_dup_text (result, row, 6);
	return entry;
}

GPtrArray *
sc_pg_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return select_page (spool, &audit_page, after_id, limit, audit_from_row,
			    (GDestroyNotify) sc_audit_entry_free, error);
}

static gpointer
notification_from_row (const PGresult *result, int row)
{
	ScNotificationEntry *entry = g_new0 (ScNotificationEntry, 1);

	entry->id = sc_pg_get_int64 (result, row, 0);
	entry->kind = sc_pg_dup_text (result, row, 1);
	entry->queue_id = sc_pg_dup_text (result, row, 2);
	entry->detail = sc_pg_dup_text (result, row, 3);
	entry->created_at = sc_pg_get_int64 (result, row, 4);
	entry->state = sc_pg_dup_text (result, row, 5);
	entry->attempts = (guint) sc_pg_get_int64 (result, row, 6);
	entry->sent_at = sc_pg_get_int64 (result, row, 7);
	entry->last_error = sc_pg_dup_text (result, row, 8);
	entry->next_attempt_at = sc_pg_get_int64 (result, row, 9);
	return entry;
}

GPtrArray *
sc_pg_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return select_page (spool, &notifications_page, after_id, limit, notification_from_row,
			    (GDestroyNotify) sc_notification_entry_free, error);
}

gboolean
sc_pg_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error)
{
	return select_number (SC_PG_SPOOL (spool), &count_notifications_pending, NULL, "notifications",
			      out_count, NULL, error);
}

GArray *
sc_pg_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error)
{
	const gint64 minute = 60 * G_USEC_PER_SEC;
	gint64 last_start = now - now % minute;
	gint64 first_start = last_start - (gint64) (n_minutes - 1) * minute;
	g_autoptr(GArray) buckets = g_array_sized_new (FALSE, TRUE, sizeof (ScThroughput), n_minutes);
	gint64 before = G_MAXINT64;
	gboolean walked_past = FALSE;

	g_return_val_if_fail (n_minutes > 0, NULL);
	g_array_set_size (buckets, n_minutes);
	for (guint i = 0; i < n_minutes; i++)
		g_array_index (buckets, ScThroughput, i).at = first_start + (gint64) i * minute;
	while (!walked_past) {
		g_auto(ScPgParams) params = {0};
		g_autoptr(PGresult) result = NULL;
		int n_rows;

		sc_pg_params_int64 (&params, before);
		sc_pg_params_int64 (&params, THROUGHPUT_PAGE);
		result = sc_pg_exec (SC_PG_SPOOL (spool), &recent_attempts, &params, "throughput", error);
		if (result == NULL)
			return NULL;
		n_rows = PQntuples (result);
		for (int row = 0; row < n_rows; row++) {
			gint64 finished_at = sc_pg_get_int64 (result, row, 1);
			const char *outcome = PQgetvalue (result, row, 2);
			gboolean last_stage = sc_pg_get_bool (result, row, 3);
			ScThroughput *bucket;

			before = sc_pg_get_int64 (result, row, 0);
			if (finished_at < first_start - THROUGHPUT_SLACK) {
				walked_past = TRUE;
				break;
			}
			if (finished_at < first_start || finished_at >= last_start + minute)
				continue;
			bucket = &g_array_index (buckets, ScThroughput, (finished_at - first_start) / minute);
			if (strcmp (outcome, "ok") == 0) {
				if (last_stage)
					bucket->done++;
			} else if (strcmp (outcome, "released") != 0) {
				bucket->failed++;
			}
		}
		if (n_rows < THROUGHPUT_PAGE)
			break;
	}
	return g_steal_pointer (&buckets);
}

gboolean
sc_pg_fold_attempts (ScSpool *spool,
		     gint64 *inout_after_id,
		     guint limit,
		     ScAttemptFunc func,
		     gpointer user_data,
		     GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_int64 (&params, *inout_after_id);
	if (limit > 0)
		sc_pg_params_int64 (&params, limit);
	else
		sc_pg_params_null (&params);
	result = sc_pg_exec (SC_PG_SPOOL (spool), &attempts_since, &params, "attempts", error);
	if (result == NULL)
		return FALSE;
	for (int row = 0; row < PQntuples (result); row++) {
		*inout_after_id = sc_pg_get_int64 (result, row, 0);
		func (sc_pg_is_null (result, row, 1) ? NULL : PQgetvalue (result, row, 1),
		      sc_pg_is_null (result, row, 2) ? NULL : PQgetvalue (result, row, 2),
		      sc_pg_is_null (result, row, 3) ? NULL : PQgetvalue (result, row, 3),
		      sc_pg_get_int64 (result, row, 4),
		      user_data);
	}
	return TRUE;
}
