/* sc-sqlite-schema.c — the spool's tables, why each index exists, and the
 * forward migrations.
 *
 * Version log (PRAGMA user_version):
 *   v1  messages, bodies, stages, attempts, recipients, notifications,
 *       audit, state_counts (+ triggers)
 *   v2  messages.lease_generation: a lease belongs to one claim, not only
 *       to one runner (every lease-checked update compares it);
 *       clock_anchor: the wall clock against the boot clock, to notice a
 *       stepped wall clock once per spool (sc-sqlite-clock.c)
 *   v3  accepted: the (Message-ID, recipient) pairs ingress accepted
 *       lately, so a resend of a chunk is not delivered twice
 *   v4  nothing here: PostgreSQL's handler_marks (which claims a runner's
 *       handlers are running) are slots in runners/NAME.lock on this
 *       spool (sc-owner.c); the number moves so that both backends keep
 *       one numbering
 *   v5  the CHECK constraints on messages.state and recipients.status as
 *       chains of `=` instead of `IN (…)` lists: SQLite 3.40 builds an
 *       ephemeral b-tree for a constant IN list at every statement that
 *       checks it (every insert, every state change: ~3 µs each, 3-4 %
 *       of a delivered message's instructions).  Same rule, same rows; done
 *       by editing sqlite_schema (checks_without_in_lists()), as SQLite's
 *       documentation describes for changes that leave the stored content
 *       as it is, so a big spool upgrades at once
 *   v6  nothing here: the slots in runners/NAME.lock name the stage a
 *       handler runs (sc-owner.c), as PostgreSQL's handler_marks.stage
 *       does; an older stagecoach, which would not write it, refuses the
 *       spool
 *
 * messages      one row per accepted message; small, so scans of it never
 *               drag the bodies along.  `state` is one of queued, active,
 *               deferred, held, done, dead.  Invariants: active ⇒ lease_owner
 *               and lease_expires_at set, lease_generation counts the claims
 *               (bumped by each); queued/deferred ⇒ next_attempt_at
 *               set; other states ⇒ no lease.
 * bodies        the bytes as injected, apart from the row.
 * stages        one row per completed stage, with its output (decorated
 *               bytes) and a note; UNIQUE (message_id, stage) is what makes
 *               "a completed stage never runs again" hold.
 * attempts      every try of every stage, with outcome and error: history is
 *               kept across retries (cycle tells them apart).
 * recipients    per-recipient delivery state (pending, sent, deferred,
 *               failed) with the last SMTP code, reply and mailer.
 * notifications the durable outbox of admin notifications.
 * audit         every operator action: who, when, from where, what.
 * state_counts  per (state, list) message counts kept by triggers, so
 *               `status` costs the same with 10 or 1,000,000 messages.
 *
 * Indexes:
 *   messages_due       partial on next_attempt_at for queued/deferred: the
 *                      claim and the runner's "when is the next one due"
 *                      read the head of this index, never scan the queue.
 *   messages_active    partial on lease_owner for active rows: reclaim and
 *                      lease renewal touch only messages in flight.
 *   messages_state     (state, id): listing one state newest first, keyset
 *                      paginated.
 *   messages_list      (list_id, id): the same per list.
 *   attempts_message, stages' UNIQUE, recipients' PRIMARY KEY: per-message reads.
 *   notifications_due  partial for pending ones: the notifier's outbox head.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-sqlite-private.h"

static const char *const migrations[] = {
    /* v0 → v1 */
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  queue_id TEXT NOT NULL UNIQUE,"
    "  list_id TEXT NOT NULL,"
    "  sender TEXT NOT NULL,"
    "  subject TEXT,"
    "  message_id TEXT,"
    "  pipeline TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('queued','active','deferred','held','done','dead')),"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  cycle INTEGER NOT NULL DEFAULT 1,"
    "  cycle_started_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  crashes INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER,"
    "  lease_owner TEXT,"
    "  lease_expires_at INTEGER,"
    "  last_error TEXT,"
    "  hold_reason TEXT,"
    "  size INTEGER NOT NULL"
    ");"
    "CREATE INDEX messages_due ON messages (next_attempt_at)"
    "  WHERE state IN ('queued','deferred');"
    "CREATE INDEX messages_active ON messages (lease_owner) WHERE state = 'active';"
    "CREATE INDEX messages_state ON messages (state, id);"
    "CREATE INDEX messages_list ON messages (list_id, id);"
    "CREATE TABLE bodies ("
    "  message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
    "  raw BLOB NOT NULL"
    ");"
    "CREATE TABLE stages ("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    "  stage TEXT NOT NULL,"
    "  completed_at INTEGER NOT NULL,"
    "  note TEXT,"
    "  output BLOB,"
    "  UNIQUE (message_id, stage)"
    ");"
    "CREATE TABLE attempts ("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    "  cycle INTEGER NOT NULL,"
    "  stage TEXT NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  error TEXT,"
    "  mailer TEXT,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX attempts_message ON attempts (message_id, id);"
    "CREATE TABLE recipients ("
    "  message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN"
    "    ('pending','sent','deferred','failed')),"
    "  code INTEGER,"
    "  reply TEXT,"
    "  mailer TEXT,"
    "  updated_at INTEGER,"
    "  PRIMARY KEY (message_id, position)"
    ") WITHOUT ROWID;"
    "CREATE TABLE notifications ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,"
    "  queue_id TEXT,"
    "  detail TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  sent_at INTEGER,"
    "  last_error TEXT"
    ");"
    "CREATE INDEX notifications_due ON notifications (next_attempt_at)"
    "  WHERE state = 'pending';"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  remote TEXT,"
    "  action TEXT NOT NULL,"
    "  queue_id TEXT,"
    "  detail TEXT"
    ");"
    "CREATE INDEX audit_queue_id ON audit (queue_id);"
    "CREATE TABLE state_counts ("
    "  state TEXT NOT NULL,"
    "  list_id TEXT NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  PRIMARY KEY (state, list_id)"
    ") WITHOUT ROWID;"
    "CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN"
    "  INSERT INTO state_counts (state, list_id, count) VALUES (NEW.state, NEW.list_id, 1)"
    "    ON CONFLICT (state, list_id) DO UPDATE SET count = count + 1;"
    "END;"
    "CREATE TRIGGER messages_count_update AFTER UPDATE OF state ON messages"
    "  WHEN OLD.state IS NOT NEW.state BEGIN"
    "  UPDATE state_counts SET count = count - 1"
    "    WHERE state = OLD.state AND list_id = OLD.list_id;"
    "  INSERT INTO state_counts (state, list_id, count) VALUES (NEW.state, NEW.list_id, 1)"
    "    ON CONFLICT (state, list_id) DO UPDATE SET count = count + 1;"
    "END;"
    "CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN"
    "  UPDATE state_counts SET count = count - 1"
    "    WHERE state = OLD.state AND list_id = OLD.list_id;"
    "END;",
    /* v1 → v2 */
    "ALTER TABLE messages ADD COLUMN lease_generation INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE clock_anchor ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  boot_id TEXT NOT NULL,"
    "  wall INTEGER NOT NULL,"
    "  boottime INTEGER NOT NULL"
    ");",
    /* v2 → v3.  Keyed by the pair (every accepted recipient is looked up);
     * accepted_at's index makes pruning the window a range delete. */
    "CREATE TABLE accepted ("
    "  message_id TEXT NOT NULL,"
    "  recipient TEXT NOT NULL,"
    "  accepted_at INTEGER NOT NULL,"
    "  queue_id TEXT NOT NULL,"
    "  PRIMARY KEY (message_id, recipient)"
    ") WITHOUT ROWID;"
    "CREATE INDEX accepted_at ON accepted (accepted_at);",
    /* v3 → v4: PostgreSQL's handler_marks; no table here (see the top) */
    "",
    /* v4 → v5: checks_without_in_lists(), in C: it must bump schema_version */
    NULL,
    /* v5 → v6: the lock files' slots name the stage (see the top) */
    "",
};

const int sc_sqlite_schema_version = G_N_ELEMENTS (migrations);

/* v5: each CHECK as SQLite 3.40 stored it, and its chain of `=`.  The
 * text is matched exactly: a schema that differs is refused, not guessed
 * at. */
static const struct {
	const char *table;
	const char *in_list;
	const char *chain;
} check_rewrites[] = {
    {"messages", "CHECK (state IN    ('queued','active','deferred','held','done','dead'))",
     "CHECK (state = 'queued' OR state = 'active' OR state = 'deferred' OR state = 'held'"
     " OR state = 'done' OR state = 'dead')"},
    {"recipients", "CHECK (status IN    ('pending','sent','deferred','failed'))",
     "CHECK (status = 'pending' OR status = 'sent' OR status = 'deferred' OR status = 'failed')"},
};

/* A one-value query's value, -1 when it fails. */
static gint64
query_int64 (sqlite3 *db, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	gint64 value = -1;

	if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step (stmt) == SQLITE_ROW)
		value = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	return value;
}

/* Inside the migration's transaction.  SQLite's recipe for a schema edit
 * that leaves the stored content as it is: change the text in
 * sqlite_schema with writable_schema on, then bump schema_version so
 * that every connection parses the schema again.  NULL, or why not. */
static char *
checks_without_in_lists (sqlite3 *db)
{
	g_autofree char *why = NULL;
	gint64 schema_version = query_int64 (db, "PRAGMA schema_version");
	g_autofree char *bump = g_strdup_printf ("PRAGMA schema_version = %" G_GINT64_FORMAT, schema_version + 1);
	gboolean ok = schema_version >= 0;

	/* a build that turned defensive mode on by default refuses the edit */
	(void) sqlite3_db_config (db, SQLITE_DBCONFIG_DEFENSIVE, 0, NULL);
	ok = ok && sqlite3_exec (db, "PRAGMA writable_schema = ON", NULL, NULL, NULL) == SQLITE_OK;
	for (guint i = 0; ok && i < G_N_ELEMENTS (check_rewrites); i++) {
		sqlite3_stmt *stmt = NULL;

		ok = sqlite3_prepare_v2 (db,
					 "UPDATE sqlite_schema SET sql = replace (sql, ?1, ?2)"
					 " WHERE type = 'table' AND name = ?3 AND instr (sql, ?1) > 0",
					 -1, &stmt, NULL) == SQLITE_OK;
		if (ok) {
			sqlite3_bind_text (stmt, 1, check_rewrites[i].in_list, -1, SQLITE_STATIC);
			sqlite3_bind_text (stmt, 2, check_rewrites[i].chain, -1, SQLITE_STATIC);
			sqlite3_bind_text (stmt, 3, check_rewrites[i].table, -1, SQLITE_STATIC);
			ok = sqlite3_step (stmt) == SQLITE_DONE;
			if (ok && sqlite3_changes (db) != 1) {
				why = g_strdup_printf (_("table %s is not defined as this version expects"),
						       check_rewrites[i].table);
				ok = FALSE;
			}
		}
		sqlite3_finalize (stmt);
	}
	ok = ok && sqlite3_exec (db, bump, NULL, NULL, NULL) == SQLITE_OK;
	if (!ok && why == NULL)
		why = g_strdup (sqlite3_errmsg (db));
	(void) sqlite3_exec (db, "PRAGMA writable_schema = OFF", NULL, NULL, NULL);
	return g_steal_pointer (&why);
}

static int
read_version (sqlite3 *db)
{
	return (int) query_int64 (db, "PRAGMA user_version");
}

/* Each step runs with its version bump in one transaction, so a crash
 * mid-migration leaves the previous version intact. */
gboolean
sc_sqlite_schema_migrate (sqlite3 *db, GError **error)
{
	int version = read_version (db);

	/* Up to date (the usual case): no write lock, so a read command such
	 * as `status` works while a busy daemon holds it. */
	if (version == sc_sqlite_schema_version)
		return TRUE;
	if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = sqlite3_errcode (db);
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_FULL ||
				     rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN
				 ? SC_SPOOL_ERROR_TEMPORARY
				 : SC_SPOOL_ERROR_FAILED,
			     _("cannot start a migration: %s"),
			     sqlite3_errmsg (db));
		return FALSE;
	}
	version = read_version (db);
	if (version > sc_sqlite_schema_version) {
		sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_FAILED,
			     _("spool schema version %d is newer than this stagecoach knows (%d)"),
			     version,
			     sc_sqlite_schema_version);
		return FALSE;
	}
	for (; version < sc_sqlite_schema_version; version++) {
		g_autofree char *bump = g_strdup_printf ("PRAGMA user_version = %d", version + 1);
		g_autofree char *why = NULL;

		if (migrations[version] == NULL)
			why = checks_without_in_lists (db);
		else if (sqlite3_exec (db, migrations[version], NULL, NULL, NULL) != SQLITE_OK)
			why = g_strdup (sqlite3_errmsg (db));
		if (why == NULL && sqlite3_exec (db, bump, NULL, NULL, NULL) != SQLITE_OK)
			why = g_strdup (sqlite3_errmsg (db));
		if (why != NULL) {
			g_set_error (error,
				     SC_SPOOL_ERROR,
				     SC_SPOOL_ERROR_FAILED,
				     _("migrating the spool to version %d failed: %s"),
				     version + 1,
				     why);
			sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
			return FALSE;
		}
	}
	if (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_TEMPORARY,
			     _("cannot commit the spool migration: %s"),
			     sqlite3_errmsg (db));
		sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
		return FALSE;
	}
	return TRUE;
}
