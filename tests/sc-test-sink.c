/* sc-test-sink.c — runs Postfix's smtp-sink for the SMTP delivery tests and reads its dumps.
 *
 * Each ScTestSink owns one smtp-sink process on 127.0.0.1 and one temporary
 * folder: dump/ (one file per transaction, "-d DIR/dump/%H%M%S." plus the
 * random suffix smtp-sink appends) and sink.log (its stdout and stderr).
 * A dump is smtp-sink's X-Client-Addr, X-Client-Proto, X-Helo-Args,
 * X-Mail-Args and one X-Rcpt-Args line per RCPT, a three-line Received:
 * header, the message with LF line ends and dots unstuffed, and an empty
 * line.  As root, smtp-sink is started as nobody (set in the child before
 * exec, rather than with "-u", which would clear the parent-death signal):
 * the folder is made traversable and dump/ is given to nobody.  The
 * parent-death signal (SIGTERM) ends the sink when a failed assertion
 * aborts the test without running its cleanup.
 *
 * Must never: listen beyond 127.0.0.1, signal any process but the one it
 * started (by PID), or leave that process running after stop()/free().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc-test-sink.h"
#include "sc-test-util.h"

#define SMTP_SINK_PATH "/usr/sbin/smtp-sink"
#define SINK_START_TRIES 5
#define SINK_READY_TIMEOUT_MS 5000

struct _ScTestSink {
	char *dir;      /* (owned) the temporary folder */
	char *dump_dir; /* (owned) dir/dump */
	char *log_path; /* (owned) dir/sink.log */
	guint16 port;
	GPid pid;       /* 0 when not running */
	gboolean drop_privileges; /* running as root: the sink runs as nobody */
	uid_t uid;      /* nobody's, with drop_privileges */
	gid_t gid;
	pid_t parent;   /* our PID, for the child to check it still has us */
};

/* In the child between fork and exec: only async-signal-safe calls. */
static void
sink_child_setup (gpointer user_data)
{
	ScTestSink *sink = user_data;

	if (sink->drop_privileges) {
		if (setgroups (0, NULL) != 0 || setgid (sink->gid) != 0 || setuid (sink->uid) != 0)
			_exit (127);
	}
	/* after the credential change, which would clear it */
	if (prctl (PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid () != sink->parent)
		_exit (127);
}

void
sc_test_sink_message_free (ScTestSinkMessage *message)
{
	if (message == NULL)
		return;
	g_free (message->path);
	g_free (message->helo);
	g_free (message->sender);
	g_clear_pointer (&message->recipients, g_ptr_array_unref);
	g_clear_pointer (&message->data, g_bytes_unref);
	g_free (message);
}

/* A port that was free a moment ago. */
static guint16
sink_pick_port (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

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

static gboolean
sink_accepts (guint16 port)
{
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);

	socket = g_socket_new (G_SOCKET_FAMILY_IPV4,
			       G_SOCKET_TYPE_STREAM,
			       G_SOCKET_PROTOCOL_TCP,
			       NULL);
	if (socket == NULL)
		return FALSE;
	return g_socket_connect (socket, address, NULL, NULL);
}

/* One attempt on sink->port; FALSE when smtp-sink exited at once (the port
 * was taken meanwhile). */
static gboolean
sink_spawn (ScTestSink *sink, const char *const *extra_args)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
	gint64 deadline;
	int log_fd;

	g_ptr_array_add (argv, g_strdup (SMTP_SINK_PATH));
	g_ptr_array_add (argv, g_strdup ("-4"));
	g_ptr_array_add (argv, g_strdup ("-d"));
	g_ptr_array_add (argv, g_build_filename (sink->dump_dir, "%H%M%S.", NULL));
	for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
		g_ptr_array_add (argv, g_strdup (extra_args[i]));
	g_ptr_array_add (argv, g_strdup_printf ("127.0.0.1:%u", sink->port));
	g_ptr_array_add (argv, g_strdup ("64"));
	g_ptr_array_add (argv, NULL);

	log_fd = open (sink->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	g_assert_cmpint (log_fd, >=, 0);
	g_spawn_async_with_fds (NULL,
				(char **) argv->pdata,
				NULL,
				G_SPAWN_DO_NOT_REAP_CHILD,
				sink_child_setup,
				sink,
				&sink->pid,
				-1,
				log_fd,
				log_fd,
				&error);
	close (log_fd);
	g_assert_no_error (error);

	deadline = g_get_monotonic_time () + SINK_READY_TIMEOUT_MS * 1000;
	while (g_get_monotonic_time () < deadline) {
		if (sc_test_reap_child (&sink->pid, FALSE))
			return FALSE;
		if (sink_accepts (sink->port))
			return TRUE;
		g_usleep (20 * 1000);
	}
	g_error ("smtp-sink did not listen on port %u within %d ms",
		 sink->port,
		 SINK_READY_TIMEOUT_MS);
	return FALSE;
}

ScTestSink *
sc_test_sink_start (const char *const *extra_args)
{
	ScTestSink *sink;

	if (!g_file_test (SMTP_SINK_PATH, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip ("smtp-sink (package postfix) is not installed");
		return NULL;
	}
	sink = g_new0 (ScTestSink, 1);
	sink->dir = sc_test_make_tmpdir ("sc-test-sink");
	sink->dump_dir = g_build_filename (sink->dir, "dump", NULL);
	sink->log_path = g_build_filename (sink->dir, "sink.log", NULL);
	g_assert_cmpint (g_mkdir (sink->dump_dir, 0755), ==, 0);
	sink->parent = getpid ();
	if (geteuid () == 0) {
		struct passwd *nobody = getpwnam ("nobody");

		g_assert_nonnull (nobody);
		sink->drop_privileges = TRUE;
		sink->uid = nobody->pw_uid;
		sink->gid = nobody->pw_gid;
		g_assert_cmpint (g_chmod (sink->dir, 0755), ==, 0);
		g_assert_cmpint (chown (sink->dump_dir, sink->uid, sink->gid), ==, 0);
	}
	for (guint i = 0; i < SINK_START_TRIES; i++) {
		sink->port = sink_pick_port ();
		if (sink_spawn (sink, extra_args))
			return sink;
	}
	g_error ("smtp-sink would not start; see %s", sink->log_path);
	return NULL;
}

void
sc_test_sink_restart (ScTestSink *sink, const char *const *extra_args)
{
	g_return_if_fail (sink != NULL);

	sc_test_sink_stop (sink);
	/* smtp-sink binds with SO_REUSEADDR: TIME_WAIT does not block it, a
	 * stranger taking the port in between would */
	for (guint i = 0; i < SINK_START_TRIES; i++) {
		if (sink_spawn (sink, extra_args))
			return;
		g_usleep (100 * 1000);
	}
	g_error ("smtp-sink would not restart on port %u; see %s", sink->port, sink->log_path);
}

guint16
sc_test_sink_get_port (ScTestSink *sink)
{
	return sink->port;
}

char *
sc_test_sink_get_url (ScTestSink *sink)
{
	return g_strdup_printf ("smtp://127.0.0.1:%u", sink->port);
}

GPid
sc_test_sink_get_pid (ScTestSink *sink)
{
	return sink->pid;
}

/* "<a@b> NOTIFY=…" -> "a@b" */
static char *
sink_angle_address (const char *args)
{
	const char *start = strchr (args, '<');
	const char *end;

	if (start == NULL)
		return g_strdup (args);
	end = strchr (start, '>');
	if (end == NULL)
		return g_strdup (start + 1);
	return g_strndup (start + 1, end - start - 1);
}

static ScTestSinkMessage *
sink_parse_dump (const char *path)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *contents = NULL;
	g_autoptr(ScTestSinkMessage) message = g_new0 (ScTestSinkMessage, 1);
	g_autoptr(GString) data = g_string_new (NULL);
	const char *cursor;
	const char *end;
	gsize length = 0;
	gboolean in_received = FALSE;

	g_file_get_contents (path, &contents, &length, &error);
	g_assert_no_error (error);
	message->path = g_strdup (path);
	message->recipients = g_ptr_array_new_with_free_func (g_free);

	/* smtp-sink's own header lines, up to the end of Received: */
	cursor = contents;
	end = contents + length;
	while (cursor < end) {
		const char *newline = memchr (cursor, '\n', end - cursor);
		g_autofree char *line =
		    g_strndup (cursor, newline != NULL ? newline - cursor : end - cursor);

		if (in_received && line[0] != '\t')
			break;
		cursor = newline != NULL ? newline + 1 : end;
		if (g_str_has_prefix (line, "X-Helo-Args: "))
			message->helo = g_strdup (line + strlen ("X-Helo-Args: "));
		else if (g_str_has_prefix (line, "X-Mail-Args: "))
			message->sender = sink_angle_address (line + strlen ("X-Mail-Args: "));
		else if (g_str_has_prefix (line, "X-Rcpt-Args: "))
			g_ptr_array_add (message->recipients,
					 sink_angle_address (line + strlen ("X-Rcpt-Args: ")));
		else if (g_str_has_prefix (line, "Received: "))
			in_received = TRUE;
	}
	if (message->sender == NULL)
		message->sender = g_strdup ("");

	/* the message, then smtp-sink's empty line once the dump is closed */
	length = end - cursor;
	if (length >= 2 && cursor[length - 1] == '\n' && cursor[length - 2] == '\n') {
		message->complete = TRUE;
		length--;
	}
	for (gsize i = 0; i < length; i++) {
		if (cursor[i] == '\n')
			g_string_append_c (data, '\r');
		g_string_append_c (data, cursor[i]);
	}
	message->data = g_string_free_to_bytes (g_steal_pointer (&data));
	return g_steal_pointer (&message);
}

static GPtrArray *
sink_dump_paths (ScTestSink *sink)
{
	GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GDir) dir = g_dir_open (sink->dump_dir, 0, NULL);
	const char *name;

	if (dir == NULL)
		return paths;
	while ((name = g_dir_read_name (dir)) != NULL)
		g_ptr_array_add (paths, g_build_filename (sink->dump_dir, name, NULL));
	return paths;
}

GPtrArray *
sc_test_sink_get_messages (ScTestSink *sink)
{
	g_autoptr(GPtrArray) paths = sink_dump_paths (sink);
	GPtrArray *messages =
	    g_ptr_array_new_with_free_func ((GDestroyNotify) sc_test_sink_message_free);

	for (guint i = 0; i < paths->len; i++)
		g_ptr_array_add (messages, sink_parse_dump (paths->pdata[i]));
	return messages;
}

guint
sc_test_sink_count_dumps (ScTestSink *sink)
{
	g_autoptr(GPtrArray) paths = sink_dump_paths (sink);

	return paths->len;
}

gboolean
sc_test_sink_wait_dumps (ScTestSink *sink, guint count, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	while (sc_test_sink_count_dumps (sink) != count) {
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (10 * 1000);
	}
	return TRUE;
}

gboolean
sc_test_sink_wait_messages (ScTestSink *sink, guint count, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	for (;;) {
		g_autoptr(GPtrArray) messages = sc_test_sink_get_messages (sink);
		guint complete = 0;

		for (guint i = 0; i < messages->len; i++) {
			ScTestSinkMessage *message = messages->pdata[i];

			if (message->complete)
				complete++;
		}
		if (complete >= count)
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (10 * 1000);
	}
}

guint
sc_test_sink_count_recipient (ScTestSink *sink, const char *address)
{
	g_autoptr(GPtrArray) messages = sc_test_sink_get_messages (sink);
	guint count = 0;

	for (guint i = 0; i < messages->len; i++) {
		ScTestSinkMessage *message = messages->pdata[i];

		for (guint j = 0; j < message->recipients->len; j++) {
			if (g_strcmp0 (message->recipients->pdata[j], address) == 0)
				count++;
		}
	}
	return count;
}

void
sc_test_sink_stop (ScTestSink *sink)
{
	gint64 deadline;

	g_return_if_fail (sink != NULL);
	if (sink->pid == 0)
		return;
	kill (sink->pid, SIGTERM);
	deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
	while (!sc_test_reap_child (&sink->pid, FALSE)) {
		if (g_get_monotonic_time () >= deadline) {
			kill (sink->pid, SIGKILL);
			sc_test_reap_child (&sink->pid, TRUE);
			break;
		}
		g_usleep (10 * 1000);
	}
}

void
sc_test_sink_free (ScTestSink *sink)
{
	if (sink == NULL)
		return;
	sc_test_sink_stop (sink);
	sc_test_remove_tree (sink->dir);
	g_free (sink->dir);
	g_free (sink->dump_dir);
	g_free (sink->log_path);
	g_free (sink);
}
