/* sc-decorate-mime.c — where the header and footer texts go in the body.
 *
 * Three placements, all built by splicing raw bytes so that every part
 * decorate does not mean to change leaves byte for byte as it came:
 *
 *   INLINE  a message that is one text/plain body: decode its transfer
 *           encoding, add the texts in its own charset (or switch the part
 *           to UTF-8 when the charset cannot carry them), encode it again
 *           the same way.  The only placement that rewrites original bytes.
 *   PART    multipart/mixed: a new text/plain UTF-8 part after the last
 *           part (the header text: a new first part), spliced in at the
 *           poster's own boundary lines.
 *   WRAP    everything else — alternative, related, signed, encrypted,
 *           HTML, attachments, inline PGP — goes unchanged as the first part
 *           of a new multipart/mixed whose boundary is derived from the
 *           message's checksum, so signatures over it stay valid and a
 *           retry produces the same bytes.
 *
 * The output has CRLF line ends throughout: SMTP needs them, and a
 * signature is computed over that form, so normalising first is what
 * keeps "byte-identical" meaningful.  The caller parses what comes out and
 * falls back to WRAP, then to passing through, when it does not check out.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-message-headers.h"
#include "sc-i18n.h"

/* LF → CRLF wherever the LF has no CR before it. */
static GBytes *
to_crlf (const guint8 *data, gsize length)
{
	GByteArray *out = g_byte_array_sized_new (length + length / 32 + 2);
	const guint8 *end;
	const guint8 *p = data;

	if (length == 0) /* an empty GBytes may have no data: NULL + 0 is UB */
		return g_byte_array_free_to_bytes (out);
	end = data + length;

	while (p < end) {
		const guint8 *newline = memchr (p, '\n', end - p);
		gsize chunk;

		if (newline == NULL) {
			g_byte_array_append (out, p, end - p);
			break;
		}
		chunk = newline - p;
		if (newline > data && newline[-1] == '\r') {
			g_byte_array_append (out, p, chunk + 1);
		} else {
			g_byte_array_append (out, p, chunk);
			g_byte_array_append (out, (const guint8 *) "\r\n", 2);
		}
		p = newline + 1;
	}
	return g_byte_array_free_to_bytes (out);
}

GBytes *
sc_decorate_normalize (GBytes *message)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	/* an mbox "From " separator is not part of the message */
	gsize skip = sc_message_mbox_separator_length (data, length);

	return to_crlf (data + skip, length - skip);
}

gboolean
sc_decorate_texts_empty (const ScDecorateTexts *texts)
{
	return texts->header_text == NULL && texts->footer_text == NULL;
}

/* Text from the message, fit for a note and a log line: valid UTF-8,
 * control characters replaced, at most @limit characters. (transfer full) */
static char *
printable (const char *value, guint limit)
{
	g_autofree char *valid = g_utf8_make_valid (value, -1);
	GString *result = g_string_new (NULL);
	guint count = 0;

	for (const char *p = valid; *p != '\0' && count < limit;
	     p = g_utf8_next_char (p), count++) {
		gunichar c = g_utf8_get_char (p);
		if (g_unichar_isprint (c))
			g_string_append_unichar (result, c);
		else
			g_string_append_c (result, '?');
	}
	return g_string_free (result, FALSE);
}

static gboolean
at_line_start (const guint8 *data, const guint8 *p)
{
	return p == data || p[-1] == '\n';
}

gboolean
sc_decorate_mime_is_inline_pgp (const guint8 *data, gsize length)
{
	static const char marker[] = "-----BEGIN PGP ";
	const guint8 *p = data;
	const guint8 *end = data + length;

	while (p < end) {
		const guint8 *hit = memmem (p, end - p, marker, sizeof (marker) - 1);
		gsize rest;

		if (hit == NULL)
			return FALSE;
		rest = end - hit;
		if (at_line_start (data, hit) &&
		    ((rest >= 34 && memcmp (hit, "-----BEGIN PGP SIGNED MESSAGE-----", 34) == 0) ||
		     (rest >= 27 && memcmp (hit, "-----BEGIN PGP MESSAGE-----", 27) == 0)))
			return TRUE;
		p = hit + 1;
	}
	return FALSE;
}

/* LF → @newline. */
static GString *
text_with_newline (const char *text, const char *newline)
{
	GString *result = g_string_sized_new (strlen (text) + 16);

	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\n')
			g_string_append (result, newline);
		else
			g_string_append_c (result, *p);
	}
	return result;
}

static GBytes *
coding_run (GMimeContentEncoding encoding, gboolean encode, const guint8 *data, gsize length)
{
	GMimeEncoding state;
	guint8 *out;
	gsize out_length;

	if (encode)
		g_mime_encoding_init_encode (&state, encoding);
	else
		g_mime_encoding_init_decode (&state, encoding);
	out = g_malloc (g_mime_encoding_outlen (&state, length) + 16);
	out_length = g_mime_encoding_flush (&state, (const char *) data, length, (char *) out);
	return g_bytes_new_take (out, out_length);
}

/* The Content-Transfer-Encoding field's token, lower case; "7bit" when absent. */
static char *
transfer_encoding_token (const ScDecorateHeaders *headers)
{
	g_autofree char *value = sc_decorate_headers_get (headers, "Content-Transfer-Encoding");
	gsize end = 0;

	if (value == NULL)
		return g_strdup ("7bit");
	while (value[end] != '\0' && value[end] != ' ' && value[end] != '\t' && value[end] != ';' &&
	       value[end] != '(')
		end++;
	value[end] = '\0';
	if (value[0] == '\0')
		return g_strdup ("7bit");
	return g_ascii_strdown (value, -1);
}

enum { CHARSET_OTHER, CHARSET_ASCII, CHARSET_UTF8 };

static int
charset_kind (const char *iconv_name)
{
	if (g_ascii_strcasecmp (iconv_name, "UTF-8") == 0 || g_ascii_strcasecmp (iconv_name, "UTF8") == 0)
		return CHARSET_UTF8;
	if (g_ascii_strcasecmp (iconv_name, "us-ascii") == 0 || g_ascii_strcasecmp (iconv_name, "ascii") == 0)
		return CHARSET_ASCII;
	return CHARSET_OTHER;
}

/* g_convert, without opening iconv for the two charsets nearly all list
 * mail is in: between UTF-8 and US-ASCII the result is the input itself
 * once it is valid in @from and fits @to (iconv took a sixth of all the
 * instructions decorate;deliver spent per message).  Anything else,
 * including every refusal, goes to iconv, so the answers and their error
 * texts are iconv's. */
static char *
convert (const char *data, gsize length, const char *to, const char *from, gsize *out_length, GError **error)
{
	int to_kind = charset_kind (to);
	int from_kind = charset_kind (from);
	gboolean fits = FALSE;

	if (to_kind != CHARSET_OTHER && from_kind != CHARSET_OTHER && memchr (data, '\0', length) == NULL) {
		gboolean ascii = TRUE;
		for (gsize i = 0; i < length && ascii; i++)
			ascii = (guchar) data[i] < 0x80;
		/* valid in @from, and representable in @to */
		fits = ascii || (from_kind == CHARSET_UTF8 && to_kind == CHARSET_UTF8 &&
				 g_utf8_validate_len (data, length, NULL));
	}
	if (!fits)
		return g_convert (data, (gssize) length, to, from, NULL, out_length, error);
	if (out_length != NULL)
		*out_length = length;
	return g_strndup (data, length);
}

static gboolean
charset_is_ascii_compatible (const char *iconv_name)
{
	static const char probe[] = "Az09 -:.\r\n";
	g_autofree char *converted = NULL;
	gsize written = 0;

	converted = convert (probe, strlen (probe), iconv_name, "UTF-8", &written, NULL);
	return converted != NULL && written == strlen (probe) &&
	       memcmp (converted, probe, written) == 0;
}

static gboolean
has_8bit (const guint8 *data, gsize length)
{
	for (gsize i = 0; i < length; i++) {
		if (data[i] >= 0x80 || data[i] == '\0')
			return TRUE;
	}
	return FALSE;
}

static void
ensure_ends_with_newline (GString *text, const char *newline)
{
	if (text->len > 0 && text->str[text->len - 1] != '\n')
		g_string_append (text, newline);
}

static void
add_mime_version (ScDecorateHeaders *headers)
{
	g_autofree char *version = sc_decorate_headers_get (headers, "MIME-Version");

	if (version == NULL)
		sc_decorate_headers_append_raw (headers, "MIME-Version", "MIME-Version: 1.0\r\n");
}

static GBytes *
assemble (const ScDecorateHeaders *headers, const guint8 *body, gsize body_length)
{
	GByteArray *out = g_byte_array_sized_new (body_length + 4096);

	sc_decorate_headers_write (headers, out);
	g_byte_array_append (out, body, body_length);
	return g_byte_array_free_to_bytes (out);
}

static GBytes *
place_inline (const ScDecorateHeaders *headers_in,
	      GBytes *message,
	      GMimeObject *top,
	      const ScDecorateTexts *texts,
	      char **out_reason)
{
	g_autoptr(ScDecorateHeaders) headers = sc_decorate_headers_copy (headers_in);
	g_autofree char *token = transfer_encoding_token (headers);
	g_autoptr(GBytes) decoded = NULL;
	g_autoptr(GBytes) encoded = NULL;
	g_autofree char *body_utf8 = NULL;
	g_autofree char *header_converted = NULL;
	g_autofree char *footer_converted = NULL;
	g_autoptr(GString) text = NULL;
	g_autoptr(GString) header_text = NULL;
	g_autoptr(GString) footer_text = NULL;
	g_autoptr(GError) error_local = NULL;
	GMimeContentEncoding encoding;
	GMimeContentEncoding new_encoding;
	const char *charset;
	const char *iconv_name;
	const char *newline;
	const char *disposition;
	const char *new_charset = NULL;
	gsize message_length = 0;
	const guint8 *data = g_bytes_get_data (message, &message_length);
	const guint8 *body = data + headers->body_offset;
	gsize body_length = message_length - headers->body_offset;
	const guint8 *decoded_data;
	gsize decoded_length = 0;
	gsize utf8_length = 0;
	gsize converted_length = 0;

	disposition = g_mime_object_get_disposition (top);
	if (disposition != NULL && g_ascii_strcasecmp (disposition, "attachment") == 0) {
		*out_reason = g_strdup (_("the text is an attachment"));
		return NULL;
	}
	if (strcmp (token, "7bit") == 0 || strcmp (token, "8bit") == 0 ||
	    strcmp (token, "binary") == 0) {
		encoding = GMIME_CONTENT_ENCODING_8BIT;
		decoded = g_bytes_new (body, body_length);
	} else if (strcmp (token, "quoted-printable") == 0) {
		encoding = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
		decoded = coding_run (encoding, FALSE, body, body_length);
	} else if (strcmp (token, "base64") == 0) {
		encoding = GMIME_CONTENT_ENCODING_BASE64;
		decoded = coding_run (encoding, FALSE, body, body_length);
	} else {
		g_autofree char *shown = printable (token, 64);
		*out_reason = g_strdup_printf (_("unknown transfer encoding “%s”"), shown);
		return NULL;
	}
	decoded_data = g_bytes_get_data (decoded, &decoded_length);
	if (decoded_data == NULL)
		decoded_data = (const guint8 *) "";
	if (sc_decorate_mime_is_inline_pgp (decoded_data, decoded_length)) {
		*out_reason = g_strdup (_("the text is signed or encrypted with inline PGP"));
		return NULL;
	}

	charset = g_mime_object_get_content_type_parameter (top, "charset");
	if (charset == NULL || charset[0] == '\0')
		charset = "us-ascii";
	iconv_name = g_mime_charset_iconv_name (charset);
	/* Appending to text that is not what it claims to be would make the
	 * claim worse; the caller wraps it instead. */
	body_utf8 = convert ((const char *) decoded_data, decoded_length, "UTF-8", iconv_name, &utf8_length,
			     &error_local);
	if (body_utf8 == NULL) {
		g_autofree char *shown = printable (charset, 64);
		g_autofree char *detail = printable (error_local->message, 200);
		*out_reason = g_strdup_printf (_("the text is not valid in its charset “%s”: %s"),
					       shown,
					       detail);
		return NULL;
	}

	/* Keep the body's own line ends (base64 may carry LF or CRLF). */
	if (g_strstr_len ((const char *) decoded_data, decoded_length, "\r\n") != NULL)
		newline = "\r\n";
	else if (memchr (decoded_data, '\n', decoded_length) != NULL)
		newline = "\n";
	else
		newline = "\r\n";
	header_text =
	    text_with_newline (texts->header_text != NULL ? texts->header_text : "", newline);
	footer_text =
	    text_with_newline (texts->footer_text != NULL ? texts->footer_text : "", newline);

	if (charset_is_ascii_compatible (iconv_name)) {
		header_converted = convert (header_text->str, header_text->len, iconv_name, "UTF-8",
					    &converted_length, NULL);
		if (header_converted != NULL)
			footer_converted =
			    convert (footer_text->str, footer_text->len, iconv_name, "UTF-8", NULL, NULL);
	}
	if (header_converted != NULL && footer_converted != NULL) {
		text = g_string_new_len (header_converted, converted_length);
		g_string_append_len (text, (const char *) decoded_data, decoded_length);
		ensure_ends_with_newline (text, newline);
		g_string_append (text, footer_converted);
	} else {
		/* The charset cannot carry the texts (or is not ASCII-based, where
		 * byte-wise appending would be wrong): the part becomes UTF-8. */
		text = g_string_new_len (header_text->str, header_text->len);
		g_string_append_len (text, body_utf8, utf8_length);
		ensure_ends_with_newline (text, newline);
		g_string_append_len (text, footer_text->str, footer_text->len);
		new_charset = "utf-8";
	}

	new_encoding = encoding;
	if (encoding == GMIME_CONTENT_ENCODING_8BIT) {
		/* "7bit" (or nothing) must stay 7-bit: encode rather than lie. */
		if (strcmp (token, "7bit") == 0 && has_8bit ((const guint8 *) text->str, text->len))
			new_encoding = GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
	}
	if (new_encoding == GMIME_CONTENT_ENCODING_8BIT) {
		encoded = to_crlf ((const guint8 *) text->str, text->len);
	} else {
		g_autoptr(GBytes) raw =
		    coding_run (new_encoding, TRUE, (const guint8 *) text->str, text->len);
		gsize raw_length = 0;
		const guint8 *raw_data = g_bytes_get_data (raw, &raw_length);
		encoded = to_crlf (raw_data, raw_length);
	}

	if (new_charset != NULL) {
		GMimeContentType *content_type = g_mime_object_get_content_type (top);
		g_autofree char *value = NULL;
		g_autofree char *field = NULL;

		g_mime_content_type_set_parameter (content_type, "charset", new_charset);
		value = g_mime_content_type_encode (content_type, sc_decorate_format_options ());
		field = g_strconcat ("Content-Type:", value, NULL);
		if (!g_str_has_suffix (field, "\r\n")) {
			g_autofree char *terminated = g_strconcat (field, "\r\n", NULL);
			g_free (g_steal_pointer (&field));
			field = g_steal_pointer (&terminated);
		}
		add_mime_version (headers);
		sc_decorate_headers_remove (headers, "Content-Type", FALSE);
		sc_decorate_headers_append_raw (headers, "Content-Type", field);
	}
	if (new_encoding != encoding) {
		add_mime_version (headers);
		sc_decorate_headers_remove (headers, "Content-Transfer-Encoding", FALSE);
		sc_decorate_headers_append_raw (headers,
						"Content-Transfer-Encoding",
						"Content-Transfer-Encoding: quoted-printable\r\n");
	}
	/* The body changed length: an mbox-style length would now be a lie. */
	sc_decorate_headers_remove (headers, "Content-Length", FALSE);
	{
		gsize encoded_length = 0;
		const guint8 *encoded_data = g_bytes_get_data (encoded, &encoded_length);
		return assemble (headers, encoded_data, encoded_length);
	}
}

/* A text/plain UTF-8 part, headers and content, CRLF, ending in CRLF. */
static GBytes *
text_part_bytes (const char *text)
{
	g_autoptr(GMimeTextPart) part = g_mime_text_part_new_with_subtype ("plain");
	g_autoptr(GMimeStream) stream = NULL;
	g_autoptr(GMimeDataWrapper) content = NULL;
	g_autoptr(GString) crlf = text_with_newline (text, "\r\n");
	gboolean plain_ascii = g_str_is_ascii (text);
	char *serialized;

	for (const char *line = text; plain_ascii && *line != '\0';) {
		const char *end = strchr (line, '\n');
		gsize length = end != NULL ? (gsize) (end - line) : strlen (line);
		if (length > 998)
			plain_ascii = FALSE;
		line = end != NULL ? end + 1 : line + length;
	}
	stream = g_mime_stream_mem_new_with_buffer (crlf->str, crlf->len);
	content = g_mime_data_wrapper_new_with_stream (stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content (GMIME_PART (part), content);
	g_mime_text_part_set_charset (part, "utf-8");
	g_mime_part_set_content_encoding (GMIME_PART (part),
					  plain_ascii ? GMIME_CONTENT_ENCODING_7BIT
						      : GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	g_mime_object_set_disposition (GMIME_OBJECT (part), "inline");
	serialized = g_mime_object_to_string (GMIME_OBJECT (part), sc_decorate_format_options ());
	if (!g_str_has_suffix (serialized, "\r\n")) {
		char *terminated = g_strconcat (serialized, "\r\n", NULL);
		g_free (serialized);
		serialized = terminated;
	}
	return g_bytes_new_take (serialized, strlen (serialized));
}

static void
append_part (GByteArray *out, const char *boundary, GBytes *part)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (part, &length);

	g_byte_array_append (out, (const guint8 *) "--", 2);
	g_byte_array_append (out, (const guint8 *) boundary, strlen (boundary));
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	g_byte_array_append (out, data, length);
	/* The CRLF before the next delimiter belongs to the delimiter. */
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
}

static gboolean
bytes_contain (GBytes *haystack, const char *needle)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (haystack, &length);

	return memmem (data, length, needle, strlen (needle)) != NULL;
}

/* Finds the first delimiter line and the last close-delimiter line of
 * @boundary in @body (RFC 2046: at a line start, then only transport
 * padding).  Offsets are line starts; G_MAXSIZE when absent. */
static void
find_delimiters (const guint8 *body,
		 gsize length,
		 const char *boundary,
		 gsize *out_first_open,
		 gsize *out_last_close)
{
	g_autofree char *dash_boundary = g_strconcat ("--", boundary, NULL);
	gsize dash_length = strlen (dash_boundary);
	const guint8 *end = body + length;
	const guint8 *p = body;

	*out_first_open = G_MAXSIZE;
	*out_last_close = G_MAXSIZE;
	while (p < end) {
		const guint8 *hit = memmem (p, end - p, dash_boundary, dash_length);
		const guint8 *q;
		gboolean close = FALSE;

		if (hit == NULL)
			return;
		p = hit + 1;
		if (!at_line_start (body, hit))
			continue;
		q = hit + dash_length;
		if (end - q >= 2 && q[0] == '-' && q[1] == '-') {
			close = TRUE;
			q += 2;
		}
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (q < end && !(*q == '\r' && q + 1 < end && q[1] == '\n'))
			continue;
		if (close)
			*out_last_close = hit - body;
		else if (*out_first_open == G_MAXSIZE)
			*out_first_open = hit - body;
	}
}

static GBytes *
place_part (const ScDecorateHeaders *headers_in,
	    GBytes *message,
	    GMimeObject *top,
	    const ScDecorateTexts *texts,
	    char **out_reason)
{
	g_autoptr(ScDecorateHeaders) headers = sc_decorate_headers_copy (headers_in);
	g_autoptr(GBytes) header_part = NULL;
	g_autoptr(GBytes) footer_part = NULL;
	g_autofree char *dash_boundary = NULL;
	const char *boundary;
	gsize message_length = 0;
	const guint8 *data = g_bytes_get_data (message, &message_length);
	const guint8 *body = data + headers->body_offset;
	gsize body_length = message_length - headers->body_offset;
	gsize first_open = 0;
	gsize last_close = 0;
	GByteArray *out;

	boundary = g_mime_multipart_get_boundary (GMIME_MULTIPART (top));
	if (boundary == NULL || boundary[0] == '\0') {
		*out_reason = g_strdup (_("the multipart has no boundary"));
		return NULL;
	}
	find_delimiters (body, body_length, boundary, &first_open, &last_close);
	if (first_open == G_MAXSIZE || (last_close != G_MAXSIZE && last_close < first_open)) {
		*out_reason = g_strdup (_("no part starts at the multipart's boundary"));
		return NULL;
	}
	if (texts->header_text != NULL)
		header_part = text_part_bytes (texts->header_text);
	if (texts->footer_text != NULL)
		footer_part = text_part_bytes (texts->footer_text);
	dash_boundary = g_strconcat ("--", boundary, NULL);
	if ((header_part != NULL && bytes_contain (header_part, dash_boundary)) ||
	    (footer_part != NULL && bytes_contain (footer_part, dash_boundary))) {
		*out_reason = g_strdup (_("the texts contain the multipart's boundary"));
		return NULL;
	}

	out = g_byte_array_sized_new (message_length + 4096);
	sc_decorate_headers_remove (headers, "Content-Length", FALSE);
	sc_decorate_headers_write (headers, out);
	g_byte_array_append (out, body, first_open);
	if (header_part != NULL)
		append_part (out, boundary, header_part);
	if (last_close != G_MAXSIZE) {
		g_byte_array_append (out, body + first_open, last_close - first_open);
		if (footer_part != NULL)
			append_part (out, boundary, footer_part);
		g_byte_array_append (out, body + last_close, body_length - last_close);
	} else {
		/* No close delimiter: the last part ran to the end; close it. */
		g_byte_array_append (out, body + first_open, body_length - first_open);
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
		if (footer_part != NULL)
			append_part (out, boundary, footer_part);
		g_byte_array_append (out, (const guint8 *) dash_boundary, strlen (dash_boundary));
		g_byte_array_append (out, (const guint8 *) "--\r\n", 4);
	}
	return g_byte_array_free_to_bytes (out);
}

static GBytes *
place_wrap (const ScDecorateHeaders *headers_in,
	    GBytes *message,
	    const ScDecorateTexts *texts,
	    char **out_reason)
{
	g_autoptr(ScDecorateHeaders) headers = sc_decorate_headers_copy (headers_in);
	g_autoptr(GPtrArray) inner =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autoptr(GBytes) header_part = NULL;
	g_autoptr(GBytes) footer_part = NULL;
	g_autoptr(GBytes) body_bytes = NULL;
	g_autofree char *checksum = NULL;
	g_autofree char *boundary = NULL;
	g_autofree char *content_type = NULL;
	gsize message_length = 0;
	const guint8 *data = g_bytes_get_data (message, &message_length);
	const guint8 *body = data + headers->body_offset;
	gsize body_length = message_length - headers->body_offset;
	GByteArray *out;

	if (texts->header_text != NULL)
		header_part = text_part_bytes (texts->header_text);
	if (texts->footer_text != NULL)
		footer_part = text_part_bytes (texts->footer_text);

	/* Derived from the content, not random: the same input decorates to
	 * the same bytes, and no sender can know it before we compute it. */
	checksum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, message);
	body_bytes = g_bytes_new_from_bytes (message, headers->body_offset, body_length);
	for (guint attempt = 0;; attempt++) {
		g_free (boundary);
		/* "=_" cannot occur in base64 and is not valid quoted-printable. */
		boundary = g_strdup_printf ("=_stagecoach_%.24s_%u", checksum, attempt);
		if (!bytes_contain (body_bytes, boundary) &&
		    (header_part == NULL || !bytes_contain (header_part, boundary)) &&
		    (footer_part == NULL || !bytes_contain (footer_part, boundary)))
			break;
		if (attempt == 16) {
			*out_reason = g_strdup (_("no boundary could be found that the message "
						   "does not contain"));
			return NULL;
		}
	}

	/* The Content-* fields describe the original body: they go with it. */
	for (guint i = 0; i < headers->fields->len;) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		if (g_ascii_strncasecmp (field->name, "Content-", 8) == 0) {
			if (g_ascii_strcasecmp (field->name, "Content-Length") != 0)
				g_ptr_array_add (inner, g_bytes_ref (field->raw));
			g_ptr_array_remove_index (headers->fields, i);
			continue;
		}
		i++;
	}
	add_mime_version (headers);
	content_type =
	    g_strdup_printf ("Content-Type: multipart/mixed; boundary=\"%s\"\r\n", boundary);
	sc_decorate_headers_append_raw (headers, "Content-Type", content_type);

	out = g_byte_array_sized_new (message_length + 4096);
	sc_decorate_headers_write (headers, out);
	if (header_part != NULL)
		append_part (out, boundary, header_part);
	g_byte_array_append (out, (const guint8 *) "--", 2);
	g_byte_array_append (out, (const guint8 *) boundary, strlen (boundary));
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	for (guint i = 0; i < inner->len; i++) {
		gsize length = 0;
		const guint8 *field = g_bytes_get_data (g_ptr_array_index (inner, i), &length);
		g_byte_array_append (out, field, length);
		if (length < 2 || field[length - 2] != '\r' || field[length - 1] != '\n')
			g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	}
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	g_byte_array_append (out, body, body_length);
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	if (footer_part != NULL)
		append_part (out, boundary, footer_part);
	g_byte_array_append (out, (const guint8 *) "--", 2);
	g_byte_array_append (out, (const guint8 *) boundary, strlen (boundary));
	g_byte_array_append (out, (const guint8 *) "--\r\n", 4);
	return g_byte_array_free_to_bytes (out);
}

GBytes *
sc_decorate_mime_place (ScDecoratePlacement placement,
			const ScDecorateHeaders *headers,
			GBytes *message,
			GMimeObject *top,
			const ScDecorateTexts *texts,
			char **out_reason)
{
	g_return_val_if_fail (out_reason != NULL, NULL);

	switch (placement) {
	case SC_DECORATE_PLACEMENT_NONE: {
		gsize length = 0;
		const guint8 *data = g_bytes_get_data (message, &length);
		return assemble (headers,
				 data + headers->body_offset,
				 length - headers->body_offset);
	}
	case SC_DECORATE_PLACEMENT_INLINE:
		return place_inline (headers, message, top, texts, out_reason);
	case SC_DECORATE_PLACEMENT_PART:
		return place_part (headers, message, top, texts, out_reason);
	case SC_DECORATE_PLACEMENT_WRAP:
		return place_wrap (headers, message, texts, out_reason);
	default:
		g_assert_not_reached ();
	}
}
