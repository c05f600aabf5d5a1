/* sc-decorate-fast.c — the fast path: one plain-text body, no GMime (issue 9).
 *
 * Most list mail is a single text/plain part in US-ASCII or UTF-8 with no
 * transfer encoding.  For that shape the GMime path (parse, place inline,
 * parse the result again to check it) does nothing a byte scan cannot:
 * the body is copied, the texts go before and after it in the body's own
 * charset, and no field but the list's and the Subject changes.  This file
 * decides, from the raw CRLF bytes alone, whether a message is of that
 * shape, and builds the same bytes the GMime path would.
 *
 * It must never be taken for a message it cannot prove is of that shape:
 * every doubt — a Content-* field other than one Content-Type and one
 * Content-Transfer-Encoding, a Content-Type with anything but simple
 * parameters, a charset other than US-ASCII or UTF-8, an encoded body, a
 * NUL, a bare CR or a blank continuation line in the header block, a
 * body not valid in its charset,
 * inline PGP, texts the charset cannot carry, a 7bit body that would need
 * 8 bits — sends the message to the GMime path, which stays the
 * reference: tests/test-decorate-fast.c runs both on every corpus message
 * and on synthetic posts and requires the same bytes.
 */
#include "config.h"

#include "sc-decorate-private.h"

static gboolean
is_name_char (guchar c)
{
	return g_ascii_isalnum (c) || c == '-' || c == '_';
}

/* RFC 2045 token characters we are sure of (no specials, no '*' of RFC 2231). */
static gboolean
is_token_char (guchar c)
{
	return g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.' || c == '+';
}

static const char *
skip_space (const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A token at @p (optionally quoted, with token characters only inside),
 * copied to @out; the position after it, or NULL. */
static const char *
read_token (const char *p, GString *out)
{
	gboolean quoted = *p == '"';

	g_string_truncate (out, 0);
	if (quoted)
		p++;
	while (is_token_char ((guchar) *p))
		g_string_append_c (out, *p++);
	if (quoted) {
		if (*p != '"')
			return NULL;
		p++;
	}
	return out->len > 0 ? p : NULL;
}

/* "text/plain" with simple parameters; sets @out_utf8 from the charset
 * (none: US-ASCII). FALSE for anything else. */
static gboolean
content_type_fits (const char *value, gboolean *out_utf8)
{
	g_autoptr(GString) name = g_string_new (NULL);
	g_autoptr(GString) token = g_string_new (NULL);
	gboolean seen_charset = FALSE;
	const char *p = value;

	*out_utf8 = FALSE;
	if (g_ascii_strncasecmp (p, "text/plain", 10) != 0)
		return FALSE;
	p = skip_space (p + 10);
	while (*p == ';') {
		p = skip_space (p + 1);
		if (*p == '\0')
			break;
		p = read_token (p, name);
		if (p == NULL || name->str[0] == '"')
			return FALSE;
		p = skip_space (p);
		if (*p != '=')
			return FALSE;
		p = read_token (skip_space (p + 1), token);
		if (p == NULL)
			return FALSE;
		p = skip_space (p);
		if (g_ascii_strcasecmp (name->str, "charset") == 0) {
			if (seen_charset)
				return FALSE;
			seen_charset = TRUE;
			if (g_ascii_strcasecmp (token->str, "utf-8") == 0)
				*out_utf8 = TRUE;
			else if (g_ascii_strcasecmp (token->str, "us-ascii") != 0)
				return FALSE;
		}
	}
	return *p == '\0';
}

/* The header block: plain names, no NUL, no bare CR; at most one
 * Content-Type and one Content-Transfer-Encoding and no other Content-*. */
static gboolean
fields_fit (const ScDecorateHeaders *headers,
	    const ScDecorateField **out_type,
	    const ScDecorateField **out_encoding)
{
	*out_type = NULL;
	*out_encoding = NULL;
	for (guint i = 0; i < headers->fields->len; i++) {
		const ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		gsize length = 0;
		const guint8 *raw = g_bytes_get_data (field->raw, &length);
		gsize name_length = strlen (field->name);

		/* the name, then the colon at once (no obs-optional space) */
		if (length <= name_length || raw[name_length] != ':')
			return FALSE;
		for (gsize j = 0; j < name_length; j++) {
			if (!is_name_char (raw[j]))
				return FALSE;
		}
		for (gsize j = 0, line_start = 0; j < length; j++) {
			if (raw[j] == '\0')
				return FALSE;
			if (raw[j] != '\r')
				continue;
			if (j + 1 >= length || raw[j + 1] != '\n')
				return FALSE;
			/* a continuation of white space only: some readers end
			 * the block there */
			if (j == line_start ||
			    strspn ((const char *) raw + line_start, " \t") >= j - line_start)
				return FALSE;
			line_start = j + 2;
		}
		if (g_ascii_strncasecmp (field->name, "Content-", 8) != 0)
			continue;
		if (g_ascii_strcasecmp (field->name, "Content-Type") == 0 && *out_type == NULL)
			*out_type = field;
		else if (g_ascii_strcasecmp (field->name, "Content-Transfer-Encoding") == 0 &&
			 *out_encoding == NULL)
			*out_encoding = field;
		else
			return FALSE;
	}
	return TRUE;
}

/* Eight bytes at a time: the body is most of the message. */
static gboolean
is_ascii (const guint8 *data, gsize length)
{
	gsize i = 0;

	for (; i + 8 <= length; i += 8) {
		guint64 word;

		memcpy (&word, data + i, 8);
		if ((word & G_GUINT64_CONSTANT (0x8080808080808080)) != 0)
			return FALSE;
	}
	for (; i < length; i++) {
		if (data[i] >= 0x80)
			return FALSE;
	}
	return TRUE;
}

gboolean
sc_decorate_fast_check (const ScDecorateHeaders *headers,
			GBytes *message,
			ScDecorateFastBody *out_body)
{
	const ScDecorateField *type_field = NULL;
	const ScDecorateField *encoding_field = NULL;
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	const guint8 *body;
	gsize body_length;

	g_return_val_if_fail (out_body != NULL, FALSE);

	memset (out_body, 0, sizeof (*out_body));
	/* a blank line must end the block, or GMime and we may disagree on where */
	if (headers->open_end || headers->fields->len == 0 || headers->body_offset < 4 ||
	    headers->body_offset > length ||
	    memcmp (data + headers->body_offset - 4, "\r\n\r\n", 4) != 0)
		return FALSE;
	if (!fields_fit (headers, &type_field, &encoding_field))
		return FALSE;
	out_body->seven_bit = TRUE;
	if (type_field != NULL) {
		g_autofree char *value = sc_decorate_headers_get (headers, "Content-Type");
		if (!content_type_fits (value, &out_body->utf8))
			return FALSE;
	}
	if (encoding_field != NULL) {
		g_autofree char *value =
		    sc_decorate_headers_get (headers, "Content-Transfer-Encoding");
		if (g_ascii_strcasecmp (value, "8bit") == 0 ||
		    g_ascii_strcasecmp (value, "binary") == 0)
			out_body->seven_bit = FALSE;
		else if (g_ascii_strcasecmp (value, "7bit") != 0)
			return FALSE;
	}

	body = data + headers->body_offset;
	body_length = length - headers->body_offset;
	if (body_length > 0 && memchr (body, '\0', body_length) != NULL)
		return FALSE;
	out_body->ascii = is_ascii (body, body_length);
	if (!out_body->ascii &&
	    (!out_body->utf8 || !g_utf8_validate_len ((const char *) body, body_length, NULL)))
		return FALSE;
	if (sc_decorate_mime_is_inline_pgp (body, body_length))
		return FALSE;
	out_body->data = body_length > 0 ? body : (const guint8 *) "";
	out_body->length = body_length;
	return TRUE;
}

gboolean
sc_decorate_fast_has_text (const ScDecorateFastBody *body, const char *text)
{
	g_autoptr(GString) plain = g_string_sized_new (body->length + 1);
	g_autoptr(GString) needle = g_string_sized_new (strlen (text) + 1);

	const guint8 *p = body->data;
	const guint8 *end = body->data + body->length;

	/* as the GMime path: CRs dropped on both sides, the needle chomped */
	while (p < end) {
		const guint8 *cr = memchr (p, '\r', end - p);
		const guint8 *stop = cr != NULL ? cr : end;

		g_string_append_len (plain, (const char *) p, stop - p);
		p = stop + 1;
	}
	for (const char *c = text; *c != '\0'; c++) {
		if (*c != '\r')
			g_string_append_c (needle, *c);
	}
	g_strchomp (needle->str);
	/* no NUL in the body (sc_decorate_fast_check()): memmem is strstr */
	return memmem (plain->str, plain->len, needle->str, strlen (needle->str)) != NULL;
}

static gboolean
text_fits (const char *text, const ScDecorateFastBody *body)
{
	if (text == NULL)
		return TRUE;
	if (body->utf8 && !body->seven_bit)
		return g_utf8_validate (text, -1, NULL);
	/* US-ASCII cannot carry more; 7bit would have to become quoted-printable */
	return g_str_is_ascii (text);
}

gboolean
sc_decorate_fast_texts_fit (const ScDecorateFastBody *body, const ScDecorateTexts *texts)
{
	if (body->seven_bit && !body->ascii)
		return FALSE;
	return text_fits (texts->header_text, body) && text_fits (texts->footer_text, body);
}

/* @text with LF → CRLF (it has no CR: sc_decorate_template_expand()). */
static void
append_text (GByteArray *out, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		const char *newline = strchr (p, '\n');

		if (newline == NULL) {
			g_byte_array_append (out, (const guint8 *) p, strlen (p));
			return;
		}
		g_byte_array_append (out, (const guint8 *) p, newline - p);
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
		p = newline + 1;
	}
}

GBytes *
sc_decorate_fast_place (ScDecorateHeaders *headers,
			const ScDecorateFastBody *body,
			const ScDecorateTexts *texts)
{
	GByteArray *out = g_byte_array_sized_new (body->length + 4096);
	gsize text_start;

	if (sc_decorate_texts_empty (texts)) {
		sc_decorate_headers_write (headers, out);
		g_byte_array_append (out, body->data, body->length);
		return g_byte_array_free_to_bytes (out);
	}
	/* The body changed length: an mbox-style length would now be a lie. */
	sc_decorate_headers_remove (headers, "Content-Length", FALSE);
	sc_decorate_headers_write (headers, out);
	text_start = out->len;
	if (texts->header_text != NULL)
		append_text (out, texts->header_text);
	g_byte_array_append (out, body->data, body->length);
	/* the footer on a line of its own */
	if (out->len > text_start && out->data[out->len - 1] != '\n')
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	if (texts->footer_text != NULL)
		append_text (out, texts->footer_text);
	return g_byte_array_free_to_bytes (out);
}
