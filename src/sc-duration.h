/* sc-duration.h — "30s", "15m", "1h30m", "5d" and "64M" as the config reads them. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Microseconds.  Units: ms s m h d w; a bare number is seconds. */
gboolean sc_duration_parse (const char *text, gint64 *out_duration, GError **error);
/* (transfer full): shortest readable form, "2m", "1h30m", "250ms". */
char *sc_duration_format (gint64 duration);
/* Bytes.  Suffixes K M G (powers of 1024); a bare number is bytes. */
gboolean sc_size_parse (const char *text, guint64 *out_size, GError **error);

G_END_DECLS
