/* sc-cli-inject.c — ingress from the command line: `inject` and `sendmail`.
 *
 * Says yes (prints the queue id, exits 0) only after the spool's COMMIT
 * returned: from then on the message is ours (Postfix postdrop.c, "before
 * reporting success").  Everything wrong with the input is refused before
 * anything is stored: empty, not a message, too big, bad addresses, no
 * recipients, unknown list.  A locked or full spool is a temporary failure
 * (75): the caller keeps the message and tries again.
 */
#include "config.h"

#include <gio/gunixinputstream.h>
#include <stdio.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-cli.h"
#include "sc-duration.h"
#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-message-headers.h"
#include "sc-wake.h"

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
		g_autofree char *size = g_format_size_full (limit, G_FORMAT_SIZE_IEC_UNITS);
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
			     _("the message is larger than max-message-size (%s)"), size);
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

static char *
make_message_id (void)
{
	g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
	g_autofree char *stamp = g_date_time_format (now, "%Y%m%d%H%M%S");
	char host[256] = "localhost";

	if (gethostname (host, sizeof host - 1) != 0 || strchr (host, '.') == NULL)
		g_strlcat (host, ".stagecoach.invalid", sizeof host);
	return g_strdup_printf ("%s.%08x%08x@%s", stamp, g_random_int (), g_random_int (), host);
}

/* The shared tail of inject and sendmail: check, store, say yes. */
static int
accept_message (ScCli *cli,
		const char *list_id,
		const char *sender,
		GPtrArray *recipients,
		GBytes *raw,
		ScMessageHeaders *headers)
{
	const ScListConfig *list;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) stored = NULL;
	g_autofree char *subject = NULL;
	g_autofree char *message_id = NULL;
	g_autofree char *queue_id = NULL;
	const char *message_id_raw;
	int status;

	if (strcmp (sender, "<>") == 0)
		sender = ""; /* the null reverse-path, as sendmail -f '<>' */
	if (!sc_address_validate (sender, TRUE, &error))
		return sc_cli_fail (cli, error);
	if (recipients->len == 0) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("no recipients"));
		return sc_cli_fail (cli, error);
	}
	for (guint i = 0; i < recipients->len; i++) {
		if (!sc_address_validate (recipients->pdata[i], FALSE, &error))
			return sc_cli_fail (cli, error);
	}
	list = sc_config_get_list (cli->config, list_id);
	if (list == NULL) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("unknown list “%s” (no [list:%s] in the configuration)"),
			     list_id, list_id);
		return sc_cli_fail (cli, error);
	}
	subject = sc_message_headers_get_decoded (headers, "Subject");
	message_id_raw = sc_message_headers_get (headers, "Message-ID");
	if (message_id_raw != NULL) {
		message_id = g_strstrip (g_utf8_make_valid (message_id_raw, -1));
		stored = g_bytes_ref (raw);
	} else {
		/* RFC 5322 says SHOULD; every archive and dedup needs one. */
		g_autofree char *generated = make_message_id ();
		message_id = g_strdup_printf ("<%s>", generated);
		stored = sc_message_headers_add_message_id (headers, generated);
	}
	if (!sc_cli_open (cli, &status))
		return status;
	g_ptr_array_add (recipients, NULL);
	{
		ScNewMessage message = {
		    .list_id = list->id,
		    .sender = sender,
		    .recipients = (const char *const *) recipients->pdata,
		    .pipeline = list->pipeline_text,
		    .subject = subject,
		    .message_id = message_id,
		    .raw = stored,
		    .now = g_get_real_time (),
		};
		queue_id = sc_spool_inject (cli->spool, &message, &error);
	}
	g_ptr_array_remove_index (recipients, recipients->len - 1);
	if (queue_id == NULL)
		return sc_cli_fail (cli, error);
	/* sendmail prints nothing on success; list software may treat output as an error */
	if (strcmp (cli->command, "sendmail") != 0)
		printf ("%s\n", queue_id);
	if (fflush (stdout) != 0)
		return EX_IOERR; /* committed, but the caller cannot know: it retries, we dedup nothing */
	sc_wake_notify (cli->config->spool);
	return EX_OK;
}

int
sc_cli_inject (ScCli *cli, int argc, char **argv)
{
	g_autofree char *list_id = NULL;
	g_autofree char *sender = NULL;
	g_autoptr(GPtrArray) recipients = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(ScMessageHeaders) headers = NULL;
	g_autoptr(GError) error = NULL;
	int status;
	const GOptionEntry entries[] = {
	    {"list", 'l', 0, G_OPTION_ARG_STRING, &list_id, N_("The list the message is for"), "LIST-ID"},
	    {"from", 'f', 0, G_OPTION_ARG_STRING, &sender, N_("Envelope sender (default: empty)"), "ADDRESS"},
	    {NULL},
	};

	if (!sc_cli_parse (cli, _("RECIPIENT… < MESSAGE"), _("Accept a message on standard input."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if (list_id == NULL) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("--list is required"));
		return sc_cli_fail (cli, error);
	}
	for (int i = 1; i < argc; i++)
		g_ptr_array_add (recipients, g_strdup (argv[i]));
	if (sc_cli_get_ingress_config (cli, list_id, &status) == NULL)
		return status;
	raw = read_stdin (cli->config->max_message_size, &error);
	if (raw == NULL)
		return sc_cli_fail (cli, error);
	headers = sc_message_headers_parse (raw, &error);
	if (headers == NULL)
		return sc_cli_fail (cli, error);
	return accept_message (cli, list_id, sender != NULL ? sender : "", recipients, raw, headers);
}

static void
set_string (char **target, const char *value)
{
	g_free (*target);
	*target = g_strdup (value);
}

/* "List name <list.example.org>" → "list.example.org" */
static char *
list_id_from_header (const char *value)
{
	const char *open = value != NULL ? strrchr (value, '<') : NULL;
	const char *close = open != NULL ? strchr (open, '>') : NULL;

	if (open == NULL || close == NULL)
		return value != NULL ? g_strstrip (g_strdup (value)) : NULL;
	return g_strndup (open + 1, close - open - 1);
}

/* sendmail's flags, parsed by hand: -oi and -fADDR are not GOption's shape. */
int
sc_cli_sendmail (ScCli *cli, int argc, char **argv)
{
	gboolean from_headers = FALSE;
	gboolean dot_ends = TRUE;
	g_autofree char *sender = NULL;
	g_autofree char *list_id = NULL;
	g_autoptr(GPtrArray) recipients = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(ScMessageHeaders) headers = NULL;
	g_autoptr(GError) error = NULL;
	gboolean options_done = FALSE;
	int status;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (options_done || arg[0] != '-') {
			/* options end at the first recipient, as with Postfix's sendmail */
			options_done = TRUE;
			g_ptr_array_add (recipients, g_strdup (arg));
		} else if (strcmp (arg, "--") == 0) {
			options_done = TRUE;
		} else if (strcmp (arg, "-t") == 0) {
			from_headers = TRUE;
		} else if (strcmp (arg, "-i") == 0 || strcmp (arg, "-oi") == 0) {
			dot_ends = FALSE;
		} else if (strcmp (arg, "--list") == 0 || strcmp (arg, "-f") == 0 ||
			   strcmp (arg, "-F") == 0 || strcmp (arg, "-B") == 0 ||
			   strcmp (arg, "-N") == 0) {
			if (i + 1 >= argc) {
				g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
					     _("%s needs a value"), arg);
				return sc_cli_fail (cli, error);
			}
			if (strcmp (arg, "--list") == 0)
				set_string (&list_id, argv[++i]);
			else if (strcmp (arg, "-f") == 0)
				set_string (&sender, argv[++i]);
			else
				i++; /* -F name, -B body type, -N dsn: nothing to do here */
		} else if (g_str_has_prefix (arg, "--list=")) {
			set_string (&list_id, arg + strlen ("--list="));
		} else if (g_str_has_prefix (arg, "-f")) {
			set_string (&sender, arg + 2);
		} else if (g_str_has_prefix (arg, "-F") || g_str_has_prefix (arg, "-o") ||
			   g_str_has_prefix (arg, "-B") || g_str_has_prefix (arg, "-N") ||
			   strcmp (arg, "-bm") == 0 || strcmp (arg, "-em") == 0 ||
			   strcmp (arg, "-ep") == 0 || strcmp (arg, "-eq") == 0 ||
			   strcmp (arg, "-v") == 0 || strcmp (arg, "-U") == 0) {
			/* accepted for compatibility; they change nothing here */
		} else {
			g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
				     _("unsupported sendmail option %s"), arg);
			return sc_cli_fail (cli, error);
		}
	}
	if (sc_cli_get_ingress_config (cli, list_id, &status) == NULL)
		return status;
	input = read_stdin (cli->config->max_message_size, &error);
	if (input == NULL)
		return sc_cli_fail (cli, error);
	raw = dot_ends ? cut_at_dot_line (input) : g_bytes_ref (input);
	headers = sc_message_headers_parse (raw, &error);
	if (headers == NULL)
		return sc_cli_fail (cli, error);
	if (from_headers) {
		const char *fields[] = {"To", "Cc", "Bcc"};
		for (gsize f = 0; f < G_N_ELEMENTS (fields); f++) {
			g_autoptr(GPtrArray) found = sc_message_headers_get_addresses (headers, fields[f]);
			for (guint i = 0; i < found->len; i++)
				g_ptr_array_add (recipients, g_strdup (found->pdata[i]));
		}
		if (sc_message_headers_get (headers, "Bcc") != NULL) {
			g_autoptr(GBytes) stripped = sc_message_headers_remove (headers, "Bcc");
			g_clear_pointer (&headers, sc_message_headers_free);
			g_bytes_unref (raw);
			raw = g_steal_pointer (&stripped);
			headers = sc_message_headers_parse (raw, &error);
			if (headers == NULL)
				return sc_cli_fail (cli, error);
		}
	}
	if (list_id != NULL && sc_config_get_list (cli->config, list_id) == NULL) {
		/* named explicitly: a typo must not land on another list */
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("unknown list “%s” (no [list:%s] in the configuration)"), list_id, list_id);
		return sc_cli_fail (cli, error);
	}
	if (list_id == NULL)
		list_id = list_id_from_header (sc_message_headers_get (headers, "List-Id"));
	if (list_id == NULL || sc_config_get_list (cli->config, list_id) == NULL) {
		if (cli->config->default_list == NULL) {
			g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
				     list_id != NULL
					 ? _("unknown list “%s”, and no default-list in the configuration")
					 : _("no --list, no List-Id header, and no default-list in the configuration"),
				     list_id);
			return sc_cli_fail (cli, error);
		}
		set_string (&list_id, cli->config->default_list);
	}
	return accept_message (cli, list_id, sender != NULL ? sender : "", recipients, raw, headers);
}
