/* sc-pg-admin.c — operator actions on the PostgreSQL spool: retry, hold,
 * release, delete, with the contracts of sc-spool-admin.c.
 *
 * Each is one transaction: it reads the message with its row locked
 * (FOR UPDATE), checks sc_message_state_allows, changes it only in the
 * state it read (`AND state = $expected`, which cannot then miss but
 * states the rule) and writes its audit row, so the log never claims an
 * action that did not happen.  The lock orders the action against a
 * runner's claim on another host: whichever commits first, the other
 * sees its result — an operator never changes a message a runner holds.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-pg-query-private.h"

static const ScPgStatement retry_message = {
    "sc_admin_retry",
    "UPDATE messages SET state = 'queued', cycle = cycle + 1, cycle_started_at = $3,"
    " attempts = 0, crashes = 0, next_attempt_at = $3, updated_at = $3,"
    " hold_reason = NULL WHERE id = $1 AND state = $2",
};

static const ScPgStatement hold_message = {
    "sc_admin_hold",
    "UPDATE messages SET state = 'held', hold_reason = $4, next_attempt_at = NULL,"
    " updated_at = $3 WHERE id = $1 AND state = $2",
};

static const ScPgStatement release_message = {
    "sc_admin_release",
    "UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
    " hold_reason = NULL, crashes = 0, next_attempt_at = $3, updated_at = $3"
    " WHERE id = $1 AND state = $2",
};

static const ScPgStatement delete_message = {
    "sc_admin_delete",
    "DELETE FROM messages WHERE id = $1 AND state = $2",
};

/* a new cycle tries every recipient not yet sent again */
static const ScPgStatement reset_recipients = {
    "sc_admin_reset_recipients",
    "UPDATE recipients SET status = 'pending' WHERE message_id = $1"
    " AND status IN ('failed', 'deferred')",
};

static const ScPgStatement delete_stage = {
    "sc_admin_delete_stage",
    "DELETE FROM stages WHERE message_id = $1 AND stage = $2",
};

/* The bulk retries, each one statement (one round trip for a batch of
 * thousands): the messages named ($1, queue ids) or all of one state and
 * list ($1 state, $2 list), if in a state that allows a bulk retry ($3,
 * from sc_message_state_allows), their refused recipients, and how many.
 * Rows are locked in id order first, so two bulk retries at once queue
 * behind each other instead of deadlocking; under READ COMMITTED a row
 * another transaction moved meanwhile is re-checked after its lock and
 * left out if no longer retryable. */
#define RETRY_BULK(TARGETS)                                                                        \
	"WITH targets AS (SELECT id FROM messages WHERE " TARGETS " AND state = ANY ($3::text[])"  \
	"  ORDER BY id FOR UPDATE),"                                                               \
	" retried AS ("                                                                            \
	"  UPDATE messages AS m SET state = 'queued', cycle = cycle + 1, cycle_started_at = $4,"   \
	"  attempts = 0, crashes = 0, next_attempt_at = $4, updated_at = $4, hold_reason = NULL"   \
	"  FROM targets WHERE m.id = targets.id AND m.state = ANY ($3::text[]) RETURNING m.id),"   \
	" reset AS ("                                                                              \
	"  UPDATE recipients SET status = 'pending' FROM retried"                                  \
	"  WHERE recipients.message_id = retried.id AND recipients.status IN ('failed', 'deferred')" \
	"  RETURNING 1)"                                                                           \
	" SELECT count(*) FROM retried"

static const ScPgStatement retry_matching = {
    "sc_admin_retry_matching",
    RETRY_BULK ("state = $1 AND ($2::text IS NULL OR list_id = $2)"),
};

static const ScPgStatement retry_queue_ids = {
    "sc_admin_retry_queue_ids",
    /* $2 unused: the same parameters as retry_matching's */
    RETRY_BULK ("queue_id = ANY ($1::text[]) AND $2::text IS NULL"),
};

/* The states sc_message_state_allows lets a bulk retry take, as a
 * text[] parameter: the one table stays the only rule. */
static void
params_bulk_states (ScPgParams *params)
{
	const char *states[SC_STATE_LAST];
	guint n = 0;

	for (ScMessageState state = 0; state < SC_STATE_LAST; state++) {
		if (sc_message_state_allows (state, SC_ACTION_RETRY_MATCHING))
			states[n++] = sc_message_state_to_string (state);
	}
	sc_pg_params_text_array (params, states, n);
}

/* Changes @message only while it is still in the state its check read
 * (the row lock makes a miss impossible here; the condition is the rule
 * every backend follows). */
static gboolean
update_message (ScPgSpool *pg,
		const ScPgStatement *stmt,
		const ScMessageSummary *message,
		gint64 now,
		const char *reason,
		GError **error)
{
	g_auto(ScPgParams) params = {0};
	guint64 changed = 0;

	sc_pg_params_int64 (&params, message->id);
	sc_pg_params_text (&params, sc_message_state_to_string (message->state));
	if (stmt != &delete_message)
		sc_pg_params_int64 (&params, now);
	if (stmt == &hold_message)
		sc_pg_params_text (&params, reason);
	if (!sc_pg_exec_done (pg, stmt, &params, "update", &changed, error))
		return FALSE;
	if (changed == 0) {
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
reset_recipients_of (ScPgSpool *pg, gint64 id, GError **error)
{
	g_auto(ScPgParams) params = {0};

	sc_pg_params_int64 (&params, id);
	return sc_pg_exec_done (pg, &reset_recipients, &params, "retry", NULL, error);
}

/* Forgets the records of @from_stage and every later stage in the pipeline. */
static gboolean
forget_stages_from (ScPgSpool *pg, const ScMessageSummary *summary, const char *from_stage, GError **error)
{
	g_auto(GStrv) pipeline = g_strsplit (summary->pipeline, ";", -1);
	gboolean found = FALSE;

	for (guint i = 0; pipeline[i] != NULL; i++) {
		g_auto(ScPgParams) params = {0};
		if (!found && strcmp (pipeline[i], from_stage) != 0)
			continue;
		found = TRUE;
		sc_pg_params_int64 (&params, summary->id);
		sc_pg_params_text (&params, pipeline[i]);
		if (!sc_pg_exec_done (pg, &delete_stage, &params, "retry", NULL, error))
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

/* Runs @body in one transaction: committed if it returns TRUE, else
 * rolled back. */
static gboolean
in_transaction (ScPgSpool *pg,
		gboolean (*body) (ScPgSpool *pg, gpointer data, GError **error),
		gpointer data,
		GError **error)
{
	if (!sc_pg_begin (pg, error))
		return FALSE;
	if (!body (pg, data, error)) {
		sc_pg_rollback (pg);
		return FALSE;
	}
	return sc_pg_commit (pg, error);
}

typedef struct {
	const char *queue_id;
	const char *from_stage;
	const ScAuditContext *audit;
} Retry;

static gboolean
retry_locked (ScPgSpool *pg, gpointer data, GError **error)
{
	const Retry *retry = data;
	g_autoptr(ScMessageSummary) summary = sc_pg_get_summary_for_update (pg, retry->queue_id, error);

	if (summary == NULL)
		return FALSE;
	if (summary->state == SC_STATE_DONE && retry->from_stage == NULL) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_INVALID,
			     _("%s is done; use --from-stage to run stages again"),
			     retry->queue_id);
		return FALSE;
	}
	if (!sc_message_state_allows (summary->state,
				      retry->from_stage != NULL ? SC_ACTION_RETRY_FROM_STAGE : SC_ACTION_RETRY))
		return sc_spool_refuse_state (summary, "retry", error);
	if (retry->from_stage != NULL && !forget_stages_from (pg, summary, retry->from_stage, error))
		return FALSE;
	if (!update_message (pg, &retry_message, summary, retry->audit->now, NULL, error))
		return FALSE;
	if (!reset_recipients_of (pg, summary->id, error))
		return FALSE;
	return sc_pg_write_audit (pg, retry->audit, "retry", retry->queue_id, retry->from_stage, error);
}

gboolean
sc_pg_retry (ScSpool *spool,
	     const char *queue_id,
	     const char *from_stage,
	     const ScAuditContext *audit,
	     GError **error)
{
	Retry retry = {queue_id, from_stage, audit};

	return in_transaction (SC_PG_SPOOL (spool), retry_locked, &retry, error);
}

typedef struct {
	ScMessageState state;
	const char *list_id;
	const ScAuditContext *audit;
	guint count;
} RetryMatching;

static gboolean
retry_matching_locked (ScPgSpool *pg, gpointer data, GError **error)
{
	RetryMatching *matching = data;
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autofree char *detail = NULL;

	sc_pg_params_text (&params, sc_message_state_to_string (matching->state));
	sc_pg_params_text (&params, matching->list_id);
	params_bulk_states (&params);
	sc_pg_params_int64 (&params, matching->audit->now);
	result = sc_pg_exec (pg, &retry_matching, &params, "retry", error);
	if (result == NULL)
		return FALSE;
	matching->count = (guint) sc_pg_get_int64 (result, 0, 0);
	detail = g_strdup_printf ("state=%s list=%s count=%u",
				  sc_message_state_to_string (matching->state),
				  matching->list_id != NULL ? matching->list_id : "*",
				  matching->count);
	return sc_pg_write_audit (pg, matching->audit, "retry-bulk", NULL, detail, error);
}

gboolean
sc_pg_retry_matching (ScSpool *spool,
		      ScMessageState state,
		      const char *list_id,
		      const ScAuditContext *audit,
		      guint *out_count,
		      GError **error)
{
	RetryMatching matching = {state, list_id, audit, 0};

	if (!sc_message_state_allows (state, SC_ACTION_RETRY_MATCHING)) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_INVALID,
			     _("cannot retry every %s message"),
			     sc_message_state_to_string (state));
		return FALSE;
	}
	if (!in_transaction (SC_PG_SPOOL (spool), retry_matching_locked, &matching, error))
		return FALSE;
	if (out_count != NULL)
		*out_count = matching.count;
	return TRUE;
}

typedef struct {
	GPtrArray *queue_ids;
	const char *detail;
	const ScAuditContext *audit;
	guint before; /* *inout_count as given */
	guint count;
} RetryList;

/* Messages gone since the search (deleted) or moved on (no longer
 * retryable) are left out, not errors: the statement does not find them. */
static gboolean
retry_list_locked (ScPgSpool *pg, gpointer data, GError **error)
{
	RetryList *list = data;
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autofree char *summary = NULL;

	sc_pg_params_text_array (&params, (const char *const *) list->queue_ids->pdata, list->queue_ids->len);
	sc_pg_params_null (&params);
	params_bulk_states (&params);
	sc_pg_params_int64 (&params, list->audit->now);
	result = sc_pg_exec (pg, &retry_queue_ids, &params, "retry", error);
	if (result == NULL)
		return FALSE;
	list->count = (guint) sc_pg_get_int64 (result, 0, 0);
	/* a batch of a larger job has no row of its own: the last one says the total */
	if (list->detail == NULL)
		return TRUE;
	summary = g_strdup_printf ("%s count=%u", list->detail, list->count + list->before);
	return sc_pg_write_audit (pg, list->audit, "retry-bulk", NULL, summary, error);
}

gboolean
sc_pg_retry_list (ScSpool *spool,
		  GPtrArray *queue_ids,
		  const char *detail,
		  const ScAuditContext *audit,
		  guint *inout_count,
		  GError **error)
{
	RetryList list = {queue_ids, detail, audit, inout_count != NULL ? *inout_count : 0, 0};

	if (!in_transaction (SC_PG_SPOOL (spool), retry_list_locked, &list, error))
		return FALSE;
	if (inout_count != NULL)
		*inout_count += list.count;
	return TRUE;
}

typedef enum {
	ACTION_HOLD,
	ACTION_RELEASE,
	ACTION_DELETE,
} Action;

typedef struct {
	Action action;
	const char *queue_id;
	const char *reason;
	const ScAuditContext *audit;
} Act;

static gboolean
act_locked (ScPgSpool *pg, gpointer data, GError **error)
{
	const Act *act = data;
	g_autoptr(ScMessageSummary) summary = sc_pg_get_summary_for_update (pg, act->queue_id, error);

	if (summary == NULL)
		return FALSE;
	switch (act->action) {
	case ACTION_HOLD:
		if (!sc_message_state_allows (summary->state, SC_ACTION_HOLD))
			return sc_spool_refuse_state (summary, "hold", error);
		if (!update_message (pg, &hold_message, summary, act->audit->now, act->reason, error))
			return FALSE;
		return sc_pg_write_audit (pg, act->audit, "hold", act->queue_id, act->reason, error);
	case ACTION_RELEASE:
		if (!sc_message_state_allows (summary->state, SC_ACTION_RELEASE))
			return sc_spool_refuse_state (summary, "release", error);
		if (!update_message (pg, &release_message, summary, act->audit->now, NULL, error))
			return FALSE;
		return sc_pg_write_audit (pg, act->audit, "release", act->queue_id, NULL, error);
	case ACTION_DELETE:
	default:
		if (!sc_message_state_allows (summary->state, SC_ACTION_DELETE))
			return sc_spool_refuse_state (summary, "delete", error);
		if (!update_message (pg, &delete_message, summary, act->audit->now, NULL, error))
			return FALSE;
		return sc_pg_write_audit (pg, act->audit, "delete", act->queue_id, summary->subject, error);
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
	Act act = {action, queue_id, reason, audit};

	return in_transaction (SC_PG_SPOOL (spool), act_locked, &act, error);
}

gboolean
sc_pg_hold (ScSpool *spool,
	    const char *queue_id,
	    const char *reason,
	    const ScAuditContext *audit,
	    GError **error)
{
	return act (spool, ACTION_HOLD, queue_id, reason != NULL ? reason : _("held by an operator"), audit, error);
}

gboolean
sc_pg_release (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return act (spool, ACTION_RELEASE, queue_id, NULL, audit, error);
}

gboolean
sc_pg_delete_message (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return act (spool, ACTION_DELETE, queue_id, NULL, audit, error);
}
