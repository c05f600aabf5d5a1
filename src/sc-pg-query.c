/* sc-pg-query.c — the PostgreSQL spool's read side: counts, the message
 * search and one message's history, with the contracts (and, for the
 * search, the very results) of the SQLite backend's sc-spool-query.c and
 * sc-spool-search.c.
 *
 * Nothing here writes.  Counts add up state_counts' delta rows (kept by
 * triggers, folded now and then): no scan of messages, and no single row
 * every writer must update.  A search walks its index backwards from its
 * cursor, as SQLite's does: one statement per filter shape, so each plans
 * onto (state, id), (list_id, id) or the primary key, with the text and
 * stage filters applied to the rows that walk meets.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-pg-query-private.h"

/* ---- counts ---- */

static const ScPgStatement count_all = {
    "sc_query_count_all",
    "SELECT state, sum(count)::bigint FROM state_counts GROUP BY state",
};

static const ScPgStatement count_list = {
    "sc_query_count_list",
    "SELECT state, sum(count)::bigint FROM state_counts WHERE list_id = $1 GROUP BY state",
};

gboolean
sc_pg_count_states (ScSpool *spool, const char *list_id, gint64 counts[SC_STATE_LAST], GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	if (list_id != NULL)
		sc_pg_params_text (&params, list_id);
	result = sc_pg_exec (pg, list_id != NULL ? &count_list : &count_all, &params, "count", error);
	if (result == NULL)
		return FALSE;
	for (guint i = 0; i < SC_STATE_LAST; i++)
		counts[i] = 0;
	for (int row = 0; row < PQntuples (result); row++) {
		ScMessageState state;
		if (sc_message_state_from_string (PQgetvalue (result, row, 0), &state))
			counts[state] += sc_pg_get_int64 (result, row, 1);
	}
	return TRUE;
}

/* ---- message summaries and the search ---- */

/* What a summary reads (summary_from_row's columns), as SQLite's. */
#define SUMMARY_COLUMNS                                                                            \
	"SELECT id, queue_id, state, list_id, sender, subject, message_id, last_error,"           \
	" hold_reason, pipeline, attempts, cycle, created_at, next_attempt_at, updated_at, size"

/* $1 an ILIKE pattern (NULL: any), $2 a stage (NULL: any), $3 the cursor,
 * $4 the limit (NULL: none).  COLLATE "C": ILIKE folds ASCII only, as
 * SQLite's LIKE does, whatever the database's collation (under en_US
 * "É" would match "é" here and not there).  The stage is the last
 * attempt's, else the pipeline's first. */
#define SEARCH_FILTERS                                                                             \
	" AND ($1::text IS NULL OR subject COLLATE \"C\" ILIKE $1 ESCAPE '\\'"                      \
	" OR sender COLLATE \"C\" ILIKE $1 ESCAPE '\\'"                                            \
	" OR message_id COLLATE \"C\" ILIKE $1 ESCAPE '\\'"                                        \
	" OR last_error COLLATE \"C\" ILIKE $1 ESCAPE '\\'"                                        \
	" OR queue_id COLLATE \"C\" ILIKE $1 ESCAPE '\\')"                                         \
	" AND ($2::text IS NULL OR $2 = COALESCE((SELECT stage FROM attempts"                      \
	" WHERE attempts.message_id = messages.id ORDER BY attempts.id DESC LIMIT 1),"             \
	" split_part(pipeline, ';', 1)))"
#define SEARCH_ORDER " ORDER BY id DESC LIMIT $4::bigint"

static const ScPgStatement search_any = {
    "sc_query_search",
    SUMMARY_COLUMNS " FROM messages WHERE id < $3::bigint" SEARCH_FILTERS SEARCH_ORDER,
};

static const ScPgStatement search_state = {
    "sc_query_search_state",
    SUMMARY_COLUMNS " FROM messages WHERE state = $5 AND id < $3::bigint" SEARCH_FILTERS SEARCH_ORDER,
};

static const ScPgStatement search_list = {
    "sc_query_search_list",
    SUMMARY_COLUMNS " FROM messages WHERE list_id = $5 AND id < $3::bigint" SEARCH_FILTERS SEARCH_ORDER,
};

static const ScPgStatement search_state_list = {
    "sc_query_search_state_list",
    SUMMARY_COLUMNS " FROM messages WHERE state = $5 AND list_id = $6 AND id < $3::bigint"
    SEARCH_FILTERS SEARCH_ORDER,
};

static const ScPgStatement summary_by_queue_id = {
    "sc_query_summary",
    SUMMARY_COLUMNS " FROM messages WHERE queue_id = $1",
};

static const ScPgStatement summary_for_update = {
    "sc_query_summary_for_update",
    SUMMARY_COLUMNS " FROM messages WHERE queue_id = $1 FOR UPDATE",
};

static ScMessageSummary *
summary_from_row (const PGresult *result, int row)
{
	ScMessageSummary *summary = g_new0 (ScMessageSummary, 1);

	summary->id = sc_pg_get_int64 (result, row, 0);
	summary->queue_id = sc_pg_dup_text (result, row, 1);
	(void) sc_message_state_from_string (PQgetvalue (result, row, 2), &summary->state);
	summary->list_id = sc_pg_dup_text (result, row, 3);
	summary->sender = sc_pg_dup_text (result, row, 4);
	summary->subject = sc_pg_dup_text (result, row, 5);
	summary->message_id = sc_pg_dup_text (result, row, 6);
	summary->last_error = sc_pg_dup_text (result, row, 7);
	summary->hold_reason = sc_pg_dup_text (result, row, 8);
	summary->pipeline = sc_pg_dup_text (result, row, 9);
	summary->attempts = (guint) sc_pg_get_int64 (result, row, 10);
	summary->cycle = (guint) sc_pg_get_int64 (result, row, 11);
	summary->created_at = sc_pg_get_int64 (result, row, 12);
	summary->next_attempt_at = sc_pg_get_int64 (result, row, 13);
	summary->updated_at = sc_pg_get_int64 (result, row, 14);
	summary->size = sc_pg_get_int64 (result, row, 15);
	return summary;
}

char *
sc_pg_like_pattern (const char *query)
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
sc_pg_search (ScSpool *spool, const ScMessageSearch *search, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	const ScPgStatement *stmt = search->has_state
					? (search->list_id != NULL ? &search_state_list : &search_state)
					: (search->list_id != NULL ? &search_list : &search_any);
	g_autoptr(GPtrArray) summaries =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_summary_free);
	g_autofree char *pattern = NULL;
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	g_return_val_if_fail (spool != NULL, NULL);
	g_return_val_if_fail (search != NULL, NULL);

	if (search->query != NULL && *search->query != '\0')
		pattern = sc_pg_like_pattern (search->query);
	sc_pg_params_text (&params, pattern);
	sc_pg_params_text (&params, search->stage != NULL && *search->stage != '\0' ? search->stage : NULL);
	sc_pg_params_int64 (&params, search->after_id > 0 ? search->after_id : G_MAXINT64);
	if (search->limit > 0)
		sc_pg_params_int64 (&params, search->limit);
	else
		sc_pg_params_null (&params); /* LIMIT NULL: all */
	if (search->has_state)
		sc_pg_params_text (&params, sc_message_state_to_string (search->state));
	if (search->list_id != NULL)
		sc_pg_params_text (&params, search->list_id);
	result = sc_pg_exec (pg, stmt, &params, "search", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++)
		g_ptr_array_add (summaries, summary_from_row (result, row));
	return g_steal_pointer (&summaries);
}

static ScMessageSummary *
get_summary (ScPgSpool *pg, const ScPgStatement *stmt, const char *queue_id, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_text (&params, queue_id);
	result = sc_pg_exec (pg, stmt, &params, "show", error);
	if (result == NULL)
		return NULL;
	if (PQntuples (result) == 0) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_NOT_FOUND,
			     _("no message with queue id %s"),
			     queue_id);
		return NULL;
	}
	return summary_from_row (result, 0);
}

ScMessageSummary *
sc_pg_get_summary (ScSpool *spool, const char *queue_id, GError **error)
{
	return get_summary (SC_PG_SPOOL (spool), &summary_by_queue_id, queue_id, error);
}

ScMessageSummary *
sc_pg_get_summary_for_update (ScPgSpool *pg, const char *queue_id, GError **error)
{
	g_return_val_if_fail (pg->in_transaction, NULL);
	return get_summary (pg, &summary_for_update, queue_id, error);
}

void
sc_pg_query_plan_statements (const ScPgStatement *const **out_ordered, const ScPgStatement *const **out_indexed)
{
	static const ScPgStatement *const ordered[] = {
	    &search_any, &search_state, &search_list, &search_state_list, NULL,
	};
	static const ScPgStatement *const indexed[] = {&summary_by_queue_id, &summary_for_update, NULL};

	*out_ordered = ordered;
	*out_indexed = indexed;
}

/* ---- one message's history ---- */

static const ScPgStatement select_stages = {
    "sc_query_stages",
    "SELECT stage, completed_at, note, octet_length(output) FROM stages WHERE message_id = $1"
    " ORDER BY id",
};

static const ScPgStatement select_attempts = {
    "sc_query_attempts",
    "SELECT stage, outcome, error, mailer, cycle, started_at, finished_at FROM attempts"
    " WHERE message_id = $1 ORDER BY id",
};

static const ScPgStatement select_recipients = {
    "sc_query_recipients",
    "SELECT address, status, code, reply, mailer, updated_at, position FROM recipients"
    " WHERE message_id = $1 ORDER BY position",
};

static const ScPgStatement select_body = {
    "sc_query_body",
    "SELECT raw FROM bodies WHERE message_id = $1",
    TRUE,
};

static const ScPgStatement select_stage_output = {
    "sc_query_stage_output",
    "SELECT output FROM stages WHERE message_id = $1 AND stage = $2",
    TRUE,
};

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

static gpointer
stage_from_row (const PGresult *result, int row)
{
	ScStageRecord *record = g_new0 (ScStageRecord, 1);

	record->stage = sc_pg_dup_text (result, row, 0);
	record->completed_at = sc_pg_get_int64 (result, row, 1);
	record->note = sc_pg_dup_text (result, row, 2);
	record->output_size = sc_pg_is_null (result, row, 3) ? -1 : sc_pg_get_int64 (result, row, 3);
	return record;
}

static gpointer
attempt_from_row (const PGresult *result, int row)
{
	ScAttemptRecord *record = g_new0 (ScAttemptRecord, 1);
	const char *outcome = PQgetvalue (result, row, 1);

	record->stage = sc_pg_dup_text (result, row, 0);
	for (ScOutcome o = SC_OUTCOME_OK; o <= SC_OUTCOME_RELEASED; o++) {
		if (g_strcmp0 (outcome, sc_outcome_to_string (o)) == 0)
			record->outcome = o;
	}
	record->error = sc_pg_dup_text (result, row, 2);
	record->mailer = sc_pg_dup_text (result, row, 3);
	record->cycle = (guint) sc_pg_get_int64 (result, row, 4);
	record->started_at = sc_pg_get_int64 (result, row, 5);
	record->finished_at = sc_pg_get_int64 (result, row, 6);
	return record;
}

static gpointer
recipient_from_row (const PGresult *result, int row)
{
	ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);

	record->address = sc_pg_dup_text (result, row, 0);
	record->status = sc_pg_dup_text (result, row, 1);
	record->code = (int) sc_pg_get_int64 (result, row, 2);
	record->reply = sc_pg_dup_text (result, row, 3);
	record->mailer = sc_pg_dup_text (result, row, 4);
	record->updated_at = sc_pg_get_int64 (result, row, 5);
	record->position = (guint) sc_pg_get_int64 (result, row, 6);
	return record;
}

static GPtrArray *
select_rows (ScSpool *spool,
	     const ScPgStatement *stmt,
	     gint64 id,
	     gpointer (*from_row) (const PGresult *result, int row),
	     GDestroyNotify free_func,
	     GError **error)
{
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_int64 (&params, id);
	result = sc_pg_exec (SC_PG_SPOOL (spool), stmt, &params, "read history", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++)
		g_ptr_array_add (rows, from_row (result, row));
	return g_steal_pointer (&rows);
}

GPtrArray *
sc_pg_get_stages (ScSpool *spool, gint64 id, GError **error)
{
	return select_rows (spool, &select_stages, id, stage_from_row, (GDestroyNotify) stage_record_free, error);
}

GPtrArray *
sc_pg_get_attempts (ScSpool *spool, gint64 id, GError **error)
{
	return select_rows (spool, &select_attempts, id, attempt_from_row,
			    (GDestroyNotify) attempt_record_free, error);
}

GPtrArray *
sc_pg_get_recipients (ScSpool *spool, gint64 id, GError **error)
{
	return select_rows (spool, &select_recipients, id, recipient_from_row,
			    (GDestroyNotify) sc_recipient_record_free, error);
}

/* One bytea, NOT_FOUND when there is no row or it is NULL. */
static GBytes *
select_blob (ScSpool *spool, const ScPgStatement *stmt, gint64 id, const char *stage, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_int64 (&params, id);
	if (stage != NULL)
		sc_pg_params_text (&params, stage);
	result = sc_pg_exec (SC_PG_SPOOL (spool), stmt, &params, "read", error);
	if (result == NULL)
		return NULL;
	if (PQntuples (result) > 0 && !sc_pg_is_null (result, 0, 0))
		return sc_pg_get_bytes (result, 0, 0);
	if (stage != NULL)
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND,
			     _("no output recorded for stage %s"), stage);
	else
		g_set_error_literal (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND, _("no message body"));
	return NULL;
}

GBytes *
sc_pg_get_raw (ScSpool *spool, gint64 id, GError **error)
{
	return select_blob (spool, &select_body, id, NULL, error);
}

GBytes *
sc_pg_get_stage_output (ScSpool *spool, gint64 id, const char *stage, GError **error)
{
	g_return_val_if_fail (stage != NULL, NULL);
	return select_blob (spool, &select_stage_output, id, stage, error);
}
