/* sc-decorate-private.h — the pieces of the decorate handler, shared between its files.
 *
 * sc-decorate.c is the glue (parse, choose, self-check, pass through);
 * sc-decorate-headers.c edits the top-level header block (list headers,
 * subject prefix); sc-decorate-template.c expands $variables;
 * sc-decorate-mime.c places the header and footer texts in the body.
 *
 * All of it works on the message as raw CRLF bytes and copies every byte
 * it does not mean to change: GMime is asked what the message is, never
 * trusted to write back what it parsed (it drops lines of malformed parts).
 * Nothing here keeps state between calls; every function may run on any
 * worker thread once g_mime_init() has run.
 */
#pragma once

#include <gmime/gmime.h>

#include "sc-handler.h"

G_BEGIN_DECLS

/* GMime 3.2 declares no cleanup functions of its own. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeContentType, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeDataWrapper, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeHeaderList, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeMessage, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeParser, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimePartIter, g_mime_part_iter_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeStream, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GMimeTextPart, g_object_unref)

/* Nesting deeper than this (multiparts and enclosed messages) is treated as
 * hostile and the message is passed through.  Real mail rarely goes past
 * ten; GMime itself stops at 512 enclosed messages. */
#define SC_DECORATE_MAX_DEPTH 64

/* sc-decorate-template.c */

/* Checks a template's $variables; @key ("header" or "footer") starts the
 * message, which names every unknown variable. */
gboolean sc_decorate_template_check (const char *text, const char *key, GError **error);
/* name → value for every known variable. (transfer full) */
GHashTable *sc_decorate_template_variables_new (const ScListConfig *list,
						const char *queue_id,
						const char *sender);
/* The expanded text, UTF-8 with LF line ends and a final LF, or NULL when
 * the template is NULL or expands to nothing but white space.  Unknown
 * variables are kept literally (check rejects them at load). */
char *sc_decorate_template_expand (const char *text, GHashTable *variables);

/* sc-decorate-headers.c */

/* CRLF line ends, RFC 2047 where needed; shared by every thread, never
 * modified after creation. (transfer none) */
GMimeFormatOptions *sc_decorate_format_options (void);

typedef struct {
	char *name;  /* (owned) the field name as written, e.g. "Content-Type" */
	GBytes *raw; /* (owned) the whole field: name, value, folded lines, final CRLF */
} ScDecorateField;

typedef struct {
	GPtrArray *fields; /* (owned) (element-type ScDecorateField) in order */
	gsize body_offset; /* where the body starts in the message bytes */
	/* the block stopped at a line that is neither field nor blank: no blank
	 * line is written after the fields, the rest follows as it came */
	gboolean open_end;
} ScDecorateHeaders;

/* Splits the header block off a CRLF message.  Returns NULL with
 * @out_reason set (transfer full, translated) when there is none: no field
 * on the first line, or a line that is neither field, continuation nor
 * the blank line ending the block. */
ScDecorateHeaders *sc_decorate_headers_parse (GBytes *message, char **out_reason);
/* The fields before the first line that is none (no fields when the first
 * line is none), with open_end set when such a line stopped it; never
 * NULL but for an empty message.  @out_reason says what stopped it (NULL
 * for a well-formed block). */
ScDecorateHeaders *sc_decorate_headers_parse_leading (GBytes *message, char **out_reason);
ScDecorateHeaders *sc_decorate_headers_copy (const ScDecorateHeaders *headers);
void sc_decorate_headers_free (ScDecorateHeaders *headers);
/* The first field named @name (any case), unfolded, trimmed; raw bytes, so
 * possibly not UTF-8.  (transfer full) (nullable) */
char *sc_decorate_headers_get (const ScDecorateHeaders *headers, const char *name);
/* Removes every field named @name, or starting with @name when @prefix. */
guint sc_decorate_headers_remove (ScDecorateHeaders *headers, const char *name, gboolean prefix);
/* Appends "Name: value", encoded (RFC 2047) and folded by GMime. */
void sc_decorate_headers_append (ScDecorateHeaders *headers, const char *name, const char *value);
/* Appends a field already in wire form (CRLF line ends, final CRLF). */
void sc_decorate_headers_append_raw (ScDecorateHeaders *headers, const char *name, const char *raw);
/* Replaces the first field named @name in place (appends when absent). */
void sc_decorate_headers_replace (ScDecorateHeaders *headers, const char *name, const char *value);
/* Fields, then the blank line. */
void sc_decorate_headers_write (const ScDecorateHeaders *headers, GByteArray *out);

/* RFC 2369/2919/8058 fields and Precedence, replacing the poster's List-*. */
void sc_decorate_headers_set_list_fields (ScDecorateHeaders *headers, const ScListConfig *list);
/* The same fields at the top of the block, where they are safe whatever
 * follows (for a block that did not parse). */
void sc_decorate_headers_prepend_list_fields (ScDecorateHeaders *headers, const ScListConfig *list);
/* Puts @prefix in front of the Subject exactly once.  Returns FALSE when
 * the subject already had the prefix in the right place. */
gboolean sc_decorate_headers_prefix_subject (ScDecorateHeaders *headers, const char *prefix);
/* The subject with @prefix once in front, reply and forward markers
 * ("Re:", "RE:", "Aw:", "Fwd:", "Re[2]:" …) folded into one each after it,
 * or NULL when @subject is already in that form.  Bytes other than ASCII
 * markers are copied, so it works on raw 8-bit subjects too. */
char *sc_decorate_subject_normalize (const char *subject, const char *prefix);

/* sc-decorate-mime.c */

typedef enum {
	SC_DECORATE_PLACEMENT_NONE,   /* no header or footer text: headers only */
	SC_DECORATE_PLACEMENT_INLINE, /* a single text/plain body: in its charset and encoding */
	SC_DECORATE_PLACEMENT_PART,   /* multipart/mixed: a new text/plain part */
	SC_DECORATE_PLACEMENT_WRAP,   /* anything else: new multipart/mixed around the original */
} ScDecoratePlacement;

typedef struct {
	const char *header_text; /* (nullable) expanded, UTF-8, LF */
	const char *footer_text; /* (nullable) expanded, UTF-8, LF */
} ScDecorateTexts;

/* Line ends to CRLF, a leading mbox "From " line dropped. (transfer full) */
GBytes *sc_decorate_normalize (GBytes *message);
/* Whole output message for one placement, or NULL with @out_reason
 * (transfer full, translated) when that placement cannot take the message.
 * @top is GMime's view of the top-level part.  A new boundary is derived
 * from the message's checksum, so a retry yields the same bytes. */
GBytes *sc_decorate_mime_place (ScDecoratePlacement placement,
				const ScDecorateHeaders *headers,
				GBytes *message,
				GMimeObject *top,
				const ScDecorateTexts *texts,
				char **out_reason);
/* Whether the texts need the body at all. */
gboolean sc_decorate_texts_empty (const ScDecorateTexts *texts);
/* Whether a decoded text body is inline-PGP signed or encrypted. */
gboolean sc_decorate_mime_is_inline_pgp (const guint8 *data, gsize length);

/* sc-decorate-fast.c */

/* A body the fast path can follow: one text/plain part, US-ASCII or
 * UTF-8, 7bit, 8bit or binary, valid in its charset, no NUL. */
typedef struct {
	const guint8 *data; /* (not owned) the body in the message bytes; never NULL */
	gsize length;
	gboolean utf8;      /* charset=utf-8 (else US-ASCII) */
	gboolean ascii;     /* no byte above 0x7f in the body */
	gboolean seven_bit; /* no Content-Transfer-Encoding, or 7bit */
} ScDecorateFastBody;

/* Whether @message (CRLF, split as @headers) is certainly of the fast
 * path's shape; fills @out_body (pointing into @message) when it is. */
gboolean sc_decorate_fast_check (const ScDecorateHeaders *headers,
				 GBytes *message,
				 ScDecorateFastBody *out_body);
/* Whether the body already holds @text, as the GMime path judges it. */
gboolean sc_decorate_fast_has_text (const ScDecorateFastBody *body, const char *text);
/* Whether the texts can go in the body as they are (same charset, same
 * transfer encoding); FALSE: the GMime path must re-encode. */
gboolean sc_decorate_fast_texts_fit (const ScDecorateFastBody *body, const ScDecorateTexts *texts);
/* The whole output message, the bytes the GMime path's inline (or none)
 * placement gives; @headers lose any Content-Length. (transfer full) */
GBytes *sc_decorate_fast_place (ScDecorateHeaders *headers,
				const ScDecorateFastBody *body,
				const ScDecorateTexts *texts);

/* sc-decorate.c */

/* The stage without its context: the decorated message, or NULL with
 * @out_note saying why it passes through (NULL with @error: try again
 * later).  @allow_fast FALSE forces the GMime path (the tests compare the
 * two); @out_fast (nullable) says whether the fast path was taken. */
GBytes *sc_decorate_message (GBytes *input,
			     const ScConfig *config,
			     const ScListConfig *list,
			     GHashTable *variables,
			     gboolean allow_fast,
			     gboolean *out_fast,
			     char **out_note,
			     char **out_from_note,
			     GError **error);

/* sc-decorate-from.c */

/* DMARC mitigation, per the list's from-rewrite: From becomes "Author via
 * List" <list address>, the author goes to Reply-To (or Cc) and the
 * original field to X-Original-From.  @config (nullable: the defaults)
 * gives dns-server, dns-timeout and public-suffix-list.  @out_note
 * (transfer full) says what was done, or stays NULL.  FALSE with @error
 * when the policy could not be learnt (DNS failure, no public suffix
 * list): the stage must be tried again later, nothing was changed. */
gboolean sc_decorate_from_rewrite (ScDecorateHeaders *headers,
				   const ScConfig *config,
				   const ScListConfig *list,
				   char **out_note,
				   GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScDecorateHeaders, sc_decorate_headers_free)

G_END_DECLS
