/* test-cli.c — the command-line contract through the real binary: what
 * inject and sendmail accept and refuse (and that a refusal stores
 * nothing), the exit codes, the JSON shapes, config errors. */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <sysexits.h>
#include <time.h>
#include <utime.h>
#include <unistd.h>

#include "sc-spool.h"
#include "sc-spool-uri.h"
#include "sc-test-http.h"
#include "sc-test-postgres.h"
#include "sc-test-backend.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *spool_db;    /* SQLite's file (the SQLite-only cases) */
	char *spool_lines; /* the config's lines naming the spool (sc-test-backend.h) */
} Fixture;

/* A case about the SQLite spool's file or folder: skipped in the
 * PostgreSQL run of this binary (cli-postgresql). */
#define SQLITE_ONLY()                                                                              \
	do {                                                                                       \
		if (sc_test_backend_is_postgresql ()) {                                            \
			g_test_skip ("a case of the SQLite spool (its file, folder or spool= line)");                              \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static const char *message_text = "From: Alice <alice@example.org>\n"
				  "To: test@example.org\n"
				  "Subject: =?utf-8?q?caf=C3=A9?= talk\n"
				  "Message-ID: <m1@example.org>\n"
				  "\n"
				  "Hello.\n";

/* @extra (nullable): [stagecoach] keys, then whole sections if wanted */
static void
write_config (Fixture *fixture, const char *extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "%s"
						 "busy-timeout=300ms\n"
						 "max-message-size=60M\n"
						 "%s"
						 "[list:test.example.org]\n"
						 "pipeline=decorate;archive\n"
						 "archive=maildir:archive\n"
						 "[list:other.example.org]\n"
						 "pipeline=archive\n"
						 "archive=\n",
						 fixture->spool_lines, extra != NULL ? extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-cli");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->spool_db = g_build_filename (fixture->dir, "spool", "spool.db", NULL);
	fixture->spool_lines = sc_test_backend_spool_lines (fixture->dir);
	write_config (fixture, NULL);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_autofree char *mount_point = g_build_filename (fixture->dir, "small", NULL);

	if (g_file_test (mount_point, G_FILE_TEST_IS_DIR)) {
		/* a failed disk-full test must not leave its tmpfs mounted */
		g_autofree char *command = g_strdup_printf ("umount -q %s", mount_point);
		(void) g_spawn_command_line_sync (command, NULL, NULL, NULL, NULL);
	}
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->spool_db);
	g_free (fixture->spool_lines);
}

static int
inject_bytes (Fixture *fixture, GBytes *input, char **out_stderr, const char *first_rcpt, ...)
{
	g_autofree char *out = NULL;
	/* up to three recipients are enough here */
	va_list args;
	const char *rcpt[3] = {first_rcpt, NULL, NULL};

	va_start (args, first_rcpt);
	if (first_rcpt != NULL && (rcpt[1] = va_arg (args, const char *)) != NULL)
		rcpt[2] = va_arg (args, const char *);
	va_end (args);
	return sc_test_run (fixture->config, input, &out, out_stderr, "inject", "--list",
			    "test.example.org", rcpt[0], rcpt[1], rcpt[2], NULL);
}

static gint64
total (Fixture *fixture)
{
	return sc_test_count (fixture->config, "total");
}

/* --version: the build (and its git revision: the tests run from a git
 * checkout, CI's clone included) and each library as loaded. */
static void
test_version (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;
	g_auto(GStrv) lines = NULL;
	g_autofree char *sqlite_line = g_strdup_printf ("SQLite %s", sqlite3_libversion ());
	const char *const names[] = {"GLib ", "libsoup ", "libcurl ", "GMime ", "json-glib ",
				     "libopendkim ", "OpenSSL ", NULL};

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "--version", NULL), ==, 0);
	g_test_message ("%s", out);
	lines = g_strsplit (out, "\n", -1);
	g_assert_true (g_regex_match_simple ("^stagecoach [0-9]+\\.[0-9]+\\.[0-9]+( \\(git [0-9a-f]{7,}(-dirty)?\\))?$",
					     lines[0], 0, 0));
	{
		g_autofree char *git = g_test_build_filename (G_TEST_DIST, "..", ".git", NULL);
		if (g_file_test (git, G_FILE_TEST_EXISTS))
			g_assert_nonnull (strstr (lines[0], "(git "));
	}
	g_assert_true (g_strv_contains ((const char *const *) lines, sqlite_line));
	for (guint i = 0; names[i] != NULL; i++) {
		gboolean found = FALSE;

		for (guint l = 1; lines[l] != NULL; l++) {
			if (g_str_has_prefix (lines[l], names[i]) && g_ascii_isdigit (lines[l][strlen (names[i])]))
				found = TRUE;
		}
		if (!found)
			g_error ("no “%s” line with a version in: %s", names[i], out);
	}
}

static void
test_inject_prints_id (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonObject) shown = NULL;
	int status = sc_test_run (fixture->config, input, &out, &err, "inject", "--list",
				  "test.example.org", "--from", "owner@example.org",
				  "a@example.net", "b@example.com", NULL);

	g_assert_cmpint (status, ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	g_strstrip (out);
	shown = sc_test_show (fixture->config, out);
	g_assert_cmpstr (json_object_get_string_member (shown, "id"), ==, out);
	g_assert_cmpstr (json_object_get_string_member (shown, "state"), ==, "queued");
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "test.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "subject"), ==, "café talk");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "owner@example.org");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "pipeline")), ==, 2);
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "recipients")), ==, 2);
	g_assert_true (json_object_has_member (shown, "next_attempt_at"));
	g_assert_true (json_object_has_member (shown, "last_error"));
	g_assert_true (g_str_has_suffix (json_object_get_string_member (shown, "created_at"), "Z"));
}

static void
test_inject_refusals (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) good = g_bytes_new_static (message_text, strlen (message_text));
	g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
	g_autoptr(GBytes) binary = g_bytes_new_static ("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0\0", 11);
	g_autoptr(GBytes) no_headers = g_bytes_new_static ("\nJust a body\n", 13);
	g_autoptr(GBytes) nul_header = g_bytes_new_static ("Subject: a\0b\n\nbody\n", 19);
	g_autofree char *long_local = g_strnfill (250, 'a');
	g_autofree char *too_long = g_strdup_printf ("%s@example.org", long_local);
	g_autofree char *err = NULL;

	g_assert_cmpint (inject_bytes (fixture, empty, &err, "a@example.org", NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "empty"));
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (inject_bytes (fixture, binary, &err, "a@example.org", NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "not a message"));
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (inject_bytes (fixture, no_headers, NULL, "a@example.org", NULL), ==, EX_DATAERR);
	g_assert_cmpint (inject_bytes (fixture, nul_header, NULL, "a@example.org", NULL), ==, EX_DATAERR);
	/* no recipients; bad recipients: no @, CR/LF inside, over 254 octets */
	g_assert_cmpint (inject_bytes (fixture, good, NULL, NULL), ==, EX_USAGE);
	g_assert_cmpint (inject_bytes (fixture, good, NULL, "nobody", NULL), ==, EX_DATAERR);
	g_assert_cmpint (inject_bytes (fixture, good, &err, "a@example.org\r\nRCPT TO:<x@evil.example>", NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "invalid address"));
	g_assert_cmpint (inject_bytes (fixture, good, NULL, too_long, NULL), ==, EX_DATAERR);
	g_assert_cmpint (inject_bytes (fixture, good, NULL, "ok@example.org", "<x>@example.org", NULL), ==, EX_DATAERR);
	/* unknown list; missing --list */
	g_assert_cmpint (sc_test_run (fixture->config, good, NULL, NULL, "inject", "--list",
				      "nope.example.org", "a@example.org", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, good, NULL, NULL, "inject", "a@example.org", NULL), ==, EX_USAGE);
	/* a bad sender */
	g_assert_cmpint (sc_test_run (fixture->config, good, NULL, NULL, "inject", "--list",
				      "test.example.org", "--from", "a b@example.org", "a@example.org", NULL), ==, EX_DATAERR);
	/* nothing of all that was stored */
	g_assert_cmpint (total (fixture), ==, 0);
}

static void
test_inject_adds_message_id (Fixture *fixture, gconstpointer data)
{
	const char *text = "From: a@example.org\r\nSubject: no id\r\n\r\nbody\r\n";
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", text);
	g_autofree char *raw = NULL;
	g_autoptr(JsonObject) shown = sc_test_show (fixture->config, queue_id);

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", queue_id, NULL), ==, 0);
	g_assert_true (g_str_has_prefix (raw, "Message-ID: <"));
	g_assert_nonnull (strstr (raw, ">\r\nFrom: a@example.org\r\n")); /* CRLF kept */
	g_assert_true (g_str_has_suffix (raw, text));
	g_assert_nonnull (json_object_get_string_member (shown, "message_id"));
}

static void
test_inject_odd_but_acceptable (Fixture *fixture, gconstpointer data)
{
	/* 8-bit header bytes (not UTF-8), NUL bytes in the body, no blank line */
	static const char eight_bit[] = "Subject: caf\xe9 \xff\nFrom: x@example.org\n\nbody\0with nul\n";
	g_autoptr(GBytes) input = g_bytes_new_static (eight_bit, sizeof eight_bit - 1);
	g_autoptr(GBytes) no_blank = g_bytes_new_static ("Subject: x\nbody without blank line\n", 35);
	g_autofree char *out = NULL;
	g_autofree char *raw = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "inject", "--list",
				      "test.example.org", "a@example.org", NULL), ==, 0);
	g_strstrip (out);
	{
		g_autoptr(GSubprocess) process = NULL;
		g_autoptr(GBytes) stdout_bytes = NULL;
		g_autoptr(GError) error = NULL;
		g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
		g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
		process = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "export", out, NULL);
		g_assert_no_error (error);
		g_subprocess_communicate (process, NULL, NULL, &stdout_bytes, NULL, &error);
		g_assert_no_error (error);
		/* byte-identical, NUL included (a Message-ID was added on top) */
		g_assert_cmpuint (g_bytes_get_size (stdout_bytes), >, sizeof eight_bit - 1);
		g_assert_cmpmem ((const char *) g_bytes_get_data (stdout_bytes, NULL) +
				     g_bytes_get_size (stdout_bytes) - (sizeof eight_bit - 1),
				 sizeof eight_bit - 1, eight_bit, sizeof eight_bit - 1);
	}
	g_assert_cmpint (inject_bytes (fixture, no_blank, NULL, "a@example.org", NULL), ==, 0);
	g_assert_cmpint (total (fixture), ==, 2);
}

/* A UTF-8 byte-order mark before the first header (Windows tools write
 * one) is taken off, never stored: the rest is the message as it came. */
static void
test_inject_byte_order_mark (Fixture *fixture, gconstpointer data)
{
	static const char text[] = "Message-ID: <bom@example.org>\r\nFrom: a@example.org\r\n"
				   "Subject: bom\r\n\r\nbody\r\n";
	g_autofree char *with_bom = g_strconcat ("\xef\xbb\xbf", text, NULL);
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", with_bom);
	g_autofree char *raw = NULL;
	g_autoptr(JsonObject) shown = sc_test_show (fixture->config, queue_id);

	g_assert_cmpstr (json_object_get_string_member (shown, "subject"), ==, "bom");
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", queue_id, NULL), ==, 0);
	g_assert_cmpstr (raw, ==, text);
}

/* Lines of only white space before the first header (flanker's fixtures
 * carry one, corpus 041–043 and 051) go the same way; an empty first line
 * does not: it ends an empty header block, the rest is body. */
static void
test_inject_leading_white_space (Fixture *fixture, gconstpointer data)
{
	static const char text[] = "Message-ID: <ws@example.org>\r\nSubject: ws\r\n\r\nbody\r\n";
	g_autofree char *padded = g_strconcat ("   \t \r\n  \n", text, NULL);
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", padded);
	g_autofree char *raw = NULL;
	g_autoptr(GBytes) empty_first = g_bytes_new_static ("\nSubject: body\n\ntext\n", 22);

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", queue_id, NULL), ==, 0);
	g_assert_cmpstr (raw, ==, text);
	g_assert_cmpint (inject_bytes (fixture, empty_first, NULL, "a@example.org", NULL), ==, EX_DATAERR);
}

/* RFC 5322 4.5.3 obs-optional: white space between a field's name and its
 * colon (corpus 076) is a header field, read as such. */
static void
test_inject_obsolete_colon (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org",
						    "Subject   : old style\r\nFrom\t: a@example.org\r\n"
						    "Message-ID  : <obs@example.org>\r\n\r\nbody\r\n");
	g_autoptr(JsonObject) shown = sc_test_show (fixture->config, queue_id);

	g_assert_cmpstr (json_object_get_string_member (shown, "subject"), ==, "old style");
	g_assert_cmpstr (json_object_get_string_member (shown, "message_id"), ==, "<obs@example.org>");
}

static void
test_inject_too_big (Fixture *fixture, gconstpointer data)
{
	gsize size = 50 * 1024 * 1024;
	char *big = g_malloc (size);
	g_autoptr(GBytes) input = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	const char *head = "From: a@example.org\nSubject: big\nContent-Type: text/plain\n\n";

	memset (big, 'x', size);
	for (gsize i = 76; i < size; i += 77)
		big[i] = '\n';
	memcpy (big, head, strlen (head));
	input = g_bytes_new_take (big, size);
	/* 50 MB fits under max-message-size=60M and is accepted whole */
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, &err, "inject", "--list",
				      "test.example.org", "a@example.org", NULL), ==, 0);
	g_strstrip (out);
	{
		g_autoptr(JsonObject) shown = sc_test_show (fixture->config, out);
		g_assert_cmpint (json_object_get_int_member (shown, "size"), >=, (gint64) size);
	}
	/* over the limit: refused, nothing stored */
	write_config (fixture, "");
	{
		g_autofree char *small_config = NULL;
		g_autofree char *text = NULL;
		g_auto(GStrv) halves = NULL;
		g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
		halves = g_strsplit (text, "max-message-size=60M", 2);
		small_config = g_strjoinv ("max-message-size=1M", halves);
		g_assert_true (g_file_set_contents (fixture->config, small_config, -1, NULL));
	}
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
				      "test.example.org", "a@example.org", NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "max-message-size"));
	g_assert_cmpint (total (fixture), ==, 1);
}

/* Another process holds the spool's write lock past busy-timeout: inject
 * says "temporary failure" (75) and stores nothing. */
static void
test_inject_locked_spool (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autofree char *err = NULL;
	sqlite3 *db = NULL;

	SQLITE_ONLY ();
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, 0); /* creates it */
	g_assert_cmpint (sqlite3_open (fixture->spool_db, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	g_assert_cmpint (inject_bytes (fixture, input, &err, "a@example.org", NULL), ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (err, "locked"));
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	g_assert_cmpint (total (fixture), ==, 0);
	g_assert_cmpint (inject_bytes (fixture, input, NULL, "a@example.org", NULL), ==, 0);
}

/* Several processes creating the spool at the same moment (a daemon
 * starting while list software injects) all succeed. */
static void
test_inject_concurrent_first_open (Fixture *fixture, gconstpointer data)
{
	GSubprocess *processes[8];
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));

	SQLITE_ONLY ();
	for (guint i = 0; i < G_N_ELEMENTS (processes); i++) {
		g_autoptr(GSubprocessLauncher) launcher =
		    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
		g_autoptr(GError) error = NULL;
		/* one recipient each: the same (Message-ID, recipient) again is a resend, stored once */
		g_autofree char *recipient = g_strdup_printf ("a%u@example.org", i);
		g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
		processes[i] = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), "inject",
							    "--list", "test.example.org", recipient, NULL);
		g_assert_no_error (error);
	}
	for (guint i = 0; i < G_N_ELEMENTS (processes); i++) {
		g_autoptr(GError) error = NULL;
		g_subprocess_communicate (processes[i], input, NULL, NULL, NULL, &error);
		g_assert_no_error (error);
		g_assert_cmpint (g_subprocess_get_exit_status (processes[i]), ==, 0);
		g_object_unref (processes[i]);
	}
	g_assert_cmpint (total (fixture), ==, G_N_ELEMENTS (processes));
}

/* A spool on a full file system: inject says 75, stores nothing, and the
 * spool works again once there is room.  Needs a tmpfs: root only. */
static void
test_inject_disk_full (Fixture *fixture, gconstpointer data)
{
	g_autofree char *mount_point = g_build_filename (fixture->dir, "small", NULL);
	g_autofree char *command = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GBytes) small = g_bytes_new_static (message_text, strlen (message_text));
	g_autoptr(GBytes) big = NULL;
	GString *text = g_string_new ("From: a@example.org\nSubject: big\n\n");
	int wait_status = 0;

	SQLITE_ONLY ();
	g_assert_cmpint (g_mkdir (mount_point, 0755), ==, 0);
	command = g_strdup_printf ("mount -t tmpfs -o size=1m tmpfs %s", mount_point);
	if (!g_spawn_command_line_sync (command, NULL, NULL, &wait_status, NULL) ||
	    !g_spawn_check_wait_status (wait_status, NULL)) {
		g_test_skip ("cannot mount a small tmpfs here (needs root)");
		return;
	}
	{
		g_autofree char *config_text = g_strdup_printf ("[stagecoach]\nspool=%s/spool\nbusy-timeout=300ms\n"
								"[list:test.example.org]\npipeline=archive\narchive=\n",
								mount_point);
		g_assert_true (g_file_set_contents (fixture->config, config_text, -1, NULL));
	}
	g_assert_cmpint (inject_bytes (fixture, small, NULL, "a@example.org", NULL), ==, 0);
	while (text->len < 1500 * 1024)
		g_string_append (text, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n");
	big = g_string_free_to_bytes (text);
	g_assert_cmpint (inject_bytes (fixture, big, &err, "a@example.org", NULL), ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (err, "spool"));
	g_assert_cmpint (total (fixture), ==, 1);
	/* the spool still accepts what fits (another recipient: the same pair again is a resend) */
	g_assert_cmpint (inject_bytes (fixture, small, NULL, "b@example.org", NULL), ==, 0);
	g_assert_cmpint (total (fixture), ==, 2);
	g_free (command);
	command = g_strdup_printf ("umount %s", mount_point);
	g_assert_true (g_spawn_command_line_sync (command, NULL, NULL, &wait_status, NULL));
}

/* sendmail prints nothing: find what it stored, newest first. */
static char *
newest_id (Fixture *fixture)
{
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "list", "--json", "--limit", "1", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	return g_strdup (json_object_get_string_member (
	    json_array_get_object_element (json_node_get_array (json_parser_get_root (parser)), 0), "id"));
}

static void
test_sendmail_t (Fixture *fixture, gconstpointer data)
{
	const char *text = "From: a@example.org\n"
			   "To: One <one@example.org>, two@example.net\n"
			   "Cc: three@example.com\n"
			   "Bcc: hidden@example.org,\n  also-hidden@example.org\n"
			   "List-Id: Other list <other.example.org>\n"
			   "Subject: via sendmail\n"
			   "\n"
			   "body\n"
			   ".\n"
			   "after the dot\n";
	g_autoptr(GBytes) input = g_bytes_new_static (text, strlen (text));
	g_autofree char *out = NULL;
	g_autofree char *raw = NULL;
	g_autoptr(JsonObject) shown = NULL;
	JsonArray *recipients;

	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "sendmail", "-t", "-f",
				      "bounces@example.org", "-F", "Ignored Name", "-oem", "-B", "8BITMIME", NULL), ==, 0);
	g_assert_cmpstr (out, ==, ""); /* like sendmail: silent on success */
	g_free (out);
	out = newest_id (fixture);
	shown = sc_test_show (fixture->config, out);
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "other.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "bounces@example.org");
	recipients = json_object_get_array_member (shown, "recipients");
	g_assert_cmpuint (json_array_get_length (recipients), ==, 5);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", out, NULL), ==, 0);
	g_assert_null (strstr (raw, "Bcc"));
	g_assert_null (strstr (raw, "hidden"));
	g_assert_null (strstr (raw, "after the dot")); /* no -i: "." ended it */
	g_assert_nonnull (strstr (raw, "Subject: via sendmail\n"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&raw, g_free);
	/* -oi keeps the dot line; recipients from the command line; --list */
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "sendmail", "-oi",
				      "--list", "test.example.org", "x@example.org", NULL), ==, 0);
	g_free (out);
	out = newest_id (fixture);
	/* an explicit unknown --list is refused, not sent to another list */
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "-oi",
				      "--list", "typo.example.org", "x@example.org", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &raw, NULL, "export", out, NULL), ==, 0);
	g_assert_nonnull (strstr (raw, "after the dot"));
	g_assert_nonnull (strstr (raw, "Bcc:")); /* only -t strips Bcc */
	/* no list anywhere and no default-list */
	{
		const char *plain = "Subject: x\n\nbody\n";
		g_autoptr(GBytes) plain_input = g_bytes_new_static (plain, strlen (plain));
		g_autofree char *err = NULL;
		g_assert_cmpint (sc_test_run (fixture->config, plain_input, NULL, &err, "sendmail",
					      "x@example.org", NULL), ==, EX_USAGE);
		g_assert_nonnull (strstr (err, "default-list"));
		/* the envelope sender as a list's bounces= chooses it, as for SMTP */
		write_config (fixture, "[list:bounced.example.org]\npipeline=archive\narchive=\n"
				       "bounces=owner-bounces@example.org\n");
		{
			g_autofree char *id = NULL;
			g_autoptr(JsonObject) shown = NULL;
			g_assert_cmpint (sc_test_run (fixture->config, plain_input, NULL, NULL, "sendmail",
						      "-f", "owner-bounces@example.org", "x@example.org", NULL),
					 ==, 0);
			id = newest_id (fixture);
			shown = sc_test_show (fixture->config, id);
			g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "bounced.example.org");
		}
		write_config (fixture, "default-list=test.example.org\n");
		g_assert_cmpint (sc_test_run (fixture->config, plain_input, NULL, NULL, "sendmail",
					      "x@example.org", NULL), ==, 0);
	}
}

/* Installed as a sendmail path: the binary called "sendmail" is sendmail. */
static void
test_sendmail_symlink (Fixture *fixture, gconstpointer data)
{
	g_autofree char *link = g_build_filename (fixture->dir, "sendmail", NULL);
	const char *text = "To: one@example.org\nList-Id: <test.example.org>\nSubject: via a symlink\n\nbody\n";
	g_autoptr(GBytes) input = g_bytes_new_static (text, strlen (text));
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GBytes) out = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;

	g_assert_cmpint (symlink (sc_test_binary (), link), ==, 0);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
	process = g_subprocess_launcher_spawn (launcher, &error, link, "-t", "-oi", "-f", "owner@example.org", NULL);
	g_assert_no_error (error);
	g_subprocess_communicate (process, input, NULL, &out, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
	g_assert_cmpuint (g_bytes_get_size (out), ==, 0);
	queue_id = newest_id (fixture);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (json_object_get_string_member (shown, "subject"), ==, "via a symlink");
	g_assert_cmpstr (json_object_get_string_member (shown, "list"), ==, "test.example.org");
	g_assert_cmpstr (json_object_get_string_member (shown, "sender"), ==, "owner@example.org");
}

static void
test_config_errors (Fixture *fixture, gconstpointer data)
{
	g_autofree char *err = NULL;
	g_autofree char *out = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "check-config", NULL), ==, 0);
	g_assert_nonnull (strstr (out, "OK"));
	write_config (fixture, "workerz=4\n[retry]\ninitial=soon\n");
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "check-config", NULL), ==, EX_CONFIG);
	g_assert_nonnull (strstr (err, fixture->config));
	g_assert_nonnull (strstr (err, "[stagecoach] workerz: unknown key"));
	g_assert_nonnull (strstr (err, "[retry] initial:"));
	g_clear_pointer (&err, g_free);
	/* every command refuses to work on a broken configuration; for inject
	 * these errors are outside its settings: try again (75) */
	{
		g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
		g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
					      "test.example.org", "a@example.org", NULL), ==, EX_TEMPFAIL);
		g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "run", "--once", NULL), ==, EX_CONFIG);
	}
	/* a config file that does not exist */
	g_assert_cmpint (sc_test_run ("/nonexistent/stagecoach.conf", NULL, NULL, NULL, "status", NULL), ==, EX_CONFIG);
}

static void
test_usage_errors (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, NULL, NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "frobnicate", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "list", "--state", "sleeping", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "show", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "show", "0000000000000000", NULL), ==, EX_NOINPUT);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry", "--state", "done", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "--help", NULL), ==, 0);
	for (const char *const *name = (const char *const[]) {"run", "inject", "sendmail", "status", "list", "show", "retry", "hold", "release", "delete", "export", "check-config", NULL}; *name != NULL; name++)
		g_assert_nonnull (strstr (out, *name));
}

static void
test_status_and_list_json (Fixture *fixture, gconstpointer data)
{
	g_autofree char *first = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_autofree char *second = sc_test_inject (fixture->config, "other.example.org", message_text);
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	JsonArray *array;
	const char *keys[] = {"queued", "active", "deferred", "held", "done", "dead"};

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
		g_assert_true (json_object_has_member (json_node_get_object (json_parser_get_root (parser)), keys[i]));
	g_assert_cmpint (sc_test_count (fixture->config, "queued"), ==, 2);
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "list", "--json", "--list",
				      "other.example.org", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	array = json_node_get_array (json_parser_get_root (parser));
	g_assert_cmpuint (json_array_get_length (array), ==, 1);
	{
		JsonObject *item = json_array_get_object_element (array, 0);
		g_assert_cmpstr (json_object_get_string_member (item, "id"), ==, second);
		g_assert_cmpstr (json_object_get_string_member (item, "state"), ==, "queued");
		g_assert_cmpstr (json_object_get_string_member (item, "subject"), ==, "café talk");
		g_assert_true (json_object_has_member (item, "last_error"));
		g_assert_true (json_object_has_member (item, "list"));
	}
}

/* ---- file permissions (issue 7, #17) ---- */

static guint
file_mode (const char *dir, const char *name)
{
	g_autofree char *path = g_build_filename (dir, name, NULL);
	GStatBuf st;

	g_assert_cmpint (g_stat (path, &st), ==, 0);
	return st.st_mode & 07777;
}

/* The spool database and its WAL and SHM files are 0600 whatever the
 * umask, in a spool folder that exists already with 0755. */
static void
test_spool_file_modes (Fixture *fixture, gconstpointer data)
{
	g_autofree char *spool = g_build_filename (fixture->dir, "spool", NULL);
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *queue_id = NULL;
	mode_t saved;

	SQLITE_ONLY ();
	saved = umask (0); /* inherited by the commands: the worst case */
	g_assert_cmpint (g_mkdir (spool, 0755), ==, 0);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, 0);
	g_assert_cmpuint (file_mode (spool, "spool.db"), ==, 0600);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	queue_id = sc_test_inject (fixture->config, "other.example.org", message_text);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 1, 30000));
	/* the daemon holds the database open: its WAL and SHM exist now */
	g_assert_cmpuint (file_mode (spool, "spool.db-wal"), ==, 0600);
	g_assert_cmpuint (file_mode (spool, "spool.db-shm"), ==, 0600);
	g_subprocess_send_signal (runner, SIGTERM);
	g_subprocess_wait (runner, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (file_mode (spool, "spool.db"), ==, 0600);
	umask (saved);
}

/* Whether process @pid holds @path open (a descriptor in /proc/PID/fd). */
static gboolean
holds_open (const char *pid, const char *path)
{
	g_autoptr(GPtrArray) targets = sc_test_open_descriptors (pid);
	return g_ptr_array_find_with_equal_func (targets, path, g_str_equal, NULL);
}

/* A SIGTERM while `run` is still starting (here: waiting for a spool that
 * another process holds locked) stops it cleanly once it has started,
 * exit 0, instead of killing it: a unit stopped right after its start,
 * a test stopping a daemon it just restarted. */
static void
test_run_sigterm_while_starting (Fixture *fixture, gconstpointer data)
{
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autofree char *spool_db = NULL;
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(GError) error = NULL;
	sqlite3 *db = NULL;

	SQLITE_ONLY ();
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, 0); /* creates it */
	spool_db = g_canonicalize_filename (fixture->spool_db, NULL);
	g_free (sc_test_write_file (fixture->dir, "stagecoach.conf",
				    "[stagecoach]\nspool=spool\nbusy-timeout=20s\n"
				    "[list:test.example.org]\npipeline=archive\narchive=\n"));
	/* held until closed: no other connection can even read the spool */
	g_assert_cmpint (sqlite3_open (fixture->spool_db, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;",
				       NULL, NULL, NULL), ==, SQLITE_OK);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* it has opened the spool's file: it waits for the lock now */
	for (guint i = 0; i < 3000 && !holds_open (g_subprocess_get_identifier (runner), spool_db); i++) {
		g_assert_nonnull (g_subprocess_get_identifier (runner)); /* still starting */
		g_usleep (10 * 1000);
	}
	g_assert_true (holds_open (g_subprocess_get_identifier (runner), spool_db));
	g_usleep (G_USEC_PER_SEC / 10);
	g_subprocess_send_signal (runner, SIGTERM);
	g_usleep (G_USEC_PER_SEC / 10);
	sqlite3_close (db);
	g_assert_true (g_subprocess_wait (runner, NULL, &error));
	g_assert_no_error (error);
	g_assert_false (g_subprocess_get_if_signaled (runner));
	g_assert_cmpint (g_subprocess_get_exit_status (runner), ==, 0);
}

/* check-config and run name every secret file and spool file that other
 * users can read; check-config still passes, other commands stay quiet. */
static void
test_permission_warnings (Fixture *fixture, gconstpointer data)
{
	g_autofree char *token = sc_test_write_file (fixture->dir, "token", "admin abcdefghijklmnopqrstuvwxyz012345\n");
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", "s3cret\n");
	g_autofree char *password = sc_test_write_file (fixture->dir, "password", "pw\n");
	g_autofree char *spool_db = g_build_filename (fixture->dir, "spool", "spool.db", NULL);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;

	SQLITE_ONLY ();
	write_config (fixture, "[admin]\ntoken-file=token\n"
			       "[notify]\nwebhook=http://127.0.0.1:9/hook\nsecret-file=secret\n"
			       "[mailer:relay]\nurl=smtp://127.0.0.1:9\nusername=u\npassword-file=password\n");
	g_assert_cmpint (g_chmod (token, 0600), ==, 0);
	g_assert_cmpint (g_chmod (secret, 0640), ==, 0);
	g_assert_cmpint (g_chmod (password, 0600), ==, 0);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, 0);
	/* group-readable is a choice; nothing for others to read: no warning */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL), ==, 0);
	g_assert_null (strstr (err, "readable"));
	g_clear_pointer (&err, g_free);
	g_clear_pointer (&out, g_free);

	g_assert_cmpint (g_chmod (token, 0644), ==, 0);
	g_assert_cmpint (g_chmod (secret, 0604), ==, 0);
	g_assert_cmpint (g_chmod (password, 0644), ==, 0);
	g_assert_cmpint (g_chmod (spool_db, 0644), ==, 0);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL), ==, 0);
	g_assert_nonnull (strstr (err, token));
	g_assert_nonnull (strstr (err, secret));
	g_assert_nonnull (strstr (err, password));
	g_assert_nonnull (strstr (err, spool_db));
	g_assert_nonnull (strstr (err, "readable by other users"));
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	g_assert_nonnull (strstr (err, token));
	g_assert_nonnull (strstr (err, spool_db));
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "status", NULL), ==, 0);
	g_assert_null (strstr (err, "readable"));
}

/* ---- terminal escapes (issue 7, #19) ---- */

/* An SMTP server on 127.0.0.1 that refuses every recipient with a reply
 * carrying terminal escapes: a clear-screen CSI, an OSC 52 clipboard write
 * and a C1 CSI. */
#define EVIL_TEXT "\x1b[2J\x1b]52;c;ZXZpbA==\x07 \xc2\x9b" "31m \xff"

typedef struct {
	GSocketListener *listener;
	GCancellable *cancellable;
	GThread *thread;
} EvilSmtp;

static gpointer
evil_smtp_thread (gpointer data)
{
	EvilSmtp *server = data;

	for (;;) {
		g_autoptr(GSocketConnection) connection =
		    g_socket_listener_accept (server->listener, NULL, server->cancellable, NULL);
		g_autoptr(GDataInputStream) in = NULL;
		GOutputStream *out;
		gboolean in_data = FALSE;
		char *line;

		if (connection == NULL)
			return NULL; /* cancelled */
		in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
		out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
		g_output_stream_write_all (out, "220 evil ESMTP\r\n", 16, NULL, NULL, NULL);
		while ((line = g_data_input_stream_read_line (in, NULL, server->cancellable, NULL)) != NULL) {
			g_autofree char *command = line;
			const char *reply = "250 ok\r\n";
			g_strchomp (command);
			if (in_data) {
				if (strcmp (command, ".") != 0)
					continue;
				in_data = FALSE;
			} else if (g_ascii_strncasecmp (command, "RCPT", 4) == 0) {
				reply = "550 5.1.1 " EVIL_TEXT "\r\n";
			} else if (g_ascii_strncasecmp (command, "DATA", 4) == 0) {
				reply = "554 no valid recipients\r\n";
			} else if (g_ascii_strncasecmp (command, "QUIT", 4) == 0) {
				g_output_stream_write_all (out, "221 bye\r\n", 9, NULL, NULL, NULL);
				break;
			}
			if (!g_output_stream_write_all (out, reply, strlen (reply), NULL, NULL, NULL))
				break;
		}
	}
}

static guint16
evil_smtp_start (EvilSmtp *server)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	server->listener = g_socket_listener_new ();
	server->cancellable = g_cancellable_new ();
	g_socket_listener_add_address (server->listener, address, G_SOCKET_TYPE_STREAM,
				       G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
	g_assert_no_error (error);
	server->thread = g_thread_new ("evil-smtp", evil_smtp_thread, server);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
evil_smtp_stop (EvilSmtp *server)
{
	g_cancellable_cancel (server->cancellable);
	g_thread_join (server->thread);
	g_socket_listener_close (server->listener);
	g_object_unref (server->listener);
	g_object_unref (server->cancellable);
}

static void
assert_terminal_safe (const char *text)
{
	for (const guchar *p = (const guchar *) text; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
			g_error ("control byte 0x%02x at offset %ld in:\n%s", *p, (long) (p - (const guchar *) text), text);
	}
	g_assert_true (g_utf8_validate (text, -1, NULL));
	g_assert_null (strstr (text, "\xc2\x9b"));
}

static void
test_terminal_escapes (Fixture *fixture, gconstpointer data)
{
	EvilSmtp server = {0};
	guint16 port = evil_smtp_start (&server);
	g_autofree char *extra = NULL;
	g_autofree char *text = NULL;
	g_autofree char *queue_id = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonObject) shown = NULL;
	JsonObject *recipient;

	extra = g_strdup_printf ("[mailer:evil]\nurl=smtp://127.0.0.1:%u\nstarttls=off\ntimeout=10s\n"
				 "[list:evil.example.org]\npipeline=deliver\nbounces=b@example.org\n", port);
	write_config (fixture, extra);
	text = g_strdup ("From: a@example.org\nSubject: " EVIL_TEXT " subject\n\nbody\n");
	queue_id = sc_test_inject (fixture->config, "evil.example.org", text);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	evil_smtp_stop (&server);

	/* JSON stays JSON: the raw text, escaped by the JSON encoder */
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_nonnull (strstr (json_object_get_string_member (shown, "subject"), "\x1b]52;c;"));
	recipient = json_array_get_object_element (json_object_get_array_member (shown, "recipients"), 0);
	g_assert_cmpstr (json_object_get_string_member (recipient, "status"), ==, "failed");
	g_assert_nonnull (strstr (json_object_get_string_member (recipient, "reply"), "\x1b[2J"));

	/* show, list: escapes made visible, nothing a terminal acts on */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "show", queue_id, NULL), ==, 0);
	assert_terminal_safe (out);
	g_assert_nonnull (strstr (out, "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07 \\u009b31m"));
	g_assert_nonnull (strstr (out, "550 5.1.1 \\x1b[2J"));
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "list", NULL), ==, 0);
	assert_terminal_safe (out);
	g_assert_nonnull (strstr (out, "\\x1b]52;c;ZXZpbA==\\x07"));
	g_assert_nonnull (strstr (out, "550 5.1.1")); /* last_error, the message is dead */
	/* errors that repeat what they were given */
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "show", "\x1b]52;c;ZXZpbA==\x07", NULL), !=, 0);
	assert_terminal_safe (err);
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "hold", "\x1b[2J", NULL), !=, 0);
	assert_terminal_safe (err);
}

static void
evil_webhook_cb (SoupServer *server, SoupServerMessage *message, const char *path,
		 GHashTable *query, gpointer user_data)
{
	const char *body = "{\"ok\": true}\r\n\x1b[2J\x1b]52;c;ZXZpbA==\x07\r\n";
	soup_server_message_set_status (message, 200, "OK \x1b]52;c;ZXZpbA==\x07");
	soup_server_message_set_response (message, "text/plain", SOUP_MEMORY_STATIC, body, strlen (body));
}

static void
test_terminal_escapes_notify (Fixture *fixture, gconstpointer data)
{
	ScTestHttpServer *server = sc_test_http_server_start (NULL, evil_webhook_cb, NULL);
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", "s3cret\n");
	g_autofree char *extra = g_strdup_printf ("[notify]\nwebhook=http://127.0.0.1:%u/hook\nsecret-file=secret\n",
						  sc_test_http_server_get_port (server));
	g_autofree char *out = NULL;

	write_config (fixture, extra);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "notify-test", NULL), ==, 0);
	sc_test_http_server_stop (server);
	assert_terminal_safe (out);
	g_assert_nonnull (strstr (out, "{\"ok\": true}\n"));
	g_assert_nonnull (strstr (out, "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07"));
}

/* Writes the configuration and dates it an hour back: a file that has
 * settled, not one being rewritten. */
static void
write_settled (Fixture *fixture, const char *text)
{
	struct utimbuf old;

	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
	old.actime = old.modtime = time (NULL) - 3600;
	g_assert_cmpint (g_utime (fixture->config, &old), ==, 0);
}

static int
inject_to (Fixture *fixture, const char *list, char **out_stderr)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	return sc_test_run (fixture->config, input, NULL, out_stderr, "inject", "--list", list,
			    "a@example.org", NULL);
}

/* Issue 7, #9: a configuration that does not parse as a whole (half
 * written), or has errors outside the ingress settings, is a temporary
 * failure for inject and sendmail (75: the caller keeps the message); only
 * wrong ingress settings are 78.  Other commands keep 78. */
static void
test_config_errors_ingress (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autofree char *err = NULL;
	const char *good_head = "[stagecoach]\nspool=spool\nbusy-timeout=300ms\n";

	/* cut in the middle of a section name: not a key file */
	write_settled (fixture, "[stagecoach]\nspool=spool\n[list:test.exa");
	g_assert_cmpint (inject_to (fixture, "test.example.org", &err), ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (err, "try again"));
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "--list",
				      "test.example.org", "a@example.org", NULL), ==, EX_TEMPFAIL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, EX_CONFIG);
	/* errors outside what ingress reads */
	write_settled (fixture, "[stagecoach]\nspool=spool\nworkerz=4\n[retry]\ninitial=soon\n"
				"[list:test.example.org]\npipeline=archive\narchive=\n"
				"[list:other.example.org]\npipeline=nonsense\n");
	g_assert_cmpint (inject_to (fixture, "test.example.org", NULL), ==, EX_TEMPFAIL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "run", "--once", NULL), ==, EX_CONFIG);
	/* … but the list's own section is an ingress setting */
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (inject_to (fixture, "other.example.org", &err), ==, EX_CONFIG);
	g_assert_nonnull (strstr (err, "[list:other.example.org] pipeline"));
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "--list",
				      "other.example.org", "a@example.org", NULL), ==, EX_CONFIG);
	/* so are the spool's settings and limits */
	{
		g_autofree char *text = g_strdup_printf ("%smax-message-size=lots\n"
							 "[list:test.example.org]\npipeline=archive\narchive=\n",
							 good_head);
		write_settled (fixture, text);
		g_assert_cmpint (inject_to (fixture, "test.example.org", NULL), ==, EX_CONFIG);
	}
	/* a file that is not there (yet) */
	g_assert_cmpint (g_unlink (fixture->config), ==, 0);
	g_assert_cmpint (inject_to (fixture, "test.example.org", NULL), ==, EX_TEMPFAIL);
	/* a settled, valid configuration without the list: a usage error */
	write_settled (fixture, good_head);
	g_assert_cmpint (inject_to (fixture, "test.example.org", NULL), ==, EX_USAGE);
	write_config (fixture, NULL);
	g_assert_cmpint (total (fixture), ==, 0);
}

/* Issue 7, #9: the configuration is being rewritten in place while inject
 * starts (half written, and the list's half is cut mid-key).  Inject waits
 * for the file to settle instead of refusing the message. */
static void
test_config_being_rewritten (Fixture *fixture, gconstpointer data)
{
	const char *commands[] = {"inject", "sendmail"};

	for (gsize c = 0; c < G_N_ELEMENTS (commands); c++) {
		g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (
		    G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
		g_autoptr(GSubprocess) process = NULL;
		g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
		g_autoptr(GError) error = NULL;

		g_assert_true (g_file_set_contents (fixture->config,
						    "[stagecoach]\nspool=spool\n[list:test.example.org]\n"
						    "pipeline=decorate;arch", -1, NULL));
		g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", fixture->config, TRUE);
		/* a recipient each: the same (Message-ID, recipient) again is a resend, stored once */
		process = g_subprocess_launcher_spawn (launcher, &error, sc_test_binary (), commands[c],
						       "--list", "test.example.org",
						       c == 0 ? "a@example.org" : "b@example.org", NULL);
		g_assert_no_error (error);
		g_usleep (G_USEC_PER_SEC / 2); /* it reads the half-written file meanwhile */
		write_config (fixture, NULL);
		g_subprocess_communicate (process, input, NULL, NULL, NULL, &error);
		g_assert_no_error (error);
		g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
	}
	g_assert_cmpint (total (fixture), ==, 2);
}

/* Options end at "--" and at the first operand, for every command (issue 7,
 * #15): a recipient that looks like a global option is an address (here an
 * invalid one), never a configuration that sends the message elsewhere. */
static void
test_options_end_at_operands (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autofree char *other_config = sc_test_write_file (fixture->dir, "other.conf",
							    "[stagecoach]\nspool=other-spool\n"
							    "[list:test.example.org]\npipeline=archive\narchive=\n");
	g_autofree char *other_spool = g_build_filename (fixture->dir, "other-spool", NULL);
	g_autofree char *as_option = g_strdup_printf ("--config=%s", other_config);
	g_autofree char *err = NULL;
	g_autofree char *out = NULL;
	g_autoptr(JsonObject) shown = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
				      "test.example.org", "a@example.org", as_option, NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "invalid address"));
	g_assert_nonnull (strstr (err, as_option));
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
				      "test.example.org", "a@example.org", "--config=/tmp/x", NULL), ==, EX_DATAERR);
	g_assert_nonnull (strstr (err, "invalid address “--config=/tmp/x”"));
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "-oi", "--list",
				      "test.example.org", "a@example.org", as_option, NULL), ==, EX_DATAERR);
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "--list",
				      "test.example.org", "a@example.org", "-t", NULL), ==, EX_DATAERR);
	g_assert_false (g_file_test (other_spool, G_FILE_TEST_EXISTS));
	g_assert_cmpint (total (fixture), ==, 0);

	/* "--" ends the options: what follows is a recipient even with a dash */
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "inject", "--list",
				      "test.example.org", "--", "rcpt@example.org", NULL), ==, 0);
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "inject", "--list",
				      "test.example.org", "--", "-dash@example.org", NULL), ==, 0);
	g_strstrip (out);
	shown = sc_test_show (fixture->config, out);
	g_assert_cmpstr (json_object_get_string_member (
			     json_array_get_object_element (json_object_get_array_member (shown, "recipients"), 0),
			     "address"), ==, "-dash@example.org");
	/* another recipient: the same (Message-ID, recipient) again is a resend, stored once */
	g_assert_cmpint (sc_test_run (fixture->config, input, NULL, NULL, "sendmail", "-oi", "--list",
				      "test.example.org", "--", "-dash2@example.org", NULL), ==, 0);
	g_assert_cmpint (total (fixture), ==, 3);

	/* global options only before the command, command options before operands */
	g_clear_pointer (&err, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "status", as_option, NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "show", out, "--json", NULL), ==, EX_USAGE);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "show", "--json", out, NULL), ==, 0);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, as_option, "status", NULL), ==, 0);
	g_assert_true (g_file_test (other_spool, G_FILE_TEST_IS_DIR));
	/* an option's value may start with a dash */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "hold", "--reason", "-v", out, NULL), ==, 0);
	g_clear_pointer (&shown, json_object_unref);
	shown = sc_test_show (fixture->config, out);
	g_assert_cmpstr (json_object_get_string_member (shown, "hold_reason"), ==, "-v");
}

/* ---- the spool's backend and state-dir (issue 10) ---- */

static char *
read_text (const char *path)
{
	char *text = NULL;

	if (!g_file_get_contents (path, &text, NULL, NULL))
		return g_strdup ("");
	return text;
}

static guint
count_in (const char *path, const char *needle)
{
	g_autofree char *text = read_text (path);
	guint count = 0;

	for (const char *p = strstr (text, needle); p != NULL; p = strstr (p + 1, needle))
		count++;
	return count;
}

/* check-config names the backend, the server and the schema; a SQLite
 * spool not made yet is announced, not created. */
static void
test_check_config_sqlite (Fixture *fixture, gconstpointer data)
{
	g_autofree char *spool = g_build_filename (fixture->dir, "spool", NULL);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *expected = NULL;
	g_autofree char *pattern = NULL;
	g_autofree char *escaped = g_regex_escape_string (spool, -1);

	SQLITE_ONLY ();
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL), ==, 0);
	g_test_message ("%s", out);
	g_assert_nonnull (strstr (out, "OK (2 lists)"));
	expected = g_strdup_printf ("spool: sqlite at %s (not there yet: the first start creates it)\n", spool);
	g_assert_nonnull (strstr (out, expected));
	g_assert_false (g_file_test (spool, G_FILE_TEST_EXISTS));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "status", NULL), ==, 0); /* creates it */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL), ==, 0);
	g_test_message ("%s", out);
	pattern = g_strdup_printf ("^state-dir: %s\nspool: sqlite \\(SQLite 3\\.[0-9.]+, schema [1-9][0-9]*\\) at %s\n$",
				   escaped, escaped);
	g_assert_true (g_regex_match_simple (pattern, strchr (out, '\n') + 1, 0, 0));
	g_assert_cmpstr (err, ==, "");
}

/* status says which spool it counted: the backend and the location. */
static void
test_status_names_backend (Fixture *fixture, gconstpointer data)
{
	g_autofree char *spool = g_build_filename (fixture->dir, "spool", NULL);
	g_autofree char *first_line = g_strdup_printf ("spool     sqlite %s\n", spool);
	g_autofree char *out = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	JsonObject *object;

	SQLITE_ONLY ();
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "status", NULL), ==, 0);
	g_assert_true (g_str_has_prefix (out, first_line));
	g_assert_nonnull (strstr (out, "\nqueued    0\n"));
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	object = json_node_get_object (json_parser_get_root (parser));
	g_assert_cmpstr (json_object_get_string_member (object, "backend"), ==, "sqlite");
	g_assert_cmpstr (json_object_get_string_member (object, "spool"), ==, spool);
	g_assert_cmpint (json_object_get_int_member (object, "total"), ==, 0);
}

/* state-dir= set apart from the spool folder: the daemon makes it (0700)
 * and puts its hand-off socket and generated admin token there, the lean
 * front finds the socket there, admin-url reads the token there. */
static void
test_state_dir_apart (Fixture *fixture, gconstpointer data)
{
	g_autofree char *state = g_build_filename (fixture->dir, "state", NULL);
	g_autofree char *socket_path = g_build_filename (state, "ingress.sock", NULL);
	g_autofree char *token_path = g_build_filename (state, "admin-token", NULL);
	g_autofree char *spool_socket = g_build_filename (fixture->dir, "spool", "ingress.sock", NULL);
	g_autofree char *spool_token = g_build_filename (fixture->dir, "spool", "admin-token", NULL);
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	guint16 port = sc_test_free_port ();
	g_autofree char *extra = g_strdup_printf ("state-dir=state\n[admin]\nlisten=127.0.0.1:%u\n", port);
	g_autoptr(GBytes) input = g_bytes_new_static (message_text, strlen (message_text));
	g_autoptr(GSubprocess) daemon = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *out = NULL;
	g_autofree char *token_line = NULL;
	GStatBuf st;

	SQLITE_ONLY ();
	write_config (fixture, extra);
	daemon = sc_test_spawn (fixture->config, log, "--verbose", "run", NULL);
	/* the admin server (and its token) starts after the ingress, and the
	 * "running … state in" line comes after both (seen missed under ASan) */
	for (guint i = 0; i < 600 && !(g_file_test (socket_path, G_FILE_TEST_EXISTS) &&
				       count_in (log, "hand-off: listening") >= 1 &&
				       g_file_test (token_path, G_FILE_TEST_EXISTS) &&
				       count_in (log, "state in ") >= 1); i++)
		g_usleep (G_USEC_PER_SEC / 20);
	if (!g_file_test (socket_path, G_FILE_TEST_EXISTS))
		g_error ("the daemon made no %s; see %s", socket_path, log);
	g_assert_cmpint (g_stat (state, &st), ==, 0);
	g_assert_cmpuint (st.st_mode & 07777, ==, 0700);
	g_assert_true (g_file_test (token_path, G_FILE_TEST_IS_REGULAR));
	g_assert_false (g_file_test (spool_socket, G_FILE_TEST_EXISTS));
	g_assert_false (g_file_test (spool_token, G_FILE_TEST_EXISTS));
	g_assert_cmpuint (count_in (log, "state in "), ==, 1);

	/* the lean front hands over through state/ingress.sock */
	g_assert_cmpint (sc_test_run (fixture->config, input, &out, NULL, "inject", "--list",
				      "test.example.org", "a@example.net", NULL), ==, 0);
	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}\n$", out, 0, 0));
	for (guint i = 0; i < 100 && count_in (log, "inject answered, exit 0") == 0; i++)
		g_usleep (G_USEC_PER_SEC / 20);
	g_assert_cmpuint (count_in (log, "inject answered, exit 0"), ==, 1);
	g_clear_pointer (&out, g_free);

	/* admin-url's link carries the token in state/admin-token */
	g_assert_true (g_file_get_contents (token_path, &token_line, NULL, NULL));
	g_strstrip (token_line);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "admin-url", NULL), ==, 0);
	g_assert_nonnull (strstr (out, strchr (token_line, ' ') + 1));

	g_subprocess_send_signal (daemon, SIGTERM);
	g_subprocess_wait (daemon, NULL, &error);
	g_assert_no_error (error);
	g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
}

/* A database that does not answer is a clear report and exit 75, never a
 * crash; and the password in spool= is nowhere in what is printed. */
static void
test_check_config_postgresql_unreachable (Fixture *fixture, gconstpointer data)
{
	guint16 port = sc_test_free_port ();
	g_autofree char *extra =
	    g_strdup_printf ("spool=postgresql://stagecoach:s3cret@127.0.0.1:%u/nosuch?connect_timeout=2\n"
			     "state-dir=state\n",
			     port);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *text = NULL;
	int status;

	SQLITE_ONLY ();
	g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
	{
		/* replace the folder spool= of the fixture's file */
		g_auto(GStrv) parts = g_strsplit (text, "spool=spool\n", 2);
		g_autofree char *joined = g_strjoinv (extra, parts);
		g_assert_true (g_file_set_contents (fixture->config, joined, -1, NULL));
	}
	status = sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL);
	g_test_message ("exit %d\nstdout:\n%s\nstderr:\n%s", status, out, err);
#ifdef HAVE_LIBPQ
	g_assert_cmpint (status, ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (out, "OK (2 lists)"));
	g_assert_nonnull (strstr (err, "the spool cannot be used now"));
	g_assert_nonnull (strstr (err, "postgresql://stagecoach:***@127.0.0.1:"));
	g_assert_nonnull (strstr (err, "[stagecoach] spool holds a password"));
	g_assert_null (strstr (out, "s3cret"));
	g_assert_null (strstr (err, "s3cret"));
	/* status: the same failure through the common path, password masked */
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);
	status = sc_test_run (fixture->config, NULL, &out, &err, "status", NULL);
	g_test_message ("status: exit %d\n%s%s", status, out, err);
	g_assert_cmpint (status, !=, 0);
	g_assert_null (strstr (out, "s3cret"));
	g_assert_null (strstr (err, "s3cret"));
#else
	g_assert_cmpint (status, ==, EX_CONFIG);
	g_assert_nonnull (strstr (err, "a PostgreSQL spool needs stagecoach built with libpq"));
	g_assert_null (strstr (err, "s3cret"));
#endif
}

/* ---- on a private PostgreSQL server (tests/sc-test-postgres.h) ---- */

static ScTestPostgres *shared_postgres; /* one per test binary, stopped at the end */

/* A fresh database on the binary's server, as a URI with @password
 * (nullable) in it; NULL after g_test_skip() when there is no server or
 * this build's spool has no PostgreSQL backend. (transfer full) */
static char *
postgres_spool (const char *dbname, const char *password)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *uri = NULL;
	g_autoptr(ScSpool) probe = NULL;

	if (!sc_test_postgres_available ()) {
		g_test_skip (sc_test_postgres_why_unavailable ());
		return NULL;
	}
	if (shared_postgres == NULL) {
		shared_postgres = sc_test_postgres_start (&error);
		g_assert_no_error (error);
	}
	g_assert_true (sc_test_postgres_create_database (shared_postgres, dbname, &error));
	g_assert_no_error (error);
	uri = sc_test_postgres_get_uri (shared_postgres, dbname);
	probe = sc_spool_open (uri, 5 * G_USEC_PER_SEC, &error);
	if (probe == NULL) {
		g_autofree char *why = g_strdup_printf ("PostgreSQL backend not built (sc_spool_open: %s)",
							error->message);
		g_test_skip (why);
		return NULL;
	}
	if (password != NULL) {
		/* postgresql://stagecoach@… → postgresql://stagecoach:PASSWORD@… (trust: not checked) */
		g_auto(GStrv) parts = g_strsplit (uri, "stagecoach@", 2);
		g_autofree char *with = g_strdup_printf ("stagecoach:%s@", password);
		g_free (uri);
		uri = g_strjoinv (with, parts);
	}
	return g_steal_pointer (&uri);
}

/* check-config and status on a PostgreSQL spool: backend, server version,
 * schema version; the state folder apart; the password shown masked. */
static void
test_postgresql_check_config_and_status (Fixture *fixture, gconstpointer data)
{
	g_autofree char *uri = postgres_spool ("cli_check_config", "s3cret");
	g_autofree char *masked = NULL;
	g_autofree char *text = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *pattern = NULL;
	g_autofree char *escaped = NULL;
	g_autofree char *state = g_build_filename (fixture->dir, "state", NULL);
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	JsonObject *object;

	if (uri == NULL)
		return;
	masked = sc_spool_uri_mask (uri);
	escaped = g_regex_escape_string (masked, -1);
	g_assert_nonnull (strstr (masked, "stagecoach:***@"));
	text = g_strdup_printf ("[stagecoach]\nspool=%s\nstate-dir=state\nbusy-timeout=5s\n"
				"[list:test.example.org]\npipeline=archive\narchive=\n",
				uri);
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "check-config", NULL), ==, 0);
	g_test_message ("%s%s", out, err);
	pattern = g_strdup_printf ("\nspool: postgresql \\(PostgreSQL [0-9]+\\.[0-9]+[^,]*, schema [1-9][0-9]*\\) at %s\n",
				   escaped);
	g_assert_true (g_regex_match_simple (pattern, out, 0, 0));
	g_assert_nonnull (strstr (out, state));
	g_assert_nonnull (strstr (err, "[stagecoach] spool holds a password"));
	g_assert_null (strstr (out, "s3cret"));
	g_assert_null (strstr (err, "s3cret"));
	g_clear_pointer (&out, g_free);
	g_clear_pointer (&err, g_free);

	g_assert_cmpint (sc_test_count (fixture->config, "total"), ==, 0);
	g_free (sc_test_inject (fixture->config, "test.example.org", message_text));
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, &err, "status", NULL), ==, 0);
	g_assert_true (g_str_has_prefix (out, "spool     postgresql "));
	g_assert_nonnull (strstr (out, masked));
	g_assert_nonnull (strstr (out, "\nqueued    1\n"));
	g_assert_null (strstr (out, "s3cret"));
	g_clear_pointer (&out, g_free);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "status", "--json", NULL), ==, 0);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	object = json_node_get_object (json_parser_get_root (parser));
	g_assert_cmpstr (json_object_get_string_member (object, "backend"), ==, "postgresql");
	g_assert_cmpstr (json_object_get_string_member (object, "spool"), ==, masked);
	g_assert_cmpint (json_object_get_int_member (object, "queued"), ==, 1);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_backend_init ())
		return 0;
	g_test_add ("/cli/version", Fixture, NULL, setup, test_version, teardown);
	g_test_add ("/cli/inject/prints-queue-id", Fixture, NULL, setup, test_inject_prints_id, teardown);
	g_test_add ("/cli/inject/refusals-store-nothing", Fixture, NULL, setup, test_inject_refusals, teardown);
	g_test_add ("/cli/inject/adds-message-id", Fixture, NULL, setup, test_inject_adds_message_id, teardown);
	g_test_add ("/cli/inject/odd-but-acceptable", Fixture, NULL, setup, test_inject_odd_but_acceptable, teardown);
	g_test_add ("/cli/inject/byte-order-mark", Fixture, NULL, setup, test_inject_byte_order_mark, teardown);
	g_test_add ("/cli/inject/leading-white-space", Fixture, NULL, setup, test_inject_leading_white_space, teardown);
	g_test_add ("/cli/inject/obsolete-colon", Fixture, NULL, setup, test_inject_obsolete_colon, teardown);
	g_test_add ("/cli/inject/50mb-and-too-big", Fixture, NULL, setup, test_inject_too_big, teardown);
	g_test_add ("/cli/inject/locked-spool", Fixture, NULL, setup, test_inject_locked_spool, teardown);
	g_test_add ("/cli/inject/concurrent-first-open", Fixture, NULL, setup,
		    test_inject_concurrent_first_open, teardown);
	g_test_add ("/cli/inject/disk-full", Fixture, NULL, setup, test_inject_disk_full, teardown);
	g_test_add ("/cli/sendmail/t-and-dot", Fixture, NULL, setup, test_sendmail_t, teardown);
	g_test_add ("/cli/sendmail/symlink", Fixture, NULL, setup, test_sendmail_symlink, teardown);
	g_test_add ("/cli/config/errors", Fixture, NULL, setup, test_config_errors, teardown);
	g_test_add ("/cli/usage/errors", Fixture, NULL, setup, test_usage_errors, teardown);
	g_test_add ("/cli/json/status-and-list", Fixture, NULL, setup, test_status_and_list_json, teardown);
	g_test_add ("/cli/config/errors-ingress", Fixture, NULL, setup, test_config_errors_ingress, teardown);
	g_test_add ("/cli/config/being-rewritten", Fixture, NULL, setup, test_config_being_rewritten, teardown);
	g_test_add ("/cli/terminal/escapes", Fixture, NULL, setup, test_terminal_escapes, teardown);
	g_test_add ("/cli/terminal/notify-test", Fixture, NULL, setup, test_terminal_escapes_notify, teardown);
	g_test_add ("/cli/permissions/spool-files", Fixture, NULL, setup, test_spool_file_modes, teardown);
	g_test_add ("/cli/run/sigterm-while-starting", Fixture, NULL, setup, test_run_sigterm_while_starting, teardown);
	g_test_add ("/cli/permissions/warnings", Fixture, NULL, setup, test_permission_warnings, teardown);
	g_test_add ("/cli/usage/options-end-at-operands", Fixture, NULL, setup,
		    test_options_end_at_operands, teardown);
	g_test_add ("/cli/check-config/sqlite", Fixture, NULL, setup, test_check_config_sqlite, teardown);
	g_test_add ("/cli/status/names-backend", Fixture, NULL, setup, test_status_names_backend, teardown);
	g_test_add ("/cli/state-dir/apart", Fixture, NULL, setup, test_state_dir_apart, teardown);
	g_test_add ("/cli/check-config/postgresql-unreachable", Fixture, NULL, setup,
		    test_check_config_postgresql_unreachable, teardown);
	g_test_add ("/cli/postgresql/check-config-and-status", Fixture, NULL, setup,
		    test_postgresql_check_config_and_status, teardown);
	{
		int status = g_test_run ();
		g_clear_pointer (&shared_postgres, sc_test_postgres_stop);
		return status;
	}
}
