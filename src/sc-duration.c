/* sc-duration.c — parse and print durations and sizes for the config file.
 *
 * Errors name the text and say what would have been accepted; the config
 * loader prefixes file and key.
 */
#include "config.h"

#include "sc-duration.h"

#include <errno.h>

#include "sc-error.h"
#include "sc-i18n.h"

static const struct {
	const char *suffix;
	gint64 unit;
} duration_units[] = {
    /* longest suffix first so "ms" is not read as "m" */
    {"ms", 1000},
    {"s", G_GINT64_CONSTANT (1000000)},
    {"m", G_GINT64_CONSTANT (60000000)},
    {"h", G_GINT64_CONSTANT (3600) * 1000000},
    {"d", G_GINT64_CONSTANT (86400) * 1000000},
    {"w", G_GINT64_CONSTANT (604800) * 1000000},
};

gboolean
sc_duration_parse (const char *text, gint64 *out_duration, GError **error)
{
	const char *cursor = text;
	gint64 total = 0;
	gboolean any_unit = FALSE;

	g_return_val_if_fail (text != NULL, FALSE);
	while (g_ascii_isspace (*cursor))
		cursor++;
	if (*cursor == '\0')
		goto invalid;
	while (*cursor != '\0' && !g_ascii_isspace (*cursor)) {
		char *end = NULL;
		guint64 number;
		gint64 unit = G_USEC_PER_SEC;
		gboolean matched = FALSE;

		if (!g_ascii_isdigit (*cursor))
			goto invalid;
		number = g_ascii_strtoull (cursor, &end, 10);
		cursor = end;
		for (gsize i = 0; i < G_N_ELEMENTS (duration_units); i++) {
			gsize length = strlen (duration_units[i].suffix);
			if (strncmp (cursor, duration_units[i].suffix, length) == 0 &&
			    !g_ascii_isalpha (cursor[length])) {
				unit = duration_units[i].unit;
				cursor += length;
				matched = TRUE;
				any_unit = TRUE;
				break;
			}
		}
		if (!matched && *cursor != '\0' && !g_ascii_isspace (*cursor))
			goto invalid;
		if (!matched && any_unit)
			goto invalid; /* "1h30" (and "0h30") is ambiguous */
		if (number > (guint64) (G_MAXINT64 / unit) || total > G_MAXINT64 - (gint64) number * unit)
			goto invalid;
		total += (gint64) number * unit;
	}
	while (g_ascii_isspace (*cursor))
		cursor++;
	if (*cursor != '\0')
		goto invalid;
	*out_duration = total;
	return TRUE;

invalid:
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     /* TRANSLATORS: %s is what the user wrote */
		     _("“%s” is not a duration (use a number with ms, s, m, h, d or w, e.g. 30s, 15m, 1h30m, 5d)"),
		     text);
	return FALSE;
}

char *
sc_duration_format (gint64 duration)
{
	GString *text = g_string_new (NULL);

	if (duration < 0) {
		g_string_append_c (text, '-');
		duration = -duration;
	}
	if (duration < G_USEC_PER_SEC) {
		g_string_append_printf (text, "%" G_GINT64_FORMAT "ms", duration / 1000);
		return g_string_free (text, FALSE);
	}
	for (gssize i = G_N_ELEMENTS (duration_units) - 2; i >= 0; i--) {
		gint64 unit = duration_units[i].unit;
		if (duration >= unit) {
			g_string_append_printf (text,
						"%" G_GINT64_FORMAT "%s",
						duration / unit,
						duration_units[i].suffix);
			duration %= unit;
		}
	}
	return g_string_free (text, FALSE);
}

gboolean
sc_size_parse (const char *text, guint64 *out_size, GError **error)
{
	char *end = NULL;
	guint64 number;
	guint64 unit = 1;

	g_return_val_if_fail (text != NULL, FALSE);
	if (!g_ascii_isdigit (*text))
		goto invalid;
	errno = 0;
	number = g_ascii_strtoull (text, &end, 10);
	if (errno == ERANGE)
		goto invalid; /* saturated at G_MAXUINT64 */
	switch (g_ascii_toupper (*end)) {
	case 'K':
		unit = 1024, end++;
		break;
	case 'M':
		unit = 1024 * 1024, end++;
		break;
	case 'G':
		unit = 1024 * 1024 * 1024, end++;
		break;
	default:
		break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || number > G_MAXUINT64 / unit)
		goto invalid;
	*out_size = number * unit;
	return TRUE;

invalid:
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     _("“%s” is not a size (use a number of bytes, optionally with K, M or G)"),
		     text);
	return FALSE;
}
