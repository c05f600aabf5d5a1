/* sc-main.c — the stagecoach binary: global options and the table of
 * subcommands (as OpenSMTPD's smtpctl).  Every subcommand here must appear
 * in doc/stagecoach.1; a test checks it. */
#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <sysexits.h>

#include "sc-catalog.h"
#include "sc-cli.h"
#include "sc-error.h"
#include "sc-i18n.h"

typedef struct {
	const char *name;
	ScCliFunc func;
	const char *summary; /* translated at print time */
} ScCliCommand;

static const ScCliCommand commands[] = {
    {"run", sc_cli_run, N_("Run the daemon (or --once: process what is due, then exit)")},
    {"inject", sc_cli_inject, N_("Accept a message on standard input; print its queue id")},
    {"sendmail", sc_cli_sendmail, N_("Accept a message the way a sendmail program does")},
    {"status", sc_cli_status, N_("Count messages per state")},
    {"list", sc_cli_list, N_("List messages")},
    {"show", sc_cli_show, N_("Show one message's stages, attempts and recipients")},
    {"retry", sc_cli_retry, N_("Make messages due now in a new cycle")},
    {"hold", sc_cli_hold, N_("Pause messages")},
    {"release", sc_cli_release, N_("Resume held messages")},
    {"delete", sc_cli_delete, N_("Delete messages")},
    {"export", sc_cli_export, N_("Write a message's raw or a stage's output bytes")},
    {"check-config", sc_cli_check_config, N_("Check the configuration and report every problem")},
    {"notify-test", sc_cli_notify_test, N_("Send a test notification to the admin webhook and show the answer")},
    {"spool-copy", sc_cli_spool_copy, N_("Copy a whole spool into a new one, e.g. from SQLite to PostgreSQL")},
    {"admin-url", sc_cli_admin_url, N_("Print the dashboard's login link (it holds a token: keep it private)")},
    {"dkim-record", sc_cli_dkim_record, N_("Print the DNS TXT record that publishes a list's DKIM key")},
};

static void
print_usage (FILE *stream)
{
	fprintf (stream, "%s\n\n", _("Usage: stagecoach [--config FILE] COMMAND [OPTIONS…]"));
	fprintf (stream, "%s\n", _("Commands:"));
	for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
		fprintf (stream, "  %-14s %s\n", commands[i].name, _(commands[i].summary));
	fprintf (stream, "\n%s\n", _("Run “stagecoach COMMAND --help” for a command's options."));
}

/* The environment's locale, and a language asked for with LANGUAGE even
 * where none is generated: glibc ignores LANGUAGE when LC_MESSAGES is
 * "C" (LANG unset, as under systemd, or naming a locale not generated
 * here), but not for C.UTF-8, which glibc always has built in.  The
 * catalogues are UTF-8, so is then the character set.  The build tree's
 * catalogues: $STAGECOACH_LOCALEDIR (sc-catalog.h). */
static void
setup_locale (void)
{
	const char *language = g_getenv ("LANGUAGE");
	const char *messages;

	setlocale (LC_ALL, "");
	messages = setlocale (LC_MESSAGES, NULL);
	if (language != NULL && *language != '\0' && messages != NULL &&
	    (strcmp (messages, "C") == 0 || strcmp (messages, "POSIX") == 0)) {
		const char *ctype = setlocale (LC_CTYPE, NULL);
		if (ctype != NULL && (strcmp (ctype, "C") == 0 || strcmp (ctype, "POSIX") == 0))
			setlocale (LC_CTYPE, "C.UTF-8");
		setlocale (LC_MESSAGES, "C.UTF-8");
	}
	bindtextdomain (GETTEXT_PACKAGE, sc_catalog_localedir ());
	bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
	textdomain (GETTEXT_PACKAGE);
}

/* Takes --config/-c and --verbose/-v from before the command only: after
 * it every argument is the command's, so a recipient spelled like an
 * option can never choose the configuration (issue 7, #15).  A "--"
 * before the command ends the global options too. */
static gboolean
take_global_options (ScCli *cli, int *argc, char **argv)
{
	int i = 1;
	int out = 1;

	for (; i < *argc && argv[i][0] == '-'; i++) {
		const char *arg = argv[i];
		if (strcmp (arg, "--") == 0) {
			i++;
			break;
		}
		if (strcmp (arg, "--config") == 0 || strcmp (arg, "-c") == 0) {
			if (i + 1 >= *argc) {
				fprintf (stderr, "stagecoach: %s\n", _("--config needs a file"));
				return FALSE;
			}
			g_free (cli->config_path);
			cli->config_path = g_strdup (argv[++i]);
		} else if (g_str_has_prefix (arg, "--config=")) {
			g_free (cli->config_path);
			cli->config_path = g_strdup (arg + strlen ("--config="));
		} else if (strcmp (arg, "--verbose") == 0 || strcmp (arg, "-v") == 0) {
			cli->verbose = TRUE;
		} else {
			break; /* --help, --version or a mistake: main() decides */
		}
	}
	while (i < *argc)
		argv[out++] = argv[i++];
	*argc = out;
	argv[out] = NULL;
	return TRUE;
}

int
main (int argc, char **argv)
{
	ScCli cli = {0};
	g_autofree char *program = NULL;
	int status = EX_USAGE;

	setup_locale ();
	/* a peer that hangs up must be an error return, never our death */
	signal (SIGPIPE, SIG_IGN);

	program = g_path_get_basename (argv[0]);
	if (strcmp (program, "sendmail") == 0) {
		/* installed as a sendmail path: the whole line is sendmail's */
		cli.command = "sendmail";
		status = sc_cli_sendmail (&cli, argc, argv);
		goto done;
	}
	if (!take_global_options (&cli, &argc, argv))
		goto done;
	if (cli.verbose)
		g_log_set_debug_enabled (TRUE);
	if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 ||
	    strcmp (argv[1], "help") == 0) {
		print_usage (argc < 2 ? stderr : stdout);
		status = argc < 2 ? EX_USAGE : EX_OK;
		goto done;
	}
	if (strcmp (argv[1], "--version") == 0) {
		status = sc_cli_version ();
		goto done;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (commands); i++) {
		if (strcmp (argv[1], commands[i].name) == 0) {
			cli.command = commands[i].name;
			status = commands[i].func (&cli, argc - 1, argv + 1);
			goto done;
		}
	}
	fprintf (stderr, "stagecoach: %s\n", _("unknown command"));
	print_usage (stderr);

done:
	g_clear_pointer (&cli.spool, sc_spool_close);
	g_clear_pointer (&cli.config, sc_config_unref);
	g_free (cli.config_path);
	return status;
}
