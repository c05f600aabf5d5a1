/* sc-message-json.c — messages as JSON (see sc-message-json.h).
 * Times are ISO 8601 UTC strings or null; keys never change with locale. */
#include "config.h"

#include "sc-message-json.h"

#include "sc-clock.h"

void
sc_json_add_time (JsonBuilder *builder, const char *key, gint64 time)
{
	g_autofree char *text = sc_time_to_iso8601 (time);

	json_builder_set_member_name (builder, key);
	if (text != NULL)
		json_builder_add_string_value (builder, text);
	else
		json_builder_add_null_value (builder);
}

void
sc_json_add_string (JsonBuilder *builder, const char *key, const char *value)
{
	json_builder_set_member_name (builder, key);
	if (value != NULL)
		json_builder_add_string_value (builder, value);
	else
		json_builder_add_null_value (builder);
}

/* Actions on one message, as the admin API's paths name them. */
static const struct {
	ScAction action;
	const char *name;
} message_actions[] = {
    {SC_ACTION_RETRY, "retry"},
    {SC_ACTION_RETRY_FROM_STAGE, "retry-from-stage"},
    {SC_ACTION_HOLD, "hold"},
    {SC_ACTION_RELEASE, "release"},
    {SC_ACTION_DELETE, "delete"},
};

static void
add_summary_members (JsonBuilder *builder, const ScMessageSummary *summary)
{
	sc_json_add_string (builder, "id", summary->queue_id);
	sc_json_add_string (builder, "state", sc_message_state_to_string (summary->state));
	sc_json_add_string (builder, "list", summary->list_id);
	sc_json_add_string (builder, "sender", summary->sender);
	sc_json_add_string (builder, "subject", summary->subject);
	sc_json_add_string (builder, "message_id", summary->message_id);
	sc_json_add_string (builder, "last_error", summary->last_error);
	sc_json_add_string (builder, "hold_reason", summary->hold_reason);
	/* failures in the current cycle; "attempts" is show's history array */
	json_builder_set_member_name (builder, "failures");
	json_builder_add_int_value (builder, summary->attempts);
	json_builder_set_member_name (builder, "cycle");
	json_builder_add_int_value (builder, summary->cycle);
	json_builder_set_member_name (builder, "size");
	json_builder_add_int_value (builder, summary->size);
	sc_json_add_time (builder, "created_at", summary->created_at);
	sc_json_add_time (builder, "updated_at", summary->updated_at);
	sc_json_add_time (builder,
		  "next_attempt_at",
		  summary->state == SC_STATE_QUEUED || summary->state == SC_STATE_DEFERRED
		      ? summary->next_attempt_at
		      : 0);
	/* what an operator may do now, from the spool's one table: the
	 * dashboard offers exactly these */
	json_builder_set_member_name (builder, "actions");
	json_builder_begin_array (builder);
	for (guint i = 0; i < G_N_ELEMENTS (message_actions); i++) {
		if (sc_message_state_allows (summary->state, message_actions[i].action))
			json_builder_add_string_value (builder, message_actions[i].name);
	}
	json_builder_end_array (builder);
}

JsonNode *
sc_message_summary_to_json (const ScMessageSummary *summary)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();

	json_builder_begin_object (builder);
	add_summary_members (builder, summary);
	json_builder_end_object (builder);
	return json_builder_get_root (builder);
}

JsonNode *
sc_message_json_build (ScSpool *spool, const char *queue_id, GError **error)
{
	g_autoptr(ScMessageSummary) summary = sc_spool_get_summary (spool, queue_id, error);
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(GPtrArray) stages = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	g_autoptr(GPtrArray) recipients = NULL;
	g_auto(GStrv) pipeline = NULL;

	if (summary == NULL)
		return NULL;
	stages = sc_spool_get_stages (spool, summary->id, error);
	if (stages == NULL)
		return NULL;
	attempts = sc_spool_get_attempts (spool, summary->id, error);
	if (attempts == NULL)
		return NULL;
	recipients = sc_spool_get_recipients (spool, summary->id, error);
	if (recipients == NULL)
		return NULL;

	json_builder_begin_object (builder);
	add_summary_members (builder, summary);

	pipeline = g_strsplit (summary->pipeline, ";", -1);
	json_builder_set_member_name (builder, "pipeline");
	json_builder_begin_array (builder);
	for (guint i = 0; pipeline[i] != NULL; i++)
		json_builder_add_string_value (builder, pipeline[i]);
	json_builder_end_array (builder);

	json_builder_set_member_name (builder, "stages");
	json_builder_begin_array (builder);
	for (guint i = 0; i < stages->len; i++) {
		ScStageRecord *record = stages->pdata[i];
		json_builder_begin_object (builder);
		sc_json_add_string (builder, "stage", record->stage);
		sc_json_add_time (builder, "completed_at", record->completed_at);
		sc_json_add_string (builder, "note", record->note);
		json_builder_set_member_name (builder, "output_size");
		if (record->output_size >= 0)
			json_builder_add_int_value (builder, record->output_size);
		else
			json_builder_add_null_value (builder);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);

	json_builder_set_member_name (builder, "attempts");
	json_builder_begin_array (builder);
	for (guint i = 0; i < attempts->len; i++) {
		ScAttemptRecord *record = attempts->pdata[i];
		json_builder_begin_object (builder);
		sc_json_add_string (builder, "stage", record->stage);
		sc_json_add_string (builder, "outcome", sc_outcome_to_string (record->outcome));
		sc_json_add_string (builder, "error", record->error);
		sc_json_add_string (builder, "mailer", record->mailer);
		json_builder_set_member_name (builder, "cycle");
		json_builder_add_int_value (builder, record->cycle);
		sc_json_add_time (builder, "started_at", record->started_at);
		sc_json_add_time (builder, "finished_at", record->finished_at);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);

	json_builder_set_member_name (builder, "recipients");
	json_builder_begin_array (builder);
	for (guint i = 0; i < recipients->len; i++) {
		ScRecipientRecord *record = recipients->pdata[i];
		json_builder_begin_object (builder);
		sc_json_add_string (builder, "address", record->address);
		sc_json_add_string (builder, "status", record->status);
		json_builder_set_member_name (builder, "code");
		if (record->code > 0)
			json_builder_add_int_value (builder, record->code);
		else
			json_builder_add_null_value (builder);
		sc_json_add_string (builder, "reply", record->reply);
		sc_json_add_string (builder, "mailer", record->mailer);
		sc_json_add_time (builder, "updated_at", record->updated_at);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);
	json_builder_end_object (builder);
	return json_builder_get_root (builder);
}

JsonNode *
sc_status_json_build (const gint64 counts[SC_STATE_LAST])
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	gint64 total = 0;

	json_builder_begin_object (builder);
	for (guint i = 0; i < SC_STATE_LAST; i++) {
		json_builder_set_member_name (builder, sc_message_state_to_string (i));
		json_builder_add_int_value (builder, counts[i]);
		total += counts[i];
	}
	json_builder_set_member_name (builder, "total");
	json_builder_add_int_value (builder, total);
	json_builder_end_object (builder);
	return json_builder_get_root (builder);
}

char *
sc_json_to_string (JsonNode *node, gboolean pretty)
{
	g_autoptr(JsonGenerator) generator = json_generator_new ();
	g_autofree char *text = NULL;

	json_generator_set_pretty (generator, pretty);
	json_generator_set_root (generator, node);
	text = json_generator_to_data (generator, NULL);
	return g_strconcat (text, "\n", NULL);
}
