/* sc-spool.c — the spool's verbs, each handed to the backend that
 * sc_spool_open chose by the `spool=` value's scheme (sc-spool-backend.h).
 *
 * Message life, and the function behind each transition:
 *
 *   (new)     -> queued     [sc_spool_inject]
 *   queued    -> active     [sc_spool_claim]             lease taken
 *   deferred  -> active     [sc_spool_claim]             when next_attempt_at ≤ now
 *   active    -> active     [sc_spool_record_results]    stage ok, next stage follows
 *   active    -> done       [sc_spool_record_results]    last stage ok
 *   active    -> deferred   [sc_spool_record_results]    transient failure
 *   active    -> dead       [sc_spool_record_results]    permanent, or out of time
 *   active    -> queued/deferred [sc_spool_release_owner] runner stopping
 *   active    -> queued/deferred/held [sc_spool_reclaim] runner died
 *   dead/deferred/held/done -> queued [sc_spool_retry]    new cycle
 *   queued/deferred/dead -> held [sc_spool_hold];  held -> queued [sc_spool_release]
 *
 * Guarantees: active ⇒ a lease; a result is applied only while its runner
 * still holds the lease (a runner that lost it to reclaim cannot overwrite
 * the new owner's work); a stage record, its attempt and the message's new
 * state are one transaction; every update names the state it expects.
 */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-spool-backend.h"
#include "sc-spool-uri.h"

ScSpool *
sc_spool_open (const char *location, gint64 busy_timeout, GError **error)
{
	return sc_spool_open_full (location, busy_timeout, SC_SPOOL_OPEN_DEFAULT, error);
}

ScSpool *
sc_spool_open_full (const char *location, gint64 busy_timeout, ScSpoolOpenFlags flags, GError **error)
{
	const char *folder = location;

	switch (sc_spool_uri_parse (location, &folder)) {
	case SC_SPOOL_URI_FOLDER:
		return sc_sqlite_spool_open (folder, busy_timeout, flags, error);
	case SC_SPOOL_URI_POSTGRESQL:
#ifdef HAVE_PG_SPOOL
		return sc_pg_spool_open (location, busy_timeout, error);
#else
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_FAILED,
			     _ ("this stagecoach was built without PostgreSQL (libpq)"));
		return NULL;
#endif
	case SC_SPOOL_URI_UNKNOWN:
	default:
		g_set_error (
		    error,
		    SC_SPOOL_ERROR,
		    SC_SPOOL_ERROR_FAILED,
		    _ ("unknown spool backend (known: sqlite:FOLDER, a folder, postgresql://…)"));
		return NULL;
	}
}

void
sc_spool_close (ScSpool *spool)
{
	if (spool != NULL)
		spool->backend->close (spool);
}

const char *
sc_spool_backend_name (ScSpool *spool)
{
	return spool->backend->name;
}

gboolean
sc_spool_describe (ScSpool *spool, char **out_server, int *out_schema_version, GError **error)
{
	return spool->backend->describe (spool, out_server, out_schema_version, error);
}

/* ---- verbs derived from others, once for every backend ---- */

char *
sc_spool_inject (ScSpool *spool, const ScNewMessage *message, GError **error)
{
	char *queue_id = NULL;
	guint duplicates = 0;

	if (!sc_spool_inject_batch (spool, &message, 1, 0, &queue_id, &duplicates, NULL, NULL, error))
		return NULL;
	return queue_id;
}

GPtrArray *
sc_spool_claim (ScSpool *spool,
		const char *owner,
		gint64 now,
		gint64 lease_expires_at,
		guint limit,
		GError **error)
{
	return sc_spool_claim_within (
	    spool, owner, now, lease_expires_at, limit, G_MAXUINT64, TRUE, error);
}

gboolean
sc_spool_record_results (ScSpool *spool,
			 const char *owner,
			 ScStageResult *const *results,
			 guint n_results,
			 guint *out_stale,
			 GError **error)
{
	if (!sc_spool_commit_batch (spool, owner, NULL, 0, results, n_results, TRUE, error))
		return FALSE;
	if (out_stale != NULL) {
		*out_stale = 0;
		for (guint i = 0; i < n_results; i++)
			*out_stale += results[i]->applied ? 0 : 1;
	}
	return TRUE;
}

/* ---- the backend's verbs ---- */

gboolean
sc_spool_inject_batch (ScSpool *spool,
		       const ScNewMessage *const *messages,
		       guint n_messages,
		       gint64 dedupe_window,
		       char **out_queue_ids,
		       guint *out_duplicates,
		       char **out_duplicate_of,
		       ScMessage **out_claimed,
		       GError **error)
{
	if (out_claimed != NULL)
		memset (out_claimed, 0, n_messages * sizeof *out_claimed);
	return spool->backend->inject_batch (spool,
					     messages,
					     n_messages,
					     dedupe_window,
					     out_queue_ids,
					     out_duplicates,
					     out_duplicate_of,
					     out_claimed,
					     error);
}

gboolean
sc_spool_prune_accepted (
    ScSpool *spool, gint64 before, guint limit, guint *out_pruned, GError **error)
{
	return spool->backend->prune_accepted (spool, before, limit, out_pruned, error);
}

GPtrArray *
sc_spool_claim_within (ScSpool *spool,
		       const char *owner,
		       gint64 now,
		       gint64 lease_expires_at,
		       guint limit,
		       guint64 max_bytes,
		       gboolean take_first,
		       GError **error)
{
	return spool->backend->claim_within (
	    spool, owner, now, lease_expires_at, limit, max_bytes, take_first, error);
}

gboolean
sc_spool_commit_batch (ScSpool *spool,
		       const char *owner,
		       ScRecipientGroup *groups,
		       guint n_groups,
		       ScStageResult *const *results,
		       guint n_results,
		       gboolean durable,
		       GError **error)
{
	return spool->backend->commit_batch (
	    spool, owner, groups, n_groups, results, n_results, durable, error);
}

gboolean
sc_stage_result_may_wait_for_disk (const ScStageResult *result)
{
	return result->notification_kind == NULL &&
	       (result->next_state == SC_STATE_DONE || result->next_state == SC_STATE_ACTIVE);
}

guint64
sc_spool_unsynced_mark (ScSpool *spool)
{
	return spool->backend->unsynced_mark != NULL ? spool->backend->unsynced_mark (spool) : 0;
}

gboolean
sc_spool_sync (ScSpool *spool, guint64 mark, GError **error)
{
	return spool->backend->sync == NULL || spool->backend->sync (spool, mark, error);
}

gboolean
sc_spool_renew_leases (ScSpool *spool,
		       const char *owner,
		       const ScLease *leases,
		       guint n_leases,
		       gint64 lease_expires_at,
		       GError **error)
{
	return spool->backend->renew_leases (
	    spool, owner, leases, n_leases, lease_expires_at, error);
}

gboolean
sc_spool_release_owner (ScSpool *spool, const char *owner, gint64 now, GError **error)
{
	return spool->backend->release_owner (spool, owner, now, error);
}

guint
sc_spool_reclaim (ScSpool *spool,
		  const char *self_owner,
		  const ScLeaseProbe *probe,
		  gint64 now,
		  guint crash_limit,
		  GError **error)
{
	return spool->backend->reclaim (spool, self_owner, probe, now, crash_limit, error);
}

gboolean
sc_spool_check_clock (ScSpool *spool,
		      gint64 wall,
		      gint64 boottime,
		      const char *boot_id,
		      gint64 threshold,
		      gint64 *out_step,
		      GError **error)
{
	return spool->backend->check_clock (
	    spool, wall, boottime, boot_id, threshold, out_step, error);
}

gboolean
sc_spool_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	return spool->backend->next_due (spool, out_time, error);
}

ScOwner *
sc_spool_register_runner (ScSpool *spool, GError **error)
{
	return spool->backend->register_runner (spool, error);
}

gboolean
sc_spool_runner_is_alive (ScSpool *spool, const char *owner)
{
	return spool->backend->runner_is_alive (spool, owner);
}

GHashTable *
sc_spool_runner_in_handler (ScSpool *spool, const char *owner)
{
	return spool->backend->runner_in_handler (spool, owner);
}

void
sc_spool_forget_runner (ScSpool *spool, const char *owner)
{
	spool->backend->forget_runner (spool, owner);
}

void
sc_spool_wake_runners (ScSpool *spool)
{
	spool->backend->wake_runners (spool);
}

GSource *
sc_spool_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error)
{
	return spool->backend->wake_source_new (spool, func, data, error);
}

gboolean
sc_spool_count_states (ScSpool *spool,
		       const char *list_id,
		       gint64 counts[SC_STATE_LAST],
		       GError **error)
{
	return spool->backend->count_states (spool, list_id, counts, error);
}

GPtrArray *
sc_spool_search (ScSpool *spool, const ScMessageSearch *search, GError **error)
{
	return spool->backend->search (spool, search, error);
}

ScMessageSummary *
sc_spool_get_summary (ScSpool *spool, const char *queue_id, GError **error)
{
	return spool->backend->get_summary (spool, queue_id, error);
}

GPtrArray *
sc_spool_get_stages (ScSpool *spool, gint64 id, GError **error)
{
	return spool->backend->get_stages (spool, id, error);
}

GPtrArray *
sc_spool_get_attempts (ScSpool *spool, gint64 id, GError **error)
{
	return spool->backend->get_attempts (spool, id, error);
}

GPtrArray *
sc_spool_get_recipients (ScSpool *spool, gint64 id, GError **error)
{
	return spool->backend->get_recipients (spool, id, error);
}

GBytes *
sc_spool_get_raw (ScSpool *spool, gint64 id, GError **error)
{
	return spool->backend->get_raw (spool, id, error);
}

GBytes *
sc_spool_get_stage_output (ScSpool *spool, gint64 id, const char *stage, GError **error)
{
	return spool->backend->get_stage_output (spool, id, stage, error);
}

gboolean
sc_spool_retry (ScSpool *spool,
		const char *queue_id,
		const char *from_stage,
		const ScAuditContext *audit,
		GError **error)
{
	return spool->backend->retry (spool, queue_id, from_stage, audit, error);
}

gboolean
sc_spool_retry_matching (ScSpool *spool,
			 ScMessageState state,
			 const char *list_id,
			 const ScAuditContext *audit,
			 guint *out_count,
			 GError **error)
{
	return spool->backend->retry_matching (spool, state, list_id, audit, out_count, error);
}

gboolean
sc_spool_retry_list (ScSpool *spool,
		     GPtrArray *queue_ids,
		     const char *detail,
		     const ScAuditContext *audit,
		     guint *inout_count,
		     GError **error)
{
	return spool->backend->retry_list (spool, queue_ids, detail, audit, inout_count, error);
}

gboolean
sc_spool_hold (ScSpool *spool,
	       const char *queue_id,
	       const char *reason,
	       const ScAuditContext *audit,
	       GError **error)
{
	return spool->backend->hold (spool, queue_id, reason, audit, error);
}

gboolean
sc_spool_release (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return spool->backend->release (spool, queue_id, audit, error);
}

gboolean
sc_spool_delete (ScSpool *spool, const char *queue_id, const ScAuditContext *audit, GError **error)
{
	return spool->backend->delete_message (spool, queue_id, audit, error);
}

GPtrArray *
sc_spool_notify_claim (ScSpool *spool, gint64 now, guint limit, GError **error)
{
	return spool->backend->notify_claim (spool, now, limit, error);
}

gboolean
sc_spool_notify_mark_sent (
    ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error)
{
	return spool->backend->notify_mark_sent (spool, ids, n_ids, now, error);
}

gboolean
sc_spool_notify_mark_failed (ScSpool *spool,
			     const gint64 *ids,
			     guint n_ids,
			     gint64 next_attempt_at,
			     const char *last_error,
			     GError **error)
{
	return spool->backend->notify_mark_failed (
	    spool, ids, n_ids, next_attempt_at, last_error, error);
}

gboolean
sc_spool_notify_count_pending (ScSpool *spool, gint64 now, guint64 *out_count, GError **error)
{
	return spool->backend->notify_count_pending (spool, now, out_count, error);
}

gboolean
sc_spool_notify_next_due (ScSpool *spool, gint64 *out_time, GError **error)
{
	return spool->backend->notify_next_due (spool, out_time, error);
}

gboolean
sc_spool_notify_insert_event (
    ScSpool *spool, const char *kind, const char *detail, gint64 now, GError **error)
{
	return spool->backend->notify_insert_event (spool, kind, detail, now, error);
}

gboolean
sc_spool_notify_count_backlog (
    ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error)
{
	return spool->backend->notify_count_backlog (spool, now, limit, out_count, error);
}

GPtrArray *
sc_spool_count_by_list (ScSpool *spool, GError **error)
{
	return spool->backend->count_by_list (spool, error);
}

GPtrArray *
sc_spool_list_audit (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return spool->backend->list_audit (spool, after_id, limit, error);
}

GPtrArray *
sc_spool_list_notifications (ScSpool *spool, gint64 after_id, guint limit, GError **error)
{
	return spool->backend->list_notifications (spool, after_id, limit, error);
}

gboolean
sc_spool_count_notifications_pending (ScSpool *spool, gint64 *out_count, GError **error)
{
	return spool->backend->count_notifications_pending (spool, out_count, error);
}

GArray *
sc_spool_throughput (ScSpool *spool, gint64 now, guint n_minutes, GError **error)
{
	return spool->backend->throughput (spool, now, n_minutes, error);
}

gboolean
sc_spool_fold_attempts (ScSpool *spool,
			gint64 *inout_after_id,
			guint limit,
			ScAttemptFunc func,
			gpointer user_data,
			GError **error)
{
	return spool->backend->fold_attempts (spool, inout_after_id, limit, func, user_data, error);
}
