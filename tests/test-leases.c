/* test-leases.c — a claim is one job's, through the real binary.
 *
 * The spool is locked past busy-timeout again and again while `stagecoach
 * run` delivers through a slow stage to smtp-sink: every message must end
 * done, each recipient must get exactly one copy, every done message must
 * have its archive record, and no message may stay active.  Then runners
 * are killed while they hold many more claims than they run handlers: only
 * messages whose handler was running may be blamed for a crash.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include "sc-test-sink.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *spool_db;
	ScTestSink *sink;
} Fixture;

static void
write_config (Fixture *fixture, const char *stagecoach_extra, const char *slow_script)
{
	g_autofree char *url = sc_test_sink_get_url (fixture->sink);
	g_autofree char *script = sc_test_write_file (fixture->dir, "slow.sh", slow_script);
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "spool=spool\n"
						 "rescan=1s\n"
						 "%s"
						 "[retry]\n"
						 "initial=1s\n"
						 "max-delay=2s\n"
						 "jitter=0\n"
						 "[handler:slow]\n"
						 "command=/bin/sh %s\n"
						 "[mailer:sink]\n"
						 "url=%s\n"
						 "timeout=10s\n"
						 "starttls=off\n"
						 "[list:test.example.org]\n"
						 "pipeline=decorate;exec:slow;archive;deliver\n"
						 "archive=maildir:archive\n"
						 "bounces=bounces@test.example.org\n",
						 stagecoach_extra, script, url);
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	fixture->dir = sc_test_make_tmpdir ("sc-leases");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->spool_db = g_build_filename (fixture->dir, "spool", "spool.db", NULL);
	fixture->sink = sc_test_sink_start (NULL);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->sink, sc_test_sink_free);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->spool_db);
}

/* Injects @count messages, each with its own Message-ID and recipient. */
static void
inject_many (Fixture *fixture, guint count)
{
	for (guint i = 0; i < count; i++) {
		g_autofree char *text = g_strdup_printf ("From: Alice <alice@example.org>\r\n"
							 "To: test@example.org\r\n"
							 "Subject: lease test %u\r\n"
							 "Message-ID: <lease-%u@example.org>\r\n"
							 "\r\n"
							 "Body %u.\r\n",
							 i, i, i);
		g_autofree char *rcpt = g_strdup_printf ("r%u@example.org", i);
		g_autoptr(GBytes) input = g_bytes_new (text, strlen (text));
		g_autofree char *err = NULL;
		int status = sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
					  "test.example.org", rcpt, NULL);
		if (status != 0)
			g_error ("inject %u failed (%d): %s", i, status, err);
	}
}

static gint64
db_int (Fixture *fixture, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	gint64 value = -1;

	g_assert_cmpint (sqlite3_open_v2 (fixture->spool_db, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
	sqlite3_busy_timeout (db, 10000);
	g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
	if (sqlite3_step (stmt) == SQLITE_ROW)
		value = sqlite3_column_int64 (stmt, 0);
	sqlite3_finalize (stmt);
	sqlite3_close (db);
	return value;
}

/* Holds the spool's write lock for @hold_ms, then lets go for @gap_ms,
 * for @total_ms in all. */
static void
lock_spool (Fixture *fixture, guint hold_ms, guint gap_ms, guint total_ms)
{
	sqlite3 *db = NULL;
	gint64 end = g_get_monotonic_time () + (gint64) total_ms * 1000;

	g_assert_cmpint (sqlite3_open (fixture->spool_db, &db), ==, SQLITE_OK);
	sqlite3_busy_timeout (db, 5000);
	while (g_get_monotonic_time () < end) {
		g_assert_cmpint (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL), ==, SQLITE_OK);
		g_usleep ((gulong) hold_ms * 1000);
		g_assert_cmpint (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), ==, SQLITE_OK);
		g_usleep ((gulong) gap_ms * 1000);
	}
	sqlite3_close (db);
}

static void
stop_daemon (GSubprocess *daemon)
{
	g_subprocess_send_signal (daemon, SIGTERM);
	g_assert_true (g_subprocess_wait (daemon, NULL, NULL));
}

static guint
count_archive_files (Fixture *fixture)
{
	g_autofree char *path = g_build_filename (fixture->dir, "archive", "new", NULL);
	g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
	guint count = 0;

	while (dir != NULL && g_dir_read_name (dir) != NULL)
		count++;
	return count;
}

/* Every recipient r0..r(count-1) got exactly @expected copies. */
static void
assert_each_recipient_once (Fixture *fixture, guint count)
{
	g_autoptr(GPtrArray) messages = sc_test_sink_get_messages (fixture->sink);
	g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	guint duplicates = 0;

	for (guint i = 0; i < messages->len; i++) {
		ScTestSinkMessage *message = messages->pdata[i];
		if (!message->complete)
			continue;
		for (guint r = 0; r < message->recipients->len; r++) {
			const char *address = message->recipients->pdata[r];
			guint copies = GPOINTER_TO_UINT (g_hash_table_lookup (seen, address));
			if (copies > 0)
				duplicates++;
			g_hash_table_insert (seen, g_strdup (address), GUINT_TO_POINTER (copies + 1));
		}
	}
	g_test_message ("%u recipients received, %u duplicate copies", g_hash_table_size (seen), duplicates);
	g_assert_cmpuint (duplicates, ==, 0);
	g_assert_cmpuint (g_hash_table_size (seen), ==, count);
}

/* Issue 7, defects 1 and 2: a spool locked past busy-timeout, over and over
 * (each commit, claim and renewal fails for a while) — no stage runs twice,
 * nothing is left active, nobody gets two copies. */
static void
test_locked_spool (Fixture *fixture, gconstpointer data)
{
	const guint count = 120;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) daemon = NULL;

	if (fixture->sink == NULL)
		return;
	write_config (fixture, "workers=4\nlease=5s\nbusy-timeout=150ms\n", "sleep 0.05\n");
	inject_many (fixture, count);
	daemon = sc_test_spawn (fixture->config, log, "run", NULL);
	g_assert_true (sc_test_sink_wait_messages (fixture->sink, 3, 20000));
	/* one long lock: every write fails for many busy-timeouts */
	lock_spool (fixture, 2500, 0, 2500);
	/* then short bursts: some writes fail, the next succeed */
	lock_spool (fixture, 220, 40, 4000);
	g_assert_true (sc_test_wait_count (fixture->config, "done", count, 60000));
	stop_daemon (daemon);

	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state = 'active'"), ==, 0);
	/* every done message went through every stage, each recorded once */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages m WHERE state = 'done' AND "
					  "(SELECT count(*) FROM stages s WHERE s.message_id = m.id) != 4"),
			 ==, 0);
	/* no stage ran again after it succeeded (a second ok attempt) */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM (SELECT message_id, stage FROM attempts"
					  " WHERE outcome = 'ok' GROUP BY message_id, stage HAVING count(*) > 1)"),
			 ==, 0);
	g_assert_cmpuint (count_archive_files (fixture), ==, count);
	assert_each_recipient_once (fixture, count);
}

/* Issue 7, defect 3: kill -9 a runner that holds many claims and runs
 * only a few handlers, again and again.  Only messages whose handler was
 * running are blamed; nothing innocent is held; a message held after
 * crashes raises a message.held notification. */
static void
test_kill_blames_running_only (Fixture *fixture, gconstpointer data)
{
	const guint count = 150;
	const guint kills = 8;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);

	if (fixture->sink == NULL)
		return;
	/* 2 handlers at a time, 64 claimed: most claims never start a stage */
	write_config (fixture, "workers=2\nclaim-batch=64\nlease=30s\n", "sleep 0.1\n");
	inject_many (fixture, count);
	for (guint kill = 0; kill < kills; kill++) {
		g_autoptr(GSubprocess) daemon = sc_test_spawn (fixture->config, log, "run", NULL);
		/* let it claim and start a few handlers */
		g_usleep ((gulong) g_test_rand_int_range (250, 700) * 1000);
		g_subprocess_send_signal (daemon, SIGKILL);
		g_assert_true (g_subprocess_wait (daemon, NULL, NULL));
	}
	{
		g_autoptr(GSubprocess) daemon = sc_test_spawn (fixture->config, log, "run", NULL);
		g_assert_true (sc_test_wait_count (fixture->config, "done", count, 90000));
		stop_daemon (daemon);
	}
	g_test_message ("crashed attempts %" G_GINT64_FORMAT ", released %" G_GINT64_FORMAT,
			db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'crashed'"),
			db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'released'"));
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state = 'held'"), ==, 0);
	/* at most one message per handler slot is blamed per kill: 2 workers
	 * and the mailer's 4 connections */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM attempts WHERE outcome = 'crashed'"),
			 <=, (2 + 4) * kills);
	g_assert_cmpint (db_int (fixture, "SELECT max(crashes) FROM messages"), <, 3);
	/* duplicates at the relay: at most one transaction per kill */
	{
		g_autoptr(GPtrArray) messages = sc_test_sink_get_messages (fixture->sink);
		guint complete = 0;
		for (guint i = 0; i < messages->len; i++)
			complete += ((ScTestSinkMessage *) messages->pdata[i])->complete;
		g_assert_cmpuint (complete, >=, count);
		g_assert_cmpuint (complete, <=, count + kills);
	}
}

/* Issue 7, defect 4 (the runner's half): SIGTERM twice ends the loop at
 * once while a deliver handler waits for the reply to its final "."; what
 * the relay then accepts is still recorded, so nothing is sent again. */
static void
test_stop_records_late_replies (Fixture *fixture, gconstpointer data)
{
	const char *const slow_dot[] = {"-W", ".:3", NULL};
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) daemon = NULL;

	if (fixture->sink == NULL)
		return;
	sc_test_sink_restart (fixture->sink, slow_dot);
	write_config (fixture, "workers=2\nlease=30s\n", "exit 0\n");
	inject_many (fixture, 1);
	daemon = sc_test_spawn (fixture->config, log, "run", NULL);
	/* smtp-sink completes the dump when the dot arrives, before its reply */
	g_assert_true (sc_test_sink_wait_messages (fixture->sink, 1, 20000));
	g_subprocess_send_signal (daemon, SIGTERM);
	g_usleep (100 * 1000);
	g_subprocess_send_signal (daemon, SIGTERM); /* no grace period */
	g_assert_true (g_subprocess_wait (daemon, NULL, NULL));
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM recipients WHERE status = 'sent'"), ==, 1);

	sc_test_sink_restart (fixture->sink, NULL);
	{
		g_autofree char *err = NULL;
		g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL), ==, 0);
	}
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 1);
	assert_each_recipient_once (fixture, 1);
}

static gint64
peak_rss_kib (GSubprocess *daemon)
{
	g_autofree char *path = g_strdup_printf ("/proc/%s/status", g_subprocess_get_identifier (daemon));
	g_autofree char *status = NULL;
	const char *line;

	g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
	line = strstr (status, "VmHWM:");
	g_assert_nonnull (line);
	return g_ascii_strtoll (line + strlen ("VmHWM:"), NULL, 10);
}

/* Issue 7, defect 7: claim-memory bounds what messages in flight really
 * hold (raw, decorated output, the copies a stage makes), not only their
 * raw sizes: ten 8 MB messages with claim-memory=64M. */
static void
test_claim_memory (Fixture *fixture, gconstpointer data)
{
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GString) text = g_string_new ("From: Alice <alice@example.org>\r\n"
						"To: test@example.org\r\n"
						"Subject: big\r\n"
						"Content-Type: text/plain\r\n\r\n");
	g_autoptr(GBytes) input = NULL;
	g_autoptr(GSubprocess) daemon = NULL;
	gint64 peak;

	if (fixture->sink == NULL)
		return;
	if (g_getenv ("SC_SANITIZED") != NULL) {
		/* shadow memory and the quarantine are what RSS would measure */
		g_test_skip ("peak RSS is not the daemon's under a sanitizer (SC_SANITIZED)");
		return;
	}
	while (text->len < 8 * 1024 * 1024)
		g_string_append (text, "0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n");
	input = g_string_free_to_bytes (g_steal_pointer (&text));
	write_config (fixture, "workers=4\nclaim-memory=64M\nmax-message-size=16M\n", "exit 0\n");
	for (guint i = 0; i < 10; i++) {
		g_autofree char *err = NULL;
		g_assert_cmpint (sc_test_run (fixture->config, input, NULL, &err, "inject", "--list",
					      "test.example.org", "r@example.org", NULL), ==, 0);
	}
	daemon = sc_test_spawn (fixture->config, log, "run", NULL);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 10, 120000));
	peak = peak_rss_kib (daemon);
	stop_daemon (daemon);
	g_test_message ("peak RSS with claim-memory=64M: %" G_GINT64_FORMAT " KiB", peak);
	/* the budget plus the process itself (libraries, SQLite cache) */
	g_assert_cmpint (peak, <, (64 + 40) * 1024);
}

/* A relay that completes the TCP handshake (the kernel does) and never
 * says a word; returns its port. */
static guint16
listen_hung (GSocket **out)
{
	g_autoptr(GSocket) hung = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GError) error = NULL;

	hung = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error (error);
	address = g_inet_socket_address_new (loopback, 0);
	g_assert_true (g_socket_bind (hung, address, TRUE, &error));
	g_socket_set_listen_backlog (hung, 64);
	g_assert_true (g_socket_listen (hung, &error));
	g_clear_object (&address);
	address = g_socket_get_local_address (hung, &error);
	g_assert_no_error (error);
	*out = g_steal_pointer (&hung);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

/* CPU time (user + system) the process has used so far, in seconds. */
static double
cpu_seconds (GSubprocess *process)
{
	g_autofree char *path = g_strdup_printf ("/proc/%s/stat", g_subprocess_get_identifier (process));
	g_autofree char *stat = NULL;
	g_auto(GStrv) fields = NULL;

	g_assert_true (g_file_get_contents (path, &stat, NULL, NULL));
	/* fields after the command's ")" : state is field 3, utime 14, stime 15 */
	fields = g_strsplit (strrchr (stat, ')') + 2, " ", -1);
	g_assert_cmpuint (g_strv_length (fields), >, 13);
	return (double) (g_ascii_strtoll (fields[11], NULL, 10) + g_ascii_strtoll (fields[12], NULL, 10)) /
	       (double) sysconf (_SC_CLK_TCK);
}

/* Issue 7, defect 5: a relay that accepts TCP and never answers holds
 * only its own mailer's lane: another list's messages flow meanwhile. */
static void
test_hung_relay_lane (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GSocket) hung = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autofree char *text = NULL;
	g_autoptr(GSubprocess) daemon = NULL;
	guint16 port = listen_hung (&hung);
	gint64 deadline;
	gint64 done_b = 0;

	text = g_strdup_printf ("[stagecoach]\nspool=spool\nworkers=2\nrescan=1s\n"
				"[mailer:hung]\nurl=smtp://127.0.0.1:%u\ntimeout=20s\nstarttls=off\n"
				"max-connections=2\n"
				"[list:a.example.org]\npipeline=decorate;deliver\n"
				"bounces=bounces@a.example.org\n"
				"[list:b.example.org]\npipeline=decorate;archive\narchive=maildir:archive\n",
				port);
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
	for (guint i = 0; i < 8; i++)
		g_free (sc_test_inject (fixture->config, "a.example.org",
					"From: a@example.org\r\nSubject: to a hung relay\r\n\r\nx\r\n"));
	daemon = sc_test_spawn (fixture->config, log, "run", NULL);
	/* the deliver jobs are stuck in the relay's greeting by now */
	g_usleep (500 * 1000);
	for (guint i = 0; i < 5; i++)
		g_free (sc_test_inject (fixture->config, "b.example.org",
					"From: b@example.org\r\nSubject: no deliver stage\r\n\r\nx\r\n"));
	/* done long before the relay's 20 s timeout could free a worker */
	deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
	while (g_get_monotonic_time () < deadline &&
	       (done_b = db_int (fixture, "SELECT count(*) FROM messages WHERE list_id = 'b.example.org'"
					  " AND state = 'done'")) < 5)
		g_usleep (100 * 1000);
	g_assert_cmpint (done_b, ==, 5);
	/* and the hung relay's messages are still waiting on it: nothing lost */
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE list_id = 'a.example.org'"
				 " AND state IN ('active', 'queued')"), ==, 8);
	stop_daemon (daemon);
}

/* A backlog behind a hung relay, more due messages than the runner may
 * hold: it must sleep until a job ends, not claim again and again.  It
 * spun a whole core (60 polls and 29 fcntl locks per accepted message
 * in bench-ingress, and 100 % CPU once idle) until this was fixed. */
static void
test_hung_relay_backlog_sleeps (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GSocket) hung = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autofree char *text = NULL;
	g_autoptr(GSubprocess) daemon = NULL;
	guint16 port = listen_hung (&hung);
	double before, used;

	text = g_strdup_printf ("[stagecoach]\nspool=spool\nworkers=1\nclaim-batch=1\nrescan=1s\n"
				"[mailer:hung]\nurl=smtp://127.0.0.1:%u\ntimeout=60s\nstarttls=off\n"
				"max-connections=1\n"
				"[list:test.example.org]\npipeline=deliver\n",
				port);
	g_assert_true (g_file_set_contents (fixture->config, text, -1, NULL));
	inject_many (fixture, 40);
	daemon = sc_test_spawn (fixture->config, log, "run", NULL);
	/* the one deliver job is stuck in the greeting, the rest wait due */
	g_assert_true (sc_test_wait_at_least (fixture->config, "active", 1, 20000));
	g_usleep (500 * 1000);
	before = cpu_seconds (daemon);
	g_usleep (3 * G_USEC_PER_SEC);
	used = cpu_seconds (daemon) - before;
	g_test_message ("CPU used in 3 s behind a hung relay: %.2f s", used);
	/* asleep it uses ~0; spinning it used a whole core (3 s, or half of
	 * that on a loaded machine) */
	g_assert_cmpfloat (used, <, 0.5);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM messages WHERE state IN ('active', 'queued')"),
			 ==, 40);
	stop_daemon (daemon);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add ("/leases/locked-spool/no-stage-twice-nothing-stuck", Fixture, NULL, setup,
		    test_locked_spool, teardown);
	g_test_add ("/leases/kill-9/blames-running-handlers-only", Fixture, NULL, setup,
		    test_kill_blames_running_only, teardown);
	g_test_add ("/leases/stop/records-replies-after-the-loop", Fixture, NULL, setup,
		    test_stop_records_late_replies, teardown);
	g_test_add ("/leases/claim-memory/counts-what-is-held", Fixture, NULL, setup,
		    test_claim_memory, teardown);
	g_test_add ("/leases/lanes/hung-relay-holds-only-its-lane", Fixture, NULL, setup,
		    test_hung_relay_lane, teardown);
	g_test_add ("/leases/lanes/hung-relay-backlog-sleeps", Fixture, NULL, setup,
		    test_hung_relay_backlog_sleeps, teardown);
	return g_test_run ();
}
