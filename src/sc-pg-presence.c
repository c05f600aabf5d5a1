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
 * In-handler marks: which claims a runner's handlers are running right
 * now, and which stage of each, one row per worker slot in handler_marks
 * (sc-pg-schema.c, v4; its stage since v6), so that whoever takes a dead
 * runner's messages back — on any host — blames only those (crashed,
 * counted toward the crash limit, recorded against that stage) and gives
 * the others back `released`.  A worker writes its mark before each stage
 * its handler runs and clears it after, each one upsert on a connection the marks
 * have to themselves (the spool's belongs to the runner's main thread),
 * shared by the workers under a mutex, opened at the first mark, with
 * synchronous_commit off: the mark need not survive a server crash (the
 * table is UNLOGGED anyway), only be visible before the handler can kill
 * the process.  Best effort like the SQLite spool's lock-file slots: a
 * lost connection is tried once more, then the mark is given up (the
 * claim, if its runner dies, goes back `released`), and while the server
 * cannot be reached marks are not tried for a backoff — a handler never
 * waits for more than one connection attempt.
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

/* ---- in-handler marks ---- */

#define MARK_BACKOFF_MIN (G_USEC_PER_SEC / 2)
#define MARK_BACKOFF_MAX (30 * G_USEC_PER_SEC)

typedef struct {
	GMutex lock;         /* one mark at a time on conn */
	PGconn *conn;        /* (owned) (nullable) until the first mark, and after a loss */
	char *conninfo;      /* (owned) */
	gint64 busy_timeout; /* bounds a connection attempt */
	char *owner;         /* (owned) the runner's name */
	gint64 retry_after;  /* monotonic µs: no connection attempt before */
	gint64 backoff;      /* µs, doubled per failed attempt */
} MarkWriter;

static const char mark_upsert_name[] = "sc_presence_mark";
/* the statement prepared on the marks' own connection (not an
 * ScPgStatement: those are the spool connection's) */
static const char mark_upsert_sql[] =
    "INSERT INTO handler_marks (owner, slot, message_id, generation, stage)"
    " VALUES ($1::text, $2::integer, $3::bigint, $4::bigint, $5::integer)"
    " ON CONFLICT (owner, slot) DO UPDATE"
    " SET message_id = excluded.message_id, generation = excluded.generation, stage = excluded.stage";

static gboolean
mark_connect (MarkWriter *writer, GError **error)
{
	g_autoptr(PGresult) set = NULL;
	g_autoptr(PGresult) prepared = NULL;
	PGconn *conn = sc_pg_connect (writer->conninfo, writer->busy_timeout, error);

	if (conn == NULL)
		return FALSE;
	/* no value in it: a fixed setting */
	set = PQexec (conn, "SET synchronous_commit TO off");
	prepared = PQresultStatus (set) == PGRES_COMMAND_OK ? PQprepare (conn, mark_upsert_name, mark_upsert_sql, 0, NULL)
							     : NULL;
	if (PQresultStatus (prepared) != PGRES_COMMAND_OK) {
		g_autofree char *text = g_strchomp (g_strdup (PQerrorMessage (conn)));
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY, "in-handler marks: %s", text);
		PQfinish (conn);
		return FALSE;
	}
	writer->conn = conn;
	return TRUE;
}

/* One upsert; FALSE with @error when it failed (the connection is then
 * dropped: the next try starts on a new one). */
static gboolean
mark_send (MarkWriter *writer, guint slot, gint64 id, gint64 generation, guint stage, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	sc_pg_params_text (&params, writer->owner);
	sc_pg_params_int64 (&params, slot);
	sc_pg_params_int64 (&params, id);
	sc_pg_params_int64 (&params, generation);
	sc_pg_params_int64 (&params, stage);
	result = PQexecPrepared (writer->conn, mark_upsert_name, (int) params.n, params.values, params.lengths,
				 params.formats, 0);
	if (PQresultStatus (result) == PGRES_COMMAND_OK)
		return TRUE;
	{
		const char *message = result != NULL ? PQresultErrorMessage (result) : "";
		g_autofree char *text =
		    g_strchomp (g_strdup (message != NULL && *message != '\0' ? message : PQerrorMessage (writer->conn)));
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY, "in-handler mark: %s", text);
	}
	g_clear_pointer (&writer->conn, PQfinish);
	return FALSE;
}

/* ScOwnerMarkFunc, on a worker thread, before (and after) its handler. */
static void
mark_write (guint slot, gint64 id, gint64 generation, guint stage, gpointer data)
{
	MarkWriter *writer = data;
	g_autoptr(GError) error = NULL;
	gboolean fresh = FALSE;

	g_mutex_lock (&writer->lock);
	if (writer->conn == NULL) {
		if (g_get_monotonic_time () < writer->retry_after) {
			g_mutex_unlock (&writer->lock);
			return; /* the server was unreachable a moment ago */
		}
		if (!mark_connect (writer, &error))
			goto failed;
		fresh = TRUE;
	}
	if (mark_send (writer, slot, id, generation, stage, &error))
		goto done;
	/* lost since the last mark: once more, on a new connection */
	if (fresh)
		goto failed;
	g_debug ("%s; reconnecting", error->message);
	g_clear_error (&error);
	if (mark_connect (writer, &error) && mark_send (writer, slot, id, generation, stage, &error))
		goto done;
failed:
	g_debug ("runner %s: slot %u not recorded (%" G_GINT64_FORMAT "): %s", writer->owner, slot, id,
		 error->message);
	writer->retry_after = g_get_monotonic_time () + writer->backoff;
	writer->backoff = MIN (writer->backoff * 2, MARK_BACKOFF_MAX);
	g_mutex_unlock (&writer->lock);
	return;
done:
	writer->backoff = MARK_BACKOFF_MIN;
	g_mutex_unlock (&writer->lock);
}

/* The owner is freed: the runner stopped (its claims given back by
 * release_owner, or going back by reclaim).  Its rows are removed, on
 * the marks' connection if it has one (none: it never marked). */
static void
mark_writer_free (gpointer data)
{
	MarkWriter *writer = data;

	if (writer->conn != NULL) {
		const char *values[1] = {writer->owner};
		g_autoptr(PGresult) result =
		    PQexecParams (writer->conn, "DELETE FROM handler_marks WHERE owner = $1::text", 1, NULL, values,
				  NULL, NULL, 0);
		if (PQresultStatus (result) != PGRES_COMMAND_OK)
			g_debug ("runner %s: its in-handler marks stay: %s", writer->owner,
				 PQresultErrorMessage (result));
	}
	g_clear_pointer (&writer->conn, PQfinish);
	g_mutex_clear (&writer->lock);
	g_free (writer->conninfo);
	g_free (writer->owner);
	g_free (writer);
}

ScOwner *
sc_pg_register_runner (ScSpool *spool, GError **error)
{
	/* its own rows (a name is never reused: none, unless a crash…) and
	 * idle slots of every runner: a runner killed between stages leaves
	 * those, and they blame nothing.  Only message_id = 0 rows: a live
	 * runner's new mark is re-checked under its row lock and kept. */
	static const ScPgStatement sweep = {
	    "sc_presence_marks_sweep",
	    "DELETE FROM handler_marks WHERE owner = $1::text OR message_id = 0",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autofree char *name = sc_owner_make_name ();
	g_auto(ScPgParams) params = {0};
	g_autoptr(GError) sweep_error = NULL;
	MarkWriter *writer;
	ScOwner *owner;

	g_return_val_if_fail (pg->runner == NULL, NULL);
	pg->runner = g_strdup (name);
	pg->runner_key = runner_key (name);
	pg->runner_locked = FALSE;
	if (!sc_pg_take_runner_lock (pg, error)) {
		g_clear_pointer (&pg->runner, g_free);
		return NULL;
	}
	sc_pg_params_text (&params, name);
	if (!sc_pg_exec_done (pg, &sweep, &params, "register runner", NULL, &sweep_error))
		g_debug ("%s", sweep_error->message);
	/* The lock is the session's, released when the spool is closed (the
	 * runner closes it right after freeing the owner). */
	owner = sc_owner_new_named (name);
	writer = g_new0 (MarkWriter, 1);
	g_mutex_init (&writer->lock);
	writer->conninfo = g_strdup (pg->conninfo);
	writer->busy_timeout = pg->busy_timeout;
	writer->owner = g_steal_pointer (&name);
	writer->backoff = MARK_BACKOFF_MIN;
	sc_owner_set_mark_func (owner, mark_write, writer, mark_writer_free);
	return owner;
}

/* A runner this connection has seen alive whose lock is gone is dead only
 * once that has lasted two busy-timeouts: a runner whose connection was
 * cut (a server restart, pg_terminate_backend, a network blip) reconnects
 * within its busy-timeout and takes its lock back, and its claims must
 * still be its own then — taking them at once had it deliver, from what
 * it held in memory, messages another runner was delivering too
 * (hundreds, in the N-host test).  A killed runner's claims wait that
 * much longer: seconds, not the lease's minutes.  A runner never seen
 * alive here (by a process that just started: `run --once`, a daemon's
 * first pass) cannot be told from one reconnecting; it is dead at once,
 * as it always was. */
static gboolean
lock_gone_long_enough (ScPgSpool *pg, const char *owner)
{
	gint64 now = g_get_monotonic_time ();
	gint64 *since = g_hash_table_lookup (pg->lock_missing, owner);

	if (since == NULL) {
		if (!g_hash_table_contains (pg->seen_alive, owner))
			return TRUE;
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
		g_hash_table_add (pg->seen_alive, g_strdup (owner));
		return TRUE;
	}
	return !lock_gone_long_enough (pg, owner);
}

/* The claims runner @owner's handlers were running, from its marks.  Not
 * knowing (the server did not answer) is an empty table: its claims then
 * go back `released`, as they did before there were marks. */
GHashTable *
sc_pg_runner_in_handler (ScSpool *spool, const char *owner)
{
	static const ScPgStatement select_marks = {
	    "sc_presence_marks",
	    "SELECT message_id, generation, coalesce (stage, -1) FROM handler_marks"
	    " WHERE owner = $1::text AND message_id <> 0",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	GHashTable *running = sc_owner_marks_new ();
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autoptr(GError) error = NULL;

	sc_pg_params_text (&params, owner);
	result = sc_pg_exec (pg, &select_marks, &params, "read in-handler marks", &error);
	if (result == NULL) {
		g_debug ("%s", error->message);
		return running;
	}
	for (int row = 0; row < PQntuples (result); row++) {
		gint64 stage = sc_pg_get_int64 (result, row, 2);
		sc_owner_marks_add (running, sc_pg_get_int64 (result, row, 0), sc_pg_get_int64 (result, row, 1),
				    stage >= 0 && stage <= G_MAXINT ? (gint) stage : SC_OWNER_STAGE_UNKNOWN);
	}
	return running;
}

/* A dead runner's messages were taken back: its marks go (its lock ended
 * with its session), and so do this connection's notes of having seen it
 * alive and then not.  Not while it is alive again — a runner whose
 * session lapsed and came back marks anew, as the SQLite spool keeps a
 * lock file whose runner holds it. */
void
sc_pg_forget_runner (ScSpool *spool, const char *owner)
{
	static const ScPgStatement forget = {
	    "sc_presence_forget",
	    "DELETE FROM handler_marks WHERE owner = $1::text",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_auto(ScPgParams) params = {0};
	g_autoptr(GError) error = NULL;

	if (sc_pg_runner_is_alive (spool, owner))
		return;
	g_hash_table_remove (pg->lock_missing, owner);
	g_hash_table_remove (pg->seen_alive, owner);
	sc_pg_params_text (&params, owner);
	if (!sc_pg_exec_done (pg, &forget, &params, "forget runner", NULL, &error))
		g_debug ("%s", error->message);
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
