/* sc-catalog.c — a compiled gettext catalogue (.mo) read directly.
 *
 * The format (GNU gettext manual, "The Format of GNU MO Files"): a magic
 * number whose byte order is the file's, a revision, the number of
 * strings N, then the offsets of two tables of N (length, offset) pairs —
 * the originals, sorted, and their translations — each string followed
 * by a NUL.  The hash table is not needed: originals are bisected.  The
 * file is data: every offset and length is checked before use.
 */
#include "config.h"

#include <gio/gio.h>
#include <string.h>

#include "sc-catalog.h"
#include "sc-i18n.h"

#define MO_MAGIC 0x950412deU
#define MO_MAGIC_SWAPPED 0xde120495U
#define MO_HEADER_SIZE 28 /* magic, revision, N, O, T, S, H */

typedef struct {
	const char *text; /* inside the file's bytes, NUL-terminated */
	guint32 length;   /* without the NUL */
} ScCatalogString;

struct _ScCatalog {
	GBytes *bytes;              /* (owned) */
	guint n;
	ScCatalogString *originals; /* (owned) n, sorted by strcmp() */
	ScCatalogString *translations; /* (owned) n */
};

const char *
sc_catalog_localedir (void)
{
	const char *dir = g_getenv (SC_CATALOG_LOCALEDIR_ENV);

	return dir != NULL && *dir != '\0' ? dir : LOCALEDIR;
}

char *
sc_catalog_path (const char *language)
{
	g_autofree char *file = g_strconcat (GETTEXT_PACKAGE, ".mo", NULL);

	return g_build_filename (sc_catalog_localedir (), language, "LC_MESSAGES", file, NULL);
}

static guint32
read_word (const guint8 *data, gboolean swapped)
{
	guint32 word;

	memcpy (&word, data, sizeof word);
	return swapped ? GUINT32_SWAP_LE_BE (word) : word;
}

static gboolean
damaged (GError **error, const char *what)
{
	/* TRANSLATORS: %s says what is wrong, e.g. "a string lies outside the file" */
	g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("not a usable .mo catalogue: %s"), what);
	return FALSE;
}

/* The @count (length, offset) pairs at @table into @out, checked. */
static gboolean
read_table (const guint8 *data,
	    gsize size,
	    gboolean swapped,
	    guint32 table,
	    guint32 count,
	    ScCatalogString *out,
	    GError **error)
{
	if (table > size || (size - table) / 8 < count)
		return damaged (error, _("a table lies outside the file"));
	for (guint32 i = 0; i < count; i++) {
		guint32 length = read_word (data + table + 8 * i, swapped);
		guint32 offset = read_word (data + table + 8 * i + 4, swapped);
		if (offset >= size || size - offset <= length || data[offset + length] != '\0')
			return damaged (error, _("a string lies outside the file"));
		out[i].text = (const char *) data + offset;
		out[i].length = length;
	}
	return TRUE;
}

ScCatalog *
sc_catalog_new_from_bytes (GBytes *bytes, GError **error)
{
	g_autoptr(ScCatalog) catalog = g_new0 (ScCatalog, 1);
	gsize size = 0;
	const guint8 *data = g_bytes_get_data (bytes, &size);
	gboolean swapped;
	guint32 magic;
	guint32 n;

	catalog->bytes = g_bytes_ref (bytes);
	if (size < MO_HEADER_SIZE) {
		damaged (error, _("too short"));
		return NULL;
	}
	memcpy (&magic, data, sizeof magic);
	if (magic != MO_MAGIC && magic != MO_MAGIC_SWAPPED) {
		damaged (error, _("wrong magic number"));
		return NULL;
	}
	swapped = magic == MO_MAGIC_SWAPPED;
	/* major revision 0 and 1 share the tables read here */
	if ((read_word (data + 4, swapped) >> 16) > 1) {
		damaged (error, _("unknown revision"));
		return NULL;
	}
	n = read_word (data + 8, swapped);
	if (n > size / 16) {
		damaged (error, _("a table lies outside the file"));
		return NULL;
	}
	catalog->n = n;
	catalog->originals = g_new0 (ScCatalogString, MAX (n, 1));
	catalog->translations = g_new0 (ScCatalogString, MAX (n, 1));
	if (!read_table (data, size, swapped, read_word (data + 12, swapped), n, catalog->originals, error) ||
	    !read_table (data, size, swapped, read_word (data + 16, swapped), n, catalog->translations, error))
		return NULL;
	for (guint32 i = 1; i < n; i++) {
		if (strcmp (catalog->originals[i - 1].text, catalog->originals[i].text) >= 0) {
			damaged (error, _("the originals are not sorted"));
			return NULL;
		}
	}
	return g_steal_pointer (&catalog);
}

ScCatalog *
sc_catalog_new_from_file (const char *path, GError **error)
{
	g_autoptr(GMappedFile) file = g_mapped_file_new (path, FALSE, error);
	g_autoptr(GBytes) bytes = NULL;
	ScCatalog *catalog;

	if (file == NULL)
		return NULL;
	bytes = g_mapped_file_get_bytes (file);
	catalog = sc_catalog_new_from_bytes (bytes, error);
	if (catalog == NULL)
		g_prefix_error (error, "%s: ", path);
	return catalog;
}

ScCatalog *
sc_catalog_open (const char *language, GError **error)
{
	g_autofree char *path = sc_catalog_path (language);

	return sc_catalog_new_from_file (path, error);
}

void
sc_catalog_free (ScCatalog *catalog)
{
	if (catalog == NULL)
		return;
	g_bytes_unref (catalog->bytes);
	g_free (catalog->originals);
	g_free (catalog->translations);
	g_free (catalog);
}

guint
sc_catalog_get_size (const ScCatalog *catalog)
{
	return catalog->n;
}

void
sc_catalog_get_entry (const ScCatalog *catalog,
		      guint index,
		      const char **out_msgid,
		      const char **out_plural,
		      const char **out_forms,
		      gsize *out_forms_length)
{
	const ScCatalogString *original;
	gsize first;

	g_return_if_fail (index < catalog->n);
	original = &catalog->originals[index];
	/* a plural entry's original is "SINGULAR\0PLURAL" */
	first = strlen (original->text);
	if (out_msgid != NULL)
		*out_msgid = original->text;
	if (out_plural != NULL)
		*out_plural = first < original->length ? original->text + first + 1 : NULL;
	if (out_forms != NULL)
		*out_forms = catalog->translations[index].text;
	if (out_forms_length != NULL)
		*out_forms_length = catalog->translations[index].length;
}

const char *
sc_catalog_lookup (const ScCatalog *catalog, const char *msgid)
{
	guint low = 0;
	guint high = catalog->n;

	while (low < high) {
		guint middle = low + (high - low) / 2;
		int order = strcmp (msgid, catalog->originals[middle].text);
		if (order == 0) {
			const char *text = catalog->translations[middle].text;
			return *text != '\0' ? text : NULL;
		}
		if (order < 0)
			high = middle;
		else
			low = middle + 1;
	}
	return NULL;
}

char *
sc_catalog_get_header (const ScCatalog *catalog, const char *field)
{
	const char *header = sc_catalog_lookup (catalog, "");
	gsize field_length = strlen (field);

	if (header == NULL)
		return NULL;
	/* "Name: value\n" lines */
	for (const char *line = header; *line != '\0';) {
		const char *end = strchrnul (line, '\n');
		if ((gsize) (end - line) > field_length && g_ascii_strncasecmp (line, field, field_length) == 0 &&
		    line[field_length] == ':') {
			g_autofree char *value = g_strndup (line + field_length + 1, end - line - field_length - 1);
			return g_strdup (g_strstrip (value));
		}
		line = *end != '\0' ? end + 1 : end;
	}
	return NULL;
}
