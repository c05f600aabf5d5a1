/* sc-cli.h — what every subcommand gets: parsed global options and lazy
 * access to the configuration and the spool.  Subcommands return a
 * sysexits.h code; they print their own output and errors. */
#pragma once

#include "sc-config.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct {
	const char *command;     /* "inject" */
	char *config_path;       /* (nullable) --config */
	ScConfig *config;        /* (nullable) loaded on first use */
	ScSpool *spool;          /* (nullable) opened on first use */
	gboolean verbose;
} ScCli;

typedef int (*ScCliFunc) (ScCli *cli, int argc, char **argv);

/* Loads the configuration once; prints the problems and returns NULL. */
ScConfig *sc_cli_get_config (ScCli *cli);
/* The configuration for inject and sendmail (@list_id: nullable, the
 * list named on the command line).  A file that fails to load, or lacks
 * the list, and has just changed is read again until it settles (a
 * rewrite in progress).  On failure prints why and sets @out_status: 78
 * when the ingress settings themselves are wrong (spool, busy-timeout,
 * max-message-size, the list's section; default-list for sendmail), 75
 * otherwise — a file that does not parse as a whole, or errors elsewhere,
 * must not make list software drop the message.  A settled configuration
 * without the list is returned; the caller reports the unknown list. */
ScConfig *sc_cli_get_ingress_config (ScCli *cli, const char *list_id, int *out_status);
/* Loads the configuration and opens its spool (cli->config, cli->spool);
 * on failure prints why and sets @out_status to the exit code. */
gboolean sc_cli_open (ScCli *cli, int *out_status);
/* @text (nullable) made safe to print on a terminal: C0 controls but tab
 * (and newline with @keep_newlines; "\r\n" then becomes "\n"), DEL, C1
 * controls and bidirectional overrides are written as \xHH or \uHHHH,
 * invalid UTF-8 bytes as \xHH.  For every message-derived or remote text
 * in human output; JSON output is escaped by JSON instead. (transfer full) */
char *sc_cli_terminal_safe (const char *text, gboolean keep_newlines);
/* sc_cli_terminal_safe (@text, FALSE), kept in @keep (a GPtrArray freeing
 * with g_free) so a printf can take several. */
const char *sc_cli_safe (GPtrArray *keep, const char *text);
/* Prints "stagecoach COMMAND: message" (terminal-safe) and returns the
 * error's exit code. */
int sc_cli_fail (ScCli *cli, const GError *error);
/* Parses @entries (a subcommand's options), which end at "--" and at the
 * first operand; leaves argv[0] and the operands.  On error prints why, FALSE. */
gboolean sc_cli_parse (ScCli *cli,
		       const char *parameters,
		       const char *summary,
		       const GOptionEntry *entries,
		       int *argc,
		       char ***argv);

int sc_cli_inject (ScCli *cli, int argc, char **argv);
int sc_cli_sendmail (ScCli *cli, int argc, char **argv);
int sc_cli_status (ScCli *cli, int argc, char **argv);
int sc_cli_list (ScCli *cli, int argc, char **argv);
int sc_cli_show (ScCli *cli, int argc, char **argv);
int sc_cli_export (ScCli *cli, int argc, char **argv);
int sc_cli_retry (ScCli *cli, int argc, char **argv);
int sc_cli_hold (ScCli *cli, int argc, char **argv);
int sc_cli_release (ScCli *cli, int argc, char **argv);
int sc_cli_delete (ScCli *cli, int argc, char **argv);
int sc_cli_run (ScCli *cli, int argc, char **argv);
int sc_cli_check_config (ScCli *cli, int argc, char **argv);
int sc_cli_notify_test (ScCli *cli, int argc, char **argv);
int sc_cli_admin_url (ScCli *cli, int argc, char **argv);

G_END_DECLS
