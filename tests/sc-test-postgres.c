/* sc-test-postgres.c — a private PostgreSQL server for the PostgreSQL spool tests.
 *
 * Layout of the instance folder (a fresh $TMPDIR/sc-postgres-XXXXXX, 0755,
 * owned by the user the server runs as):
 *   data/           the cluster (initdb), 0700
 *   postgres.log    the server's stderr, appended to across restarts
 *   .s.PGSQL.PORT   the unix socket (unix_socket_directories = the folder)
 *
 * postgres is spawned directly, not through pg_ctl's daemonizing start, so
 * the postmaster is our child: its PID is known without reading
 * postmaster.pid, waitpid() says when it is gone, and it stays in the
 * test's process group, which meson kills on a timeout.  PR_SET_PDEATHSIG
 * sends it SIGQUIT (immediate shutdown) if the test dies first, and a
 * watchdog shell then removes the folder.
 *
 * initdb and postgres refuse to run as root: as root they run as the
 * "postgres" user (Debian's package creates it), else "nobody", switched to
 * with setgroups/setgid/setuid in the spawn's child setup (runuser would
 * fork and stand between us and the postmaster's PID).
 *
 * Nothing is global but the binaries' location: each start has its own
 * folder, port and socket, so test binaries may run it in parallel. */
#include "config.h"

#include "sc-test-postgres.h"
#include "sc-test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#ifdef HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#define SUPERUSER "stagecoach"
#define READY_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define SHUTDOWN_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define QUIT_TIMEOUT_US (5 * G_USEC_PER_SEC)
#define POLL_US (20 * 1000)
#define START_ATTEMPTS 3
#define LOG_TAIL_BYTES 3000

struct _ScTestPostgres {
	char *dir;      /* (owned) the instance folder */
	char *data_dir; /* (owned) dir/data */
	char *log_path; /* (owned) dir/postgres.log */
	guint16 port;
	GPid pid; /* the postmaster; 0: not running */
	gboolean drop; /* run the server as uid/gid (we are root) */
	uid_t uid;
	gid_t gid;
	GPid watchdog_pid; /* 0: none */
	int watchdog_fd;   /* write end of the watchdog's stdin; -1: none */
};

typedef struct {
	gboolean drop;
	uid_t uid;
	gid_t gid;
	pid_t parent;
	int deathsig; /* 0: none */
} ChildSetup;

typedef struct {
	char *bindir; /* (nullable) */
	guint major;
	char *why_not; /* (nullable) */
} Binaries;

static gboolean
has_server_binaries (const char *dir)
{
	static const char *const names[] = {"initdb", "postgres", NULL};

	for (guint i = 0; names[i] != NULL; i++) {
		g_autofree char *path = g_build_filename (dir, names[i], NULL);
		if (!g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
			return FALSE;
	}
	return TRUE;
}

static char *
bindir_from_pg_config (void)
{
	const char *const argv[] = {"pg_config", "--bindir", NULL};
	g_autofree char *out = NULL;
	int status = 0;

	if (!g_spawn_sync (NULL, (char **) argv, NULL,
			   G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL,
			   &status, NULL) ||
	    !g_spawn_check_wait_status (status, NULL))
		return NULL;
	g_strstrip (out);
	return has_server_binaries (out) ? g_steal_pointer (&out) : NULL;
}

/* The newest /usr/lib/postgresql/N/bin (Debian installs majors side by side). */
static char *
bindir_from_debian_layout (void)
{
	g_autoptr(GDir) dir = g_dir_open ("/usr/lib/postgresql", 0, NULL);
	char *best = NULL;
	double best_version = 0;
	const char *name;

	if (dir == NULL)
		return NULL;
	while ((name = g_dir_read_name (dir)) != NULL) {
		double version = g_ascii_strtod (name, NULL);
		g_autofree char *bin = g_build_filename ("/usr/lib/postgresql", name, "bin", NULL);
		if (version > best_version && has_server_binaries (bin)) {
			g_free (best);
			best = g_steal_pointer (&bin);
			best_version = version;
		}
	}
	return best;
}

/* "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15 */
static guint
major_of (const char *bindir)
{
	g_autofree char *postgres = g_build_filename (bindir, "postgres", NULL);
	const char *const argv[] = {postgres, "--version", NULL};
	g_autofree char *out = NULL;
	const char *number;
	int status = 0;

	if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
			   NULL, &status, NULL) ||
	    !g_spawn_check_wait_status (status, NULL))
		return 0;
	number = strstr (out, ") ");
	return number != NULL ? (guint) g_ascii_strtoull (number + 2, NULL, 10) : 0;
}

static gpointer
find_binaries (gpointer unused)
{
	Binaries *found = g_new0 (Binaries, 1);
	const char *override = g_getenv ("SC_TEST_PG_BINDIR");

#ifndef HAVE_LIBPQ
	found->why_not = g_strdup ("built without libpq (install libpq-dev: scripts/deps.sh, "
				   "install_deps build)");
	return found;
#endif
	if (override != NULL && *override != '\0') {
		if (has_server_binaries (override))
			found->bindir = g_strdup (override);
		else
			found->why_not = g_strdup_printf (
			    "SC_TEST_PG_BINDIR=%s has no initdb and postgres", override);
	} else {
		found->bindir = bindir_from_pg_config ();
		if (found->bindir == NULL)
			found->bindir = bindir_from_debian_layout ();
		if (found->bindir == NULL)
			found->why_not =
			    g_strdup ("no PostgreSQL server binaries (initdb, postgres) from "
				      "pg_config --bindir or in /usr/lib/postgresql/*/bin: install "
				      "postgresql-15 (scripts/deps.sh, install_deps test) or set "
				      "SC_TEST_PG_BINDIR");
	}
	if (found->bindir != NULL) {
		found->major = major_of (found->bindir);
		if (found->major == 0) {
			found->why_not = g_strdup_printf ("%s/postgres --version did not run",
							  found->bindir);
			g_clear_pointer (&found->bindir, g_free);
		}
	}
	return found;
}

static const Binaries *
binaries (void)
{
	static GOnce once = G_ONCE_INIT;

	return g_once (&once, find_binaries, NULL);
}

gboolean
sc_test_postgres_available (void)
{
	return binaries ()->bindir != NULL;
}

const char *
sc_test_postgres_why_unavailable (void)
{
	return binaries ()->why_not;
}

const char *
sc_test_postgres_get_bindir (void)
{
	return binaries ()->bindir;
}

guint
sc_test_postgres_get_major (void)
{
	return binaries ()->major;
}

/* Runs between fork and exec: async-signal-safe calls only. */
static void
child_setup (gpointer user_data)
{
	const ChildSetup *setup = user_data;

	if (setup->drop && (setgroups (0, NULL) != 0 || setgid (setup->gid) != 0 ||
			    setuid (setup->uid) != 0))
		_exit (126);
	/* after setuid: a credential change clears the parent-death signal */
	if (setup->deathsig != 0 &&
	    (prctl (PR_SET_PDEATHSIG, setup->deathsig) != 0 || getppid () != setup->parent))
		_exit (126);
}

static ChildSetup
child_setup_for (ScTestPostgres *self, int deathsig)
{
	return (ChildSetup){
	    .drop = self->drop,
	    .uid = self->uid,
	    .gid = self->gid,
	    .parent = getpid (),
	    .deathsig = deathsig,
	};
}

/* Our environment without PG* variables (PGDATA, PGPORT, PGHOST… would
 * point the tools elsewhere), in the C locale. */
static char **
server_environ (void)
{
	char **env = g_get_environ ();
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);

	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix (env[i], "PG"))
			g_ptr_array_add (names, g_strndup (env[i], strcspn (env[i], "=")));
	}
	for (guint i = 0; i < names->len; i++)
		env = g_environ_unsetenv (env, names->pdata[i]);
	env = g_environ_setenv (env, "LC_ALL", "C", TRUE);
	env = g_environ_setenv (env, "LANG", "C", TRUE);
	return env;
}

/* Waits up to @timeout_us for @pid to exit and reaps it. */
static gboolean
wait_exit (GPid pid, gint64 timeout_us)
{
	gint64 deadline = g_get_monotonic_time () + timeout_us;

	for (;;) {
		pid_t reaped = waitpid (pid, NULL, WNOHANG);
		if (reaped == pid || (reaped < 0 && errno == ECHILD))
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (POLL_US);
	}
}

/* SIGKILL for @parent's children (the backends of a postmaster that would
 * not stop), found by their parent PID in /proc/N/stat. */
static void
kill_children (GPid parent)
{
	g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
	const char *name;

	while (proc != NULL && (name = g_dir_read_name (proc)) != NULL) {
		g_autofree char *path = g_build_filename ("/proc", name, "stat", NULL);
		g_autofree char *stat = NULL;
		const char *after_comm;
		long ppid = 0;
		char state;

		if (!g_ascii_isdigit (name[0]) || !g_file_get_contents (path, &stat, NULL, NULL))
			continue;
		/* "PID (COMM) STATE PPID …"; COMM may hold spaces and parentheses */
		after_comm = strrchr (stat, ')');
		if (after_comm != NULL && sscanf (after_comm + 1, " %c %ld", &state, &ppid) == 2 &&
		    ppid == parent)
			(void) kill ((pid_t) g_ascii_strtoll (name, NULL, 10), SIGKILL);
	}
}

/* @first: SIGINT (fast shutdown) or SIGQUIT (immediate).  SIGTERM would be
 * a smart shutdown, which waits for every client to disconnect. */
static void
stop_server (ScTestPostgres *self, int first)
{
	if (self->pid <= 0)
		return;
	if (kill (self->pid, first) != 0 || !wait_exit (self->pid, SHUTDOWN_TIMEOUT_US)) {
		g_test_message ("postgres %d did not stop on signal %d", (int) self->pid, first);
		if (first == SIGQUIT || kill (self->pid, SIGQUIT) != 0 ||
		    !wait_exit (self->pid, QUIT_TIMEOUT_US)) {
			kill_children (self->pid);
			(void) kill (self->pid, SIGKILL);
			(void) wait_exit (self->pid, SHUTDOWN_TIMEOUT_US);
		}
	}
	self->pid = 0;
}

static void
watchdog_setup (gpointer user_data)
{
	/* out of the test's process group: meson kills that group on timeout */
	(void) setsid ();
}

/* A shell that blocks reading our pipe: when this process exits without
 * closing it first, EOF makes it remove @dir after @delay seconds (time
 * for a postmaster, SIGQUIT by PR_SET_PDEATHSIG, to go).  *@pid_out and
 * *@fd_out: -1/0 when it could not start (the folder may then be left). */
static void
start_watchdog (const char *dir, guint delay, GPid *pid_out, int *fd_out)
{
	g_autofree char *script = g_strdup_printf ("read -r _ ; sleep %u ; rm -rf \"$0\"", delay);
	const char *const argv[] = {"/bin/sh", "-c", script, dir, NULL};
	g_autoptr(GError) error = NULL;

	if (!g_spawn_async_with_pipes (NULL, (char **) argv, NULL,
				       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
					   G_SPAWN_STDERR_TO_DEV_NULL,
				       watchdog_setup, NULL, pid_out, fd_out, NULL, NULL, &error)) {
		g_test_message ("no watchdog for %s: %s", dir, error->message);
		*pid_out = 0;
		*fd_out = -1;
	}
}

static void
stop_watchdog (ScTestPostgres *self)
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

#ifdef HAVE_LIBPQ

static char *
log_tail (const char *path)
{
	g_autofree char *contents = NULL;
	gsize length = 0;

	if (!g_file_get_contents (path, &contents, &length, NULL))
		return g_strdup ("(no server log)");
	if (length > LOG_TAIL_BYTES)
		return g_strdup_printf ("…%s", contents + length - LOG_TAIL_BYTES);
	return g_steal_pointer (&contents);
}

static PGconn *
connect_to (ScTestPostgres *self, const char *dbname, GError **error)
{
	g_autofree char *conninfo = sc_test_postgres_get_conninfo (self, dbname);
	PGconn *conn = PQconnectdb (conninfo);

	if (PQstatus (conn) != CONNECTION_OK) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "connecting to %s: %s", conninfo,
			     PQerrorMessage (conn));
		PQfinish (conn);
		return NULL;
	}
	return conn;
}

/* Until a libpq connection succeeds, the postmaster exits, or the deadline. */
static gboolean
wait_ready (ScTestPostgres *self, gboolean *exited, GError **error)
{
	gint64 deadline = g_get_monotonic_time () + READY_TIMEOUT_US;
	g_autoptr(GError) last = NULL;

	*exited = FALSE;
	for (;;) {
		PGconn *conn;
		int status;

		if (waitpid (self->pid, &status, WNOHANG) == self->pid) {
			g_autofree char *tail = log_tail (self->log_path);
			self->pid = 0;
			*exited = TRUE;
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
				     "postgres exited (status %d) before accepting connections; "
				     "%s:\n%s",
				     status, self->log_path, tail);
			return FALSE;
		}
		g_clear_error (&last);
		conn = connect_to (self, "postgres", &last);
		if (conn != NULL) {
			PQfinish (conn);
			return TRUE;
		}
		if (g_get_monotonic_time () >= deadline) {
			g_autofree char *tail = log_tail (self->log_path);
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
				     "postgres did not accept a connection within %d s (%s); "
				     "%s:\n%s",
				     (int) (READY_TIMEOUT_US / G_USEC_PER_SEC), last->message,
				     self->log_path, tail);
			return FALSE;
		}
		g_usleep (POLL_US);
	}
}

#endif

/* Spawns the postmaster on self->port and waits until it accepts a
 * connection.  *@exited: it exited by itself (e.g. the port was taken). */
static gboolean
spawn_server (ScTestPostgres *self, gboolean *exited, GError **error)
{
#ifdef HAVE_LIBPQ
	g_autofree char *postgres =
	    g_build_filename (sc_test_postgres_get_bindir (), "postgres", NULL);
	g_autofree char *port = g_strdup_printf ("%u", self->port);
	g_autofree char *sockets = g_strdup_printf ("unix_socket_directories=%s", self->dir);
	g_auto(GStrv) env = server_environ ();
	const char *const argv[] = {
		postgres, "-D", self->data_dir, "-p", port,
		"-c", "listen_addresses=127.0.0.1",
		"-c", sockets,
		/* the spool's durability is under test */
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
		"-c", "max_connections=50",
		"-c", "shared_buffers=16MB",
		"-c", "logging_collector=off", "-c", "log_destination=stderr",
		"-c", "log_line_prefix=%m [%p] ",
		NULL,
	};
	ChildSetup setup = child_setup_for (self, SIGQUIT);
	int log_fd;
	gboolean spawned;

	*exited = FALSE;
	log_fd = open (self->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s",
			     self->log_path, g_strerror (saved));
		return FALSE;
	}
	spawned = g_spawn_async_with_pipes_and_fds (self->dir, argv, (const char *const *) env,
						    G_SPAWN_DO_NOT_REAP_CHILD |
							G_SPAWN_STDIN_FROM_DEV_NULL,
						    child_setup, &setup, -1, log_fd, log_fd, NULL,
						    NULL, 0, &self->pid, NULL, NULL, NULL, error);
	close (log_fd);
	if (!spawned) {
		self->pid = 0;
		return FALSE;
	}
	if (!wait_ready (self, exited, error)) {
		stop_server (self, SIGQUIT);
		return FALSE;
	}
	return TRUE;
#else
	g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			     sc_test_postgres_why_unavailable ());
	return FALSE;
#endif
}

static gboolean
run_initdb (ScTestPostgres *self, const char *cwd, const char *data_dir, GError **error)
{
	g_autofree char *initdb = g_build_filename (sc_test_postgres_get_bindir (), "initdb", NULL);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_auto(GStrv) env = server_environ ();
	const char *const argv[] = {
		initdb, "-D", data_dir, "-U", SUPERUSER,
		/* only 127.0.0.1 and the socket in our folder are listened on */
		"-A", "trust", "-E", "UTF8", "--locale=C",
		/* the cluster is thrown away if initdb is interrupted */
		"--no-sync",
		NULL,
	};
	ChildSetup setup = child_setup_for (self, SIGKILL);
	int status = 0;

	if (!g_spawn_sync (cwd, (char **) argv, env, 0, child_setup, &setup, &out, &err, &status,
			   error))
		return FALSE;
	if (!g_spawn_check_wait_status (status, NULL)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
			     "initdb failed (status %d): %s%s", status, out, err);
		return FALSE;
	}
	return TRUE;
}

/* initdb takes ~1.2 s here, a copy of its result ~0.1 s: the first start in
 * a process initdbs a template folder (removed by its watchdog when the
 * process exits), every start copies it. */
G_LOCK_DEFINE_STATIC (template);
static char *template_data_dir;

static const char *
template_cluster (ScTestPostgres *self, GError **error)
{
	const char *result = NULL;

	G_LOCK (template);
	if (template_data_dir == NULL) {
		g_autofree char *dir = g_dir_make_tmp ("sc-postgres-template-XXXXXX", error);
		g_autofree char *data_dir = NULL;
		GPid watchdog_pid = 0;
		int watchdog_fd = -1;

		if (dir == NULL)
			goto out;
		/* never stopped: its pipe closes when this process exits */
		start_watchdog (dir, 0, &watchdog_pid, &watchdog_fd);
		data_dir = g_build_filename (dir, "data", NULL);
		if (self->drop && chown (dir, self->uid, self->gid) != 0) {
			int saved = errno;
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
				     "chown %s: %s", dir, g_strerror (saved));
			goto out;
		}
		if (!run_initdb (self, dir, data_dir, error))
			goto out;
		template_data_dir = g_steal_pointer (&data_dir);
	}
	result = template_data_dir;
out:
	G_UNLOCK (template);
	return result;
}

/* self->data_dir: a copy of the template cluster, owned by the server's user. */
static gboolean
make_cluster (ScTestPostgres *self, GError **error)
{
	const char *template = template_cluster (self, error);
	const char *argv[] = {"cp", "-a", template, self->data_dir, NULL};
	ChildSetup setup = child_setup_for (self, SIGKILL);
	g_autofree char *err = NULL;
	int status = 0;

	if (template == NULL)
		return FALSE;
	if (!g_spawn_sync (self->dir, (char **) argv, NULL,
			   G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, child_setup, &setup,
			   NULL, &err, &status, error))
		return FALSE;
	if (!g_spawn_check_wait_status (status, NULL)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "copying %s: %s", template, err);
		return FALSE;
	}
	return TRUE;
}

/* As root: the user the server runs as, and the folder made its own. */
static gboolean
choose_user (ScTestPostgres *self, GError **error)
{
	static const char *const candidates[] = {"postgres", "nobody", NULL};

	if (geteuid () != 0)
		return TRUE;
	for (guint i = 0; candidates[i] != NULL; i++) {
		struct passwd *pw = getpwnam (candidates[i]);
		if (pw != NULL && pw->pw_uid != 0) {
			self->drop = TRUE;
			self->uid = pw->pw_uid;
			self->gid = pw->pw_gid;
			break;
		}
	}
	if (!self->drop) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				     "running as root and there is no \"postgres\" or \"nobody\" "
				     "user to run initdb and postgres as");
		return FALSE;
	}
	if (chown (self->dir, self->uid, self->gid) != 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "chown %s: %s",
			     self->dir, g_strerror (saved));
		return FALSE;
	}
	return TRUE;
}

ScTestPostgres *
sc_test_postgres_start (GError **error)
{
	g_autoptr(ScTestPostgres) self = NULL;
	g_autofree char *socket = NULL;
	gboolean exited = FALSE;

	if (!sc_test_postgres_available ()) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
				     sc_test_postgres_why_unavailable ());
		return NULL;
	}
	self = g_new0 (ScTestPostgres, 1);
	self->watchdog_fd = -1;
	self->dir = g_dir_make_tmp ("sc-postgres-XXXXXX", error);
	if (self->dir == NULL)
		return NULL;
	start_watchdog (self->dir, 5, &self->watchdog_pid, &self->watchdog_fd);
	self->data_dir = g_build_filename (self->dir, "data", NULL);
	self->log_path = g_build_filename (self->dir, "postgres.log", NULL);
	socket = g_strdup_printf ("%s/.s.PGSQL.65535", self->dir);
	if (strlen (socket) >= sizeof (((struct sockaddr_un *) NULL)->sun_path)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
			     "%s is too long for a unix socket path: "
			     "set TMPDIR to a shorter folder",
			     socket);
		return NULL;
	}
	/* reachable by the test (and runners) when the server runs as another user */
	if (g_chmod (self->dir, 0755) != 0 || !choose_user (self, error))
		return NULL;
	if (!make_cluster (self, error))
		return NULL;
	/* the port was free a moment ago; another test may take it before we bind */
	for (guint attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
		g_autoptr(GError) local = NULL;

		self->port = sc_test_free_port ();
		if (spawn_server (self, &exited, &local))
			return g_steal_pointer (&self);
		if (!exited || attempt == START_ATTEMPTS) {
			g_propagate_error (error, g_steal_pointer (&local));
			return NULL;
		}
		g_test_message ("postgres on port %u: %s; trying another port", self->port,
				local->message);
	}
	g_assert_not_reached ();
}

guint16
sc_test_postgres_get_port (ScTestPostgres *pg)
{
	return pg->port;
}

const char *
sc_test_postgres_get_dir (ScTestPostgres *pg)
{
	return pg->dir;
}

GPid
sc_test_postgres_get_pid (ScTestPostgres *pg)
{
	return pg->pid;
}

char *
sc_test_postgres_get_uri (ScTestPostgres *pg, const char *dbname)
{
	g_autofree char *escaped = g_uri_escape_string (dbname, NULL, FALSE);

	return g_strdup_printf ("postgresql://" SUPERUSER "@127.0.0.1:%u/%s", pg->port, escaped);
}

/* A conninfo value in single quotes, with \ and ' escaped. */
static void
append_quoted (GString *out, const char *value)
{
	g_string_append_c (out, '\'');
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\' || *p == '\'')
			g_string_append_c (out, '\\');
		g_string_append_c (out, *p);
	}
	g_string_append_c (out, '\'');
}

char *
sc_test_postgres_get_conninfo (ScTestPostgres *pg, const char *dbname)
{
	GString *out = g_string_new ("host=");

	append_quoted (out, pg->dir);
	g_string_append_printf (out, " port=%u user=" SUPERUSER " dbname=", pg->port);
	append_quoted (out, dbname);
	return g_string_free (out, FALSE);
}

char *
sc_test_postgres_get_log (ScTestPostgres *pg)
{
	char *contents = NULL;

	if (!g_file_get_contents (pg->log_path, &contents, NULL, NULL))
		return g_strdup ("");
	return contents;
}

gboolean
sc_test_postgres_create_database (ScTestPostgres *pg, const char *name, GError **error)
{
#ifdef HAVE_LIBPQ
	PGconn *conn = connect_to (pg, "postgres", error);
	g_autofree char *sql = NULL;
	PGresult *result;
	char *quoted;
	gboolean ok;

	if (conn == NULL)
		return FALSE;
	/* an identifier cannot be a statement parameter */
	quoted = PQescapeIdentifier (conn, name, strlen (name));
	if (quoted == NULL) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "database name %s: %s",
			     name, PQerrorMessage (conn));
		PQfinish (conn);
		return FALSE;
	}
	sql = g_strdup_printf ("CREATE DATABASE %s", quoted);
	PQfreemem (quoted);
	result = PQexec (conn, sql);
	ok = PQresultStatus (result) == PGRES_COMMAND_OK;
	if (!ok)
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", sql,
			     PQresultErrorMessage (result));
	PQclear (result);
	PQfinish (conn);
	return ok;
#else
	g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			     sc_test_postgres_why_unavailable ());
	return FALSE;
#endif
}

int
sc_test_postgres_terminate_backends (ScTestPostgres *pg, const char *dbname,
				     const char *application_name, GError **error)
{
#ifdef HAVE_LIBPQ
	/* the targets first (MATERIALIZED): the planner may not evaluate the
	 * terminating call before the filters; 10 s: wait until each is gone */
	static const char sql[] =
		"WITH targets AS MATERIALIZED ("
		"  SELECT pid FROM pg_stat_activity"
		"  WHERE datname = $1 AND pid <> pg_backend_pid()"
		"    AND ($2::text IS NULL OR application_name = $2::text))"
		" SELECT count(*) FROM targets WHERE pg_terminate_backend(pid, 10000)";
	const char *const params[] = {dbname, application_name};
	PGconn *conn = connect_to (pg, "postgres", error);
	PGresult *result;
	int count = -1;

	if (conn == NULL)
		return -1;
	result = PQexecParams (conn, sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus (result) == PGRES_TUPLES_OK && PQntuples (result) == 1)
		count = (int) g_ascii_strtoll (PQgetvalue (result, 0, 0), NULL, 10);
	else
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "terminating backends on %s: %s",
			     dbname, PQresultErrorMessage (result));
	PQclear (result);
	PQfinish (conn);
	return count;
#else
	g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			     sc_test_postgres_why_unavailable ());
	return -1;
#endif
}

static gboolean
restart (ScTestPostgres *pg, int how, GError **error)
{
	gboolean exited = FALSE;

	stop_server (pg, how);
	return spawn_server (pg, &exited, error);
}

gboolean
sc_test_postgres_restart (ScTestPostgres *pg, GError **error)
{
	return restart (pg, SIGINT, error);
}

gboolean
sc_test_postgres_restart_immediate (ScTestPostgres *pg, GError **error)
{
	return restart (pg, SIGQUIT, error);
}

void
sc_test_postgres_stop (ScTestPostgres *pg)
{
	if (pg == NULL)
		return;
	stop_server (pg, SIGINT);
	stop_watchdog (pg);
	if (pg->dir != NULL)
		sc_test_remove_tree (pg->dir);
	g_free (pg->dir);
	g_free (pg->data_dir);
	g_free (pg->log_path);
	g_free (pg);
}
