/* sc-pg-claim.c — the runner's claims and results on the PostgreSQL spool.
 *
 * A claim reads the head of messages_due with FOR UPDATE SKIP LOCKED, so
 * runners on several hosts take different messages without waiting for
 * each other, and leases what it took in the same transaction (bumping
 * lease_generation: every later update of the claim names it).  The
 * messages are then loaded with one statement per kind of row for all of
 * them, not per message: a claim costs the same few round trips for 1 or
 * 32 messages.
 *
 * Results and recipient groups are applied only while the claim is still
 * this runner's (state active, lease owner and generation): an UPDATE
 * under READ COMMITTED re-checks that on the row as a concurrent reclaim
 * left it, so a runner that lost a message cannot overwrite its new
 * owner's work.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-pg-private.h"

/* A claim lost to a crash before its commit is flushed only leaves the
 * message queued under its old generation, to be claimed again — what a
 * crash does anyway (sc-spool.c's begin_unsynced, the same argument):
 * no fsync wait on the server for it. */
static gboolean
begin_unsynced (ScPgSpool *pg, GError **error)
{
	static const ScPgStatement unsynced = {
	    "sc_claim_unsynced",
	    "SELECT set_config ('synchronous_commit', 'off', true)",
	};

	if (!sc_pg_begin (pg, error))
		return FALSE;
	if (!sc_pg_exec_done (pg, &unsynced, NULL, "claim", NULL, error)) {
		sc_pg_rollback (pg);
		return FALSE;
	}
	return TRUE;
}

/* ---- claiming ---- */

static const ScPgStatement claim_select = {
    "sc_claim_select",
    "SELECT id, size FROM messages WHERE state IN ('queued','deferred')"
    " AND next_attempt_at <= $1::bigint ORDER BY next_attempt_at LIMIT $2::bigint"
    " FOR UPDATE SKIP LOCKED",
};

static const ScPgStatement claim_update = {
    "sc_claim_update",
    "UPDATE messages SET state = 'active', lease_owner = $1::text,"
    " lease_expires_at = $2::bigint, updated_at = $3::bigint,"
    " lease_generation = lease_generation + 1"
    " WHERE id = ANY ($4::bigint[]) AND state IN ('queued','deferred')"
    " RETURNING id, queue_id, list_id, sender, pipeline, attempts, crashes, cycle_started_at,"
    " lease_generation",
};

static const ScPgStatement claim_recipients = {
    "sc_claim_recipients",
    "SELECT message_id, address, status, code, reply, mailer, updated_at, position"
    " FROM recipients WHERE message_id = ANY ($1::bigint[]) ORDER BY message_id, position",
};

static const ScPgStatement claim_completed = {
    "sc_claim_completed",
    "SELECT message_id, stage FROM stages WHERE message_id = ANY ($1::bigint[]) ORDER BY id",
};

static const ScPgStatement claim_attempt_counts = {
    "sc_claim_attempt_counts",
    "SELECT message_id, stage, count(*) FROM attempts WHERE message_id = ANY ($1::bigint[])"
    " GROUP BY message_id, stage",
};

/* Binary: the bodies and the latest outputs come as they are, not hex. */
static const ScPgStatement claim_bodies = {
    "sc_claim_bodies",
    "SELECT b.message_id, b.raw, (SELECT s.output FROM stages AS s WHERE s.message_id = b.message_id"
    "  AND s.output IS NOT NULL ORDER BY s.id DESC LIMIT 1)"
    " FROM bodies AS b WHERE b.message_id = ANY ($1::bigint[])",
    TRUE,
};

static ScMessage *
message_for (GHashTable *by_id, const PGresult *result, int row)
{
	gint64 id = sc_pg_get_int64 (result, row, 0);
	ScMessage *message = g_hash_table_lookup (by_id, &id);

	g_assert (message != NULL);
	return message;
}

/* Fills what sc-spool.c's load_claimed reads, for every claimed message. */
static gboolean
load_claimed (ScPgSpool *pg, GPtrArray *messages, const gint64 *ids, guint n_ids, GError **error)
{
	g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
	g_autoptr(GHashTable) recipients = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_strv_builder_unref);
	g_autoptr(GHashTable) completed = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_strv_builder_unref);
	g_auto(ScPgParams) params = {0};

	for (guint i = 0; i < messages->len; i++) {
		ScMessage *message = messages->pdata[i];
		g_hash_table_insert (by_id, &message->id, message);
		g_hash_table_insert (recipients, message, g_strv_builder_new ());
		g_hash_table_insert (completed, message, g_strv_builder_new ());
		message->recipient_records = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_recipient_record_free);
		message->stage_attempts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	}
	sc_pg_params_int64_array (&params, ids, n_ids);
	{
		g_autoptr(PGresult) result = sc_pg_exec (pg, &claim_recipients, &params, "claim", error);
		if (result == NULL)
			return FALSE;
		for (int row = 0; row < PQntuples (result); row++) {
			ScMessage *message = message_for (by_id, result, row);
			ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);
			record->address = sc_pg_dup_text (result, row, 1);
			record->status = sc_pg_dup_text (result, row, 2);
			record->code = (int) sc_pg_get_int64 (result, row, 3);
			record->reply = sc_pg_dup_text (result, row, 4);
			record->mailer = sc_pg_dup_text (result, row, 5);
			record->updated_at = sc_pg_get_int64 (result, row, 6);
			record->position = (guint) sc_pg_get_int64 (result, row, 7);
			g_strv_builder_add (g_hash_table_lookup (recipients, message), record->address);
			g_ptr_array_add (message->recipient_records, record);
		}
	}
	{
		g_autoptr(PGresult) result = sc_pg_exec (pg, &claim_completed, &params, "claim", error);
		if (result == NULL)
			return FALSE;
		for (int row = 0; row < PQntuples (result); row++)
			g_strv_builder_add (g_hash_table_lookup (completed, message_for (by_id, result, row)),
					    PQgetvalue (result, row, 1));
	}
	{
		g_autoptr(PGresult) result = sc_pg_exec (pg, &claim_attempt_counts, &params, "claim", error);
		if (result == NULL)
			return FALSE;
		for (int row = 0; row < PQntuples (result); row++)
			g_hash_table_insert (message_for (by_id, result, row)->stage_attempts,
					     sc_pg_dup_text (result, row, 1),
					     GUINT_TO_POINTER ((guint) sc_pg_get_int64 (result, row, 2)));
	}
	{
		g_autoptr(PGresult) result = sc_pg_exec (pg, &claim_bodies, &params, "claim", error);
		if (result == NULL)
			return FALSE;
		for (int row = 0; row < PQntuples (result); row++) {
			ScMessage *message = message_for (by_id, result, row);
			message->raw = sc_pg_get_bytes (result, row, 1);
			message->current = sc_pg_get_bytes (result, row, 2);
			if (message->current == NULL)
				message->current = g_bytes_ref (message->raw);
		}
	}
	for (guint i = 0; i < messages->len; i++) {
		ScMessage *message = messages->pdata[i];
		message->recipients = g_strv_builder_end (g_hash_table_lookup (recipients, message));
		message->completed = g_strv_builder_end (g_hash_table_lookup (completed, message));
		if (message->raw == NULL) {
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
				     _("spool %s: message %s has no body"), pg->display, message->queue_id);
			return FALSE;
		}
	}
	return TRUE;
}

/* The due rows at the head of the queue that no other runner is taking,
 * oldest due first, cut at the memory budget. */
static GArray *
select_due (ScPgSpool *pg, gint64 now, guint limit, guint64 max_bytes, gboolean take_first, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));
	guint64 bytes = 0;

	sc_pg_params_int64 (&params, now);
	sc_pg_params_int64 (&params, limit);
	result = sc_pg_exec (pg, &claim_select, &params, "claim", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++) {
		gint64 id = sc_pg_get_int64 (result, row, 0);
		guint64 size = (guint64) sc_pg_get_int64 (result, row, 1);
		if (bytes + size > max_bytes && !(take_first && ids->len == 0))
			break;
		bytes += size;
		g_array_append_val (ids, id);
	}
	return g_steal_pointer (&ids);
}

GPtrArray *
sc_pg_claim_within (ScSpool *spool,
		    const char *owner,
		    gint64 now,
		    gint64 lease_expires_at,
		    guint limit,
		    guint64 max_bytes,
		    gboolean take_first,
		    GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);
	g_autoptr(GArray) ids = NULL;
	g_autoptr(GArray) claimed = g_array_new (FALSE, FALSE, sizeof (gint64));

	if (limit == 0)
		return g_steal_pointer (&messages);
	if (!begin_unsynced (pg, error))
		return NULL;
	ids = select_due (pg, now, limit, max_bytes, take_first, error);
	if (ids == NULL)
		goto failed;
	if (ids->len > 0) {
		g_auto(ScPgParams) params = {0};
		g_autoptr(PGresult) result = NULL;

		sc_pg_params_text (&params, owner);
		sc_pg_params_int64 (&params, lease_expires_at);
		sc_pg_params_int64 (&params, now);
		sc_pg_params_int64_array (&params, (const gint64 *) (gpointer) ids->data, ids->len);
		/* the rows are locked by this transaction: the state check
		 * cannot fail, it only says what the claim expects */
		result = sc_pg_exec (pg, &claim_update, &params, "claim", error);
		if (result == NULL)
			goto failed;
		for (int row = 0; row < PQntuples (result); row++) {
			ScMessage *message = g_new0 (ScMessage, 1);
			message->id = sc_pg_get_int64 (result, row, 0);
			message->queue_id = sc_pg_dup_text (result, row, 1);
			message->list_id = sc_pg_dup_text (result, row, 2);
			message->sender = sc_pg_dup_text (result, row, 3);
			message->pipeline = g_strsplit (PQgetvalue (result, row, 4), ";", -1);
			message->attempts = (guint) sc_pg_get_int64 (result, row, 5);
			message->crashes = (guint) sc_pg_get_int64 (result, row, 6);
			message->cycle_started_at = sc_pg_get_int64 (result, row, 7);
			message->lease_generation = sc_pg_get_int64 (result, row, 8);
			g_ptr_array_add (messages, message);
		}
	}
	if (messages->len > 0) {
		/* in due order, as selected (RETURNING's order is the update's) */
		g_autoptr(GHashTable) by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
		g_autoptr(GPtrArray) ordered = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_message_free);

		for (guint i = 0; i < messages->len; i++) {
			ScMessage *message = messages->pdata[i];
			g_hash_table_insert (by_id, &message->id, message);
		}
		for (guint i = 0; i < ids->len; i++) {
			ScMessage *message = g_hash_table_lookup (by_id, &g_array_index (ids, gint64, i));
			if (message != NULL)
				g_array_append_val (claimed, message->id);
		}
		g_ptr_array_set_free_func (messages, NULL);
		for (guint i = 0; i < claimed->len; i++)
			g_ptr_array_add (ordered, g_hash_table_lookup (by_id, &g_array_index (claimed, gint64, i)));
		g_clear_pointer (&messages, g_ptr_array_unref);
		messages = g_steal_pointer (&ordered);
		if (!load_claimed (pg, messages, (const gint64 *) (gpointer) claimed->data, claimed->len, error))
			goto failed;
	}
	if (!sc_pg_commit (pg, error))
		return NULL;
	return g_steal_pointer (&messages);

failed:
	sc_pg_rollback (pg);
	return NULL;
}

/* ---- results ---- */

gboolean
sc_pg_insert_notification (ScPgSpool *pg,
			   gint64 message_id,
			   const char *kind,
			   const char *detail,
			   gint64 now,
			   GError **error)
{
	static const ScPgStatement insert = {
	    "sc_claim_insert_notification",
	    "INSERT INTO notifications (kind, message_id, queue_id, detail, created_at,"
	    " next_attempt_at) SELECT $1::text, id, queue_id, $2::text, $3::bigint, $3::bigint"
	    " FROM messages WHERE id = $4::bigint",
	};
	g_auto(ScPgParams) params = {0};

	sc_pg_params_text (&params, kind);
	sc_pg_params_text (&params, detail);
	sc_pg_params_int64 (&params, now);
	sc_pg_params_int64 (&params, message_id);
	return sc_pg_exec_done (pg, &insert, &params, "record notification", NULL, error);
}

/* The new state, the stage record and the attempt: one statement, applied
 * only while the claim is this runner's (m is empty otherwise, and so is
 * everything made from it). */
static const ScPgStatement apply_result_stmt = {
    "sc_claim_apply_result",
    "WITH m AS (UPDATE messages SET state = $1::text, updated_at = $2::bigint,"
    "  attempts = $3::integer, next_attempt_at = $4::bigint, last_error = $5::text,"
    "  lease_owner = CASE WHEN $1::text = 'active' THEN lease_owner END,"
    "  lease_expires_at = CASE WHEN $1::text = 'active' THEN lease_expires_at END"
    "  WHERE id = $6::bigint AND state = 'active' AND lease_owner = $7::text"
    "  AND lease_generation = $8::bigint RETURNING id, cycle),"
    " s AS (INSERT INTO stages (message_id, stage, completed_at, note, output)"
    "  SELECT id, $9::text, $2::bigint, $10::text, $11::bytea FROM m"
    "  WHERE $9::text IS NOT NULL AND $12::boolean"
    "  ON CONFLICT (message_id, stage) DO NOTHING),"
    " a AS (INSERT INTO attempts (message_id, cycle, stage, outcome, error, mailer, started_at,"
    "  finished_at) SELECT id, cycle, $9::text, $13::text, $14::text, $15::text, $16::bigint,"
    "  $2::bigint FROM m WHERE $9::text IS NOT NULL)"
    " SELECT count(*) FROM m",
};

static gboolean
apply_result (ScPgSpool *pg, const char *owner, const ScStageResult *result, gboolean *out_applied, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) applied = NULL;
	gboolean ok = result->outcome == SC_OUTCOME_OK;

	*out_applied = FALSE;
	sc_pg_params_text (&params, sc_message_state_to_string (result->next_state));
	sc_pg_params_int64 (&params, result->finished_at);
	sc_pg_params_int64 (&params, result->attempts);
	if (result->next_state == SC_STATE_DEFERRED || result->next_state == SC_STATE_QUEUED)
		sc_pg_params_int64 (&params, result->next_attempt_at);
	else
		sc_pg_params_null (&params);
	sc_pg_params_text (&params, ok ? NULL : result->error);
	sc_pg_params_int64 (&params, result->id);
	sc_pg_params_text (&params, owner);
	sc_pg_params_int64 (&params, result->lease_generation);
	sc_pg_params_text (&params, result->stage);
	sc_pg_params_text (&params, result->note);
	sc_pg_params_bytes (&params, ok ? result->output : NULL);
	sc_pg_params_text (&params, ok ? "true" : "false");
	sc_pg_params_text (&params, sc_outcome_to_string (result->outcome));
	sc_pg_params_text (&params, ok ? result->note : result->error);
	sc_pg_params_text (&params, result->mailer);
	sc_pg_params_int64 (&params, result->started_at);
	applied = sc_pg_exec (pg, &apply_result_stmt, &params, "record result", error);
	if (applied == NULL)
		return FALSE;
	if (sc_pg_get_int64 (applied, 0, 0) == 0)
		return TRUE; /* lease lost: the new owner's work stands */
	if (result->stage == NULL) {
		*out_applied = TRUE;
		return TRUE;
	}
	if (result->next_state == SC_STATE_DEAD &&
	    !sc_pg_insert_notification (pg, result->id, "message.dead",
					result->notification_detail != NULL ? result->notification_detail
									    : result->error,
					result->finished_at, error))
		return FALSE;
	if (result->notification_kind != NULL &&
	    !sc_pg_insert_notification (pg, result->id, result->notification_kind,
					result->notification_detail, result->finished_at, error))
		return FALSE;
	*out_applied = TRUE;
	return TRUE;
}

/* FOR SHARE holds the claim for the rest of the transaction: a reclaim
 * waits until it ends, and one that committed first is seen (the lock
 * re-reads the row).  Without it a group could be written next to a
 * reclaim that took the message a moment before. */
static const ScPgStatement hold_claim = {
    "sc_claim_hold",
    "SELECT id FROM messages WHERE id = $1::bigint AND state = 'active'"
    " AND lease_owner = $2::text AND lease_generation = $3::bigint FOR SHARE",
};

static const ScPgStatement update_recipients = {
    "sc_claim_update_recipients",
    "UPDATE recipients AS r SET status = u.status, code = u.code, reply = u.reply,"
    " mailer = u.mailer, updated_at = u.at"
    " FROM unnest ($1::bigint[], $2::integer[], $3::text[], $4::integer[], $5::text[],"
    "  $6::text[], $7::bigint[]) AS u (message_id, position, status, code, reply, mailer, at)"
    " WHERE r.message_id = u.message_id AND r.position = u.position",
};

/* One group: every claim it names still held, then all its updates in one
 * statement; else none of it (*@out_lost).  Nothing is written before
 * the checks, so a lost group needs no savepoint. */
static gboolean
record_group (ScPgSpool *pg, const char *owner, ScRecipientGroup *group, GError **error)
{
	g_auto(ScPgParams) params = {0};
	g_autoptr(GArray) ids = g_array_sized_new (FALSE, FALSE, sizeof (gint64), group->n_updates);
	g_autoptr(GArray) positions = g_array_sized_new (FALSE, FALSE, sizeof (gint64), group->n_updates);
	g_autoptr(GArray) codes = g_array_sized_new (FALSE, FALSE, sizeof (gint64), group->n_updates);
	g_autoptr(GArray) ats = g_array_sized_new (FALSE, FALSE, sizeof (gint64), group->n_updates);
	g_autoptr(GPtrArray) statuses = g_ptr_array_new ();
	g_autoptr(GPtrArray) replies = g_ptr_array_new ();
	g_autoptr(GPtrArray) mailers = g_ptr_array_new ();

	group->lease_lost = FALSE;
	for (guint i = 0; i < group->n_updates; i++) {
		const ScRecipientUpdate *u = &group->updates[i];
		gboolean checked = FALSE;
		gint64 position = u->position;
		gint64 code = u->code;

		for (guint j = 0; j < i && !checked; j++)
			checked = group->updates[j].id == u->id &&
				  group->updates[j].lease_generation == u->lease_generation;
		if (!checked) {
			g_auto(ScPgParams) check = {0};
			g_autoptr(PGresult) held = NULL;
			sc_pg_params_int64 (&check, u->id);
			sc_pg_params_text (&check, owner);
			sc_pg_params_int64 (&check, u->lease_generation);
			held = sc_pg_exec (pg, &hold_claim, &check, "record recipients", error);
			if (held == NULL)
				return FALSE;
			if (PQntuples (held) == 0) {
				group->lease_lost = TRUE;
				return TRUE;
			}
		}
		g_array_append_val (ids, u->id);
		g_array_append_val (positions, position);
		g_array_append_val (codes, code);
		g_array_append_val (ats, u->at);
		g_ptr_array_add (statuses, (gpointer) u->status);
		g_ptr_array_add (replies, (gpointer) u->reply);
		g_ptr_array_add (mailers, (gpointer) u->mailer);
	}
	if (group->n_updates == 0)
		return TRUE;
	sc_pg_params_int64_array (&params, (const gint64 *) (gpointer) ids->data, ids->len);
	sc_pg_params_int64_array (&params, (const gint64 *) (gpointer) positions->data, positions->len);
	sc_pg_params_text_array (&params, (const char *const *) statuses->pdata, statuses->len);
	sc_pg_params_int64_array (&params, (const gint64 *) (gpointer) codes->data, codes->len);
	sc_pg_params_text_array (&params, (const char *const *) replies->pdata, replies->len);
	sc_pg_params_text_array (&params, (const char *const *) mailers->pdata, mailers->len);
	sc_pg_params_int64_array (&params, (const gint64 *) (gpointer) ats->data, ats->len);
	return sc_pg_exec_done (pg, &update_recipients, &params, "record recipients", NULL, error);
}

gboolean
sc_pg_commit_batch (ScSpool *spool,
		    const char *owner,
		    ScRecipientGroup *groups,
		    guint n_groups,
		    ScStageResult *const *results,
		    guint n_results,
		    gboolean durable,
		    GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	/* sc-spool.c's rule: only stages that went well and hand the message
	 * on under the same lease may be lost to a crash (they run again) */
	gboolean unsynced = n_groups == 0;

	/* Every other batch is durable here: a deferred commit would need a
	 * later durable one on this session to bound it, and runners on
	 * other hosts read the queue meanwhile. */
	(void) durable;

	if (n_groups == 0 && n_results == 0)
		return TRUE;
	for (guint i = 0; i < n_results && unsynced; i++)
		unsynced = results[i]->outcome == SC_OUTCOME_OK && results[i]->next_state == SC_STATE_ACTIVE &&
			   results[i]->notification_kind == NULL;
	if (!(unsynced ? begin_unsynced (pg, error) : sc_pg_begin (pg, error)))
		return FALSE;
	for (guint i = 0; i < n_groups; i++) {
		if (!record_group (pg, owner, &groups[i], error))
			goto failed;
	}
	for (guint i = 0; i < n_results; i++) {
		if (!apply_result (pg, owner, results[i], &results[i]->applied, error))
			goto failed;
	}
	if (!sc_pg_commit (pg, error))
		goto lost;
	return TRUE;

failed:
	sc_pg_rollback (pg);
lost:
	/* nothing was recorded: no result counts as applied */
	for (guint i = 0; i < n_results; i++)
		results[i]->applied = FALSE;
	return FALSE;
}

/* ---- leases ---- */

gboolean
sc_pg_renew_leases (ScSpool *spool,
		    const char *owner,
		    const ScLease *leases,
		    guint n_leases,
		    gint64 lease_expires_at,
		    GError **error)
{
	static const ScPgStatement renew = {
	    "sc_claim_renew",
	    "UPDATE messages AS m SET lease_expires_at = $1::bigint"
	    " FROM unnest ($2::bigint[], $3::bigint[]) AS l (id, generation)"
	    " WHERE m.id = l.id AND m.state = 'active' AND m.lease_owner = $4::text"
	    " AND m.lease_generation = l.generation",
	};
	g_auto(ScPgParams) params = {0};
	g_autofree gint64 *ids = g_new (gint64, MAX (n_leases, 1));
	g_autofree gint64 *generations = g_new (gint64, MAX (n_leases, 1));

	if (n_leases == 0)
		return TRUE;
	for (guint i = 0; i < n_leases; i++) {
		ids[i] = leases[i].id;
		generations[i] = leases[i].generation;
	}
	sc_pg_params_int64 (&params, lease_expires_at);
	sc_pg_params_int64_array (&params, ids, n_leases);
	sc_pg_params_int64_array (&params, generations, n_leases);
	sc_pg_params_text (&params, owner);
	return sc_pg_exec_done (SC_PG_SPOOL (spool), &renew, &params, "renew leases", NULL, error);
}

gboolean
sc_pg_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error)
{
	static const ScPgStatement release = {
	    "sc_claim_release_owner",
	    "UPDATE messages SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,"
	    " next_attempt_at = $2::bigint, updated_at = $2::bigint, lease_owner = NULL,"
	    " lease_expires_at = NULL WHERE state = 'active' AND lease_owner = $1::text",
	};
	g_auto(ScPgParams) params = {0};

	sc_pg_params_text (&params, owner);
	sc_pg_params_int64 (&params, now);
	return sc_pg_exec_done (SC_PG_SPOOL (spool), &release, &params, "release", NULL, error);
}

gboolean
sc_pg_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	static const ScPgStatement next_due = {
	    "sc_claim_next_due",
	    "SELECT next_attempt_at FROM messages WHERE state IN ('queued','deferred')"
	    " AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1",
	};
	g_autoptr(PGresult) result = sc_pg_exec (SC_PG_SPOOL (spool), &next_due, NULL, "next due", error);

	if (result == NULL || PQntuples (result) == 0)
		return FALSE;
	*out_time = sc_pg_get_int64 (result, 0, 0);
	return TRUE;
}
