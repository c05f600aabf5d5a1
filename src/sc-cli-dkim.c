/* sc-cli-dkim.c — `stagecoach dkim-record LIST-ID`: the DNS TXT record
 * that publishes a list's DKIM public key, as one zone-file line.
 *
 * The public key is derived from the private key file, so what is
 * published always matches what signs.  It works for any list with the
 * dkim-* keys, whether or not its pipeline signs yet: the record must be
 * in DNS before the first signed message leaves.  The text is cut into
 * strings of at most 255 bytes, as a TXT record needs (an RSA-2048 record
 * does not fit in one).
 *
 * Exit 0 with the line on stdout; 64 for an unknown list (as inject);
 * 78 when the list's dkim-* settings or its key are missing or unusable.
 */
#include "config.h"

#include <stdio.h>
#include <sysexits.h>

#include "sc-cli.h"
#include "sc-dkim.h"
#include "sc-error.h"
#include "sc-i18n.h"

#define TXT_STRING_MAX 255

int
sc_cli_dkim_record (ScCli *cli, int argc, char **argv)
{
	const GOptionEntry entries[] = {{NULL}};
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) line = NULL;
	g_autofree char *name = NULL;
	g_autofree char *text = NULL;
	const ScListConfig *list;
	ScConfig *config;
	gsize length;

	if (!sc_cli_parse (cli, _("LIST-ID"),
			   _("Print the DNS TXT record that publishes a list's DKIM key."),
			   entries, &argc, &argv))
		return EX_USAGE;
	if (argc != 2) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE, _("give one LIST-ID"));
		return sc_cli_fail (cli, error);
	}
	config = sc_cli_get_config (cli);
	if (config == NULL)
		return EX_CONFIG;
	list = sc_config_get_list (config, argv[1]);
	if (list == NULL) {
		g_set_error (&error, SC_INPUT_ERROR, SC_INPUT_ERROR_USAGE,
			     _("unknown list “%s” (no [list:%s] in the configuration)"), argv[1],
			     argv[1]);
		return sc_cli_fail (cli, error);
	}
	text = sc_dkim_txt_record (list, NULL, &error);
	if (text == NULL) {
		g_prefix_error (&error, "[%s%s] ", SC_CONFIG_SECTION_LIST_PREFIX, list->id);
		return sc_cli_fail (cli, error);
	}
	name = sc_dkim_record_name (list);
	line = g_string_new (NULL);
	g_string_append_printf (line, "%s. IN TXT (", name);
	length = strlen (text);
	/* the text holds no '"' or '\\': nothing to escape */
	for (gsize offset = 0; offset < length; offset += TXT_STRING_MAX)
		g_string_append_printf (line, " \"%.*s\"", (int) MIN (TXT_STRING_MAX, length - offset),
					text + offset);
	g_string_append (line, " )\n");
	if (fputs (line->str, stdout) == EOF || fflush (stdout) != 0) {
		g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, _("cannot write to standard output"));
		return sc_cli_fail (cli, error);
	}
	return EX_OK;
}
