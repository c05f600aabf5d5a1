/* test-decorate.c — the decorate stage on small messages and on every corpus message.
 *
 * The unit cases pin the behaviour: subject prefix once, list headers,
 * footer placement per MIME shape, templates, pass-through of garbage.
 * The corpus cases hold decorate to its promise on real mail: a message
 * either passes through unchanged with a note, or parses back with the
 * texts exactly once, the prefix exactly once, and every part it did not
 * mean to touch (attachments, signed entities) present byte for byte.
 * "Byte for byte" is checked against the raw input bytes (CRLF form, mbox
 * "From " line dropped), located through GMime's parse of the input.
 */
#include "config.h"

#include <gmime/gmime.h>

#include "sc-handler.h"
#include "sc-test-util.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeMessage, g_object_unref)

#define FOOTER_MARKER "footer-marker-dev.lists.example.org"
#define HEADER_MARKER "header-marker-dev"
#define LIST_ID_VALUE "dev <dev.lists.example.org>"

typedef struct {
	ScListConfig list;
	char *unsubscribe[3];
	ScStageContext context;
	const char *recipients[2];
	GBytes *input;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	memset (fixture, 0, sizeof (*fixture));
	fixture->list.id = (char *) "dev.lists.example.org";
	fixture->list.name = (char *) "dev";
	fixture->list.subject_prefix = (char *) "[dev]";
	fixture->list.footer_template = (char *) "-- \nfooter-marker-$list_id\n";
	fixture->list.post = (char *) "dev@lists.example.org";
	fixture->list.help = (char *) "https://lists.example.org/help/dev";
	fixture->list.archive_url = (char *) "https://lists.example.org/archive/dev";
	fixture->unsubscribe[0] = (char *) "https://lists.example.org/unsubscribe/dev";
	fixture->unsubscribe[1] = (char *) "mailto:dev-leave@lists.example.org";
	fixture->list.unsubscribe = fixture->unsubscribe;
	fixture->list.unsubscribe_one_click = TRUE;
	fixture->recipients[0] = "bob@example.net";
	fixture->context.queue_id = "q0123456789";
	fixture->context.stage = "decorate";
	fixture->context.list_id = fixture->list.id;
	fixture->context.sender = "alice@example.org";
	fixture->context.recipients = fixture->recipients;
	fixture->context.list = &fixture->list;
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	sc_stage_context_clear_outputs (&fixture->context);
	g_clear_pointer (&fixture->input, g_bytes_unref);
}

/* Runs the handler; the output is never NULL and the run never fails. */
static GBytes *
decorate_bytes (Fixture *fixture, GBytes *input)
{
	g_autoptr(GError) error = NULL;

	sc_stage_context_clear_outputs (&fixture->context);
	g_clear_pointer (&fixture->input, g_bytes_unref);
	fixture->input = g_bytes_ref (input);
	fixture->context.raw = input;
	fixture->context.current = input;
	g_assert_true (sc_handler_decorate.run (&fixture->context, &error));
	g_assert_no_error (error);
	g_assert_nonnull (fixture->context.output);
	return fixture->context.output;
}

static GBytes *
decorate_text (Fixture *fixture, const char *message)
{
	g_autoptr(GBytes) input = g_bytes_new (message, strlen (message));
	return decorate_bytes (fixture, input);
}

/* The test's own CRLF normalisation, independent of the handler's. */
static GBytes *
normalize (GBytes *bytes)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (bytes, &length);
	GByteArray *out = g_byte_array_sized_new (length + length / 16 + 2);
	gsize i = 0;

	if (length > 5 && memcmp (data, "From ", 5) == 0 && data[5] != ' ' && data[5] != ':') {
		while (i < length && data[i] != '\n')
			i++;
		i++;
	}
	for (; i < length; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			g_byte_array_append (out, (const guint8 *) "\r", 1);
		g_byte_array_append (out, data + i, 1);
	}
	return g_byte_array_free_to_bytes (out);
}

/* Bytes with a NUL after them, for string comparisons. (transfer full) */
static char *
bytes_string (GBytes *bytes)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (bytes, &length);

	return g_strndup (data != NULL ? data : "", length);
}

static gboolean
bytes_has_suffix (GBytes *bytes, const char *suffix)
{
	g_autofree char *text = bytes_string (bytes);
	return g_str_has_suffix (text, suffix);
}

static gboolean
bytes_has_prefix (GBytes *bytes, const char *prefix)
{
	g_autofree char *text = bytes_string (bytes);
	return g_str_has_prefix (text, prefix);
}

static gboolean
bytes_contain (GBytes *haystack, const guint8 *needle, gsize length)
{
	gsize haystack_length = 0;
	const guint8 *data = g_bytes_get_data (haystack, &haystack_length);

	if (length == 0)
		return TRUE;
	return memmem (data, haystack_length, needle, length) != NULL;
}

static gboolean
bytes_contain_text (GBytes *haystack, const char *needle)
{
	return bytes_contain (haystack, (const guint8 *) needle, strlen (needle));
}

static GMimeMessage *
parse_bytes (GBytes *bytes)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (bytes, &length);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer (data, length);
	GMimeParser *parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *message;

	g_mime_parser_set_format (parser, GMIME_FORMAT_MESSAGE);
	message = g_mime_parser_construct_message (parser, NULL);
	g_object_unref (parser);
	g_object_unref (stream);
	return message;
}

static GMimeMessage *
parse_output (GBytes *output)
{
	GMimeMessage *message = parse_bytes (output);
	g_assert_nonnull (message);
	g_assert_nonnull (g_mime_message_get_mime_part (message));
	return message;
}

static guint
count_occurrences (const char *haystack, const char *needle)
{
	guint count = 0;

	for (const char *p = strstr (haystack, needle); p != NULL; p = strstr (p + 1, needle))
		count++;
	return count;
}

static char *
strip_cr (const char *text)
{
	GString *result = g_string_new (NULL);

	for (const char *p = text; *p != '\0'; p++) {
		if (*p != '\r')
			g_string_append_c (result, *p);
	}
	return g_string_free (result, FALSE);
}

/* Every object of the tree, parents before children, enclosed messages
 * entered; @depth bounds the walk (GMime itself stops at 512 levels). */
static void
collect_objects (GMimeObject *object, GPtrArray *objects, guint depth)
{
	if (object == NULL || depth > 1100)
		return;
	g_ptr_array_add (objects, object);
	if (GMIME_IS_MULTIPART (object)) {
		GMimeMultipart *multipart = GMIME_MULTIPART (object);
		for (int i = 0; i < g_mime_multipart_get_count (multipart); i++)
			collect_objects (g_mime_multipart_get_part (multipart, i),
					 objects,
					 depth + 1);
	} else if (GMIME_IS_MESSAGE_PART (object)) {
		GMimeMessage *inner = g_mime_message_part_get_message (GMIME_MESSAGE_PART (object));
		if (inner != NULL)
			collect_objects (g_mime_message_get_mime_part (inner), objects, depth + 1);
	}
}

static GPtrArray *
message_objects (GMimeMessage *message)
{
	GPtrArray *objects = g_ptr_array_new ();

	collect_objects (g_mime_message_get_mime_part (message), objects, 0);
	return objects;
}

/* Occurrences of @needle in the decoded text of every text part. */
static guint
count_in_text_parts (GMimeMessage *message, const char *needle)
{
	g_autoptr(GPtrArray) objects = message_objects (message);
	guint count = 0;

	for (guint i = 0; i < objects->len; i++) {
		GMimeObject *object = g_ptr_array_index (objects, i);
		g_autofree char *text = NULL;

		if (!GMIME_IS_TEXT_PART (object))
			continue;
		text = g_mime_text_part_get_text (GMIME_TEXT_PART (object));
		if (text != NULL)
			count += count_occurrences (text, needle);
	}
	return count;
}

static char *
decoded_text (GMimeObject *object)
{
	g_autofree char *text = NULL;

	g_assert_true (GMIME_IS_TEXT_PART (object));
	text = g_mime_text_part_get_text (GMIME_TEXT_PART (object));
	g_assert_nonnull (text);
	return strip_cr (text);
}

static guint
header_count (GMimeMessage *message, const char *name)
{
	GMimeHeaderList *list = g_mime_object_get_header_list (GMIME_OBJECT (message));
	guint count = 0;

	for (int i = 0; i < g_mime_header_list_get_count (list); i++) {
		GMimeHeader *header = g_mime_header_list_get_header_at (list, i);
		if (g_ascii_strcasecmp (g_mime_header_get_name (header), name) == 0)
			count++;
	}
	return count;
}

/* Where GMime found a part's encoded content in the bytes it parsed. */
static gboolean
content_range (GMimeObject *object, gsize total, gsize *out_start, gsize *out_end)
{
	GMimeDataWrapper *content;
	GMimeStream *stream;

	if (!GMIME_IS_PART (object))
		return FALSE;
	content = g_mime_part_get_content (GMIME_PART (object));
	if (content == NULL)
		return FALSE;
	stream = g_mime_data_wrapper_get_stream (content);
	if (stream == NULL || stream->bound_start < 0)
		return FALSE;
	*out_start = (gsize) stream->bound_start;
	*out_end = stream->bound_end < 0 ? total : (gsize) stream->bound_end;
	return *out_end >= *out_start && *out_end <= total;
}

/* Where an entity starts: its first header, else its content. */
static gboolean
object_start (GMimeObject *object, gsize total, gsize *out_start)
{
	GMimeHeaderList *list = g_mime_object_get_header_list (object);
	gint64 first = -1;
	gsize end = 0;

	for (int i = 0; list != NULL && i < g_mime_header_list_get_count (list); i++) {
		gint64 offset =
		    g_mime_header_get_offset (g_mime_header_list_get_header_at (list, i));
		if (offset >= 0 && (first < 0 || offset < first))
			first = offset;
	}
	if (first >= 0) {
		*out_start = (gsize) first;
		return TRUE;
	}
	if (GMIME_IS_MULTIPART (object) &&
	    g_mime_multipart_get_count (GMIME_MULTIPART (object)) > 0)
		return object_start (g_mime_multipart_get_part (GMIME_MULTIPART (object), 0),
				     total,
				     out_start);
	return content_range (object, total, out_start, &end);
}

/* Top-level header fields of a CRLF message, each with its CRLF. */
static GPtrArray *
top_level_fields (GBytes *message)
{
	GPtrArray *fields = g_ptr_array_new_with_free_func (g_free);
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	const char *end = g_strstr_len (data, length, "\r\n\r\n");
	const char *p = data;

	if (end == NULL)
		return fields;
	end += 2;
	while (p < end) {
		const char *q = p;
		do {
			const char *crlf = g_strstr_len (q, end - q, "\r\n");
			q = crlf != NULL ? crlf + 2 : end;
		} while (q < end && (*q == ' ' || *q == '\t'));
		g_ptr_array_add (fields, g_strndup (p, q - p));
		p = q;
	}
	return fields;
}

/* The checks every decorated message must pass. */
static void
assert_decorated (Fixture *fixture, GBytes *input_raw, GBytes *output_raw)
{
	g_autoptr(GBytes) input = normalize (input_raw);
	g_autoptr(GBytes) output = normalize (output_raw);
	g_autoptr(GMimeMessage) in_message = parse_bytes (input);
	g_autoptr(GMimeMessage) out_message = parse_output (output);
	g_autoptr(GPtrArray) in_objects = NULL;
	g_autoptr(GPtrArray) fields = top_level_fields (input);
	GMimeObject *in_top;
	GMimeObject *out_top = g_mime_message_get_mime_part (out_message);
	const char *subject = g_mime_message_get_subject (out_message);
	gsize input_length = g_bytes_get_size (input);
	gboolean inline_placed;
	guint leaves = 0;

	/* CRLF throughout. */
	{
		gsize length = 0;
		const guint8 *data = g_bytes_get_data (output_raw, &length);
		for (gsize i = 0; i < length; i++) {
			if (data[i] == '\n')
				g_assert_true (i > 0 && data[i - 1] == '\r');
		}
	}

	/* Prefix once, at the front. */
	g_assert_nonnull (subject);
	g_assert_true (g_str_has_prefix (subject, "[dev]"));
	g_assert_cmpuint (count_occurrences (subject, "[dev]"), ==, 1);

	/* List fields once each, the poster's gone. */
	g_assert_cmpuint (header_count (out_message, "List-Id"), ==, 1);
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (out_message), "List-Id"),
			 ==,
			 LIST_ID_VALUE);
	g_assert_cmpuint (header_count (out_message, "List-Post"), ==, 1);
	g_assert_cmpuint (header_count (out_message, "Precedence"), ==, 1);

	/* Texts exactly once where a reader sees text. */
	if (fixture->list.footer_template != NULL)
		g_assert_cmpuint (count_in_text_parts (out_message, FOOTER_MARKER), ==, 1);
	if (fixture->list.header_template != NULL)
		g_assert_cmpuint (count_in_text_parts (out_message, HEADER_MARKER), ==, 1);

	/* Every other header field of the poster's, byte for byte. */
	for (guint i = 0; i < fields->len; i++) {
		const char *field = g_ptr_array_index (fields, i);
		if (g_ascii_strncasecmp (field, "List-", 5) == 0 ||
		    g_ascii_strncasecmp (field, "Subject", 7) == 0 ||
		    g_ascii_strncasecmp (field, "Precedence", 10) == 0 ||
		    g_ascii_strncasecmp (field, "Content-", 8) == 0)
			continue;
		if (!bytes_contain_text (output, field))
			g_error ("header field lost or changed: %.60s", field);
	}

	/* Wrapped: the whole original body is the first (or second) part. */
	if (GMIME_IS_MULTIPART (out_top) &&
	    g_str_has_prefix (g_mime_multipart_get_boundary (GMIME_MULTIPART (out_top)),
			      "=_stagecoach_")) {
		gsize length = 0;
		const char *data = g_bytes_get_data (input, &length);
		const char *end = g_strstr_len (data, length, "\r\n\r\n");
		gsize offset = end != NULL ? (gsize) (end - data) + 4 : length;

		if (!bytes_contain (output, (const guint8 *) data + offset, length - offset))
			g_error ("the wrapped body is not in the output byte for byte");
		g_test_message ("wrapped body checked byte for byte");
	}

	/* The input's parts, located in the input bytes, found in the output. */
	if (in_message == NULL || g_mime_message_get_mime_part (in_message) == NULL)
		return;
	in_top = g_mime_message_get_mime_part (in_message);
	inline_placed = GMIME_IS_PART (in_top) && GMIME_IS_TEXT_PART (out_top);
	in_objects = message_objects (in_message);
	for (guint i = 0; i < in_objects->len; i++) {
		GMimeObject *object = g_ptr_array_index (in_objects, i);
		const guint8 *data = g_bytes_get_data (input, NULL);
		gsize start = 0;
		gsize end = 0;

		if (GMIME_IS_PART (object)) {
			/* The one text part that got the texts is the exception. */
			if (object == in_top && inline_placed) {
				g_autofree char *before = decoded_text (in_top);
				g_autofree char *after = decoded_text (out_top);
				g_assert_nonnull (strstr (after, before));
				continue;
			}
			if (!content_range (object, input_length, &start, &end))
				continue;
			/* A nested part with its headers; the top one's headers mix
			 * with the message's and are checked above. */
			if (object != in_top)
				g_assert_true (object_start (object, input_length, &start));
			if (!bytes_contain (output, data + start, end - start))
				g_error ("part at %" G_GSIZE_FORMAT "..%" G_GSIZE_FORMAT
					 " is not in the output byte for byte",
					 start,
					 end);
			leaves++;
		} else if (GMIME_IS_MULTIPART_SIGNED (object) &&
			   g_mime_multipart_get_count (GMIME_MULTIPART (object)) == 2) {
			/* Signed content, the boundary and the signature, as one. */
			GMimeMultipart *signed_part = GMIME_MULTIPART (object);
			gsize content_start = 0;
			if (!object_start (g_mime_multipart_get_part (signed_part, 0),
					   input_length,
					   &start) ||
			    !content_range (g_mime_multipart_get_part (signed_part, 1),
					    input_length,
					    &content_start,
					    &end) ||
			    end < start)
				continue;
			if (!bytes_contain (output, data + start, end - start))
				g_error ("signed entity is not in the output byte for byte");
		}
	}
	g_test_message ("%u parts checked byte for byte", leaves);
}

static gboolean
bytes_end_with (GBytes *bytes, const guint8 *tail, gsize tail_length)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (bytes, &length);

	return length >= tail_length && memcmp (data + length - tail_length, tail, tail_length) == 0;
}

/* A message decorate cannot follow: the list fields in its first header
 * block, no text added, and its body (all after the input's first blank
 * line, CRLF form) at the end byte for byte. */
static void
assert_fields_only (Fixture *fixture, GBytes *input, GBytes *output)
{
	g_autoptr(GBytes) crlf = normalize (input);
	gsize length = 0;
	const char *data = g_bytes_get_data (crlf, &length);
	const char *blank = g_strstr_len (data, length, "\r\n\r\n");
	gsize out_length = 0;
	const char *out = g_bytes_get_data (output, &out_length);
	const char *out_blank = g_strstr_len (out, out_length, "\r\n\r\n");
	g_autofree char *out_headers = NULL;

	g_assert_nonnull (fixture->context.note);
	g_test_message ("note: %s", fixture->context.note);
	g_assert_nonnull (strstr (fixture->context.note, "list fields only"));
	out_headers = g_strndup (out, out_blank != NULL ? (gsize) (out_blank - out) + 2 : out_length);
	g_assert_nonnull (strstr (out_headers, "List-Id: " LIST_ID_VALUE "\r\n"));
	g_assert_nonnull (strstr (out_headers, "Precedence: list\r\n"));
	g_assert_null (g_strstr_len (out, out_length, FOOTER_MARKER));
	if (blank != NULL)
		g_assert_true (bytes_end_with (output,
					       (const guint8 *) blank + 4,
					       length - (blank + 4 - data)));
}

static char *
output_headers (GBytes *output)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (output, &length);
	const char *end = g_strstr_len (data, length, "\r\n\r\n");

	g_assert_nonnull (end);
	return g_strndup (data, end - data + 2);
}

/* ---- subject ---------------------------------------------------------- */

static void
test_subject (Fixture *fixture, gconstpointer user_data)
{
	static const struct {
		const char *raw;
		const char *expected;
	} cases[] = {
	    {"hello", "[dev] hello"},
	    {"[dev] hello", "[dev] hello"},
	    {"[DEV] hello", "[dev] hello"},
	    {"Re: hello", "[dev] Re: hello"},
	    {"RE: hello", "[dev] Re: hello"},
	    {"Aw: hello", "[dev] Re: hello"},
	    {"Fwd: hello", "[dev] Fwd: hello"},
	    {"Re: [dev] Re: [dev] hello", "[dev] Re: hello"},
	    {"[dev] Re: [dev] Re: hello", "[dev] Re: hello"},
	    {"Re: Re[2]: RE : [dev] hello", "[dev] Re: hello"},
	    {"Fwd: Re: [dev] hello", "[dev] Fwd: Re: hello"},
	    {"Re: [other] hello", "[dev] Re: [other] hello"},
	    {"Reply all to this", "[dev] Reply all to this"},
	    {"=?iso-8859-1?q?Gr=FC=DFe?=", "[dev] Grüße"},
	    {"=?utf-8?b?UmU6IFtkZXZdIMOcYmVyc2ljaHQ=?=", "[dev] Re: Übersicht"},
	    {"Re: =?iso-8859-1?q?=5Bdev=5D_Gr=FC=DFe?=", "[dev] Re: Grüße"},
	    {"", "[dev]"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *message =
		    g_strdup_printf ("From: alice@example.org\r\nSubject: %s\r\n\r\nhi\r\n",
				     cases[i].raw);
		g_autoptr(GMimeMessage) parsed = NULL;
		g_autofree char *headers = NULL;
		GBytes *output = decorate_text (fixture, message);

		parsed = parse_output (output);
		g_test_message ("%s → %s", cases[i].raw, g_mime_message_get_subject (parsed));
		g_assert_cmpstr (g_mime_message_get_subject (parsed), ==, cases[i].expected);
		/* Written as ASCII, RFC 2047 where needed. */
		headers = output_headers (output);
		g_assert_true (g_str_is_ascii (headers));
		g_assert_cmpuint (header_count (parsed, "Subject"), ==, 1);
	}
}

static void
test_subject_unchanged_raw (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From: alice@example.org\r\n"
					"Subject: [dev] Re: =?iso-8859-1?q?Gr=FC=DFe?=\r\n"
					"\r\nhi\r\n");

	/* Already right: the poster's encoding stays. */
	g_assert_true (
	    bytes_contain_text (output, "Subject: [dev] Re: =?iso-8859-1?q?Gr=FC=DFe?=\r\n"));
}

static void
test_subject_raw_8bit (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From: alice@example.org\n"
					"Subject: RE: Caf\xe9 au lait\n"
					"\n"
					"hi\n");

	/* Unknown 8-bit charset: markers fixed, bytes kept, nothing guessed. */
	g_assert_true (bytes_contain_text (output, "Subject: [dev] Re: Caf\xe9 au lait\r\n"));
}

static void
test_subject_missing (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture, "From: alice@example.org\r\n\r\nhi\r\n");
	g_autoptr(GMimeMessage) parsed = parse_output (output);

	g_assert_cmpstr (g_mime_message_get_subject (parsed), ==, "[dev]");
}

static void
test_subject_word_prefix (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;

	fixture->list.subject_prefix = (char *) "DEV:";
	output = decorate_text (
	    fixture,
	    "From: alice@example.org\r\nSubject: Re: DEV: Development\r\n\r\nhi\r\n");
	parsed = parse_output (output);
	g_assert_cmpstr (g_mime_message_get_subject (parsed), ==, "DEV: Re: Development");
}

static void
test_subject_no_prefix (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;

	fixture->list.subject_prefix = NULL;
	output = decorate_text (fixture,
				"From: alice@example.org\r\nSubject: Re: Re: hello\r\n\r\nhi\r\n");
	g_assert_true (bytes_contain_text (output, "Subject: Re: Re: hello\r\n"));
}

/* ---- list headers ----------------------------------------------------- */

static void
test_headers_list (Fixture *fixture, gconstpointer user_data)
{
	static const char message[] =
	    "Received: from mx.example.org by lists.example.org; Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1;\n"
	    "\th=from:subject; bh=abc=; b=def=\n"
	    "From: alice@example.org\n"
	    "List-Id: Other list <other.example.com>\n"
	    "List-Unsubscribe: <mailto:other-leave@example.com>\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
	    "list-archive: <https://other.example.com/>\n"
	    "Precedence: bulk\n"
	    "Subject: hello\n"
	    "\n"
	    "hi\n";
	GBytes *output = decorate_text (fixture, message);
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeObject *object = GMIME_OBJECT (parsed);

	g_assert_cmpstr (g_mime_object_get_header (object, "List-Id"), ==, LIST_ID_VALUE);
	g_assert_cmpstr (g_mime_object_get_header (object, "List-Post"),
			 ==,
			 "<mailto:dev@lists.example.org>");
	g_assert_cmpstr (g_mime_object_get_header (object, "List-Help"),
			 ==,
			 "<https://lists.example.org/help/dev>");
	g_assert_cmpstr (g_mime_object_get_header (object, "List-Archive"),
			 ==,
			 "<https://lists.example.org/archive/dev>");
	g_assert_cmpstr (g_mime_object_get_header (object, "List-Unsubscribe"),
			 ==,
			 "<https://lists.example.org/unsubscribe/dev>, "
			 "<mailto:dev-leave@lists.example.org>");
	g_assert_cmpstr (g_mime_object_get_header (object, "List-Unsubscribe-Post"),
			 ==,
			 "List-Unsubscribe=One-Click");
	g_assert_cmpstr (g_mime_object_get_header (object, "Precedence"), ==, "list");
	for (guint i = 0; i < 6; i++) {
		const char *name = (const char *[]){"List-Id",
						    "List-Unsubscribe",
						    "List-Unsubscribe-Post",
						    "List-Archive",
						    "Precedence",
						    "List-Post"}[i];
		g_assert_cmpuint (header_count (parsed, name), ==, 1);
	}
	g_assert_false (bytes_contain_text (output, "other"));
	/* Fields decorate does not own go out as they came. */
	g_assert_true (bytes_contain_text (output,
					   "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; "
					   "s=s1;\r\n\th=from:subject; bh=abc=; b=def=\r\n"));
	g_assert_true (bytes_contain_text (output, "Received: from mx.example.org by"));
}

static void
test_headers_one_click_needs_https (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;

	fixture->unsubscribe[0] = (char *) "dev-leave@lists.example.org";
	fixture->unsubscribe[1] = NULL;
	fixture->list.post = (char *) "NO";
	fixture->list.name = (char *) "Dev, the list";
	output = decorate_text (fixture, "From: alice@example.org\r\nSubject: x\r\n\r\nhi\r\n");
	parsed = parse_output (output);
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (parsed), "List-Unsubscribe"),
			 ==,
			 "<mailto:dev-leave@lists.example.org>");
	g_assert_null (g_mime_object_get_header (GMIME_OBJECT (parsed), "List-Unsubscribe-Post"));
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (parsed), "List-Post"), ==, "NO");
	g_assert_true (
	    bytes_contain_text (output, "List-Id: \"Dev, the list\" <dev.lists.example.org>\r\n"));
}

/* ---- footer in a text/plain body -------------------------------------- */

static void
test_footer_7bit (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From: alice@example.org\n"
					"Subject: hello\n"
					"\n"
					"Hello list,\n"
					"this is the body.\n");

	g_assert_true (bytes_has_suffix (output,
					 "\r\n\r\nHello list,\r\nthis is the body.\r\n"
					 "-- \r\nfooter-marker-dev.lists.example.org\r\n"));
	g_assert_false (bytes_contain_text (output, "Content-Transfer-Encoding"));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_footer_no_final_newline (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output =
	    decorate_text (fixture, "From: alice@example.org\r\nSubject: x\r\n\r\nlast line");

	g_assert_true (
	    bytes_has_suffix (output,
			      "last line\r\n-- \r\nfooter-marker-dev.lists.example.org\r\n"));
}

static void
test_footer_latin1_qp (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *text = NULL;

	fixture->list.footer_template = (char *) "-- \nGrüße von $list_name\n";
	output = decorate_text (
	    fixture,
	    "From: alice@example.org\n"
	    "Subject: hello\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "Gr=FC=DFe aus K=F6ln, mit einer sehr langen Zeile die umbrochen werden =\n"
	    "muss.\n");
	parsed = parse_output (output);
	/* Same charset, same encoding: the footer is latin1 QP too. */
	g_assert_true (
	    bytes_contain_text (output, "Content-Type: text/plain; charset=iso-8859-1\r\n"));
	g_assert_true (
	    bytes_contain_text (output, "Content-Transfer-Encoding: quoted-printable\r\n"));
	g_assert_true (bytes_contain_text (output, "--=20\r\nGr=FC=DFe von dev"));
	text = decoded_text (g_mime_message_get_mime_part (parsed));
	g_assert_cmpstr (text,
			 ==,
			 "Grüße aus Köln, mit einer sehr langen Zeile die umbrochen werden muss.\n"
			 "-- \nGrüße von dev\n");
}

static void
test_footer_latin1_to_utf8 (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *text = NULL;

	/* "→" and "€" do not exist in latin1: the part becomes UTF-8. */
	fixture->list.footer_template = (char *) "-- \n→ $list_name kostet 0 €\n";
	output = decorate_text (fixture,
				"From: alice@example.org\n"
				"Subject: hello\n"
				"MIME-Version: 1.0\n"
				"Content-Type: text/plain; charset=\"iso-8859-1\"; format=flowed\n"
				"Content-Transfer-Encoding: 8bit\n"
				"\n"
				"Gr\xfc\xdf"
				"e\n");
	parsed = parse_output (output);
	g_assert_cmpstr (
	    g_mime_object_get_content_type_parameter (g_mime_message_get_mime_part (parsed),
						      "charset"),
	    ==,
	    "utf-8");
	g_assert_cmpstr (
	    g_mime_object_get_content_type_parameter (g_mime_message_get_mime_part (parsed),
						      "format"),
	    ==,
	    "flowed");
	g_assert_true (bytes_contain_text (output, "Content-Transfer-Encoding: 8bit\r\n"));
	text = decoded_text (g_mime_message_get_mime_part (parsed));
	g_assert_cmpstr (text, ==, "Grüße\n-- \n→ dev kostet 0 €\n");
}

static void
test_footer_7bit_to_qp (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *text = NULL;

	/* No MIME at all and a non-ASCII footer: UTF-8, quoted-printable. */
	fixture->list.footer_template = (char *) "-- \nÜber $list_name\n";
	output = decorate_text (fixture, "From: alice@example.org\nSubject: x\n\nplain\n");
	parsed = parse_output (output);
	g_assert_true (bytes_contain_text (output, "MIME-Version: 1.0\r\n"));
	g_assert_true (
	    bytes_contain_text (output, "Content-Transfer-Encoding: quoted-printable\r\n"));
	g_assert_true (bytes_contain_text (output, "=C3=9Cber dev"));
	text = decoded_text (g_mime_message_get_mime_part (parsed));
	g_assert_cmpstr (text, ==, "plain\n-- \nÜber dev\n");
}

/* The charsets decorate checks without iconv (US-ASCII, UTF-8) decide as
 * iconv did: text that is not what its charset claims is wrapped, not
 * appended to; a footer the charset cannot carry makes the part UTF-8. */
static void
test_footer_charset_checks (Fixture *fixture, gconstpointer user_data)
{
	static const char *const claims_wrongly[] = {
	    "From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=us-ascii\n"
	    "Content-Transfer-Encoding: 8bit\n\nbyte \xe9 is not ascii\n",
	    "From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n\nbyte \xe9 alone is not utf-8\n",
	    "From: a@example.org\nSubject: x\nContent-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: 8bit\n\nsurrogate \xed\xa0\x80 is not utf-8\n",
	};

	for (guint i = 0; i < G_N_ELEMENTS (claims_wrongly); i++) {
		GBytes *output = decorate_text (fixture, claims_wrongly[i]);
		g_autoptr(GMimeMessage) parsed = parse_output (output);
		GMimeObject *top = g_mime_message_get_mime_part (parsed);
		g_assert_true (GMIME_IS_MULTIPART (top));
		g_assert_cmpint (g_mime_multipart_get_count (GMIME_MULTIPART (top)), ==, 2);
		g_assert_nonnull (fixture->context.note);
		g_assert_nonnull (strstr (fixture->context.note, "not valid in its charset"));
		assert_decorated (fixture, fixture->input, output);
	}
	/* plain ASCII text, a footer with a non-ASCII letter: still inline */
	fixture->list.footer_template = (char *) "-- \n\xc3\x9c $list_name\n";
	{
		GBytes *output = decorate_text (fixture, "From: a@example.org\nSubject: x\n"
							 "Content-Type: text/plain; charset=us-ascii\n\nplain\n");
		g_autoptr(GMimeMessage) parsed = parse_output (output);
		GMimeObject *top = g_mime_message_get_mime_part (parsed);
		g_autofree char *text = decoded_text (top);
		g_assert_true (GMIME_IS_TEXT_PART (top));
		g_assert_cmpstr (g_mime_object_get_content_type_parameter (top, "charset"), ==, "utf-8");
		g_assert_cmpstr (text, ==, "plain\n-- \n\xc3\x9c dev\n");
	}
	/* valid UTF-8 text keeps its charset and gets the footer appended */
	{
		GBytes *output = decorate_text (fixture, "From: a@example.org\nSubject: x\n"
							 "Content-Type: text/plain; charset=utf-8\n"
							 "Content-Transfer-Encoding: 8bit\n\nh\xc3\xa4llo\n");
		g_autoptr(GMimeMessage) parsed = parse_output (output);
		g_autofree char *text = decoded_text (g_mime_message_get_mime_part (parsed));
		g_assert_cmpstr (text, ==, "h\xc3\xa4llo\n-- \n\xc3\x9c dev\n");
	}
}

static void
test_footer_base64_utf8 (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *text = NULL;
	g_autofree char *body = g_base64_encode ((const guchar *) "Hällo wörld\r\n", 14);
	g_autofree char *message = g_strdup_printf ("From: alice@example.org\n"
						    "Subject: hello\n"
						    "MIME-Version: 1.0\n"
						    "Content-Type: text/plain; charset=utf-8\n"
						    "Content-Transfer-Encoding: base64\n"
						    "\n"
						    "%s\n",
						    body);

	output = decorate_text (fixture, message);
	parsed = parse_output (output);
	g_assert_cmpint (
	    g_mime_part_get_content_encoding (GMIME_PART (g_mime_message_get_mime_part (parsed))),
	    ==,
	    GMIME_CONTENT_ENCODING_BASE64);
	g_assert_false (bytes_contain_text (output, "footer-marker"));
	text = decoded_text (g_mime_message_get_mime_part (parsed));
	g_assert_cmpstr (text, ==, "Hällo wörld\n-- \nfooter-marker-dev.lists.example.org\n");
	assert_decorated (fixture, fixture->input, output);
}

static void
test_footer_header_template (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;

	fixture->list.header_template = (char *) "header-marker-$list_name\n\n";
	output = decorate_text (fixture, "From: alice@example.org\nSubject: x\n\nbody\n");
	g_assert_true (bytes_has_suffix (output,
					 "\r\n\r\nheader-marker-dev\r\nbody\r\n-- \r\n"
					 "footer-marker-dev.lists.example.org\r\n"));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_footer_none (Fixture *fixture, gconstpointer user_data)
{
	static const char message[] = "From: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n";
	GBytes *output;

	/* No templates: headers only, body as it came. */
	fixture->list.footer_template = NULL;
	output = decorate_text (fixture, message);
	g_assert_true (bytes_has_suffix (output, "\r\n\r\nbody\r\n"));
	g_assert_true (bytes_contain_text (output, "List-Id: dev <dev.lists.example.org>\r\n"));
}

/* ---- MIME placement --------------------------------------------------- */

static const char attachment_base64[] =
    "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==";

static void
test_mime_mixed (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *message =
	    g_strdup_printf ("From: alice@example.org\n"
			     "Subject: with attachment\n"
			     "MIME-Version: 1.0\n"
			     "Content-Type: multipart/mixed; boundary=\"XYZ\"\n"
			     "\n"
			     "preamble\n"
			     "--XYZ\n"
			     "Content-Type: text/plain\n"
			     "\n"
			     "see the picture\n"
			     "--XYZ\n"
			     "Content-Type: image/gif; name=dot.gif\n"
			     "Content-Transfer-Encoding: base64\n"
			     "Content-Disposition: attachment; filename=dot.gif\n"
			     "\n"
			     "%s\n"
			     "--XYZ--\n"
			     "epilogue\n",
			     attachment_base64);
	g_autoptr(GMimeMessage) parsed = NULL;
	GMimeMultipart *multipart;
	GBytes *output;

	fixture->list.header_template = (char *) "header-marker-$list_name\n";
	output = decorate_text (fixture, message);
	parsed = parse_output (output);
	g_assert_true (GMIME_IS_MULTIPART (g_mime_message_get_mime_part (parsed)));
	multipart = GMIME_MULTIPART (g_mime_message_get_mime_part (parsed));
	g_assert_cmpint (g_mime_multipart_get_count (multipart), ==, 4);
	g_assert_cmpstr (g_mime_multipart_get_boundary (multipart), ==, "XYZ");
	g_assert_true (bytes_contain_text (output, "\r\n\r\npreamble\r\n--XYZ\r\n"));
	g_assert_true (bytes_contain_text (output, "--XYZ--\r\nepilogue\r\n"));
	{
		g_autofree char *first = decoded_text (g_mime_multipart_get_part (multipart, 0));
		g_autofree char *last = decoded_text (g_mime_multipart_get_part (multipart, 3));
		g_assert_cmpstr (first, ==, "header-marker-dev\n");
		g_assert_cmpstr (last, ==, "-- \nfooter-marker-dev.lists.example.org\n");
		g_assert_cmpstr (g_mime_object_get_content_type_parameter (
				     g_mime_multipart_get_part (multipart, 3),
				     "charset"),
				 ==,
				 "utf-8");
	}
	g_assert_true (
	    bytes_contain_text (output,
				"Content-Transfer-Encoding: base64\r\n"
				"Content-Disposition: attachment; filename=dot.gif\r\n\r\n"
				"R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==\r\n"
				"--XYZ\r\n"));
	assert_decorated (fixture, fixture->input, output);
}

static const char alternative_message[] = "From: alice@example.org\n"
					  "Subject: alternative\n"
					  "MIME-Version: 1.0\n"
					  "Content-Type: multipart/alternative; boundary=\"ALT\"\n"
					  "Content-Transfer-Encoding: 7bit\n"
					  "\n"
					  "--ALT\n"
					  "Content-Type: text/plain; charset=us-ascii\n"
					  "\n"
					  "plain version\n"
					  "--ALT\n"
					  "Content-Type: text/html; charset=us-ascii\n"
					  "\n"
					  "<p>html version</p>\n"
					  "--ALT--\n";

static void
test_mime_alternative (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture, alternative_message);
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeObject *top = g_mime_message_get_mime_part (parsed);
	GMimeMultipart *multipart;
	GMimeObject *inner;

	g_assert_true (g_mime_content_type_is_type (g_mime_object_get_content_type (top),
						    "multipart",
						    "mixed"));
	multipart = GMIME_MULTIPART (top);
	g_assert_cmpint (g_mime_multipart_get_count (multipart), ==, 2);
	inner = g_mime_multipart_get_part (multipart, 0);
	g_assert_true (g_mime_content_type_is_type (g_mime_object_get_content_type (inner),
						    "multipart",
						    "alternative"));
	/* The Content-* fields moved with the body they describe. */
	g_assert_true (
	    bytes_contain_text (output,
				"Content-Type: multipart/alternative; boundary=\"ALT\"\r\n"
				"Content-Transfer-Encoding: 7bit\r\n\r\n--ALT\r\n"));
	g_assert_cmpuint (header_count (parsed, "Content-Transfer-Encoding"), ==, 0);
	g_assert_cmpuint (header_count (parsed, "MIME-Version"), ==, 1);
	assert_decorated (fixture, fixture->input, output);
}

static void
test_mime_deterministic (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GBytes) first = g_bytes_ref (decorate_text (fixture, alternative_message));
	GBytes *second = decorate_text (fixture, alternative_message);

	g_assert_true (g_bytes_equal (first, second));
}

static const char signed_entity[] =
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Signed text with a trailing space =20\r\n"
    "--\r\n"
    "--SIG\r\n"
    "Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
    "\r\n"
    "-----BEGIN PGP SIGNATURE-----\r\n"
    "\r\n"
    "iQEzBAEBCAAdFiEEexampleexampleexampleexampleexample=\r\n"
    "=abcd\r\n"
    "-----END PGP SIGNATURE-----\r\n";

static void
test_mime_signed (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *message =
	    g_strdup_printf ("From: alice@example.org\r\n"
			     "Subject: signed\r\n"
			     "MIME-Version: 1.0\r\n"
			     "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
			     " protocol=\"application/pgp-signature\"; boundary=\"SIG\"\r\n"
			     "\r\n"
			     "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
			     "--SIG\r\n"
			     "%s"
			     "\r\n"
			     "--SIG--\r\n",
			     signed_entity);
	GBytes *output = decorate_text (fixture, message);
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeMultipart *multipart = GMIME_MULTIPART (g_mime_message_get_mime_part (parsed));

	g_assert_cmpint (g_mime_multipart_get_count (multipart), ==, 2);
	g_assert_true (GMIME_IS_MULTIPART_SIGNED (g_mime_multipart_get_part (multipart, 0)));
	g_assert_true (bytes_contain_text (output, signed_entity));
	g_assert_true (bytes_contain_text (output,
					   "\r\n\r\nThis is an OpenPGP/MIME signed message (RFC "
					   "4880 and 3156)\r\n--SIG\r\n"));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_mime_inline_pgp (Fixture *fixture, gconstpointer user_data)
{
	static const char body[] = "-----BEGIN PGP SIGNED MESSAGE-----\r\n"
				   "Hash: SHA256\r\n"
				   "\r\n"
				   "signed words\r\n"
				   "-----BEGIN PGP SIGNATURE-----\r\n"
				   "\r\n"
				   "iQEzBAEBCAAd\r\n"
				   "-----END PGP SIGNATURE-----\r\n";
	g_autofree char *message =
	    g_strdup_printf ("From: alice@example.org\r\nSubject: pgp\r\n\r\n%s", body);
	GBytes *output = decorate_text (fixture, message);
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeObject *top = g_mime_message_get_mime_part (parsed);

	/* The footer must not land inside or after the signed block. */
	g_assert_true (GMIME_IS_MULTIPART (top));
	g_assert_cmpint (g_mime_multipart_get_count (GMIME_MULTIPART (top)), ==, 2);
	g_assert_true (bytes_contain_text (output, body));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_mime_html (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From: alice@example.org\n"
					"Subject: html\n"
					"MIME-Version: 1.0\n"
					"Content-Type: text/html; charset=utf-8\n"
					"\n"
					"<p>hello</p>\n");
	g_autoptr(GMimeMessage) parsed = parse_output (output);

	g_assert_true (GMIME_IS_MULTIPART (g_mime_message_get_mime_part (parsed)));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_mime_partial (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GBytes) input = NULL;
	GBytes *output;
	static const char message[] = "From: alice@example.org\r\n"
				      "Subject: part 1\r\n"
				      "MIME-Version: 1.0\r\n"
				      "Content-Type: message/partial; id=\"abc@example.org\";\r\n"
				      " number=1; total=2\r\n"
				      "\r\n"
				      "Subject: whole\r\n"
				      "Content-Type: image/jpeg\r\n"
				      "Content-Transfer-Encoding: base64\r\n"
				      "\r\n"
				      "AAAA\r\n";

	input = g_bytes_new_static (message, sizeof (message) - 1);
	output = decorate_bytes (fixture, input);
	assert_fields_only (fixture, input, output);
	g_assert_nonnull (strstr (fixture->context.note, "message/partial"));
	g_assert_nonnull (g_strstr_len (g_bytes_get_data (output, NULL),
					g_bytes_get_size (output),
					"Subject: [dev] part 1\r\n"));
}

static void
test_mime_deep (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GString) message = g_string_new ("From: a@example.org\r\nSubject: deep\r\n");
	g_autoptr(GBytes) input = NULL;
	GBytes *output;

	for (guint i = 0; i < 100; i++)
		g_string_append_printf (message,
					"Content-Type: multipart/mixed; boundary=\"b%u\"\r\n"
					"\r\n--b%u\r\n",
					i,
					i);
	g_string_append (message, "Content-Type: text/plain\r\n\r\nhi\r\n");
	for (guint i = 100; i > 0; i--)
		g_string_append_printf (message, "--b%u--\r\n", i - 1);
	input = g_bytes_new (message->str, message->len);
	output = decorate_bytes (fixture, input);
	assert_fields_only (fixture, input, output);
	g_assert_nonnull (strstr (fixture->context.note, "nested"));
	g_assert_true (g_str_has_prefix (g_bytes_get_data (output, NULL),
					 "From: a@example.org\r\nSubject: [dev] deep\r\n"));
}

static void
test_mime_mbox_from (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From alice@example.org Mon Jan  1 00:00:00 2024\n"
					"From: alice@example.org\n"
					"Subject: x\n"
					"\n"
					"body\n");

	g_assert_true (bytes_has_prefix (output, "From: alice@example.org\r\n"));
	assert_decorated (fixture, fixture->input, output);
}

static void
test_mime_encrypted (Fixture *fixture, gconstpointer user_data)
{
	static const char body[] = "--ENC\r\n"
				   "Content-Type: application/pgp-encrypted\r\n"
				   "\r\n"
				   "Version: 1\r\n"
				   "\r\n"
				   "--ENC\r\n"
				   "Content-Type: application/octet-stream\r\n"
				   "\r\n"
				   "-----BEGIN PGP MESSAGE-----\r\n"
				   "\r\n"
				   "hQEMA5exampleexample\r\n"
				   "-----END PGP MESSAGE-----\r\n"
				   "\r\n"
				   "--ENC--\r\n";
	g_autofree char *message = g_strdup_printf (
	    "From: alice@example.org\r\n"
	    "Subject: secret\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
	    " boundary=\"ENC\"\r\n"
	    "\r\n"
	    "%s",
	    body);
	GBytes *output = decorate_text (fixture, message);
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeObject *top = g_mime_message_get_mime_part (parsed);

	g_assert_true (GMIME_IS_MULTIPART (top));
	g_assert_true (
	    GMIME_IS_MULTIPART_ENCRYPTED (g_mime_multipart_get_part (GMIME_MULTIPART (top), 0)));
	g_assert_true (bytes_contain_text (output, body));
	assert_decorated (fixture, fixture->input, output);
}

typedef struct {
	const ScListConfig *list;
	GPtrArray *inputs;   /* (element-type GBytes) */
	GPtrArray *expected; /* (element-type GBytes) */
	guint mismatches;
} ThreadWork;

static gpointer
thread_work_cb (gpointer data)
{
	ThreadWork *work = data;

	for (guint round = 0; round < 25; round++) {
		for (guint i = 0; i < work->inputs->len; i++) {
			ScStageContext context = {0};
			g_autoptr(GError) error = NULL;

			context.queue_id = "q0123456789";
			context.sender = "alice@example.org";
			context.list = work->list;
			context.raw = g_ptr_array_index (work->inputs, i);
			context.current = context.raw;
			if (!sc_handler_decorate.run (&context, &error) ||
			    !g_bytes_equal (context.output, g_ptr_array_index (work->expected, i)))
				work->mismatches++;
			sc_stage_context_clear_outputs (&context);
		}
	}
	return NULL;
}

/* Workers decorate at the same time: same bytes as one at a time. */
static void
test_threads (Fixture *fixture, gconstpointer user_data)
{
	const char *messages[] = {
	    alternative_message,
	    "From: a@example.org\nSubject: Re: x\nContent-Type: text/plain; charset=koi8-r\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n=F0=D2=C9=D7=C5=D4\n",
	    "From: a@example.org\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n"
	    "--b\n\none\n--b\n\ntwo\n--b--\n",
	    "not a message\n",
	};
	g_autoptr(GPtrArray) inputs =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	g_autoptr(GPtrArray) expected =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
	ThreadWork work[8];
	GThread *threads[8];

	fixture->list.footer_template = (char *) "-- \nÜber $list_name\n";
	for (guint i = 0; i < G_N_ELEMENTS (messages); i++) {
		GBytes *input = g_bytes_new (messages[i], strlen (messages[i]));
		g_ptr_array_add (inputs, input);
		g_ptr_array_add (expected, g_bytes_ref (decorate_bytes (fixture, input)));
	}
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++) {
		work[i] = (ThreadWork){&fixture->list, inputs, expected, 0};
		threads[i] = g_thread_new ("decorate-test", thread_work_cb, &work[i]);
	}
	for (guint i = 0; i < G_N_ELEMENTS (threads); i++) {
		g_thread_join (threads[i]);
		g_assert_cmpuint (work[i].mismatches, ==, 0);
	}
}

static void
test_mime_obsolete_from (Fixture *fixture, gconstpointer user_data)
{
	/* "From :" is a field in obsolete syntax, not an mbox separator. */
	GBytes *output = decorate_text (fixture, "From : alice@example.org\nSubject: x\n\nbody\n");

	g_assert_true (bytes_has_prefix (output, "From : alice@example.org\r\n"));
}

static void
test_mime_mixed_unclosed (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output = decorate_text (fixture,
					"From: alice@example.org\n"
					"Subject: unclosed\n"
					"Content-Type: multipart/mixed; boundary=\"U\"\n"
					"\n"
					"--U\n"
					"Content-Type: text/plain\n"
					"\n"
					"the last part runs to the end\n");
	g_autoptr(GMimeMessage) parsed = parse_output (output);
	GMimeObject *top = g_mime_message_get_mime_part (parsed);

	g_assert_true (GMIME_IS_MULTIPART (top));
	g_assert_cmpint (g_mime_multipart_get_count (GMIME_MULTIPART (top)), ==, 2);
	g_assert_true (bytes_has_suffix (output, "\r\n--U--\r\n"));
	assert_decorated (fixture, fixture->input, output);
}

/* ---- templates -------------------------------------------------------- */

static void
test_template_expand (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *text = NULL;

	fixture->list.footer_template =
	    (char *) "$list_name|$list_id|$list_post|$list_help|$list_archive\n"
		     "$list_unsubscribe\n"
		     "$queue_id|$sender|$$5|${list_name}s|$unknown|$ |$\n\n\n";
	output = decorate_text (fixture, "From: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n");
	parsed = parse_output (output);
	text = decoded_text (g_mime_message_get_mime_part (parsed));
	g_assert_cmpstr (
	    text,
	    ==,
	    "body\n"
	    "dev|dev.lists.example.org|dev@lists.example.org|"
	    "https://lists.example.org/help/dev|https://lists.example.org/archive/dev\n"
	    "https://lists.example.org/unsubscribe/dev, "
	    "mailto:dev-leave@lists.example.org\n"
	    "q0123456789|alice@example.org|$5|devs|$unknown|$ |$\n");
}

static void
test_template_check (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	g_assert_nonnull (sc_handler_decorate.check);
	g_assert_true (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_assert_no_error (error);

	fixture->list.footer_template = (char *) "-- \n$lsit_name costs $$5, see ${list_help}\n";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "footer: "));
	g_assert_nonnull (strstr (error->message, "$lsit_name"));
	g_clear_error (&error);

	fixture->list.footer_template = NULL;
	fixture->list.header_template = (char *) "costs $ 5 and ${list_name\n";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "header: "));
	g_clear_error (&error);

	fixture->list.header_template = NULL;
	fixture->unsubscribe[0] = (char *) "mailto:dev-leave@lists.example.org";
	fixture->unsubscribe[1] = NULL;
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "https"));
	g_clear_error (&error);

	fixture->list.unsubscribe_one_click = FALSE;
	fixture->list.post = (char *) "dev@lists.example.org>\r\nBcc: victim@example.net";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "post: "));
}

/* A stray line in the header block: the list fields in front, the prefix
 * on the Subject above it, every byte from the stray line on as it came. */
static void
test_stray_line (Fixture *fixture, gconstpointer user_data)
{
	static const char message[] = "From: a@example.org\r\n"
				      "Subject: hello\r\n"
				      "List-Id: other <other.example.net>\r\n"
				      "this is not a header\r\n"
				      "To: dev@lists.example.org\r\n"
				      "\r\n"
				      "body\r\n";
	g_autoptr(GBytes) input = g_bytes_new_static (message, sizeof (message) - 1);
	GBytes *output = decorate_bytes (fixture, input);
	const char *data = g_bytes_get_data (output, NULL);
	const char *from = g_strstr_len (data, g_bytes_get_size (output), "From: a@example.org");

	assert_fields_only (fixture, input, output);
	g_assert_nonnull (strstr (fixture->context.note, "header line 4"));
	g_assert_true (g_str_has_prefix (data, "List-Id: " LIST_ID_VALUE "\r\n"));
	g_autofree char *tail = NULL;

	g_assert_nonnull (from);
	tail = g_strndup (from, data + g_bytes_get_size (output) - from);
	g_assert_cmpstr (tail, ==, "From: a@example.org\r\n"
				    "Subject: [dev] hello\r\n"
				    "this is not a header\r\n"
				    "To: dev@lists.example.org\r\n"
				    "\r\n"
				    "body\r\n");
	/* the poster's List-Id is gone, not doubled */
	g_assert_null (g_strstr_len (data, g_bytes_get_size (output), "other.example.net"));
}

/* ---- footer-if-absent --------------------------------------------------- */

static const char already_decorated[] = "From: alice@example.org\r\n"
					"Subject: [dev] hello\r\n"
					"List-Id: Dev list <dev.lists.example.org>\r\n"
					"List-Unsubscribe: <https://mailman.example.org/leave>\r\n"
					"\r\n"
					"Hello list,\r\n"
					"_______________________________________________\r\n"
					"dev mailing list -- dev@lists.example.org\r\n";

static guint
count_text (GBytes *bytes, const char *text)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (bytes, &length);
	const char *end = data + length;
	guint count = 0;

	for (const char *p = data; p < end;) {
		const char *hit = g_strstr_len (p, end - p, text);
		if (hit == NULL)
			break;
		count++;
		p = hit + 1;
	}
	return count;
}

static void
test_footer_if_absent_own_list_id (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GBytes) input = NULL;
	GBytes *output;

	fixture->list.footer_if_absent = TRUE;
	input = g_bytes_new_static (already_decorated, sizeof (already_decorated) - 1);
	output = decorate_bytes (fixture, input);
	g_assert_cmpuint (count_text (output, FOOTER_MARKER), ==, 0);
	g_assert_cmpuint (count_text (output, "List-Id:"), ==, 1);
	g_assert_cmpuint (count_text (output, "List-Unsubscribe:"), ==, 1);
	g_assert_cmpuint (count_text (output, "[dev]"), ==, 1);
	g_assert_cmpuint (count_text (output, "dev mailing list --"), ==, 1);
	g_assert_nonnull (strstr (fixture->context.note, "footer-if-absent"));

	/* without the rule, the list's footer goes on as well */
	fixture->list.footer_if_absent = FALSE;
	output = decorate_bytes (fixture, input);
	g_assert_cmpuint (count_text (output, FOOTER_MARKER), ==, 1);
}

static void
test_footer_if_absent_text_present (Fixture *fixture, gconstpointer user_data)
{
	GBytes *first;
	g_autoptr(GBytes) again = NULL;
	GBytes *second;

	/* our own output coming back (re-injected): no second footer, even
	 * though its List-Id was taken off on the way */
	fixture->list.footer_if_absent = TRUE;
	first = decorate_text (fixture, "From: alice@example.org\nSubject: hi\n\nHello\n");
	g_assert_cmpuint (count_text (first, FOOTER_MARKER), ==, 1);
	again = g_bytes_ref (first);
	fixture->list.id = (char *) "other.lists.example.org";
	fixture->list.footer_template = (char *) "-- \nfooter-marker-dev.lists.example.org\n";
	second = decorate_bytes (fixture, again);
	g_assert_cmpuint (count_text (second, FOOTER_MARKER), ==, 1);
	g_assert_nonnull (strstr (fixture->context.note, "footer-if-absent"));
}

/* unsubscribe-url without $recipient: decorate adds it, first, expanded
 * and percent-encoded, with the one-click field. */
static void
test_headers_unsubscribe_url (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GMimeMessage) parsed = NULL;

	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/u/$list_id?n=${list_name}";
	fixture->list.name = (char *) "dev & co";
	fixture->unsubscribe[0] = (char *) "mailto:dev-leave@lists.example.org";
	fixture->unsubscribe[1] = NULL;
	fixture->list.unsubscribe_one_click = FALSE;
	output = decorate_text (fixture, "From: alice@example.org\r\nSubject: x\r\n\r\nhi\r\n");
	parsed = parse_output (output);
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (parsed), "List-Unsubscribe"),
			 ==,
			 "<https://lists.example.org/u/dev.lists.example.org?n=dev%20%26%20co>, "
			 "<mailto:dev-leave@lists.example.org>");
	g_assert_cmpstr (g_mime_object_get_header (GMIME_OBJECT (parsed), "List-Unsubscribe-Post"),
			 ==,
			 "List-Unsubscribe=One-Click");
}

/* With $recipient the fields are per recipient: deliver adds them, so
 * decorate must not (a second List-Unsubscribe would be ambiguous). */
static void
test_headers_unsubscribe_personal (Fixture *fixture, gconstpointer user_data)
{
	GBytes *output;
	g_autoptr(GError) error = NULL;

	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/u?who=$recipient";
	output = decorate_text (fixture,
				"From: alice@example.org\r\nSubject: x\r\n"
				"List-Unsubscribe: <https://evil.example/>\r\n\r\nhi\r\n");
	g_assert_false (bytes_contain_text (output, "List-Unsubscribe"));
	g_assert_true (bytes_contain_text (output, "List-Id: "));
	g_assert_true (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_assert_no_error (error);

	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/u?who=$recipent";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "unsubscribe-url: unknown variable “$recipent”"));
	g_clear_error (&error);

	/* $token signs the address: it needs $recipient and a secret */
	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/u?who=$recipient&t=$token";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "unsubscribe-secret-file"));
	g_clear_error (&error);
	fixture->list.unsubscribe_secret_file = (char *) "/etc/stagecoach/unsubscribe.secret";
	g_assert_true (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	fixture->list.unsubscribe_url = (char *) "https://lists.example.org/u?t=$token";
	g_assert_false (sc_handler_decorate.check (NULL, &fixture->list, NULL, NULL, &error));
	g_assert_nonnull (strstr (error->message, "$token needs $recipient"));
}

/* ---- garbage in: the list fields in front, the garbage as it came ----- */

static void
test_garbage (Fixture *fixture, gconstpointer user_data)
{
	static const struct {
		const char *data;
		gsize length;
	} cases[] = {
	    {"", 0},
	    {"\0\1\2\3binary\xff\xfe\0", 13},
	    {"no headers here, just a line of text\nand another\n", 50},
	    {"\nSubject: after a blank line\n\nbody\n", 35},
	    {"   \r\nFrom: a@example.org\r\n\r\nbody\r\n", 34},
	    {"From: a@example.org\nthis is not a header\n\nbody\n", 47},
	    {" continuation first\nFrom: a@example.org\n\nbody\n", 46},
	    {"From a@example.org Mon Jan  1 00:00:00 2024\n", 44},
	    {"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0\0", 12},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autoptr(GBytes) input = g_bytes_new (cases[i].data, cases[i].length);
		g_autoptr(GBytes) crlf = normalize (input);
		GBytes *output = decorate_bytes (fixture, input);

		g_assert_nonnull (fixture->context.note);
		if (g_bytes_get_size (crlf) == 0) {
			/* nothing to put fields on: the very same bytes */
			g_assert_true (output == input || g_bytes_equal (output, input));
			continue;
		}
		assert_fields_only (fixture, input, output);
		/* Every byte after the list fields as it came (CRLF form): they
		 * stand in front, the rest is not touched. */
		g_assert_true (g_str_has_prefix (g_bytes_get_data (output, NULL), "List-Id: "));
		g_assert_true (bytes_end_with (output,
					       g_bytes_get_data (crlf, NULL),
					       g_bytes_get_size (crlf)));
	}
}

static void
test_headers_only (Fixture *fixture, gconstpointer user_data)
{
	/* A header block and no body at all is a message (RFC 5322). */
	GBytes *output = decorate_text (fixture, "From: a@example.org\r\nSubject: x\r\n");
	g_autoptr(GMimeMessage) parsed = parse_output (output);

	g_assert_cmpstr (g_mime_message_get_subject (parsed), ==, "[dev] x");
}

/* ---- corpus ----------------------------------------------------------- */

static void
test_corpus_message (Fixture *fixture, gconstpointer user_data)
{
	const char *name = user_data;
	g_autofree char *path = g_build_filename (sc_test_corpus_dir (), name, NULL);
	g_autoptr(GError) error = NULL;
	g_autofree char *contents = NULL;
	gsize length = 0;
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GBytes) input_crlf = NULL;
	g_autoptr(GBytes) output_crlf = NULL;
	GBytes *output;
	gint64 started = g_get_monotonic_time ();

	g_file_get_contents (path, &contents, &length, &error);
	g_assert_no_error (error);
	input = g_bytes_new_take (g_steal_pointer (&contents), length);

	fixture->list.header_template = (char *) "header-marker-$list_name\n";
	output = decorate_bytes (fixture, input);
	g_test_message ("decorated in %" G_GINT64_FORMAT " ms",
			(g_get_monotonic_time () - started) / 1000);

	input_crlf = normalize (input);
	output_crlf = normalize (output);
	if (g_bytes_equal (input_crlf, output_crlf)) {
		g_assert_nonnull (fixture->context.note);
		g_test_message ("passed through: %s", fixture->context.note);
		return;
	}
	if (fixture->context.note != NULL && strstr (fixture->context.note, "list fields only")) {
		assert_fields_only (fixture, input, output);
		return;
	}
	if (fixture->context.note != NULL)
		g_test_message ("note: %s", fixture->context.note);
	assert_decorated (fixture, input, output);
}

static void
test_corpus_missing (gconstpointer user_data)
{
	g_autofree char *message = g_strdup_printf (
	    "corpus not found at %s",
	    g_getenv ("SC_CORPUS") != NULL ? g_getenv ("SC_CORPUS") : "../shared/corpus");
	g_test_skip (message);
}

int
main (int argc, char **argv)
{
	g_autoptr(GPtrArray) corpus = NULL;
	int result;

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_mime_init ();

#define ADD(path, function) \
	g_test_add (path, Fixture, NULL, fixture_setup, function, fixture_teardown)
	ADD ("/decorate/subject/table", test_subject);
	ADD ("/decorate/subject/unchanged-raw", test_subject_unchanged_raw);
	ADD ("/decorate/subject/raw-8bit", test_subject_raw_8bit);
	ADD ("/decorate/subject/missing", test_subject_missing);
	ADD ("/decorate/subject/word-prefix", test_subject_word_prefix);
	ADD ("/decorate/subject/no-prefix", test_subject_no_prefix);
	ADD ("/decorate/headers/list", test_headers_list);
	ADD ("/decorate/headers/one-click-needs-https", test_headers_one_click_needs_https);
	ADD ("/decorate/headers/headers-only", test_headers_only);
	ADD ("/decorate/footer/7bit", test_footer_7bit);
	ADD ("/decorate/footer/no-final-newline", test_footer_no_final_newline);
	ADD ("/decorate/footer/latin1-qp", test_footer_latin1_qp);
	ADD ("/decorate/footer/latin1-to-utf8", test_footer_latin1_to_utf8);
	ADD ("/decorate/footer/7bit-to-qp", test_footer_7bit_to_qp);
	ADD ("/decorate/footer/base64-utf8", test_footer_base64_utf8);
	ADD ("/decorate/footer/charset-checks", test_footer_charset_checks);
	ADD ("/decorate/footer/header-template", test_footer_header_template);
	ADD ("/decorate/footer/none", test_footer_none);
	ADD ("/decorate/mime/mixed", test_mime_mixed);
	ADD ("/decorate/mime/alternative", test_mime_alternative);
	ADD ("/decorate/mime/deterministic", test_mime_deterministic);
	ADD ("/decorate/mime/signed", test_mime_signed);
	ADD ("/decorate/mime/inline-pgp", test_mime_inline_pgp);
	ADD ("/decorate/mime/html", test_mime_html);
	ADD ("/decorate/mime/encrypted", test_mime_encrypted);
	ADD ("/decorate/threads", test_threads);
	ADD ("/decorate/mime/partial", test_mime_partial);
	ADD ("/decorate/mime/deep", test_mime_deep);
	ADD ("/decorate/mime/mbox-from", test_mime_mbox_from);
	ADD ("/decorate/mime/obsolete-from", test_mime_obsolete_from);
	ADD ("/decorate/mime/mixed-unclosed", test_mime_mixed_unclosed);
	ADD ("/decorate/template/expand", test_template_expand);
	ADD ("/decorate/template/check", test_template_check);
	ADD ("/decorate/garbage", test_garbage);
	ADD ("/decorate/stray-line", test_stray_line);
	ADD ("/decorate/headers/unsubscribe-url", test_headers_unsubscribe_url);
	ADD ("/decorate/headers/unsubscribe-personal", test_headers_unsubscribe_personal);
	ADD ("/decorate/footer-if-absent/own-list-id", test_footer_if_absent_own_list_id);
	ADD ("/decorate/footer-if-absent/text-present", test_footer_if_absent_text_present);
#undef ADD

	corpus = sc_test_corpus_files ();
	if (sc_test_corpus_dir () == NULL) {
		g_test_add_data_func ("/decorate/corpus", NULL, test_corpus_missing);
	} else {
		for (guint i = 0; i < corpus->len; i++) {
			const char *name = g_ptr_array_index (corpus, i);
			g_autofree char *stem = g_strndup (name, strlen (name) - 4);
			g_autofree char *path = g_strdup_printf ("/decorate/corpus/%s", stem);
			g_test_add (path,
				    Fixture,
				    name,
				    fixture_setup,
				    test_corpus_message,
				    fixture_teardown);
		}
	}
	result = g_test_run ();
	return result;
}
