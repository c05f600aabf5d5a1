/* sc-cli.h — what every subcommand gets: parsed global options and lazy
 * access to the configuration and the spool.  Subcommands return a
 * sysexits.h code; they print their own output and errors. */
#pragma once

#include "sc-config.h"
#include "sc-message-headers.h"
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

/* sc_cli_parse without printing: the error (G_OPTION_ERROR) is returned.
 * Without @help, --help/-h are unknown options and the program name is
 * left alone (the daemon parses hand-off command lines on a thread). */
gboolean sc_cli_parse_options (const char *command,
			       const char *parameters,
			       const char *summary,
			       const GOptionEntry *entries,
			       gboolean help,
			       int *argc,
			       char ***argv,
			       GError **error);

/* inject's and sendmail's command line: the same code for the commands
 * and for the daemon's hand-off socket (sc-handoff-server.c), so both
 * accept and refuse alike. */
typedef struct {
	char *command;         /* "inject" or "sendmail" */
	char *list_id;         /* (nullable) --list */
	char *sender;          /* (nullable) --from / -f */
	GPtrArray *recipients; /* (element-type utf8) from the command line */
	gboolean from_headers; /* sendmail -t */
	gboolean dot_ends;     /* sendmail without -i */
} ScIngressArgs;

void sc_ingress_args_free (ScIngressArgs *args);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScIngressArgs, sc_ingress_args_free)

/* Parses @argv (argv[0]: the command's name) of @command ("inject" or
 * "sendmail"); @help: whether --help may print and exit (the command
 * line, not the daemon).  NULL with SC_INPUT_ERROR_USAGE. */
ScIngressArgs *sc_ingress_args_parse (const char *command, int argc, char **argv, gboolean help,
				      GError **error);

/* What a message and its command line amount to: sendmail's "." line,
 * -t and Bcc applied; checked and routed later by sc_ingress_prepare(). */
typedef struct {
	char *list_id;             /* (nullable) named on the command line */
	char *sender;              /* "" or "<>" for the null reverse-path */
	GPtrArray *recipients;     /* NULL-terminated (for ScSubmission) */
	GBytes *raw;
} ScIngressInput;

void sc_ingress_input_free (ScIngressInput *input);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScIngressInput, sc_ingress_input_free)

/* @message (the bytes on standard input, within max-message-size) with
 * @args.  NULL with SC_INPUT_ERROR_USAGE (no recipients) or, for -t, the
 * error of a message whose headers do not parse. */
ScIngressInput *sc_ingress_input_new (const ScConfig *config, const ScIngressArgs *args,
				      GBytes *message, GError **error);

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
int sc_cli_spool_copy (ScCli *cli, int argc, char **argv);
int sc_cli_dkim_record (ScCli *cli, int argc, char **argv);
/* --version: this build and the library versions it runs with. */
int sc_cli_version (void);

G_END_DECLS
