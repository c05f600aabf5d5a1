/* sc-cli-query.c — read-only subcommands: status, list, show, export.
 * Their --json forms are a contract for other tools (sc-message-json.c);
 * the readable forms are for people and may change. */
#include "config.h"

#include <stdio.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-cli.h"
#include "sc-clock.h"
#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-message-json.h"
#include "sc-spool-uri.h"

static int
print_json (JsonNode *node)
{
	g_autofree char *text = sc_json_to_string (node, TRUE);
	fputs (text, stdout);
	return fflush (stdout) == 0 ? EX_OK : EX_IOERR;
}

int
sc_cli_status (ScCli *cli, int argc, char **argv)
{
	gboolean json = FALSE;
	g_autofree char *list_id = NULL;
	gint64 counts[SC_STATE_LAST];
	g_autoptr(GError) error = NULL;
	g_autofree char *shown = NULL;
	int status;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL},
	    {"list", 'l', 0, G_OPTION_ARG_STRING, &list_id, N_("Count one list only"), "LIST-ID"},
	    {NULL},
	};

	if (!sc_cli_parse (cli, "", _("Count messages per state."), entries, &argc, &argv))
		return EX_USAGE;
	if (!sc_cli_open (cli, &status))
		return status;
	if (!sc_spool_count_states (cli->spool, list_id, counts, &error))
		return sc_cli_fail (cli, error);
	shown = sc_spool_uri_mask (cli->config->spool);
	if (json) {
		g_autoptr(JsonNode) node = sc_status_json_build (counts);
		json_object_set_string_member (json_node_get_object (node), "backend",
					       sc_spool_backend_name (cli->spool));
		json_object_set_string_member (json_node_get_object (node), "spool", shown);
		return print_json (node);
	}
	/* which spool: with several hosts on one database, and after a move */
	printf ("%-9s %s %s\n", "spool", sc_spool_backend_name (cli->spool), shown);
	for (guint i = 0; i < SC_STATE_LAST; i++)
		printf ("%-9s %" G_GINT64_FORMAT "\n", sc_message_state_to_string (i), counts[i]);
	return EX_OK;
}

int
sc_cli_list (ScCli *cli, int argc, char **argv)
{
	gboolean json = FALSE;
	g_autofree char *state = NULL;
	g_autofree char *list_id = NULL;
	int limit = 100;
	ScMessageSearch filter = {0};
	g_autoptr(GPtrArray) summaries = NULL;
	g_autoptr(GError) error = NULL;
	int status;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL},
	    {"state", 's', 0, G_OPTION_ARG_STRING, &state,
	     N_("Only messages in this state (queued, active, deferred, held, done, dead)"), "STATE"},
	    {"list", 'l', 0, G_OPTION_ARG_STRING, &list_id, N_("Only messages of this list"), "LIST-ID"},
	    {"limit", 'n', 0, G_OPTION_ARG_INT, &limit, N_("At most this many, newest first (0: all; default 100)"), "N"},
	    {NULL},
	};

	if (!sc_cli_parse (cli, "", _("List messages, newest first."), entries, &argc, &argv))
		return EX_USAGE;
	if (state != NULL) {
		if (!sc_message_state_from_string (state, &filter.state)) {
			g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
				     _("unknown state “%s”"), state);
			return sc_cli_fail (cli, error);
		}
		filter.has_state = TRUE;
	}
	filter.list_id = list_id;
	filter.limit = limit > 0 ? (guint) limit : 0;
	if (!sc_cli_open (cli, &status))
		return status;
	summaries = sc_spool_search (cli->spool, &filter, &error);
	if (summaries == NULL)
		return sc_cli_fail (cli, error);
	if (json) {
		g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
		g_autoptr(JsonArray) array = json_array_new ();
		for (guint i = 0; i < summaries->len; i++)
			json_array_add_element (array, sc_message_summary_to_json (summaries->pdata[i]));
		json_node_set_array (node, array);
		return print_json (node);
	}
	for (guint i = 0; i < summaries->len; i++) {
		ScMessageSummary *summary = summaries->pdata[i];
		g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
		printf ("%s  %-8s  %-24s  %s\n",
			summary->queue_id,
			sc_message_state_to_string (summary->state),
			sc_cli_safe (keep, summary->list_id),
			sc_cli_safe (keep, summary->subject != NULL ? summary->subject : ""));
		if (summary->last_error != NULL && summary->state != SC_STATE_DONE)
			printf ("    %s\n", sc_cli_safe (keep, summary->last_error));
	}
	return EX_OK;
}

/* The member as text safe for a terminal (kept in @keep), or NULL: every
 * string of a message may come from its sender or a remote server. */
static const char *
member_string (GPtrArray *keep, JsonObject *object, const char *name)
{
	JsonNode *node = json_object_get_member (object, name);
	return node != NULL && !json_node_is_null (node) ? sc_cli_safe (keep, json_node_get_string (node))
							 : NULL;
}

static void
print_readable (JsonObject *message)
{
	JsonArray *stages = json_object_get_array_member (message, "stages");
	JsonArray *attempts = json_object_get_array_member (message, "attempts");
	JsonArray *recipients = json_object_get_array_member (message, "recipients");
	JsonArray *pipeline = json_object_get_array_member (message, "pipeline");
	g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
	const char *fields[][2] = {
	    {"id", N_("Queue id")},
	    {"state", N_("State")},
	    {"list", N_("List")},
	    {"sender", N_("Sender")},
	    {"subject", N_("Subject")},
	    {"message_id", N_("Message-ID")},
	    {"created_at", N_("Accepted")},
	    {"next_attempt_at", N_("Next attempt")},
	    {"hold_reason", N_("Held because")},
	    {"last_error", N_("Last error")},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (fields); i++) {
		const char *value = member_string (keep, message, fields[i][0]);
		if (value != NULL)
			printf ("%-14s %s\n", _(fields[i][1]), value);
	}
	printf ("%-14s", _("Pipeline"));
	for (guint i = 0; i < json_array_get_length (pipeline); i++)
		printf (" %s", sc_cli_safe (keep, json_array_get_string_element (pipeline, i)));
	printf ("\n\n%s\n", _("Stages completed:"));
	for (guint i = 0; i < json_array_get_length (stages); i++) {
		JsonObject *stage = json_array_get_object_element (stages, i);
		const char *note = member_string (keep, stage, "note");
		printf ("  %-12s %s%s%s\n", member_string (keep, stage, "stage"),
			member_string (keep, stage, "completed_at"), note != NULL ? "  " : "",
			note != NULL ? note : "");
	}
	printf ("\n%s\n", _("Attempts:"));
	for (guint i = 0; i < json_array_get_length (attempts); i++) {
		JsonObject *attempt = json_array_get_object_element (attempts, i);
		const char *error = member_string (keep, attempt, "error");
		printf ("  %s  %-12s %-9s %s\n", member_string (keep, attempt, "finished_at"),
			member_string (keep, attempt, "stage"), member_string (keep, attempt, "outcome"),
			error != NULL ? error : "");
	}
	printf ("\n%s\n", _("Recipients:"));
	for (guint i = 0; i < json_array_get_length (recipients); i++) {
		JsonObject *recipient = json_array_get_object_element (recipients, i);
		const char *reply = member_string (keep, recipient, "reply");
		printf ("  %-9s %s%s%s\n", member_string (keep, recipient, "status"),
			member_string (keep, recipient, "address"), reply != NULL ? "  " : "",
			reply != NULL ? reply : "");
	}
}

int
sc_cli_show (ScCli *cli, int argc, char **argv)
{
	gboolean json = FALSE;
	g_autoptr(JsonNode) node = NULL;
	g_autoptr(GError) error = NULL;
	int status;
	const GOptionEntry entries[] = {
	    {"json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL},
	    {NULL},
	};

	if (!sc_cli_parse (cli, _("QUEUE-ID"), _("Show one message's history."), entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("give one queue id"));
		return sc_cli_fail (cli, error);
	}
	if (!sc_cli_open (cli, &status))
		return status;
	node = sc_message_json_build (cli->spool, argv[1], &error);
	if (node == NULL)
		return sc_cli_fail (cli, error);
	if (json)
		return print_json (node);
	print_readable (json_node_get_object (node));
	return EX_OK;
}

int
sc_cli_export (ScCli *cli, int argc, char **argv)
{
	g_autofree char *stage = NULL;
	g_autoptr(ScMessageSummary) summary = NULL;
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) error = NULL;
	const char *data;
	gsize size = 0;
	int status;
	const GOptionEntry entries[] = {
	    {"stage", 's', 0, G_OPTION_ARG_STRING, &stage, N_("That stage's output instead of the message as injected"), "STAGE"},
	    {NULL},
	};

	if (!sc_cli_parse (cli, _("QUEUE-ID"), _("Write a message's bytes to standard output."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("give one queue id"));
		return sc_cli_fail (cli, error);
	}
	if (!sc_cli_open (cli, &status))
		return status;
	summary = sc_spool_get_summary (cli->spool, argv[1], &error);
	if (summary == NULL)
		return sc_cli_fail (cli, error);
	bytes = stage != NULL ? sc_spool_get_stage_output (cli->spool, summary->id, stage, &error)
			      : sc_spool_get_raw (cli->spool, summary->id, &error);
	if (bytes == NULL)
		return sc_cli_fail (cli, error);
	data = g_bytes_get_data (bytes, &size);
	if (size > 0 && fwrite (data, 1, size, stdout) != size)
		return EX_IOERR;
	return fflush (stdout) == 0 ? EX_OK : EX_IOERR;
}
