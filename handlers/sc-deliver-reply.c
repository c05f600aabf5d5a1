/* sc-deliver-reply.c — the one table that says what an SMTP reply means for a retry.
 *
 * Every decision "try again later or give up" taken on an SMTP reply comes
 * from sc_smtp_reply_classify(), and it comes from the rows of
 * reply_rules[] below, read top to bottom, first match wins.  Postfix keeps
 * the same kind of knowledge in one table (global/sys_exits.c); so do we,
 * so that the operator, the tests and the man page can point at one row.
 *
 * Enhanced status codes (RFC 3463 "class.subject.detail" at the start of the
 * text) refine a row only when their class agrees with the basic code's
 * first digit.  When they disagree ("550 4.7.1 try later", "451 5.7.1 …")
 * the basic code decides: RFC 3463 section 2 makes the basic code
 * authoritative for clients that understand both, and a server that sends
 * the two inconsistently is more likely to have a stale text template than
 * a wrong code.
 *
 * Must never: guess from the human text beyond the enhanced code, or treat a
 * missing or unparsable reply as permanent (a lost reply is a network
 * problem: transient).
 */
#include "config.h"

#include "sc-deliver-reply.h"

/* a wildcard in a rule's enhanced-code fields */
#define ANY (-1)

typedef struct {
	int code_low;   /* basic code range, inclusive */
	int code_high;
	int subject;    /* ANY, or the enhanced subject the reply must carry */
	int detail;     /* ANY, or the enhanced detail; only with a subject */
	ScReplyClass class;
} ScReplyRule;

static const ScReplyRule reply_rules[] = {
    /* positive completion and intermediate replies (354 to DATA, 334 to AUTH) */
    {200, 399, ANY, ANY, SC_REPLY_SUCCESS},
    /* service not available, closing the channel: the server's state, not ours */
    {421, 421, ANY, ANY, SC_REPLY_TRANSIENT},
    /* mailbox unavailable (busy, greylisting) */
    {450, 450, ANY, ANY, SC_REPLY_TRANSIENT},
    /* local error in processing */
    {451, 451, ANY, ANY, SC_REPLY_TRANSIENT},
    /* insufficient system storage, too many recipients */
    {452, 452, ANY, ANY, SC_REPLY_TRANSIENT},
    /* every other 4xx: RFC 5321 section 4.2.1, transient negative */
    {400, 499, ANY, ANY, SC_REPLY_TRANSIENT},
    /* 552 naming the message itself: too big (5.3.4) or its content (5.6.x) */
    {552, 552, 3, 4, SC_REPLY_PERMANENT},
    {552, 552, 6, ANY, SC_REPLY_PERMANENT},
    /* any other 552 (typically 5.2.2 mailbox full): RFC 5321 section 4.5.3.1.10
     * allows 552 for "too many recipients", which is temporary, and mail
     * software has long retried it */
    {552, 552, ANY, ANY, SC_REPLY_TRANSIENT},
    /* no such user, user not local, bad mailbox name, transaction failed */
    {550, 551, ANY, ANY, SC_REPLY_PERMANENT},
    {553, 554, ANY, ANY, SC_REPLY_PERMANENT},
    /* every other 5xx: RFC 5321 section 4.2.1, permanent negative */
    {500, 599, ANY, ANY, SC_REPLY_PERMANENT},
};

/* "ddd" followed by ' ', '-' or the end: the verbatim reply line was passed */
static const char *
sc_smtp_reply_skip_code (int code, const char *text)
{
	char prefix[4];

	if (code < 100 || code > 999)
		return text;
	g_snprintf (prefix, sizeof (prefix), "%d", code);
	if (strncmp (text, prefix, 3) != 0)
		return text;
	if (text[3] == ' ' || text[3] == '-')
		return text + 4;
	if (text[3] == '\0')
		return text + 3;
	return text;
}

/* 1 to 3 digits; the value, or -1 */
static int
sc_smtp_reply_parse_number (const char **cursor)
{
	const char *p = *cursor;
	int value = 0;
	int digits = 0;

	while (g_ascii_isdigit (*p)) {
		if (++digits > 3)
			return -1;
		value = value * 10 + (*p - '0');
		p++;
	}
	if (digits == 0)
		return -1;
	*cursor = p;
	return value;
}

gboolean
sc_smtp_enhanced_code (const char *text, int *out_class, int *out_subject, int *out_detail)
{
	const char *p = text;
	int class;
	int subject;
	int detail;

	if (text == NULL)
		return FALSE;
	while (*p == ' ' || *p == '\t')
		p++;
	/* RFC 3463 section 2: class = "2" / "4" / "5", one digit */
	if (*p != '2' && *p != '4' && *p != '5')
		return FALSE;
	class = *p - '0';
	p++;
	if (*p++ != '.')
		return FALSE;
	subject = sc_smtp_reply_parse_number (&p);
	if (subject < 0 || *p++ != '.')
		return FALSE;
	detail = sc_smtp_reply_parse_number (&p);
	if (detail < 0)
		return FALSE;
	/* "5.1.1." or "5.1.1x" is some other token, not a status code */
	if (*p != '\0' && !g_ascii_isspace (*p))
		return FALSE;
	if (out_class != NULL)
		*out_class = class;
	if (out_subject != NULL)
		*out_subject = subject;
	if (out_detail != NULL)
		*out_detail = detail;
	return TRUE;
}

ScReplyClass
sc_smtp_reply_classify (int code, const char *text)
{
	gboolean has_enhanced = FALSE;
	int class = 0;
	int subject = 0;
	int detail = 0;

	if (text != NULL) {
		has_enhanced = sc_smtp_enhanced_code (sc_smtp_reply_skip_code (code, text),
						      &class,
						      &subject,
						      &detail);
		/* inconsistent with the basic code: ignored, the basic code decides */
		if (has_enhanced && class != code / 100)
			has_enhanced = FALSE;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (reply_rules); i++) {
		const ScReplyRule *rule = &reply_rules[i];

		if (code < rule->code_low || code > rule->code_high)
			continue;
		if (rule->subject != ANY &&
		    (!has_enhanced || rule->subject != subject ||
		     (rule->detail != ANY && rule->detail != detail)))
			continue;
		return rule->class;
	}
	/* no reply (0), 1xx, or nonsense: nothing says retrying cannot help */
	return SC_REPLY_TRANSIENT;
}
