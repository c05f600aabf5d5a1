/* test-exec.c — the exec:NAME stage: exit codes, replacement, timeouts, big messages, environment. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "sc-config.h"
#include "sc-error.h"
#include "sc-handler.h"
#include "sc-test-util.h"

#define MS (G_GINT64_CONSTANT (1000))

static const char test_message[] = "From: Ann <ann@example.org>\r\n"
				   "Subject: hello\r\n"
				   "\r\n"
				   "hello, list\r\n";

typedef struct {
	char *dir; /* (owned) a fresh temp folder per test: scripts live here */
	ScConfig *config;
	ScListConfig list;
	ScClock *clock;
	GCancellable *cancellable;
	GBytes *message;
	char *stage;
	ScStageContext context;
} Fixture;

static void
exec_config_free (ScExecConfig *exec)
{
	g_free (exec->name);
	g_strfreev (exec->argv);
	g_free (exec);
}

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	static const char *const recipients[] = {"bob@example.org", NULL};

	fixture->dir = sc_test_make_tmpdir ("sc-exec");
	/* built by hand: these tests are about the handler, not the loader */
	fixture->config = g_new0 (ScConfig, 1);
	fixture->config->ref_count = 1;
	fixture->config->max_message_size = 100 * 1024 * 1024;
	fixture->config->lists = g_hash_table_new (g_str_hash, g_str_equal);
	fixture->config->execs = g_hash_table_new_full (g_str_hash,
							g_str_equal,
							NULL,
							(GDestroyNotify) exec_config_free);
	fixture->list.id = (char *) "test.example.org";
	fixture->clock = sc_clock_new_fixed (G_GINT64_CONSTANT (1795435200) * G_USEC_PER_SEC);
	fixture->cancellable = g_cancellable_new ();
	fixture->message = g_bytes_new_static (test_message, strlen (test_message));
	fixture->context.queue_id = "q-1";
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
	g_free (fixture->stage);
	g_bytes_unref (fixture->message);
	g_object_unref (fixture->cancellable);
	sc_clock_unref (fixture->clock);
	sc_config_unref (fixture->config);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
}

/* Configures [handler:@name] to run @script with /bin/sh and points the
 * stage at it. */
static void
add_handler (Fixture *fixture, const char *name, const char *script, gboolean replace, gint64 timeout)
{
	ScExecConfig *exec = g_new0 (ScExecConfig, 1);
	g_autofree char *file_name = g_strconcat (name, ".sh", NULL);
	g_autofree char *path = sc_test_write_file (fixture->dir, file_name, script);

	exec->name = g_strdup (name);
	exec->argv = g_new0 (char *, 3);
	exec->argv[0] = g_strdup ("/bin/sh");
	exec->argv[1] = g_steal_pointer (&path);
	exec->replace = replace;
	exec->timeout = timeout;
	g_hash_table_replace (fixture->config->execs, exec->name, exec);
	g_free (fixture->stage);
	fixture->stage = g_strconcat ("exec:", name, NULL);
	fixture->context.stage = fixture->stage;
	fixture->context.stage_argument = fixture->stage + strlen ("exec:");
}

static gboolean
run_exec (Fixture *fixture, GError **error)
{
	sc_stage_context_clear_outputs (&fixture->context);
	return sc_handler_exec.run (&fixture->context, error);
}

static void
test_exec_ok (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture, "pass", "cat >/dev/null\necho ignored\nexit 0\n", FALSE, 10000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	/* without replace, stdout is not the message */
	g_assert_null (fixture->context.output);
}

static void
test_exec_replace (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) expected = NULL;
	static const char replaced[] = "From: Ann <ann@example.org>\r\n"
				       "Subject: hello\r\n"
				       "\r\n"
				       "goodbye, list\r\n";

	add_handler (fixture, "rewrite", "exec sed 's/hello, list/goodbye, list/'\n", TRUE, 10000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	g_assert_nonnull (fixture->context.output);
	expected = g_bytes_new_static (replaced, strlen (replaced));
	g_assert_true (g_bytes_equal (fixture->context.output, expected));
}

static void
test_exec_empty_output (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture, "eater", "cat >/dev/null\n", TRUE, 10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "exec:eater: "));
	g_assert_null (fixture->context.output);
}

static void
test_exec_tempfail (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture,
		     "grey",
		     "cat >/dev/null\n"
		     "echo 'greylisted, try again later  ' >&2\n"
		     "echo 'second line' >&2\n"
		     "exit 75\n",
		     FALSE,
		     10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_assert_cmpstr (error->message,
			 ==,
			 "exec:grey: exit 75: greylisted, try again later\nsecond line");
}

static void
test_exec_permanent (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture, "spam", "echo 'spam score 12.5' >&2\nexit 1\n", FALSE, 10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_assert_cmpstr (error->message, ==, "exec:spam: exit 1: spam score 12.5");
	g_clear_error (&error);

	/* no stderr: the status alone */
	add_handler (fixture, "quiet", "exit 3\n", FALSE, 10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_assert_cmpstr (error->message, ==, "exec:quiet: exit 3");
	g_clear_error (&error);

	/* a signal is as final as an exit status */
	add_handler (fixture, "crash", "kill -SEGV $$\n", FALSE, 10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "exec:crash: killed by signal 11"));
}

/* A chatty program's stderr is cut, and its invalid UTF-8 repaired. */
static void
test_exec_stderr_cap (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture,
		     "chatty",
		     "printf 'bad \\377 byte\\n' >&2\n"
		     "i=0; while [ $i -lt 2000 ]; do echo \"line $i of noise on stderr\"; "
		     "i=$((i+1)); done >&2\n"
		     "exit 2\n",
		     FALSE,
		     10000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_assert_true (g_utf8_validate (error->message, -1, NULL));
	g_assert_cmpuint (strlen (error->message), <, 4200);
	g_assert_true (g_str_has_prefix (error->message, "exec:chatty: exit 2: bad "));
	g_assert_nonnull (strstr (error->message, "line 8 of noise"));
	g_assert_null (strstr (error->message, "line 9 of noise"));
}

static gboolean
process_is_gone (pid_t pid)
{
	g_autofree char *stat_path = g_strdup_printf ("/proc/%d/stat", (int) pid);
	g_autofree char *contents = NULL;
	const char *state;

	if (kill (pid, 0) == -1 && errno == ESRCH)
		return TRUE;
	/* a zombie no one has reaped yet is dead too */
	if (!g_file_get_contents (stat_path, &contents, NULL, NULL))
		return TRUE;
	state = strrchr (contents, ')');
	return state != NULL && (state[2] == 'Z' || state[2] == 'X');
}

static void
test_exec_timeout (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *pid_file = g_build_filename (fixture->dir, "grandchild.pid", NULL);
	g_autofree char *script = g_strdup_printf ("sleep 30 &\n"
						   "echo $! > '%s'\n"
						   "echo 'thinking' >&2\n"
						   "sleep 10\n",
						   pid_file);
	g_autofree char *contents = NULL;
	gint64 started = g_get_monotonic_time ();
	gint64 grandchild;

	add_handler (fixture, "slow", script, FALSE, 200 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_cmpstr (error->message,
			 ==,
			 "exec:slow: killed after the timeout of 200ms: thinking");
	g_assert_cmpint (g_get_monotonic_time () - started, <, 3 * G_USEC_PER_SEC);

	/* the whole process group went, not only the shell */
	g_assert_true (g_file_get_contents (pid_file, &contents, NULL, NULL));
	grandchild = g_ascii_strtoll (contents, NULL, 10);
	g_assert_cmpint (grandchild, >, 1);
	for (guint i = 0; i < 100 && !process_is_gone ((pid_t) grandchild); i++)
		g_usleep (20 * 1000);
	g_assert_true (process_is_gone ((pid_t) grandchild));
}

static gpointer
cancel_later_thread (gpointer user_data)
{
	g_usleep (150 * 1000);
	g_cancellable_cancel (user_data);
	return NULL;
}

static void
test_exec_cancel (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GThread) thread = NULL;
	gint64 started = g_get_monotonic_time ();

	add_handler (fixture, "slow", "sleep 10\n", FALSE, 60000 * MS);
	thread = g_thread_new ("cancel", cancel_later_thread, fixture->cancellable);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_cmpint (g_get_monotonic_time () - started, <, 3 * G_USEC_PER_SEC);
	g_thread_join (g_steal_pointer (&thread));
	g_clear_error (&error);

	/* already cancelled: nothing is started */
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_assert_true (g_str_has_prefix (error->message, "exec:slow: "));
}

static GBytes *
make_big_message (gsize size)
{
	GString *text = g_string_sized_new (size + 100);

	g_string_append (text, "Subject: big\r\n\r\n");
	while (text->len < size)
		g_string_append_printf (text, "line %08" G_GSIZE_FORMAT " of a long message\r\n",
					text->len);
	return g_string_free_to_bytes (text);
}

/* 20 MB each way at once: stdin, stdout and stderr are served together. */
static void
test_exec_large (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) message = make_big_message (20 * 1024 * 1024);

	fixture->context.current = message;
	add_handler (fixture, "copy", "exec cat\n", TRUE, 60000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	g_assert_nonnull (fixture->context.output);
	g_assert_true (g_bytes_equal (fixture->context.output, message));

	/* more output than max-message-size is refused, not kept */
	fixture->config->max_message_size = 1024 * 1024;
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_test_message ("%s", error->message);
	g_assert_null (fixture->context.output);
}

/* A program that stops reading must not take the daemon down with SIGPIPE. */
static void
test_exec_no_read (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) message = make_big_message (8 * 1024 * 1024);

	fixture->context.current = message;
	add_handler (fixture, "early", "head -c 10 >/dev/null\nexit 0\n", FALSE, 60000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	add_handler (fixture, "refuse", "echo 'too big' >&2\nexit 1\n", FALSE, 60000 * MS);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT);
	g_assert_cmpstr (error->message, ==, "exec:refuse: exit 1: too big");
}

static void
test_exec_not_found (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	ScExecConfig *exec;

	add_handler (fixture, "missing", "exit 0\n", FALSE, 10000 * MS);
	exec = g_hash_table_lookup (fixture->config->execs, "missing");
	g_free (exec->argv[0]);
	exec->argv[0] = g_build_filename (fixture->dir, "no-such-program", NULL);
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
	g_test_message ("%s", error->message);
	g_assert_true (g_str_has_prefix (error->message, "exec:missing: failed to start "));
	g_assert_nonnull (strstr (error->message, "no-such-program"));
	g_clear_error (&error);

	/* the section vanished between load and run */
	g_hash_table_remove (fixture->config->execs, "missing");
	g_assert_false (run_exec (fixture, &error));
	g_assert_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT);
}

static void
test_exec_environment (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) expected = NULL;
	static const char text[] = "q-1|test.example.org|ann@example.org|exec:env|PATH-set|wc=4";

	add_handler (fixture,
		     "env",
		     "lines=$(wc -l)\n"
		     "printf '%s|%s|%s|%s|%s|wc=%s' \"$STAGECOACH_QUEUE_ID\" "
		     "\"$STAGECOACH_LIST_ID\" \"$STAGECOACH_SENDER\" \"$STAGECOACH_STAGE\" "
		     "\"${PATH:+PATH-set}\" $lines\n",
		     TRUE,
		     10000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	expected = g_bytes_new_static (text, strlen (text));
	g_assert_true (g_bytes_equal (fixture->context.output, expected));
}

/* A program run from a daemon that ignores SIGPIPE gets it back. */
static void
test_exec_sigpipe_default (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;
	static const char text[] = "X-Probe: SigIgn bit clear\n\n";
	g_autoptr(GBytes) expected = g_bytes_new_static (text, strlen (text));
	void (*old_handler) (int) = signal (SIGPIPE, SIG_IGN);

	/* SIGPIPE is signal 13: bit 12 of SigIgn */
	add_handler (fixture,
		     "pipe",
		     "mask=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status)\n"
		     "if [ $(( 0x$mask & 0x1000 )) -eq 0 ]; then printf 'X-Probe: SigIgn bit clear\\n\\n'; "
		     "else printf 'X-Probe: ignored: %s\\n\\n' $mask; fi\n",
		     TRUE,
		     10000 * MS);
	g_assert_true (run_exec (fixture, &error));
	g_assert_no_error (error);
	signal (SIGPIPE, old_handler);
	g_assert_true (g_bytes_equal (fixture->context.output, expected));
}

static void
test_exec_check (Fixture *fixture, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	add_handler (fixture, "there", "exit 0\n", FALSE, 10000 * MS);
	g_assert_true (sc_handler_exec.check (fixture->config, &fixture->list, "there", NULL, &error));
	g_assert_no_error (error);
	g_assert_false (sc_handler_exec.check (fixture->config, &fixture->list, "absent", NULL, &error));
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_assert_cmpstr (error->message,
			 ==,
			 "pipeline: stage “exec:absent” has no [handler:absent] section");
}

/* Through the real loader: the problem names the list, the key and the section. */
static void
test_exec_check_config (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *path = sc_test_write_file (fixture->dir,
						    "stagecoach.conf",
						    "[list:test.example.org]\n"
						    "pipeline = decorate;exec:spamcheck;archive\n"
						    "[handler:other]\n"
						    "command = /bin/true\n");
	g_autoptr(GError) error = NULL;
	g_autoptr(ScConfig) config = sc_config_load (path, &error);

	g_assert_null (config);
	g_assert_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID);
	g_test_message ("%s", error->message);
	g_assert_nonnull (strstr (error->message, "[list:test.example.org]"));
	g_assert_nonnull (strstr (error->message, "pipeline: "));
	g_assert_nonnull (strstr (error->message, "[handler:spamcheck]"));
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

#define ADD(path, function)                                                                        \
	g_test_add (path, Fixture, NULL, fixture_setup, function, fixture_teardown)
	ADD ("/exec/ok", test_exec_ok);
	ADD ("/exec/replace", test_exec_replace);
	ADD ("/exec/replace/empty", test_exec_empty_output);
	ADD ("/exec/exit/tempfail", test_exec_tempfail);
	ADD ("/exec/exit/permanent", test_exec_permanent);
	ADD ("/exec/stderr/cap", test_exec_stderr_cap);
	ADD ("/exec/timeout", test_exec_timeout);
	ADD ("/exec/cancel", test_exec_cancel);
	ADD ("/exec/large", test_exec_large);
	ADD ("/exec/no-read", test_exec_no_read);
	ADD ("/exec/not-found", test_exec_not_found);
	ADD ("/exec/environment", test_exec_environment);
	ADD ("/exec/sigpipe-default", test_exec_sigpipe_default);
	ADD ("/exec/check", test_exec_check);
	ADD ("/exec/check/config", test_exec_check_config);
#undef ADD

	return g_test_run ();
}
