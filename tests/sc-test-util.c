/* sc-test-util.c — corpus discovery and temp-folder helpers for tests. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sc-test-util.h"

#include <gio/gio.h>

const char *
sc_test_corpus_dir (void)
{
	static char *dir = NULL;
	const char *env;

	if (dir != NULL)
		return dir;
	env = g_getenv ("SC_CORPUS");
	if (env == NULL || *env == '\0')
		env = "../shared/corpus";
	if (!g_file_test (env, G_FILE_TEST_IS_DIR))
		return NULL;
	dir = g_canonicalize_filename (env, NULL);
	return dir;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
	return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
sc_test_corpus_files (void)
{
	GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
	const char *dir_path = sc_test_corpus_dir ();
	g_autoptr(GDir) dir = NULL;
	const char *name;

	if (dir_path == NULL)
		return names;
	dir = g_dir_open (dir_path, 0, NULL);
	if (dir == NULL)
		return names;
	while ((name = g_dir_read_name (dir)) != NULL) {
		if (g_str_has_suffix (name, ".eml"))
			g_ptr_array_add (names, g_strdup (name));
	}
	g_ptr_array_sort (names, compare_names);
	return names;
}

const char *
sc_test_binary (void)
{
	const char *path = g_getenv ("STAGECOACH_BIN");
	g_assert_nonnull (path);
	return path;
}

char *
sc_test_make_tmpdir (const char *prefix)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *template = g_strdup_printf ("%s-XXXXXX", prefix);
	char *path = g_dir_make_tmp (template, &error);
	g_assert_no_error (error);
	return path;
}

static void
remove_recursive (GFile *file)
{
	g_autoptr(GFileEnumerator) children = NULL;

	children = g_file_enumerate_children (file,
					      G_FILE_ATTRIBUTE_STANDARD_NAME,
					      G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
					      NULL,
					      NULL);
	if (children != NULL) {
		GFileInfo *info;
		while ((info = g_file_enumerator_next_file (children, NULL, NULL)) != NULL) {
			g_autoptr(GFile) child = g_file_get_child (file, g_file_info_get_name (info));
			g_object_unref (info);
			remove_recursive (child);
		}
	}
	(void) g_file_delete (file, NULL, NULL);
}

void
sc_test_remove_tree (const char *path)
{
	g_autoptr(GFile) file = NULL;

	if (path == NULL)
		return;
	file = g_file_new_for_path (path);
	remove_recursive (file);
}

char *
sc_test_write_file (const char *dir, const char *name, const char *contents)
{
	g_autoptr(GError) error = NULL;
	char *path = g_build_filename (dir, name, NULL);
	g_file_set_contents (path, contents, -1, &error);
	g_assert_no_error (error);
	return path;
}

static GSubprocessLauncher *
launcher_for (const char *config_path, GSubprocessFlags flags)
{
	GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);
	g_subprocess_launcher_setenv (launcher, "STAGECOACH_CONFIG", config_path, TRUE);
	g_subprocess_launcher_setenv (launcher, "LC_ALL", "C.UTF-8", TRUE);
	return launcher;
}

static GPtrArray *
collect_args (const char *first_arg, va_list args)
{
	GPtrArray *argv = g_ptr_array_new ();
	const char *arg;

	g_ptr_array_add (argv, (gpointer) sc_test_binary ());
	for (arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
		g_ptr_array_add (argv, (gpointer) arg);
	g_ptr_array_add (argv, NULL);
	return argv;
}

static char *
bytes_to_string (GBytes *bytes)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (bytes, &size);
	return size > 0 ? g_strndup (data, size) : g_strdup ("");
}

gboolean
sc_test_communicate (GSubprocess *process, GBytes *input, GBytes **out, GBytes **err, GError **error)
{
	/* A command refused on its command line exits without reading its
	 * input: writing it must be EPIPE (GLib ignores that), not SIGPIPE
	 * killing the test.  Set after the spawn, so the child keeps the
	 * default. */
	void (*old_handler) (int) = signal (SIGPIPE, SIG_IGN);
	gboolean ok = g_subprocess_communicate (process, input, NULL, out, err, error);

	signal (SIGPIPE, old_handler);
	return ok;
}

int
sc_test_run (const char *config_path,
	     GBytes *input,
	     char **out_stdout,
	     char **out_stderr,
	     const char *first_arg,
	     ...)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    launcher_for (config_path,
			  G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
			      G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = NULL;
	g_autoptr(GSubprocess) process = NULL;
	g_autoptr(GBytes) stdout_bytes = NULL;
	g_autoptr(GBytes) stderr_bytes = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);
	va_list args;

	va_start (args, first_arg);
	argv = collect_args (first_arg, args);
	va_end (args);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	sc_test_communicate (process, input != NULL ? input : empty, &stdout_bytes, &stderr_bytes, &error);
	g_assert_no_error (error);
	if (out_stdout != NULL)
		*out_stdout = bytes_to_string (stdout_bytes);
	if (out_stderr != NULL)
		*out_stderr = bytes_to_string (stderr_bytes);
	if (g_subprocess_get_if_signaled (process))
		return 128 + g_subprocess_get_term_sig (process);
	return g_subprocess_get_exit_status (process);
}

void
sc_test_die_with_parent (gpointer user_data)
{
	pid_t parent = GPOINTER_TO_INT (user_data);

	if (prctl (PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid () != parent)
		_exit (127);
}

GSubprocess *
sc_test_spawn (const char *config_path, const char *log_path, const char *first_arg, ...)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    launcher_for (config_path, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_autoptr(GPtrArray) argv = NULL;
	g_autoptr(GError) error = NULL;
	GSubprocess *process;
	va_list args;

	va_start (args, first_arg);
	argv = collect_args (first_arg, args);
	va_end (args);
	g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
	g_subprocess_launcher_set_child_setup (launcher, sc_test_die_with_parent, GINT_TO_POINTER (getpid ()), NULL);
	process = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
	g_assert_no_error (error);
	return process;
}

char *
sc_test_inject (const char *config_path, const char *list, const char *message)
{
	static guint count;
	g_autoptr(GBytes) input = g_bytes_new (message, strlen (message));
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	/* a recipient per call: the same (Message-ID, recipient) again would be
	 * a resend, which the spool stores once (dedupe-window) */
	g_autofree char *recipient = g_strdup_printf ("rcpt-%u@example.org", g_atomic_int_add (&count, 1));
	int status = sc_test_run (config_path, input, &out, &err, "inject", "--list", list,
				  recipient, NULL);
	if (status != 0)
		g_error ("inject failed (%d): %s", status, err);
	return g_strstrip (g_steal_pointer (&out));
}

JsonObject *
sc_test_show (const char *config_path, const char *queue_id)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	int status = sc_test_run (config_path, NULL, &out, &err, "show", "--json", queue_id, NULL);

	if (status != 0)
		g_error ("show failed (%d): %s", status, err);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

guint
sc_test_count_attempts (JsonObject *shown, const char *outcome)
{
	JsonArray *attempts = json_object_get_array_member (shown, "attempts");
	guint count = 0;

	for (guint i = 0; i < json_array_get_length (attempts); i++) {
		JsonObject *attempt = json_array_get_object_element (attempts, i);
		if (g_strcmp0 (json_object_get_string_member_with_default (attempt, "outcome", NULL), outcome) == 0)
			count++;
	}
	return count;
}

GPtrArray *
sc_test_open_descriptors (const char *pid)
{
	GPtrArray *targets = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *fds = NULL;
	g_autoptr(GDir) dir = NULL;
	const char *name;

	if (pid == NULL)
		return targets;
	fds = g_build_filename ("/proc", pid, "fd", NULL);
	dir = g_dir_open (fds, 0, NULL);
	while (dir != NULL && (name = g_dir_read_name (dir)) != NULL) {
		g_autofree char *fd = g_build_filename (fds, name, NULL);
		char *target = g_file_read_link (fd, NULL);
		if (target != NULL)
			g_ptr_array_add (targets, target);
	}
	return targets;
}

gint64
sc_test_count (const char *config_path, const char *state)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	int status = sc_test_run (config_path, NULL, &out, &err, "status", "--json", NULL);

	if (status != 0)
		g_error ("status failed (%d): %s", status, err);
	json_parser_load_from_data (parser, out, -1, &error);
	g_assert_no_error (error);
	return json_object_get_int_member (json_node_get_object (json_parser_get_root (parser)), state);
}

static gboolean
wait_for (const char *config_path, const char *state, gint64 count, gboolean at_least, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	for (;;) {
		gint64 now_count = sc_test_count (config_path, state);
		if (now_count == count || (at_least && now_count >= count))
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (20 * 1000);
	}
}

gboolean
sc_test_wait_count (const char *config_path, const char *state, gint64 count, guint timeout_ms)
{
	return wait_for (config_path, state, count, FALSE, timeout_ms);
}

gboolean
sc_test_wait_at_least (const char *config_path, const char *state, gint64 count, guint timeout_ms)
{
	return wait_for (config_path, state, count, TRUE, timeout_ms);
}

guint16
sc_test_free_port (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error (error);
	g_socket_bind (socket, any, FALSE, &error);
	g_assert_no_error (error);
	bound = g_socket_get_local_address (socket, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

gboolean
sc_test_wait_port (guint16 port, GSubprocess *process, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
	g_autoptr(GSocketClient) client = g_socket_client_new ();

	/* no proxy lookup: it needs GSettings schemas, hidden by G_TEST_OPTION_ISOLATE_DIRS */
	g_socket_client_set_enable_proxy (client, FALSE);
	for (;;) {
		g_autoptr(GSocketConnection) connection =
		    g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
		if (connection != NULL)
			return TRUE;
		if (process != NULL && g_subprocess_get_identifier (process) == NULL)
			return FALSE; /* exited */
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (20 * 1000);
	}
}

static GMutex expected_lock;
static char *expected_warning; /* (nullable) a g_pattern_match_simple() glob */
static guint expected_warning_count;

static GLogWriterOutput
test_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
	gboolean swallowed = FALSE;

	if ((level & G_LOG_LEVEL_WARNING) != 0) {
		g_mutex_lock (&expected_lock);
		for (gsize i = 0; expected_warning != NULL && i < n_fields; i++) {
			if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length == -1 &&
			    g_pattern_match_simple (expected_warning, fields[i].value)) {
				expected_warning_count++;
				swallowed = TRUE;
				break;
			}
		}
		g_mutex_unlock (&expected_lock);
	}
	if (swallowed)
		return G_LOG_WRITER_HANDLED;
	return g_log_writer_default (level, fields, n_fields, user_data);
}

void
sc_test_install_log_writer (void)
{
	g_log_set_writer_func (test_log_writer, NULL, NULL);
}

guint
sc_test_expect_warning (const char *pattern)
{
	guint count;

	g_mutex_lock (&expected_lock);
	count = expected_warning_count;
	g_free (expected_warning);
	expected_warning = g_strdup (pattern);
	expected_warning_count = 0;
	g_mutex_unlock (&expected_lock);
	return count;
}

gboolean
sc_test_reap_child (GPid *pid, gboolean block)
{
	int status = 0;
	pid_t rc;

	if (*pid == 0)
		return TRUE;
	do {
		rc = waitpid (*pid, &status, block ? 0 : WNOHANG);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return FALSE;
	g_spawn_close_pid (*pid);
	*pid = 0;
	return TRUE;
}
