/* test-archive.c — the archive stage: maildir, mbox and http(s) backends, reruns and failures. */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <unistd.h>

#include "sc-config.h"
#include "sc-error.h"
#include "sc-handler.h"
#include "sc-test-http.h"
#include "sc-test-util.h"

/* Mon Nov 23 12:00:00 2026 UTC */
#define TEST_NOW (G_GINT64_CONSTANT (1795435200) * G_USEC_PER_SEC)

static const char test_message[] = "From: Ann <ann@example.org>\r\n"
				   "To: list@example.org\r\n"
				   "Message-ID: <m1@example.org>\r\n"
				   "Subject: hello\r\n"
				   "\r\n"
				   "Hello, list.\r\n";

static void
expect_warning (const char *pattern)
{
	sc_test_expect_warning (pattern);
}

static void
assert_warned (void)
{
	g_assert_cmpuint (sc_test_expect_warning (NULL), ==, 1);
}

typedef struct {
	char *dir; /* (owned) a fresh temp folder per test */
	ScConfig *config;
	ScListConfig list;
	ScClock *clock;
	GCancellable *cancellable;
	GBytes *message;
	ScStageContext context;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	static const char *const recipients[] = {"bob@example.org", NULL};

	fixture->dir = sc_test_make_tmpdir ("sc-archive");
	fixture->config = g_new0 (ScConfig, 1);
	fixture->config->ref_count = 1;
	fixture->config->lists = g_hash_table_new (g_str_hash, g_str_equal);
	fixture->config->execs = g_hash_table_new (g_str_hash, g_str_equal);
	fixture->list.id = (char *) "test.example.org";
	fixture->clock = sc_clock_new_fixed (TEST_NOW);
	fixture->cancellable = g_cancellable_new ();
	fixture->message = g_bytes_new_static (test_message, strlen (test_message));
	fixture->context.queue_id = "q-1";
	fixture->context.stage = "archive";
	fixture->context.list_id = fixture->list.id;
	fixture->context.sender = "ann@example.org";
	fixture->context.recipients = recipients;
	fixture->context.raw = fixture->message;
	fixture->context.current = fixture->message;
	fixture->context.config = fixture->config;
	fixture->context.list = &fixture->list;
	fixture->context.clock = fixture->clock;
	fixture->context.cancellable = fixture->cancellable;
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	sc_stage_context_clear_outputs (&fixture->context);
	g_free (fixture->list.archive);
	g_bytes_unref (fixture->message);
	g_object_unref (fixture->cancellable);
	sc_clock_unref (fixture->clock);
	sc_config_unref (fixture->config);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

static void
set_archive (Fixture *fixture, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
set_archive (Fixture *fixture, const char *format, ...)
{
	va_list args;

	g_free (fixture->list.archive);
	va_start (args, format);
	fixture->list.archive = g_strdup_vprintf (format, args);
	va_end (args);
}

static gboolean
run_archive (Fixture *fixture, GError **error)
{
	sc_stage_context_clear_outputs (&fixture->context);
	return sc_handler_archive.run (&fixture->context, error);
}

static void
run_ok (Fixture *fixture)
{
	g_autoptr(GError) error = NULL;

	g_assert_true (run_archive (fixture, &error));
	g_assert_no_error (error);
	/* archive passes the message on unchanged */
	g_assert_null (fixture->context.output);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Names in a folder, sorted, joined with spaces. (transfer full) */
static char *
list_folder (const char *dir, const char *name)
{
	g_autofree char *path = g_build_filename (dir, name, NULL);
	g_autoptr(GDir) folder = g_dir_open (path, 0, NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
	const char *entry;

	g_assert_nonnull (folder);
	while ((entry = g_dir_read_name (folder)) != NULL)
		g_ptr_array_add (names, g_strdup (entry));
	g_ptr_array_sort (names, compare_names);
	g_ptr_array_add (names, NULL);
	return g_strjoinv (" ", (char **) names->pdata);
}

static char *
read_file (const char *path)
{
	g_autoptr(GError) error = NULL;
	char *contents = NULL;

	g_file_get_contents (path, &contents, NULL, &error);
	g_assert_no_error (error);
	return contents;
}

static guint
count_occurrences (const char *haystack, const char *needle)
{
	guint count = 0;

	for (const char *at = strstr (haystack, needle); at != NULL;
	     at = strstr (at + strlen (needle), needle))
		count++;
	return count;
}

/* ---- dispatch and check ---- */

static void
test_archive_disabled (Fixture *fixture, gconstpointer user_data)
{
	run_ok (fixture);
	set_archive (fixture, "%s", "");
	run_ok (fixture);
}

static void
check_fails (Fixture *fixture, const char *value, const char *expected)
{
	g_autoptr(GError) error = NULL;

	set_archive (fixture, "%s", value);
	g_assert_false (
	    sc_handler_archive.check (fixture->config, &fixture->list, NULL, NULL, &error));
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s → %s", value, error->message);
	g_assert_true (g_str_has_prefix (error->message, "archive: "));
	g_assert_nonnull (strstr (error->message, expected));
}

static void
check_ok (Fixture *fixture, const char *value)
{
	g_autoptr(GError) error = NULL;

	set_archive (fixture, "%s", value);
	g_assert_true (sc_handler_archive.check (fixture->config, &fixture->list, NULL, NULL, &error));
	g_assert_no_error (error);
}

static void
test_archive_check (Fixture *fixture, gconstpointer user_data)
{
	check_ok (fixture, "");
	check_ok (fixture, "maildir:/srv/archive/list");
	check_ok (fixture, "mbox:/srv/archive/list.mbox");
	check_ok (fixture, "http://127.0.0.1:8080/archive");
	check_ok (fixture, "HTTPS://user:secret@archive.example.org/api/");
	check_fails (fixture, "maildir:", "empty");
	check_fails (fixture, "maildir:relative/path", "absolute");
	check_fails (fixture, "mbox:list.mbox", "absolute");
	check_fails (fixture, "/srv/archive", "is not maildir:PATH");
	check_fails (fixture, "ftp://archive.example.org/", "is not maildir:PATH");
	check_fails (fixture, "https:///nohost", "host");
	check_fails (fixture, "http://[broken", "not a valid URL");
}

/* The config loader runs check for each list; the problem names the key. */
static void
test_archive_check_config (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path =
	    sc_test_write_file (fixture->dir,
				"stagecoach.conf",
				"[list:test.example.org]\n"
				"pipeline = archive\n"
				"archive = gopher://old.example.org/\n");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "[list:test.example.org]"));
	g_assert_nonnull (strstr (error->message, "archive: “gopher://old.example.org/”"));
}

/* ---- maildir ---- */

static void
test_archive_maildir (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *maildir = g_build_filename (fixture->dir, "deep", "archive", NULL);
	g_autofree char *file = g_build_filename (maildir, "new", "q-1.stagecoach", NULL);
	g_autofree char *contents = NULL;
	g_autofree char *names = NULL;

	set_archive (fixture, "maildir:%s", maildir);
	run_ok (fixture);
	names = list_folder (maildir, "new");
	g_assert_cmpstr (names, ==, "q-1.stagecoach");
	g_clear_pointer (&names, g_free);
	names = list_folder (maildir, "tmp");
	g_assert_cmpstr (names, ==, "");
	g_clear_pointer (&names, g_free);
	names = list_folder (maildir, "cur");
	g_assert_cmpstr (names, ==, "");
	/* the archived copy is the current message, line ends as local files have them */
	contents = read_file (file);
	g_assert_cmpstr (contents,
			 ==,
			 "From: Ann <ann@example.org>\n"
			 "To: list@example.org\n"
			 "Message-ID: <m1@example.org>\n"
			 "Subject: hello\n"
			 "\n"
			 "Hello, list.\n");
}

static void
test_archive_maildir_rerun (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *new_path = g_build_filename (fixture->dir, "new", "q-1.stagecoach", NULL);
	g_autofree char *cur_path =
	    g_build_filename (fixture->dir, "cur", "q-1.stagecoach:2,RS", NULL);
	g_autofree char *index = g_build_filename (fixture->dir, "stagecoach.idx", NULL);
	g_autofree char *names = NULL;

	set_archive (fixture, "maildir:%s", fixture->dir);
	run_ok (fixture);
	/* a rerun (the runner says there was an earlier try) finds the copy */
	fixture->context.previous_attempts = 1;
	run_ok (fixture);
	g_assert_nonnull (fixture->context.note);
	names = list_folder (fixture->dir, "new");
	g_assert_cmpstr (names, ==, "q-1.stagecoach");
	g_clear_pointer (&names, g_free);

	/* a mail reader moved it to cur/ and flagged it: still found */
	g_assert_cmpint (g_rename (new_path, cur_path), ==, 0);
	run_ok (fixture);
	names = list_folder (fixture->dir, "new");
	g_assert_cmpstr (names, ==, "");
	g_clear_pointer (&names, g_free);

	/* another queue id is another file; a queue id sharing a prefix too */
	fixture->context.previous_attempts = 0;
	fixture->context.queue_id = "q-10";
	run_ok (fixture);
	fixture->context.queue_id = "q/../2:x";
	run_ok (fixture);
	names = list_folder (fixture->dir, "new");
	g_assert_cmpstr (names, ==, "q-10.stagecoach q=2F=2E=2E=2F2=3Ax.stagecoach");
	g_clear_pointer (&names, g_free);
	names = list_folder (fixture->dir, "cur");
	g_assert_cmpstr (names, ==, "q-1.stagecoach:2,RS");
	g_clear_pointer (&names, g_free);
	/* no index file or other litter in the Maildir */
	g_assert_false (g_file_test (index, G_FILE_TEST_EXISTS));
}

static void
assert_transient_naming (Fixture *fixture, const char *value)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *prefix = g_strdup_printf ("archive %s: ", value);

	g_assert_false (run_archive (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, prefix));
}

static void
test_archive_maildir_unwritable (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *file = sc_test_write_file (fixture->dir, "plain-file", "x");
	g_autofree char *below = g_build_filename (file, "archive", NULL);
	g_autofree char *tmp_file = NULL;

	/* below a regular file: ENOTDIR even for root */
	set_archive (fixture, "maildir:%s", below);
	assert_transient_naming (fixture, fixture->list.archive);
	/* /proc refuses new folders to everyone */
	set_archive (fixture, "maildir:/proc/stagecoach-archive-test");
	assert_transient_naming (fixture, fixture->list.archive);
	/* tmp/ is a file: the write fails, nothing lands in new/ */
	set_archive (fixture, "maildir:%s/broken", fixture->dir);
	tmp_file = g_build_filename (fixture->dir, "broken", NULL);
	g_assert_cmpint (g_mkdir (tmp_file, 0700), ==, 0);
	g_clear_pointer (&tmp_file, g_free);
	tmp_file = sc_test_write_file (fixture->dir, "broken/tmp", "not a folder");
	assert_transient_naming (fixture, fixture->list.archive);
}

/* ---- mbox ---- */

static void
test_archive_mbox_format (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = g_build_filename (fixture->dir, "list.mbox", NULL);
	g_autofree char *input_path =
	    g_test_build_filename (G_TEST_DIST, "data", "archive", "from-lines.eml", NULL);
	g_autofree char *expected_path =
	    g_test_build_filename (G_TEST_DIST, "data", "archive", "from-lines.mbox", NULL);
	g_autofree char *input = read_file (input_path);
	g_autofree char *expected = read_file (expected_path);
	g_autofree char *contents = NULL;
	g_autoptr(GBytes) message = g_bytes_new (input, strlen (input));

	set_archive (fixture, "mbox:%s", mbox);
	fixture->context.current = message;
	run_ok (fixture);
	contents = read_file (mbox);
	g_assert_cmpstr (contents, ==, expected);
}

static void
test_archive_mbox_append (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = g_build_filename (fixture->dir, "sub", "list.mbox", NULL);
	g_autofree char *contents = NULL;

	set_archive (fixture, "mbox:%s", mbox);
	run_ok (fixture);
	fixture->context.queue_id = "q-2";
	fixture->context.sender = "";
	run_ok (fixture);
	contents = read_file (mbox);
	g_assert_true (g_str_has_prefix (contents,
					 "From ann@example.org Mon Nov 23 12:00:00 2026\n"
					 "X-Stagecoach-Queue-Id: q-1\n"));
	g_assert_nonnull (strstr (contents,
				  "\nHello, list.\n\n"
				  "From MAILER-DAEMON Mon Nov 23 12:00:00 2026\n"
				  "X-Stagecoach-Queue-Id: q-2\n"));
	g_assert_true (g_str_has_suffix (contents, "\nHello, list.\n\n"));
	g_assert_cmpuint (count_occurrences (contents, "\nFrom "), ==, 1);
}

static void
test_archive_mbox_rerun (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = g_build_filename (fixture->dir, "list.mbox", NULL);
	g_autofree char *index = g_strconcat (mbox, ".idx", NULL);
	g_autofree char *saved_index = NULL;
	g_autofree char *contents = NULL;
	gsize saved_length = 0;
	FILE *stream;

	set_archive (fixture, "mbox:%s", mbox);
	run_ok (fixture);
	run_ok (fixture);
	g_assert_nonnull (fixture->context.note);
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-1\n"), ==, 1);
	g_clear_pointer (&contents, g_free);

	/* a crash between the append and the index commit: the index is as
	 * it was before q-2, the mbox has q-2 */
	g_assert_true (g_file_get_contents (index, &saved_index, &saved_length, NULL));
	fixture->context.queue_id = "q-2";
	run_ok (fixture);
	g_assert_true (g_file_set_contents (index, saved_index, saved_length, NULL));
	run_ok (fixture);
	g_assert_nonnull (fixture->context.note);

	/* another program appends, then the index is lost altogether */
	stream = fopen (mbox, "a");
	g_assert_nonnull (stream);
	fputs ("From someone@example.org Mon Nov 23 11:00:00 2026\n"
	       "Subject: X-Stagecoach-Queue-Id: q-3 is not a header here\n"
	       "\n"
	       "body\n\n",
	       stream);
	fclose (stream);
	g_assert_cmpint (g_unlink (index), ==, 0);
	fixture->context.queue_id = "q-1";
	run_ok (fixture);
	fixture->context.queue_id = "q-2";
	run_ok (fixture);
	fixture->context.queue_id = "q-3";
	run_ok (fixture);
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-1\n"), ==, 1);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-2\n"), ==, 1);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-3\n"), ==, 1);
	g_clear_pointer (&contents, g_free);

	/* a damaged index is rebuilt */
	g_assert_true (g_file_set_contents (index, "not a database at all, not at all", -1, NULL));
	fixture->context.queue_id = "q-2";
	expect_warning ("*deleting the damaged index*");
	run_ok (fixture);
	assert_warned ();
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-2\n"), ==, 1);
}

/* A crash in the middle of the append left half an entry: it does not
 * count, the rerun writes a whole one. */
static void
test_archive_mbox_partial (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = g_build_filename (fixture->dir, "list.mbox", NULL);
	g_autofree char *index = g_strconcat (mbox, ".idx", NULL);
	g_autofree char *contents = NULL;
	GStatBuf info;

	set_archive (fixture, "mbox:%s", mbox);
	run_ok (fixture);
	g_assert_cmpint (g_stat (mbox, &info), ==, 0);
	g_assert_cmpint (truncate (mbox, info.st_size - 8), ==, 0);
	g_assert_cmpint (g_unlink (index), ==, 0);
	expect_warning ("*q-1 at offset 0 is incomplete*");
	run_ok (fixture);
	assert_warned ();
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-1\n"), ==, 2);
	g_assert_true (g_str_has_suffix (contents, "\nHello, list.\n\n"));
	/* and now it is counted */
	run_ok (fixture);
	g_clear_pointer (&contents, g_free);
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "X-Stagecoach-Queue-Id: q-1\n"), ==, 2);
}

/* A sender cannot hide a queue id in a message to suppress its archiving. */
static void
test_archive_mbox_forged (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = g_build_filename (fixture->dir, "list.mbox", NULL);
	g_autofree char *index = g_strconcat (mbox, ".idx", NULL);
	g_autofree char *contents = NULL;
	static const char forged[] = "X-Stagecoach-Queue-Id: q-2\n"
				     "X-Stagecoach-Length: 1\n"
				     "Subject: forged\n"
				     "\n"
				     "From here\n"
				     "X-Stagecoach-Queue-Id: q-2\n";
	g_autoptr(GBytes) message = g_bytes_new_static (forged, strlen (forged));

	set_archive (fixture, "mbox:%s", mbox);
	fixture->context.current = message;
	run_ok (fixture);
	g_assert_cmpint (g_unlink (index), ==, 0);
	fixture->context.current = fixture->message;
	fixture->context.queue_id = "q-2";
	run_ok (fixture);
	contents = read_file (mbox);
	g_assert_cmpuint (count_occurrences (contents, "2026\nX-Stagecoach-Queue-Id: q-2\n"), ==, 1);
	g_assert_nonnull (strstr (contents, "\n>From here\n"));
	g_assert_true (g_str_has_suffix (contents, "\nHello, list.\n\n"));
}

static void
test_archive_mbox_unwritable (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *file = sc_test_write_file (fixture->dir, "plain-file", "x");

	set_archive (fixture, "mbox:%s/list.mbox", file);
	assert_transient_naming (fixture, fixture->list.archive);
	set_archive (fixture, "mbox:/proc/stagecoach-archive-test.mbox");
	assert_transient_naming (fixture, fixture->list.archive);
	/* a folder where the file should be */
	set_archive (fixture, "mbox:%s", fixture->dir);
	assert_transient_naming (fixture, fixture->list.archive);
}

static gpointer
cancel_later_thread (gpointer user_data)
{
	g_usleep (100 * 1000);
	g_cancellable_cancel (user_data);
	return NULL;
}

/* A mail reader holds the lock: we wait, and give up when shutting down. */
static void
test_archive_mbox_locked (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *mbox = sc_test_write_file (fixture->dir, "list.mbox", "");
	struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	g_autoptr(GError) error = NULL;
	g_autoptr(GThread) thread = NULL;
	gint64 started;
	int fd = open (mbox, O_RDWR);

	g_assert_cmpint (fd, !=, -1);
	g_assert_cmpint (fcntl (fd, F_OFD_SETLK, &lock), ==, 0);
	set_archive (fixture, "mbox:%s", mbox);
	started = g_get_monotonic_time ();
	thread = g_thread_new ("cancel", cancel_later_thread, fixture->cancellable);
	g_assert_false (run_archive (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_assert_nonnull (strstr (error->message, "lock"));
	g_assert_cmpint (g_get_monotonic_time () - started, <, 5 * G_USEC_PER_SEC);
	g_thread_join (g_steal_pointer (&thread));
	close (fd);
}

/* ---- http ---- */

/* An archiver on 127.0.0.1, served from its own thread and main context. */
typedef struct {
	ScTestHttpServer *http;
	guint port;
	GMutex mutex;
	/* the last request, under mutex */
	guint requests;
	char *method;
	char *path;
	SoupMessageHeaders *headers;
	GBytes *body;
} TestServer;

static void
server_callback (SoupServer *server,
		 SoupServerMessage *message,
		 const char *path,
		 GHashTable *query,
		 gpointer user_data)
{
	TestServer *test_server = user_data;
	SoupMessageBody *body = soup_server_message_get_request_body (message);
	const char *reply = "stored";
	guint status = SOUP_STATUS_OK;

	g_mutex_lock (&test_server->mutex);
	test_server->requests++;
	g_free (test_server->method);
	test_server->method = g_strdup (soup_server_message_get_method (message));
	g_free (test_server->path);
	test_server->path = g_strdup (path);
	g_clear_pointer (&test_server->headers, soup_message_headers_unref);
	test_server->headers =
	    soup_message_headers_ref (soup_server_message_get_request_headers (message));
	g_clear_pointer (&test_server->body, g_bytes_unref);
	test_server->body = soup_message_body_flatten (body);
	g_mutex_unlock (&test_server->mutex);

	if (strcmp (path, "/busy") == 0) {
		status = SOUP_STATUS_SERVICE_UNAVAILABLE;
		reply = "archiver busy, try later\nsecond line";
	} else if (strcmp (path, "/bad") == 0) {
		status = SOUP_STATUS_BAD_REQUEST;
		reply = "not a message\n";
	} else if (strcmp (path, "/moved") == 0) {
		status = SOUP_STATUS_MOVED_PERMANENTLY;
		reply = "";
		soup_message_headers_replace (soup_server_message_get_response_headers (message),
					      "Location",
					      "http://127.0.0.1:1/elsewhere");
	}
	soup_server_message_set_status (message, status, NULL);
	soup_server_message_set_response (message, "text/plain", SOUP_MEMORY_COPY, reply,
					  strlen (reply));
}

static TestServer *
test_server_start (void)
{
	TestServer *test_server = g_new0 (TestServer, 1);

	g_mutex_init (&test_server->mutex);
	test_server->http = sc_test_http_server_start ("test-archiver", server_callback, test_server);
	test_server->port = sc_test_http_server_get_port (test_server->http);
	return test_server;
}

static void
test_server_stop (TestServer *test_server)
{
	sc_test_http_server_stop (test_server->http);
	g_free (test_server->method);
	g_free (test_server->path);
	g_clear_pointer (&test_server->headers, soup_message_headers_unref);
	g_clear_pointer (&test_server->body, g_bytes_unref);
	g_mutex_clear (&test_server->mutex);
	g_free (test_server);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestServer, test_server_stop)

typedef struct {
	Fixture *fixture;
	gboolean ok;
	GError *error;
} HttpRun;

static gpointer
http_run_thread (gpointer user_data)
{
	HttpRun *http_run = user_data;

	http_run->ok = run_archive (http_run->fixture, &http_run->error);
	return NULL;
}

/* Runs the stage on a worker thread of its own, as the runner does; the
 * thread's curl handle is freed when it ends. */
static gboolean
run_archive_in_thread (Fixture *fixture, GError **error)
{
	HttpRun http_run = {fixture, FALSE, NULL};

	g_thread_join (g_thread_new ("worker", http_run_thread, &http_run));
	if (http_run.error != NULL)
		g_propagate_error (error, http_run.error);
	return http_run.ok;
}

static void
test_archive_http (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(TestServer) server = test_server_start ();
	g_autoptr(GError) error = NULL;
	SoupMessageHeaders *headers;

	set_archive (fixture, "http://127.0.0.1:%u/archive/test?token=abc", server->port);
	g_assert_true (run_archive_in_thread (fixture, &error));
	g_assert_no_error (error);
	g_assert_cmpuint (server->requests, ==, 1);
	g_assert_cmpstr (server->method, ==, "POST");
	g_assert_cmpstr (server->path, ==, "/archive/test");
	g_assert_true (g_bytes_equal (server->body, fixture->message));
	headers = server->headers;
	g_assert_cmpstr (soup_message_headers_get_one (headers, "Content-Type"),
			 ==,
			 "message/rfc822");
	g_assert_cmpstr (soup_message_headers_get_one (headers, "Idempotency-Key"), ==, "q-1");
	g_assert_cmpstr (soup_message_headers_get_one (headers, "X-Stagecoach-Queue-Id"),
			 ==,
			 "q-1");
	g_assert_cmpstr (soup_message_headers_get_one (headers, "X-Stagecoach-List-Id"),
			 ==,
			 "test.example.org");
	g_assert_cmpstr (soup_message_headers_get_one (headers, "X-Message-Id"),
			 ==,
			 "<m1@example.org>");
	g_assert_null (soup_message_headers_get_one (headers, "Expect"));
}

/* A folded Message-ID with a line break in it arrives on one line; a
 * message without one sends no X-Message-Id. */
static void
test_archive_http_message_id (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(TestServer) server = test_server_start ();
	g_autoptr(GError) error = NULL;
	static const char folded[] = "Subject: x\r\n"
				     "message-id:\r\n"
				     "\t<folded@example.org>\r\n"
				     "\r\n"
				     "Message-ID: <in-the-body@example.org>\r\n";
	static const char none[] = "Subject: x\n\nMessage-ID: <in-the-body@example.org>\n";
	g_autoptr(GBytes) with_folded = g_bytes_new_static (folded, strlen (folded));
	g_autoptr(GBytes) without = g_bytes_new_static (none, strlen (none));

	set_archive (fixture, "http://127.0.0.1:%u/", server->port);
	fixture->context.current = with_folded;
	g_assert_true (run_archive_in_thread (fixture, &error));
	g_assert_no_error (error);
	g_assert_cmpstr (soup_message_headers_get_one (server->headers, "X-Message-Id"),
			 ==,
			 "<folded@example.org>");
	fixture->context.current = without;
	g_assert_true (run_archive_in_thread (fixture, &error));
	g_assert_no_error (error);
	g_assert_null (soup_message_headers_get_one (server->headers, "X-Message-Id"));
	g_assert_cmpuint (server->requests, ==, 2);
}

static void
test_archive_http_errors (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(TestServer) server = test_server_start ();
	g_autoptr(GError) error = NULL;
	g_autofree char *expected = NULL;

	set_archive (fixture, "http://127.0.0.1:%u/busy", server->port);
	g_assert_false (run_archive_in_thread (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	expected = g_strdup_printf ("archive http://127.0.0.1:%u/busy: HTTP 503: "
				    "archiver busy, try later",
				    server->port);
	g_assert_cmpstr (error->message, ==, expected);
	g_clear_error (&error);
	g_clear_pointer (&expected, g_free);

	set_archive (fixture, "http://127.0.0.1:%u/bad", server->port);
	g_assert_false (run_archive_in_thread (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	expected = g_strdup_printf ("archive http://127.0.0.1:%u/bad: HTTP 400: not a message",
				    server->port);
	g_assert_cmpstr (error->message, ==, expected);
	g_clear_error (&error);

	/* not followed, and the password stays out of the error */
	set_archive (fixture, "http://archiver:s3cret@127.0.0.1:%u/moved?key=t0ken", server->port);
	g_assert_false (run_archive_in_thread (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "HTTP 301"));
	g_assert_null (strstr (error->message, "s3cret"));
	g_assert_null (strstr (error->message, "t0ken"));
	g_assert_nonnull (strstr (error->message, "archive http://archiver@127.0.0.1:"));
	g_assert_cmpuint (server->requests, ==, 3);
	g_assert_cmpstr (soup_message_headers_get_one (server->headers, "Authorization"),
			 ==,
			 "Basic YXJjaGl2ZXI6czNjcmV0");
}

/* A port on 127.0.0.1 that nothing listens on. */
static guint
unused_port (void)
{
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(GError) error = NULL;

	socket = g_socket_new (G_SOCKET_FAMILY_IPV4,
			       G_SOCKET_TYPE_STREAM,
			       G_SOCKET_PROTOCOL_TCP,
			       &error);
	g_assert_no_error (error);
	g_socket_bind (socket, address, FALSE, &error);
	g_assert_no_error (error);
	bound = g_socket_get_local_address (socket, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
test_archive_http_refused (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *prefix = NULL;

	set_archive (fixture, "http://127.0.0.1:%u/archive", unused_port ());
	prefix = g_strdup_printf ("archive %s: ", fixture->list.archive);
	g_assert_false (run_archive_in_thread (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, prefix));
}

int
main (int argc, char **argv)
{
	static const char *const proxy_variables[] =
	    {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
	int status;

	/* the archiver is on 127.0.0.1: no proxy of the environment in between */
	for (gsize i = 0; i < G_N_ELEMENTS (proxy_variables); i++)
		g_unsetenv (proxy_variables[i]);
	curl_global_init (CURL_GLOBAL_DEFAULT);
	sc_test_install_log_writer ();
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, function)                                                                        \
	g_test_add (path, Fixture, NULL, fixture_setup, function, fixture_teardown)
	ADD ("/archive/disabled", test_archive_disabled);
	ADD ("/archive/check", test_archive_check);
	ADD ("/archive/check/config", test_archive_check_config);
	ADD ("/archive/maildir/write", test_archive_maildir);
	ADD ("/archive/maildir/rerun", test_archive_maildir_rerun);
	ADD ("/archive/maildir/unwritable", test_archive_maildir_unwritable);
	ADD ("/archive/mbox/format", test_archive_mbox_format);
	ADD ("/archive/mbox/append", test_archive_mbox_append);
	ADD ("/archive/mbox/rerun", test_archive_mbox_rerun);
	ADD ("/archive/mbox/partial", test_archive_mbox_partial);
	ADD ("/archive/mbox/forged", test_archive_mbox_forged);
	ADD ("/archive/mbox/unwritable", test_archive_mbox_unwritable);
	ADD ("/archive/mbox/locked", test_archive_mbox_locked);
	ADD ("/archive/http/post", test_archive_http);
	ADD ("/archive/http/message-id", test_archive_http_message_id);
	ADD ("/archive/http/errors", test_archive_http_errors);
	ADD ("/archive/http/refused", test_archive_http_refused);
#undef ADD

	status = g_test_run ();
	curl_global_cleanup ();
	return status;
}
