/* fuzz-reply.c — the SMTP reply classification table
 * (handlers/sc-deliver-reply.h) on arbitrary replies.
 *
 * An input is a reply as a server sends it: "552 5.3.4 too big".  Its
 * leading digits (at most four) are the basic code, as libcurl reports it;
 * even-sized inputs pass the verbatim line as the text, odd-sized ones the
 * text after the code, the two forms callers use.  Properties: the class
 * follows the basic code as the header promises (2xx/3xx success, 4xx
 * transient, 5xx permanent but 552 only with 5.3.4 or 5.6.x, anything else
 * transient), and a parsed enhanced code is "[245].d{1,3}.d{1,3}".
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "fuzz.h"
#include "sc-deliver-reply.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
	return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
	g_autofree char *line = g_strndup ((const char *) data, size); /* up to a NUL */
	const char *text = line;
	const char *after = line; /* the text after the code */
	int code = 0;
	int class = -1;
	int subject = -1;
	int detail = -1;
	gboolean enhanced;
	gboolean after_code = size % 2 == 1;
	ScReplyClass result;

	for (int i = 0; i < 4 && g_ascii_isdigit (line[i]); i++)
		code = code * 10 + (line[i] - '0');
	while (g_ascii_isdigit (*after))
		after++;
	if (*after == ' ' || *after == '-')
		after++;
	if (after_code)
		text = after;
	result = sc_smtp_reply_classify (code, text);
	SC_FUZZ_ASSERT (result == SC_REPLY_SUCCESS || result == SC_REPLY_TRANSIENT ||
			result == SC_REPLY_PERMANENT);
	/* NULL text: the basic code alone decides */
	SC_FUZZ_ASSERT (sc_smtp_reply_classify (code, NULL) == sc_smtp_reply_classify (code, ""));

	if (code >= 200 && code <= 399)
		SC_FUZZ_ASSERT (result == SC_REPLY_SUCCESS);
	else if (code >= 400 && code <= 499)
		SC_FUZZ_ASSERT (result == SC_REPLY_TRANSIENT);
	else if (code >= 500 && code <= 599 && code != 552)
		SC_FUZZ_ASSERT (result == SC_REPLY_PERMANENT);
	else if (code != 552)
		SC_FUZZ_ASSERT (result == SC_REPLY_TRANSIENT);
	else if (result == SC_REPLY_PERMANENT) {
		/* 552 is permanent only when the message itself is the problem;
		 * the classifier skips a leading "552 " of the text it is given */
		const char *enhanced_at = text;
		if (strncmp (enhanced_at, "552", 3) == 0 &&
		    (enhanced_at[3] == ' ' || enhanced_at[3] == '-' || enhanced_at[3] == '\0'))
			enhanced_at += enhanced_at[3] == '\0' ? 3 : 4;
		SC_FUZZ_ASSERT (sc_smtp_enhanced_code (enhanced_at, &class, &subject, &detail) &&
				class == 5 && ((subject == 3 && detail == 4) || subject == 6));
	}
	class = subject = detail = -1;

	enhanced = sc_smtp_enhanced_code (text, &class, &subject, &detail);
	if (enhanced) {
		SC_FUZZ_ASSERT (class == 2 || class == 4 || class == 5);
		SC_FUZZ_ASSERT (subject >= 0 && subject <= 999);
		SC_FUZZ_ASSERT (detail >= 0 && detail <= 999);
	} else {
		SC_FUZZ_ASSERT (class == -1 && subject == -1 && detail == -1);
	}
	SC_FUZZ_ASSERT (sc_smtp_enhanced_code (NULL, NULL, NULL, NULL) == FALSE);
	return 0;
}
