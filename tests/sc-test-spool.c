/* sc-test-spool.c — the spool tests' shared verbs (sc-test-spool.h). */
#include "config.h"

#include <string.h>

#include "sc-owner.h"
#include "sc-test-spool.h"

char *
sc_test_spool_inject_full (ScSpool *spool, const char *list_id, const char *pipeline, const char *body, gint64 now)
{
	static const char *const recipients[] = {"a@example.org", "b@example.net", "c@example.com", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) raw = g_bytes_new (body, strlen (body));
	g_autofree char *subject = g_strdup_printf ("subject of %s", body);
	ScNewMessage message = {
	    .list_id = list_id,
	    .sender = "owner@example.org",
	    .recipients = recipients,
	    .pipeline = pipeline,
	    .subject = subject,
	    .message_id = "<id@example.org>",
	    .raw = raw,
	    .now = now,
	};
	char *queue_id = sc_spool_inject (spool, &message, &error);

	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	return queue_id;
}

ScMessageSummary *
sc_test_spool_summary (ScSpool *spool, const char *queue_id)
{
	g_autoptr(GError) error = NULL;
	ScMessageSummary *result = sc_spool_get_summary (spool, queue_id, &error);

	g_assert_no_error (error);
	g_assert_nonnull (result);
	return result;
}

GPtrArray *
sc_test_spool_claim (ScSpool *spool, ScClock *clock, const char *owner, guint limit)
{
	g_autoptr(GError) error = NULL;
	gint64 now = sc_clock_now (clock);
	GPtrArray *messages = sc_spool_claim (spool, owner, now, now + LEASE, limit, &error);

	g_assert_no_error (error);
	g_assert_nonnull (messages);
	return messages;
}

ScMessage *
sc_test_spool_claim_one (ScSpool *spool, ScClock *clock, const char *owner, const char *queue_id)
{
	g_autoptr(GPtrArray) messages = sc_test_spool_claim (spool, clock, owner, 1);

	g_assert_cmpuint (messages->len, ==, 1);
	if (queue_id != NULL)
		g_assert_cmpstr (((ScMessage *) messages->pdata[0])->queue_id, ==, queue_id);
	return g_ptr_array_steal_index (messages, 0);
}

guint
sc_test_spool_record (ScSpool *spool, const char *owner, const ScStageResult *result)
{
	g_autoptr(GError) error = NULL;
	ScStageResult copy = *result;
	ScStageResult *one = &copy;
	guint stale = 99;

	g_assert_true (sc_spool_record_results (spool, owner, &one, 1, &stale, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (stale, <=, 1);
	g_assert_cmpint (copy.applied, ==, stale == 0);
	return stale;
}

ScStageResult
sc_test_spool_result_for (ScClock *clock, const ScMessage *message, ScOutcome outcome, ScMessageState next_state)
{
	gint64 now = sc_clock_now (clock);
	ScStageResult result = {
	    .id = message->id,
	    .lease_generation = message->lease_generation,
	    .stage = sc_message_next_stage (message),
	    .outcome = outcome,
	    .started_at = now - SEC,
	    .finished_at = now,
	    .error = outcome == SC_OUTCOME_OK ? NULL : "451 4.3.0 try again later",
	    .next_state = next_state,
	    .attempts = message->attempts + (outcome == SC_OUTCOME_OK ? 0 : 1),
	};
	return result;
}

gint64
sc_test_spool_count_of (ScSpool *spool, const char *list_id, ScMessageState state)
{
	g_autoptr(GError) error = NULL;
	gint64 counts[SC_STATE_LAST];

	g_assert_true (sc_spool_count_states (spool, list_id, counts, &error));
	g_assert_no_error (error);
	return counts[state];
}

static gboolean
owner_alive_cb (const char *owner, gpointer user_data)
{
	ScTestOwnerCheck *check = user_data;
	check->calls++;
	if (check->asked != NULL)
		g_ptr_array_add (check->asked, g_strdup (owner));
	return check->all_alive || (check->alive != NULL && g_strv_contains (check->alive, owner));
}

static gboolean
lease_listed (GArray *leases, const ScLease *lease)
{
	if (leases == NULL)
		return TRUE;
	for (guint i = 0; i < leases->len; i++) {
		ScLease *listed = &g_array_index (leases, ScLease, i);
		if (listed->id == lease->id && listed->generation == lease->generation)
			return TRUE;
	}
	return FALSE;
}

static gboolean
in_handler_cb (const char *owner, const ScLease *lease, gint *out_stage, gpointer user_data)
{
	ScTestOwnerCheck *check = user_data;
	*out_stage = SC_OWNER_STAGE_UNKNOWN;
	return lease_listed (check->in_handler, lease);
}

static gboolean
in_flight_cb (const ScLease *lease, gpointer user_data)
{
	ScTestOwnerCheck *check = user_data;
	return lease_listed (check->in_flight, lease);
}

guint
sc_test_spool_reclaim (ScSpool *spool, const char *self, ScTestOwnerCheck *check, gint64 now, guint crash_limit)
{
	g_autoptr(GError) error = NULL;
	ScLeaseProbe probe = {
	    .alive = owner_alive_cb,
	    .in_handler = in_handler_cb,
	    .in_flight = in_flight_cb,
	    .user_data = check,
	};
	guint count = sc_spool_reclaim (spool, self, &probe, now, crash_limit, &error);

	g_assert_no_error (error);
	return count;
}
