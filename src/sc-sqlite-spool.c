/* sc-sqlite-spool.c — the embedded SQLite backend: FOLDER/spool.db, its
 * connection and statement cache, and the runner's verbs.
 *
 * Writes begin IMMEDIATE: a deferred transaction that upgrades to write
 * can get SQLITE_BUSY that busy_timeout does not retry.  A single writer
 * at a time is SQLite's; the updates still name the state they expect, as
 * the contract (sc-spool.h) asks of every backend.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-owner.h"
#include "sc-spool-file.h"
#include "sc-sqlite-private.h"
#include "sc-sqlite-walbuf.h"

/* What a message summary reads (sc_sqlite_summary_from_row's columns). */
#define SUMMARY_COLUMNS                                                                            \
	"SELECT id, queue_id, state, list_id, sender, subject, message_id, last_error,"           \
	" hold_reason, pipeline, attempts, cycle, created_at, next_attempt_at, updated_at, size"
/* A search's text and stage filters: NULL parameters pass every row. */
#define SEARCH_FILTERS                                                                             \
	" AND (:query IS NULL OR subject LIKE :query ESCAPE '\\' OR sender LIKE :query ESCAPE '\\'" \
	" OR message_id LIKE :query ESCAPE '\\' OR last_error LIKE :query ESCAPE '\\'"             \
	" OR queue_id LIKE :query ESCAPE '\\')"                                                    \
	" AND (:stage IS NULL OR :stage = COALESCE((SELECT stage FROM attempts"                    \
	" WHERE attempts.message_id = messages.id ORDER BY attempts.id DESC LIMIT 1),"             \
	" substr(pipeline, 1, instr(pipeline || ';', ';') - 1)))"

static const char *const sql_text[SC_SQL_LAST] = {
    [SC_SQL_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [SC_SQL_COMMIT] = "COMMIT",
    [SC_SQL_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
    [SC_SQL_SYNC_FULL] = "PRAGMA synchronous = FULL",
    [SC_SQL_ROLLBACK] = "ROLLBACK",
    /* one name, fixed here: a recipient group's records inside a result's */
    [SC_SQL_SAVEPOINT] = "SAVEPOINT recipients",
    [SC_SQL_SAVEPOINT_RELEASE] = "RELEASE recipients",
    [SC_SQL_SAVEPOINT_ROLLBACK] = "ROLLBACK TO recipients",
    /* :owner unbound (NULL): queued.  Bound: already claimed by the runner
     * in this process, as SC_SQL_CLAIM_ONE would leave it (active, leased,
     * generation 1), which takes it without a claim transaction. */
    [SC_SQL_INSERT_MESSAGE] =
	"INSERT INTO messages (queue_id, list_id, sender, subject, message_id, pipeline, state,"
	" created_at, updated_at, cycle_started_at, next_attempt_at, size, lease_owner,"
	" lease_expires_at, lease_generation)"
	" VALUES (:queue_id, :list_id, :sender, :subject, :message_id, :pipeline,"
	" CASE WHEN :owner IS NULL THEN 'queued' ELSE 'active' END,"
	" :now, :now, :now, :now, :size, :owner, :lease_expires_at,"
	" CASE WHEN :owner IS NULL THEN 0 ELSE 1 END)",
    [SC_SQL_INSERT_BODY] = "INSERT INTO bodies (message_id, raw) VALUES (:message_id, :raw)",
    [SC_SQL_INSERT_RECIPIENT] =
	"INSERT INTO recipients (message_id, position, address) VALUES (:message_id, :position, "
	":address)",
    [SC_SQL_ACCEPTED_LOOKUP] =
	"SELECT queue_id FROM accepted WHERE message_id = :message_id AND recipient = :recipient",
    /* one statement per recipient: a new pair, or one older than the
     * window, is (re)written and counts as a change; a pair within the
     * window is left alone: changes() = 0 says "duplicate" */
    [SC_SQL_ACCEPTED_INSERT] =
	"INSERT INTO accepted (message_id, recipient, accepted_at, queue_id)"
	" VALUES (:message_id, :recipient, :now, :queue_id)"
	" ON CONFLICT (message_id, recipient) DO UPDATE SET accepted_at = excluded.accepted_at,"
	" queue_id = excluded.queue_id WHERE accepted.accepted_at <= :since",
    /* bounded: one prune must not hold the write lock for a day's pairs */
    [SC_SQL_ACCEPTED_PRUNE] =
	"DELETE FROM accepted WHERE (message_id, recipient) IN (SELECT message_id, recipient"
	" FROM accepted WHERE accepted_at <= :before ORDER BY accepted_at LIMIT :limit)",
    /* Reads the head of messages_due; nothing scans the queue.  INDEXED
     * BY: without it the planner prefers messages_state and sorts every
     * queued message in a temp b-tree on each claim.  The size lets the
     * caller stop at a memory budget before taking the lease. */
    [SC_SQL_CLAIM] =
	"SELECT id, size FROM messages INDEXED BY messages_due"
	" WHERE state IN ('queued','deferred') AND next_attempt_at <= :now"
	" ORDER BY next_attempt_at LIMIT :limit",
    [SC_SQL_CLAIM_ONE] =
	"UPDATE messages SET state = 'active', lease_owner = :owner,"
	" lease_expires_at = :lease_expires_at, updated_at = :now,"
	" lease_generation = lease_generation + 1"
	" WHERE id = :id AND state IN ('queued','deferred')",
    [SC_SQL_SELECT_CLAIMED] =
	"SELECT queue_id, list_id, sender, pipeline, attempts, crashes, cycle_started_at,"
	" lease_generation FROM messages WHERE id = :id",
    [SC_SQL_SELECT_RECIPIENT_ADDRESSES] =
	"SELECT address FROM recipients WHERE message_id = :id ORDER BY position",
    [SC_SQL_UPDATE_RECIPIENT] =
	"UPDATE recipients SET status = :status, code = :code, reply = :reply, mailer = :mailer,"
	" updated_at = :at WHERE message_id = :id AND position = :position"
	" AND EXISTS (SELECT 1 FROM messages WHERE id = :id AND state = 'active'"
	"  AND lease_owner = :owner AND lease_generation = :generation)",
    /* a new cycle tries every recipient not yet sent again */
    [SC_SQL_RESET_RECIPIENTS] =
	"UPDATE recipients SET status = 'pending' WHERE message_id = :id"
	" AND status IN ('failed', 'deferred')",
    [SC_SQL_SELECT_COMPLETED] = "SELECT stage FROM stages WHERE message_id = :id ORDER BY id",
    [SC_SQL_SELECT_ATTEMPT_COUNTS] =
	"SELECT stage, count(*) FROM attempts WHERE message_id = :id GROUP BY stage",
    [SC_SQL_SELECT_BODY] = "SELECT raw FROM bodies WHERE message_id = :id",
    [SC_SQL_SELECT_CURRENT_OUTPUT] =
	"SELECT output FROM stages WHERE message_id = :id AND output IS NOT NULL"
	" ORDER BY id DESC LIMIT 1",
    [SC_SQL_UPDATE_RESULT] =
	"UPDATE messages SET state = :state, updated_at = :now, attempts = :attempts,"
	" next_attempt_at = :next_attempt_at, last_error = :last_error,"
	" lease_owner = CASE WHEN :state = 'active' THEN lease_owner END,"
	" lease_expires_at = CASE WHEN :state = 'active' THEN lease_expires_at END"
	" WHERE id = :id AND state = 'active' AND lease_owner = :owner"
	" AND lease_generation = :generation",
    [SC_SQL_INSERT_STAGE] =
	"INSERT OR IGNORE INTO stages (message_id, stage, completed_at, note, output)"
	" VALUES (:message_id, :stage, :completed_at, :note, :output)",
    [SC_SQL_INSERT_ATTEMPT] =
	"INSERT INTO attempts (message_id, cycle, stage, outcome, error, mailer, started_at,"
	" finished_at) SELECT :message_id, cycle, :stage, :outcome, :error, :mailer, :started_at,"
	" :finished_at FROM messages WHERE id = :message_id",
    [SC_SQL_INSERT_NOTIFICATION] =
	"INSERT INTO notifications (kind, message_id, queue_id, detail, created_at,"
	" next_attempt_at) SELECT :kind, id, queue_id, :detail, :now, :now FROM messages"
	" WHERE id = :message_id",
    [SC_SQL_RENEW_LEASES] =
	"UPDATE messages SET lease_expires_at = :lease_expires_at"
	" WHERE id = :id AND state = 'active' AND lease_owner = :owner"
	" AND lease_generation = :generation",
    [SC_SQL_RELEASE_OWNER] =
	"UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
	" next_attempt_at = :now, updated_at = :now, lease_owner = NULL, lease_expires_at = NULL"
	" WHERE state = 'active' AND lease_owner = :owner",
    /* recipient states recorded since the message row last changed (its
     * claim, or its previous stage's result): the stage was making progress */
    [SC_SQL_SELECT_PROGRESS] =
	"SELECT EXISTS (SELECT 1 FROM recipients r, messages m WHERE m.id = :id"
	" AND r.message_id = :id AND r.updated_at >= m.updated_at)",
    [SC_SQL_CLOCK_READ] = "SELECT boot_id, wall, boottime FROM clock_anchor WHERE id = 1",
    [SC_SQL_CLOCK_WRITE] =
	"INSERT INTO clock_anchor (id, boot_id, wall, boottime) VALUES (1, :boot_id, :wall, :boottime)"
	" ON CONFLICT (id) DO UPDATE SET boot_id = :boot_id, wall = :wall, boottime = :boottime",
    [SC_SQL_CLOCK_SHIFT_DUE] =
	"UPDATE messages SET next_attempt_at = next_attempt_at + :step"
	" WHERE state IN ('queued','deferred') AND next_attempt_at IS NOT NULL",
    [SC_SQL_CLOCK_SHIFT_CYCLE] =
	"UPDATE messages SET cycle_started_at = cycle_started_at + :step"
	" WHERE state IN ('queued','deferred','active','held')",
    [SC_SQL_CLOCK_SHIFT_LEASES] =
	"UPDATE messages SET lease_expires_at = lease_expires_at + :step WHERE state = 'active'",
    [SC_SQL_CLOCK_SHIFT_NOTIFICATIONS] =
	"UPDATE notifications SET next_attempt_at = next_attempt_at + :step"
	" WHERE state = 'pending'",
    [SC_SQL_SELECT_ACTIVE] =
	"SELECT id, lease_owner, lease_expires_at, pipeline, crashes, lease_generation"
	" FROM messages WHERE state = 'active'",
    [SC_SQL_RECLAIM_ONE] =
	"UPDATE messages SET state = CASE WHEN :state = 'held' THEN 'held'"
	"  WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
	" crashes = crashes + :crashed, updated_at = :now,"
	" next_attempt_at = CASE WHEN :state = 'held' THEN NULL"
	"  WHEN :in_handler THEN :now ELSE MIN(coalesce(next_attempt_at, :now), :now) END,"
	" hold_reason = :hold_reason, last_error = COALESCE(:last_error, last_error),"
	" lease_owner = NULL, lease_expires_at = NULL"
	" WHERE id = :id AND state = 'active' AND lease_owner = :owner"
	" AND lease_generation = :generation",
    /* The head of messages_due (IS NOT NULL, always true there, makes it a
     * SEARCH: the plan check allows no SCAN of messages). */
    [SC_SQL_NEXT_DUE] =
	"SELECT next_attempt_at FROM messages INDEXED BY messages_due"
	" WHERE state IN ('queued','deferred') AND next_attempt_at IS NOT NULL"
	" ORDER BY next_attempt_at LIMIT 1",
    [SC_SQL_COUNT_ALL] = "SELECT state, SUM(count) FROM state_counts GROUP BY state",
    [SC_SQL_COUNT_LIST] = "SELECT state, count FROM state_counts WHERE list_id = :list_id",
    [SC_SQL_SUMMARY_BY_QUEUE_ID] =
	SUMMARY_COLUMNS
	" FROM messages WHERE queue_id = :queue_id",
    [SC_SQL_SELECT_STAGES] =
	"SELECT stage, completed_at, note, length(output) FROM stages WHERE message_id = :id"
	" ORDER BY id",
    [SC_SQL_SELECT_ATTEMPTS] =
	"SELECT stage, outcome, error, mailer, cycle, started_at, finished_at FROM attempts"
	" WHERE message_id = :id ORDER BY id",
    [SC_SQL_SELECT_RECIPIENTS] =
	"SELECT address, status, code, reply, mailer, updated_at, position FROM recipients"
	" WHERE message_id = :id ORDER BY position",
    [SC_SQL_SELECT_STAGE_OUTPUT] =
	"SELECT output FROM stages WHERE message_id = :id AND stage = :stage",
    [SC_SQL_DELETE_STAGE] = "DELETE FROM stages WHERE message_id = :id AND stage = :stage",
    [SC_SQL_RETRY] =
	"UPDATE messages SET state = 'queued', cycle = cycle + 1, cycle_started_at = :now,"
	" attempts = 0, crashes = 0, next_attempt_at = :now, updated_at = :now,"
	" hold_reason = NULL WHERE id = :id AND state = :expected",
    [SC_SQL_SELECT_MATCHING] =
	"SELECT queue_id FROM messages WHERE state = :state"
	" AND (:list_id IS NULL OR list_id = :list_id) ORDER BY id",
    [SC_SQL_HOLD] =
	"UPDATE messages SET state = 'held', hold_reason = :reason, next_attempt_at = NULL,"
	" updated_at = :now WHERE id = :id AND state = :expected",
    [SC_SQL_RELEASE] =
	"UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
	" hold_reason = NULL, crashes = 0, next_attempt_at = :now, updated_at = :now"
	" WHERE id = :id AND state = :expected",
    [SC_SQL_DELETE_MESSAGE] = "DELETE FROM messages WHERE id = :id AND state = :expected",
    [SC_SQL_INSERT_AUDIT] =
	"INSERT INTO audit (at, actor, remote, action, queue_id, detail)"
	" VALUES (:now, :actor, :remote, :action, :queue_id, :detail)",
    /* sc-sqlite-notify.c: every read walks the partial index notifications_due */
    [SC_SQL_NOTIFY_CLAIM] =
	"SELECT id, kind, message_id, queue_id, detail, created_at, attempts"
	" FROM notifications INDEXED BY notifications_due"
	" WHERE state = 'pending' AND next_attempt_at <= :now"
	" ORDER BY next_attempt_at, id LIMIT :limit",
    [SC_SQL_NOTIFY_MARK_SENT] =
	"UPDATE notifications SET state = 'sent', sent_at = :now, attempts = attempts + 1,"
	" last_error = NULL WHERE id = :id AND state = 'pending'",
    [SC_SQL_NOTIFY_MARK_FAILED] =
	"UPDATE notifications SET attempts = attempts + 1, next_attempt_at = :next_attempt_at,"
	" last_error = :last_error WHERE id = :id AND state = 'pending'",
    [SC_SQL_NOTIFY_COUNT_DUE] =
	"SELECT count(*) FROM notifications INDEXED BY notifications_due"
	" WHERE state = 'pending' AND next_attempt_at <= :now",
    /* min() reads the index head: a SEARCH, where ORDER BY … LIMIT 1 plans a SCAN */
    [SC_SQL_NOTIFY_NEXT_DUE] =
	"SELECT min(next_attempt_at) FROM notifications INDEXED BY notifications_due"
	" WHERE state = 'pending'",
    [SC_SQL_NOTIFY_INSERT_EVENT] =
	"INSERT INTO notifications (kind, detail, created_at, next_attempt_at)"
	" VALUES (:kind, :detail, :now, :now)",
    /* bounded: stops counting past the threshold */
    [SC_SQL_NOTIFY_COUNT_BACKLOG] =
	"SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_due"
	" WHERE state IN ('queued','deferred') AND next_attempt_at <= :now LIMIT :limit)",
    /* sc-sqlite-search.c: the admin API's reads.  Each search shape walks
     * its own index backwards from :after (keyset pagination) and stops at
     * :limit; q and stage only filter the rows that walk meets (a LIKE per
     * row, no index). */
    [SC_SQL_SEARCH] =
	SUMMARY_COLUMNS
	" FROM messages WHERE id < :after"
	SEARCH_FILTERS
	" ORDER BY id DESC LIMIT :limit",
    [SC_SQL_SEARCH_STATE] =
	SUMMARY_COLUMNS
	" FROM messages INDEXED BY messages_state WHERE state = :state AND id < :after"
	SEARCH_FILTERS
	" ORDER BY id DESC LIMIT :limit",
    [SC_SQL_SEARCH_LIST] =
	SUMMARY_COLUMNS
	" FROM messages INDEXED BY messages_list WHERE list_id = :list_id AND id < :after"
	SEARCH_FILTERS
	" ORDER BY id DESC LIMIT :limit",
    [SC_SQL_SEARCH_STATE_LIST] =
	SUMMARY_COLUMNS
	" FROM messages INDEXED BY messages_state WHERE state = :state AND list_id = :list_id"
	" AND id < :after"
	SEARCH_FILTERS
	" ORDER BY id DESC LIMIT :limit",
    /* state_counts holds one row per (state, list): small whatever the queue */
    [SC_SQL_COUNT_BY_LIST] =
	"SELECT state, list_id, count FROM state_counts WHERE count > 0 ORDER BY list_id",
    [SC_SQL_AUDIT_PAGE] =
	"SELECT id, at, actor, remote, action, queue_id, detail FROM audit"
	" WHERE id < :after ORDER BY id DESC LIMIT :limit",
    [SC_SQL_NOTIFICATIONS_PAGE] =
	"SELECT id, kind, queue_id, detail, created_at, state, attempts, sent_at, last_error,"
	" next_attempt_at FROM notifications WHERE id < :after ORDER BY id DESC LIMIT :limit",
    [SC_SQL_COUNT_NOTIFICATIONS_PENDING] =
	"SELECT count(*) FROM notifications INDEXED BY notifications_due WHERE state = 'pending'",
    /* Newest first by rowid; the caller stops at the first row older than
     * its window, so only the last hour's attempts are read.  The third
     * column: was this the pipeline's last stage (the message is done)? */
    [SC_SQL_RECENT_ATTEMPTS] =
	"SELECT a.finished_at, a.outcome, m.pipeline = a.stage"
	" OR substr(m.pipeline, -length(a.stage) - 1) = ';' || a.stage"
	" FROM attempts AS a LEFT JOIN messages AS m ON m.id = a.message_id"
	" ORDER BY a.id DESC",
    /* attempts is append-only: /metrics folds in what is new since its last read */
    [SC_SQL_ATTEMPTS_SINCE] =
	"SELECT id, stage, outcome, mailer, finished_at - started_at FROM attempts"
	" WHERE id > :after ORDER BY id LIMIT :limit",
};

const char *
sc_sqlite_sql_text (ScSql sql)
{
	g_return_val_if_fail (sql < SC_SQL_LAST, NULL);
	return sql_text[sql];
}

sqlite3 *
sc_sqlite_get_db (ScSpool *spool)
{
	g_return_val_if_fail (spool != NULL, NULL);
	return sc_sqlite (spool)->db;
}

void
sc_statement_reset (ScStatement *stmt)
{
	sqlite3_reset (stmt);
	sqlite3_clear_bindings (stmt);
}

static gboolean
rc_is_temporary (int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_NOMEM:
	case SQLITE_PROTOCOL:
	case SQLITE_READONLY:
		return TRUE;
	default:
		return FALSE;
	}
}

void
sc_sqlite_set_error (ScSpool *spool, int rc, GError **error, const char *doing)
{
	g_set_error (error,
		     SC_SPOOL_ERROR,
		     (rc & 0xff) == SQLITE_FULL ? SC_SPOOL_ERROR_NO_SPACE
		     : rc_is_temporary (rc)    ? SC_SPOOL_ERROR_TEMPORARY
					       : SC_SPOOL_ERROR_FAILED,
		     /* TRANSLATORS: "spool /var/spool/stagecoach: inject: database is locked" */
		     _("spool %s: %s: %s"),
		     sc_sqlite (spool)->folder,
		     doing,
		     sc_sqlite (spool)->db != NULL ? sqlite3_errmsg (sc_sqlite (spool)->db) : sqlite3_errstr (rc));
}

ScStatement *
sc_sqlite_statement (ScSpool *spool, ScSql sql, GError **error)
{
	g_return_val_if_fail (sql < SC_SQL_LAST, NULL);
	if (sc_sqlite (spool)->stmts[sql] == NULL) {
		int rc = sqlite3_prepare_v3 (sc_sqlite (spool)->db,
					     sql_text[sql],
					     -1,
					     SQLITE_PREPARE_PERSISTENT,
					     &sc_sqlite (spool)->stmts[sql],
					     NULL);
		if (rc != SQLITE_OK) {
			sc_sqlite_set_error (spool, rc, error, "prepare");
			return NULL;
		}
	}
	return sc_sqlite (spool)->stmts[sql];
}

static int
parameter_index (ScStatement *stmt, const char *name)
{
	int index = sqlite3_bind_parameter_index (stmt, name);
	if (index == 0)
		g_critical ("no such bind parameter %s in: %s", name, sqlite3_sql (stmt));
	return index;
}

void
sc_bind_text (ScStatement *stmt, const char *name, const char *value)
{
	int index = parameter_index (stmt, name);
	if (value == NULL)
		sqlite3_bind_null (stmt, index);
	else
		sqlite3_bind_text (stmt, index, value, -1, SQLITE_TRANSIENT);
}

void
sc_bind_int64 (ScStatement *stmt, const char *name, gint64 value)
{
	sqlite3_bind_int64 (stmt, parameter_index (stmt, name), value);
}

void
sc_bind_bytes (ScStatement *stmt, const char *name, GBytes *value)
{
	int index = parameter_index (stmt, name);
	gsize size = 0;
	gconstpointer data;

	if (value == NULL) {
		sqlite3_bind_null (stmt, index);
		return;
	}
	data = g_bytes_get_data (value, &size);
	/* SQLITE_STATIC: the caller keeps @value alive until the step */
	sqlite3_bind_blob64 (stmt, index, data != NULL ? data : "", size, SQLITE_STATIC);
}

char *
sc_column_dup (ScStatement *stmt, int column)
{
	const unsigned char *text = sqlite3_column_text (stmt, column);
	return text != NULL ? g_strdup ((const char *) text) : NULL;
}

gboolean
sc_sqlite_step_done (ScSpool *spool, ScStatement *stmt, GError **error, const char *doing)
{
	int rc = sqlite3_step (stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, doing);
		return FALSE;
	}
	return TRUE;
}

gboolean
sc_sqlite_exec_simple (ScSpool *spool, ScSql sql, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
	if (stmt == NULL)
		return FALSE;
	return sc_sqlite_step_done (spool, stmt, error, sql_text[sql]);
}

/* Writers of one process (the runner on the main thread, the ingress
 * acceptor on its own) take turns here instead of in SQLite's busy
 * handler, which sleeps 1–100 ms per try: with two writers in one
 * process that sleep, not the disk, would set the pace.  Other
 * processes still wait in busy_timeout. */
static GMutex process_writer;

/* Durability, per spool file and process.  Commits are numbered under
 * process_writer, so a durable commit (synchronous=FULL syncs the whole
 * WAL before it returns) covers every commit numbered before it, on any
 * connection to the same file: fdatasync works on the file, not on the
 * descriptor that wrote.  Connections are matched by the folder's path
 * as given; two spellings of one folder only cost an extra sync. */
struct _ScSqliteDurability {
	char *path;	    /* (owned) the key */
	guint refs;	    /* connections of this process to it */
	guint64 committed;  /* the last commit's number */
	guint64 durable;    /* every commit up to this one is on disk */
};

static GMutex durability_lock;
static GHashTable *durabilities; /* path → ScSqliteDurability, under durability_lock */

static ScSqliteDurability *
durability_ref (const char *folder)
{
	g_autofree char *path = g_canonicalize_filename (folder, NULL);
	ScSqliteDurability *durability;

	g_mutex_lock (&durability_lock);
	if (durabilities == NULL)
		durabilities = g_hash_table_new (g_str_hash, g_str_equal);
	durability = g_hash_table_lookup (durabilities, path);
	if (durability == NULL) {
		durability = g_new0 (ScSqliteDurability, 1);
		durability->path = g_steal_pointer (&path);
		g_hash_table_insert (durabilities, durability->path, durability);
	}
	durability->refs++;
	g_mutex_unlock (&durability_lock);
	return durability;
}

static void
durability_unref (ScSqliteDurability *durability)
{
	g_mutex_lock (&durability_lock);
	if (--durability->refs == 0) {
		g_hash_table_remove (durabilities, durability->path);
		g_free (durability->path);
		g_free (durability);
	}
	g_mutex_unlock (&durability_lock);
}

/* WAL pages between checkpoints.  A checkpoint runs inside the commit
 * that crosses the mark, holding every writer of the spool, and copies
 * each page once however often the WAL rewrote it; the pages a message
 * touches are mostly the same few index and table leaves, so ten times
 * SQLite's 1,000 copies far fewer (figure 3: +10-22 %, no more at
 * 30,000).  The WAL file grows to ~40 MB. */
#define SC_SQLITE_CHECKPOINT_PAGES 10000

/* SQLite calls this after each commit that wrote WAL frames, and only
 * then (a transaction that changed nothing, or whose savepoints were all
 * undone, writes none and syncs nothing).  It replaces the hook of
 * PRAGMA wal_autocheckpoint, so it checkpoints as that one did. */
static int
wal_committed (void *data, sqlite3 *db, const char *name, int n_frames)
{
	ScSpool *spool = data;

	sc_sqlite (spool)->wrote_frames = TRUE;
	if (n_frames >= SC_SQLITE_CHECKPOINT_PAGES)
		(void) sqlite3_wal_checkpoint (db, name); /* passive: a reader only delays it */
	return SQLITE_OK;
}

/* Under process_writer, just after a COMMIT went through: numbered only
 * if it wrote frames, since only then did a FULL one sync the WAL. */
static void
durability_note_commit (ScSpool *spool, gboolean synced)
{
	ScSqliteDurability *durability = sc_sqlite (spool)->durability;

	if (!sc_sqlite (spool)->wrote_frames)
		return;
	g_mutex_lock (&durability_lock);
	durability->committed++;
	if (synced)
		durability->durable = durability->committed;
	else
		sc_sqlite (spool)->unsynced_through = durability->committed;
	g_mutex_unlock (&durability_lock);
}

guint64
sc_sqlite_unsynced_mark (ScSpool *spool)
{
	guint64 mark;

	g_mutex_lock (&durability_lock);
	mark = sc_sqlite (spool)->unsynced_through > sc_sqlite (spool)->durability->durable
		   ? sc_sqlite (spool)->unsynced_through
		   : 0;
	g_mutex_unlock (&durability_lock);
	return mark;
}

/* One sync of the WAL through this connection's own handle (the unix
 * VFS's: fdatasync, and the folder too if the WAL is new), outside the
 * writer lock: the other connection may commit meanwhile. */
gboolean
sc_sqlite_sync (ScSpool *spool, guint64 mark, GError **error)
{
	ScSqliteDurability *durability = sc_sqlite (spool)->durability;
	sqlite3_file *wal = NULL;
	guint64 target;
	int rc;

	g_mutex_lock (&durability_lock);
	target = durability->committed;
	if (MIN (mark, sc_sqlite (spool)->unsynced_through) <= durability->durable) {
		g_mutex_unlock (&durability_lock);
		return TRUE;
	}
	g_mutex_unlock (&durability_lock);
	rc = sqlite3_file_control (sc_sqlite (spool)->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc == SQLITE_OK && (wal == NULL || wal->pMethods == NULL))
		rc = SQLITE_IOERR_FSYNC; /* no WAL open after a commit to it: cannot be */
	if (rc == SQLITE_OK)
		rc = wal->pMethods->xSync (wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
			     _("spool %s: cannot write its log to disk: %s"),
			     sc_sqlite (spool)->folder, sqlite3_errstr (rc));
		return FALSE;
	}
	g_mutex_lock (&durability_lock);
	durability->durable = MAX (durability->durable, target);
	g_mutex_unlock (&durability_lock);
	return TRUE;
}

static void
release_writer (ScSpool *spool)
{
	/* back to FULL before anything else can commit on this connection
	 * (SQLite refuses the change inside a transaction) */
	if (sc_sqlite (spool)->unsynced) {
		sc_sqlite (spool)->unsynced = FALSE;
		if (!sc_sqlite_exec_simple (spool, SC_SQL_SYNC_FULL, NULL))
			g_error ("spool: cannot set synchronous=FULL again");
	}
	if (sc_sqlite (spool)->holds_writer) {
		sc_sqlite (spool)->holds_writer = FALSE;
		g_mutex_unlock (&process_writer);
	}
}

static gboolean
begin (ScSpool *spool, gboolean unsynced, GError **error)
{
	g_return_val_if_fail (!sc_sqlite (spool)->holds_writer, FALSE);
	g_mutex_lock (&process_writer);
	sc_sqlite (spool)->holds_writer = TRUE;
	/* the level is read at COMMIT, and SQLite lets it change only
	 * outside a transaction */
	if (unsynced) {
		sc_sqlite (spool)->unsynced = TRUE;
		if (!sc_sqlite_exec_simple (spool, SC_SQL_SYNC_NORMAL, error)) {
			release_writer (spool);
			return FALSE;
		}
	}
	if (!sc_sqlite_exec_simple (spool, SC_SQL_BEGIN_IMMEDIATE, error)) {
		release_writer (spool);
		return FALSE;
	}
	return TRUE;
}

gboolean
sc_sqlite_begin (ScSpool *spool, GError **error)
{
	return begin (spool, FALSE, error);
}

/* A transaction whose loss on power failure only undoes itself: the WAL
 * is one file, so the next synchronous=FULL commit (a stage result, an
 * accepted message) makes its frames durable too, and until then the
 * rows read as before it.  For claims: a lost claim leaves the message
 * queued with its old lease generation, to be claimed again — what a
 * crash does anyway.  Never for anything acknowledged to anyone. */
gboolean
sc_sqlite_begin_unsynced (ScSpool *spool, GError **error)
{
	/* such a connection's WAL writes wait for the sync (sc-sqlite-walbuf.c) */
	return begin (spool, !sc_sqlite (spool)->full_sync_only, error);
}

gboolean
sc_sqlite_commit (ScSpool *spool, GError **error)
{
	sc_sqlite (spool)->wrote_frames = FALSE;
	if (!sc_sqlite_exec_simple (spool, SC_SQL_COMMIT, error)) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	durability_note_commit (spool, !sc_sqlite (spool)->unsynced);
	release_writer (spool);
	return TRUE;
}

void
sc_sqlite_rollback (ScSpool *spool)
{
	if (!sqlite3_get_autocommit (sc_sqlite (spool)->db))
		(void) sc_sqlite_exec_simple (spool, SC_SQL_ROLLBACK, NULL);
	release_writer (spool);
}

static const ScSpoolBackend sqlite_backend;

ScSpool *
sc_sqlite_spool_open (const char *folder, gint64 busy_timeout, ScSpoolOpenFlags flags, GError **error)
{
	g_autoptr(ScSpool) spool = (ScSpool *) g_new0 (ScSqliteSpool, 1);
	g_autofree char *path = NULL;
	gint64 deadline;
	int rc;

	spool->backend = &sqlite_backend;
	sc_sqlite (spool)->folder = g_strdup (folder);
	path = g_build_filename (folder, "spool.db", NULL);
	if (!sc_spool_file_create (folder, path, error)) /* 0600: sc-spool-file.c */
		return NULL;
	sc_sqlite (spool)->full_sync_only = (flags & SC_SPOOL_OPEN_FULL_SYNC_ONLY) != 0;
	sc_sqlite (spool)->durability = durability_ref (folder);
	rc = sqlite3_open_v2 (path,
			      &sc_sqlite (spool)->db,
			      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			      sc_sqlite (spool)->full_sync_only ? sc_sqlite_walbuf_vfs () : NULL);
	if (rc != SQLITE_OK) {
		sc_sqlite_set_error (spool, rc, error, "open");
		return NULL;
	}
	sqlite3_extended_result_codes (sc_sqlite (spool)->db, 0);
	sqlite3_busy_timeout (sc_sqlite (spool)->db, (int) MIN (busy_timeout / 1000, G_MAXINT));
	/* synchronous=FULL: inject promises the message is on disk; WAL with
	 * NORMAL can lose the last commits on power loss. */
	/* Switching a new file to WAL takes a lock the busy handler does not
	 * wait for: two processes creating the spool at once (a daemon and
	 * an inject) get SQLITE_BUSY here, so wait out busy_timeout by hand. */
	deadline = g_get_monotonic_time () + busy_timeout;
	for (;;) {
		rc = sqlite3_exec (sc_sqlite (spool)->db,
				   "PRAGMA journal_mode = WAL;"
				   "PRAGMA synchronous = FULL;"
				   "PRAGMA foreign_keys = ON;",
				   NULL,
				   NULL,
				   NULL);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || g_get_monotonic_time () >= deadline)
			break;
		g_usleep (5000);
	}
	if (rc != SQLITE_OK) {
		sc_sqlite_set_error (spool, rc, error, "configure");
		return NULL;
	}
	sqlite3_wal_hook (sc_sqlite (spool)->db, wal_committed, spool);
	if (!sc_sqlite_schema_migrate (sc_sqlite (spool)->db, error)) {
		g_prefix_error (error, _("spool %s: "), folder);
		return NULL;
	}
	return g_steal_pointer (&spool);
}

static void
sqlite_close (ScSpool *spool)
{
	for (guint i = 0; i < SC_SQL_LAST; i++)
		sqlite3_finalize (sc_sqlite (spool)->stmts[i]);
	if (sc_sqlite (spool)->db != NULL) {
		g_autoptr(GError) error = NULL;
		/* the last connection's close would sync in its checkpoint,
		 * but another process may still hold the spool open */
		if (!sc_sqlite_sync (spool, G_MAXUINT64, &error))
			g_warning ("%s", error->message);
		sqlite3_close_v2 (sc_sqlite (spool)->db);
	}
	if (sc_sqlite (spool)->durability != NULL)
		durability_unref (sc_sqlite (spool)->durability);
	g_free (sc_sqlite (spool)->folder);
	g_free (spool);
}

/* ---- ingress ---- */

/* Queue ids grow with time, so each is the UNIQUE index's new last entry:
 * a batch's inserts share the index's last leaf instead of dirtying a
 * random leaf each (one more 4 KiB WAL frame per message, copied again by
 * the checkpoint; on a large spool also a read of a cold leaf).  16 hex
 * digits, as before: 48 bits of microseconds, strictly increasing in this
 * process (a burst or a clock stepped back runs a little ahead, never
 * repeats), then 16 random bits, so that another process (an `inject`
 * writing the spool itself) taking the same microsecond still differs as
 * good as surely; the UNIQUE constraint catches the rest.  After 8.9 years
 * the 48 bits wrap: only the order restarts. */
static char *
new_queue_id (void)
{
	static GMutex lock;
	static gint64 last;
	gint64 now = g_get_real_time ();
	gint64 stamp;

	g_mutex_lock (&lock);
	stamp = last = now > last ? now : last + 1;
	g_mutex_unlock (&lock);
	return g_strdup_printf ("%012" G_GINT64_MODIFIER "x%04x", stamp & G_GINT64_CONSTANT (0xffffffffffff),
				g_random_int () & 0xffff);
}

static gboolean
insert_message (ScSpool *spool, const ScNewMessage *message, const char *queue_id, gint64 *out_rowid,
		GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_MESSAGE, error);
	gint64 rowid;

	if (stmt == NULL)
		return FALSE;
	if (message->lease_owner != NULL) {
		sc_bind_text (stmt, ":owner", message->lease_owner);
		sc_bind_int64 (stmt, ":lease_expires_at", message->lease_expires_at);
	}
	sc_bind_text (stmt, ":queue_id", queue_id);
	sc_bind_text (stmt, ":list_id", message->list_id);
	sc_bind_text (stmt, ":sender", message->sender != NULL ? message->sender : "");
	sc_bind_text (stmt, ":subject", message->subject);
	sc_bind_text (stmt, ":message_id", message->message_id);
	sc_bind_text (stmt, ":pipeline", message->pipeline);
	sc_bind_int64 (stmt, ":now", message->now);
	sc_bind_int64 (stmt, ":size", (gint64) g_bytes_get_size (message->raw));
	if (!sc_sqlite_step_done (spool, stmt, error, "inject"))
		return FALSE;
	rowid = sqlite3_last_insert_rowid (sc_sqlite (spool)->db);
	{
		g_autoptr(ScStatement) body = sc_sqlite_statement (spool, SC_SQL_INSERT_BODY, error);
		if (body == NULL)
			return FALSE;
		sc_bind_int64 (body, ":message_id", rowid);
		sc_bind_bytes (body, ":raw", message->raw);
		if (!sc_sqlite_step_done (spool, body, error, "inject"))
			return FALSE;
	}
	for (guint i = 0; message->recipients[i] != NULL; i++) {
		g_autoptr(ScStatement) rcpt = sc_sqlite_statement (spool, SC_SQL_INSERT_RECIPIENT, error);
		if (rcpt == NULL)
			return FALSE;
		sc_bind_int64 (rcpt, ":message_id", rowid);
		sc_bind_int64 (rcpt, ":position", i);
		sc_bind_text (rcpt, ":address", message->recipients[i]);
		if (!sc_sqlite_step_done (spool, rcpt, error, "inject"))
			return FALSE;
	}
	*out_rowid = rowid;
	return TRUE;
}

/* Records @message's (Message-ID, recipient) pairs as accepted now for
 * @queue_id and returns the recipients that were new; those accepted
 * within the window are left out (*@out_duplicates), the queue id the
 * first of them went to in *@out_first_queue_id.  One write per
 * recipient, no lookup first: the insert itself says which pairs were
 * known.  Compared in lower case: a list resends what it sent. */
static GPtrArray *
dedupe_recipients (ScSpool *spool,
		   const ScNewMessage *message,
		   gint64 dedupe_window,
		   const char *queue_id,
		   GPtrArray **out_duplicates,
		   char **out_first_queue_id,
		   GError **error)
{
	g_autoptr(GPtrArray) fresh = g_ptr_array_new ();
	g_autoptr(GPtrArray) duplicates = g_ptr_array_new ();

	for (guint i = 0; message->recipients[i] != NULL; i++) {
		g_autofree char *key = g_ascii_strdown (message->recipients[i], -1);
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_ACCEPTED_INSERT, error);

		if (stmt == NULL)
			return NULL;
		sc_bind_text (stmt, ":message_id", message->message_id);
		sc_bind_text (stmt, ":recipient", key);
		sc_bind_int64 (stmt, ":now", message->now);
		sc_bind_int64 (stmt, ":since", message->now - dedupe_window);
		sc_bind_text (stmt, ":queue_id", queue_id);
		if (!sc_sqlite_step_done (spool, stmt, error, "inject"))
			return NULL;
		if (sqlite3_changes (sc_sqlite (spool)->db) > 0) {
			g_ptr_array_add (fresh, (gpointer) message->recipients[i]);
			continue;
		}
		if (duplicates->len == 0) {
			/* the answer names where the earlier send went: once per message */
			g_autoptr(ScStatement) lookup = sc_sqlite_statement (spool, SC_SQL_ACCEPTED_LOOKUP, error);
			if (lookup == NULL)
				return NULL;
			sc_bind_text (lookup, ":message_id", message->message_id);
			sc_bind_text (lookup, ":recipient", key);
			if (sqlite3_step (lookup) == SQLITE_ROW)
				*out_first_queue_id = sc_column_dup (lookup, 0);
		}
		g_ptr_array_add (duplicates, (gpointer) message->recipients[i]);
	}
	*out_duplicates = g_steal_pointer (&duplicates);
	return g_steal_pointer (&fresh);
}

static gboolean
audit_duplicates (ScSpool *spool,
		  const ScNewMessage *message,
		  GPtrArray *duplicates,
		  const char *queue_id,
		  GError **error)
{
	ScAuditContext audit;
	g_autofree char *detail = sc_spool_duplicates_detail (message, duplicates, &audit);

	return sc_sqlite_write_audit (spool, &audit, "ingress-duplicate", queue_id, detail, error);
}

gboolean
sc_sqlite_inject_batch (ScSpool *spool,
		       const ScNewMessage *const *messages,
		       guint n_messages,
		       gint64 dedupe_window,
		       char **out_queue_ids,
		       guint *out_duplicates,
		       char **out_duplicate_of,
		       ScMessage **out_claimed,
		       GError **error)
{
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) duplicate_of = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) claimed = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);

	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	for (guint m = 0; m < n_messages; m++) {
		const ScNewMessage *message = messages[m];
		g_autoptr(GPtrArray) fresh = NULL;
		g_autoptr(GPtrArray) duplicates = NULL;
		g_autofree char *queue_id = new_queue_id ();
		g_autofree char *first_duplicate_of = NULL;
		gboolean dedupe = dedupe_window > 0 && message->dedupe && message->message_id != NULL;

		g_return_val_if_fail (message->raw != NULL && message->recipients != NULL, FALSE);
		if (dedupe) {
			fresh = dedupe_recipients (spool, message, dedupe_window, queue_id, &duplicates,
						   &first_duplicate_of, error);
			if (fresh == NULL)
				goto failed;
			g_ptr_array_add (fresh, NULL);
		}
		g_ptr_array_add (claimed, NULL);
		if (fresh == NULL || fresh->len > 1) {
			ScNewMessage stored = *message;
			gint64 rowid = 0;
			if (fresh != NULL)
				stored.recipients = (const char *const *) fresh->pdata;
			if (out_claimed == NULL)
				stored.lease_owner = NULL;
			if (!insert_message (spool, &stored, queue_id, &rowid, error))
				goto failed;
			if (stored.lease_owner != NULL)
				claimed->pdata[m] = sc_message_new_leased (&stored, rowid, queue_id);
		} else {
			g_clear_pointer (&queue_id, g_free); /* nothing new: nothing stored */
		}
		if (duplicates != NULL && duplicates->len > 0 &&
		    !audit_duplicates (spool, message, duplicates, queue_id, error))
			goto failed;
		out_duplicates[m] = duplicates != NULL ? duplicates->len : 0;
		g_ptr_array_add (queue_ids, g_steal_pointer (&queue_id));
		g_ptr_array_add (duplicate_of, g_steal_pointer (&first_duplicate_of));
	}
	/* The caller may say "accepted" only after this returns. */
	if (!sc_sqlite_commit (spool, error))
		return FALSE;
	for (guint m = 0; m < n_messages; m++) {
		out_queue_ids[m] = g_steal_pointer (&queue_ids->pdata[m]);
		if (out_duplicate_of != NULL)
			out_duplicate_of[m] = g_steal_pointer (&duplicate_of->pdata[m]);
		if (out_claimed != NULL)
			out_claimed[m] = g_steal_pointer (&claimed->pdata[m]);
	}
	return TRUE;

failed:
	sc_sqlite_rollback (spool);
	return FALSE;
}

gboolean
sc_sqlite_prune_accepted (ScSpool *spool, gint64 before, guint limit, guint *out_pruned, GError **error)
{
	g_autoptr(ScStatement) stmt = NULL;

	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	stmt = sc_sqlite_statement (spool, SC_SQL_ACCEPTED_PRUNE, error);
	if (stmt == NULL) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	sc_bind_int64 (stmt, ":before", before);
	sc_bind_int64 (stmt, ":limit", limit);
	if (!sc_sqlite_step_done (spool, stmt, error, "prune accepted")) {
		sc_sqlite_rollback (spool);
		return FALSE;
	}
	*out_pruned = sqlite3_changes (sc_sqlite (spool)->db);
	g_clear_pointer (&stmt, sc_statement_reset);
	return sc_sqlite_commit (spool, error);
}

static GHashTable *
select_attempt_counts (ScSpool *spool, gint64 rowid, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SELECT_ATTEMPT_COUNTS, error);
	g_autoptr(GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":id", rowid);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
		g_hash_table_insert (counts, sc_column_dup (stmt, 0),
				     GUINT_TO_POINTER ((guint) sqlite3_column_int (stmt, 1)));
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "read");
		return NULL;
	}
	return g_steal_pointer (&counts);
}

static char **
select_strings (ScSpool *spool, ScSql sql, gint64 rowid, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":id", rowid);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
		g_strv_builder_add (builder, (const char *) sqlite3_column_text (stmt, 0));
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "read");
		return NULL;
	}
	return g_strv_builder_end (builder);
}

static GBytes *
select_blob (ScSpool *spool, ScSql sql, gint64 rowid, const char *stage, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, sql, error);
	int rc;

	if (stmt == NULL)
		return NULL;
	sc_bind_int64 (stmt, ":id", rowid);
	if (stage != NULL)
		sc_bind_text (stmt, ":stage", stage);
	rc = sqlite3_step (stmt);
	if (rc == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL)
		return g_bytes_new (sqlite3_column_blob (stmt, 0), sqlite3_column_bytes (stmt, 0));
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_NOT_FOUND,
			     stage != NULL ? _("no output recorded for stage %s")
					   : _("no message body"),
			     stage);
		return NULL;
	}
	sc_sqlite_set_error (spool, rc, error, "read");
	return NULL;
}

GBytes *
sc_sqlite_get_raw (ScSpool *spool, gint64 rowid, GError **error)
{
	return select_blob (spool, SC_SQL_SELECT_BODY, rowid, NULL, error);
}

GBytes *
sc_sqlite_get_stage_output (ScSpool *spool, gint64 rowid, const char *stage, GError **error)
{
	g_return_val_if_fail (stage != NULL, NULL);
	return select_blob (spool, SC_SQL_SELECT_STAGE_OUTPUT, rowid, stage, error);
}

static ScMessage *
load_claimed (ScSpool *spool, gint64 rowid, GError **error)
{
	g_autoptr(ScMessage) message = g_new0 (ScMessage, 1);
	g_autoptr(GError) error_local = NULL;

	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SELECT_CLAIMED, error);
		int rc;
		if (stmt == NULL)
			return NULL;
		sc_bind_int64 (stmt, ":id", rowid);
		rc = sqlite3_step (stmt);
		if (rc != SQLITE_ROW) {
			sc_sqlite_set_error (spool, rc, error, "claim");
			return NULL;
		}
		message->id = rowid;
		message->queue_id = sc_column_dup (stmt, 0);
		message->list_id = sc_column_dup (stmt, 1);
		message->sender = sc_column_dup (stmt, 2);
		message->pipeline = g_strsplit ((const char *) sqlite3_column_text (stmt, 3), ";", -1);
		message->attempts = sqlite3_column_int (stmt, 4);
		message->crashes = sqlite3_column_int (stmt, 5);
		message->cycle_started_at = sqlite3_column_int64 (stmt, 6);
		message->lease_generation = sqlite3_column_int64 (stmt, 7);
	}
	message->recipients = select_strings (spool, SC_SQL_SELECT_RECIPIENT_ADDRESSES, rowid, error);
	if (message->recipients == NULL)
		return NULL;
	message->completed = select_strings (spool, SC_SQL_SELECT_COMPLETED, rowid, error);
	if (message->completed == NULL)
		return NULL;
	message->recipient_records = sc_sqlite_get_recipients (spool, rowid, error);
	if (message->recipient_records == NULL)
		return NULL;
	message->stage_attempts = select_attempt_counts (spool, rowid, error);
	if (message->stage_attempts == NULL)
		return NULL;
	message->raw = sc_sqlite_get_raw (spool, rowid, error);
	if (message->raw == NULL)
		return NULL;
	message->current =
	    select_blob (spool, SC_SQL_SELECT_CURRENT_OUTPUT, rowid, NULL, &error_local);
	if (message->current == NULL) {
		if (!g_error_matches (error_local, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND)) {
			g_propagate_error (error, g_steal_pointer (&error_local));
			return NULL;
		}
		message->current = g_bytes_ref (message->raw);
	}
	return g_steal_pointer (&message);
}

GPtrArray *
sc_sqlite_claim_within (ScSpool *spool,
		       const char *owner,
		       gint64 now,
		       gint64 lease_expires_at,
		       guint limit,
		       guint64 max_bytes,
		       gboolean take_first,
		       GError **error)
{
	g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	g_autoptr(GArray) rowids = g_array_new (FALSE, FALSE, sizeof (gint64));

	if (!sc_sqlite_begin_unsynced (spool, error))
		return NULL;
	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_CLAIM, error);
		guint64 bytes = 0;
		int rc;
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return NULL;
		}
		sc_bind_int64 (stmt, ":now", now);
		sc_bind_int64 (stmt, ":limit", limit);
		while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
			gint64 rowid = sqlite3_column_int64 (stmt, 0);
			guint64 size = (guint64) sqlite3_column_int64 (stmt, 1);
			if (bytes + size > max_bytes && !(take_first && rowids->len == 0))
				break;
			bytes += size;
			g_array_append_val (rowids, rowid);
		}
		if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
			sc_sqlite_set_error (spool, rc, error, "claim");
			sc_sqlite_rollback (spool);
			return NULL;
		}
	}
	for (guint i = 0; i < rowids->len;) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_CLAIM_ONE, error);
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return NULL;
		}
		sc_bind_text (stmt, ":owner", owner);
		sc_bind_int64 (stmt, ":lease_expires_at", lease_expires_at);
		sc_bind_int64 (stmt, ":now", now);
		sc_bind_int64 (stmt, ":id", g_array_index (rowids, gint64, i));
		if (!sc_sqlite_step_done (spool, stmt, error, "claim")) {
			sc_sqlite_rollback (spool);
			return NULL;
		}
		/* the update re-checks the state: a message another writer took
		 * since the select is not this claim's */
		if (sqlite3_changes (sc_sqlite (spool)->db) == 0)
			g_array_remove_index (rowids, i);
		else
			i++;
	}
	for (guint i = 0; i < rowids->len; i++) {
		ScMessage *message = load_claimed (spool, g_array_index (rowids, gint64, i), error);
		if (message == NULL) {
			sc_sqlite_rollback (spool);
			return NULL;
		}
		g_ptr_array_add (messages, message);
	}
	if (!sc_sqlite_commit (spool, error))
		return NULL;
	return g_steal_pointer (&messages);
}

static gboolean
insert_notification (ScSpool *spool,
		     const ScStageResult *result,
		     const char *kind,
		     const char *detail,
		     GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_NOTIFICATION, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_text (stmt, ":kind", kind);
	sc_bind_int64 (stmt, ":message_id", result->id);
	sc_bind_text (stmt, ":detail", detail);
	sc_bind_int64 (stmt, ":now", result->finished_at);
	return sc_sqlite_step_done (spool, stmt, error, "record notification");
}

/* The message's new state after @result, only while @owner holds its
 * claim; *@out_applied FALSE when the claim is gone. */
static gboolean
update_state (ScSpool *spool, const char *owner, const ScStageResult *result, gboolean *out_applied, GError **error)
{
	const char *last_error = result->outcome == SC_OUTCOME_OK ? NULL : result->error;

	*out_applied = FALSE;
	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_UPDATE_RESULT, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_text (stmt, ":state", sc_message_state_to_string (result->next_state));
		sc_bind_int64 (stmt, ":now", result->finished_at);
		sc_bind_int64 (stmt, ":attempts", result->attempts);
		if (result->next_state == SC_STATE_DEFERRED || result->next_state == SC_STATE_QUEUED)
			sc_bind_int64 (stmt, ":next_attempt_at", result->next_attempt_at);
		else
			sc_bind_text (stmt, ":next_attempt_at", NULL);
		sc_bind_text (stmt, ":last_error", last_error);
		sc_bind_int64 (stmt, ":id", result->id);
		sc_bind_text (stmt, ":owner", owner);
		sc_bind_int64 (stmt, ":generation", result->lease_generation);
		if (!sc_sqlite_step_done (spool, stmt, error, "record result"))
			return FALSE;
		if (sqlite3_changes (sc_sqlite (spool)->db) == 0)
			return TRUE; /* lease lost: the new owner's work stands */
	}
	*out_applied = TRUE;
	return TRUE;
}

/* The history of @result's stage: its record (when ok), the attempt, and
 * the notifications it asks for. */
static gboolean
insert_history (ScSpool *spool, const ScStageResult *result, GError **error)
{
	if (result->stage == NULL)
		return TRUE; /* no stage ran: the message only changes state */
	if (result->outcome == SC_OUTCOME_OK) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_STAGE, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_int64 (stmt, ":message_id", result->id);
		sc_bind_text (stmt, ":stage", result->stage);
		sc_bind_int64 (stmt, ":completed_at", result->finished_at);
		sc_bind_text (stmt, ":note", result->note);
		sc_bind_bytes (stmt, ":output", result->output);
		if (!sc_sqlite_step_done (spool, stmt, error, "record stage"))
			return FALSE;
	}
	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_ATTEMPT, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_int64 (stmt, ":message_id", result->id);
		sc_bind_text (stmt, ":stage", result->stage);
		sc_bind_text (stmt, ":outcome", sc_outcome_to_string (result->outcome));
		sc_bind_text (stmt, ":error", result->outcome == SC_OUTCOME_OK ? result->note : result->error);
		sc_bind_text (stmt, ":mailer", result->mailer);
		sc_bind_int64 (stmt, ":started_at", result->started_at);
		sc_bind_int64 (stmt, ":finished_at", result->finished_at);
		if (!sc_sqlite_step_done (spool, stmt, error, "record attempt"))
			return FALSE;
	}
	if (result->next_state == SC_STATE_DEAD &&
	    !insert_notification (spool, result, "message.dead",
				  result->notification_detail != NULL ? result->notification_detail
								      : result->error,
				  error))
		return FALSE;
	if (result->notification_kind != NULL &&
	    !insert_notification (spool, result, result->notification_kind,
				  result->notification_detail, error))
		return FALSE;
	return TRUE;
}

/* Results of one claim's stages that ran together (sc-runner.c's groups)
 * come one after another, each but the last handing the message on: the
 * last one's state stands for them all, so the row is updated (and the
 * claim checked) once. */
static gboolean
apply_chain (ScSpool *spool, const char *owner, ScStageResult *const *results, guint n, GError **error)
{
	gboolean applied = FALSE;

	if (!update_state (spool, owner, results[n - 1], &applied, error))
		return FALSE;
	for (guint i = 0; i < n; i++) {
		results[i]->applied = applied;
		if (applied && !insert_history (spool, results[i], error))
			return FALSE;
	}
	return TRUE;
}

/* How many results from @first on belong to one chain (apply_chain). */
static guint
chain_length (ScStageResult *const *results, guint n_results, guint first)
{
	guint last = first;

	while (last + 1 < n_results && results[last + 1]->id == results[first]->id &&
	       results[last + 1]->lease_generation == results[first]->lease_generation &&
	       results[last]->stage != NULL && results[last]->outcome == SC_OUTCOME_OK &&
	       results[last]->next_state == SC_STATE_ACTIVE)
		last++;
	return last - first + 1;
}

/* Prepared once like every other statement (sqlite3_exec parsed them
 * again for every result: ~6,000 instructions each, figure 9). */
static gboolean
savepoint (ScSpool *spool, GError **error)
{
	return sc_sqlite_exec_simple (spool, SC_SQL_SAVEPOINT, error);
}

/* Released, not left open: an open savepoint makes SQLite keep a statement
 * journal for the rest of the transaction. */
static void
savepoint_release (ScSpool *spool)
{
	(void) sc_sqlite_exec_simple (spool, SC_SQL_SAVEPOINT_RELEASE, NULL);
}

static void
savepoint_rollback (ScSpool *spool)
{
	(void) sc_sqlite_exec_simple (spool, SC_SQL_SAVEPOINT_ROLLBACK, NULL);
	savepoint_release (spool);
}

/* Inside the caller's transaction.  *@out_lost: the lease is gone, the
 * rest was not tried (the caller undoes the group). */
static gboolean
record_recipients (ScSpool *spool,
		   const char *owner,
		   const ScRecipientUpdate *updates,
		   guint n_updates,
		   gboolean *out_lost,
		   GError **error)
{
	*out_lost = FALSE;
	for (guint i = 0; i < n_updates; i++) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_UPDATE_RECIPIENT, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_text (stmt, ":status", updates[i].status);
		sc_bind_int64 (stmt, ":code", updates[i].code);
		sc_bind_text (stmt, ":reply", updates[i].reply);
		sc_bind_text (stmt, ":mailer", updates[i].mailer);
		sc_bind_int64 (stmt, ":at", updates[i].at);
		sc_bind_int64 (stmt, ":id", updates[i].id);
		sc_bind_int64 (stmt, ":position", updates[i].position);
		sc_bind_text (stmt, ":owner", owner);
		sc_bind_int64 (stmt, ":generation", updates[i].lease_generation);
		if (!sc_sqlite_step_done (spool, stmt, error, "record recipients"))
			return FALSE;
		if (sqlite3_changes (sc_sqlite (spool)->db) == 0) {
			*out_lost = TRUE;
			return TRUE;
		}
	}
	return TRUE;
}

gboolean
sc_sqlite_commit_batch (ScSpool *spool,
		       const char *owner,
		       ScRecipientGroup *groups,
		       guint n_groups,
		       ScStageResult *const *results,
		       guint n_results,
		       gboolean durable,
		       GError **error)
{
	/* Which batches may skip the fsync is the caller's rule (the
	 * runner's: sc_stage_result_may_wait_for_disk), and so is the sync
	 * that follows (sc_spool_sync) */
	gboolean unsynced = !durable;

	if (n_groups == 0 && n_results == 0)
		return TRUE;
	if (!(unsynced ? sc_sqlite_begin_unsynced (spool, error) : sc_sqlite_begin (spool, error)))
		return FALSE;
	for (guint i = 0; i < n_groups; i++) {
		if (!savepoint (spool, error) ||
		    !record_recipients (spool, owner, groups[i].updates, groups[i].n_updates,
					&groups[i].lease_lost, error))
			goto failed;
		/* a group whose claim is gone is undone alone */
		if (groups[i].lease_lost)
			savepoint_rollback (spool);
		else
			savepoint_release (spool);
	}
	for (guint i = 0; i < n_results;) {
		guint n = chain_length (results, n_results, i);
		if (!apply_chain (spool, owner, results + i, n, error))
			goto failed;
		i += n;
	}
	return sc_sqlite_commit (spool, error);

failed:
	sc_sqlite_rollback (spool);
	return FALSE;
}

/* One statement per claim still worked on, in one transaction. */
gboolean
sc_sqlite_renew_leases (ScSpool *spool,
		       const char *owner,
		       const ScLease *leases,
		       guint n_leases,
		       gint64 lease_expires_at,
		       GError **error)
{
	if (n_leases == 0)
		return TRUE;
	if (!sc_sqlite_begin (spool, error))
		return FALSE;
	for (guint i = 0; i < n_leases; i++) {
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_RENEW_LEASES, error);
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
		sc_bind_int64 (stmt, ":id", leases[i].id);
		sc_bind_int64 (stmt, ":generation", leases[i].generation);
		sc_bind_text (stmt, ":owner", owner);
		sc_bind_int64 (stmt, ":lease_expires_at", lease_expires_at);
		if (!sc_sqlite_step_done (spool, stmt, error, "renew leases")) {
			sc_sqlite_rollback (spool);
			return FALSE;
		}
	}
	return sc_sqlite_commit (spool, error);
}

gboolean
sc_sqlite_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_RELEASE_OWNER, error);

	if (stmt == NULL)
		return FALSE;
	sc_bind_text (stmt, ":owner", owner);
	sc_bind_int64 (stmt, ":now", now);
	return sc_sqlite_step_done (spool, stmt, error, "release");
}

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

/* @in_handler: the owner was running this claim's stage (@marked_stage,
 * its position, as ScLeaseProbe.in_handler); only then is the message
 * blamed (a crash counted, and held at the limit). */
static gboolean
reclaim_one (ScSpool *spool,
	     const ActiveRow *row,
	     gboolean in_handler,
	     gint marked_stage,
	     gint64 now,
	     guint crash_limit,
	     GError **error)
{
	ScMessage probe = {0};
	g_auto(GStrv) pipeline = g_strsplit (row->pipeline, ";", -1);
	g_auto(GStrv) completed = select_strings (spool, SC_SQL_SELECT_COMPLETED, row->id, error);
	g_autofree char *reason = NULL;
	g_autofree char *hold_reason = NULL;
	const char *stage;
	gboolean counted = in_handler;
	gboolean hold;

	if (completed == NULL)
		return FALSE;
	if (in_handler) {
		/* A stage that was delivering (recipient states recorded in
		 * this claim) was killed, not killing: a poison message makes
		 * no progress.  A long fan-out must not be held for being
		 * running whenever an operator restarts the daemon. */
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SELECT_PROGRESS, error);
		int rc;
		if (stmt == NULL)
			return FALSE;
		sc_bind_int64 (stmt, ":id", row->id);
		rc = sqlite3_step (stmt);
		if (rc != SQLITE_ROW) {
			sc_sqlite_set_error (spool, rc, error, "reclaim");
			return FALSE;
		}
		counted = sqlite3_column_int (stmt, 0) == 0;
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
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_RECLAIM_ONE, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_text (stmt, ":state", hold ? "held" : "queued");
		sc_bind_int64 (stmt, ":crashed", counted ? 1 : 0);
		sc_bind_int64 (stmt, ":in_handler", in_handler ? 1 : 0);
		sc_bind_int64 (stmt, ":now", now);
		sc_bind_text (stmt, ":hold_reason", hold_reason);
		sc_bind_text (stmt, ":last_error", in_handler ? reason : NULL);
		sc_bind_int64 (stmt, ":id", row->id);
		sc_bind_text (stmt, ":owner", row->owner);
		sc_bind_int64 (stmt, ":generation", row->generation);
		if (!sc_sqlite_step_done (spool, stmt, error, "reclaim"))
			return FALSE;
		if (sqlite3_changes (sc_sqlite (spool)->db) == 0)
			return TRUE;
	}
	{
		/* A `released` attempt too: it tells an idempotent stage that
		 * a copy may exist (the record of what ran is only as good as
		 * the page cache after a power loss). */
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_INSERT_ATTEMPT, error);
		if (stmt == NULL)
			return FALSE;
		sc_bind_int64 (stmt, ":message_id", row->id);
		sc_bind_text (stmt, ":stage", stage != NULL ? stage : "");
		sc_bind_text (stmt, ":outcome",
			      sc_outcome_to_string (in_handler ? SC_OUTCOME_CRASHED : SC_OUTCOME_RELEASED));
		sc_bind_text (stmt, ":error", reason);
		sc_bind_text (stmt, ":mailer", NULL);
		sc_bind_int64 (stmt, ":started_at", now);
		sc_bind_int64 (stmt, ":finished_at", now);
		if (!sc_sqlite_step_done (spool, stmt, error, "reclaim"))
			return FALSE;
	}
	if (hold) {
		ScStageResult about = {.id = row->id, .finished_at = now};
		if (!insert_notification (spool, &about, "message.held", hold_reason, error))
			return FALSE;
	}
	return TRUE;
}

guint
sc_sqlite_reclaim (ScSpool *spool,
		  const char *self_owner,
		  const ScLeaseProbe *probe,
		  gint64 now,
		  guint crash_limit,
		  GError **error)
{
	g_autoptr(GArray) rows = g_array_new (FALSE, TRUE, sizeof (ActiveRow));
	g_autoptr(GHashTable) alive = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	guint reclaimed = 0;

	g_array_set_clear_func (rows, active_row_clear);
	if (!sc_sqlite_begin (spool, error))
		return 0;
	{
		g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_SELECT_ACTIVE, error);
		int rc;
		if (stmt == NULL) {
			sc_sqlite_rollback (spool);
			return 0;
		}
		while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
			ActiveRow row = {
			    .id = sqlite3_column_int64 (stmt, 0),
			    .owner = sc_column_dup (stmt, 1),
			    .lease_expires_at = sqlite3_column_int64 (stmt, 2),
			    .pipeline = sc_column_dup (stmt, 3),
			    .crashes = sqlite3_column_int (stmt, 4),
			    .generation = sqlite3_column_int64 (stmt, 5),
			};
			g_array_append_val (rows, row);
		}
		if (rc != SQLITE_DONE) {
			sc_sqlite_set_error (spool, rc, error, "reclaim");
			sc_sqlite_rollback (spool);
			return 0;
		}
	}
	for (guint i = 0; i < rows->len; i++) {
		ActiveRow *row = &g_array_index (rows, ActiveRow, i);
		ScLease lease = {.id = row->id, .generation = row->generation};
		gboolean owner_is_alive;
		gboolean in_handler = FALSE;
		gint marked_stage = SC_OWNER_STAGE_UNKNOWN;

		if (row->owner == NULL)
			continue;
		if (g_strcmp0 (row->owner, self_owner) == 0) {
			/* Our own claim: ours to keep while we work on it; one we
			 * dropped (a result that could not be recorded) goes back
			 * once its lease runs out. */
			if (probe->in_flight (&lease, probe->user_data) || row->lease_expires_at > now)
				continue;
		} else {
			if (!g_hash_table_lookup_extended (alive, row->owner, NULL, NULL)) {
				owner_is_alive = probe->alive (row->owner, probe->user_data);
				g_hash_table_insert (alive, g_strdup (row->owner),
						     GINT_TO_POINTER (owner_is_alive));
			} else {
				owner_is_alive = GPOINTER_TO_INT (g_hash_table_lookup (alive, row->owner));
			}
			if (owner_is_alive && row->lease_expires_at > now)
				continue;
			in_handler = probe->in_handler (row->owner, &lease, &marked_stage, probe->user_data);
		}
		if (!reclaim_one (spool, row, in_handler, marked_stage, now, crash_limit, error)) {
			sc_sqlite_rollback (spool);
			return 0;
		}
		reclaimed++;
	}
	if (!sc_sqlite_commit (spool, error))
		return 0;
	return reclaimed;
}

gboolean
sc_sqlite_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	g_autoptr(ScStatement) stmt = sc_sqlite_statement (spool, SC_SQL_NEXT_DUE, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc == SQLITE_ROW) {
		*out_time = sqlite3_column_int64 (stmt, 0);
		return TRUE;
	}
	if (rc != SQLITE_DONE)
		sc_sqlite_set_error (spool, rc, error, "next due");
	return FALSE;
}

static gboolean
sqlite_describe (ScSpool *spool, char **out_server, int *out_schema_version, GError **error)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2 (sc_sqlite (spool)->db, "PRAGMA user_version", -1, &stmt, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		*out_schema_version = sqlite3_column_int (stmt, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize (stmt);
	if (rc != SQLITE_OK) {
		sc_sqlite_set_error (spool, rc, error, "describe");
		return FALSE;
	}
	*out_server = g_strdup_printf ("SQLite %s", sqlite3_libversion ());
	return TRUE;
}

static const ScSpoolBackend sqlite_backend = {
    .name = "sqlite",
    .close = sqlite_close,
    .describe = sqlite_describe,
    .inject_batch = sc_sqlite_inject_batch,
    .prune_accepted = sc_sqlite_prune_accepted,
    .claim_within = sc_sqlite_claim_within,
    .commit_batch = sc_sqlite_commit_batch,
    .unsynced_mark = sc_sqlite_unsynced_mark,
    .sync = sc_sqlite_sync,
    .renew_leases = sc_sqlite_renew_leases,
    .release_owner = sc_sqlite_release_owner,
    .reclaim = sc_sqlite_reclaim,
    .check_clock = sc_sqlite_check_clock,
    .next_due = sc_sqlite_next_due,
    .register_runner = sc_sqlite_register_runner,
    .runner_is_alive = sc_sqlite_runner_is_alive,
    .runner_in_handler = sc_sqlite_runner_in_handler,
    .forget_runner = sc_sqlite_forget_runner,
    .wake_runners = sc_sqlite_wake_runners,
    .wake_source_new = sc_sqlite_wake_source_new,
    .count_states = sc_sqlite_count_states,
    .search = sc_sqlite_search,
    .get_summary = sc_sqlite_get_summary,
    .get_stages = sc_sqlite_get_stages,
    .get_attempts = sc_sqlite_get_attempts,
    .get_recipients = sc_sqlite_get_recipients,
    .get_raw = sc_sqlite_get_raw,
    .get_stage_output = sc_sqlite_get_stage_output,
    .retry = sc_sqlite_retry,
    .retry_matching = sc_sqlite_retry_matching,
    .retry_list = sc_sqlite_retry_list,
    .hold = sc_sqlite_hold,
    .release = sc_sqlite_release,
    .delete_message = sc_sqlite_delete_message,
    .notify_claim = sc_sqlite_notify_claim,
    .notify_mark_sent = sc_sqlite_notify_mark_sent,
    .notify_mark_failed = sc_sqlite_notify_mark_failed,
    .notify_count_pending = sc_sqlite_notify_count_pending,
    .notify_next_due = sc_sqlite_notify_next_due,
    .notify_insert_event = sc_sqlite_notify_insert_event,
    .notify_count_backlog = sc_sqlite_notify_count_backlog,
    .count_by_list = sc_sqlite_count_by_list,
    .list_audit = sc_sqlite_list_audit,
    .list_notifications = sc_sqlite_list_notifications,
    .count_notifications_pending = sc_sqlite_count_notifications_pending,
    .throughput = sc_sqlite_throughput,
    .fold_attempts = sc_sqlite_fold_attempts,
    /* spool-copy (sc-sqlite-copy.c) */
    .copy_begin = sc_sqlite_copy_begin,
    .copy_out = sc_sqlite_copy_out,
    .copy_in = sc_sqlite_copy_in,
    .copy_count = sc_sqlite_copy_count,
    .copy_commit = sc_sqlite_copy_commit,
    .copy_rollback = sc_sqlite_copy_rollback,
};
