/* sc-spool-backend.h — the table of verbs a spool backend implements.
 *
 * sc-spool.c turns each public sc_spool_* verb into a call through
 * spool->backend, chosen once by sc_spool_open from the `spool=` value's
 * scheme (sc-spool-uri.c), as OpenSMTPD picks its queue backend by name.
 * Each entry has the signature and the contract of the sc-spool.h verb
 * of the same name; the contract suite (tests/test-spool-contract.c)
 * runs against every backend.  Verbs a backend can derive from others
 * (claim from claim_within, record_results from commit_batch) are derived
 * once in sc-spool.c, not per backend.
 *
 * Backends: sc-sqlite-*.c (the embedded default, a folder) and sc-pg-*.c
 * (PostgreSQL, for runners on several hosts; only with HAVE_PG_SPOOL,
 * which meson sets when libpq is found).
 */
#pragma once

#include "sc-spool-copy.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct {
	const char *name; /* "sqlite", "postgresql": what `status` and check-config name */

	void (*close) (ScSpool *spool);
	/* For check-config: the server's version ("SQLite 3.40.1",
	 * "PostgreSQL 15.10") and the schema version the spool is at. */
	gboolean (*describe) (ScSpool *spool,
			      char **out_server,
			      int *out_schema_version,
			      GError **error);

	/* ingress */
	gboolean (*inject_batch) (ScSpool *spool,
				  const ScNewMessage *const *messages,
				  guint n_messages,
				  gint64 dedupe_window,
				  char **out_queue_ids,
				  guint *out_duplicates,
				  char **out_duplicate_of,
				  ScMessage **out_claimed, /* (nullable) zeroed by the caller */
				  GError **error);
	gboolean (*prune_accepted) (
	    ScSpool *spool, gint64 before, guint limit, guint *out_pruned, GError **error);

	/* the runner */
	GPtrArray *(*claim_within) (ScSpool *spool,
				    const char *owner,
				    gint64 now,
				    gint64 lease_expires_at,
				    guint limit,
				    guint64 max_bytes,
				    gboolean take_first,
				    GError **error);
	gboolean (*commit_batch) (ScSpool *spool,
				  const char *owner,
				  ScRecipientGroup *groups,
				  guint n_groups,
				  ScStageResult *const *results,
				  guint n_results,
				  gboolean durable,
				  GError **error);
	/* NULL where every commit is durable when it returns */
	guint64 (*unsynced_mark) (ScSpool *spool);
	gboolean (*sync) (ScSpool *spool, guint64 mark, GError **error);
	gboolean (*renew_leases) (ScSpool *spool,
				  const char *owner,
				  const ScLease *leases,
				  guint n_leases,
				  gint64 lease_expires_at,
				  GError **error);
	gboolean (*release_owner) (ScSpool *spool, const char *owner, gint64 now, GError **error);
	guint (*reclaim) (ScSpool *spool,
			  const char *self_owner,
			  const ScLeaseProbe *probe,
			  gint64 now,
			  guint crash_limit,
			  GError **error);
	gboolean (*check_clock) (ScSpool *spool,
				 gint64 wall,
				 gint64 boottime,
				 const char *boot_id,
				 gint64 threshold,
				 gint64 *out_step,
				 GError **error);
	gboolean (*next_due) (ScSpool *spool, gint64 *out_time, GError **error);

	/* runners' presence and wakeups */
	ScOwner *(*register_runner) (ScSpool *spool, GError **error);
	gboolean (*runner_is_alive) (ScSpool *spool, const char *owner);
	GHashTable *(*runner_in_handler) (ScSpool *spool, const char *owner);
	void (*forget_runner) (ScSpool *spool, const char *owner);
	void (*wake_runners) (ScSpool *spool);
	GSource *(*wake_source_new) (ScSpool *spool,
				     GSourceFunc func,
				     gpointer data,
				     GError **error);

	/* reading */
	gboolean (*count_states) (ScSpool *spool,
				  const char *list_id,
				  gint64 counts[SC_STATE_LAST],
				  GError **error);
	GPtrArray *(*search) (ScSpool *spool, const ScMessageSearch *search, GError **error);
	ScMessageSummary *(*get_summary) (ScSpool *spool, const char *queue_id, GError **error);
	GPtrArray *(*get_stages) (ScSpool *spool, gint64 id, GError **error);
	GPtrArray *(*get_attempts) (ScSpool *spool, gint64 id, GError **error);
	GPtrArray *(*get_recipients) (ScSpool *spool, gint64 id, GError **error);
	GBytes *(*get_raw) (ScSpool *spool, gint64 id, GError **error);
	GBytes *(*get_stage_output) (ScSpool *spool, gint64 id, const char *stage, GError **error);

	/* operator actions */
	gboolean (*retry) (ScSpool *spool,
			   const char *queue_id,
			   const char *from_stage,
			   const ScAuditContext *audit,
			   GError **error);
	gboolean (*retry_matching) (ScSpool *spool,
				    ScMessageState state,
				    const char *list_id,
				    const ScAuditContext *audit,
				    guint *out_count,
				    GError **error);
	gboolean (*retry_list) (ScSpool *spool,
				GPtrArray *queue_ids,
				const char *detail,
				const ScAuditContext *audit,
				guint *inout_count,
				GError **error);
	gboolean (*hold) (ScSpool *spool,
			  const char *queue_id,
			  const char *reason,
			  const ScAuditContext *audit,
			  GError **error);
	gboolean (*release) (ScSpool *spool,
			     const char *queue_id,
			     const ScAuditContext *audit,
			     GError **error);
	gboolean (*delete_message) (ScSpool *spool,
				    const char *queue_id,
				    const ScAuditContext *audit,
				    GError **error);

	/* the notification outbox */
	GPtrArray *(*notify_claim) (ScSpool *spool, gint64 now, guint limit, GError **error);
	gboolean (*notify_mark_sent) (
	    ScSpool *spool, const gint64 *ids, guint n_ids, gint64 now, GError **error);
	gboolean (*notify_mark_failed) (ScSpool *spool,
					const gint64 *ids,
					guint n_ids,
					gint64 next_attempt_at,
					const char *last_error,
					GError **error);
	gboolean (*notify_count_pending) (ScSpool *spool,
					  gint64 now,
					  guint64 *out_count,
					  GError **error);
	gboolean (*notify_next_due) (ScSpool *spool, gint64 *out_time, GError **error);
	gboolean (*notify_insert_event) (
	    ScSpool *spool, const char *kind, const char *detail, gint64 now, GError **error);
	gboolean (*notify_count_backlog) (
	    ScSpool *spool, gint64 now, guint64 limit, guint64 *out_count, GError **error);

	/* the admin API's reads */
	GPtrArray *(*count_by_list) (ScSpool *spool, GError **error);
	GPtrArray *(*list_audit) (ScSpool *spool, gint64 after_id, guint limit, GError **error);
	GPtrArray *(*list_notifications) (ScSpool *spool,
					  gint64 after_id,
					  guint limit,
					  GError **error);
	gboolean (*count_notifications_pending) (ScSpool *spool, gint64 *out_count, GError **error);
	GArray *(*throughput) (ScSpool *spool, gint64 now, guint n_minutes, GError **error);
	gboolean (*fold_attempts) (ScSpool *spool,
				   gint64 *inout_after_id,
				   guint limit,
				   ScAttemptFunc func,
				   gpointer user_data,
				   GError **error);

	/* spool-copy (sc-spool-copy.c): rows of the tables of
	 * sc_spool_copy_tables as GVariant tuples of the table's row type.
	 * copy_begin opens the one transaction the others run in: with
	 * @write, the destination's (nothing of it visible or kept before
	 * copy_commit); without, a read snapshot of the source. */
	gboolean (*copy_begin) (ScSpool *spool, gboolean write, GError **error);
	/* Up to @limit rows in key order after the key @after (a tuple of the
	 * key columns; NULL: from the first). (transfer full) (element-type GVariant) */
	GPtrArray *(*copy_out) (ScSpool *spool,
				const ScCopyTable *table,
				GVariant *after,
				guint limit,
				GError **error);
	/* Appends @rows as they are, ids included. */
	gboolean (*copy_in) (ScSpool *spool, const ScCopyTable *table, GPtrArray *rows, GError **error);
	gboolean (*copy_count) (ScSpool *spool, const ScCopyTable *table, guint64 *out_rows, GError **error);
	/* After copy_begin with @write: makes the written rows the spool's
	 * (rows made later numbered after the copied ids) and commits.  A
	 * read snapshot ends with copy_rollback. */
	gboolean (*copy_commit) (ScSpool *spool, GError **error);
	void (*copy_rollback) (ScSpool *spool);
} ScSpoolBackend;

/* For backends (sc-spool-records.c): the "ingress-duplicate" audit row's
 * detail for the recipients of @message left out as resends, and its
 * audit context (the door, the peer, the time). (transfer full) */
char *sc_spool_duplicates_detail (const ScNewMessage *message, GPtrArray *duplicates, ScAuditContext *out_audit);

/* SC_SPOOL_ERROR_INVALID "cannot ACTION ID: it is STATE"; returns FALSE. */
gboolean sc_spool_refuse_state (const ScMessageSummary *summary, const char *action, GError **error);

/* Every backend's connection starts with this: sc-spool.c dispatches
 * through it.  A backend's own struct embeds it first. */
struct _ScSpool {
	const ScSpoolBackend *backend;
};

/* sc-sqlite-spool.c: FOLDER/spool.db */
ScSpool *
sc_sqlite_spool_open (const char *folder, gint64 busy_timeout, ScSpoolOpenFlags flags, GError **error);
#ifdef HAVE_PG_SPOOL
/* sc-pg-spool.c: a postgresql:// URI or a libpq key=value string.
 * @busy_timeout bounds how long a call waits for a lock or a reconnect. */
ScSpool *
sc_pg_spool_open (const char *conninfo, gint64 busy_timeout, GError **error);
#endif

G_END_DECLS
