/* sc-decorate-headers.c — the top-level header block: list headers and subject prefix.
 *
 * The block is kept as the raw fields the poster sent, in order, and only
 * the fields decorate owns are touched: List-* (RFC 2369, 2919, 8058) and
 * Precedence are replaced, the Subject gets the list prefix exactly once,
 * and the MIME placement may move or rewrite Content-* fields.  Every other
 * field goes out byte for byte (DKIM signatures over them stay checkable).
 * New fields are encoded and folded by GMime.  A block that is not a header
 * block (first line no field, a stray line before the blank one) is
 * reported, never guessed at: the caller then takes only the fields before
 * the stray line (sc_decorate_headers_parse_leading()), puts the list
 * fields in front of them, and copies the rest as it came.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-i18n.h"
#include "sc-list-unsubscribe.h"
#include "sc-message-headers.h"

static gpointer
format_options_init_cb (gpointer data)
{
	GMimeFormatOptions *options = g_mime_format_options_new ();

	/* SMTP wants CRLF, and signatures are computed over that form. */
	g_mime_format_options_set_newline_format (options, GMIME_NEWLINE_FORMAT_DOS);
	return options;
}

GMimeFormatOptions *
sc_decorate_format_options (void)
{
	static GOnce once = G_ONCE_INIT;

	g_once (&once, format_options_init_cb, NULL);
	return once.retval;
}

static void
field_free (ScDecorateField *field)
{
	g_free (field->name);
	g_bytes_unref (field->raw);
	g_free (field);
}

static ScDecorateField *
field_new (const char *name, gsize name_length, GBytes *raw)
{
	ScDecorateField *field = g_new0 (ScDecorateField, 1);

	field->name = g_strndup (name, name_length);
	field->raw = raw;
	return field;
}

static ScDecorateHeaders *
headers_new (void)
{
	ScDecorateHeaders *headers = g_new0 (ScDecorateHeaders, 1);

	headers->fields = g_ptr_array_new_with_free_func ((GDestroyNotify) field_free);
	return headers;
}

void
sc_decorate_headers_free (ScDecorateHeaders *headers)
{
	if (headers == NULL)
		return;
	g_ptr_array_unref (headers->fields);
	g_free (headers);
}

ScDecorateHeaders *
sc_decorate_headers_copy (const ScDecorateHeaders *headers)
{
	ScDecorateHeaders *copy = headers_new ();

	for (guint i = 0; i < headers->fields->len; i++) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		g_ptr_array_add (
		    copy->fields,
		    field_new (field->name, strlen (field->name), g_bytes_ref (field->raw)));
	}
	copy->body_offset = headers->body_offset;
	copy->open_end = headers->open_end;
	return copy;
}

/* With @leading, a line that is neither field, continuation nor the
 * blank one ends the block there instead of failing: the fields before it
 * are returned with open_end set, and everything from that line on is
 * left to follow as it came. */
static ScDecorateHeaders *
headers_parse (GBytes *message, gboolean leading, char **out_reason)
{
	g_autoptr(ScDecorateHeaders) headers = headers_new ();
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	gsize field_start = 0;
	gsize pos = 0;
	guint line_number = 0;
	gboolean in_field = FALSE;
	gsize block_end;
	const char *name = NULL;
	gsize name_length = 0;

	g_return_val_if_fail (out_reason != NULL, NULL);

	if (length == 0) {
		*out_reason = g_strdup (_("empty message"));
		return NULL;
	}
	headers->body_offset = length;
	block_end = length;
	while (pos < length) {
		const guint8 *crlf = NULL;
		gsize line_end;
		gsize next;
		gsize colon = 0;

		line_number++;
		for (gsize i = pos; i + 1 < length; i++) {
			if (data[i] == '\r' && data[i + 1] == '\n') {
				crlf = data + i;
				break;
			}
		}
		line_end = crlf != NULL ? (gsize) (crlf - data) : length;
		next = crlf != NULL ? line_end + 2 : length;

		if (line_end == pos) {
			/* The blank line ending the block. */
			if (line_number == 1) {
				*out_reason = g_strdup (_(
				    "not a message: it starts with a blank line, no header block"));
				if (!leading)
					return NULL;
			}
			headers->body_offset = next;
			block_end = pos;
			break;
		}
		if (data[pos] == ' ' || data[pos] == '\t') {
			if (!in_field) {
				*out_reason = g_strdup (_("not a message: the first line is not a "
							   "header field"));
				if (leading) {
					headers->body_offset = block_end = pos;
					headers->open_end = TRUE;
					break;
				}
				return NULL;
			}
			pos = next;
			continue;
		}
		if (in_field) {
			g_ptr_array_add (
			    headers->fields,
			    field_new (
				name,
				name_length,
				g_bytes_new_from_bytes (message, field_start, pos - field_start)));
			in_field = FALSE;
		}
		name_length = sc_header_field_name_length (data + pos, line_end - pos, &colon);
		if (name_length == 0) {
			if (line_number == 1)
				*out_reason = g_strdup (_("not a message: the first line is not a "
							   "header field"));
			else
				*out_reason = g_strdup_printf (
				    _("header line %u is neither a field nor a continuation, "
				       "and no blank line ends the header block before it"),
				    line_number);
			if (leading) {
				headers->body_offset = block_end = pos;
				headers->open_end = TRUE;
				break;
			}
			return NULL;
		}
		name = (const char *) data + pos;
		field_start = pos;
		in_field = TRUE;
		pos = next;
	}
	if (in_field) {
		g_ptr_array_add (
		    headers->fields,
		    field_new (
			name,
			name_length,
			g_bytes_new_from_bytes (message, field_start, block_end - field_start)));
	}
	return g_steal_pointer (&headers);
}

ScDecorateHeaders *
sc_decorate_headers_parse (GBytes *message, char **out_reason)
{
	return headers_parse (message, FALSE, out_reason);
}

ScDecorateHeaders *
sc_decorate_headers_parse_leading (GBytes *message, char **out_reason)
{
	return headers_parse (message, TRUE, out_reason);
}

static gint
headers_find (const ScDecorateHeaders *headers, const char *name)
{
	for (guint i = 0; i < headers->fields->len; i++) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		if (g_ascii_strcasecmp (field->name, name) == 0)
			return (gint) i;
	}
	return -1;
}

/* The value after the colon, unfolded and trimmed. */
static char *
field_value (const ScDecorateField *field)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (field->raw, &length);
	const char *colon = memchr (data, ':', length);
	GString *value;

	if (colon == NULL)
		return g_strdup ("");
	value = g_string_sized_new (length);
	for (const char *p = colon + 1; p < data + length; p++) {
		if (*p == '\r' && p + 1 < data + length && p[1] == '\n') {
			p++;
			continue;
		}
		if (*p == '\0')
			continue;
		g_string_append_c (value, *p);
	}
	return g_strstrip (g_string_free (value, FALSE));
}

char *
sc_decorate_headers_get (const ScDecorateHeaders *headers, const char *name)
{
	gint index = headers_find (headers, name);

	if (index < 0)
		return NULL;
	return field_value (g_ptr_array_index (headers->fields, index));
}

guint
sc_decorate_headers_remove (ScDecorateHeaders *headers, const char *name, gboolean prefix)
{
	gsize name_length = strlen (name);
	guint removed = 0;

	for (guint i = headers->fields->len; i > 0; i--) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i - 1);
		gboolean match = prefix ? g_ascii_strncasecmp (field->name, name, name_length) == 0
					: g_ascii_strcasecmp (field->name, name) == 0;
		if (match) {
			g_ptr_array_remove_index (headers->fields, i - 1);
			removed++;
		}
	}
	return removed;
}

static GBytes *
format_field (const char *name, const char *value)
{
	g_autoptr(GMimeHeaderList) list = g_mime_header_list_new (NULL);
	g_autofree char *text = NULL;

	/* GMime encodes 8-bit words (RFC 2047) and folds; a CR or LF inside
	 * @value is encoded too, so no value can inject a field. */
	g_mime_header_list_append (list, name, value, "utf-8");
	text = g_mime_header_list_to_string (list, sc_decorate_format_options ());
	{
		/* the length first: argument order is unspecified, and the steal
		 * must not happen before strlen() reads it (clang does) */
		gsize length = strlen (text);
		return g_bytes_new_take (g_steal_pointer (&text), length);
	}
}

/* The list's own fields are the same on every post to it, and GMime's
 * encoder and folder cost more than all of the fast path's scanning
 * (issue 9: ~40,000 instructions a field).  Each (name, value) is
 * formatted once and the bytes kept: format_field() is a pure function of
 * its arguments (the format options never change), so the cache changes
 * no output.  Bounded: a config reload with new values starts it afresh.
 * Only the list's fields go through it, never the poster's text. */
#define FORMAT_CACHE_MAX 256

static GMutex format_cache_lock;
static GHashTable *format_cache; /* (owned) "name\nvalue" → GBytes; format_cache_lock */

static GBytes *
format_field_cached (const char *name, const char *value)
{
	g_autofree char *key = g_strconcat (name, "\n", value, NULL);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&format_cache_lock);
	GBytes *raw;

	if (format_cache == NULL)
		format_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						      (GDestroyNotify) g_bytes_unref);
	raw = g_hash_table_lookup (format_cache, key);
	if (raw != NULL)
		return g_bytes_ref (raw);
	raw = format_field (name, value);
	if (g_hash_table_size (format_cache) >= FORMAT_CACHE_MAX)
		g_hash_table_remove_all (format_cache);
	g_hash_table_insert (format_cache, g_steal_pointer (&key), g_bytes_ref (raw));
	return raw;
}

/* sc_decorate_headers_append() for the list's own fields. */
static void
headers_append_list_field (ScDecorateHeaders *headers, const char *name, const char *value)
{
	g_ptr_array_add (headers->fields,
			 field_new (name, strlen (name), format_field_cached (name, value)));
}

void
sc_decorate_headers_append (ScDecorateHeaders *headers, const char *name, const char *value)
{
	g_ptr_array_add (headers->fields,
			 field_new (name, strlen (name), format_field (name, value)));
}

void
sc_decorate_headers_append_raw (ScDecorateHeaders *headers, const char *name, const char *raw)
{
	g_ptr_array_add (headers->fields,
			 field_new (name, strlen (name), g_bytes_new (raw, strlen (raw))));
}

static void
headers_replace_bytes (ScDecorateHeaders *headers, const char *name, GBytes *raw)
{
	gint index = headers_find (headers, name);
	ScDecorateField *field;

	if (index < 0) {
		g_ptr_array_add (headers->fields, field_new (name, strlen (name), raw));
		return;
	}
	field = g_ptr_array_index (headers->fields, index);
	g_bytes_unref (field->raw);
	field->raw = raw;
}

void
sc_decorate_headers_replace (ScDecorateHeaders *headers, const char *name, const char *value)
{
	headers_replace_bytes (headers, name, format_field (name, value));
}

void
sc_decorate_headers_write (const ScDecorateHeaders *headers, GByteArray *out)
{
	for (guint i = 0; i < headers->fields->len; i++) {
		ScDecorateField *field = g_ptr_array_index (headers->fields, i);
		gsize length = 0;
		const guint8 *data = g_bytes_get_data (field->raw, &length);

		g_byte_array_append (out, data, length);
		if (length < 2 || data[length - 2] != '\r' || data[length - 1] != '\n')
			g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	}
	if (!headers->open_end)
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
}

/* The list's name as an RFC 2047 phrase, through the cache above (the
 * key's empty field name cannot be a real field's). (transfer full) */
static char *
list_name_phrase (const char *name)
{
	g_autofree char *key = g_strconcat ("\n", name, NULL);
	g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&format_cache_lock);
	GBytes *cached;
	char *phrase;

	if (format_cache == NULL)
		format_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						      (GDestroyNotify) g_bytes_unref);
	cached = g_hash_table_lookup (format_cache, key);
	if (cached != NULL)
		return g_strndup (g_bytes_get_data (cached, NULL), g_bytes_get_size (cached));
	phrase = g_mime_utils_header_encode_phrase (sc_decorate_format_options (), name, "utf-8");
	if (g_hash_table_size (format_cache) >= FORMAT_CACHE_MAX)
		g_hash_table_remove_all (format_cache);
	g_hash_table_insert (format_cache, g_steal_pointer (&key),
			     g_bytes_new (phrase, strlen (phrase)));
	return phrase;
}

void
sc_decorate_headers_set_list_fields (ScDecorateHeaders *headers, const ScListConfig *list)
{
	g_autofree char *phrase = NULL;
	g_autofree char *list_id = NULL;

	g_return_if_fail (list != NULL);

	/* The poster's List-* (a cross-post, a reply from another list) would
	 * point subscribers at the wrong list. */
	sc_decorate_headers_remove (headers, "List-", TRUE);
	sc_decorate_headers_remove (headers, "Precedence", FALSE);

	/* Written raw: GMime's unstructured encoder would encode the encoded
	 * words of an already encoded phrase a second time. */
	if (list->name != NULL && list->name[0] != '\0') {
		phrase = list_name_phrase (list->name);
		list_id = g_strdup_printf ("List-Id: %s <%s>\r\n", phrase, list->id);
	} else {
		list_id = g_strdup_printf ("List-Id: <%s>\r\n", list->id);
	}
	sc_decorate_headers_append_raw (headers, "List-Id", list_id);

	/* A personal unsubscribe-url: deliver adds both per recipient. */
	if (!sc_list_unsubscribe_is_personal (list)) {
		g_autofree char *value = sc_list_unsubscribe_value (list, NULL, NULL);

		if (value != NULL)
			headers_append_list_field (headers, "List-Unsubscribe", value);
		/* RFC 8058: one-click needs an HTTPS URI to POST to. */
		if (value != NULL && sc_list_unsubscribe_one_click (list))
			headers_append_list_field (headers,
						    "List-Unsubscribe-Post",
						    "List-Unsubscribe=One-Click");
	}
	if (list->archive_url != NULL && list->archive_url[0] != '\0') {
		g_autofree char *value = sc_list_uri_angled (list->archive_url);
		headers_append_list_field (headers, "List-Archive", value);
	}
	if (list->post != NULL && list->post[0] != '\0') {
		/* RFC 2369: "NO" marks a list where posting is not allowed. */
		g_autofree char *value = g_ascii_strcasecmp (list->post, "NO") == 0
					     ? g_strdup ("NO")
					     : sc_list_uri_angled (list->post);
		headers_append_list_field (headers, "List-Post", value);
	}
	if (list->help != NULL && list->help[0] != '\0') {
		g_autofree char *value = sc_list_uri_angled (list->help);
		headers_append_list_field (headers, "List-Help", value);
	}
	headers_append_list_field (headers, "Precedence", "list");
}

typedef enum {
	MARKER_NONE,
	MARKER_REPLY,
	MARKER_FORWARD,
} MarkerKind;

/* "Re:", "RE:", "Aw:", "Sv:", "Antw:", "Fwd:", "Fw:", "WG:", "TR:", also
 * counted ("Re[2]:", "Re(2):", "Re^2:") and with a space before the colon
 * as French clients write it. */
static MarkerKind
subject_marker (const char *text, gsize *out_length)
{
	static const struct {
		const char *word;
		MarkerKind kind;
	} markers[] = {
	    {"re", MARKER_REPLY},
	    {"aw", MARKER_REPLY},
	    {"sv", MARKER_REPLY},
	    {"antw", MARKER_REPLY},
	    {"odp", MARKER_REPLY},
	    {"fwd", MARKER_FORWARD},
	    {"fw", MARKER_FORWARD},
	    {"wg", MARKER_FORWARD},
	    {"tr", MARKER_FORWARD},
	};
	gsize word_length = 0;

	while (g_ascii_isalpha (text[word_length]))
		word_length++;
	for (gsize i = 0; i < G_N_ELEMENTS (markers); i++) {
		gsize j = word_length;

		if (strlen (markers[i].word) != word_length ||
		    g_ascii_strncasecmp (text, markers[i].word, word_length) != 0)
			continue;
		if (text[j] == '[' || text[j] == '(') {
			char close = text[j] == '[' ? ']' : ')';
			gsize digits = ++j;
			while (g_ascii_isdigit (text[j]))
				j++;
			if (j == digits || text[j] != close)
				return MARKER_NONE;
			j++;
		} else if (text[j] == '^') {
			gsize digits = ++j;
			while (g_ascii_isdigit (text[j]))
				j++;
			if (j == digits)
				return MARKER_NONE;
		}
		if (text[j] == ' ' && text[j + 1] == ':')
			j++;
		if (text[j] != ':')
			return MARKER_NONE;
		*out_length = j + 1;
		return markers[i].kind;
	}
	return MARKER_NONE;
}

static gboolean
is_subject_space (char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *
sc_decorate_subject_normalize (const char *subject, const char *prefix)
{
	g_autofree char *want = NULL;
	g_autofree char *original = NULL;
	g_autoptr(GString) result = NULL;
	const char *p = subject;
	gsize want_length;
	gboolean reply = FALSE;
	gboolean forward = FALSE;
	gsize end;

	g_return_val_if_fail (subject != NULL, NULL);
	g_return_val_if_fail (prefix != NULL, NULL);

	want = g_strstrip (g_strdup (prefix));
	want_length = strlen (want);
	if (want_length == 0)
		return NULL;
	result = g_string_new (want);

	/* Peel the leading run of prefixes and reply/forward markers, in any
	 * order and number ("Re: [list] Re: [list] x"); keep one of each kind
	 * in the order first seen. */
	for (;;) {
		MarkerKind kind;
		gsize length = 0;

		while (is_subject_space (*p))
			p++;
		/* A word-like prefix ("DEV") must not eat the start of "Development". */
		if (g_ascii_strncasecmp (p, want, want_length) == 0 &&
		    (!g_ascii_isalnum (want[want_length - 1]) ||
		     !g_ascii_isalnum (p[want_length]))) {
			p += want_length;
			continue;
		}
		kind = subject_marker (p, &length);
		if (kind == MARKER_NONE)
			break;
		if (kind == MARKER_REPLY && !reply) {
			reply = TRUE;
			g_string_append (result, " Re:");
		} else if (kind == MARKER_FORWARD && !forward) {
			forward = TRUE;
			g_string_append (result, " Fwd:");
		}
		p += length;
	}
	if (*p != '\0') {
		g_string_append_c (result, ' ');
		g_string_append (result, p);
	}
	end = result->len;
	while (end > 0 && is_subject_space (result->str[end - 1]))
		end--;
	g_string_truncate (result, end);

	original = g_strdup (subject);
	g_strstrip (original);
	if (strcmp (original, result->str) == 0)
		return NULL;
	return g_string_free (g_steal_pointer (&result), FALSE);
}

/* A raw subject is written back as it came, folded before white space
 * once a line passes 78 columns; a longer word stays whole. */
static GBytes *
format_raw_subject (const char *value)
{
	GString *text = g_string_new ("Subject: ");
	gsize line_start = 0;

	for (const char *p = value; *p != '\0'; p++) {
		if ((*p == ' ' || *p == '\t') && text->len - line_start > 78) {
			g_string_append (text, "\r\n");
			line_start = text->len;
		}
		g_string_append_c (text, *p);
	}
	g_string_append (text, "\r\n");
	return g_string_free_to_bytes (text);
}

void
sc_decorate_headers_prepend_list_fields (ScDecorateHeaders *headers, const ScListConfig *list)
{
	g_autoptr(ScDecorateHeaders) added = headers_new ();

	sc_decorate_headers_set_list_fields (added, list);
	sc_decorate_headers_remove (headers, "List-", TRUE);
	sc_decorate_headers_remove (headers, "Precedence", FALSE);
	for (guint i = added->fields->len; i > 0; i--)
		g_ptr_array_insert (headers->fields, 0, g_ptr_array_steal_index (added->fields, i - 1));
}

gboolean
sc_decorate_headers_prefix_subject (ScDecorateHeaders *headers, const char *prefix)
{
	g_autofree char *raw = NULL;
	g_autofree char *subject = NULL;
	g_autofree char *normalized = NULL;

	if (prefix == NULL || prefix[0] == '\0')
		return FALSE;
	raw = sc_decorate_headers_get (headers, "Subject");
	if (raw == NULL) {
		g_autofree char *value = g_strstrip (g_strdup (prefix));
		if (value[0] == '\0')
			return FALSE;
		sc_decorate_headers_append (headers, "Subject", value);
		return TRUE;
	}
	if (g_utf8_validate (raw, -1, NULL)) {
		/* ASCII with encoded words, or RFC 6532 UTF-8: decode, prefix and
		 * let GMime encode the result. */
		subject = g_mime_utils_header_decode_text (NULL, raw);
		normalized = sc_decorate_subject_normalize (subject, prefix);
		if (normalized == NULL)
			return FALSE;
		sc_decorate_headers_replace (headers, "Subject", normalized);
		return TRUE;
	}

	/* 8-bit bytes in an unknown charset: decoding would have to guess and
	 * freeze the guess into the subject, so the markers are handled on the
	 * raw bytes and everything else is copied as it came. */
	if (g_str_is_ascii (prefix)) {
		normalized = sc_decorate_subject_normalize (raw, prefix);
	} else {
		g_autofree char *encoded =
		    g_mime_utils_header_encode_text (sc_decorate_format_options (),
						     prefix,
						     "utf-8");
		normalized = sc_decorate_subject_normalize (raw, encoded);
	}
	if (normalized == NULL)
		return FALSE;
	headers_replace_bytes (headers, "Subject", format_raw_subject (normalized));
	return TRUE;
}
