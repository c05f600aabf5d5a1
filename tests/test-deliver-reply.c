/* test-deliver-reply.c — the SMTP reply table, row by row, and enhanced-code parsing. */
#include "config.h"

#include "sc-deliver-reply.h"

typedef struct {
	int code;
	const char *text;
	ScReplyClass expected;
} ReplyCase;

static void
assert_cases (const ReplyCase *cases, gsize n_cases)
{
	for (gsize i = 0; i < n_cases; i++) {
		ScReplyClass class = sc_smtp_reply_classify (cases[i].code, cases[i].text);

		if (class != cases[i].expected)
			g_error ("%d \"%s\": got %d, expected %d",
				 cases[i].code,
				 cases[i].text != NULL ? cases[i].text : "(null)",
				 class,
				 cases[i].expected);
	}
}

static void
test_reply_success (void)
{
	const ReplyCase cases[] = {
	    {250, "2.1.5 Ok", SC_REPLY_SUCCESS},
	    {221, NULL, SC_REPLY_SUCCESS},
	    {354, "End data with <CR><LF>.<CR><LF>", SC_REPLY_SUCCESS},
	    {334, "", SC_REPLY_SUCCESS},
	    /* an inconsistent enhanced code cannot turn success into failure */
	    {250, "5.0.0 odd but ok", SC_REPLY_SUCCESS},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_transient_named (void)
{
	const ReplyCase cases[] = {
	    {421, "4.3.2 Service shutting down", SC_REPLY_TRANSIENT},
	    {450, "4.2.0 Mailbox busy", SC_REPLY_TRANSIENT},
	    {451, "4.3.0 Local error", SC_REPLY_TRANSIENT},
	    {452, "4.5.3 Too many recipients", SC_REPLY_TRANSIENT},
	    {421, NULL, SC_REPLY_TRANSIENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_transient_other_4xx (void)
{
	const ReplyCase cases[] = {
	    {454, "4.7.0 TLS not available", SC_REPLY_TRANSIENT},
	    {432, NULL, SC_REPLY_TRANSIENT},
	    {499, "whatever", SC_REPLY_TRANSIENT},
	    /* enhanced 5.x.x disagrees with the basic 4xx: the basic code decides */
	    {451, "5.7.1 policy", SC_REPLY_TRANSIENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_552_too_big (void)
{
	const ReplyCase cases[] = {
	    {552, "5.3.4 Message size exceeds fixed limit", SC_REPLY_PERMANENT},
	    {552, "552 5.3.4 Message too big", SC_REPLY_PERMANENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_552_content (void)
{
	const ReplyCase cases[] = {
	    {552, "5.6.0 Content rejected", SC_REPLY_PERMANENT},
	    {552, "5.6.3 Conversion not supported", SC_REPLY_PERMANENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_552_other (void)
{
	const ReplyCase cases[] = {
	    {552, "5.2.2 Mailbox full", SC_REPLY_TRANSIENT},
	    {552, "Requested mail action aborted", SC_REPLY_TRANSIENT},
	    {552, NULL, SC_REPLY_TRANSIENT},
	    /* 5.3.4 must be a whole code */
	    {552, "5.3.40 something", SC_REPLY_TRANSIENT},
	    /* class 4 disagrees with 552: the basic code decides, and 552 alone
	     * is temporary */
	    {552, "4.3.4 too big, maybe", SC_REPLY_TRANSIENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_permanent_named (void)
{
	const ReplyCase cases[] = {
	    {550, "5.1.1 No such user", SC_REPLY_PERMANENT},
	    {551, "5.1.6 User not local", SC_REPLY_PERMANENT},
	    {553, "5.1.3 Bad address syntax", SC_REPLY_PERMANENT},
	    {554, "5.7.1 Relay access denied", SC_REPLY_PERMANENT},
	    {550, NULL, SC_REPLY_PERMANENT},
	    /* "550 4.7.1 try later": the basic code decides (documented in
	     * sc-deliver-reply.c) */
	    {550, "4.7.1 try later", SC_REPLY_PERMANENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_permanent_other_5xx (void)
{
	const ReplyCase cases[] = {
	    {500, "5.5.2 Syntax error", SC_REPLY_PERMANENT},
	    {501, "5.1.3 Bad recipient address syntax", SC_REPLY_PERMANENT},
	    {503, NULL, SC_REPLY_PERMANENT},
	    {535, "5.7.8 Authentication credentials invalid", SC_REPLY_PERMANENT},
	    {599, "", SC_REPLY_PERMANENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_no_reply (void)
{
	const ReplyCase cases[] = {
	    {0, NULL, SC_REPLY_TRANSIENT},
	    {0, "Connection refused", SC_REPLY_TRANSIENT},
	    {199, NULL, SC_REPLY_TRANSIENT},
	    {600, "5.0.0", SC_REPLY_TRANSIENT},
	    {-1, NULL, SC_REPLY_TRANSIENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_reply_verbatim_text (void)
{
	const ReplyCase cases[] = {
	    /* the whole verbatim reply, code and all, as ScSmtpResult keeps it */
	    {552, "552-5.3.4 Message too big\n552 5.3.4 see policy", SC_REPLY_PERMANENT},
	    {552, "552 5.2.2 Mailbox full", SC_REPLY_TRANSIENT},
	    /* another code's prefix is not skipped: no enhanced code found */
	    {552, "550 5.3.4 wrong prefix", SC_REPLY_TRANSIENT},
	};
	assert_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_enhanced_parse (void)
{
	int class = -1;
	int subject = -1;
	int detail = -1;

	g_assert_true (sc_smtp_enhanced_code ("5.1.1 No such user", &class, &subject, &detail));
	g_assert_cmpint (class, ==, 5);
	g_assert_cmpint (subject, ==, 1);
	g_assert_cmpint (detail, ==, 1);

	g_assert_true (sc_smtp_enhanced_code ("  \t4.7.26", &class, &subject, &detail));
	g_assert_cmpint (class, ==, 4);
	g_assert_cmpint (subject, ==, 7);
	g_assert_cmpint (detail, ==, 26);

	g_assert_true (sc_smtp_enhanced_code ("2.0.0\tOk", &class, &subject, &detail));
	g_assert_cmpint (class, ==, 2);
	g_assert_cmpint (detail, ==, 0);

	g_assert_true (sc_smtp_enhanced_code ("5.999.999 max", &class, &subject, &detail));
	g_assert_cmpint (subject, ==, 999);
	g_assert_cmpint (detail, ==, 999);

	/* the out arguments are optional */
	g_assert_true (sc_smtp_enhanced_code ("5.6.0", NULL, NULL, NULL));
}

static void
test_enhanced_reject (void)
{
	const char *const bad[] = {
	    "",
	    "Ok",
	    "3.1.1 no such class",
	    "6.1.1 no such class",
	    "51.1.1 two-digit class",
	    "5.1 missing detail",
	    "5..1 empty subject",
	    "5.1. empty detail",
	    "5.1000.1 four-digit subject",
	    "5.1.1000 four-digit detail",
	    "5.1.1. trailing dot",
	    "5.1.1x glued",
	    "x5.1.1 leading junk",
	    "550 5.1.1 code first",
	};
	int class = 42;

	g_assert_false (sc_smtp_enhanced_code (NULL, &class, NULL, NULL));
	for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
		if (sc_smtp_enhanced_code (bad[i], &class, NULL, NULL))
			g_error ("\"%s\" parsed as an enhanced code", bad[i]);
	}
	/* nothing written on failure */
	g_assert_cmpint (class, ==, 42);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

	g_test_add_func ("/deliver-reply/row/success", test_reply_success);
	g_test_add_func ("/deliver-reply/row/transient-named", test_reply_transient_named);
	g_test_add_func ("/deliver-reply/row/transient-other-4xx", test_reply_transient_other_4xx);
	g_test_add_func ("/deliver-reply/row/552-too-big", test_reply_552_too_big);
	g_test_add_func ("/deliver-reply/row/552-content", test_reply_552_content);
	g_test_add_func ("/deliver-reply/row/552-other", test_reply_552_other);
	g_test_add_func ("/deliver-reply/row/permanent-named", test_reply_permanent_named);
	g_test_add_func ("/deliver-reply/row/permanent-other-5xx", test_reply_permanent_other_5xx);
	g_test_add_func ("/deliver-reply/row/no-reply", test_reply_no_reply);
	g_test_add_func ("/deliver-reply/verbatim-text", test_reply_verbatim_text);
	g_test_add_func ("/deliver-reply/enhanced/parse", test_enhanced_parse);
	g_test_add_func ("/deliver-reply/enhanced/reject", test_enhanced_reject);
	return g_test_run ();
}
