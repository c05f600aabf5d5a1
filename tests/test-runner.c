/* test-runner.c — the pipeline end to end through the real binary:
 * inject → run → done; failures, retries and resumption at the failed
 * stage; a runner killed with SIGKILL; two runners on one spool; SIGTERM;
 * wakeups from inject. */
#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>

#include "sc-spool.h"
#include "sc-test-backend.h"
#include "sc-test-util.h"

typedef struct {
	char *dir;
	char *config;
	char *spool;       /* what sc_spool_open takes: a folder or a URI */
	char *spool_lines; /* the config's lines naming it (sc-test-backend.h) */
	char *archive;
} Fixture;

static const char *message_text =
    "From: Alice <alice@example.org>\r\n"
    "To: test@example.org\r\n"
    "Subject: hello list\r\n"
    "Message-ID: <m1@example.org>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello everyone.\r\n";

static void
write_config_full (Fixture *fixture,
		   const char *archive,
		   const char *pipeline,
		   const char *extra,
		   const char *retry_extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "%s"
						 "workers=2\n"
						 "lease=10s\n"
						 "busy-timeout=5s\n"
						 "rescan=30s\n"
						 "[retry]\n"
						 "initial=1s\n"
						 "max-delay=2s\n"
						 "jitter=0\n"
						 "max-age=1h\n"
						 "%s"
						 "[list:test.example.org]\n"
						 "pipeline=%s\n"
						 "subject-prefix=[test]\n"
						 "footer=footer.txt\n"
						 "archive=%s\n"
						 "%s",
						 fixture->spool_lines, retry_extra != NULL ? retry_extra : "",
						 pipeline, archive, extra != NULL ? extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);
}

static void
write_config (Fixture *fixture, const char *archive, const char *pipeline, const char *extra)
{
	write_config_full (fixture, archive, pipeline, extra, NULL);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	g_autofree char *footer = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-runner");
	fixture->config = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->spool_lines = sc_test_backend_spool_lines (fixture->dir);
	fixture->spool = sc_test_backend_spool_location (fixture->dir);
	fixture->archive = g_build_filename (fixture->dir, "archive", NULL);
	footer = sc_test_write_file (fixture->dir, "footer.txt", "-- \nposted to $list_name\n");
	write_config (fixture, "maildir:archive", "decorate;archive", NULL);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config);
	g_free (fixture->spool);
	g_free (fixture->spool_lines);
	g_free (fixture->archive);
}

static int
run_once (Fixture *fixture)
{
	g_autofree char *err = NULL;
	int status = sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL);
	if (status != 0)
		g_printerr ("run --once: %s\n", err);
	return status;
}

static const char *
member (JsonObject *object, const char *name)
{
	JsonNode *node = json_object_get_member (object, name);
	return node != NULL && !json_node_is_null (node) ? json_node_get_string (node) : NULL;
}

static guint
count_files (const char *dir)
{
	g_autoptr(GDir) handle = g_dir_open (dir, 0, NULL);
	guint count = 0;

	while (handle != NULL && g_dir_read_name (handle) != NULL)
		count++;
	return count;
}

static void
test_pipeline_done (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_autoptr(JsonObject) shown = NULL;
	g_autofree char *new_dir = g_build_filename (fixture->archive, "new", NULL);
	g_autofree char *decorated = NULL;
	JsonArray *stages;

	g_assert_true (g_regex_match_simple ("^[0-9a-f]{16}$", queue_id, 0, 0));
	g_assert_cmpint (sc_test_count (fixture->config, "queued"), ==, 1);
	g_assert_cmpint (run_once (fixture), ==, 0);

	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "done");
	stages = json_object_get_array_member (shown, "stages");
	g_assert_cmpuint (json_array_get_length (stages), ==, 2);
	g_assert_cmpstr (member (json_array_get_object_element (stages, 0), "stage"), ==, "decorate");
	g_assert_cmpstr (member (json_array_get_object_element (stages, 1), "stage"), ==, "archive");
	g_assert_nonnull (member (json_array_get_object_element (stages, 0), "completed_at"));
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (shown, "attempts")), ==, 2);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 1);
	g_assert_cmpint (sc_test_count (fixture->config, "queued"), ==, 0);

	/* the archive holds the decorated message, once */
	g_assert_cmpuint (count_files (new_dir), ==, 1);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &decorated, NULL, "export", "--stage",
				      "decorate", queue_id, NULL), ==, 0);
	g_assert_nonnull (strstr (decorated, "Subject: [test] hello list"));
	g_assert_nonnull (strstr (decorated, "posted to test"));
}

/* An archive that cannot be written defers the message; after the fix and
 * a retry it resumes at archive: decorate is not run again. */
static void
test_archive_failure_resumes (Fixture *fixture, gconstpointer data)
{
	g_autofree char *blocker = sc_test_write_file (fixture->dir, "not-a-dir", "x");
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) second = NULL;
	g_autofree char *decorate_done_at = NULL;
	g_autofree char *out = NULL;

	write_config (fixture, "maildir:not-a-dir/archive", "decorate;archive", NULL);
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_cmpint (run_once (fixture), ==, 0);
	first = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (first, "state"), ==, "deferred");
	g_assert_nonnull (strstr (member (first, "last_error"), "not-a-dir"));
	g_assert_nonnull (member (first, "next_attempt_at"));
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (first, "stages")), ==, 1);
	decorate_done_at = g_strdup (member (json_array_get_object_element (
	    json_object_get_array_member (first, "stages"), 0), "completed_at"));

	/* fix the path, retry: due now, new cycle */
	write_config (fixture, "maildir:archive", "decorate;archive", NULL);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "retry", queue_id, NULL), ==, 0);
	g_assert_cmpint (run_once (fixture), ==, 0);
	second = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (second, "state"), ==, "done");
	g_assert_cmpstr (member (json_array_get_object_element (
	    json_object_get_array_member (second, "stages"), 0), "completed_at"), ==, decorate_done_at);
	/* decorate ran once, archive twice (a transient failure, then ok) */
	{
		JsonArray *attempts = json_object_get_array_member (second, "attempts");
		guint decorate_runs = 0;
		for (guint i = 0; i < json_array_get_length (attempts); i++) {
			if (g_strcmp0 (member (json_array_get_object_element (attempts, i), "stage"), "decorate") == 0)
				decorate_runs++;
		}
		g_assert_cmpuint (decorate_runs, ==, 1);
		g_assert_cmpuint (json_array_get_length (attempts), ==, 3);
	}
}

static void
test_retry_from_stage (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_autoptr(JsonObject) before = NULL;
	g_autoptr(JsonObject) after = NULL;
	g_autofree char *err = NULL;

	g_assert_cmpint (run_once (fixture), ==, 0);
	before = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (before, "state"), ==, "done");
	/* a done message needs --from-stage */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "retry", queue_id, NULL), ==, 65);
	g_assert_nonnull (strstr (err, "--from-stage"));
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry",
				      "--from-stage", "nonsense", queue_id, NULL), ==, 65);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "retry",
				      "--from-stage", "decorate", queue_id, NULL), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "queued"), ==, 1);
	g_assert_cmpint (run_once (fixture), ==, 0);
	after = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (after, "state"), ==, "done");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (after, "attempts")), ==, 4);
	g_assert_cmpint (json_object_get_int_member (after, "cycle"), ==, 2);
	/* the archive is idempotent per queue id: still one copy */
	{
		g_autofree char *new_dir = g_build_filename (fixture->archive, "new", NULL);
		g_assert_cmpuint (count_files (new_dir), ==, 1);
	}
}

/* A permanent failure (exec exit 1) is dead at once, with a notification. */
static void
test_permanent_dead (Fixture *fixture, gconstpointer data)
{
	g_autofree char *script = sc_test_write_file (fixture->dir, "reject.sh",
						      "#!/bin/sh\necho 'policy says no' >&2\nexit 1\n");
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScSpool) spool = NULL;
	g_autoptr(GPtrArray) notifications = NULL;
	ScNotificationEntry *entry;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config (fixture, "maildir:archive", "decorate;exec:reject;archive",
		      "[handler:reject]\ncommand=./reject.sh\n");
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_cmpint (run_once (fixture), ==, 0);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "dead");
	g_assert_nonnull (strstr (member (shown, "last_error"), "policy says no"));
	spool = sc_spool_open (fixture->spool, G_USEC_PER_SEC, &error);
	g_assert_no_error (error);
	notifications = sc_spool_list_notifications (spool, 0, 10, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (notifications->len, ==, 1);
	entry = notifications->pdata[0];
	g_assert_cmpstr (entry->kind, ==, "message.dead");
	g_assert_cmpstr (entry->queue_id, ==, queue_id);
}

/* Transient failures back off, then give up at max-attempts. */
static void
test_transient_then_dead (Fixture *fixture, gconstpointer data)
{
	g_autofree char *script = sc_test_write_file (fixture->dir, "later.sh",
						      "#!/bin/sh\necho 'try later' >&2\nexit 75\n");
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) first = NULL;
	g_autoptr(JsonObject) last = NULL;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config_full (fixture, "maildir:archive", "exec:later",
			   "[handler:later]\ncommand=./later.sh\n", "max-attempts=2\ninitial=3s\nmax-delay=3s\n");
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_cmpint (run_once (fixture), ==, 0);
	first = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (first, "state"), ==, "deferred");
	/* not due yet: run --once leaves it alone */
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "deferred"), ==, 1);
	/* initial=3s (a sanitizer build's run --once can take over 1 s),
	 * jitter=0: due now */
	g_usleep (3200 * 1000);
	g_assert_cmpint (run_once (fixture), ==, 0);
	last = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (last, "state"), ==, "dead");
	g_assert_cmpuint (json_array_get_length (json_object_get_array_member (last, "attempts")), ==, 2);
	/* why it ended: the limit, not the handler's words alone */
	g_assert_nonnull (strstr (member (last, "last_error"), "try later"));
	g_assert_nonnull (strstr (member (last, "last_error"), "max-attempts"));
}

/* Issue 7, defect 8: `show` says when max-age ended a message. */
static void
test_max_age_said (Fixture *fixture, gconstpointer data)
{
	g_autofree char *script = sc_test_write_file (fixture->dir, "later.sh",
						      "#!/bin/sh\necho 'try later' >&2\nexit 75\n");
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) last = NULL;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config_full (fixture, "maildir:archive", "exec:later",
			   "[handler:later]\ncommand=./later.sh\n", "max-age=2s\n");
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	for (guint i = 0; i < 4; i++) {
		g_assert_cmpint (run_once (fixture), ==, 0);
		g_usleep (1100 * 1000);
	}
	last = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (last, "state"), ==, "dead");
	g_assert_nonnull (strstr (member (last, "last_error"), "max-age 2s"));
}

static void
test_hold_release_delete (Fixture *fixture, gconstpointer data)
{
	g_autofree char *queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_autofree char *err = NULL;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "hold", "--reason", "checking", queue_id, NULL), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "held"), ==, 1);
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "held"), ==, 1); /* not processed */
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "release", queue_id, NULL), ==, 0);
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 1);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, &err, "release", queue_id, NULL), ==, 65);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "delete", queue_id, NULL), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "total"), ==, 0);
	g_assert_cmpint (sc_test_run (fixture->config, NULL, NULL, NULL, "show", queue_id, NULL), ==, 66);
}

/* Writes an exec stage that logs "QUEUE_ID PID" and sleeps a little. */
static void
write_logging_stage (Fixture *fixture, const char *sleep_seconds, const char *workers)
{
	g_autofree char *script_text = g_strdup_printf ("#!/bin/sh\n"
							"echo \"$STAGECOACH_QUEUE_ID $PPID\" >> %s/stage.log\n"
							"sleep %s\n",
							fixture->dir, sleep_seconds);
	g_autofree char *script = sc_test_write_file (fixture->dir, "slow.sh", script_text);
	g_autofree char *extra = g_strdup_printf ("[handler:slow]\ncommand=./slow.sh\ntimeout=1m\n");
	g_autofree char *text = NULL;
	g_autofree char *patched = NULL;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config (fixture, "maildir:archive", "decorate;exec:slow;archive", extra);
	g_assert_true (g_file_get_contents (fixture->config, &text, NULL, NULL));
	{
		g_autofree char *workers_line = g_strdup_printf ("workers=%s\n", workers);
		GRegex *regex = g_regex_new ("workers=2\n", 0, 0, NULL);
		patched = g_regex_replace_literal (regex, text, -1, 0, workers_line, 0, NULL);
		g_regex_unref (regex);
	}
	g_assert_true (g_file_set_contents (fixture->config, patched, -1, NULL));
}

static GHashTable *
count_log_lines (Fixture *fixture, guint *out_total)
{
	g_autofree char *path = g_build_filename (fixture->dir, "stage.log", NULL);
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	GHashTable *counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

	*out_total = 0;
	if (!g_file_get_contents (path, &text, NULL, NULL))
		return counts;
	lines = g_strsplit (text, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) words = g_strsplit (lines[i], " ", 2);
		if (words[0] == NULL || *words[0] == '\0')
			continue;
		g_hash_table_insert (counts, g_strdup (words[0]),
				     GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (counts, words[0])) + 1));
		(*out_total)++;
	}
	return counts;
}

static GPtrArray *
inject_many (Fixture *fixture, guint n)
{
	GPtrArray *ids = g_ptr_array_new_with_free_func (g_free);
	for (guint i = 0; i < n; i++)
		g_ptr_array_add (ids, sc_test_inject (fixture->config, "test.example.org", message_text));
	return ids;
}

/* kill -9 while stages run → restart → everything done, and no stage that
 * had been recorded as completed ran again. */
static void
test_kill9_resumes (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) ids = NULL;
	g_autofree char *log = g_build_filename (fixture->dir, "run1.log", NULL);
	g_autoptr(GSubprocess) runner = NULL;
	g_autoptr(GHashTable) runs = NULL;
	guint total = 0;

	write_logging_stage (fixture, "0.4", "2");
	ids = inject_many (fixture, 12);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	/* let a few finish, then kill it in the middle of the rest */
	g_assert_true (sc_test_wait_at_least (fixture->config, "done", 2, 20000));
	g_subprocess_send_signal (runner, SIGKILL);
	g_subprocess_wait (runner, NULL, NULL);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), <, 12);
	g_assert_cmpint (sc_test_count (fixture->config, "active"), >, 0); /* it died holding leases */

	/* the restart reclaims the dead runner's leases at once */
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "done"), ==, 12);

	runs = count_log_lines (fixture, &total);
	for (guint i = 0; i < ids->len; i++) {
		g_autoptr(JsonObject) shown = sc_test_show (fixture->config, ids->pdata[i]);
		JsonArray *attempts = json_object_get_array_member (shown, "attempts");
		guint ok_per_stage[3] = {0};
		/* crashed: killed while the handler ran; released: killed after it
		 * finished but before its result was committed (a window that
		 * widens on a loaded machine) — either may run the stage again */
		guint interrupted_slow = 0;
		const char *stages[] = {"decorate", "exec:slow", "archive"};

		for (guint a = 0; a < json_array_get_length (attempts); a++) {
			JsonObject *attempt = json_array_get_object_element (attempts, a);
			for (guint s = 0; s < 3; s++) {
				if (g_strcmp0 (member (attempt, "stage"), stages[s]) != 0)
					continue;
				if (g_strcmp0 (member (attempt, "outcome"), "ok") == 0)
					ok_per_stage[s]++;
				else if ((g_strcmp0 (member (attempt, "outcome"), "crashed") == 0 ||
					  g_strcmp0 (member (attempt, "outcome"), "released") == 0) &&
					 s == 1)
					interrupted_slow++;
			}
		}
		for (guint s = 0; s < 3; s++)
			g_assert_cmpuint (ok_per_stage[s], ==, 1);
		/* the stage ran once, plus once per run the crash interrupted */
		g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (runs, ids->pdata[i])), <=, 1 + interrupted_slow);
		g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (runs, ids->pdata[i])), >=, 1);
	}
}

/* One `run --once`; a run its handler killed is counted in *@killed_runs. */
static void
run_once_maybe_killed (Fixture *fixture, guint *killed_runs)
{
	g_autofree char *err = NULL;
	int status = sc_test_run (fixture->config, NULL, NULL, &err, "run", "--once", NULL);

	if (status == 128 + SIGKILL)
		(*killed_runs)++;
	else
		g_assert_cmpint (status, ==, 0);
	g_usleep (100 * 1000);
}

/* A handler that kills its own runner (kill -9 $PPID) every time: each
 * restart blames that message alone — the runner had marked it in a
 * handler (a lock-file slot, or handler_marks on PostgreSQL) — and after
 * the crash limit it is held, with a notification, instead of killing
 * runners forever. */
static void
test_crash_limit_holds (Fixture *fixture, gconstpointer data)
{
	g_autofree char *kills_log = g_build_filename (fixture->dir, "kills.log", NULL);
	g_autofree char *script_text = g_strdup_printf ("#!/bin/sh\n"
							"echo \"$STAGECOACH_QUEUE_ID\" >> %s\n"
							"kill -9 $PPID\n"
							"sleep 5\n",
							kills_log);
	g_autofree char *script = sc_test_write_file (fixture->dir, "killer.sh", script_text);
	g_autofree char *queue_id = NULL;
	g_autofree char *kills = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(JsonObject) shown = NULL;
	JsonArray *attempts;
	guint crashed = 0;
	guint killed_runs = 0;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config (fixture, "maildir:archive", "decorate;exec:killer;archive",
		      "[handler:killer]\ncommand=./killer.sh\ntimeout=1m\n");
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	/* a run the handler kills, then a restart that takes the message
	 * back; a restart may find the dead runner's session not yet gone
	 * (PostgreSQL ends it a moment after the socket) and leave it */
	for (guint run = 0; run < 12; run++) {
		g_autoptr(JsonObject) now_shown = sc_test_show (fixture->config, queue_id);

		if (g_strcmp0 (member (now_shown, "state"), "held") == 0)
			break;
		run_once_maybe_killed (fixture, &killed_runs);
	}
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "held");
	g_assert_nonnull (strstr (member (shown, "hold_reason"), "crash"));
	attempts = json_object_get_array_member (shown, "attempts");
	for (guint a = 0; a < json_array_get_length (attempts); a++) {
		JsonObject *attempt = json_array_get_object_element (attempts, a);
		if (g_strcmp0 (member (attempt, "outcome"), "crashed") == 0) {
			g_assert_cmpstr (member (attempt, "stage"), ==, "exec:killer");
			crashed++;
		}
	}
	/* the crash limit (3): three runners killed, three crashes blamed */
	g_assert_cmpuint (killed_runs, ==, 3);
	g_assert_cmpuint (crashed, ==, 3);
	g_assert_true (g_file_get_contents (kills_log, &kills, NULL, NULL));
	lines = g_strsplit (g_strstrip (kills), "\n", -1);
	g_assert_cmpuint (g_strv_length (lines), ==, 3);
	g_assert_cmpint (sc_test_backend_query_int (fixture->spool,
						    "SELECT count(*) FROM notifications WHERE kind = 'message.held'"),
			 ==, 1);
	/* held: a further run leaves it alone */
	g_assert_cmpint (run_once (fixture), ==, 0);
	g_assert_cmpint (sc_test_count (fixture->config, "held"), ==, 1);
}

/* A poison message and a slow one in handlers together when the poison
 * kills the runner: both are blamed once, then run as suspects one at a
 * time, so the later crashes find the poison alone.  It is held; the
 * slow one, which only ran beside it, is delivered (before the suspect
 * slot both ran together after every restart and both were held). */
static void
test_crash_neighbour_not_held (Fixture *fixture, gconstpointer data)
{
	g_autofree char *script = sc_test_write_file (fixture->dir, "killer.sh",
						      "#!/bin/sh\n"
						      "if grep -q '^Subject: poison'; then\n"
						      "  sleep 0.5; kill -9 $PPID; sleep 5\n"
						      "fi\n"
						      "sleep 1.5\n");
	g_auto(GStrv) parts = g_strsplit (message_text, "Subject: hello list", 2);
	g_autofree char *poison_text = g_strjoinv ("Subject: poison", parts);
	g_autofree char *neighbour = NULL;
	g_autofree char *poison = NULL;
	g_autoptr(JsonObject) neighbour_shown = NULL;
	g_autoptr(JsonObject) poison_shown = NULL;
	guint killed_runs = 0;

	g_assert_cmpint (g_chmod (script, 0755), ==, 0);
	write_config (fixture, "maildir:archive", "exec:killer;archive",
		      "[handler:killer]\ncommand=./killer.sh\ntimeout=1m\n");
	neighbour = sc_test_inject (fixture->config, "test.example.org", message_text);
	poison = sc_test_inject (fixture->config, "test.example.org", poison_text);
	for (guint run = 0; run < 12; run++) {
		g_autoptr(JsonObject) n_shown = sc_test_show (fixture->config, neighbour);
		g_autoptr(JsonObject) p_shown = sc_test_show (fixture->config, poison);

		if (g_strcmp0 (member (p_shown, "state"), "held") == 0 &&
		    g_strcmp0 (member (n_shown, "state"), "queued") != 0 &&
		    g_strcmp0 (member (n_shown, "state"), "active") != 0)
			break;
		run_once_maybe_killed (fixture, &killed_runs);
	}
	poison_shown = sc_test_show (fixture->config, poison);
	neighbour_shown = sc_test_show (fixture->config, neighbour);
	g_assert_cmpstr (member (poison_shown, "state"), ==, "held");
	g_assert_cmpuint (sc_test_count_attempts (poison_shown, "crashed"), ==, 3);
	g_assert_cmpuint (killed_runs, ==, 3);
	/* blamed for the first crash only: it was in a handler then */
	g_assert_cmpstr (member (neighbour_shown, "state"), ==, "done");
	g_assert_cmpuint (sc_test_count_attempts (neighbour_shown, "crashed"), ==, 1);
}

/* Two runners on one spool: every message processed by exactly one. */
static void
test_two_runners (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) ids = NULL;
	g_autofree char *log1 = g_build_filename (fixture->dir, "run1.log", NULL);
	g_autofree char *log2 = g_build_filename (fixture->dir, "run2.log", NULL);
	g_autoptr(GSubprocess) runner1 = NULL;
	g_autoptr(GSubprocess) runner2 = NULL;
	g_autoptr(GHashTable) runs = NULL;
	guint total = 0;
	const guint n = 60;

	write_logging_stage (fixture, "0.05", "3");
	runner1 = sc_test_spawn (fixture->config, log1, "run", NULL);
	runner2 = sc_test_spawn (fixture->config, log2, "run", NULL);
	ids = inject_many (fixture, n);
	g_assert_true (sc_test_wait_count (fixture->config, "done", n, 60000));
	g_subprocess_send_signal (runner1, SIGTERM);
	g_subprocess_send_signal (runner2, SIGTERM);
	g_assert_true (g_subprocess_wait (runner1, NULL, NULL));
	g_assert_true (g_subprocess_wait (runner2, NULL, NULL));
	g_assert_cmpint (g_subprocess_get_exit_status (runner1), ==, 0);
	g_assert_cmpint (g_subprocess_get_exit_status (runner2), ==, 0);

	runs = count_log_lines (fixture, &total);
	g_assert_cmpuint (total, ==, n);
	g_assert_cmpuint (g_hash_table_size (runs), ==, n);
}

/* A running daemon is woken by inject: done long before the rescan (30s). */
static void
test_wakeup (Fixture *fixture, gconstpointer data)
{
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) runner = sc_test_spawn (fixture->config, log, "run", NULL);
	g_autofree char *queue_id = NULL;

	g_usleep (300 * 1000); /* let it go to sleep */
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 1, 5000));
	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));
	g_assert_cmpint (g_subprocess_get_exit_status (runner), ==, 0);
}

/* SIGTERM during a long stage: the runner exits promptly and the message
 * is given back, not lost and not counted as a failure. */
static void
test_sigterm_releases (Fixture *fixture, gconstpointer data)
{
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) runner = NULL;
	g_autofree char *queue_id = NULL;
	g_autoptr(JsonObject) shown = NULL;
	gint64 started;

	write_logging_stage (fixture, "30", "2");
	queue_id = sc_test_inject (fixture->config, "test.example.org", message_text);
	runner = sc_test_spawn (fixture->config, log, "run", NULL);
	g_assert_true (sc_test_wait_count (fixture->config, "active", 1, 5000));
	g_usleep (500 * 1000); /* the exec stage is sleeping now */
	started = g_get_monotonic_time ();
	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));
	g_assert_cmpint (g_subprocess_get_exit_status (runner), ==, 0);
	g_assert_cmpint (g_get_monotonic_time () - started, <, 10 * G_USEC_PER_SEC);
	shown = sc_test_show (fixture->config, queue_id);
	g_assert_cmpstr (member (shown, "state"), ==, "queued");
	g_assert_cmpint (json_object_get_int_member (shown, "failures"), ==, 0);
}

static gboolean
log_contains (const char *path, const char *needle, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

	for (;;) {
		g_autofree char *text = NULL;
		if (g_file_get_contents (path, &text, NULL, NULL) && strstr (text, needle) != NULL)
			return TRUE;
		if (g_get_monotonic_time () >= deadline)
			return FALSE;
		g_usleep (20 * 1000);
	}
}

static char *
decorated_subject_line (Fixture *fixture, const char *queue_id)
{
	g_autofree char *out = NULL;
	const char *start;

	g_assert_cmpint (sc_test_run (fixture->config, NULL, &out, NULL, "export", "--stage",
				      "decorate", queue_id, NULL), ==, 0);
	start = strstr (out, "Subject: ");
	g_assert_nonnull (start);
	return g_strndup (start, strcspn (start, "\r\n"));
}

/* SIGHUP loads the new configuration; a broken one is refused and the
 * daemon goes on with the old. */
static void
test_sighup_reloads (Fixture *fixture, gconstpointer data)
{
	g_autofree char *log = g_build_filename (fixture->dir, "run.log", NULL);
	g_autoptr(GSubprocess) runner = sc_test_spawn (fixture->config, log, "run", NULL);
	g_autofree char *first = NULL;
	g_autofree char *second = NULL;
	g_autofree char *third = NULL;
	g_autofree char *subject = NULL;
	g_autofree char *good_config = NULL;

	first = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 1, 5000));
	subject = decorated_subject_line (fixture, first);
	g_assert_cmpstr (subject, ==, "Subject: [test] hello list");

	g_assert_true (g_file_get_contents (fixture->config, &good_config, NULL, NULL));
	{
		GRegex *regex = g_regex_new ("subject-prefix=\\[test\\]", 0, 0, NULL);
		g_autofree char *renamed = g_regex_replace_literal (regex, good_config, -1, 0,
								   "subject-prefix=[renamed]", 0, NULL);
		g_regex_unref (regex);
		g_assert_true (g_file_set_contents (fixture->config, renamed, -1, NULL));
	}
	g_subprocess_send_signal (runner, SIGHUP);
	g_assert_true (log_contains (log, "configuration reloaded", 5000));
	second = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 2, 5000));
	g_free (subject);
	subject = decorated_subject_line (fixture, second);
	g_assert_cmpstr (subject, ==, "Subject: [renamed] hello list");

	/* a broken file: refused, the daemon keeps the running configuration
	 * (inject reads the file too, so it goes through the spool by hand) */
	g_assert_true (g_file_set_contents (fixture->config, "[stagecoach]\nspool=spool\nworkerz=1\n", -1, NULL));
	g_subprocess_send_signal (runner, SIGHUP);
	g_assert_true (log_contains (log, "keeping the running configuration", 5000));
	g_assert_true (log_contains (log, "workerz", 100));
	{
		g_autofree char *restored = NULL;
		GRegex *regex = g_regex_new ("subject-prefix=\\[test\\]", 0, 0, NULL);
		restored = g_regex_replace_literal (regex, good_config, -1, 0, "subject-prefix=[file]", 0, NULL);
		g_regex_unref (regex);
		g_assert_true (g_file_set_contents (fixture->config, restored, -1, NULL));
	}
	third = sc_test_inject (fixture->config, "test.example.org", message_text);
	g_assert_true (sc_test_wait_count (fixture->config, "done", 3, 5000));
	g_free (subject);
	subject = decorated_subject_line (fixture, third);
	g_assert_cmpstr (subject, ==, "Subject: [renamed] hello list"); /* not reloaded: no SIGHUP */

	g_subprocess_send_signal (runner, SIGTERM);
	g_assert_true (g_subprocess_wait (runner, NULL, NULL));
	g_assert_cmpint (g_subprocess_get_exit_status (runner), ==, 0);
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_backend_init ())
		return 0;
	g_test_add ("/runner/pipeline/done", Fixture, NULL, setup, test_pipeline_done, teardown);
	g_test_add ("/runner/archive-failure/resumes-at-archive", Fixture, NULL, setup,
		    test_archive_failure_resumes, teardown);
	g_test_add ("/runner/retry/from-stage", Fixture, NULL, setup, test_retry_from_stage, teardown);
	g_test_add ("/runner/permanent/dead-with-notification", Fixture, NULL, setup,
		    test_permanent_dead, teardown);
	g_test_add ("/runner/transient/backoff-then-dead", Fixture, NULL, setup,
		    test_transient_then_dead, teardown);
	g_test_add ("/runner/transient/max-age-said", Fixture, NULL, setup, test_max_age_said, teardown);
	g_test_add ("/runner/hold-release-delete", Fixture, NULL, setup, test_hold_release_delete, teardown);
	g_test_add ("/runner/crash/kill-9-resumes", Fixture, NULL, setup, test_kill9_resumes, teardown);
	g_test_add ("/runner/crash/limit-holds", Fixture, NULL, setup, test_crash_limit_holds, teardown);
	g_test_add ("/runner/crash/neighbour-not-held", Fixture, NULL, setup, test_crash_neighbour_not_held,
		    teardown);
	g_test_add ("/runner/concurrency/two-runners", Fixture, NULL, setup, test_two_runners, teardown);
	g_test_add ("/runner/wakeup/inject-wakes-daemon", Fixture, NULL, setup, test_wakeup, teardown);
	g_test_add ("/runner/signal/sigterm-releases", Fixture, NULL, setup, test_sigterm_releases, teardown);
	g_test_add ("/runner/signal/sighup-reloads", Fixture, NULL, setup, test_sighup_reloads, teardown);
	return g_test_run ();
}
