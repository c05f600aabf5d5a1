/* sc-cli-notify.c — `stagecoach notify-test`: one signed test POST to the
 * admin webhook, built exactly as the daemon's notifier builds its own, and
 * the receiver's answer printed, so an operator can check the URL, the
 * secret and the receiver's verification before anything dies.
 *
 * Like the daemon it follows no redirect, reads at most
 * SC_NOTIFIER_REPLY_MAX bytes of the answer and shows the webhook URL
 * without its user-info and query.
 *
 * It must never touch the spool or its outbox (the test is not queued and
 * not retried): exit 0 on a 2xx answer, 75 (EX_TEMPFAIL) on any other
 * answer or none, 78 when the configuration cannot send at all.
 */
#include "config.h"

#include <stdio.h>
#include <sysexits.h>

#include <json-glib/json-glib.h>

#include "sc-cli.h"
#include "sc-clock.h"
#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-notifier.h"

static GBytes *
test_body (const char *delivery)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(JsonGenerator) generator = json_generator_new ();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *time = sc_time_to_iso8601 (g_get_real_time ());
	g_autofree char *detail =
	    g_strdup_printf ("test notification from stagecoach notify-test on %s", g_get_host_name ());
	gsize length = 0;
	char *text;

	json_builder_begin_object (builder);
	json_builder_set_member_name (builder, "event");
	json_builder_add_string_value (builder, "test");
	json_builder_set_member_name (builder, "time");
	json_builder_add_string_value (builder, time);
	json_builder_set_member_name (builder, "delivery");
	json_builder_add_string_value (builder, delivery);
	json_builder_set_member_name (builder, "detail");
	json_builder_add_string_value (builder, detail);
	json_builder_set_member_name (builder, "message");
	json_builder_add_null_value (builder);
	json_builder_end_object (builder);
	root = json_builder_get_root (builder);
	json_generator_set_root (generator, root);
	text = json_generator_to_data (generator, &length);
	return g_bytes_new_take (text, length);
}

int
sc_cli_notify_test (ScCli *cli, int argc, char **argv)
{
	const GOptionEntry entries[] = {{NULL}};
	g_autoptr(GError) error = NULL;
	g_autoptr(SoupSession) session = NULL;
	g_autoptr(SoupMessage) message = NULL;
	g_autoptr(GBytes) body = NULL;
	g_autoptr(GInputStream) stream = NULL;
	g_autoptr(GBytes) answer = NULL;
	g_autofree char *delivery = NULL;
	g_autofree char *location = NULL;
	ScConfig *config;
	const char *data;
	gsize size = 0;
	guint status;

	if (!sc_cli_parse (cli, "", _("Send a test notification to the admin webhook and show the answer."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if (argc > 1) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("takes no arguments"));
		return sc_cli_fail (cli, error);
	}
	config = sc_cli_get_config (cli);
	if (config == NULL)
		return EX_CONFIG;
	delivery = g_strdup_printf ("t-%08x%08x", g_random_int (), g_random_int ());
	body = test_body (delivery);
	message = sc_notifier_build_message (config, delivery, body, &error);
	if (message == NULL)
		return sc_cli_fail (cli, error);
	session = sc_notifier_new_session (config);
	/* a command, not the daemon: blocking here is fine */
	stream = soup_session_send (session, message, NULL, &error);
	if (stream != NULL)
		answer = sc_notifier_read_reply (stream, &error);
	if (answer == NULL) {
		g_autofree char *reason = sc_cli_terminal_safe (error->message, TRUE);
		g_autofree char *webhook = sc_notifier_redact_url (config->notify_webhook);
		fprintf (stderr, "stagecoach %s: %s: %s\n", cli->command, webhook, reason);
		return EX_TEMPFAIL;
	}
	status = soup_message_get_status (message);
	/* the receiver's words, made safe for the operator's terminal */
	{
		g_autofree char *phrase =
		    sc_cli_terminal_safe (soup_message_get_reason_phrase (message), FALSE);
		printf ("%u %s\n", status, phrase != NULL ? phrase : "");
	}
	data = g_bytes_get_data (answer, &size);
	if (size > 0) {
		/* up to a NUL: the body is shown as text */
		g_autofree char *text = g_strndup (data, size);
		g_autofree char *safe = sc_cli_terminal_safe (text, TRUE);
		fputs (safe, stdout);
		if (*safe == '\0' || safe[strlen (safe) - 1] != '\n')
			putchar ('\n');
	}
	location = sc_notifier_redirect_location (message);
	if (location != NULL) {
		g_autofree char *text =
		    g_strdup_printf (_("the receiver redirects to %s; redirects are not followed"), location);
		g_autofree char *safe = sc_cli_terminal_safe (text, FALSE);
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, safe);
	}
	if (!SOUP_STATUS_IS_SUCCESSFUL (status)) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command,
			 _("the receiver did not accept the notification"));
		return EX_TEMPFAIL;
	}
	return EX_OK;
}
