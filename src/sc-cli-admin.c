/* sc-cli-admin.c — operator actions from the command line: retry, hold,
 * release, delete.  Each is audited with the actor "local" and the Unix
 * user, and wakes the runners so a retried message moves at once. */
#include "config.h"

#include <stdio.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-cli.h"
#include "sc-error.h"
#include "sc-i18n.h"

static void
fill_audit (ScAuditContext *audit, char **out_actor)
{
	*out_actor = g_strdup_printf ("local:%s", g_get_user_name ());
	audit->actor = *out_actor;
	audit->remote = NULL;
	audit->now = g_get_real_time ();
}

int
sc_cli_retry (ScCli *cli, int argc, char **argv)
{
	g_autofree char *from_stage = NULL;
	g_autofree char *state_text = NULL;
	g_autofree char *list_id = NULL;
	g_autofree char *actor = NULL;
	g_autoptr(GError) error = NULL;
	ScAuditContext audit;
	int status;
	int failures = 0;
	const GOptionEntry entries[] = {
	    {"from-stage", 0, 0, G_OPTION_ARG_STRING, &from_stage,
	     N_("Forget this stage's and later stages' records first"), "STAGE"},
	    {"state", 's', 0, G_OPTION_ARG_STRING, &state_text,
	     N_("Retry every message in this state (dead or deferred)"), "STATE"},
	    {"list", 'l', 0, G_OPTION_ARG_STRING, &list_id, N_("With --state: only this list"), "LIST-ID"},
	    {NULL},
	};

	if (!sc_cli_parse (cli, _("[QUEUE-ID…]"), _("Make messages due now in a new cycle."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if ((state_text == NULL) == (argc < 2) || (state_text != NULL && from_stage != NULL) ||
	    (list_id != NULL && state_text == NULL)) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("give queue ids (optionally with --from-stage), or --state dead|deferred [--list LIST-ID]"));
		return sc_cli_fail (cli, error);
	}
	if (!sc_cli_open (cli, &status))
		return status;
	fill_audit (&audit, &actor);
	if (state_text != NULL) {
		ScMessageState state;
		guint count = 0;
		if (!sc_message_state_from_string (state_text, &state) ||
		    !sc_message_state_allows (state, SC_ACTION_RETRY_MATCHING)) {
			g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
				     _("--state takes dead or deferred"));
			return sc_cli_fail (cli, error);
		}
		if (!sc_spool_retry_matching (cli->spool, state, list_id, &audit, &count, &error))
			return sc_cli_fail (cli, error);
		printf (g_dngettext (GETTEXT_PACKAGE, "%u message will be retried\n",
				     "%u messages will be retried\n", count), count);
	} else {
		for (int i = 1; i < argc; i++) {
			g_autoptr(GError) error_local = NULL;
			if (!sc_spool_retry (cli->spool, argv[i], from_stage, &audit, &error_local)) {
				status = sc_cli_fail (cli, error_local);
				failures++;
				continue;
			}
			printf ("%s\n", argv[i]);
		}
	}
	sc_spool_wake_runners (cli->spool);
	return failures > 0 ? status : EX_OK;
}

typedef gboolean (*ActionFunc) (ScSpool *spool, const char *queue_id, const char *reason,
				const ScAuditContext *audit, GError **error);

static gboolean
do_hold (ScSpool *spool, const char *queue_id, const char *reason, const ScAuditContext *audit, GError **error)
{
	return sc_spool_hold (spool, queue_id, reason, audit, error);
}

static gboolean
do_release (ScSpool *spool, const char *queue_id, const char *reason, const ScAuditContext *audit, GError **error)
{
	return sc_spool_release (spool, queue_id, audit, error);
}

static gboolean
do_delete (ScSpool *spool, const char *queue_id, const char *reason, const ScAuditContext *audit, GError **error)
{
	return sc_spool_delete (spool, queue_id, audit, error);
}

static int
act_on_each (ScCli *cli, int argc, char **argv, ActionFunc action, const char *summary, gboolean with_reason)
{
	g_autofree char *reason = NULL;
	g_autofree char *actor = NULL;
	g_autoptr(GError) error = NULL;
	ScAuditContext audit;
	int status = EX_OK;
	int result = EX_OK;
	const GOptionEntry entries_reason[] = {
	    {"reason", 'r', 0, G_OPTION_ARG_STRING, &reason, N_("Why (kept with the message and the audit log)"), "TEXT"},
	    {NULL},
	};
	const GOptionEntry entries_none[] = {{NULL}};

	if (!sc_cli_parse (cli, _("QUEUE-ID…"), summary, with_reason ? entries_reason : entries_none,
			   &argc, &argv))
		return EX_USAGE;
	if (argc < 2) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("give at least one queue id"));
		return sc_cli_fail (cli, error);
	}
	if (!sc_cli_open (cli, &status))
		return status;
	fill_audit (&audit, &actor);
	for (int i = 1; i < argc; i++) {
		g_autoptr(GError) error_local = NULL;
		if (!action (cli->spool, argv[i], reason, &audit, &error_local)) {
			result = sc_cli_fail (cli, error_local);
			continue;
		}
		printf ("%s\n", argv[i]);
	}
	sc_spool_wake_runners (cli->spool);
	return result;
}

int
sc_cli_hold (ScCli *cli, int argc, char **argv)
{
	return act_on_each (cli, argc, argv, do_hold, _("Pause messages until released."), TRUE);
}

int
sc_cli_release (ScCli *cli, int argc, char **argv)
{
	return act_on_each (cli, argc, argv, do_release, _("Make held messages due again."), FALSE);
}

int
sc_cli_delete (ScCli *cli, int argc, char **argv)
{
	return act_on_each (cli, argc, argv, do_delete, _("Delete messages and their history."), FALSE);
}
