/* sc-decorate.c — the decorate stage: list headers, subject prefix, header and footer texts.
 *
 * Pure bytes in, bytes out.  The message is put in CRLF form, its header
 * block split off (sc-decorate-headers.c) and GMime asked what it is; the
 * list fields and subject prefix are set, the templates expanded
 * (sc-decorate-template.c) and placed (sc-decorate-mime.c).  What comes out
 * is parsed again and must show the texts where they were put; if not, the
 * message is wrapped instead, and if that fails too it passes through.
 *
 * A single text/plain body in US-ASCII or UTF-8, not transfer-encoded,
 * takes the fast path first (sc-decorate-fast.c): the same bytes without
 * GMime's two parses.  Whatever that path cannot prove it can follow goes
 * the GMime way, which stays the reference the tests hold it to.
 *
 * It must never corrupt a message and never fail one for its shape: a
 * body it cannot follow — a GMime failure, nesting beyond
 * SC_DECORATE_MAX_DEPTH, a message/partial fragment that would no longer
 * reassemble — still gets the list fields and subject prefix, and goes on
 * otherwise as it came, with the reason in the note; so does a header
 * block with a stray line, the list fields going in front of it.
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-gmime.h"
#include "sc-i18n.h"
#include "sc-list-unsubscribe.h"

static void
decorate_init (void)
{
	sc_gmime_init ();
}

static GMimeMessage *
parse_message (GBytes *message, gint64 *out_headers_end)
{
	gsize length = 0;
	const char *data = g_bytes_get_data (message, &length);
	g_autoptr(GMimeStream) stream = g_mime_stream_mem_new_with_buffer (data, length);
	g_autoptr(GMimeParser) parser = g_mime_parser_new_with_stream (stream);
	GMimeMessage *result;

	g_mime_parser_set_format (parser, GMIME_FORMAT_MESSAGE);
	result = g_mime_parser_construct_message (parser, NULL);
	if (out_headers_end != NULL)
		*out_headers_end = g_mime_parser_get_headers_end (parser);
	return result;
}

/* Deepest nesting of multiparts and enclosed messages, counted without
 * recursion and given up on past the limit. */
static guint
mime_depth (GMimeObject *top)
{
	g_autoptr(GPtrArray) objects = g_ptr_array_new ();
	g_autoptr(GArray) depths = g_array_new (FALSE, FALSE, sizeof (guint));
	guint deepest = 0;
	guint one = 1;

	g_ptr_array_add (objects, top);
	g_array_append_val (depths, one);
	while (objects->len > 0) {
		GMimeObject *object = g_ptr_array_steal_index (objects, objects->len - 1);
		guint depth = g_array_index (depths, guint, depths->len - 1);
		guint child_depth = depth + 1;

		g_array_set_size (depths, depths->len - 1);
		deepest = MAX (deepest, depth);
		if (deepest > SC_DECORATE_MAX_DEPTH)
			return deepest;
		if (GMIME_IS_MULTIPART (object)) {
			GMimeMultipart *multipart = GMIME_MULTIPART (object);
			for (int i = 0; i < g_mime_multipart_get_count (multipart); i++) {
				g_ptr_array_add (objects, g_mime_multipart_get_part (multipart, i));
				g_array_append_val (depths, child_depth);
			}
		} else if (GMIME_IS_MESSAGE_PART (object)) {
			GMimeMessage *inner =
			    g_mime_message_part_get_message (GMIME_MESSAGE_PART (object));
			GMimeObject *inner_top =
			    inner != NULL ? g_mime_message_get_mime_part (inner) : NULL;
			if (inner_top != NULL) {
				g_ptr_array_add (objects, inner_top);
				g_array_append_val (depths, child_depth);
			}
		}
	}
	return deepest;
}

static char *
strip_cr (const char *text)
{
	GString *result = g_string_sized_new (strlen (text));

	for (const char *p = text; *p != '\0'; p++) {
		if (*p != '\r')
			g_string_append_c (result, *p);
	}
	return g_string_free (result, FALSE);
}

/* Whether @object is a text part whose decoded text holds @text. */
static gboolean
text_part_contains (GMimeObject *object, const char *text)
{
	g_autofree char *content = NULL;
	g_autofree char *plain = NULL;
	g_autofree char *needle = NULL;

	if (text == NULL)
		return TRUE;
	if (object == NULL || !GMIME_IS_TEXT_PART (object))
		return FALSE;
	content = g_mime_text_part_get_text (GMIME_TEXT_PART (object));
	if (content == NULL)
		return FALSE;
	plain = strip_cr (content);
	needle = g_strchomp (strip_cr (text));
	return strstr (plain, needle) != NULL;
}

/* Parses the output and checks the texts are where the placement put them. */
static gboolean
decorate_verify (GBytes *output,
		 ScDecoratePlacement placement,
		 int children_before,
		 const ScDecorateTexts *texts)
{
	g_autoptr(GMimeMessage) message = parse_message (output, NULL);
	GMimeObject *top = message != NULL ? g_mime_message_get_mime_part (message) : NULL;
	GMimeMultipart *multipart;
	int added = (texts->header_text != NULL ? 1 : 0) + (texts->footer_text != NULL ? 1 : 0);
	int count;

	if (top == NULL)
		return FALSE;
	switch (placement) {
	case SC_DECORATE_PLACEMENT_NONE:
		return TRUE;
	case SC_DECORATE_PLACEMENT_INLINE:
		return text_part_contains (top, texts->header_text) &&
		       text_part_contains (top, texts->footer_text);
	case SC_DECORATE_PLACEMENT_PART:
	case SC_DECORATE_PLACEMENT_WRAP:
		if (!GMIME_IS_MULTIPART (top))
			return FALSE;
		multipart = GMIME_MULTIPART (top);
		count = g_mime_multipart_get_count (multipart);
		if (count !=
		    added + (placement == SC_DECORATE_PLACEMENT_WRAP ? 1 : children_before))
			return FALSE;
		if (texts->header_text != NULL &&
		    !text_part_contains (g_mime_multipart_get_part (multipart, 0),
					 texts->header_text))
			return FALSE;
		if (texts->footer_text != NULL &&
		    !text_part_contains (g_mime_multipart_get_part (multipart, count - 1),
					 texts->footer_text))
			return FALSE;
		return TRUE;
	default:
		g_assert_not_reached ();
	}
}

static ScDecoratePlacement
decorate_choose (GMimeObject *top, const ScDecorateTexts *texts)
{
	GMimeContentType *content_type = g_mime_object_get_content_type (top);

	if (sc_decorate_texts_empty (texts))
		return SC_DECORATE_PLACEMENT_NONE;
	if (GMIME_IS_TEXT_PART (top) && g_mime_content_type_is_type (content_type, "text", "plain"))
		return SC_DECORATE_PLACEMENT_INLINE;
	if (GMIME_IS_MULTIPART (top) && !GMIME_IS_MULTIPART_SIGNED (top) &&
	    !GMIME_IS_MULTIPART_ENCRYPTED (top) &&
	    g_mime_content_type_is_type (content_type, "multipart", "mixed"))
		return SC_DECORATE_PLACEMENT_PART;
	return SC_DECORATE_PLACEMENT_WRAP;
}

/* The list fields and subject prefix in @headers, the body as it came:
 * what a message gets whose body decorate cannot follow. */
static GBytes *
decorate_headers_only (GBytes *message, const ScDecorateHeaders *headers)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	GByteArray *out = g_byte_array_sized_new (length + 512);

	sc_decorate_headers_write (headers, out);
	g_byte_array_append (out, data + headers->body_offset, length - headers->body_offset);
	return g_byte_array_free_to_bytes (out);
}

/* Whether some text part of the message already holds @text. */
static gboolean
message_has_text (GMimeObject *top, const char *text)
{
	g_autoptr(GMimePartIter) iter = NULL;

	if (text_part_contains (top, text))
		return TRUE;
	if (!GMIME_IS_MULTIPART (top))
		return FALSE;
	iter = g_mime_part_iter_new (top);
	do {
		GMimeObject *part = g_mime_part_iter_get_current (iter);
		if (part != NULL && text_part_contains (part, text))
			return TRUE;
	} while (g_mime_part_iter_next (iter));
	return FALSE;
}

/* Whether the poster's List-Id names this list: the list software
 * (Mailman) has decorated it already. */
static gboolean
carries_own_list_id (const ScDecorateHeaders *headers, const ScListConfig *list)
{
	g_autofree char *value = sc_decorate_headers_get (headers, "List-Id");
	const char *open = value != NULL ? strrchr (value, '<') : NULL;
	const char *close = open != NULL ? strchr (open, '>') : NULL;

	if (close == NULL)
		return FALSE;
	return (gsize) (close - open - 1) == strlen (list->id) &&
	       g_ascii_strncasecmp (open + 1, list->id, close - open - 1) == 0;
}

typedef gboolean (*HasTextFunc) (gconstpointer body, const char *text);

static gboolean
gmime_has_text_cb (gconstpointer body, const char *text)
{
	return message_has_text ((GMimeObject *) body, text);
}

static gboolean
fast_has_text_cb (gconstpointer body, const char *text)
{
	return sc_decorate_fast_has_text (body, text);
}

/* footer-if-absent: drops the texts the message already has, saying so.
 * @has_text asks the body, GMime's reading of it or the fast path's. */
static void
drop_present_texts (const ScDecorateHeaders *headers,
		    HasTextFunc has_text,
		    gconstpointer body,
		    const ScListConfig *list,
		    ScDecorateTexts *texts,
		    char **out_note)
{
	gboolean header_present;
	gboolean footer_present;

	if (!list->footer_if_absent || sc_decorate_texts_empty (texts))
		return;
	if (carries_own_list_id (headers, list)) {
		texts->header_text = NULL;
		texts->footer_text = NULL;
		*out_note = g_strdup (_("no header or footer text: the message already carries "
					"this list's List-Id (footer-if-absent)"));
		return;
	}
	header_present = texts->header_text != NULL && has_text (body, texts->header_text);
	footer_present = texts->footer_text != NULL && has_text (body, texts->footer_text);
	if (header_present)
		texts->header_text = NULL;
	if (footer_present)
		texts->footer_text = NULL;
	if (header_present || footer_present)
		*out_note = g_strdup (_("a header or footer text the message already has was not "
					"added again (footer-if-absent)"));
}

/* Why GMime's reading of the body cannot be followed, or NULL. */
static char *
body_unfit (ScDecorateHeaders *headers, GMimeMessage *parsed, gint64 headers_end)
{
	GMimeObject *top;

	if (parsed == NULL)
		return g_strdup (_("GMime could not parse it as a message"));
	/* Both readings must agree on where the body starts, or the splice
	 * would cut where GMime did not look. */
	if (headers_end >= 0 && (gsize) headers_end + 2 != headers->body_offset)
		return g_strdup (_("the end of the header block is ambiguous"));
	top = g_mime_message_get_mime_part (parsed);
	if (top == NULL)
		return g_strdup (_("GMime found no body part in it"));
	if (mime_depth (top) > SC_DECORATE_MAX_DEPTH)
		return g_strdup_printf (_("parts are nested more than %u deep"),
					(guint) SC_DECORATE_MAX_DEPTH);
	if (g_mime_content_type_is_type (g_mime_object_get_content_type (top),
					 "message",
					 "partial"))
		return g_strdup (_("a message/partial fragment would no longer reassemble"));
	return NULL;
}

/* The decorated message, or NULL (an empty message) with @out_note saying
 * why it passes through.  A message whose header block or body decorate
 * cannot follow still gets the list fields and the subject prefix, with
 * @out_note saying why the texts were left out.  @out_note may also be
 * set with a full result, e.g. to say the preferred placement did not
 * work out.  NULL with @error: try again later. */
GBytes *
sc_decorate_message (GBytes *input,
		     const ScConfig *config,
		     const ScListConfig *list,
		     GHashTable *variables,
		     gboolean allow_fast,
		     gboolean *out_fast,
		     char **out_note,
		     char **out_from_note,
		     GError **error)
{
	g_autoptr(GBytes) message = sc_decorate_normalize (input);
	g_autoptr(ScDecorateHeaders) headers = NULL;
	g_autoptr(GMimeMessage) parsed = NULL;
	g_autofree char *reason = NULL;
	g_autofree char *header_text = NULL;
	g_autofree char *footer_text = NULL;
	ScDecorateTexts texts = {NULL, NULL};
	ScDecoratePlacement placement;
	GMimeObject *top;
	gint64 headers_end = -1;
	int children_before = 0;
	ScDecorateFastBody fast_body;

	if (out_fast != NULL)
		*out_fast = FALSE;
	if (g_bytes_get_size (message) == 0) {
		*out_note = g_strdup (_("empty message"));
		return NULL;
	}
	headers = sc_decorate_headers_parse (message, &reason);
	if (headers == NULL) {
		g_autofree char *ignored = NULL;
		g_autofree char *subject = NULL;

		/* The fields above the stray line are certainly header fields:
		 * the list fields go in front of them, where they are safe, and
		 * the prefix onto a Subject among them (none is made up: one
		 * may follow the stray line). */
		headers = sc_decorate_headers_parse_leading (message, &ignored);
		sc_decorate_headers_prepend_list_fields (headers, list);
		subject = sc_decorate_headers_get (headers, "Subject");
		if (subject != NULL)
			(void) sc_decorate_headers_prefix_subject (headers, list->subject_prefix);
		if (!sc_decorate_from_rewrite (headers, config, list, out_from_note, error))
			return NULL;
		*out_note = g_strdup_printf (_("list fields only, the rest as it came: %s"), reason);
		return decorate_headers_only (message, headers);
	}
	header_text = sc_decorate_template_expand (list->header_template, variables);
	footer_text = sc_decorate_template_expand (list->footer_template, variables);
	texts.header_text = header_text;
	texts.footer_text = footer_text;
	if (allow_fast && sc_decorate_fast_check (headers, message, &fast_body)) {
		ScDecorateTexts fast_texts = texts;
		g_autofree char *fast_note = NULL;

		/* decided before any field changes: past here nothing falls back */
		drop_present_texts (headers, fast_has_text_cb, &fast_body, list, &fast_texts,
				    &fast_note);
		if (sc_decorate_fast_texts_fit (&fast_body, &fast_texts)) {
			sc_decorate_headers_set_list_fields (headers, list);
			(void) sc_decorate_headers_prefix_subject (headers, list->subject_prefix);
			if (!sc_decorate_from_rewrite (headers, config, list, out_from_note, error))
				return NULL;
			if (out_fast != NULL)
				*out_fast = TRUE;
			*out_note = g_steal_pointer (&fast_note);
			return sc_decorate_fast_place (headers, &fast_body, &fast_texts);
		}
	}
	parsed = parse_message (message, &headers_end);
	reason = body_unfit (headers, parsed, headers_end);
	if (reason == NULL)
		drop_present_texts (headers,
				    gmime_has_text_cb,
				    g_mime_message_get_mime_part (parsed),
				    list,
				    &texts,
				    out_note);
	sc_decorate_headers_set_list_fields (headers, list);
	(void) sc_decorate_headers_prefix_subject (headers, list->subject_prefix);
	/* DMARC (from-rewrite=) */
	if (!sc_decorate_from_rewrite (headers, config, list, out_from_note, error))
		return NULL;
	if (reason != NULL) {
		*out_note = g_strdup_printf (_("list fields only, the body as it came: %s"), reason);
		return decorate_headers_only (message, headers);
	}
	top = g_mime_message_get_mime_part (parsed);

	placement = decorate_choose (top, &texts);
	if (GMIME_IS_MULTIPART (top))
		children_before = g_mime_multipart_get_count (GMIME_MULTIPART (top));
	for (;;) {
		g_autofree char *why = NULL;
		g_autoptr(GBytes) output =
		    sc_decorate_mime_place (placement, headers, message, top, &texts, &why);

		if (output != NULL &&
		    decorate_verify (output, placement, children_before, &texts)) {
			if (reason != NULL) {
				g_free (*out_note);
				*out_note = g_strdup_printf (
				    /* TRANSLATORS: the reason follows the colon */
				    _("texts added in a new multipart/mixed around the message: "
				       "%s"),
				    reason);
			}
			return g_steal_pointer (&output);
		}
		if (why == NULL)
			why = g_strdup (_("the decorated message did not parse back as expected"));
		g_debug ("placement %d not possible: %s", (int) placement, why);
		if (placement == SC_DECORATE_PLACEMENT_WRAP ||
		    placement == SC_DECORATE_PLACEMENT_NONE) {
			g_free (*out_note);
			*out_note = g_strdup_printf (_("list fields only, the body as it came: %s"),
						     why);
			return decorate_headers_only (message, headers);
		}
		g_free (reason);
		reason = g_steal_pointer (&why);
		placement = SC_DECORATE_PLACEMENT_WRAP;
	}
}

static gboolean
decorate_run (ScStageContext *context, GError **error)
{
	g_autoptr(GHashTable) variables = NULL;
	g_autoptr(GBytes) output = NULL;
	g_autofree char *note = NULL;
	g_autofree char *from_note = NULL;
	g_autoptr(GError) error_local = NULL;

	if (context->current == NULL || context->list == NULL) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_PERMANENT,
				     "decorate: no message or no list in the stage context");
		return FALSE;
	}
	if (context->cancellable != NULL && g_cancellable_is_cancelled (context->cancellable)) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("cancelled"));
		return FALSE;
	}
	decorate_init ();

	variables =
	    sc_decorate_template_variables_new (context->list, context->queue_id, context->sender);
	output = sc_decorate_message (context->current,
				      context->config,
				      context->list,
				      variables,
				      TRUE,
				      NULL,
				      &note,
				      &from_note,
				      &error_local);
	if (error_local != NULL) {
		/* no policy to go by is no reason to guess: try again later */
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     error_local->message);
		return FALSE;
	}
	g_clear_pointer (&context->output, g_bytes_unref);
	g_clear_pointer (&context->note, g_free);
	if (output == NULL) {
		g_debug ("%s passed through: %s",
			 context->queue_id != NULL ? context->queue_id : "-",
			 note);
		context->output = g_bytes_ref (context->current);
		context->note = g_strdup_printf (_("passed through unchanged: %s"), note);
		return TRUE;
	}
	context->output = g_steal_pointer (&output);
	if (from_note != NULL && note != NULL)
		context->note = g_strdup_printf ("%s; %s", from_note, note);
	else
		context->note = from_note != NULL ? g_steal_pointer (&from_note)
						  : g_steal_pointer (&note);
	return TRUE;
}

/* Header values are written between angle brackets or as words. */
static gboolean
value_fits_header (const char *value, gboolean uri)
{
	for (const guchar *p = (const guchar *) value; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return FALSE;
		if (uri && (*p == ' ' || *p == '<' || *p == '>' || *p == '"' || *p == ','))
			return FALSE;
	}
	return TRUE;
}

static void
check_value (GPtrArray *problems, const char *key, const char *value, gboolean uri)
{
	if (value == NULL || value_fits_header (value, uri))
		return;
	g_ptr_array_add (problems,
			 g_strdup_printf (uri ? _("%s: “%s” cannot go in a header: a URL or "
						   "address has no spaces, control characters, "
						   "quotes, commas or angle brackets")
					      : _("%s: “%s” cannot go in a header: it contains "
						   "a control character"),
					  key,
					  value));
}

static gboolean
decorate_check (const ScConfig *config,
		const ScListConfig *list,
		const char *stage_argument,
		GPtrArray *warnings,
		GError **error)
{
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *joined = NULL;
	gboolean has_https = FALSE;

	g_return_val_if_fail (list != NULL, FALSE);

	for (guint i = 0; i < 2; i++) {
		const char *key = i == 0 ? SC_KEY_LIST_HEADER : SC_KEY_LIST_FOOTER;
		const char *text = i == 0 ? list->header_template : list->footer_template;
		g_autoptr(GError) error_local = NULL;

		if (!sc_decorate_template_check (text, key, &error_local))
			g_ptr_array_add (problems, g_strdup (error_local->message));
	}
	check_value (problems, SC_KEY_LIST_NAME, list->name, FALSE);
	check_value (problems, SC_KEY_LIST_SUBJECT_PREFIX, list->subject_prefix, FALSE);
	check_value (problems, SC_KEY_LIST_POST, list->post, TRUE);
	check_value (problems, SC_KEY_LIST_HELP, list->help, TRUE);
	check_value (problems, SC_KEY_LIST_ARCHIVE_URL, list->archive_url, TRUE);
	for (gsize i = 0; list->unsubscribe != NULL && list->unsubscribe[i] != NULL; i++) {
		check_value (problems, SC_KEY_LIST_UNSUBSCRIBE, list->unsubscribe[i], TRUE);
		if (g_ascii_strncasecmp (list->unsubscribe[i], "https:", 6) == 0)
			has_https = TRUE;
	}
	if (list->unsubscribe_url != NULL) {
		g_autoptr(GError) error_local = NULL;

		check_value (problems, SC_KEY_LIST_UNSUBSCRIBE_URL, list->unsubscribe_url, TRUE);
		if (!sc_list_unsubscribe_check (list, &error_local))
			g_ptr_array_add (problems, g_strdup (error_local->message));
		has_https = TRUE; /* the loader refuses any other scheme */
	}
	if (list->unsubscribe_one_click && !has_https)
		g_ptr_array_add (
		    problems,
		    g_strdup_printf (_("%s: one-click unsubscribe (RFC 8058) needs an "
					"https:// URL in %s"),
				     SC_KEY_LIST_UNSUBSCRIBE_POST,
				     SC_KEY_LIST_UNSUBSCRIBE));
	if (problems->len == 0)
		return TRUE;
	g_ptr_array_add (problems, NULL);
	joined = g_strjoinv ("; ", (char **) problems->pdata);
	g_set_error_literal (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, joined);
	return FALSE;
}

const ScHandler sc_handler_decorate = {
    .name = "decorate",
    .run = decorate_run,
    .check = decorate_check,
    .inline_before_deliver = TRUE,
};
