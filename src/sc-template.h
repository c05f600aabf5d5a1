/* sc-template.h — $variables in texts the operator writes (footers, URLs).
 *
 * The syntax is Python's string.Template, which Mailman operators know:
 * "$name" or "${name}", and "$$" for a literal dollar.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Adds one translated line to @problems (element-type utf8) for every
 * unknown variable (once each) and for a "$" that starts none; @known is
 * NULL-terminated.  TRUE when it added none. */
gboolean sc_template_check (const char *text, const char *const *known, GPtrArray *problems);

/* Whether @text uses the variable @name. */
gboolean sc_template_uses (const char *text, const char *name);

/* @text with every known variable replaced by its value in @variables
 * (name → value; a NULL value is empty), "$$" by "$", and anything else
 * copied literally, unknown variables included. (transfer full) */
char *sc_template_substitute (const char *text, GHashTable *variables);

G_END_DECLS
