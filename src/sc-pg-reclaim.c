/* sc-pg-reclaim.c — taking back the claims of runners that died or hung,
 * on the PostgreSQL spool: sc-spool.c's sc_spool_reclaim, rule for rule
 * (who is asked, what is blamed, when a message is held), with each
 * update conditional on the claim it read, since another runner may
 * reclaim the same message at the same moment — one of them changes it,
 * the other's update finds it no longer active under that lease and
 * leaves it alone. */
#include "config.h"

#include "sc-i18n.h"
#include "sc-owner.h"
#include "sc-pg-private.h"

typedef struct {
	gint64 id;
	char *owner;
	gint64 lease_expires_at;
	char *pipeline;
	guint crashes;
	gint64 generation;
} ActiveRow;

static void
active_row_clear (gpointer data)
{
	ActiveRow *row = data;
	g_free (row->owner);
	g_free (row->pipeline);
}

static const ScPgStatement select_active = {
    "sc_reclaim_select_active",
    "SELECT id, lease_owner, lease_expires_at, pipeline, crashes, lease_generation"
    " FROM messages WHERE state = 'active'",
};

static const ScPgStatement select_completed = {
    "sc_reclaim_completed",
    "SELECT stage FROM stages WHERE message_id = $1::bigint ORDER BY id",
};

/* recipient states recorded since the message row last changed (its
 * claim, or its previous stage's result): the stage was making progress */
static const ScPgStatement select_progress = {
    "sc_reclaim_progress",
    "SELECT EXISTS (SELECT 1 FROM recipients r, messages m WHERE m.id = $1::bigint"
    " AND r.message_id = $1::bigint AND r.updated_at >= m.updated_at)",
};

static const ScPgStatement reclaim_one_stmt = {
    "sc_reclaim_one",
    "UPDATE messages SET state = CASE WHEN $1::text = 'held' THEN 'held'"
    "  WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
    " crashes = crashes + $2::integer, updated_at = $3::bigint,"
    " next_attempt_at = CASE WHEN $1::text = 'held' THEN NULL"
    "  WHEN $4::boolean THEN $3::bigint ELSE LEAST (coalesce (next_attempt_at, $3::bigint), $3::bigint) END,"
    " hold_reason = $5::text, last_error = COALESCE ($6::text, last_error),"
    " lease_owner = NULL, lease_expires_at = NULL"
    " WHERE id = $7::bigint AND state = 'active' AND lease_owner = $8::text"
    " AND lease_generation = $9::bigint",
};

static const ScPgStatement insert_attempt = {
    "sc_reclaim_insert_attempt",
    "INSERT INTO attempts (message_id, cycle, stage, outcome, error, mailer, started_at,"
    " finished_at) SELECT id, cycle, $2::text, $3::text, $4::text, NULL, $5::bigint, $5::bigint"
    " FROM messages WHERE id = $1::bigint",
};

static char **
select_completed_stages (ScPgSpool *pg, gint64 rowid, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

	sc_pg_params_int64 (&params, rowid);
	result = sc_pg_exec (pg, &select_completed, &params, "reclaim", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++)
		g_strv_builder_add (builder, PQgetvalue (result, row, 0));
	return g_strv_builder_end (builder);
}

/* What the probe said of a claim taken back. */
typedef struct {
	guint row;          /* its ActiveRow */
	gboolean in_handler;
	gint marked_stage;  /* ScLeaseProbe.in_handler's */
} Blame;

/* As sc-sqlite-spool.c's reclaim_one: @in_handler, the owner was running
 * this claim's stage (@marked_stage); only then is the message blamed. */
static gboolean
reclaim_one (ScPgSpool *pg,
	     const ActiveRow *row,
	     gboolean in_handler,
	     gint marked_stage,
	     gint64 now,
	     guint crash_limit,
	     gboolean *out_taken,
	     GError **error)
{
	ScMessage probe = {0};
	g_auto(GStrv) pipeline = g_strsplit (row->pipeline, ";", -1);
	g_auto(GStrv) completed = select_completed_stages (pg, row->id, error);
	g_autofree char *reason = NULL;
	g_autofree char *hold_reason = NULL;
	const char *stage;
	gboolean counted = in_handler;
	gboolean hold;
	guint64 changed = 0;

	if (completed == NULL)
		return FALSE;
	if (in_handler) {
		/* a stage that was delivering was killed, not killing */
		g_auto(ScPgParams) params = {0};
		g_autoptr(PGresult) result = NULL;
		sc_pg_params_int64 (&params, row->id);
		result = sc_pg_exec (pg, &select_progress, &params, "reclaim", error);
		if (result == NULL)
			return FALSE;
		counted = !sc_pg_get_bool (result, 0, 0);
	}
	hold = counted && row->crashes + 1 >= crash_limit;
	probe.pipeline = pipeline;
	probe.completed = completed;
	stage = sc_message_crashed_stage (&probe, in_handler ? marked_stage : SC_OWNER_STAGE_UNKNOWN);
	if (in_handler)
		reason = g_strdup_printf (_("runner %s stopped while its %s stage ran"
					    " (lease expired or process gone)"),
					  row->owner, stage != NULL ? stage : "");
	else
		reason = g_strdup_printf (_("runner %s stopped before the %s stage started;"
					    " taken back"),
					  row->owner, stage != NULL ? stage : "");
	if (hold)
		hold_reason = g_strdup_printf (_("held after crashing the runner %u times in its %s stage"),
					       row->crashes + 1, stage != NULL ? stage : "");
	{
		g_auto(ScPgParams) params = {0};
		sc_pg_params_text (&params, hold ? "held" : "queued");
		sc_pg_params_int64 (&params, counted ? 1 : 0);
		sc_pg_params_int64 (&params, now);
		sc_pg_params_text (&params, in_handler ? "true" : "false");
		sc_pg_params_text (&params, hold_reason);
		sc_pg_params_text (&params, in_handler ? reason : NULL);
		sc_pg_params_int64 (&params, row->id);
		sc_pg_params_text (&params, row->owner);
		sc_pg_params_int64 (&params, row->generation);
		if (!sc_pg_exec_done (pg, &reclaim_one_stmt, &params, "reclaim", &changed, error))
			return FALSE;
		if (changed == 0)
			return TRUE; /* taken back by another runner meanwhile */
	}
	*out_taken = TRUE;
	{
		/* a `released` attempt too: it tells an idempotent stage that
		 * a copy may exist */
		g_auto(ScPgParams) params = {0};
		sc_pg_params_int64 (&params, row->id);
		sc_pg_params_text (&params, stage != NULL ? stage : "");
		sc_pg_params_text (&params,
				   sc_outcome_to_string (in_handler ? SC_OUTCOME_CRASHED : SC_OUTCOME_RELEASED));
		sc_pg_params_text (&params, reason);
		sc_pg_params_int64 (&params, now);
		if (!sc_pg_exec_done (pg, &insert_attempt, &params, "reclaim", NULL, error))
			return FALSE;
	}
	if (hold && !sc_pg_insert_notification (pg, row->id, "message.held", hold_reason, now, error))
		return FALSE;
	return TRUE;
}

static GArray *
select_active_rows (ScPgSpool *pg, GError **error)
{
	g_autoptr(GArray) rows = g_array_new (FALSE, TRUE, sizeof (ActiveRow));
	g_autoptr(PGresult) result = sc_pg_exec (pg, &select_active, NULL, "reclaim", error);

	g_array_set_clear_func (rows, active_row_clear);
	if (result == NULL)
		return NULL;
	for (int i = 0; i < PQntuples (result); i++) {
		ActiveRow row = {
		    .id = sc_pg_get_int64 (result, i, 0),
		    .owner = sc_pg_dup_text (result, i, 1),
		    .lease_expires_at = sc_pg_get_int64 (result, i, 2),
		    .pipeline = sc_pg_dup_text (result, i, 3),
		    .crashes = (guint) sc_pg_get_int64 (result, i, 4),
		    .generation = sc_pg_get_int64 (result, i, 5),
		};
		g_array_append_val (rows, row);
	}
	return g_steal_pointer (&rows);
}

/* The probes (liveness asks the server too) are asked before the
 * transaction, not inside it: nothing is held while they answer, and
 * each update still checks the claim it read. */
guint
sc_pg_reclaim (ScSpool *spool,
	       const char *self_owner,
	       const ScLeaseProbe *probe,
	       gint64 now,
	       guint crash_limit,
	       GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autoptr(GArray) rows = select_active_rows (pg, error);
	g_autoptr(GHashTable) alive = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GArray) chosen = g_array_new (FALSE, FALSE, sizeof (Blame));
	g_autoptr(GError) fold_error = NULL;

	if (rows == NULL)
		return 0;
	for (guint i = 0; i < rows->len; i++) {
		ActiveRow *row = &g_array_index (rows, ActiveRow, i);
		ScLease lease = {.id = row->id, .generation = row->generation};
		gboolean owner_is_alive;
		Blame blame = {.row = i, .in_handler = FALSE, .marked_stage = SC_OWNER_STAGE_UNKNOWN};

		if (row->owner == NULL)
			continue;
		if (g_strcmp0 (row->owner, self_owner) == 0) {
			/* our own claim: ours while we work on it; one we dropped
			 * goes back once its lease runs out */
			if (probe->in_flight (&lease, probe->user_data) || row->lease_expires_at > now)
				continue;
		} else {
			if (!g_hash_table_lookup_extended (alive, row->owner, NULL, NULL)) {
				owner_is_alive = probe->alive (row->owner, probe->user_data);
				g_hash_table_insert (alive, g_strdup (row->owner), GINT_TO_POINTER (owner_is_alive));
			} else {
				owner_is_alive = GPOINTER_TO_INT (g_hash_table_lookup (alive, row->owner));
			}
			if (owner_is_alive && row->lease_expires_at > now)
				continue;
			blame.in_handler = probe->in_handler (row->owner, &lease, &blame.marked_stage, probe->user_data);
		}
		g_array_append_val (chosen, blame);
	}
	if (chosen->len > 0) {
		guint reclaimed = 0;

		if (!sc_pg_begin (pg, error))
			return 0;
		for (guint i = 0; i < chosen->len; i++) {
			const Blame *blame = &g_array_index (chosen, Blame, i);
			const ActiveRow *row = &g_array_index (rows, ActiveRow, blame->row);
			gboolean taken = FALSE;
			if (!reclaim_one (pg, row, blame->in_handler, blame->marked_stage, now, crash_limit, &taken,
					  error)) {
				sc_pg_rollback (pg);
				return 0;
			}
			reclaimed += taken ? 1 : 0;
		}
		if (!sc_pg_commit (pg, error))
			return 0;
		/* the runner's periodic pass is also when the state counts'
		 * delta rows are folded (sc-pg-schema.c); failing that only
		 * makes reads a little longer */
		if (!sc_pg_fold_state_counts (pg, &fold_error))
			g_debug ("spool %s: %s", pg->display, fold_error->message);
		return reclaimed;
	}
	if (!sc_pg_fold_state_counts (pg, &fold_error))
		g_debug ("spool %s: %s", pg->display, fold_error->message);
	return 0;
}
