/* sc-cli.c — plumbing every subcommand shares (see sc-cli.h). */
#include "config.h"

#include "sc-cli.h"

#include <stdio.h>
#include <sysexits.h>

#include "sc-error.h"
#include "sc-i18n.h"

ScConfig *
sc_cli_get_config (ScCli *cli)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;

	if (cli->config != NULL)
		return cli->config;
	path = sc_config_find_path (cli->config_path);
	cli->config = sc_config_load (path, &error);
	if (cli->config == NULL) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command,
			 _("the configuration has errors:"));
		fprintf (stderr, "%s\n", error->message);
	}
	return cli->config;
}

gboolean
sc_cli_open (ScCli *cli, int *out_status)
{
	g_autoptr(GError) error = NULL;

	if (cli->spool != NULL)
		return TRUE;
	if (sc_cli_get_config (cli) == NULL) {
		*out_status = EX_CONFIG;
		return FALSE;
	}
	cli->spool = sc_spool_open (cli->config->spool, cli->config->busy_timeout, &error);
	if (cli->spool == NULL) {
		*out_status = sc_cli_fail (cli, error);
		return FALSE;
	}
	return TRUE;
}

int
sc_cli_fail (ScCli *cli, const GError *error)
{
	fprintf (stderr, "stagecoach %s: %s\n", cli->command, error->message);
	return sc_error_to_exit_code (error);
}

gboolean
sc_cli_parse (ScCli *cli,
	      const char *parameters,
	      const char *summary,
	      const GOptionEntry *entries,
	      int *argc,
	      char ***argv)
{
	g_autoptr(GOptionContext) context = g_option_context_new (parameters);
	g_autoptr(GError) error = NULL;
	g_autofree char *prgname = g_strdup_printf ("stagecoach %s", cli->command);

	g_set_prgname (prgname);
	g_option_context_set_summary (context, summary);
	g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
	g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
	if (!g_option_context_parse (context, argc, argv, &error)) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, error->message);
		return FALSE;
	}
	return TRUE;
}
