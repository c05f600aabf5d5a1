/* sc-test-util.h — helpers shared by the GTest binaries. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The corpus folder ($SC_CORPUS, default ../shared/corpus), or NULL when it
 * is absent: callers then g_test_skip() so the skip is counted and visible. */
const char *sc_test_corpus_dir (void);
/* Sorted *.eml file names in the corpus. (transfer full) */
GPtrArray *sc_test_corpus_files (void);
/* The stagecoach binary under test ($STAGECOACH_BIN). */
const char *sc_test_binary (void);
/* A fresh temporary folder, removed by sc_test_remove_tree(). (transfer full) */
char *sc_test_make_tmpdir (const char *prefix);
void sc_test_remove_tree (const char *path);
/* Writes text to dir/name, returns the path. (transfer full) */
char *sc_test_write_file (const char *dir, const char *name, const char *contents);

/* g_test_expect_message() does not see structured logging in GLib 2.74:
 * after sc_test_install_log_writer() (once, in main), a warning matching
 * the glob given to sc_test_expect_warning() is counted and swallowed
 * instead of aborting the test.  sc_test_expect_warning() returns how
 * many matched the previous pattern (NULL: stop expecting). */
void sc_test_install_log_writer (void);
guint sc_test_expect_warning (const char *pattern);

G_END_DECLS

G_BEGIN_DECLS

/* Runs the stagecoach binary with STAGECOACH_CONFIG=@config_path, feeding
 * @input (nullable) on stdin; returns its exit status.  @out_stdout and
 * @out_stderr: (optional) (transfer full).  Arguments end with NULL. */
/* g_subprocess_communicate with SIGPIPE ignored while the input is
 * written: a child that exits before reading it must not kill the test. */
gboolean sc_test_communicate (GSubprocess *process, GBytes *input, GBytes **out, GBytes **err, GError **error);
int sc_test_run (const char *config_path,
		 GBytes *input,
		 char **out_stdout,
		 char **out_stderr,
		 const char *first_arg,
		 ...) G_GNUC_NULL_TERMINATED;
/* GSubprocessLauncher child setup (user_data: the parent's pid): the child
 * is killed when the test process ends, so an aborted test leaves no daemon. */
void sc_test_die_with_parent (gpointer user_data);
/* Starts it in the background (stdout/stderr to @log_path); it dies with
 * the test process. (transfer full) */
GSubprocess *sc_test_spawn (const char *config_path, const char *log_path, const char *first_arg, ...)
    G_GNUC_NULL_TERMINATED;
/* Injects @message to @list for one recipient (a new one each call);
 * returns the queue id. */
char *sc_test_inject (const char *config_path, const char *list, const char *message);
/* The parsed `show ID --json` object. (transfer full) */
JsonObject *sc_test_show (const char *config_path, const char *queue_id);
/* How many of @shown's attempts have @outcome ("crashed", "released" …). */
guint sc_test_count_attempts (JsonObject *shown, const char *outcome);
/* What each descriptor process @pid holds open points at (/proc/PID/fd
 * links: a path, "socket:[INODE]", …); empty once it has exited. (transfer full) */
GPtrArray *sc_test_open_descriptors (const char *pid);
/* `status --json` member @state. */
gint64 sc_test_count (const char *config_path, const char *state);
/* Waits up to @timeout_ms for `status --json` to report @count in @state. */
gboolean sc_test_wait_count (const char *config_path, const char *state, gint64 count, guint timeout_ms);
/* … or more than @count. */
gboolean sc_test_wait_at_least (const char *config_path, const char *state, gint64 count, guint timeout_ms);

/* Reaps the child *@pid started with G_SPAWN_DO_NOT_REAP_CHILD if it has
 * exited (waiting for it with @block) and sets *@pid to 0; TRUE when it
 * is gone (or *@pid was 0 already). */
gboolean sc_test_reap_child (GPid *pid, gboolean block);

/* A loopback port that was free a moment ago. */
guint16 sc_test_free_port (void);
/* Waits up to @timeout_ms until 127.0.0.1:@port accepts a connection;
 * FALSE on timeout or once @process (nullable) has exited.  The probe
 * is a connection of its own that is closed at once. */
gboolean sc_test_wait_port (guint16 port, GSubprocess *process, guint timeout_ms);

/* g_test_expect_message() does not see structured logging in GLib 2.74:
 * after sc_test_install_log_writer() (once, in main), a warning matching
 * the glob given to sc_test_expect_warning() is counted and swallowed
 * instead of aborting the test.  sc_test_expect_warning() returns how
 * many matched the previous pattern (NULL: stop expecting). */
void sc_test_install_log_writer (void);
guint sc_test_expect_warning (const char *pattern);

G_END_DECLS
