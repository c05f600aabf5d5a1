/* sc-pg-clock.c — a stepped wall clock on the PostgreSQL spool: the same
 * anchor and the same rule as sc-spool-clock.c (which says why).  With
 * runners on several hosts the anchor is per spool, not per host: each
 * host's boot id differs, so a runner on another host than the anchor's
 * only rewrites it (a new boot: nothing to compare with), and a step is
 * applied by a runner that shares the anchor's boot.  The row is locked
 * (FOR UPDATE) while a step is applied, so two runners never apply one
 * step twice. */
#include "config.h"

#include "sc-pg-private.h"

/* How often the anchor is rewritten when nothing happened. */
#define ANCHOR_REFRESH (60 * G_USEC_PER_SEC)

static const ScPgStatement clock_read = {
    "sc_clock_read",
    "SELECT boot_id, wall, boottime FROM clock_anchor WHERE id = 1",
};

static const ScPgStatement clock_read_locked = {
    "sc_clock_read_locked",
    "SELECT boot_id, wall, boottime FROM clock_anchor WHERE id = 1 FOR UPDATE",
};

static const ScPgStatement clock_write = {
    "sc_clock_write",
    "INSERT INTO clock_anchor (id, boot_id, wall, boottime)"
    " VALUES (1, $1::text, $2::bigint, $3::bigint)"
    " ON CONFLICT (id) DO UPDATE SET boot_id = excluded.boot_id, wall = excluded.wall,"
    " boottime = excluded.boottime",
};

static const ScPgStatement shift_stmts[] = {
    {"sc_clock_shift_due",
     "UPDATE messages SET next_attempt_at = next_attempt_at + $1::bigint"
     " WHERE state IN ('queued','deferred') AND next_attempt_at IS NOT NULL"},
    {"sc_clock_shift_cycle",
     "UPDATE messages SET cycle_started_at = cycle_started_at + $1::bigint"
     " WHERE state IN ('queued','deferred','active','held')"},
    {"sc_clock_shift_leases",
     "UPDATE messages SET lease_expires_at = lease_expires_at + $1::bigint WHERE state = 'active'"},
    {"sc_clock_shift_notifications",
     "UPDATE notifications SET next_attempt_at = next_attempt_at + $1::bigint"
     " WHERE state = 'pending'"},
};

/* FALSE without error when there is no anchor. */
static gboolean
read_anchor (ScPgSpool *pg,
	     const ScPgStatement *stmt,
	     char **out_boot_id,
	     gint64 *out_wall,
	     gint64 *out_boottime,
	     GError **error)
{
	g_autoptr(PGresult) result = sc_pg_exec (pg, stmt, NULL, "clock anchor", error);

	if (result == NULL || PQntuples (result) == 0)
		return FALSE;
	*out_boot_id = sc_pg_dup_text (result, 0, 0);
	*out_wall = sc_pg_get_int64 (result, 0, 1);
	*out_boottime = sc_pg_get_int64 (result, 0, 2);
	return TRUE;
}

gboolean
sc_pg_check_clock (ScSpool *spool,
		   gint64 wall,
		   gint64 boottime,
		   const char *boot_id,
		   gint64 threshold,
		   gint64 *out_step,
		   GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autofree char *anchor_boot_id = NULL;
	gint64 anchor_wall = 0;
	gint64 anchor_boottime = 0;
	gint64 step = 0;
	g_autoptr(GError) error_local = NULL;

	*out_step = 0;
	/* the usual answer writes nothing */
	if (read_anchor (pg, &clock_read, &anchor_boot_id, &anchor_wall, &anchor_boottime, &error_local) &&
	    g_strcmp0 (anchor_boot_id, boot_id) == 0) {
		step = wall - (anchor_wall + (boottime - anchor_boottime));
		if (ABS (step) <= threshold && boottime - anchor_boottime < ANCHOR_REFRESH)
			return TRUE;
	} else if (error_local != NULL) {
		g_propagate_error (error, g_steal_pointer (&error_local));
		return FALSE;
	}
	g_clear_pointer (&anchor_boot_id, g_free);
	if (!sc_pg_begin (pg, error))
		return FALSE;
	/* again, locked: another runner may have just applied it */
	step = 0;
	if (read_anchor (pg, &clock_read_locked, &anchor_boot_id, &anchor_wall, &anchor_boottime, &error_local) &&
	    g_strcmp0 (anchor_boot_id, boot_id) == 0) {
		step = wall - (anchor_wall + (boottime - anchor_boottime));
		if (ABS (step) <= threshold)
			step = 0;
	} else if (error_local != NULL) {
		g_propagate_error (error, g_steal_pointer (&error_local));
		sc_pg_rollback (pg);
		return FALSE;
	}
	for (guint i = 0; step != 0 && i < G_N_ELEMENTS (shift_stmts); i++) {
		g_auto(ScPgParams) params = {0};
		sc_pg_params_int64 (&params, step);
		if (!sc_pg_exec_done (pg, &shift_stmts[i], &params, "clock step", NULL, error)) {
			sc_pg_rollback (pg);
			return FALSE;
		}
	}
	{
		g_auto(ScPgParams) params = {0};
		sc_pg_params_text (&params, boot_id);
		sc_pg_params_int64 (&params, wall);
		sc_pg_params_int64 (&params, boottime);
		if (!sc_pg_exec_done (pg, &clock_write, &params, "clock anchor", NULL, error)) {
			sc_pg_rollback (pg);
			return FALSE;
		}
	}
	if (!sc_pg_commit (pg, error))
		return FALSE;
	*out_step = step;
	return TRUE;
}
