/* test-faults.c — the fault matrix (issue 7): one test per fault, each
 * through a running `stagecoach run` against real servers (smtp-sink with
 * its fault options, a small tmpfs, a sqlite3 write lock, libfaketime).
 * Each asserts the user-visible promise: the message is never lost (done,
 * or deferred/dead with a clear last error in `show`), never delivered
 * twice beyond the documented one-transaction window, and the daemon keeps
 * running (and exits 0 on SIGTERM).  Rows covered by existing tests are
 * listed in tests/reliability/README.md instead of repeated here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include "rel-util.h"
#include "sc-test-sink.h"
#include "sc-test-util.h"

#define LIST "test.example.org"
#define WAIT_MS 30000
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"

static const char *const rcpts[] = {"a@one.example", "b@one.example", "c@two.example", NULL};

static const char *message_text = "From: Alice <alice@example.org>\r\n"
				  "To: test@example.org\r\n"
				  "Subject: fault matrix\r\n"
				  "Message-ID: <fault%u@example.org>\r\n"
				  "\r\n"
				  "Hello, list.\r\n";

typedef struct {
	char *dir;
	char *config;
	char *log;
	char *mount_point; /* a tmpfs, when mounted */
	ScTestSink *sink;
	RelDaemon *daemon;
} Fixture;

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-faults");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->log = g_build_filename (fixture->dir, "run.log", NULL);
	g_free (sc_test_write_file (fixture->dir, "footer.txt", "-- \nfooter of $list_name\n"));
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->daemon, rel_daemon_free);
	g_clear_pointer (&fixture->sink, sc_test_sink_free);
	if (fixture->mount_point != NULL) {
		/* a failed test must not leave its tmpfs mounted */
		const char *argv[] = {"umount", "-l", fixture->mount_point, NULL};
		(void) g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
				     NULL, NULL);
		g_free (fixture->mount_point);
	}
	if (g_test_failed () && g_file_get_contents (fixture->log, NULL, NULL, NULL)) {
		g_autofree char *text = NULL;
		g_file_get_contents (fixture->log, &text, NULL, NULL);
		g_test_message ("daemon log:\n%s", text);
	}
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->log);
	g_unsetenv ("LD_PRELOAD");
}

/* @pipeline with @extra sections; the mailer is the fixture's sink. */
static void
write_config (Fixture *fixture, const char *pipeline, const char *stagecoach_extra, const char *extra)
{
	g_autofree char *url = sc_test_sink_get_url (fixture->sink);
	g_autofree char *mailer = rel_mailer_section ("sink", url, "timeout=2s\n");
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "workers=2\n"
						 "lease=5s\n"
						 "rescan=1s\n"
						 "%s"
						 "[retry]\n"
						 "initial=1s\n"
						 "max-delay=2s\n"
						 "jitter=0\n"
						 "[admin]\n"
						 "listen=\n"
						 "[deliver]\n"
						 "circuit-cooldown=1s\n"
						 "%s"
						 "[list:" LIST "]\n"
						 "pipeline=%s\n"
						 "subject-prefix=[test]\n"
						 "footer=footer.txt\n"
						 "archive=maildir:archive\n"
						 "bounces=bounces@test.example.org\n"
						 "%s",
						 stagecoach_extra != NULL ? stagecoach_extra : "", mailer,
						 pipeline, extra != NULL ? extra : "");
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
}

/* Replaces the first @old in the configuration file by @new. */
static void
config_replace (Fixture *fixture, const char *old, const char *new)
{
	g_autofree char *text = NULL;
	g_autofree char *patched = NULL;
	g_auto(GStrv) parts = NULL;

	g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
	parts = g_strsplit (text, old, 2);
	g_assert_cmpuint (g_strv_length (parts), ==, 2);
	patched = g_strjoinv (new, parts);
	g_assert_true (g_file_set_contents (fixture->config, patched, -1, NULL));
}

static char *
inject (Fixture *fixture)
{
	g_autofree char *queue_id = NULL;
	g_autofree char *err = NULL;
	/* a Message-ID per message: the same one again would be a resend, not stored twice */
	static guint sequence;
	g_autofree char *text = g_strdup_printf (message_text, ++sequence);
	int status = rel_inject (fixture->config, LIST, text, strlen (text), rcpts, &queue_id, &err);

	if (status != 0)
		g_error ("inject exited %d: %s", status, err);
	return g_steal_pointer (&queue_id);
}

static void
start_daemon (Fixture *fixture)
{
	g_clear_pointer (&fixture->daemon, rel_daemon_free);
	fixture->daemon = rel_daemon_start (fixture->config, fixture->log, NULL);
}

static gboolean
wait_file (const char *path, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	while (!g_file_test (path, G_FILE_TEST_EXISTS)) {
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (20 * 1000);
	}
	return TRUE;
}

/* Shown while the fault lasts: a clear last error, nobody sent. */
static void
assert_failed_visibly (JsonObject *shown, const char *states)
{
	g_auto(GStrv) wanted = g_strsplit (states, "|", -1);
	const char *last_error = rel_member (shown, "last_error");

	g_test_message ("during the fault: state=%s last_error=%s", rel_member (shown, "state"), last_error);
	g_assert_true (g_strv_contains ((const char *const *) wanted, rel_member (shown, "state")));
	g_assert_nonnull (last_error);
	g_assert_cmpuint (strlen (last_error), >, 0);
	g_assert_true (g_utf8_validate (last_error, -1, NULL));
}

/* After the fix: done, every recipient sent and received 1..@max_copies
 * times, the daemon running and exiting 0 on SIGTERM. */
static void
assert_recovered (Fixture *fixture, const char *queue_id, guint max_copies)
{
	g_autoptr(JsonObject) shown = rel_wait_state (fixture->config, queue_id, "done|dead|held", WAIT_MS);

	g_test_message ("after the fix: state=%s last_error=%s attempts=%u", rel_member (shown, "state"),
			rel_member (shown, "last_error"), rel_count_attempts (shown, NULL));
	g_assert_cmpstr (rel_member (shown, "state"), ==, "done");
	g_assert_cmpuint (rel_count_recipient_status (shown, "sent"), ==, g_strv_length ((char **) rcpts));
	g_assert_true (sc_test_sink_wait_messages (fixture->sink, 1, 5000));
	g_usleep (300 * 1000); /* a dump may be closed just after the reply */
	for (guint i = 0; rcpts[i] != NULL; i++) {
		guint copies = sc_test_sink_count_recipient (fixture->sink, rcpts[i]);

		g_test_message ("%s received %u copies", rcpts[i], copies);
		g_assert_cmpuint (copies, >=, 1);
		g_assert_cmpuint (copies, <=, max_copies);
	}
	g_assert_true (rel_daemon_alive (fixture->daemon));
	g_assert_cmpint (rel_daemon_stop (fixture->daemon, 40000), ==, 0);
}

/* ---- SMTP faults: smtp-sink options, one mailer, the sink fixed later ---- */

typedef struct {
	const char *const *fault;  /* smtp-sink options; NULL: nothing listening */
	const char *during;        /* states accepted while it lasts */
	guint max_copies;          /* 2 where the one-transaction window applies */
} SmtpFault;

static const char *const fault_greeting_4xx[] = {"-r", "connect", NULL};
static const char *const fault_rcpt_4xx[] = {"-r", "rcpt", NULL};
static const char *const fault_mid_data[] = {"-q", "data", NULL};
static const char *const fault_after_dot[] = {"-q", ".", NULL};
static const char *const fault_never_answers[] = {"-W", "connect:30", NULL};

static const SmtpFault smtp_relay_refuses = {NULL, "deferred", 1};
static const SmtpFault smtp_greeting_4xx = {fault_greeting_4xx, "deferred", 1};
static const SmtpFault smtp_rcpt_4xx = {fault_rcpt_4xx, "deferred", 1};
static const SmtpFault smtp_mid_data = {fault_mid_data, "deferred", 1};
static const SmtpFault smtp_after_dot = {fault_after_dot, "deferred", 2};
static const SmtpFault smtp_never_answers = {fault_never_answers, "deferred", 1};

static void
test_smtp_fault (Fixture *fixture, gconstpointer data)
{
	const SmtpFault *fault = data;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;

	fixture->sink = sc_test_sink_start (fault->fault);
	if (fixture->sink == NULL)
		return;
	write_config (fixture, "decorate;archive;deliver", NULL, NULL);
	if (fault->fault == NULL)
		sc_test_sink_stop (fixture->sink); /* connection refused */
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	assert_failed_visibly (during, fault->during);
	g_assert_cmpuint (rel_count_recipient_status (during, "sent"), ==, 0);
	g_assert_true (rel_daemon_alive (fixture->daemon));

	sc_test_sink_restart (fixture->sink, NULL);
	assert_recovered (fixture, queue_id, fault->max_copies);
}

/* The relay drops the idle pooled connections (it restarts) between two
 * messages: the second goes out on a new connection, without a deferral. */
static void
test_smtp_pool_reset (Fixture *fixture, gconstpointer data)
{
	g_autofree char *first = NULL;
	g_autofree char *second = NULL;
	g_autoptr(JsonObject) shown = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL)
		return;
	write_config (fixture, "decorate;archive;deliver", NULL, NULL);
	start_daemon (fixture);
	first = inject (fixture);
	g_clear_pointer (&shown, json_object_unref);
	shown = rel_wait_state (fixture->config, first, "done|dead", WAIT_MS);
	g_assert_cmpstr (rel_member (shown, "state"), ==, "done");
	sc_test_sink_restart (fixture->sink, NULL); /* every open connection is reset */
	second = inject (fixture);
	g_clear_pointer (&shown, json_object_unref);
	shown = rel_wait_state (fixture->config, second, "done|dead", WAIT_MS);
	g_test_message ("second message: state=%s attempts=%u last_error=%s", rel_member (shown, "state"),
			rel_count_attempts (shown, NULL), rel_member (shown, "last_error"));
	g_assert_cmpstr (rel_member (shown, "state"), ==, "done");
	/* a stale pooled connection is the client's problem, not a failed attempt */
	g_assert_cmpuint (rel_count_attempts (shown, "transient"), ==, 0);
	for (guint i = 0; rcpts[i] != NULL; i++)
		g_assert_cmpuint (sc_test_sink_count_recipient (fixture->sink, rcpts[i]), ==, 2); /* one per message */
	g_assert_true (rel_daemon_alive (fixture->daemon));
	g_assert_cmpint (rel_daemon_stop (fixture->daemon, 40000), ==, 0);
}

/* SIGTERM while the relay has the whole message but has not answered the
 * final dot yet: the daemon waits for the reply (issue 7, defect 4), exits
 * 0, the message is not lost, and nobody gets a second copy. */
static void
test_sigterm_during_dot (Fixture *fixture, gconstpointer data)
{
	/* 1 s: within the mailer's timeout (2 s), so the reply does come */
	const char *const slow_dot[] = {"-W", ".:1", NULL};
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	int status;

	fixture->sink = sc_test_sink_start (slow_dot);
	if (fixture->sink == NULL)
		return;
	write_config (fixture, "decorate;archive;deliver", NULL, NULL);
	start_daemon (fixture);
	queue_id = inject (fixture);
	/* a dump is opened at MAIL; the dot follows at once.  Two: one
	 * transaction per domain, both sent at once over two connections */
	g_assert_true (sc_test_sink_wait_dumps (fixture->sink, 2, WAIT_MS));
	g_usleep (300 * 1000);
	status = rel_daemon_stop (fixture->daemon, 40000);
	shown = sc_test_show (fixture->config, queue_id);
	g_test_message ("after SIGTERM: exit=%d state=%s last_error=%s", status, rel_member (shown, "state"),
			rel_member (shown, "last_error"));
	g_assert_cmpint (status, ==, 0);
	g_assert_cmpstr (rel_member (shown, "state"), !=, "dead");
	g_assert_cmpstr (rel_member (shown, "state"), !=, "held");

	sc_test_sink_restart (fixture->sink, NULL);
	start_daemon (fixture);
	assert_recovered (fixture, queue_id, 1);
}

/* ---- exec handlers ---- */

static void
write_script (Fixture *fixture, const char *name, const char *body)
{
	g_autofree char *path = sc_test_write_file (fixture->dir, name, body);

	g_assert_cmpint (g_chmod (path, 0755), ==, 0);
}

/* The program dies of a signal: dead with a clear error (the documented
 * outcome); the operator fixes it and retries: delivered once. */
static void
test_exec_crashes (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL)
		return;
	write_script (fixture, "check.sh", "#!/bin/sh\ncat >/dev/null\nkill -SEGV $$\n");
	write_config (fixture, "decorate;exec:check;archive;deliver", NULL,
		      "[handler:check]\ncommand=./check.sh\n");
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	assert_failed_visibly (during, "dead|deferred");
	g_assert_true (rel_daemon_alive (fixture->daemon));
	write_script (fixture, "check.sh", "#!/bin/sh\ncat >/dev/null\nexit 0\n");
	if (g_strcmp0 (rel_member (during, "state"), "dead") == 0)
		g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	assert_recovered (fixture, queue_id, 1);
}

/* The program hangs: killed at its timeout, deferred; then it behaves. */
static void
test_exec_hangs (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL)
		return;
	write_script (fixture, "check.sh", "#!/bin/sh\ncat >/dev/null\nsleep 60\n");
	write_config (fixture, "decorate;exec:check;archive;deliver", NULL,
		      "[handler:check]\ncommand=./check.sh\ntimeout=1s\n");
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	assert_failed_visibly (during, "deferred");
	g_assert_true (rel_daemon_alive (fixture->daemon));
	write_script (fixture, "check.sh", "#!/bin/sh\ncat >/dev/null\nexit 0\n");
	assert_recovered (fixture, queue_id, 1);
}

/* The program prints binary garbage instead of a message (replace=yes)
 * and on stderr: the garbage must not replace the post and go out; the
 * message stops with a readable error; fixed and retried: delivered. */
static void
test_exec_garbage (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL)
		return;
	write_script (fixture, "check.sh",
		      "#!/bin/sh\ncat >/dev/null\n"
		      "head -c 4096 /dev/urandom\nhead -c 300 /dev/urandom >&2\nexit 0\n");
	write_config (fixture, "decorate;exec:check;archive;deliver", NULL,
		      "[handler:check]\ncommand=./check.sh\nreplace=yes\n");
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	g_test_message ("garbage output: state=%s, sink dumps=%u", rel_member (during, "state"),
			sc_test_sink_count_dumps (fixture->sink));
	assert_failed_visibly (during, "dead|deferred");
	g_assert_cmpuint (sc_test_sink_count_dumps (fixture->sink), ==, 0);
	g_assert_true (rel_daemon_alive (fixture->daemon));
	write_script (fixture, "check.sh", "#!/bin/sh\ncat\n");
	if (g_strcmp0 (rel_member (during, "state"), "dead") == 0)
		g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry", queue_id, NULL), ==, 0);
	assert_recovered (fixture, queue_id, 1);
}

/* ---- disk full: a real small tmpfs ---- */

static gboolean
mount_tmpfs (Fixture *fixture, const char *size)
{
	g_autofree char *options = g_strdup_printf ("size=%s", size);
	int wait_status = 0;

	fixture->mount_point = g_build_filename (fixture->dir, "small", NULL);
	g_assert_cmpint (g_mkdir (fixture->mount_point, 0755), ==, 0);
	{
		const char *argv[] = {"mount", "-t", "tmpfs", "-o", options, "tmpfs", fixture->mount_point, NULL};
		if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
				   &wait_status, NULL) ||
		    !g_spawn_check_wait_status (wait_status, NULL)) {
			g_clear_pointer (&fixture->mount_point, g_free);
			g_test_skip ("cannot mount a small tmpfs here (needs root)");
			return FALSE;
		}
	}
	return TRUE;
}

/* Writes @path until the file system is full. */
static void
fill_up (const char *path)
{
	static char block[64 * 1024];
	int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	g_assert_cmpint (fd, >=, 0);
	while (write (fd, block, sizeof block) > 0)
		;
	while (write (fd, block, 512) > 0) /* the last partial blocks */
		;
	close (fd);
}

/* The archive's file system is full: deferred with the error; room again:
 * archived once, delivered once. */
static void
test_archive_full (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;
	g_autofree char *filler = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL || !mount_tmpfs (fixture, "1m"))
		return;
	filler = g_build_filename (fixture->mount_point, "filler", NULL);
	write_config (fixture, "decorate;archive;deliver", NULL, NULL);
	config_replace (fixture, "archive=maildir:archive", "archive=maildir:small/archive");
	fill_up (filler);
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	assert_failed_visibly (during, "deferred");
	g_assert_true (rel_daemon_alive (fixture->daemon));
	g_assert_cmpint (g_unlink (filler), ==, 0);
	assert_recovered (fixture, queue_id, 1);
	{
		g_autofree char *new_dir = g_build_filename (fixture->mount_point, "archive", "new", NULL);
		g_autoptr(GDir) dir = g_dir_open (new_dir, 0, NULL);
		guint files = 0;
		while (dir != NULL && g_dir_read_name (dir) != NULL)
			files++;
		g_assert_cmpuint (files, ==, 1);
	}
}

/* The spool's file system fills up while a stage runs, so the runner
 * cannot commit its result: the daemon keeps running, and once there is
 * room the message is done and delivered once. */
static void
test_spool_full_at_commit (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autofree char *filler = NULL;
	g_autofree char *marker = NULL;
	g_autofree char *script = NULL;
	g_autofree char *spool_line = NULL;
	g_autoptr(JsonObject) shown = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL || !mount_tmpfs (fixture, "2m"))
		return;
	filler = g_build_filename (fixture->mount_point, "filler", NULL);
	marker = g_build_filename (fixture->dir, "filled", NULL);
	/* the first run fills the disk, then replaces the message with a
	 * 600 KiB one: its commit cannot fit */
	script = g_strdup_printf ("#!/bin/sh\n"
				  "cat >/dev/null\n"
				  "if [ ! -e %s ]; then touch %s; dd if=/dev/zero of=%s bs=64k 2>/dev/null;"
				  " dd if=/dev/zero of=%s bs=512 oflag=append conv=notrunc 2>/dev/null; fi\n"
				  "printf 'From: a@example.org\\r\\nSubject: big\\r\\nMessage-ID: <big@example.org>\\r\\n\\r\\n'\n"
				  "i=0; while [ $i -lt 8000 ]; do echo 'padding padding padding padding padding padding padding'; i=$((i+1)); done\n",
				  marker, marker, filler, filler);
	write_script (fixture, "fill.sh", script);
	spool_line = g_strdup_printf ("spool=%s/spool\nbusy-timeout=2s\n", fixture->mount_point);
	write_config (fixture, "exec:fill;archive;deliver", NULL, "[handler:fill]\ncommand=./fill.sh\nreplace=yes\n");
	config_replace (fixture, "spool=spool\n", spool_line);
	start_daemon (fixture);
	queue_id = inject (fixture);
	g_assert_true (wait_file (marker, WAIT_MS));
	g_usleep (3 * G_USEC_PER_SEC); /* the stage ends, its commit fails */
	g_test_message ("while full: daemon alive=%d", rel_daemon_alive (fixture->daemon));
	g_assert_true (rel_daemon_alive (fixture->daemon));
	g_assert_cmpint (g_unlink (filler), ==, 0);
	shown = rel_wait_state (fixture->config, queue_id, "done|dead|held", WAIT_MS);
	g_test_message ("after room: state=%s last_error=%s", rel_member (shown, "state"),
			rel_member (shown, "last_error"));
	assert_recovered (fixture, queue_id, 1);
}

/* ---- the spool locked past busy-timeout while a stage runs ---- */

static void
test_spool_locked (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = NULL;
	g_autofree char *db_path = g_build_filename (fixture->dir, "spool", "spool.db", NULL);
	g_autofree char *started = g_build_filename (fixture->dir, "started", NULL);
	g_autofree char *script = NULL;
	sqlite3 *db = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL)
		return;
	script = g_strdup_printf ("#!/bin/sh\ncat >/dev/null\ntouch %s\nsleep 1\n", started);
	write_script (fixture, "slow.sh", script);
	write_config (fixture, "decorate;exec:slow;archive;deliver", "busy-timeout=1s\n",
		      "[handler:slow]\ncommand=./slow.sh\n");
	start_daemon (fixture);
	queue_id = inject (fixture);
	g_assert_true (wait_file (started, WAIT_MS));
	/* another process holds the write lock for 4 s: the stage ends and
	 * its commit (and lease renewals) time out meanwhile */
	g_assert_cmpint (sqlite3_open (db_path, &db), ==, SQLITE_OK);
	g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
	g_usleep (4 * G_USEC_PER_SEC);
	g_assert_true (rel_daemon_alive (fixture->daemon));
	g_assert_cmpint (sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL), ==, SQLITE_OK);
	sqlite3_close (db);
	assert_recovered (fixture, queue_id, 1);
}

/* ---- the wall clock stepped (libfaketime; CLOCK_MONOTONIC not faked) ---- */

/* Every stagecoach process from now on (daemon, inject, show) sees the
 * wall clock of @timestamp_file; the sink was started before. */
static gboolean
fake_clock (const char *timestamp_file)
{
	if (!g_file_test (FAKETIME_LIB, G_FILE_TEST_EXISTS)) {
		g_test_skip ("libfaketime (package faketime) is not installed");
		return FALSE;
	}
	g_assert_true (g_file_set_contents (timestamp_file, "+0\n", -1, NULL));
	g_setenv ("LD_PRELOAD", FAKETIME_LIB, TRUE);
	g_setenv ("FAKETIME_TIMESTAMP_FILE", timestamp_file, TRUE);
	g_setenv ("FAKETIME_NO_CACHE", "1", TRUE);
	g_setenv ("FAKETIME_DONT_FAKE_MONOTONIC", "1", TRUE);
	return TRUE;
}

/* Stepped 2 h forward while a stage runs: the runner must not take its
 * own live lease for a crash; the stage runs once, delivered once. */
static void
test_clock_forward (Fixture *fixture, gconstpointer data)
{
	g_autofree char *stamp = g_build_filename (fixture->dir, "faketime", NULL);
	g_autofree char *runs = g_build_filename (fixture->dir, "runs", NULL);
	g_autofree char *script = NULL;
	g_autofree char *queue_id = NULL;
	g_autofree char *log = NULL;
	g_autoptr(JsonObject) shown = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL || !fake_clock (stamp))
		return;
	script = g_strdup_printf ("#!/bin/sh\ncat >/dev/null\necho run >> %s\nsleep 4\n", runs);
	write_script (fixture, "slow.sh", script);
	write_config (fixture, "decorate;exec:slow;archive;deliver", NULL,
		      "[handler:slow]\ncommand=./slow.sh\n");
	start_daemon (fixture);
	queue_id = inject (fixture);
	g_assert_true (wait_file (runs, WAIT_MS));
	g_assert_true (g_file_set_contents (stamp, "+2h\n", -1, NULL));
	shown = rel_wait_state (fixture->config, queue_id, "done|dead|held", WAIT_MS);
	g_assert_true (g_file_get_contents (runs, &log, NULL, NULL));
	g_test_message ("stepped +2h: state=%s stage runs=%u crashed attempts=%u", rel_member (shown, "state"),
			(guint) (strlen (log) / 4), rel_count_attempts (shown, "crashed"));
	g_assert_cmpuint (strlen (log) / 4, ==, 1); /* "run\n" once */
	g_assert_cmpuint (rel_count_attempts (shown, "crashed"), ==, 0);
	assert_recovered (fixture, queue_id, 1);
}

/* Stepped 1 h back while a message waits for its 1 s retry: not lost, not
 * dead, and retried about on time (due times must not stretch by the step). */
static void
test_clock_backward (Fixture *fixture, gconstpointer data)
{
	g_autofree char *stamp = g_build_filename (fixture->dir, "faketime", NULL);
	g_autofree char *marker = g_build_filename (fixture->dir, "failed-once", NULL);
	g_autofree char *script = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) during = NULL;

	fixture->sink = sc_test_sink_start (NULL);
	if (fixture->sink == NULL || !fake_clock (stamp))
		return;
	script = g_strdup_printf ("#!/bin/sh\ncat >/dev/null\n"
				  "if [ ! -e %s ]; then touch %s; echo 'not yet' >&2; exit 75; fi\n",
				  marker, marker);
	write_script (fixture, "flaky.sh", script);
	write_config (fixture, "decorate;exec:flaky;archive;deliver", NULL,
		      "[handler:flaky]\ncommand=./flaky.sh\n");
	g_assert_true (g_file_set_contents (stamp, "+1h\n", -1, NULL));
	start_daemon (fixture);
	queue_id = inject (fixture);
	during = rel_wait_state (fixture->config, queue_id, "deferred|dead|done", WAIT_MS);
	assert_failed_visibly (during, "deferred");
	g_assert_true (g_file_set_contents (stamp, "+0\n", -1, NULL)); /* one hour back */
	assert_recovered (fixture, queue_id, 1);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	/* As root, a mount namespace of our own: a test that aborts cannot
	 * leave its tmpfs mounted (the namespace ends with the process). */
	if (geteuid () == 0 && unshare (CLONE_NEWNS) == 0)
		(void) mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);

#define ADD(path, data, func) g_test_add (path, Fixture, data, setup, func, teardown)
	ADD ("/faults/smtp/relay-refuses", &smtp_relay_refuses, test_smtp_fault);
	ADD ("/faults/smtp/greeting-4xx", &smtp_greeting_4xx, test_smtp_fault);
	ADD ("/faults/smtp/rcpt-4xx", &smtp_rcpt_4xx, test_smtp_fault);
	ADD ("/faults/smtp/drop-mid-data", &smtp_mid_data, test_smtp_fault);
	ADD ("/faults/smtp/drop-after-dot", &smtp_after_dot, test_smtp_fault);
	ADD ("/faults/smtp/never-answers", &smtp_never_answers, test_smtp_fault);
	ADD ("/faults/smtp/pooled-connections-reset", NULL, test_smtp_pool_reset);
	ADD ("/faults/archive/full", NULL, test_archive_full);
	ADD ("/faults/exec/crashes", NULL, test_exec_crashes);
	ADD ("/faults/exec/hangs", NULL, test_exec_hangs);
	ADD ("/faults/exec/garbage", NULL, test_exec_garbage);
	ADD ("/faults/spool/full-at-runner-commit", NULL, test_spool_full_at_commit);
	ADD ("/faults/spool/locked-past-busy-timeout", NULL, test_spool_locked);
	ADD ("/faults/signal/sigterm-during-dot", NULL, test_sigterm_during_dot);
	ADD ("/faults/clock/step-forward", NULL, test_clock_forward);
	ADD ("/faults/clock/step-backward", NULL, test_clock_backward);
#undef ADD
	return g_test_run ();
}
