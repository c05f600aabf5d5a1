/* test-decorate-fast.c — decorate's fast path against its GMime path (issue 9).
 *
 * The fast path (handlers/sc-decorate-fast.c) promises the same bytes the
 * GMime path gives, for every message it takes.  Each case here runs
 * sc_decorate_message() twice, once allowed the fast path and once not,
 * and requires the same output, note and From note; the synthetic cases
 * also say whether the fast path must be taken, and assert it.  The
 * synthetic posts are every combination of a header block (plain, MIME
 * labelled, each field decorate rewrites, each shape the fast path must
 * refuse), a body (empty, no final newline, long lines, 8-bit, invalid
 * UTF-8, NUL, inline PGP, the footer already in it …), a line-end form
 * (LF, CRLF; mbox "From " line first with the first list) and a list (footer, header and
 * footer, a non-ASCII footer, no texts, From rewritten).
 *
 * With -m perf, /decorate-fast/perf/{fast,gmime} decorate a 4 KiB
 * smtp-source-like post 1000 times each, for callgrind
 * (--toggle-collect=perf_decorate_once).
 */
#include "config.h"

#include "sc-decorate-private.h"
#include "sc-test-util.h"

typedef struct {
	const char *name;
	const char *header; /* plain, reply, … */
	const char *footer;
	gboolean footer_if_absent;
	ScFromRewrite from_rewrite;
	const char *subject_prefix;
} ListCase;

static const ListCase lists[] = {
    {"footer", NULL, "-- \nposted to $list_name\n", TRUE, SC_FROM_REWRITE_NEVER, "[dev]"},
    {"header-footer", "header-marker-$list_name\n", "-- \nfooter-marker-$list_id\n", FALSE,
     SC_FROM_REWRITE_NEVER, "[dev]"},
    {"non-ascii-footer", NULL, "-- \nListe café $list_name\n", TRUE, SC_FROM_REWRITE_NEVER,
     "[dev]"},
    {"no-texts", NULL, NULL, TRUE, SC_FROM_REWRITE_ALWAYS, "[dev]"},
    {"from-rewrite", "header-marker-$list_name\n", "-- \nfooter-marker-$list_id\n", TRUE,
     SC_FROM_REWRITE_ALWAYS, NULL},
};

typedef struct {
	const char *name;
	const char *fields; /* LF line ends; the blank line is added */
	gboolean fast;      /* the fast path can take it (given a body that fits) */
	gboolean utf8_8bit; /* charset utf-8 with 8bit or binary: 8-bit bodies and texts fit */
} HeaderCase;

#define BASE "From: Alice Example <alice@example.com>\nTo: dev@lists.example.org\n" \
	     "Date: Thu, 03 Dec 2026 01:00:00 +0000\nMessage-ID: <m1@example.com>\n"

static const HeaderCase headers[] = {
    {"plain", BASE "Subject: hello\n", TRUE, FALSE},
    {"mime-us-ascii-7bit",
     BASE "Subject: hello\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
	  "Content-Transfer-Encoding: 7bit\n",
     TRUE, FALSE},
    {"mime-utf8-8bit",
     BASE "Subject: hello\nMIME-Version: 1.0\nContent-Type: text/plain; charset=\"UTF-8\"\n"
	  "Content-Transfer-Encoding: 8bit\n",
     TRUE, TRUE},
    {"mime-utf8-binary-flowed",
     BASE "Subject: hello\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8;\n"
	  " format=flowed; delsp=yes\nContent-Transfer-Encoding: binary\n",
     TRUE, TRUE},
    {"mime-utf8-no-encoding",
     BASE "Subject: hello\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n", TRUE,
     FALSE},
    {"mime-upper-case",
     BASE "Subject: hello\nMime-Version: 1.0\nCONTENT-TYPE: TEXT/PLAIN; CHARSET=\"US-ASCII\"\n"
	  "content-transfer-encoding: 7BIT\n",
     TRUE, FALSE},
    {"no-mime-version", BASE "Subject: hello\nContent-Type: text/plain\n", TRUE, FALSE},
    {"subject-prefixed", BASE "Subject: Re: [dev] Re: [dev] hello\n", TRUE, FALSE},
    {"subject-prefixed-once", BASE "Subject: [dev] Re: hello\n", TRUE, FALSE},
    {"subject-missing", BASE, TRUE, FALSE},
    {"subject-encoded", BASE "Subject: =?utf-8?q?caf=C3=A9?= au lait\n", TRUE, FALSE},
    {"subject-raw-utf8", BASE "Subject: caf\xc3\xa9 au lait\n", TRUE, FALSE},
    {"subject-raw-latin1", BASE "Subject: Re: caf\xe9\n", TRUE, FALSE},
    {"subject-folded",
     BASE "Subject: a rather long subject line that goes on and on and on and on\n"
	  "\tand is folded onto a second line\n",
     TRUE, FALSE},
    {"subject-long",
     BASE "Subject: Re: a very long subject line that goes on and on without end, well past the "
	  "seventy-eight columns a line should keep to\n",
     TRUE, FALSE},
    {"foreign-list-fields",
     BASE "Subject: x\nList-Id: other <other.lists.example.net>\nList-Post: "
	  "<mailto:other@lists.example.net>\nPrecedence: bulk\nList-Unsubscribe: <mailto:x@y>\n",
     TRUE, FALSE},
    {"own-list-id", BASE "Subject: x\nList-Id: dev <dev.lists.example.org>\n", TRUE, FALSE},
    {"reply-to-cc",
     BASE "Subject: x\nReply-To: Alice <alice@example.com>\nCc: carol@example.net\n", TRUE,
     FALSE},
    {"received-dkim",
     "Received: from mail.example.com (mail.example.com [192.0.2.1])\n\tby mx.example.org;"
     " Thu, 03 Dec 2026 01:00:00 +0000\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com;"
     " s=s1;\n\th=from:to:subject; bh=abc=; b=def=\n" BASE "Subject: hi\n",
     TRUE, FALSE},
    {"x-original-from", BASE "Subject: x\nX-Original-From: someone@else.example\n", TRUE, FALSE},
    {"subject-empty", BASE "Subject:\n", TRUE, FALSE},
    {"content-type-trailing-semicolon", BASE "Subject: x\nContent-Type: text/plain;\n", TRUE,
     FALSE},
    /* refused: the GMime path decides */
    {"blank-continuation", BASE "Subject: x\n \nX-After: y\n", FALSE, FALSE},
    {"tab-continuation-only", BASE "Subject: x\n\t\n", FALSE, FALSE},
    {"name-8bit", BASE "Subject: x\nX-Caf\xc3\xa9: y\n", FALSE, FALSE},
    {"quoted-printable",
     BASE "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	  "Content-Transfer-Encoding: quoted-printable\n",
     FALSE, FALSE},
    {"base64",
     BASE "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	  "Content-Transfer-Encoding: base64\n",
     FALSE, FALSE},
    {"html", BASE "Subject: x\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n", FALSE,
     FALSE},
    {"latin1", BASE "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n",
     FALSE, FALSE},
    {"multipart",
     BASE "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n", FALSE,
     FALSE},
    {"attachment",
     BASE "Subject: x\nContent-Type: text/plain\nContent-Disposition: attachment; "
	  "filename=a.txt\n",
     FALSE, FALSE},
    {"content-length", BASE "Subject: x\nContent-Length: 5\n", FALSE, FALSE},
    {"rfc2231-charset", BASE "Subject: x\nContent-Type: text/plain; charset*=utf-8''utf-8\n",
     FALSE, FALSE},
    {"charset-comment", BASE "Subject: x\nContent-Type: text/plain; charset=us-ascii (plain)\n",
     FALSE, FALSE},
    {"two-content-types",
     BASE "Subject: x\nContent-Type: text/plain\nContent-Type: text/html\n", FALSE, FALSE},
    {"encoding-unknown", BASE "Subject: x\nContent-Transfer-Encoding: x-uuencode\n", FALSE, FALSE},
    {"space-before-colon", BASE "Subject : x\n", FALSE, FALSE},
    {"bare-cr-in-header", BASE "Subject: x\rY: z\n", FALSE, FALSE},
    {"stray-line", BASE "Subject: x\nnot a field\n", FALSE, FALSE},
    {"message-partial",
     BASE "Subject: x\nContent-Type: message/partial; id=\"a@b\"; number=1; total=2\n", FALSE,
     FALSE},
};

typedef enum {
	BODY_ASCII,   /* fits every fast header */
	BODY_UTF8,    /* fits utf-8 with 8bit or binary */
	BODY_REFUSED, /* the fast path must not take it */
} BodyKind;

typedef struct {
	const char *name;
	const char *text; /* LF line ends */
	gssize length;    /* -1: strlen */
	BodyKind kind;
} BodyCase;

static const BodyCase bodies[] = {
    {"lines", "Hello,\n\nthe build is green again.\n\nAlice\n", -1, BODY_ASCII},
    {"empty", "", -1, BODY_ASCII},
    {"no-final-newline", "one line and no newline", -1, BODY_ASCII},
    {"blank-lines", "\n\nstarts and ends blank\n\n\n", -1, BODY_ASCII},
    {"signature", "text\n-- \nAlice\n", -1, BODY_ASCII},
    {"footer-present", "text\n-- \nposted to dev\n", -1, BODY_ASCII},
    {"footer-present-2", "text\n-- \nfooter-marker-dev.lists.example.org\nmore\n", -1, BODY_ASCII},
    {"header-present", "header-marker-dev\ntext\n", -1, BODY_ASCII},
    {"dots-and-from", ".\n..\nFrom me\n>From you\n", -1, BODY_ASCII},
    {"bare-cr", "a\rb\nc\r", -1, BODY_ASCII},
    {"utf8", "caf\xc3\xa9 \xe2\x82\xac\n", -1, BODY_UTF8},
    {"utf8-no-newline", "na\xc3\xafve", -1, BODY_UTF8},
    {"invalid-utf8", "bad \xff\xfe bytes\n", -1, BODY_REFUSED},
    {"latin1", "caf\xe9\n", -1, BODY_REFUSED},
    {"nul", "a\0b\n", 4, BODY_REFUSED},
    {"inline-pgp", "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n", -1, BODY_REFUSED},
};

typedef enum {
	ENDING_LF,
	ENDING_CRLF,
	ENDING_MBOX,
} Ending;

static const char *const ending_names[] = {"lf", "crlf", "mbox"};

/* The long-line and 4 KiB bodies are built, not written out. */
static char *long_line_body;

static void
list_init (ScListConfig *list, char **unsubscribe, const ListCase *list_case)
{
	memset (list, 0, sizeof (*list));
	list->id = (char *) "dev.lists.example.org";
	list->name = (char *) "dev";
	list->subject_prefix = (char *) list_case->subject_prefix;
	list->header_template = (char *) list_case->header;
	list->footer_template = (char *) list_case->footer;
	list->footer_if_absent = list_case->footer_if_absent;
	list->from_rewrite = list_case->from_rewrite;
	list->address = (char *) "dev@lists.example.org";
	list->post = (char *) "dev@lists.example.org";
	list->help = (char *) "https://lists.example.org/help/dev";
	list->archive_url = (char *) "https://lists.example.org/archive/dev";
	unsubscribe[0] = (char *) "https://lists.example.org/unsubscribe/dev";
	unsubscribe[1] = (char *) "mailto:dev-leave@lists.example.org";
	unsubscribe[2] = NULL;
	list->unsubscribe = unsubscribe;
	list->unsubscribe_one_click = TRUE;
}

/* Both paths on @input; asserts the same output and notes.  Returns
 * whether the fast path was taken. */
static gboolean
assert_paths_agree (const ScListConfig *list, GBytes *input, const char *what)
{
	g_autoptr(GHashTable) variables =
	    sc_decorate_template_variables_new (list, "q0123456789", "alice@example.com");
	g_autoptr(GBytes) fast = NULL;
	g_autoptr(GBytes) gmime = NULL;
	g_autofree char *fast_note = NULL;
	g_autofree char *gmime_note = NULL;
	g_autofree char *fast_from_note = NULL;
	g_autofree char *gmime_from_note = NULL;
	g_autoptr(GError) fast_error = NULL;
	g_autoptr(GError) gmime_error = NULL;
	gboolean taken = FALSE;
	gboolean gmime_taken = TRUE;

	fast = sc_decorate_message (input, NULL, list, variables, TRUE, &taken, &fast_note,
				    &fast_from_note, &fast_error);
	gmime = sc_decorate_message (input, NULL, list, variables, FALSE, &gmime_taken,
				     &gmime_note, &gmime_from_note, &gmime_error);
	g_assert_false (gmime_taken);
	g_assert_no_error (fast_error);
	g_assert_no_error (gmime_error);
	if (!((fast == NULL && gmime == NULL) ||
	      (fast != NULL && gmime != NULL && g_bytes_equal (fast, gmime)))) {
		g_autofree char *a = fast != NULL ? g_strndup (g_bytes_get_data (fast, NULL),
							       g_bytes_get_size (fast))
						  : g_strdup ("(null)");
		g_autofree char *b = gmime != NULL ? g_strndup (g_bytes_get_data (gmime, NULL),
								g_bytes_get_size (gmime))
						   : g_strdup ("(null)");
		g_test_message ("%s: fast path (taken: %d):\n%s\n---- GMime path:\n%s", what, taken,
				a, b);
		g_test_fail ();
	}
	g_assert_cmpstr (fast_note, ==, gmime_note);
	g_assert_cmpstr (fast_from_note, ==, gmime_from_note);
	return taken;
}

static GBytes *
make_message (const HeaderCase *header, const char *body, gsize body_length, Ending ending)
{
	g_autoptr(GString) text = g_string_new (NULL);
	g_autoptr(GString) out = g_string_new (NULL);

	g_string_append (text, header->fields);
	g_string_append_c (text, '\n');
	g_string_append_len (text, body, body_length);
	if (ending == ENDING_MBOX)
		g_string_append (out, "From alice@example.com Thu Dec  3 01:00:00 2026\n");
	for (gsize i = 0; i < text->len; i++) {
		if (text->str[i] == '\n' && ending != ENDING_LF)
			g_string_append_c (out, '\r');
		g_string_append_c (out, text->str[i]);
	}
	return g_bytes_new (out->str, out->len);
}

static gboolean
expect_fast (const HeaderCase *header, BodyKind kind, const ListCase *list_case)
{
	gboolean non_ascii_texts = list_case->footer != NULL && !g_str_is_ascii (list_case->footer);

	if (!header->fast || kind == BODY_REFUSED)
		return FALSE;
	if (kind == BODY_UTF8 && !header->utf8_8bit)
		return FALSE;
	/* a text only counts when it is added: footer-if-absent drops both
	 * for a post that already carries this list's List-Id */
	if (list_case->footer_if_absent && strcmp (header->name, "own-list-id") == 0)
		return TRUE;
	if (non_ascii_texts && !header->utf8_8bit)
		return FALSE;
	return TRUE;
}

static void
run_header_case (gconstpointer user_data)
{
	const HeaderCase *header = user_data;
	guint taken = 0;
	guint runs = 0;

	for (gsize l = 0; l < G_N_ELEMENTS (lists); l++) {
		ScListConfig list;
		char *unsubscribe[3];

		list_init (&list, unsubscribe, &lists[l]);
		for (gsize b = 0; b <= G_N_ELEMENTS (bodies); b++) {
			const char *body_text;
			gsize body_length;
			BodyKind kind;
			const char *body_name;

			if (b == G_N_ELEMENTS (bodies)) {
				body_text = long_line_body;
				body_length = strlen (long_line_body);
				kind = BODY_ASCII;
				body_name = "long-lines";
			} else {
				body_text = bodies[b].text;
				body_length = bodies[b].length >= 0 ? (gsize) bodies[b].length
								     : strlen (bodies[b].text);
				kind = bodies[b].kind;
				body_name = bodies[b].name;
			}
			/* the "From " line only meets normalisation: one list is enough */
			for (Ending e = ENDING_LF; e <= (l == 0 ? ENDING_MBOX : ENDING_CRLF); e++) {
				g_autoptr(GBytes) input = make_message (header, body_text, body_length, e);
				g_autofree char *what = g_strdup_printf ("list %s, body %s, %s",
									 lists[l].name, body_name,
									 ending_names[e]);
				gboolean fast = assert_paths_agree (&list, input, what);
				gboolean expected = expect_fast (header, kind, &lists[l]);

				if (fast != expected)
					g_test_message ("%s: fast path %s, expected %s", what,
							fast ? "taken" : "not taken",
							expected ? "taken" : "not");
				g_assert_cmpint (fast, ==, expected);
				taken += fast ? 1 : 0;
				runs++;
			}
		}
	}
	g_test_message ("fast path taken in %u of %u", taken, runs);
}

static void
test_corpus (gconstpointer user_data)
{
	g_autoptr(GPtrArray) files = sc_test_corpus_files ();
	guint taken = 0;
	guint runs = 0;

	if (sc_test_corpus_dir () == NULL) {
		g_test_skip ("corpus not found ($SC_CORPUS, ../shared/corpus)");
		return;
	}
	g_assert_cmpuint (files->len, >, 0);
	for (guint i = 0; i < files->len; i++) {
		const char *name = g_ptr_array_index (files, i);
		g_autofree char *path = g_build_filename (sc_test_corpus_dir (), name, NULL);
		g_autofree char *contents = NULL;
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) input = NULL;
		gsize length = 0;

		g_file_get_contents (path, &contents, &length, &error);
		g_assert_no_error (error);
		input = g_bytes_new_take (g_steal_pointer (&contents), length);
		for (gsize l = 0; l < G_N_ELEMENTS (lists); l++) {
			ScListConfig list;
			char *unsubscribe[3];
			g_autofree char *what = g_strdup_printf ("%s, list %s", name, lists[l].name);

			list_init (&list, unsubscribe, &lists[l]);
			if (assert_paths_agree (&list, input, what)) {
				taken++;
				if (l == 0)
					g_test_message ("fast path: %s", name);
			}
			runs++;
		}
	}
	g_test_message ("fast path taken in %u of %u corpus runs", taken, runs);
}

/* The corpus's plain-ASCII message must take the fast path: it is the
 * shape the path is for. */
static void
test_corpus_plain_taken (gconstpointer user_data)
{
	g_autofree char *path = NULL;
	g_autofree char *contents = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) input = NULL;
	ScListConfig list;
	char *unsubscribe[3];
	gsize length = 0;

	if (sc_test_corpus_dir () == NULL) {
		g_test_skip ("corpus not found ($SC_CORPUS, ../shared/corpus)");
		return;
	}
	path = g_build_filename (sc_test_corpus_dir (), "001-plain-ascii-minimal.eml", NULL);
	if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
		g_test_skip ("001-plain-ascii-minimal.eml not in the corpus");
		return;
	}
	g_file_get_contents (path, &contents, &length, &error);
	g_assert_no_error (error);
	input = g_bytes_new_take (g_steal_pointer (&contents), length);
	list_init (&list, unsubscribe, &lists[0]);
	g_assert_true (assert_paths_agree (&list, input, "001-plain-ascii-minimal.eml"));
}

/* ---- perf (-m perf) ---------------------------------------------------- */

static GBytes *
smtp_source_post (void)
{
	g_autoptr(GString) text = g_string_new (
	    "Received: from bench.localdomain (localhost [127.0.0.1])\r\n"
	    "\tby stagecoach; Thu, 03 Dec 2026 01:00:00 +0000\r\n"
	    "From: <sender@bench.example>\r\nTo: <rcpt@list.example>\r\n"
	    "Date: Thu, 03 Dec 2026 01:00:00 +0000 (UTC)\r\n"
	    "Message-Id: <1234.5678.9abc@bench.localdomain>\r\n\r\n");

	for (guint i = 0; i < 4096 / 81; i++)
		g_string_append (text, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
				       "XXXXXXXXXXXXXXXXXXXXX\r\n");
	return g_bytes_new (text->str, text->len);
}

/* One stage run's work, apart from the context: callgrind's unit. */
static G_GNUC_NO_INLINE GBytes *
perf_decorate_once (GBytes *input, const ScListConfig *list, gboolean allow_fast)
{
	g_autoptr(GHashTable) variables =
	    sc_decorate_template_variables_new (list, "q0123456789", "sender@bench.example");
	g_autofree char *note = NULL;
	g_autofree char *from_note = NULL;

	return sc_decorate_message (input, NULL, list, variables, allow_fast, NULL, &note,
				    &from_note, NULL);
}

static void
test_perf (gconstpointer user_data)
{
	gboolean allow_fast = GPOINTER_TO_INT (user_data);
	g_autoptr(GBytes) input = smtp_source_post ();
	ListCase bench = {"bench", NULL, "-- \nposted to $list_name\n", TRUE, SC_FROM_REWRITE_NEVER,
			  "[bench]"};
	ScListConfig list;
	char *unsubscribe[3];
	const guint rounds = 1000;
	gint64 started;

	list_init (&list, unsubscribe, &bench);
	list.id = (char *) "bench.example.org";
	list.name = (char *) "bench.example.org";
	g_bytes_unref (perf_decorate_once (input, &list, allow_fast)); /* one-off set-up */
	started = g_get_monotonic_time ();
	for (guint i = 0; i < rounds; i++)
		g_bytes_unref (perf_decorate_once (input, &list, allow_fast));
	g_test_minimized_result ((g_get_monotonic_time () - started) / (double) rounds,
				 "%s path: %.1f us per message",
				 allow_fast ? "fast" : "GMime",
				 (g_get_monotonic_time () - started) / (double) rounds);
}

int
main (int argc, char **argv)
{
	g_autoptr(GString) long_lines = g_string_new (NULL);

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_mime_init ();

	/* 998 is SMTP's limit; decorate must not care */
	g_string_append_len (long_lines, "", 0);
	for (guint i = 0; i < 2000; i++)
		g_string_append_c (long_lines, "abcdefghij"[i % 10]);
	g_string_append (long_lines, "\nshort\n");
	for (guint i = 0; i < 1000; i++)
		g_string_append_c (long_lines, ' ');
	g_string_append (long_lines, "\n");
	long_line_body = long_lines->str;

	for (gsize h = 0; h < G_N_ELEMENTS (headers); h++) {
		g_autofree char *path = g_strdup_printf ("/decorate-fast/synthetic/%s",
							 headers[h].name);
		g_test_add_data_func (path, &headers[h], run_header_case);
	}
	g_test_add_data_func ("/decorate-fast/corpus/all", NULL, test_corpus);
	g_test_add_data_func ("/decorate-fast/corpus/plain-taken", NULL, test_corpus_plain_taken);
	if (g_test_perf ()) {
		g_test_add_data_func ("/decorate-fast/perf/fast", GINT_TO_POINTER (TRUE), test_perf);
		g_test_add_data_func ("/decorate-fast/perf/gmime", GINT_TO_POINTER (FALSE),
				      test_perf);
	}
	return g_test_run ();
}
