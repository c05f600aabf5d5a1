/* sc-pg-spool.c — the PostgreSQL spool: opening, describing, ingress, and
 * the backend table (sc-spool-backend.h).
 *
 * For runners on several hosts sharing one database (issue 10).  The
 * model, the states and every verb's contract are the SQLite spool's
 * (sc-spool.c); what differs is how many writers there are.  SQLite has
 * one at a time, so a check and the change after it are one step; here
 * every update names the state (and lease) it expects in its WHERE, which
 * READ COMMITTED re-checks against the newest row version after waiting
 * for a concurrent writer.  Claims skip rows another runner is taking
 * (FOR UPDATE SKIP LOCKED, sc-pg-claim.c); liveness is a session advisory
 * lock per runner and wakeups are LISTEN/NOTIFY (sc-pg-presence.c).
 *
 * Round trips, not fsyncs, are what a remote database costs: a message is
 * injected with one statement (message, body and recipients), a batch of
 * dedupe pairs with one, a claim loads all its messages with a handful.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-pg-private.h"

/* Defined at the end. */
static const ScSpoolBackend pg_backend;

/* "host:port/db" or "socket-dir/db": never the password. */
static char *
describe_target (PGconn *conn)
{
	const char *host = PQhost (conn);
	const char *db = PQdb (conn);

	if (host != NULL && host[0] == '/')
		return g_strdup_printf ("%s/%s", host, db);
	return g_strdup_printf ("%s:%s/%s", host != NULL ? host : "", PQport (conn), db);
}

ScSpool *
sc_pg_spool_open (const char *conninfo, gint64 busy_timeout, GError **error)
{
	static const ScPgStatement set_lock_timeout = {
	    "sc_spool_lock_timeout",
	    "SELECT set_config ('lock_timeout', $1::text, false)",
	};
	ScPgSpool *pg;
	g_auto(ScPgParams) params = {0};
	g_autofree char *timeout = NULL;
	PGconn *conn = sc_pg_connect (conninfo, busy_timeout, error);

	if (conn == NULL)
		return NULL;
	pg = g_new0 (ScPgSpool, 1);
	pg->parent.backend = &pg_backend;
	pg->conn = conn;
	pg->conninfo = g_strdup (conninfo);
	pg->busy_timeout = busy_timeout;
	pg->prepared = g_hash_table_new (g_str_hash, g_str_equal);
	pg->seen_alive = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	pg->lock_missing = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	pg->display = describe_target (conn);
	/* lock waits end after busy_timeout as TEMPORARY (55P03), as SQLite's
	 * busy handler does; set again by each reconnect */
	timeout = g_strdup_printf ("%" G_GINT64_FORMAT "ms", MAX (1, busy_timeout / 1000));
	sc_pg_params_text (&params, timeout);
	if (!sc_pg_exec_done (pg, &set_lock_timeout, &params, "connect", NULL, error) ||
	    !sc_pg_schema_migrate (conn, error)) {
		g_prefix_error (error, _("spool %s: "), pg->display);
		pg_backend.close (&pg->parent);
		return NULL;
	}
	return &pg->parent;
}

static void
pg_close (ScSpool *spool)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);

	if (pg == NULL)
		return;
	/* ends the session: its advisory locks (the runner's) go with it */
	PQfinish (pg->conn);
	g_hash_table_unref (pg->prepared);
	g_hash_table_unref (pg->seen_alive);
	g_hash_table_unref (pg->lock_missing);
	g_free (pg->conninfo);
	g_free (pg->runner);
	g_free (pg->display);
	g_free (pg);
}

static gboolean
pg_describe (ScSpool *spool, char **out_server, int *out_schema_version, GError **error)
{
	static const ScPgStatement version = {
	    "sc_spool_schema_version",
	    "SELECT coalesce (max (version), 0) FROM schema_version",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autoptr(PGresult) result = sc_pg_exec (pg, &version, NULL, "describe", error);
	int server = PQserverVersion (pg->conn);

	if (result == NULL)
		return FALSE;
	/* 150010 → 15.10 (the two-part numbering since PostgreSQL 10) */
	*out_server = g_strdup_printf ("PostgreSQL %d.%d", server / 10000, server % 10000);
	*out_schema_version = (int) sc_pg_get_int64 (result, 0, 0);
	return TRUE;
}

/* ---- ingress ---- */

static char *
new_queue_id (void)
{
	/* as sc-spool.c: 64 random bits, UNIQUE catches a collision */
	return g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());
}

/* '{"a","b",NULL}': a text[] parameter's value (not SQL: each element
 * quoted and escaped, so no value can end it early). */
static char *
text_array (const char *const *values, guint n_values)
{
	GString *text = g_string_new ("{");

	for (guint i = 0; i < n_values; i++) {
		if (i > 0)
			g_string_append_c (text, ',');
		if (values[i] == NULL) {
			g_string_append (text, "NULL");
			continue;
		}
		g_string_append_c (text, '"');
		for (const char *p = values[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				g_string_append_c (text, '\\');
			g_string_append_c (text, *p);
		}
		g_string_append_c (text, '"');
	}
	g_string_append_c (text, '}');
	return g_string_free (text, FALSE);
}

void
sc_pg_params_text_array (ScPgParams *params, const char *const *values, guint n_values)
{
	g_autofree char *text = text_array (values, n_values);

	sc_pg_params_text (params, text);
	params->owned[params->n - 1] = g_steal_pointer (&text);
}

/* The message, its body and its recipients: one statement, one round trip. */
static const ScPgStatement insert_message = {
    "sc_spool_insert_message",
    "WITH m AS (INSERT INTO messages (queue_id, list_id, sender, subject, message_id, pipeline,"
    "  state, created_at, updated_at, cycle_started_at, next_attempt_at, size)"
    "  VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, 'queued',"
    "  $7::bigint, $7::bigint, $7::bigint, $7::bigint, $8::bigint) RETURNING id),"
    " b AS (INSERT INTO bodies (message_id, raw) SELECT id, $9::bytea FROM m),"
    " r AS (INSERT INTO recipients (message_id, position, address)"
    "  SELECT m.id, t.ord - 1, t.address FROM m,"
    "  unnest ($10::text[]) WITH ORDINALITY AS t (address, ord))"
    " SELECT id FROM m",
};

static gboolean
store_message (ScPgSpool *pg,
	       const ScNewMessage *message,
	       const char *const *recipients,
	       const char *queue_id,
	       GError **error)
{
	g_auto(ScPgParams) params = {0};

	sc_pg_params_text (&params, queue_id);
	sc_pg_params_text (&params, message->list_id);
	sc_pg_params_text (&params, message->sender != NULL ? message->sender : "");
	sc_pg_params_text (&params, message->subject);
	sc_pg_params_text (&params, message->message_id);
	sc_pg_params_text (&params, message->pipeline);
	sc_pg_params_int64 (&params, message->now);
	sc_pg_params_int64 (&params, (gint64) g_bytes_get_size (message->raw));
	sc_pg_params_bytes (&params, message->raw);
	sc_pg_params_text_array (&params, recipients, g_strv_length ((char **) recipients));
	return sc_pg_exec_done (pg, &insert_message, &params, "inject", NULL, error);
}

/* As sc-spool.c's: a new pair, or one older than the window, is
 * (re)written and returned; one within the window is left alone and not
 * returned — "duplicate".  All of a message's pairs in one statement. */
static const ScPgStatement accepted_insert = {
    "sc_spool_accepted_insert",
    "INSERT INTO accepted (message_id, recipient, accepted_at, queue_id)"
    " SELECT $1::text, r, $3::bigint, $4::text FROM unnest ($2::text[]) AS r"
    " ON CONFLICT (message_id, recipient) DO UPDATE SET accepted_at = excluded.accepted_at,"
    " queue_id = excluded.queue_id WHERE accepted.accepted_at <= $5::bigint"
    " RETURNING recipient",
};

static const ScPgStatement accepted_lookup = {
    "sc_spool_accepted_lookup",
    "SELECT queue_id FROM accepted WHERE message_id = $1::text AND recipient = $2::text",
};

/* sc-spool.c's dedupe_recipients: the recipients that are new, in order;
 * those accepted within the window go to *@out_duplicates, and where the
 * first of them went to *@out_first_queue_id.  A recipient named twice
 * in one message is, as there, a duplicate of itself the second time
 * (one statement cannot write a row twice, so that is decided here). */
static GPtrArray *
dedupe_recipients (ScPgSpool *pg,
		   const ScNewMessage *message,
		   gint64 dedupe_window,
		   const char *queue_id,
		   GPtrArray **out_duplicates,
		   char **out_first_queue_id,
		   GError **error)
{
	g_autoptr(GPtrArray) fresh = g_ptr_array_new ();
	g_autoptr(GPtrArray) duplicates = g_ptr_array_new ();
	g_autoptr(GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) unique = g_ptr_array_new ();
	g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GHashTable) written = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	const char *first_duplicate = NULL;

	for (guint i = 0; message->recipients[i] != NULL; i++) {
		char *key = g_ascii_strdown (message->recipients[i], -1);
		g_ptr_array_add (keys, key);
		if (g_hash_table_add (seen, key))
			g_ptr_array_add (unique, key);
	}
	{
		g_auto(ScPgParams) params = {0};
		g_autoptr(PGresult) result = NULL;

		sc_pg_params_text (&params, message->message_id);
		sc_pg_params_text_array (&params, (const char *const *) unique->pdata, unique->len);
		sc_pg_params_int64 (&params, message->now);
		sc_pg_params_text (&params, queue_id);
		sc_pg_params_int64 (&params, message->now - dedupe_window);
		result = sc_pg_exec (pg, &accepted_insert, &params, "inject", error);
		if (result == NULL)
			return NULL;
		for (int row = 0; row < PQntuples (result); row++)
			g_hash_table_add (written, sc_pg_dup_text (result, row, 0));
	}
	for (guint i = 0; i < keys->len; i++) {
		const char *key = keys->pdata[i];
		/* written, and this is its first mention in the message */
		if (g_hash_table_remove (written, key)) {
			g_ptr_array_add (fresh, (gpointer) message->recipients[i]);
			continue;
		}
		if (first_duplicate == NULL)
			first_duplicate = key;
		g_ptr_array_add (duplicates, (gpointer) message->recipients[i]);
	}
	if (first_duplicate != NULL) {
		/* the answer names where the earlier send went: once per message */
		g_auto(ScPgParams) params = {0};
		g_autoptr(PGresult) result = NULL;

		sc_pg_params_text (&params, message->message_id);
		sc_pg_params_text (&params, first_duplicate);
		result = sc_pg_exec (pg, &accepted_lookup, &params, "inject", error);
		if (result == NULL)
			return NULL;
		if (PQntuples (result) > 0)
			*out_first_queue_id = sc_pg_dup_text (result, 0, 0);
	}
	*out_duplicates = g_steal_pointer (&duplicates);
	return g_steal_pointer (&fresh);
}

gboolean
sc_pg_write_audit (ScPgSpool *pg,
		   const ScAuditContext *audit,
		   const char *action,
		   const char *queue_id,
		   const char *detail,
		   GError **error)
{
	static const ScPgStatement insert_audit = {
	    "sc_spool_insert_audit",
	    "INSERT INTO audit (at, actor, remote, action, queue_id, detail)"
	    " VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text)",
	};
	g_auto(ScPgParams) params = {0};

	sc_pg_params_int64 (&params, audit->now);
	sc_pg_params_text (&params, audit->actor != NULL ? audit->actor : "local");
	sc_pg_params_text (&params, audit->remote);
	sc_pg_params_text (&params, action);
	sc_pg_params_text (&params, queue_id);
	sc_pg_params_text (&params, detail);
	return sc_pg_exec_done (pg, &insert_audit, &params, "audit", NULL, error);
}

static gboolean
audit_duplicates (ScPgSpool *pg,
		  const ScNewMessage *message,
		  GPtrArray *duplicates,
		  const char *queue_id,
		  GError **error)
{
	ScAuditContext audit;
	g_autofree char *detail = sc_spool_duplicates_detail (message, duplicates, &audit);

	return sc_pg_write_audit (pg, &audit, "ingress-duplicate", queue_id, detail, error);
}

static gboolean
pg_inject_batch (ScSpool *spool,
		 const ScNewMessage *const *messages,
		 guint n_messages,
		 gint64 dedupe_window,
		 char **out_queue_ids,
		 guint *out_duplicates,
		 char **out_duplicate_of,
		 ScMessage **out_claimed,
		 GError **error)
{
	/* out_claimed stays NULL: a lease_owner is ignored and every message
	 * is stored queued, since runners on several hosts claim from the
	 * shared queue in turn */
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GPtrArray) duplicate_of = g_ptr_array_new_with_free_func (g_free);

	if (!sc_pg_begin (pg, error))
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
			fresh = dedupe_recipients (pg, message, dedupe_window, queue_id, &duplicates,
						   &first_duplicate_of, error);
			if (fresh == NULL)
				goto failed;
			g_ptr_array_add (fresh, NULL);
		}
		if (fresh == NULL || fresh->len > 1) {
			const char *const *recipients =
			    fresh != NULL ? (const char *const *) fresh->pdata : message->recipients;
			if (!store_message (pg, message, recipients, queue_id, error))
				goto failed;
		} else {
			g_clear_pointer (&queue_id, g_free); /* nothing new: nothing stored */
		}
		if (duplicates != NULL && duplicates->len > 0 &&
		    !audit_duplicates (pg, message, duplicates, queue_id, error))
			goto failed;
		out_duplicates[m] = duplicates != NULL ? duplicates->len : 0;
		g_ptr_array_add (queue_ids, g_steal_pointer (&queue_id));
		g_ptr_array_add (duplicate_of, g_steal_pointer (&first_duplicate_of));
	}
	/* The caller may say "accepted" only after this returns. */
	if (!sc_pg_commit (pg, error))
		return FALSE;
	for (guint m = 0; m < n_messages; m++) {
		out_queue_ids[m] = g_steal_pointer (&queue_ids->pdata[m]);
		if (out_duplicate_of != NULL)
			out_duplicate_of[m] = g_steal_pointer (&duplicate_of->pdata[m]);
	}
	return TRUE;

failed:
	sc_pg_rollback (pg);
	return FALSE;
}

/* Bounded, and SKIP LOCKED: two runners pruning at once take different
 * pairs instead of waiting for each other. */
static gboolean
pg_prune_accepted (ScSpool *spool, gint64 before, guint limit, guint *out_pruned, GError **error)
{
	static const ScPgStatement prune = {
	    "sc_spool_accepted_prune",
	    "DELETE FROM accepted WHERE (message_id, recipient) IN (SELECT message_id, recipient"
	    " FROM accepted WHERE accepted_at <= $1::bigint ORDER BY accepted_at LIMIT $2::bigint"
	    " FOR UPDATE SKIP LOCKED)",
	};
	g_auto(ScPgParams) params = {0};
	guint64 changed = 0;

	sc_pg_params_int64 (&params, before);
	sc_pg_params_int64 (&params, limit);
	if (!sc_pg_exec_done (SC_PG_SPOOL (spool), &prune, &params, "prune accepted", &changed, error))
		return FALSE;
	*out_pruned = (guint) changed;
	return TRUE;
}

static const ScSpoolBackend pg_backend = {
    .name = "postgresql",
    .close = pg_close,
    .describe = pg_describe,
    .inject_batch = pg_inject_batch,
    .prune_accepted = pg_prune_accepted,
    .claim_within = sc_pg_claim_within,
    .commit_batch = sc_pg_commit_batch,
    .renew_leases = sc_pg_renew_leases,
    .release_owner = sc_pg_release_owner,
    .reclaim = sc_pg_reclaim,
    .check_clock = sc_pg_check_clock,
    .next_due = sc_pg_next_due,
    .register_runner = sc_pg_register_runner,
    .runner_is_alive = sc_pg_runner_is_alive,
    .runner_in_handler = sc_pg_runner_in_handler,
    .forget_runner = sc_pg_forget_runner,
    .wake_runners = sc_pg_wake_runners,
    .wake_source_new = sc_pg_wake_source_new,
    .count_states = sc_pg_count_states,
    .search = sc_pg_search,
    .get_summary = sc_pg_get_summary,
    .get_stages = sc_pg_get_stages,
    .get_attempts = sc_pg_get_attempts,
    .get_recipients = sc_pg_get_recipients,
    .get_raw = sc_pg_get_raw,
    .get_stage_output = sc_pg_get_stage_output,
    .retry = sc_pg_retry,
    .retry_matching = sc_pg_retry_matching,
    .retry_list = sc_pg_retry_list,
    .hold = sc_pg_hold,
    .release = sc_pg_release,
    .delete_message = sc_pg_delete_message,
    .notify_claim = sc_pg_notify_claim,
    .notify_mark_sent = sc_pg_notify_mark_sent,
    .notify_mark_failed = sc_pg_notify_mark_failed,
    .notify_count_pending = sc_pg_notify_count_pending,
    .notify_next_due = sc_pg_notify_next_due,
    .notify_insert_event = sc_pg_notify_insert_event,
    .notify_count_backlog = sc_pg_notify_count_backlog,
    .count_by_list = sc_pg_count_by_list,
    .list_audit = sc_pg_list_audit,
    .list_notifications = sc_pg_list_notifications,
    .count_notifications_pending = sc_pg_count_notifications_pending,
    .throughput = sc_pg_throughput,
    .fold_attempts = sc_pg_fold_attempts,
    /* spool-copy (sc-pg-copy.c) */
    .copy_begin = sc_pg_copy_begin,
    .copy_out = sc_pg_copy_out,
    .copy_in = sc_pg_copy_in,
    .copy_count = sc_pg_copy_count,
    .copy_commit = sc_pg_copy_commit,
    .copy_rollback = sc_pg_copy_rollback,
};
