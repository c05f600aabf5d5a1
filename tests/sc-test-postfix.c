/* sc-test-postfix.c — a private Postfix instance on 127.0.0.1 for SMTP delivery tests.
 *
 * Layout of the instance folder (a fresh /tmp/sc-postfix-XXXXXX, mode 0755 so
 * that the postfix user can reach its queue):
 *   etc/main.cf, etc/master.cf, etc/recipient_access, etc/cert.pem, etc/key.pem
 *   queue/   queue_directory (subfolders made by `postfix start` → post-install)
 *   data/    data_directory, owned by mail_owner (master.lock lives here)
 *   maillog  maillog_file: there is no syslog on the test machines
 *
 * Everything is per instance (port, queue, pid file, lock), so tests may run
 * several at once.  A watchdog shell in its own session stops the instance
 * if the test process dies before sc_test_postfix_free() (timeout, crash). */
#include "config.h"

#include "sc-test-postfix.h"
#include "sc-test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>

#define MAIL_OWNER "postfix"
#define SETGID_GROUP "postdrop"
#define START_ATTEMPTS 5
#define POLL_US (10 * 1000)

struct _ScTestPostfix {
	char *dir;        /* (owned) the instance folder */
	char *etc_dir;    /* (owned) dir/etc: config_directory, the MAIL_CONFIG of every process */
	char *queue_dir;  /* (owned) */
	char *log_path;   /* (owned) */
	char *cert_path;  /* (owned) (nullable) */
	char *postfix;    /* (owned) path of the postfix(1) command */
	guint16 port;
	GPid master_pid;
	GPid watchdog_pid; /* 0: none */
	int watchdog_fd;   /* write end of the watchdog's stdin; -1: none */
};

/* Queue folders that hold messages; bounce/, defer/, trace/ only hold logs. */
static const char *const message_queues[] = {
	"maildrop", "incoming", "active", "deferred", "hold", NULL,
};

/* The minimal master.cf: smtpd on the port and what delivery through smtp(8)
 * needs.  Column 5 (chroot) is "n" everywhere: the queue has no chroot tree. */
static const char master_services[] =
	"pickup    unix  n       -       n       60      1       pickup\n"
	"cleanup   unix  n       -       n       -       0       cleanup\n"
	"qmgr      unix  n       -       n       300     1       qmgr\n"
	"tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"
	"rewrite   unix  -       -       n       -       -       trivial-rewrite\n"
	"bounce    unix  -       -       n       -       0       bounce\n"
	"defer     unix  -       -       n       -       0       bounce\n"
	"trace     unix  -       -       n       -       0       bounce\n"
	"verify    unix  -       -       n       -       1       verify\n"
	"flush     unix  n       -       n       1000?   0       flush\n"
	"proxymap  unix  -       -       n       -       -       proxymap\n"
	"proxywrite unix -       -       n       -       1       proxymap\n"
	"smtp      unix  -       -       n       -       -       smtp\n"
	"relay     unix  -       -       n       -       -       smtp\n"
	"lmtp      unix  -       -       n       -       -       lmtp\n"
	"showq     unix  n       -       n       -       -       showq\n"
	"error     unix  -       -       n       -       -       error\n"
	"retry     unix  -       -       n       -       -       error\n"
	"discard   unix  -       -       n       -       -       discard\n"
	"anvil     unix  -       -       n       -       1       anvil\n"
	"scache    unix  -       -       n       -       1       scache\n"
	"postlog   unix-dgram n  -       n       -       1       postlogd\n";

static char *
find_program (const char *name)
{
	g_autofree char *sbin = g_build_filename ("/usr/sbin", name, NULL);
	char *path = g_find_program_in_path (name);

	if (path != NULL)
		return path;
	if (g_file_test (sbin, G_FILE_TEST_IS_EXECUTABLE))
		return g_steal_pointer (&sbin);
	return NULL;
}

/* Runs @argv to completion; on failure, @error carries its output. */
static gboolean
run_command (const char *const *argv, GError **error)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GError) local_error = NULL;
	int status = 0;

	if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
			   &out, &err, &status, error))
		return FALSE;
	if (!g_spawn_check_wait_status (status, &local_error)) {
		g_set_error (error, local_error->domain, local_error->code,
			     "%s: %s\n%s%s", argv[0], local_error->message, out, err);
		return FALSE;
	}
	return TRUE;
}

/* Postfix will not read a config file modified in the current second (it
 * waits for the clock to move on): date every file we write 5 s back. */
static void
write_config_file (const char *path, const char *contents)
{
	g_autoptr(GError) error = NULL;
	struct timespec times[2];

	g_file_set_contents (path, contents, -1, &error);
	g_assert_no_error (error);
	g_assert_no_errno (chmod (path, 0644));
	clock_gettime (CLOCK_REALTIME, &times[0]);
	times[0].tv_sec -= 5;
	times[1] = times[0];
	g_assert_no_errno (utimensat (AT_FDCWD, path, times, 0));
}

static char *
read_proc_file (const char *pid, const char *name, gsize *length)
{
	g_autofree char *path = g_build_filename ("/proc", pid, name, NULL);
	char *contents = NULL;

	if (!g_file_get_contents (path, &contents, length, NULL))
		return NULL;
	return contents;
}

/* Live (non-zombie) processes whose environment holds MAIL_CONFIG=@etc_dir:
 * postfix(1) exports it to postfix-script and master, and master passes it
 * on to every daemon (import_environment keeps it).  Children show no -c on
 * their command line, so the environment is the reliable mark. */
static GArray *
list_instance_pids (const char *etc_dir)
{
	GArray *pids = g_array_new (FALSE, FALSE, sizeof (GPid));
	g_autofree char *mark = g_strconcat ("MAIL_CONFIG=", etc_dir, NULL);
	g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
	const char *name;

	if (proc == NULL)
		return pids;
	while ((name = g_dir_read_name (proc)) != NULL) {
		g_autofree char *stat = NULL;
		g_autofree char *environ = NULL;
		const char *state;
		gsize length = 0;
		guint64 pid;

		if (!g_ascii_string_to_unsigned (name, 10, 1, G_MAXINT, &pid, NULL))
			continue;
		if ((GPid) pid == getpid ())
			continue;
		stat = read_proc_file (name, "stat", NULL);
		if (stat == NULL)
			continue;
		state = strrchr (stat, ')');
		if (state == NULL || state[1] != ' ' || state[2] == 'Z' || state[2] == 'X')
			continue;
		environ = read_proc_file (name, "environ", &length);
		if (environ == NULL)
			continue;
		for (gsize offset = 0; offset < length; offset += strlen (environ + offset) + 1) {
			if (g_strcmp0 (environ + offset, mark) == 0) {
				GPid found = (GPid) pid;
				g_array_append_val (pids, found);
				break;
			}
		}
	}
	return pids;
}

/* Waits up to @timeout_ms for the instance's processes to go away. */
static gboolean
wait_no_processes (const char *etc_dir, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	for (;;) {
		g_autoptr(GArray) pids = list_instance_pids (etc_dir);
		if (pids->len == 0)
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (POLL_US);
	}
}

/* `postfix abort`, then SIGKILL by PID whatever is left (a busy daemon, or
 * everything if master died and its children missed its group SIGTERM).
 * In postfix-script, stop and abort send master the same SIGTERM (master
 * passes it on to its process group); stop then polls `master -t` with
 * `sleep 1`, which costs a second whenever master is not gone at once, so
 * we poll /proc ourselves every 10 ms instead. */
static void
stop_instance (ScTestPostfix *self)
{
	const char *const stop_argv[] = {self->postfix, "-c", self->etc_dir, "abort", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(GArray) pids = NULL;

	if (!run_command (stop_argv, &error))
		g_test_message ("postfix abort: %s", error->message);
	if (wait_no_processes (self->etc_dir, 3000))
		return;
	pids = list_instance_pids (self->etc_dir);
	for (guint i = 0; i < pids->len; i++) {
		GPid pid = g_array_index (pids, GPid, i);
		g_test_message ("killing leftover postfix process %d", (int) pid);
		(void) kill (pid, SIGKILL);
	}
	if (!wait_no_processes (self->etc_dir, 2000))
		g_test_message ("postfix processes of %s survived SIGKILL", self->etc_dir);
}

static void
watchdog_setup (gpointer user_data)
{
	/* out of the test's process group: meson kills that group on timeout */
	(void) setsid ();
}

/* A shell that blocks reading our pipe: when the test process dies without
 * calling free(), EOF makes it stop the instance and remove the folder. */
static void
start_watchdog (ScTestPostfix *self)
{
	g_autofree char *script = g_strdup_printf ("read -r _ ; "
						   "\"$0\" -c \"$1\" stop ; "
						   "sleep 2 ; rm -rf \"$2\"");
	const char *const argv[] = {"/bin/sh", "-c", script, self->postfix, self->etc_dir, self->dir, NULL};
	g_autoptr(GError) error = NULL;

	if (!g_spawn_async_with_pipes (NULL, (char **) argv, NULL,
				       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
				       G_SPAWN_STDERR_TO_DEV_NULL,
				       watchdog_setup, NULL, &self->watchdog_pid,
				       &self->watchdog_fd, NULL, NULL, &error)) {
		g_test_message ("no postfix watchdog: %s", error->message);
		self->watchdog_pid = 0;
		self->watchdog_fd = -1;
	}
}

static void
stop_watchdog (ScTestPostfix *self)
{
	if (self->watchdog_pid > 0) {
		(void) kill (self->watchdog_pid, SIGKILL);
		(void) waitpid (self->watchdog_pid, NULL, 0);
		self->watchdog_pid = 0;
	}
	if (self->watchdog_fd >= 0) {
		close (self->watchdog_fd);
		self->watchdog_fd = -1;
	}
}

static char *
build_main_cf (ScTestPostfix *self, const ScTestPostfixOptions *options, gboolean with_access)
{
	GString *cf = g_string_new (NULL);
	gboolean tls = options->tls || options->tls_required;

	g_string_append (cf, "# private instance written by sc-test-postfix.c\n");
	g_string_append (cf, "compatibility_level = 3.6\n");
	g_string_append_printf (cf, "queue_directory = %s\n", self->queue_dir);
	g_string_append_printf (cf, "data_directory = %s/data\n", self->dir);
	g_string_append (cf, "mail_owner = " MAIL_OWNER "\n");
	g_string_append (cf, "setgid_group = " SETGID_GROUP "\n");
	g_string_append (cf, "inet_interfaces = 127.0.0.1\n");
	g_string_append (cf, "inet_protocols = ipv4\n");
	g_string_append (cf, "myhostname = stagecoach-test.localdomain\n");
	/* nothing is local: every domain is relayed (or discarded) */
	g_string_append (cf, "mydestination =\n");
	g_string_append (cf, "relay_domains =\n");
	g_string_append (cf, "mynetworks = 127.0.0.0/8\n");
	g_string_append (cf, "alias_maps =\n");
	g_string_append (cf, "alias_database =\n");
	if (options->transport != NULL)
		g_string_append_printf (cf, "default_transport = %s\n", options->transport);
	else if (options->relay_port != 0)
		g_string_append_printf (cf, "relayhost = [127.0.0.1]:%u\n", options->relay_port);
	else
		g_string_append (cf, "default_transport = discard:no relay in this test\n");
	g_string_append (cf, "smtp_dns_support_level = disabled\n");
	g_string_append (cf, "smtp_host_lookup = native\n");
	g_string_append (cf, "smtpd_peername_lookup = no\n");
	g_string_append (cf, "smtpd_banner = $myhostname ESMTP stagecoach-test\n");
	/* no tarpit after many refused RCPTs: tests refuse on purpose */
	g_string_append (cf, "smtpd_error_sleep_time = 0s\n");
	if (options->smtpd_timeout > 0)
		g_string_append_printf (cf, "smtpd_timeout = %us\n", options->smtpd_timeout);
	g_string_append (cf, "smtpd_recipient_restrictions =");
	if (with_access)
		g_string_append_printf (cf, " check_recipient_access texthash:%s/recipient_access,",
					self->etc_dir);
	g_string_append (cf, " permit_mynetworks, reject\n");
	g_string_append_printf (cf, "maillog_file = %s\n", self->log_path);
	g_string_append_printf (cf, "maillog_file_prefixes = %s\n", self->dir);
	if (tls) {
		g_string_append_printf (cf, "smtpd_tls_cert_file = %s\n", self->cert_path);
		g_string_append_printf (cf, "smtpd_tls_key_file = %s/key.pem\n", self->etc_dir);
		g_string_append_printf (cf, "smtpd_tls_security_level = %s\n",
					options->tls_required ? "encrypt" : "may");
	}
	return g_string_free (cf, FALSE);
}

static gboolean
make_certificate (ScTestPostfix *self, GError **error)
{
	g_autofree char *openssl = find_program ("openssl");
	g_autofree char *key_path = g_build_filename (self->etc_dir, "key.pem", NULL);
	const char *argv[] = {
		openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
		"-subj", "/CN=localhost",
		"-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
		"-keyout", key_path, "-out", self->cert_path, NULL,
	};

	if (openssl == NULL) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "openssl is not installed");
		return FALSE;
	}
	/* the key stays root-only: smtpd reads it before dropping privileges */
	return run_command (argv, error);
}

static GPid
read_master_pid (ScTestPostfix *self)
{
	g_autofree char *path = g_build_filename (self->queue_dir, "pid", "master.pid", NULL);
	g_autofree char *contents = NULL;
	guint64 pid = 0;

	if (!g_file_get_contents (path, &contents, NULL, NULL))
		return 0;
	if (!g_ascii_string_to_unsigned (g_strstrip (contents), 10, 1, G_MAXINT, &pid, NULL))
		return 0;
	return (GPid) pid;
}

/* Frees a half-started instance and skips the test with the reason and log. */
static ScTestPostfix *
skip_start (ScTestPostfix *self, const char *reason)
{
	if (self != NULL) {
		g_autofree char *log = sc_test_postfix_get_log (self);
		if (*log != '\0')
			g_test_message ("maillog of %s:\n%s", self->dir, log);
		sc_test_postfix_free (self);
	}
	g_test_skip (reason);
	return NULL;
}

ScTestPostfix *
sc_test_postfix_start (const ScTestPostfixOptions *options)
{
	static const ScTestPostfixOptions defaults = {0};
	g_autofree char *postfix = find_program ("postfix");
	g_autofree char *data_dir = NULL;
	g_autoptr(GError) error = NULL;
	struct passwd *owner;
	ScTestPostfix *self;
	gboolean with_access;

	if (options == NULL)
		options = &defaults;
	if (postfix == NULL)
		return skip_start (NULL, "postfix is not installed");
	if (geteuid () != 0)
		return skip_start (NULL, "a private postfix needs root");
	owner = getpwnam (MAIL_OWNER);
	if (owner == NULL || getgrnam (SETGID_GROUP) == NULL)
		return skip_start (NULL, "no " MAIL_OWNER " user or " SETGID_GROUP " group");

	self = g_new0 (ScTestPostfix, 1);
	self->watchdog_fd = -1;
	self->postfix = g_steal_pointer (&postfix);
	self->dir = sc_test_make_tmpdir ("sc-postfix");
	self->etc_dir = g_build_filename (self->dir, "etc", NULL);
	self->queue_dir = g_build_filename (self->dir, "queue", NULL);
	self->log_path = g_build_filename (self->dir, "maillog", NULL);
	data_dir = g_build_filename (self->dir, "data", NULL);
	/* the postfix user must traverse to its queue and data folders */
	g_assert_no_errno (chmod (self->dir, 0755));
	g_assert_no_errno (mkdir (self->etc_dir, 0755));
	g_assert_no_errno (mkdir (self->queue_dir, 0755));
	g_assert_no_errno (mkdir (data_dir, 0700));
	g_assert_no_errno (chown (data_dir, owner->pw_uid, owner->pw_gid));
	start_watchdog (self);

	if (options->tls || options->tls_required) {
		self->cert_path = g_build_filename (self->etc_dir, "cert.pem", NULL);
		if (!make_certificate (self, &error)) {
			g_test_message ("%s", error->message);
			return skip_start (self, "cannot make a self-signed certificate");
		}
	}

	with_access = options->access != NULL && options->access[0] != NULL;
	if (with_access) {
		g_autofree char *table = NULL;
		g_autofree char *path = g_build_filename (self->etc_dir, "recipient_access", NULL);
		table = g_strjoinv ("\n", (char **) options->access);
		write_config_file (path, table);
	}
	{
		g_autofree char *main_cf = build_main_cf (self, options, with_access);
		g_autofree char *path = g_build_filename (self->etc_dir, "main.cf", NULL);
		write_config_file (path, main_cf);
	}

	for (guint attempt = 1;; attempt++) {
		const char *const start_argv[] = {self->postfix, "-c", self->etc_dir, "start", NULL};
		g_autofree char *master_cf = NULL;
		g_autofree char *path = g_build_filename (self->etc_dir, "master.cf", NULL);
		g_autofree char *log = NULL;
		gsize log_offset = 0;

		log = sc_test_postfix_get_log (self);
		log_offset = strlen (log);
		g_clear_pointer (&log, g_free);
		/* free a moment ago: master may lose it to another process; retried on "in use" */
		self->port = sc_test_free_port ();
		master_cf = g_strdup_printf ("127.0.0.1:%u inet n - n - - smtpd\n%s",
					     self->port, master_services);
		write_config_file (path, master_cf);
		g_clear_error (&error);
		if (run_command (start_argv, &error)) {
			self->master_pid = read_master_pid (self);
			if (self->master_pid > 0)
				return self;
			return skip_start (self, "postfix started without a master.pid");
		}
		log = sc_test_postfix_get_log (self);
		if (attempt < START_ATTEMPTS &&
		    strstr (log + MIN (log_offset, strlen (log)), "Address already in use") != NULL) {
			/* lost the port to someone else: clean up and try another */
			stop_instance (self);
			continue;
		}
		g_test_message ("%s", error->message);
		return skip_start (self, "private postfix did not start");
	}
}

guint16
sc_test_postfix_get_port (ScTestPostfix *self)
{
	g_return_val_if_fail (self != NULL, 0);
	return self->port;
}

char *
sc_test_postfix_get_url (ScTestPostfix *self)
{
	g_return_val_if_fail (self != NULL, NULL);
	return g_strdup_printf ("smtp://127.0.0.1:%u", self->port);
}

const char *
sc_test_postfix_get_cert_path (ScTestPostfix *self)
{
	g_return_val_if_fail (self != NULL, NULL);
	return self->cert_path;
}

char *
sc_test_postfix_get_log (ScTestPostfix *self)
{
	char *contents = NULL;

	g_return_val_if_fail (self != NULL, NULL);
	if (!g_file_get_contents (self->log_path, &contents, NULL, NULL))
		return g_strdup ("");
	return contents;
}

const char *
sc_test_postfix_get_dir (ScTestPostfix *self)
{
	g_return_val_if_fail (self != NULL, NULL);
	return self->dir;
}

GPid
sc_test_postfix_get_master_pid (ScTestPostfix *self)
{
	g_return_val_if_fail (self != NULL, 0);
	return self->master_pid;
}

/* Regular files under @path, recursively (deferred/ and defer/ are hashed). */
static guint
count_files (const char *path)
{
	g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
	const char *name;
	guint count = 0;

	if (dir == NULL)
		return 0;
	while ((name = g_dir_read_name (dir)) != NULL) {
		g_autofree char *child = g_build_filename (path, name, NULL);
		if (g_file_test (child, G_FILE_TEST_IS_DIR))
			count += count_files (child);
		else
			count++;
	}
	return count;
}

gboolean
sc_test_postfix_wait_queue_empty (ScTestPostfix *self, guint timeout_ms)
{
	gint64 deadline;

	g_return_val_if_fail (self != NULL, FALSE);
	deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
	for (;;) {
		guint queued = 0;

		for (guint i = 0; message_queues[i] != NULL; i++) {
			g_autofree char *path = g_build_filename (self->queue_dir, message_queues[i], NULL);
			queued += count_files (path);
		}
		if (queued == 0)
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (POLL_US);
	}
}

void
sc_test_postfix_free (ScTestPostfix *self)
{
	if (self == NULL)
		return;
	stop_watchdog (self);
	stop_instance (self);
	sc_test_remove_tree (self->dir);
	g_free (self->dir);
	g_free (self->etc_dir);
	g_free (self->queue_dir);
	g_free (self->log_path);
	g_free (self->cert_path);
	g_free (self->postfix);
	g_free (self);
}
