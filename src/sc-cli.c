/* sc-cli.c — plumbing every subcommand shares (see sc-cli.h). */
#include "config.h"

#include "sc-cli.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <glib/gstdio.h>

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
	if (cli->config != NULL &&
	    (strcmp (cli->command, "run") == 0 || strcmp (cli->command, "check-config") == 0)) {
		/* the commands an operator starts by hand or watches in a log;
		 * list software calling inject must not see warnings */
		g_autoptr(GPtrArray) warnings = sc_config_check_permissions (cli->config);
		for (guint i = 0; i < warnings->len; i++) {
			if (strcmp (cli->command, "run") == 0)
				g_warning ("%s", (const char *) warnings->pdata[i]);
			else
				fprintf (stderr, "stagecoach %s: %s: %s\n", cli->command, _("warning"),
					 (const char *) warnings->pdata[i]);
		}
	}
	if (cli->config == NULL) {
		g_autofree char *message = sc_cli_terminal_safe (error->message, TRUE);
		fprintf (stderr, "stagecoach %s: %s\n", cli->command,
			 _("the configuration has errors:"));
		fprintf (stderr, "%s\n", message);
	}
	return cli->config;
}

/* A file changed this recently may be in the middle of a rewrite. */
#define SC_CLI_CONFIG_SETTLE (1 * G_USEC_PER_SEC)
/* How long ingress waits for such a file before saying "try again". */
#define SC_CLI_CONFIG_WAIT (3 * G_USEC_PER_SEC)

static gboolean
changed_recently (const char *path)
{
	GStatBuf st;
	gint64 changed;

	if (path == NULL || g_stat (path, &st) != 0)
		return FALSE;
	changed = MAX ((gint64) st.st_mtim.tv_sec * G_USEC_PER_SEC + st.st_mtim.tv_nsec / 1000,
		       (gint64) st.st_ctim.tv_sec * G_USEC_PER_SEC + st.st_ctim.tv_nsec / 1000);
	return changed > g_get_real_time () - SC_CLI_CONFIG_SETTLE; /* the future too */
}

/* The ingress settings: what inject and sendmail read to accept a message. */
static gboolean
ingress_settings_wrong (const ScConfigFailure *failure, const char *list_id, gboolean sendmail)
{
	const char *main_keys[] = {SC_KEY_SPOOL, SC_KEY_BUSY_TIMEOUT, SC_KEY_MAX_MESSAGE_SIZE};

	for (gsize i = 0; i < G_N_ELEMENTS (main_keys); i++) {
		if (sc_config_failure_has (failure, SC_CONFIG_SECTION_MAIN, main_keys[i]))
			return TRUE;
	}
	if (sendmail && sc_config_failure_has (failure, SC_CONFIG_SECTION_MAIN, SC_KEY_DEFAULT_LIST))
		return TRUE;
	if (list_id != NULL) {
		g_autofree char *section = g_strconcat (SC_CONFIG_SECTION_LIST_PREFIX, list_id, NULL);
		return sc_config_failure_has (failure, section, NULL);
	}
	return FALSE;
}

ScConfig *
sc_cli_get_ingress_config (ScCli *cli, const char *list_id, int *out_status)
{
	g_autofree char *path = sc_config_find_path (cli->config_path);
	gint64 deadline = g_get_monotonic_time () + SC_CLI_CONFIG_WAIT;
	ScConfigFailure failure = {0};
	g_autoptr(GError) error = NULL;
	gboolean in_flux;

	if (cli->config != NULL)
		return cli->config;
	/* A file that does not load, or lacks the list, and has just changed
	 * is probably being written: read it again until it settles. */
	for (;;) {
		g_autoptr(ScConfig) config = NULL;

		sc_config_failure_clear (&failure);
		g_clear_error (&error);
		config = sc_config_load_full (path, &failure, &error);
		if (config != NULL && (list_id == NULL || sc_config_get_list (config, list_id) != NULL)) {
			cli->config = g_steal_pointer (&config);
			return cli->config;
		}
		in_flux = changed_recently (path);
		if (!in_flux || g_get_monotonic_time () >= deadline) {
			if (config != NULL && !in_flux) {
				/* settled: the list is really unknown, the caller says so */
				cli->config = g_steal_pointer (&config);
				return cli->config;
			}
			break;
		}
		g_usleep (G_USEC_PER_SEC / 10);
	}
	if (error != NULL) {
		g_autofree char *message = sc_cli_terminal_safe (error->message, TRUE);
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, _("the configuration has errors:"));
		fprintf (stderr, "%s\n", message);
	}
	if (!in_flux && !failure.unparsed &&
	    ingress_settings_wrong (&failure, list_id, strcmp (cli->command, "sendmail") == 0)) {
		*out_status = EX_CONFIG;
	} else {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command,
			 in_flux ? _("the configuration is being changed; try again later")
				 : _("the message was not accepted; try again once the configuration is fixed"));
		*out_status = EX_TEMPFAIL;
	}
	sc_config_failure_clear (&failure);
	return NULL;
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

/* Bidirectional embeddings, overrides and isolates reorder what follows
 * them on screen: text can be made to read as something else. */
static gboolean
is_bidi_control (gunichar c)
{
	return (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

char *
sc_cli_terminal_safe (const char *text, gboolean keep_newlines)
{
	GString *out;
	const char *p;
	const char *end;

	if (text == NULL)
		return NULL;
	out = g_string_sized_new (strlen (text));
	end = text + strlen (text);
	for (p = text; p < end;) {
		gunichar c = g_utf8_get_char_validated (p, end - p);
		const char *next;

		if (c == (gunichar) -1 || c == (gunichar) -2) {
			g_string_append_printf (out, "\\x%02x", (guchar) *p);
			p++;
			continue;
		}
		next = g_utf8_next_char (p);
		if (keep_newlines && (c == '\n' || (c == '\r' && *next == '\n')))
			g_string_append_c (out, '\n');
		else if (keep_newlines && c == '\r')
			g_string_append (out, "\\r");
		else if (c == '\n')
			g_string_append (out, "\\n");
		else if (c == '\r')
			g_string_append (out, "\\r");
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			g_string_append_printf (out, "\\x%02x", c);
		else if ((c >= 0x80 && c < 0xa0) || is_bidi_control (c))
			g_string_append_printf (out, "\\u%04x", c);
		else
			g_string_append_len (out, p, next - p);
		if (keep_newlines && c == '\r' && *next == '\n')
			next++;
		p = next;
	}
	return g_string_free (out, FALSE);
}

const char *
sc_cli_safe (GPtrArray *keep, const char *text)
{
	char *safe = sc_cli_terminal_safe (text, FALSE);

	if (safe != NULL)
		g_ptr_array_add (keep, safe);
	return safe;
}

int
sc_cli_fail (ScCli *cli, const GError *error)
{
	/* errors repeat what they were given: queue ids, addresses, replies */
	g_autofree char *message = sc_cli_terminal_safe (error->message, TRUE);

	fprintf (stderr, "stagecoach %s: %s\n", cli->command, message);
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
sc_cli_parse_options (const char *command,
		      const char *parameters,
		      const char *summary,
		      const GOptionEntry *entries,
		      gboolean help,
		      int *argc,
		      char ***argv,
		      GError **error)
{
	g_autoptr(GOptionContext) context = g_option_context_new (parameters);
	g_autofree char **options = NULL;
	gboolean separator = FALSE;
	int end = options_end (entries, *argc, *argv, &separator);
	int option_count = end;
	int out;

	if (help) {
		g_autofree char *prgname = g_strdup_printf ("stagecoach %s", command);
		g_set_prgname (prgname);
	}
	/* without help, --help is an unknown option: GOption would print and exit() */
	g_option_context_set_help_enabled (context, help);
	g_option_context_set_summary (context, summary);
	g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
	g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
	/* GOption sees only the options: it would otherwise take options from
	 * among the operands (a recipient "--list=x") and keep or drop "--"
	 * depending on what follows it */
	options = g_new0 (char *, end + 1);
	memcpy (options, *argv, end * sizeof (char *));
	if (!g_option_context_parse (context, &option_count, &options, error))
		return FALSE;
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

gboolean
sc_cli_parse (ScCli *cli,
	      const char *parameters,
	      const char *summary,
	      const GOptionEntry *entries,
	      int *argc,
	      char ***argv)
{
	g_autoptr(GError) error = NULL;

	if (!sc_cli_parse_options (cli->command, parameters, summary, entries, TRUE, argc, argv, &error)) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, error->message);
		return FALSE;
	}
	return TRUE;
}
