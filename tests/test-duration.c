/* test-duration.c — durations and sizes as the config file spells them. */
#include "config.h"

#include "sc-duration.h"
#include "sc-error.h"

#define SEC G_GINT64_CONSTANT (1000000)
#define MIN_ (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)

static gint64
parse_ok (const char *text)
{
	g_autoptr(GError) error = NULL;
	gint64 value = -12345;

	g_assert_true (sc_duration_parse (text, &value, &error));
	g_assert_no_error (error);
	return value;
}

static void
parse_fails (const char *text)
{
	g_autoptr(GError) error = NULL;
	gint64 value = -12345;

	if (sc_duration_parse (text, &value, &error))
		g_error ("“%s” parsed as %" G_GINT64_FORMAT " but must fail", text, value);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	/* the message quotes what the user wrote and says what is accepted */
	g_assert_nonnull (strstr (error->message, text));
	g_assert_nonnull (strstr (error->message, "30s"));
	g_assert_cmpint (value, ==, -12345);
}

static void
test_duration_units (void)
{
	g_assert_cmpint (parse_ok ("250ms"), ==, 250 * 1000);
	g_assert_cmpint (parse_ok ("1ms"), ==, 1000);
	g_assert_cmpint (parse_ok ("30s"), ==, 30 * SEC);
	g_assert_cmpint (parse_ok ("15m"), ==, 15 * MIN_);
	g_assert_cmpint (parse_ok ("1h"), ==, HOUR);
	g_assert_cmpint (parse_ok ("5d"), ==, 5 * DAY);
	g_assert_cmpint (parse_ok ("2w"), ==, 14 * DAY);
	g_assert_cmpint (parse_ok ("0s"), ==, 0);
	g_assert_cmpint (parse_ok ("0"), ==, 0);
}

static void
test_duration_bare_seconds (void)
{
	g_assert_cmpint (parse_ok ("30"), ==, 30 * SEC);
	g_assert_cmpint (parse_ok ("1"), ==, SEC);
	g_assert_cmpint (parse_ok ("  45  "), ==, 45 * SEC);
}

static void
test_duration_combinations (void)
{
	g_assert_cmpint (parse_ok ("1h30m"), ==, HOUR + 30 * MIN_);
	g_assert_cmpint (parse_ok ("1d12h"), ==, DAY + 12 * HOUR);
	g_assert_cmpint (parse_ok ("2m30s"), ==, 2 * MIN_ + 30 * SEC);
	g_assert_cmpint (parse_ok ("1s500ms"), ==, SEC + 500 * 1000);
	g_assert_cmpint (parse_ok ("1w1d1h1m1s1ms"), ==, 8 * DAY + HOUR + MIN_ + SEC + 1000);
	g_assert_cmpint (parse_ok (" 1h30m "), ==, HOUR + 30 * MIN_);
}

static void
test_duration_errors (void)
{
	parse_fails ("");
	parse_fails ("   ");
	parse_fails ("5x");
	parse_fails ("x5");
	parse_fails ("s");
	parse_fails ("1h30");  /* ambiguous: 30 what? */
	parse_fails ("0h30");  /* the same, even when the first part is zero */
	parse_fails ("-5s");
	parse_fails ("-1");
	parse_fails ("+5s");
	parse_fails ("1.5h");
	parse_fails ("5 s");
	parse_fails ("1h 30m");
	parse_fails ("5sec");
	parse_fails ("5min");
	parse_fails ("5S");
	parse_fails ("1h-30m");
	/* overflow of gint64 µs, in the number, the unit and the sum */
	parse_fails ("99999999999999999999");
	parse_fails ("99999999999999999999999999ms");
	parse_fails ("9223372036854775807ms");
	parse_fails ("106751992d");
	parse_fails ("15250285w");
	parse_fails ("106751991d106751991d");
}

static void
test_duration_limits (void)
{
	/* just below the gint64 µs limit (about 106751991 days) still parses */
	g_assert_cmpint (parse_ok ("106751991d"), ==, G_GINT64_CONSTANT (106751991) * DAY);
	g_assert_cmpint (parse_ok ("9223372036854775ms"), ==, G_GINT64_CONSTANT (9223372036854775000));
}

static void
test_duration_format (void)
{
	static const struct {
		gint64 duration;
		const char *text;
	} cases[] = {
	    {0, "0ms"},
	    {250 * 1000, "250ms"},
	    {SEC, "1s"},
	    {30 * SEC, "30s"},
	    {2 * MIN_, "2m"},
	    {HOUR, "1h"},
	    {HOUR + 30 * MIN_, "1h30m"},
	    {DAY + 2 * HOUR + 3 * MIN_ + 4 * SEC, "1d2h3m4s"},
	    {5 * DAY, "5d"},
	    {14 * DAY, "14d"},
	    {-30 * SEC, "-30s"},
	    {SEC + 500 * 1000, "1s500ms"},
	    {HOUR + 1000, "1h1ms"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
		g_autofree char *text = sc_duration_format (cases[i].duration);
		g_assert_cmpstr (text, ==, cases[i].text);
	}
}

static void
test_duration_round_trip (void)
{
	static const char *const texts[] = {
	    "250ms", "1s", "59s", "1m", "1h30m", "5d", "1d23h59m59s", "2h1s", "1s1ms", "3m500ms",
	};

	for (gsize i = 0; i < G_N_ELEMENTS (texts); i++) {
		gint64 value = parse_ok (texts[i]);
		g_autofree char *text = sc_duration_format (value);
		g_assert_cmpstr (text, ==, texts[i]);
		g_assert_cmpint (parse_ok (text), ==, value);
	}
	/* and from numbers: every whole millisecond value survives */
	for (gint64 value = 0; value < 3 * DAY; value = value * 7 + 1001 * 1000) {
		g_autofree char *text = sc_duration_format (value);
		g_assert_cmpint (parse_ok (text), ==, value);
	}
	/* a non-canonical spelling prints in its shortest form */
	{
		g_autofree char *text = sc_duration_format (parse_ok ("90m"));
		g_assert_cmpstr (text, ==, "1h30m");
	}
	{
		g_autofree char *text = sc_duration_format (parse_ok ("7d"));
		g_assert_cmpstr (text, ==, "7d");
	}
}

static guint64
size_ok (const char *text)
{
	g_autoptr(GError) error = NULL;
	guint64 value = 12345;

	g_assert_true (sc_size_parse (text, &value, &error));
	g_assert_no_error (error);
	return value;
}

static void
size_fails (const char *text)
{
	g_autoptr(GError) error = NULL;
	guint64 value = 12345;

	if (sc_size_parse (text, &value, &error))
		g_error ("“%s” parsed as %" G_GUINT64_FORMAT " but must fail", text, value);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_nonnull (strstr (error->message, text));
	g_assert_cmpuint (value, ==, 12345);
}

static void
test_size_units (void)
{
	g_assert_cmpuint (size_ok ("0"), ==, 0);
	g_assert_cmpuint (size_ok ("100"), ==, 100);
	g_assert_cmpuint (size_ok ("1K"), ==, 1024);
	g_assert_cmpuint (size_ok ("1k"), ==, 1024);
	g_assert_cmpuint (size_ok ("64M"), ==, 64 * 1024 * 1024);
	g_assert_cmpuint (size_ok ("64MB"), ==, 64 * 1024 * 1024);
	g_assert_cmpuint (size_ok ("100m"), ==, 100 * 1024 * 1024);
	g_assert_cmpuint (size_ok ("2G"), ==, G_GUINT64_CONSTANT (2) * 1024 * 1024 * 1024);
	g_assert_cmpuint (size_ok ("512B"), ==, 512);
	g_assert_cmpuint (size_ok ("18446744073709551615"), ==, G_MAXUINT64);
	g_assert_cmpuint (size_ok ("17179869183G"), ==, G_GUINT64_CONSTANT (17179869183) << 30);
}

static void
test_size_errors (void)
{
	size_fails ("");
	size_fails ("M");
	size_fails ("-1");
	size_fails ("-1M");
	size_fails (" 64M");
	size_fails ("64 M");
	size_fails ("64X");
	size_fails ("64MM");
	size_fails ("1.5M");
	size_fails ("64T");
	size_fails ("18446744073709551616");       /* one past G_MAXUINT64 */
	size_fails ("99999999999999999999999999"); /* far past it */
	size_fails ("17179869184G");               /* 2^64 */
	size_fails ("18014398509481984K");         /* 2^64 */
}

static void
test_null_text (void)
{
	if (g_test_subprocess ()) {
		gint64 value = 0;
		(void) sc_duration_parse (NULL, &value, NULL);
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed ();
	g_test_trap_assert_stderr ("*CRITICAL*text != NULL*");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

	g_test_add_func ("/duration/parse/units", test_duration_units);
	g_test_add_func ("/duration/parse/bare-seconds", test_duration_bare_seconds);
	g_test_add_func ("/duration/parse/combinations", test_duration_combinations);
	g_test_add_func ("/duration/parse/errors", test_duration_errors);
	g_test_add_func ("/duration/parse/limits", test_duration_limits);
	g_test_add_func ("/duration/format/shortest", test_duration_format);
	g_test_add_func ("/duration/format/round-trip", test_duration_round_trip);
	g_test_add_func ("/size/parse/units", test_size_units);
	g_test_add_func ("/size/parse/errors", test_size_errors);
	g_test_add_func ("/duration/parse/null", test_null_text);
	return g_test_run ();
}
