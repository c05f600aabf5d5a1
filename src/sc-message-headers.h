/* sc-message-headers.h — just enough RFC 5322 header reading for ingress:
 * is this a message at all, what are its Subject, Message-ID, List-Id and
 * recipient headers, and small edits (add Message-ID, drop Bcc) that leave
 * every other byte as it was.  Never parses the body (50 MB messages pass
 * through here). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScMessageHeaders ScMessageHeaders;

/* The length of the field name at the start of @line (RFC 5322 ftext),
 * 0 when the line is no header field; obs-optional white space may stand
 * before the colon, whose offset goes to @out_colon. */
gsize sc_header_field_name_length (const guint8 *line, gsize length, gsize *out_colon);

/* The length of a leading mbox "From " separator line (its newline
 * included), 0 when there is none.  "From :" and "From  :" are
 * obsolete-syntax From fields, not separators. */
gsize sc_message_mbox_separator_length (const guint8 *data, gsize length);

/* @raw without what some tools put in front of the first header line
 * and that carries nothing: a UTF-8 byte-order mark, and lines of only
 * spaces and tabs (an empty line is not one: it ends an empty header
 * block).  No header field can start with either, so a message
 * kept with them would read as headerless everywhere after ingress.
 * (transfer full) */
GBytes *sc_message_trim_leading (GBytes *raw);

/* FALSE with SC_INPUT_ERROR_DATA when @raw is not a message: empty, binary,
 * no header field on the first line, NUL bytes among the headers. */
ScMessageHeaders *sc_message_headers_parse (GBytes *raw, GError **error);
void sc_message_headers_free (ScMessageHeaders *headers);

/* (nullable) the unfolded raw value of the first such field. */
const char *sc_message_headers_get (ScMessageHeaders *headers, const char *name);
/* (transfer full) (nullable) RFC 2047-decoded, valid UTF-8. */
char *sc_message_headers_get_decoded (ScMessageHeaders *headers, const char *name);
/* (transfer full) addr-specs from every field of that name (To, Cc, Bcc). */
GPtrArray *sc_message_headers_get_addresses (ScMessageHeaders *headers, const char *name);

/* (transfer full) @raw with "Message-ID: <@message_id>" added on top of
 * the header block, in the message's own line-ending style. */
GBytes *sc_message_headers_add_message_id (ScMessageHeaders *headers, const char *message_id);
/* (transfer full) @raw without its Bcc fields (sendmail -t). */
GBytes *sc_message_headers_remove (ScMessageHeaders *headers, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScMessageHeaders, sc_message_headers_free)

/* Recipient and sender addresses: 1–254 octets, local@domain, no spaces,
 * controls, CR, LF, angle brackets or NUL; so nothing typed here can ever
 * split an SMTP command line.  An empty sender (null reverse-path) is
 * allowed with @allow_empty. */
gboolean sc_address_validate (const char *address, gboolean allow_empty, GError **error);

G_END_DECLS
