/* sc-message-headers.c — header-block scanning for ingress (see the header).
 *
 * A field starts at line start with a name of printable ASCII but ':' and
 * space, then ':'.  Continuation lines start with space or tab.  The block
 * ends at the first empty line (or, for the malformed messages the corpus
 * is full of, the first line that is neither).  A leading mbox "From " line
 * is skipped.
 */
#include "config.h"

#include "sc-message-headers.h"


#include "sc-error.h"
#include "sc-gmime.h"
#include "sc-i18n.h"


typedef struct {
	char *name;
	char *value;     /* unfolded */
	gsize start;     /* offset of the field's first byte in raw */
	gsize end;       /* offset after its last line's line ending */
} Field;

struct _ScMessageHeaders {
	GBytes *raw;
	gsize block_start; /* after an mbox From line */
	gboolean crlf;
	GArray *fields;    /* (element-type Field) */
};

static void
field_clear (gpointer data)
{
	Field *field = data;
	g_free (field->name);
	g_free (field->value);
}

void
sc_message_headers_free (ScMessageHeaders *headers)
{
	if (headers == NULL)
		return;
	g_bytes_unref (headers->raw);
	g_array_unref (headers->fields);
	g_free (headers);
}

gsize
sc_header_field_name_length (const guint8 *line, gsize length, gsize *out_colon)
{
	gsize i = 0;
	gsize name_length;

	while (i < length && line[i] >= 33 && line[i] <= 126 && line[i] != ':')
		i++;
	name_length = i;
	/* RFC 5322 4.5.3 obs-optional: white space before the colon */
	while (i < length && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (name_length == 0 || i >= length || line[i] != ':')
		return 0;
	*out_colon = i;
	return name_length;
}

gsize
sc_message_mbox_separator_length (const guint8 *data, gsize length)
{
	const guint8 *newline;

	if (length <= 5 || memcmp (data, "From ", 5) != 0 || data[5] == ' ' || data[5] == '\t' ||
	    data[5] == ':')
		return 0;
	newline = memchr (data, '\n', length);
	return newline != NULL ? (gsize) (newline - data) + 1 : length;
}

#define UTF8_BOM "\xef\xbb\xbf"

GBytes *
sc_message_trim_leading (GBytes *raw)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (raw, &size);
	gsize start = 0;

	if (size >= 3 && memcmp (data, UTF8_BOM, 3) == 0)
		start = 3;
	for (;;) {
		gsize end = start;

		while (end < size && (data[end] == ' ' || data[end] == '\t'))
			end++;
		/* an empty line is not junk: it says the header block is empty */
		if (end == start)
			break;
		if (end < size && data[end] == '\r')
			end++;
		/* only a whole line of white space, and not the last one */
		if (end >= size || data[end] != '\n' || end + 1 >= size)
			break;
		start = end + 1;
	}
	if (start == 0)
		return g_bytes_ref (raw);
	return g_bytes_new_from_bytes (raw, start, size - start);
}

ScMessageHeaders *
sc_message_headers_parse (GBytes *raw, GError **error)
{
	g_autoptr(ScMessageHeaders) headers = g_new0 (ScMessageHeaders, 1);
	gsize size = 0;
	const char *data = g_bytes_get_data (raw, &size);
	gsize offset = 0;
	Field *current = NULL;

	headers->raw = g_bytes_ref (raw);
	headers->fields = g_array_new (FALSE, TRUE, sizeof (Field));
	g_array_set_clear_func (headers->fields, field_clear);
	if (size == 0) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA, _("the message is empty"));
		return NULL;
	}
	if (size >= 5 && memcmp (data, "From ", 5) == 0) {
		const char *newline = memchr (data, '\n', size);
		offset = newline != NULL ? (gsize) (newline - data) + 1 : size;
	}
	headers->block_start = offset;
	while (offset < size) {
		const char *line = data + offset;
		const char *newline = memchr (line, '\n', size - offset);
		gsize line_length = newline != NULL ? (gsize) (newline - line) : size - offset;
		gsize content_length = line_length;
		gsize name_length;
		gsize colon = 0;

		if (content_length > 0 && line[content_length - 1] == '\r')
			content_length--;
		if (offset == headers->block_start)
			headers->crlf = content_length < line_length;
		if (memchr (line, '\0', line_length) != NULL) {
			g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
				     _("not a message: NUL byte in the header block"));
			return NULL;
		}
		if (content_length == 0)
			break; /* the blank line that ends the headers */
		if ((line[0] == ' ' || line[0] == '\t') && current != NULL) {
			g_autofree char *old = current->value;
			g_autofree char *more = g_strndup (line, content_length);
			current->value = g_strconcat (old, more, NULL);
			current->end = offset + line_length + (newline != NULL ? 1 : 0);
		} else if ((name_length = sc_header_field_name_length ((const guint8 *) line,
									 content_length,
									 &colon)) > 0) {
			Field field = {
			    .name = g_strndup (line, name_length),
			    .value = g_strndup (line + colon + 1, content_length - colon - 1),
			    .start = offset,
			    .end = offset + line_length + (newline != NULL ? 1 : 0),
			};
			g_array_append_val (headers->fields, field);
			current = &g_array_index (headers->fields, Field, headers->fields->len - 1);
		} else {
			break; /* no blank line before the body: malformed, but a message */
		}
		offset += line_length + (newline != NULL ? 1 : 0);
	}
	if (headers->fields->len == 0) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
			     _("not a message: no header fields at the start"));
		return NULL;
	}
	return g_steal_pointer (&headers);
}

const char *
sc_message_headers_get (ScMessageHeaders *headers, const char *name)
{
	for (guint i = 0; i < headers->fields->len; i++) {
		Field *field = &g_array_index (headers->fields, Field, i);
		if (g_ascii_strcasecmp (field->name, name) == 0)
			return field->value;
	}
	return NULL;
}

char *
sc_message_headers_get_decoded (ScMessageHeaders *headers, const char *name)
{
	const char *value = sc_message_headers_get (headers, name);
	g_autofree char *decoded = NULL;

	if (value == NULL)
		return NULL;
	sc_gmime_init ();
	decoded = g_mime_utils_header_decode_text (NULL, value);
	if (decoded == NULL)
		return NULL;
	return g_strstrip (g_utf8_make_valid (decoded, -1));
}

GPtrArray *
sc_message_headers_get_addresses (ScMessageHeaders *headers, const char *name)
{
	GPtrArray *addresses = g_ptr_array_new_with_free_func (g_free);

	sc_gmime_init ();
	for (guint i = 0; i < headers->fields->len; i++) {
		Field *field = &g_array_index (headers->fields, Field, i);
		g_autoptr(InternetAddressList) list = NULL;

		if (g_ascii_strcasecmp (field->name, name) != 0)
			continue;
		list = internet_address_list_parse (NULL, field->value);
		for (int j = 0; list != NULL && j < internet_address_list_length (list); j++) {
			InternetAddress *address = internet_address_list_get_address (list, j);
			if (INTERNET_ADDRESS_IS_MAILBOX (address)) {
				const char *addr = internet_address_mailbox_get_addr (
				    INTERNET_ADDRESS_MAILBOX (address));
				g_ptr_array_add (addresses, g_strdup (addr));
			} else if (INTERNET_ADDRESS_IS_GROUP (address)) {
				InternetAddressList *members =
				    internet_address_group_get_members (INTERNET_ADDRESS_GROUP (address));
				for (int k = 0; k < internet_address_list_length (members); k++) {
					InternetAddress *member = internet_address_list_get_address (members, k);
					if (INTERNET_ADDRESS_IS_MAILBOX (member))
						g_ptr_array_add (addresses,
								 g_strdup (internet_address_mailbox_get_addr (
								     INTERNET_ADDRESS_MAILBOX (member))));
				}
			}
		}
	}
	return addresses;
}

GBytes *
sc_message_headers_add_message_id (ScMessageHeaders *headers, const char *message_id)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (headers->raw, &size);
	GByteArray *result = g_byte_array_sized_new (size + 128);
	g_autofree char *field = g_strdup_printf ("Message-ID: <%s>%s", message_id, headers->crlf ? "\r\n" : "\n");

	g_byte_array_append (result, (const guint8 *) data, headers->block_start);
	g_byte_array_append (result, (const guint8 *) field, strlen (field));
	g_byte_array_append (result, (const guint8 *) data + headers->block_start, size - headers->block_start);
	return g_byte_array_free_to_bytes (result);
}

GBytes *
sc_message_headers_remove (ScMessageHeaders *headers, const char *name)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (headers->raw, &size);
	GByteArray *result = g_byte_array_sized_new (size);
	gsize copied = 0;

	for (guint i = 0; i < headers->fields->len; i++) {
		Field *field = &g_array_index (headers->fields, Field, i);
		if (g_ascii_strcasecmp (field->name, name) != 0)
			continue;
		g_byte_array_append (result, (const guint8 *) data + copied, field->start - copied);
		copied = field->end;
	}
	g_byte_array_append (result, (const guint8 *) data + copied, size - copied);
	return g_byte_array_free_to_bytes (result);
}

gboolean
sc_address_validate (const char *address, gboolean allow_empty, GError **error)
{
	const char *at;
	gsize length = strlen (address);

	if (length == 0 && allow_empty)
		return TRUE;
	if (length == 0 || length > 254) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
			     _("invalid address “%s”: must be 1 to 254 octets long"), address);
		return FALSE;
	}
	if (!g_utf8_validate (address, -1, NULL)) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
			     _("invalid address: not valid UTF-8"));
		return FALSE;
	}
	for (const char *p = address; *p != '\0'; p++) {
		if ((guchar) *p <= ' ' || *p == 127 || *p == '<' || *p == '>' || *p == ',' ||
		    *p == ';' || *p == '"' || *p == '\\') {
			g_autofree char *shown = g_strescape (address, NULL);
			g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
				     _("invalid address “%s”: spaces, control characters, quotes and <>,;\\ are not allowed"),
				     shown);
			return FALSE;
		}
	}
	at = strrchr (address, '@');
	if (at == NULL || at == address || at[1] == '\0' || at[1] == '.' ||
	    g_str_has_suffix (address, ".") || strstr (at, "..") != NULL) {
		g_set_error (error, SC_INPUT_ERROR, SC_INPUT_ERROR_DATA,
			     _("invalid address “%s”: expected local-part@domain"), address);
		return FALSE;
	}
	return TRUE;
}
