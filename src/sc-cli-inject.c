/* sc-cli-inject.c — ingress from the command line: `inject` and `sendmail`.
 *
 * Says yes (prints the queue id, exits 0) only after the spool's COMMIT
 * returned: from then on the message is ours (Postfix postdrop.c, "before
 * reporting success").  Everything wrong with the input is refused before
 * anything is stored: empty, not a message, too big, bad addresses, no
 * recipients, unknown list.  A locked or full spool is a temporary failure
 * (75): the caller keeps the message and tries again.
 *
 * While a daemon runs on the spool the message goes to it over the local
 * hand-off socket (sc-handoff-client.h) and the daemon answers after its
 * group commit; the command line is parsed and checked by the code below
 * on both sides, so the answers are the same.
 */
#include "config.h"

#include <gio/gunixinputstream.h>
#include <stdio.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-cli.h"
#include "sc-duration.h"
#include "sc-error.h"
#include "sc-handoff-client.h"
#include "sc-i18n.h"
#include "sc-ingress.h"
#include "sc-message-headers.h"

static GBytes *
read_stdin (guint64 limit, GError **error)
{
	g_autoptr(GInputStream) input = g_unix_input_stream_new (STDIN_FILENO, FALSE);
	g_autoptr(GByteArray) data = g_byte_array_new ();
	guint8 buffer[65536];
	gboolean too_big = FALSE;

	for (;;) {
		gssize n = g_input_stream_read (input, buffer, sizeof buffer, NULL, error);
		if (n < 0)
			return NULL;
		if (n == 0)
			break;
		if (too_big)
			continue; /* drain: the writer must not die of SIGPIPE */
		g_byte_array_append (data, buffer, n);
		if (data->len > limit) {
			too_big = TRUE;
			g_byte_array_set_size (data, 0);
		}
	}
	if (too_big) {
		sc_ingress_set_too_big (error, limit);
		return NULL;
	}
	return g_byte_array_free_to_bytes (g_steal_pointer (&data));
}

/* sendmail without -i: a line holding only "." ends the message. */
static GBytes *
cut_at_dot_line (GBytes *raw)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (raw, &size);
	gsize line_start = 0;

	while (line_start < size) {
		const char *newline = memchr (data + line_start, '\n', size - line_start);
		gsize line_end = newline != NULL ? (gsize) (newline - data) : size;
		gsize length = line_end - line_start;
		if ((length == 1 && data[line_start] == '.') ||
		    (length == 2 && data[line_start] == '.' && data[line_start + 1] == '\r'))
			return g_bytes_new_from_bytes (raw, 0, line_start);
		line_start = line_end + 1;
	}
	return g_bytes_ref (raw);
}

void
sc_ingress_args_free (ScIngressArgs *args)
{
	if (args == NULL)
		return;
	g_free (args->command);
	g_free (args->list_id);
	g_free (args->sender);
	g_ptr_array_unref (args->recipients);
	g_free (args);
}

void
sc_ingress_input_free (ScIngressInput *input)
{
	if (input == NULL)
		return;
	g_free (input->list_id);
	g_free (input->sender);
	g_ptr_array_unref (input->recipients);
	g_clear_pointer (&input->raw, g_bytes_unref);
	g_free (input);
}

static void
set_string (char **target, const char *value)
{
	g_free (*target);
	*target = g_strdup (value);
}

static gboolean
parse_inject (ScIngressArgs *args, int argc, char **argv, gboolean help, GError **error)
{
	g_autoptr(GError) local_error = NULL;
	const GOptionEntry entries[] = {
	    {"list", 'l', 0, G_OPTION_ARG_STRING, &args->list_id, N_("The list the message is for"), "LIST-ID"},
	    {"from", 'f', 0, G_OPTION_ARG_STRING, &args->sender, N_("Envelope sender (default: empty)"), "ADDRESS"},
	    {NULL},
	};

	if (!sc_cli_parse_options ("inject", _("RECIPIENT… < MESSAGE"),
				   _("Accept a message on standard input."), entries, help, &argc,
				   &argv, &local_error)) {
		g_set_error_literal (error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, local_error->message);
		return FALSE;
	}
	if (args->list_id == NULL) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("--list is required"));
		return FALSE;
	}
	for (int i = 1; i < argc; i++)
		g_ptr_array_add (args->recipients, g_strdup (argv[i]));
	return TRUE;
}

/* sendmail's flags, parsed by hand: -oi and -fADDR are not GOption's shape. */
static gboolean
parse_sendmail (ScIngressArgs *args, int argc, char **argv, GError **error)
{
	gboolean options_done = FALSE;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (options_done || arg[0] != '-') {
			/* options end at the first recipient, as with Postfix's sendmail */
			options_done = TRUE;
			g_ptr_array_add (args->recipients, g_strdup (arg));
		} else if (strcmp (arg, "--") == 0) {
			options_done = TRUE;
		} else if (strcmp (arg, "-t") == 0) {
			args->from_headers = TRUE;
		} else if (strcmp (arg, "-i") == 0 || strcmp (arg, "-oi") == 0) {
			args->dot_ends = FALSE;
		} else if (strcmp (arg, "--list") == 0 || strcmp (arg, "-f") == 0 ||
			   strcmp (arg, "-F") == 0 || strcmp (arg, "-B") == 0 ||
			   strcmp (arg, "-N") == 0) {
			if (i + 1 >= argc) {
				g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
					     _("%s needs a value"), arg);
				return FALSE;
			}
			if (strcmp (arg, "--list") == 0)
				set_string (&args->list_id, argv[++i]);
			else if (strcmp (arg, "-f") == 0)
				set_string (&args->sender, argv[++i]);
			else
				i++; /* -F name, -B body type, -N dsn: nothing to do here */
		} else if (g_str_has_prefix (arg, "--list=")) {
			set_string (&args->list_id, arg + strlen ("--list="));
		} else if (g_str_has_prefix (arg, "-f")) {
			set_string (&args->sender, arg + 2);
		} else if (g_str_has_prefix (arg, "-F") || g_str_has_prefix (arg, "-o") ||
			   g_str_has_prefix (arg, "-B") || g_str_has_prefix (arg, "-N") ||
			   strcmp (arg, "-bm") == 0 || strcmp (arg, "-em") == 0 ||
			   strcmp (arg, "-ep") == 0 || strcmp (arg, "-eq") == 0 ||
			   strcmp (arg, "-v") == 0 || strcmp (arg, "-U") == 0) {
			/* accepted for compatibility; they change nothing here */
		} else {
			g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
				     _("unsupported sendmail option %s"), arg);
			return FALSE;
		}
	}
	return TRUE;
}

ScIngressArgs *
sc_ingress_args_parse (const char *command, int argc, char **argv, gboolean help, GError **error)
{
	g_autoptr(ScIngressArgs) args = g_new0 (ScIngressArgs, 1);
	gboolean ok;

	args->command = g_strdup (command);
	args->recipients = g_ptr_array_new_with_free_func (g_free);
	args->dot_ends = TRUE;
	if (strcmp (command, "sendmail") == 0)
		ok = parse_sendmail (args, argc, argv, error);
	else
		ok = parse_inject (args, argc, argv, help, error);
	return ok ? g_steal_pointer (&args) : NULL;
}

ScIngressInput *
sc_ingress_input_new (const ScConfig *config, const ScIngressArgs *args, GBytes *message,
		      GError **error)
{
	g_autoptr(ScIngressInput) input = g_new0 (ScIngressInput, 1);
	gboolean sendmail = strcmp (args->command, "sendmail") == 0;

	input->recipients = g_ptr_array_new_with_free_func (g_free);
	for (guint i = 0; i < args->recipients->len; i++)
		g_ptr_array_add (input->recipients, g_strdup (args->recipients->pdata[i]));
	input->raw = sendmail && args->dot_ends ? cut_at_dot_line (message) : g_bytes_ref (message);
	if (sendmail && args->from_headers) {
		GBytes *without = sc_message_trim_leading (input->raw);
		g_bytes_unref (input->raw);
		input->raw = without;
	}
	if (sendmail && args->from_headers) {
		const char *fields[] = {"To", "Cc", "Bcc"};
		g_autoptr(ScMessageHeaders) headers = sc_message_headers_parse (input->raw, error);

		if (headers == NULL)
			return NULL;
		for (gsize f = 0; f < G_N_ELEMENTS (fields); f++) {
			g_autoptr(GPtrArray) found = sc_message_headers_get_addresses (headers, fields[f]);
			for (guint i = 0; i < found->len; i++)
				g_ptr_array_add (input->recipients, g_strdup (found->pdata[i]));
		}
		if (sc_message_headers_get (headers, "Bcc") != NULL) {
			g_bytes_unref (input->raw);
			input->raw = sc_message_headers_remove (headers, "Bcc");
		}
	}
	if (input->recipients->len == 0) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("no recipients"));
		return NULL;
	}
	/* inject names its list; sendmail may, else the ingress rule chooses
	 * (List-Id, bounces=, default-list) as for SMTP.  The message, the
	 * addresses and the list are checked once, by sc_ingress_prepare(). */
	input->list_id = g_strdup (args->list_id);
	input->sender = g_strdup (args->sender != NULL ? args->sender : "");
	g_ptr_array_add (input->recipients, NULL);
	return g_steal_pointer (&input);
}

/* No daemon took the message: write the spool ourselves, with the
 * acceptor's checks and deduplication (sc-ingress.h). */
static int
store_directly (ScCli *cli, ScIngressInput *input)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ScPrepared) prepared = NULL;
	g_autoptr(ScAccepted) accepted = NULL;
	ScSubmission submission = {
	    .door = "local",
	    .list_id = input->list_id,
	    .sender = input->sender,
	    .recipients = (const char *const *) input->recipients->pdata,
	    .raw = input->raw,
	};
	int status;

	prepared = sc_ingress_prepare (cli->config, &submission, &error);
	if (prepared == NULL)
		return sc_cli_fail (cli, error);
	if (!sc_cli_open (cli, &status))
		return status;
	if (!sc_ingress_store (cli->spool, &prepared, 1, cli->config->ingress.dedupe_window,
			       g_get_real_time (), NULL, &accepted, &error))
		return sc_cli_fail (cli, error);
	/* sendmail prints nothing on success; list software may treat output as an
	 * error.  A resend already accepted within dedupe-window (nothing new
	 * stored) gets the queue id the earlier one went to. */
	if (strcmp (cli->command, "sendmail") != 0 &&
	    (accepted->queue_id != NULL || accepted->duplicate_of != NULL))
		printf ("%s\n", accepted->queue_id != NULL ? accepted->queue_id : accepted->duplicate_of);
	if (fflush (stdout) != 0)
		return EX_IOERR; /* committed, but the caller cannot know: it retries, dedupe catches it */
	if (accepted->queue_id != NULL)
		sc_spool_wake_runners (cli->spool);
	return EX_OK;
}

/* A daemon on the spool with this very configuration takes the message
 * (SC_HANDOFF_NO_DAEMON: none did, standard input is untouched). */
static int
try_handoff (ScCli *cli, int argc, char **argv)
{
	g_autofree char *text = NULL;
	gsize length = 0;

	if (cli->config->path != NULL &&
	    !g_file_get_contents (cli->config->path, &text, &length, NULL))
		return SC_HANDOFF_NO_DAEMON;
	return sc_handoff_client_run (cli->config->state_dir, sc_handoff_hash (text, length), cli->command,
				      argc - 1, argv + 1, STDIN_FILENO);
}

/* inject and sendmail: parse, find the configuration, hand off or check
 * and store. */
static int
run_ingress (ScCli *cli, int argc, char **argv)
{
	g_autoptr(ScIngressArgs) args = NULL;
	g_autoptr(ScIngressInput) input = NULL;
	g_autoptr(GBytes) message = NULL;
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) saved = g_strdupv (argv); /* GOption reorders argv */
	int status;

	args = sc_ingress_args_parse (cli->command, argc, argv, TRUE, &error);
	if (args == NULL)
		return sc_cli_fail (cli, error);
	if (sc_cli_get_ingress_config (cli, args->list_id, &status) == NULL)
		return status;
	status = try_handoff (cli, argc, saved);
	if (status != SC_HANDOFF_NO_DAEMON)
		return status;
	message = read_stdin (cli->config->max_message_size, &error);
	if (message == NULL)
		return sc_cli_fail (cli, error);
	input = sc_ingress_input_new (cli->config, args, message, &error);
	if (input == NULL)
		return sc_cli_fail (cli, error);
	return store_directly (cli, input);
}

int
sc_cli_inject (ScCli *cli, int argc, char **argv)
{
	return run_ingress (cli, argc, argv);
}

int
sc_cli_sendmail (ScCli *cli, int argc, char **argv)
{
	return run_ingress (cli, argc, argv);
}
