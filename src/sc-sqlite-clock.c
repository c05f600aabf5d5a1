/* sc-sqlite-clock.c — a stepped wall clock must not stretch or cut waits.
 *
 * Due times, cycle starts and leases are stored as wall-clock times: they
 * must survive restarts and mean the same to every runner.  When an
 * operator or a bad NTP source steps the clock back an hour, every retry
 * would wait an extra hour; stepped forward, messages would age by the
 * step (and die of max-age after one try) and every lease would expire at
 * once.  The boot clock (CLOCK_BOOTTIME) is never stepped, so the spool
 * keeps one anchor (wall, boottime) and each runner compares: a
 * difference above the threshold is a step, and the stored times move by
 * it in the same transaction as the new anchor — so two runners on one
 * spool cannot both apply it.  Slewing (NTP's gradual correction, at most
 * 0.5 ms/s) stays far below the threshold between anchor refreshes.
 */
#include "config.h"

#include "sc-sqlite-private.h"

/* How often the anchor is rewritten when nothing happened: slewing must
 * not add up to a false step. */
#define ANCHOR_REFRESH (60 * G_USEC_PER_SEC)

static gboolean
shift (ScSpool *spool, ScSql sql, gint64 step, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_int64 (stmt, ":step", step);
	return sc_sqlite_step_done (spool, stmt, error, "clock step");
}

static gboolean
write_anchor (ScSpool *spool, const char *boot_id, gint64 wall, gint64 boottime, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_CLOCK_WRITE, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_text (stmt, ":boot_id", boot_id);
	sc_bind_int64 (stmt, ":wall", wall);
	sc_bind_int64 (stmt, ":boottime", boottime);
	return sc_sqlite_step_done (spool, stmt, error, "clock anchor");
}

/* Reads the anchor: FALSE without error when there is none. */
static gboolean
read_anchor (ScSpool *spool, char **out_boot_id, gint64 *out_wall, gint64 *out_boottime, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_CLOCK_READ, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc == SQLITE_ROW) {
		*out_boot_id = sc_column_dup (stmt, 0);
		*out_wall = sqlite3_column_int64 (stmt, 1);
		*out_boottime = sqlite3_column_int64 (stmt, 2);
		return TRUE;
	}
	if (rc != SQLITE_DONE)
		sc_sqlite_set_error (spool, rc, error, "clock anchor");
	return FALSE;
}

gboolean
sc_sqlite_check_clock (ScSpool *spool,
		      gint64 wall,
		      gint64 boottime,
		      const char *boot_id,
		      gint64 threshold,
		      gint64 *out_step,
		      GError **error)
{
	g_autofree char *anchor_boot_id = NULL;
	gint64 anchor_wall = 0;
	gint64 anchor_boottime = 0;
	gint64 step = 0;
	g_autoptr(GError) error_local = NULL;

	*out_step = 0;
	/* the usual answer needs no write lock */
	if (read_anchor (spool, &anchor_boot_id, &anchor_wall, &anchor_boottime, &error_local) &&
	    g_strcmp0 (anchor_boot_id, boot_id) == 0) {
		step = wall - (anchor_wall + (boottime - anchor_boottime));
		if (ABS (step) <= threshold && boottime - anchor_boottime < ANCHOR_REFRESH)
			return TRUE;
	} else if (error_local != NULL) {
		g_propagate_error (error, g_steal_pointer (&error_local));
		return FALSE;
	}
	g_clear_pointer (&anchor_boot_id, g_free);
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	/* again under the lock: another runner may have just applied it */
	step = 0;
	if (read_anchor (spool, &anchor_boot_id, &anchor_wall, &anchor_boottime, &error_local) &&
	    g_strcmp0 (anchor_boot_id, boot_id) == 0) {
		step = wall - (anchor_wall + (boottime - anchor_boottime));
		if (ABS (step) <= threshold)
			step = 0;
	} else if (error_local != NULL) {
		g_propagate_error (error, g_steal_pointer (&error_local));
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	/* (a new boot: the boot clock restarted, nothing to compare with) */
	if (step != 0 &&
	    (!shift (spool, SC_SQL_CLOCK_SHIFT_DUE, step, error) ||
	     !shift (spool, SC_SQL_CLOCK_SHIFT_CYCLE, step, error) ||
	     !shift (spool, SC_SQL_CLOCK_SHIFT_LEASES, step, error) ||
	     !shift (spool, SC_SQL_CLOCK_SHIFT_NOTIFICATIONS, step, error))) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	if (!write_anchor (spool, boot_id, wall, boottime, error)) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	if (!sc_sqlite_commit (spool, error))
		return FALSE;
	*out_step = step;
	return TRUE;
}
