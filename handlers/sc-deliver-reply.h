/* sc-deliver-reply.h — what an SMTP reply means for a retry: one table in
 * one place (sc-deliver-reply.c), tested row by row. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	SC_REPLY_SUCCESS,   /* 2xx (and 3xx intermediate replies) */
	SC_REPLY_TRANSIENT, /* try again later: 4xx, 552 without a permanent enhanced
			     * code, no reply at all (code 0) */
	SC_REPLY_PERMANENT, /* 5xx: retrying cannot help */
} ScReplyClass;

/* @code: the basic three-digit code (0: no reply at all, transient);
 * @text: (nullable) the reply text after the code, or the verbatim reply
 * with its leading "ddd " / "ddd-", where an RFC 3463 enhanced status code
 * ("5.1.1") is looked for.  A present enhanced code decides when its class
 * (2/4/5) is consistent with the basic code; when it is not, the basic code
 * decides.  552 is temporary unless its enhanced code says the message
 * itself is the problem (5.3.4 too big, 5.6.x content).  Any thread. */
ScReplyClass sc_smtp_reply_classify (int code, const char *text);
/* Parses "x.y.z" at the start of @text (after spaces); FALSE if none. */
gboolean sc_smtp_enhanced_code (const char *text,
				int *out_class,
				int *out_subject,
				int *out_detail);

G_END_DECLS
