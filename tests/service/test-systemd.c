/* test-systemd.c — `stagecoach run` tells systemd how it is (sc-systemd.h).
 *
 * The real daemon runs with NOTIFY_SOCKET naming a datagram socket this
 * test binds (SO_PASSCRED: each message's sender pid is checked to be the
 * daemon's, as NotifyAccess=main requires), with WATCHDOG_USEC and
 * WATCHDOG_PID set as systemd sets them.  READY=1 must come when the SMTP
 * listener and the admin server already answer; WATCHDOG=1 must repeat at
 * half the interval; SIGHUP gives RELOADING=1 then READY=1 (also when the
 * new configuration has errors); SIGTERM gives STOPPING=1.  The daemon
 * runs with the kernel's memory-deny-write-execute (PR_SET_MDWE, Linux
 * 6.3+) when available, as MemoryDenyWriteExecute= runs it.  Loopback only.
 */
#include "config.h"

#include <gio/gio.h>
#include <gio/gunixcredentialsmessage.h>
#include <gio/gunixsocketaddress.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc-systemd.h"
#include "sc-test-util.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

typedef struct {
	char *dir;
	char *config;
	char *log;
	GSocket *notify;
	char *notify_path;
	GSubprocess *daemon;
	GPid pid;
	guint16 smtp_port;
	guint16 admin_port;
} Fixture;

static void
child_setup (gpointer user_data)
{
	sc_test_die_with_parent (user_data);
	/* as MemoryDenyWriteExecute=yes; an older kernel refuses (EINVAL) */
	(void) prctl (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L);
}

static void
write_config (Fixture *fixture, gboolean broken)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s/spool\n%s"
						 "[admin]\nlisten = 127.0.0.1:%u\n"
						 "[ingress]\nsmtp = 127.0.0.1:%u\n"
						 "[list:notify.example.org]\npipeline = archive\narchive = maildir:archive\n",
						 fixture->dir, broken ? "workers = many\n" : "",
						 fixture->admin_port, fixture->smtp_port);
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocketAddress) address = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-systemd");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->log = g_build_filename (fixture->dir, "daemon.log", NULL);
	fixture->smtp_port = sc_test_free_port ();
	fixture->admin_port = sc_test_free_port ();
	write_config (fixture, FALSE);

	fixture->notify_path = g_build_filename (fixture->dir, "notify.sock", NULL);
	fixture->notify = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_DEFAULT, &error);
	g_assert_no_error (error);
	address = g_unix_socket_address_new (fixture->notify_path);
	g_assert_true (g_socket_bind (fixture->notify, address, FALSE, &error));
	g_assert_no_error (error);
	/* the sender's credentials with every datagram, as systemd reads them */
	g_assert_true (g_socket_set_option (fixture->notify, SOL_SOCKET, SO_PASSCRED, 1, &error));
	g_assert_no_error (error);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	if (fixture->daemon != NULL) {
		g_subprocess_force_exit (fixture->daemon);
		g_subprocess_wait (fixture->daemon, NULL, NULL);
		g_clear_object (&fixture->daemon);
	}
	g_clear_object (&fixture->notify);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->notify_path);
	g_free (fixture->log);
	g_free (fixture->config);
	g_free (fixture->dir);
}

/* Starts the daemon; @watchdog_pid: "self" for its own pid (through the
 * shell it is exec'd from: the same process), else that value. */
static void
start_daemon (Fixture *fixture, const char *watchdog_usec, const char *watchdog_pid)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
	g_autoptr(GError) error = NULL;
	g_autofree char *script = g_strdup_printf ("WATCHDOG_PID=%s; export WATCHDOG_PID; exec \"$0\" \"$@\"",
						   g_str_equal (watchdog_pid, "self") ? "$$" : watchdog_pid);

	g_subprocess_launcher_unsetenv (launcher, "STAGECOACH_CONFIG");
	g_subprocess_launcher_setenv (launcher, "NOTIFY_SOCKET", fixture->notify_path, TRUE);
	g_subprocess_launcher_setenv (launcher, "WATCHDOG_USEC", watchdog_usec, TRUE);
	g_subprocess_launcher_set_stdout_file_path (launcher, fixture->log);
	g_subprocess_launcher_set_child_setup (launcher, child_setup, GINT_TO_POINTER (getpid ()), NULL);
	fixture->daemon = g_subprocess_launcher_spawn (launcher, &error, "/bin/sh", "-c", script,
						       sc_test_binary (), "--config", fixture->config, "run", NULL);
	g_assert_no_error (error);
	fixture->pid = (GPid) g_ascii_strtoll (g_subprocess_get_identifier (fixture->daemon), NULL, 10);
}

static char *
daemon_log (Fixture *fixture)
{
	char *text = NULL;
	if (!g_file_get_contents (fixture->log, &text, NULL, NULL))
		text = g_strdup ("(no log)");
	return text;
}

/* The next notification, or NULL after @timeout_ms.  Every one must come
 * from the daemon's own process. (transfer full) */
static char *
next_notification (Fixture *fixture, guint timeout_ms)
{
	char buffer[4096];
	GInputVector vector = {buffer, sizeof buffer - 1};
	GSocketControlMessage **messages = NULL;
	int n_messages = 0;
	int flags = 0;
	gssize n;
	pid_t sender = -1;
	g_autoptr(GError) error = NULL;

	if (!g_socket_condition_timed_wait (fixture->notify, G_IO_IN, (gint64) timeout_ms * 1000, NULL, NULL))
		return NULL;
	n = g_socket_receive_message (fixture->notify, NULL, &vector, 1, &messages, &n_messages, &flags, NULL, &error);
	g_assert_no_error (error);
	g_assert_cmpint (n, >=, 0);
	buffer[n] = '\0';
	for (int i = 0; i < n_messages; i++) {
		if (G_IS_UNIX_CREDENTIALS_MESSAGE (messages[i])) {
			GCredentials *credentials =
			    g_unix_credentials_message_get_credentials (G_UNIX_CREDENTIALS_MESSAGE (messages[i]));
			sender = g_credentials_get_unix_pid (credentials, NULL);
		}
		g_object_unref (messages[i]);
	}
	g_free (messages);
	if (sender != fixture->pid)
		g_error ("notification \"%s\" from pid %d, not the daemon's %d", buffer, (int) sender, (int) fixture->pid);
	return g_strdup (buffer);
}

static gboolean
has_field (const char *notification, const char *field)
{
	g_auto(GStrv) lines = g_strsplit (notification, "\n", -1);

	for (guint i = 0; lines[i] != NULL; i++) {
		if (g_str_equal (lines[i], field) ||
		    (g_str_has_suffix (field, "=") && g_str_has_prefix (lines[i], field)))
			return TRUE;
	}
	return FALSE;
}

/* The value of FIELD= in @notification, or NULL. (transfer full) */
static char *
field_value (const char *notification, const char *field)
{
	g_auto(GStrv) lines = g_strsplit (notification, "\n", -1);
	g_autofree char *prefix = g_strconcat (field, "=", NULL);

	for (guint i = 0; lines[i] != NULL; i++) {
		if (g_str_has_prefix (lines[i], prefix))
			return g_strdup (lines[i] + strlen (prefix));
	}
	return NULL;
}

/* The next notification that is not a watchdog ping; fails after
 * @timeout_ms. (transfer full) */
static char *
next_state (Fixture *fixture, guint timeout_ms, guint *out_pings)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	for (;;) {
		gint64 left = deadline - g_get_monotonic_time ();
		g_autofree char *notification = left > 0 ? next_notification (fixture, left / 1000 + 1) : NULL;
		if (notification == NULL) {
			g_autofree char *log = daemon_log (fixture);
			g_error ("no notification within %u ms; daemon log:\n%s", timeout_ms, log);
		}
		if (g_str_equal (notification, "WATCHDOG=1")) {
			if (out_pings != NULL)
				(*out_pings)++;
			continue;
		}
		return g_steal_pointer (&notification);
	}
}

/* What a server on 127.0.0.1:@port says first after @request (nullable):
 * the first line. (transfer full) */
static char *
first_line (guint16 port, const char *request)
{
	g_autoptr(GSocketClient) client = g_socket_client_new ();
	g_autoptr(GSocketConnection) connection = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GDataInputStream) in = NULL;
	char *line;

	g_socket_client_set_timeout (client, 10);
	connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
	g_assert_no_error (error);
	if (request != NULL) {
		g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), request,
					   strlen (request), NULL, NULL, &error);
		g_assert_no_error (error);
	}
	in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
	line = g_data_input_stream_read_line (in, NULL, NULL, &error);
	g_assert_no_error (error);
	g_assert_nonnull (line);
	return line;
}

/* Whether this kernel has PR_SET_MDWE (Linux 6.3+): tried in a child, so
 * that this process keeps its own mappings. */
static gboolean
mdwe_supported (void)
{
	int status = 0;
	pid_t pid = fork ();

	if (pid == 0)
		_exit (prctl (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) == 0 ? 0 : 1);
	g_assert_cmpint (pid, >, 0);
	g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
	return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

static void
test_lifecycle (Fixture *fixture, gconstpointer data)
{
	g_autofree char *ready = NULL;
	g_autofree char *status = NULL;
	g_autofree char *banner = NULL;
	g_autofree char *http = NULL;
	g_autoptr(GError) error = NULL;
	guint pings = 0;
	gint64 since;

	if (!sc_systemd_available ()) {
		g_test_skip ("built without libsystemd (-Dlibsystemd=disabled)");
		return;
	}
	/* pings every 250 ms */
	start_daemon (fixture, "500000", "self");
	if (mdwe_supported ())
		g_test_message ("the daemon runs with PR_SET_MDWE (refuse-exec-gain), as MemoryDenyWriteExecute=yes");
	else
		g_test_message ("this kernel has no PR_SET_MDWE: the daemon runs without it");

	ready = next_state (fixture, 30000, &pings);
	g_assert_true (has_field (ready, "READY=1"));
	/* at READY=1 the doors are open and the admin server answers */
	banner = first_line (fixture->smtp_port, NULL);
	g_assert_true (g_str_has_prefix (banner, "220 "));
	http = first_line (fixture->admin_port, "GET /api/v1/status HTTP/1.0\r\n\r\n");
	g_assert_true (g_str_has_prefix (http, "HTTP/1.")); /* 401 without a token: it answers */
	status = field_value (ready, "STATUS");
	g_assert_nonnull (status);
	g_assert_true (g_str_has_prefix (status, "Running on spool "));
	g_test_message ("READY=1, STATUS=%s; SMTP: %s; admin: %s", status, banner, http);

	/* mail flows: a message handed over by inject goes through the
	 * pipeline (the workers, the spool, a stage) while systemd watches */
	{
		g_autofree char *id = sc_test_inject (fixture->config, "notify.example.org",
						      "From: a@example.org\nTo: list@notify.example.org\n"
						      "Message-ID: <systemd-1@example.org>\nSubject: notify\n\nbody\n");
		g_assert_true (sc_test_wait_count (fixture->config, "done", 1, 20000));
		g_test_message ("message %s done", id);
	}

	/* the watchdog: about every 250 ms, from the main loop; counted from
	 * now, after the pings that queued up meanwhile */
	for (;;) {
		g_autofree char *queued = next_notification (fixture, 0);
		if (queued == NULL)
			break;
		g_assert_cmpstr (queued, ==, "WATCHDOG=1");
	}
	since = g_get_monotonic_time ();
	pings = 0;
	while (g_get_monotonic_time () - since < 2 * G_USEC_PER_SEC) {
		g_autofree char *notification = next_notification (fixture, 1000);
		g_assert_nonnull (notification);
		g_assert_cmpstr (notification, ==, "WATCHDOG=1");
		pings++;
	}
	g_test_message ("%u WATCHDOG=1 in 2 s (WATCHDOG_USEC=500000)", pings);
	g_assert_cmpuint (pings, >=, 5);
	g_assert_cmpuint (pings, <=, 12);

	/* SIGHUP: RELOADING=1, then READY=1 */
	{
		g_autofree char *reloading = NULL;
		g_autofree char *again = NULL;
		g_autofree char *monotonic = NULL;

		g_subprocess_send_signal (fixture->daemon, SIGHUP);
		reloading = next_state (fixture, 10000, NULL);
		g_assert_true (has_field (reloading, "RELOADING=1"));
		monotonic = field_value (reloading, "MONOTONIC_USEC");
		g_assert_nonnull (monotonic);
		g_assert_cmpint (g_ascii_strtoll (monotonic, NULL, 10), >, 0);
		again = next_state (fixture, 10000, NULL);
		g_assert_true (has_field (again, "READY=1"));
		g_free (status);
		status = field_value (again, "STATUS");
		g_assert_true (g_str_has_prefix (status, "Running on spool "));
	}

	/* a new configuration with errors: still RELOADING=1 then READY=1 (the
	 * old one runs on), and the status says so */
	{
		g_autofree char *reloading = NULL;
		g_autofree char *again = NULL;
		g_autofree char *failed = NULL;

		write_config (fixture, TRUE);
		g_subprocess_send_signal (fixture->daemon, SIGHUP);
		reloading = next_state (fixture, 10000, NULL);
		g_assert_true (has_field (reloading, "RELOADING=1"));
		again = next_state (fixture, 10000, NULL);
		g_assert_true (has_field (again, "READY=1"));
		failed = field_value (again, "STATUS");
		g_assert_nonnull (strstr (failed, "reload failed"));
		g_free (banner);
		banner = first_line (fixture->smtp_port, NULL);
		g_assert_true (g_str_has_prefix (banner, "220 "));
		write_config (fixture, FALSE);
	}

	/* SIGTERM: STOPPING=1, then a clean exit */
	{
		g_autofree char *stopping = NULL;

		g_subprocess_send_signal (fixture->daemon, SIGTERM);
		stopping = next_state (fixture, 10000, NULL);
		g_assert_true (has_field (stopping, "STOPPING=1"));
		g_assert_true (g_subprocess_wait (fixture->daemon, NULL, &error));
		g_assert_no_error (error);
		if (!g_subprocess_get_if_exited (fixture->daemon) || g_subprocess_get_exit_status (fixture->daemon) != 0) {
			g_autofree char *log = daemon_log (fixture);
			g_error ("the daemon did not exit 0 after SIGTERM; log:\n%s", log);
		}
		g_clear_object (&fixture->daemon);
	}
}

/* WATCHDOG_PID naming another process: the watchdog is not ours (systemd
 * passes it on to children only by mistake): no pings, READY=1 all the same. */
static void
test_watchdog_other_pid (Fixture *fixture, gconstpointer data)
{
	g_autofree char *ready = NULL;
	g_autofree char *more = NULL;
	guint pings = 0;

	if (!sc_systemd_available ()) {
		g_test_skip ("built without libsystemd (-Dlibsystemd=disabled)");
		return;
	}
	start_daemon (fixture, "200000", "1");
	ready = next_state (fixture, 30000, &pings);
	g_assert_true (has_field (ready, "READY=1"));
	g_assert_cmpuint (pings, ==, 0);
	more = next_notification (fixture, 1000);
	g_assert_null (more);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/systemd/notify/lifecycle", Fixture, NULL, setup, test_lifecycle, teardown);
	g_test_add ("/systemd/notify/watchdog-other-pid", Fixture, NULL, setup, test_watchdog_other_pid, teardown);
	return g_test_run ();
}
