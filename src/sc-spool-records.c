/* sc-spool-records.c — what every backend shares about the records of
 * sc-spool.h: state and outcome names, the table of actions each state
 * allows, refusing an action it does not allow, and freeing the records
 * the verbs return. */
#include "config.h"

#include "sc-i18n.h"
#include "sc-spool-backend.h"

static const char *const state_names[SC_STATE_LAST] = {
    [SC_STATE_QUEUED] = "queued",
    [SC_STATE_ACTIVE] = "active",
    [SC_STATE_DEFERRED] = "deferred",
    [SC_STATE_HELD] = "held",
    [SC_STATE_DONE] = "done",
    [SC_STATE_DEAD] = "dead",
};

const char *
sc_message_state_to_string (ScMessageState state)
{
	g_return_val_if_fail (state < SC_STATE_LAST, "unknown");
	return state_names[state];
}

#define BIT(action) (1u << (action))

static const guint allowed_actions[SC_STATE_LAST] = {
    [SC_STATE_QUEUED] = BIT (SC_ACTION_RETRY) | BIT (SC_ACTION_RETRY_FROM_STAGE) |
			BIT (SC_ACTION_HOLD) | BIT (SC_ACTION_DELETE),
    [SC_STATE_ACTIVE] = 0,
    [SC_STATE_DEFERRED] = BIT (SC_ACTION_RETRY) | BIT (SC_ACTION_RETRY_FROM_STAGE) |
			  BIT (SC_ACTION_RETRY_MATCHING) | BIT (SC_ACTION_HOLD) |
			  BIT (SC_ACTION_DELETE),
    [SC_STATE_HELD] = BIT (SC_ACTION_RETRY) | BIT (SC_ACTION_RETRY_FROM_STAGE) |
		      BIT (SC_ACTION_RELEASE) | BIT (SC_ACTION_DELETE),
    /* done: only stages run again on purpose (--from-stage) */
    [SC_STATE_DONE] = BIT (SC_ACTION_RETRY_FROM_STAGE) | BIT (SC_ACTION_DELETE),
    [SC_STATE_DEAD] = BIT (SC_ACTION_RETRY) | BIT (SC_ACTION_RETRY_FROM_STAGE) |
		      BIT (SC_ACTION_RETRY_MATCHING) | BIT (SC_ACTION_HOLD) |
		      BIT (SC_ACTION_DELETE),
};

gboolean
sc_message_state_allows (ScMessageState state, ScAction action)
{
	g_return_val_if_fail (state < SC_STATE_LAST && action < SC_ACTION_LAST, FALSE);
	return (allowed_actions[state] & BIT (action)) != 0;
}

gboolean
sc_message_state_from_string (const char *text, ScMessageState *out_state)
{
	for (guint i = 0; i < SC_STATE_LAST; i++) {
		if (g_strcmp0 (text, state_names[i]) == 0) {
			*out_state = i;
			return TRUE;
		}
	}
	return FALSE;
}

const char *
sc_outcome_to_string (ScOutcome outcome)
{
	switch (outcome) {
	case SC_OUTCOME_OK:
		return "ok";
	case SC_OUTCOME_TRANSIENT:
		return "transient";
	case SC_OUTCOME_PERMANENT:
		return "permanent";
	case SC_OUTCOME_CRASHED:
		return "crashed";
	case SC_OUTCOME_RELEASED:
		return "released";
	default:
		return "unknown";
	}
}

/* ---- the runner's verbs ---- */

void
sc_message_free (ScMessage *message)
{
	if (message == NULL)
		return;
	g_free (message->queue_id);
	g_free (message->list_id);
	g_free (message->sender);
	g_strfreev (message->recipients);
	g_strfreev (message->pipeline);
	g_strfreev (message->completed);
	g_clear_pointer (&message->stage_attempts, g_hash_table_unref);
	g_clear_pointer (&message->recipient_records, g_ptr_array_unref);
	g_clear_pointer (&message->raw, g_bytes_unref);
	g_clear_pointer (&message->current, g_bytes_unref);
	g_free (message);
}

ScMessage *
sc_message_new_leased (const ScNewMessage *message, gint64 id, const char *queue_id)
{
	ScMessage *claimed = g_new0 (ScMessage, 1);

	claimed->id = id;
	claimed->lease_generation = 1;
	claimed->queue_id = g_strdup (queue_id);
	claimed->list_id = g_strdup (message->list_id);
	claimed->sender = g_strdup (message->sender != NULL ? message->sender : "");
	claimed->recipients = g_strdupv ((char **) message->recipients);
	claimed->pipeline = g_strsplit (message->pipeline, ";", -1);
	claimed->completed = g_new0 (char *, 1);
	claimed->stage_attempts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	claimed->cycle_started_at = message->now;
	claimed->raw = g_bytes_ref (message->raw);
	claimed->current = g_bytes_ref (message->raw);
	claimed->recipient_records = g_ptr_array_new_with_free_func ((GDestroyNotify) sc_recipient_record_free);
	for (guint i = 0; message->recipients[i] != NULL; i++) {
		ScRecipientRecord *record = g_new0 (ScRecipientRecord, 1);
		record->position = i;
		record->address = g_strdup (message->recipients[i]);
		record->status = g_strdup ("pending");
		g_ptr_array_add (claimed->recipient_records, record);
	}
	return claimed;
}

const char *
sc_message_next_stage (const ScMessage *message)
{
	for (guint i = 0; message->pipeline[i] != NULL; i++) {
		if (message->completed == NULL ||
		    !g_strv_contains ((const char *const *)message->completed,
				      message->pipeline[i]))
			return message->pipeline[i];
	}
	return NULL;
}

const char *
sc_message_crashed_stage (const ScMessage *message, gint marked)
{
	if (marked >= 0 && (guint) marked < g_strv_length (message->pipeline)) {
		const char *stage = message->pipeline[marked];
		if (message->completed == NULL || !g_strv_contains ((const char *const *) message->completed, stage))
			return stage;
	}
	return sc_message_next_stage (message);
}

guint
sc_message_previous_attempts (const ScMessage *message, const char *stage)
{
	if (message->stage_attempts == NULL)
		return 0;
	return GPOINTER_TO_UINT (g_hash_table_lookup (message->stage_attempts, stage));
}

void
sc_message_summary_free (ScMessageSummary *summary)
{
	if (summary == NULL)
		return;
	g_free (summary->queue_id);
	g_free (summary->list_id);
	g_free (summary->sender);
	g_free (summary->subject);
	g_free (summary->message_id);
	g_free (summary->last_error);
	g_free (summary->hold_reason);
	g_free (summary->pipeline);
	g_free (summary);
}

void
sc_recipient_record_free (ScRecipientRecord *record)
{
	g_free (record->address);
	g_free (record->status);
	g_free (record->reply);
	g_free (record->mailer);
	g_free (record);
}

void
sc_notification_free (ScNotification *notification)
{
	if (notification == NULL)
		return;
	g_free (notification->kind);
	g_free (notification->queue_id);
	g_free (notification->detail);
	g_free (notification);
}

void
sc_list_counts_free (ScListCounts *counts)
{
	if (counts == NULL)
		return;
	g_free (counts->list_id);
	g_free (counts);
}

void
sc_audit_entry_free (ScAuditEntry *entry)
{
	if (entry == NULL)
		return;
	g_free (entry->actor);
	g_free (entry->remote);
	g_free (entry->action);
	g_free (entry->queue_id);
	g_free (entry->detail);
	g_free (entry);
}

void
sc_notification_entry_free (ScNotificationEntry *entry)
{
	if (entry == NULL)
		return;
	g_free (entry->kind);
	g_free (entry->queue_id);
	g_free (entry->detail);
	g_free (entry->state);
	g_free (entry->last_error);
	g_free (entry);
}

/* A resend is answered "accepted" like the first send; the audit log
 * says what was left out, so an operator can see why a post went out
 * fewer times than it came in. */
char *
sc_spool_duplicates_detail (const ScNewMessage *message, GPtrArray *duplicates, ScAuditContext *out_audit)
{
	GString *detail = g_string_new (NULL);

	out_audit->actor = message->door != NULL ? message->door : "ingress";
	out_audit->remote = message->peer;
	out_audit->now = message->now;
	g_string_append_printf (detail, "Message-ID %s: %u recipient(s) accepted before, not sent again:",
				message->message_id, duplicates->len);
	for (guint i = 0; i < duplicates->len && i < 20; i++)
		g_string_append_printf (detail, " %s", (const char *) duplicates->pdata[i]);
	if (duplicates->len > 20)
		g_string_append (detail, " …");
	return g_string_free (detail, FALSE);
}

/* An operator action the message's state does not allow
 * (sc_message_state_allows said no), said the same by every backend. */
gboolean
sc_spool_refuse_state (const ScMessageSummary *summary, const char *action, GError **error)
{
	g_set_error (error,
		     SC_SPOOL_ERROR,
		     SC_SPOOL_ERROR_INVALID,
		     /* TRANSLATORS: "cannot hold 1a2b…: it is done" */
		     _("cannot %s %s: it is %s"),
		     action,
		     summary->queue_id,
		     sc_message_state_to_string (summary->state));
	return FALSE;
}
