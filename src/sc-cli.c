/* sc-cli.c — plumbing every subcommand shares (see sc-cli.h). */
#include "config.h"

#include "sc-cli.h"

#include <stdio.h>
#include <string.h>
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

static const GOptionEntry *
find_entry (const GOptionEntry *entries, const char *long_name, gsize long_length, char short_name)
{
	for (const GOptionEntry *entry = entries; entry->long_name != NULL; entry++) {
		if (long_name != NULL ? strlen (entry->long_name) == long_length &&
					    strncmp (entry->long_name, long_name, long_length) == 0
				      : entry->short_name == short_name)
			return entry;
	}
	return NULL;
}

static gboolean
takes_value (const GOptionEntry *entry)
{
	return entry != NULL && entry->arg != G_OPTION_ARG_NONE &&
	       (entry->flags & G_OPTION_FLAG_OPTIONAL_ARG) == 0;
}

/* Where the options end in argv[1..]: at "--" (*out_separator) or at the
 * first argument that is neither an option nor an option's value. */
static int
options_end (const GOptionEntry *entries, int argc, char **argv, gboolean *out_separator)
{
	*out_separator = FALSE;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp (arg, "--") == 0) {
			*out_separator = TRUE;
			return i;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			return i;
		if (arg[1] == '-') {
			const char *name = arg + 2;
			if (strchr (name, '=') == NULL &&
			    takes_value (find_entry (entries, name, strlen (name), 0)))
				i++;
			continue;
		}
		for (const char *c = arg + 1; *c != '\0'; c++) {
			if (takes_value (find_entry (entries, NULL, 0, *c))) {
				if (c[1] == '\0')
					i++; /* "-l LIST"; "-lLIST" holds its value */
				break;
			}
		}
	}
	return argc;
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
	g_autofree char **options = NULL;
	gboolean separator = FALSE;
	int end = options_end (entries, *argc, *argv, &separator);
	int option_count = end;
	int out;

	g_set_prgname (prgname);
	g_option_context_set_summary (context, summary);
	g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
	g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
	/* GOption sees only the options: it would otherwise take options from
	 * among the operands (a recipient "--list=x") and keep or drop "--"
	 * depending on what follows it */
	options = g_new0 (char *, end + 1);
	memcpy (options, *argv, end * sizeof (char *));
	if (!g_option_context_parse (context, &option_count, &options, &error)) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, error->message);
		return FALSE;
	}
	/* argv[0], anything GOption left, then the operands, in place */
	out = 0;
	for (int i = 0; i < option_count; i++)
		(*argv)[out++] = options[i];
	for (int i = separator ? end + 1 : end; i < *argc; i++)
		(*argv)[out++] = (*argv)[i];
	(*argv)[out] = NULL;
	*argc = out;
	return TRUE;
}
