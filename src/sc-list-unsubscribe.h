/* sc-list-unsubscribe.h — the List-Unsubscribe field (RFC 2369) and one-click (RFC 8058).
 *
 * A list's unsubscribe-url= is a template: when it names $recipient, each
 * recipient needs a message of its own, so decorate leaves both fields
 * out and deliver adds them per recipient (and signs afterwards when the
 * pipeline has sign); otherwise decorate adds them once, like every other
 * List-* field.
 */
#pragma once

#include <glib.h>

#include "sc-config.h"

G_BEGIN_DECLS

/* "<mailto:a@b>" for an address, "<scheme:…>" for a URI, a value already
 * in angle brackets as it is. (transfer full) */
char *sc_list_uri_angled (const char *value);

/* Checks @list's unsubscribe-url: its $variables ($recipient, $list_id,
 * $list_name, $token), and that $token comes with $recipient and an
 * unsubscribe-secret-file; the error names the key. */
gboolean sc_list_unsubscribe_check (const ScListConfig *list, GError **error);

/* $token for @recipient: base64url (no padding) of HMAC-SHA256 over
 * "LIST-ID\nRECIPIENT" with the contents of unsubscribe-secret-file as the
 * key (read now, so a rotated secret needs no reload), for the
 * unsubscribe page to check that the link came from the list.  NULL with
 * @error (naming the file, never its contents) when it cannot be read.
 * (transfer full) */
char *sc_list_unsubscribe_token (const ScListConfig *list, const char *recipient, GError **error);

/* Whether the list's unsubscribe-url depends on the recipient. */
gboolean sc_list_unsubscribe_is_personal (const ScListConfig *list);

/* The List-Unsubscribe value for @recipient (NULL: the list's fields do
 * not depend on one): the expanded unsubscribe-url first, then the URIs
 * of unsubscribe=, each in angle brackets; NULL (without @error) when
 * there is none.  Variable values are percent-encoded.  Fails only when
 * $token's secret cannot be read. (transfer full) */
char *sc_list_unsubscribe_value (const ScListConfig *list, const char *recipient, GError **error);

/* Whether List-Unsubscribe-Post: List-Unsubscribe=One-Click goes with it:
 * unsubscribe-url is set, or unsubscribe-one-click with an https: URI in
 * unsubscribe=. */
gboolean sc_list_unsubscribe_one_click (const ScListConfig *list);

/* @message with List-Unsubscribe (folded) and List-Unsubscribe-Post for
 * @recipient put at the top of its header block, in the message's own
 * line ends (transfer full); @message itself (a new reference) when the
 * list has no unsubscribe field; NULL as sc_list_unsubscribe_value(). */
GBytes *sc_list_unsubscribe_add (GBytes *message,
				 const ScListConfig *list,
				 const char *recipient,
				 GError **error);

G_END_DECLS
