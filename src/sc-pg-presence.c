/* sc-pg-presence.c — runners' presence and wakeups on the PostgreSQL spool,
 * where runners share nothing but the database.
 *
 * Liveness: a runner holds a session advisory lock, keyed by its name, on
 * its spool connection for as long as it runs.  Like the flock of the
 * SQLite spool's lock files it dies with the holder however it dies: the
 * server drops a session's locks when its connection ends (a killed
 * process's socket closes; a host that vanished is noticed by TCP
 * keepalives).  Whether another runner is alive is a look at pg_locks —
 * trying its lock would, for a moment, make a live runner's reconnect
 * fail to take it back.
 *
 * Wakeups: NOTIFY on one channel after a commit that gave runners work;
 * each runner LISTENs on a second connection of its own, whose socket is
 * polled by a GSource (the spool's connection is busy with calls and
 * belongs to whoever makes them).
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-owner.h"
#include "sc-pg-private.h"

#define WAKE_CHANNEL "stagecoach_wake"

/* 64 bits of SHA-256 of the name: distinct runners' keys do not collide
 * in practice (pg_try_advisory_lock takes a bigint). */
static gint64
runner_key (const char *name)
{
	g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize length = sizeof digest;
	guint64 key = 0;

	g_checksum_update (checksum, (const guchar *) "stagecoach runner ", -1);
	g_checksum_update (checksum, (const guchar *) name, -1);
	g_checksum_get_digest (checksum, digest, &length);
	for (guint i = 0; i < 8; i++)
		key = (key << 8) | digest[i];
	return (gint64) key;
}

ScOwner *
sc_pg_register_runner (ScSpool *spool, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autofree char *name = sc_owner_make_name ();

	g_return_val_if_fail (pg->runner == NULL, NULL);
	pg->runner = g_strdup (name);
	pg->runner_key = runner_key (name);
	pg->runner_locked = FALSE;
	if (!sc_pg_take_runner_lock (pg, error)) {
		g_clear_pointer (&pg->runner, g_free);
		return NULL;
	}
	/* The lock is the session's, released when the spool is closed (the
	 * runner closes it right after freeing the owner). */
	return sc_owner_new_named (name);
}

/* A runner whose lock is gone is dead only once it has stayed gone for
 * two busy-timeouts: a runner whose connection was cut (a server restart,
 * pg_terminate_backend, a network blip) reconnects within its
 * busy-timeout and takes its lock back, and its claims must still be its
 * own then — taking them at once had it deliver, from what it held in
 * memory, messages another runner was delivering too (hundreds, in the
 * N-host test).  A killed runner's claims wait that much longer: seconds,
 * not the lease's minutes. */
static gboolean
lock_gone_long_enough (ScPgSpool *pg, const char *owner)
{
	gint64 now = g_get_monotonic_time ();
	gint64 *since = g_hash_table_lookup (pg->lock_missing, owner);

	if (since == NULL) {
		since = g_new (gint64, 1);
		*since = now;
		g_hash_table_insert (pg->lock_missing, g_strdup (owner), since);
	}
	return now - *since >= 2 * pg->busy_timeout;
}

gboolean
sc_pg_runner_is_alive (ScSpool *spool, const char *owner)
{
	/* pg_locks shows a bigint key as its high (classid) and low (objid)
	 * halves, objsubid 1 */
	static const ScPgStatement holds_lock = {
	    "sc_presence_alive",
	    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
	    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database ())"
	    " AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1 AND granted)",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	guint64 key = (guint64) runner_key (owner);
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autoptr(GError) error = NULL;

	if (pg->runner != NULL && strcmp (owner, pg->runner) == 0)
		return TRUE;
	sc_pg_params_int64 (&params, (gint64) (key >> 32));
	sc_pg_params_int64 (&params, (gint64) (key & 0xffffffffu));
	result = sc_pg_exec (pg, &holds_lock, &params, "runner liveness", &error);
	if (result == NULL) {
		/* not knowing is not dead: its claims still go back when their
		 * leases expire */
		g_debug ("%s", error->message);
		return TRUE;
	}
	if (sc_pg_get_bool (result, 0, 0)) {
		g_hash_table_remove (pg->lock_missing, owner);
		return TRUE;
	}
	return !lock_gone_long_enough (pg, owner);
}

/* Always empty.  The SQLite spool learns which claims a dead runner's
 * handlers were running from slots in its lock file, written twice per
 * stage without a sync; across hosts that would be two round trips per
 * stage to the server, for every stage of every message.  So a dead
 * PostgreSQL runner's claims all go back `released`, never blamed: a
 * message that kills its runner is not held by the crash limit here — it
 * is taken again, and a handler that crashes the process every time must
 * be found from the attempts' history (the same stage `released` over
 * and over). */
GHashTable *
sc_pg_runner_in_handler (ScSpool *spool, const char *owner)
{
	return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

/* Its lock ended with its session; what is left is this connection's
 * note of when that was seen. */
void
sc_pg_forget_runner (ScSpool *spool, const char *owner)
{
	g_hash_table_remove (SC_PG_SPOOL (spool)->lock_missing, owner);
}

void
sc_pg_wake_runners (ScSpool *spool)
{
	static const ScPgStatement notify = {
	    "sc_presence_notify",
	    "SELECT pg_notify ($1::text, '')",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_auto(ScPgParams) params = {0};
	g_autoptr(GError) error = NULL;

	/* best effort, and never a reconnect's wait: runners rescan anyway */
	if (PQstatus (pg->conn) != CONNECTION_OK || pg->in_transaction)
		return;
	sc_pg_params_text (&params, WAKE_CHANNEL);
	if (!sc_pg_exec_done (pg, &notify, &params, "wake runners", NULL, &error))
		g_debug ("%s", error->message);
}

/* ---- the listening side ---- */

typedef struct {
	GSource source;
	PGconn *conn;     /* (owned) (nullable) while disconnected */
	gpointer fd_tag;  /* (nullable) */
	char *conninfo;   /* (owned) */
	gint64 busy_timeout;
	gint64 backoff;   /* µs until the next reconnect try */
} WakeSource;

static gboolean
listen_on (PGconn *conn, GError **error)
{
	/* a fixed channel name, no value in it */
	g_autoptr(PGresult) result = PQexec (conn, "LISTEN " WAKE_CHANNEL);

	if (PQresultStatus (result) != PGRES_COMMAND_OK) {
		g_autofree char *text = g_strchomp (g_strdup (PQresultErrorMessage (result)));
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY, _("cannot listen for wakeups: %s"),
			     text);
		return FALSE;
	}
	if (PQsetnonblocking (conn, 1) != 0) {
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY, _("cannot listen for wakeups: %s"),
			     PQerrorMessage (conn));
		return FALSE;
	}
	return TRUE;
}

static gboolean
wake_connect (WakeSource *wake, GError **error)
{
	PGconn *conn = sc_pg_connect (wake->conninfo, wake->busy_timeout, error);

	if (conn == NULL)
		return FALSE;
	if (!listen_on (conn, error)) {
		PQfinish (conn);
		return FALSE;
	}
	wake->conn = conn;
	wake->fd_tag = g_source_add_unix_fd (&wake->source, PQsocket (conn), G_IO_IN | G_IO_ERR | G_IO_HUP);
	wake->backoff = 100 * 1000;
	return TRUE;
}

static void
wake_disconnect (WakeSource *wake)
{
	if (wake->fd_tag != NULL)
		g_source_remove_unix_fd (&wake->source, wake->fd_tag);
	wake->fd_tag = NULL;
	g_clear_pointer (&wake->conn, PQfinish);
}

/* Reads what the socket has; FALSE when the connection is gone. */
static gboolean
drain (WakeSource *wake, gboolean *out_woken)
{
	PGnotify *notify;

	if (!PQconsumeInput (wake->conn) || PQstatus (wake->conn) != CONNECTION_OK)
		return FALSE;
	while ((notify = PQnotifies (wake->conn)) != NULL) {
		*out_woken = TRUE;
		PQfreemem (notify);
	}
	return TRUE;
}

static gboolean
wake_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
	WakeSource *wake = (WakeSource *) source;
	gboolean woken = FALSE;

	if (wake->conn == NULL) {
		/* reconnect time: a runner missed what was notified meanwhile,
		 * so it is woken once connected again */
		g_autoptr(GError) error = NULL;
		if (!wake_connect (wake, &error)) {
			g_debug ("wakeups: %s", error->message);
			wake->backoff = MIN (wake->backoff * 2, 30 * G_USEC_PER_SEC);
			g_source_set_ready_time (source, g_get_monotonic_time () + wake->backoff);
			return G_SOURCE_CONTINUE;
		}
		g_source_set_ready_time (source, -1);
		woken = TRUE;
	} else if (g_source_query_unix_fd (source, wake->fd_tag) != 0 && !drain (wake, &woken)) {
		g_message ("wakeups: connection lost; listening again shortly: %s", PQerrorMessage (wake->conn));
		wake_disconnect (wake);
		g_source_set_ready_time (source, g_get_monotonic_time () + wake->backoff);
		/* woken too: whatever was notified before the loss may be lost */
		woken = TRUE;
	}
	if (woken && callback != NULL)
		(void) callback (user_data);
	return G_SOURCE_CONTINUE;
}

static void
wake_finalize (GSource *source)
{
	WakeSource *wake = (WakeSource *) source;

	g_clear_pointer (&wake->conn, PQfinish);
	g_free (wake->conninfo);
}

static GSourceFuncs wake_funcs = {
    .dispatch = wake_dispatch,
    .finalize = wake_finalize,
};

GSource *
sc_pg_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	GSource *source = g_source_new (&wake_funcs, sizeof (WakeSource));
	WakeSource *wake = (WakeSource *) source;

	wake->conninfo = g_strdup (pg->conninfo);
	wake->busy_timeout = pg->busy_timeout;
	wake->backoff = 100 * 1000;
	if (!wake_connect (wake, error)) {
		g_source_unref (source);
		return NULL;
	}
	g_source_set_callback (source, func, data, NULL);
	g_source_set_static_name (source, "stagecoach-wake");
	return source;
}
