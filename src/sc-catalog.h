/* sc-catalog.h — a compiled gettext catalogue (.mo) read directly, for
 * answers in a language chosen per request (the dashboard's strings per
 * Accept-Language): gettext itself follows the process locale, which is
 * one for all threads and needs the locale generated on the machine.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScCatalog ScCatalog;

/* The variable that overrides LOCALEDIR (config.h) for the catalogues:
 * the build tree's po/ (tests, running before install). */
#define SC_CATALOG_LOCALEDIR_ENV "STAGECOACH_LOCALEDIR"

/* LOCALEDIR, or $STAGECOACH_LOCALEDIR when set and not empty. */
const char *sc_catalog_localedir (void);

/* The .mo of @language (e.g. "de", "pt_BR") for the stagecoach domain:
 * LOCALEDIR/LANGUAGE/LC_MESSAGES/stagecoach.mo. (transfer full) */
char *sc_catalog_path (const char *language);

/* Reads a .mo file in either byte order; every offset is checked and the
 * originals must be sorted (the lookup bisects them).  Errors:
 * G_FILE_ERROR_* (the file), G_IO_ERROR_INVALID_DATA (not a .mo, or a
 * damaged one). */
ScCatalog *sc_catalog_new_from_file (const char *path, GError **error);
ScCatalog *sc_catalog_new_from_bytes (GBytes *bytes, GError **error);
/* The catalogue of @language at sc_catalog_path(). */
ScCatalog *sc_catalog_open (const char *language, GError **error);
void sc_catalog_free (ScCatalog *catalog);

/* Entries, the header (msgid "") included. */
guint sc_catalog_get_size (const ScCatalog *catalog);

/* One entry.  @out_msgid: the msgid, with "CONTEXT\004" in front when it
 * has a msgctxt; @out_plural: (nullable) its msgid_plural; @out_forms:
 * the translation, plural forms separated by NUL bytes, @out_forms_length
 * bytes long (without the final NUL).  Any of them may be NULL. */
void sc_catalog_get_entry (const ScCatalog *catalog,
			   guint index,
			   const char **out_msgid,
			   const char **out_plural,
			   const char **out_forms,
			   gsize *out_forms_length);

/* The translation of @msgid (for a plural entry: its first form), or NULL
 * when the catalogue has none or an empty one. */
const char *sc_catalog_lookup (const ScCatalog *catalog, const char *msgid);

/* A field of the header entry ("Plural-Forms", "Language"), or NULL.
 * (transfer full) */
char *sc_catalog_get_header (const ScCatalog *catalog, const char *field);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScCatalog, sc_catalog_free)

G_END_DECLS
