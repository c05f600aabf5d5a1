/* sc-cli-run.c — `run` (the daemon), `check-config` and `admin-url`.
 * Signals go through the main loop (g_unix_signal_add): SIGTERM and SIGINT
 * finish or release in-flight work, SIGHUP reloads the configuration and
 * keeps the old one if the new one has errors.  Under systemd each of these
 * is reported (sc-systemd.h): READY=1 once the loop runs with every door
 * bound, RELOADING=1/READY=1 around a reload, STOPPING=1. */
#include "config.h"

#include <locale.h>

#include <curl/curl.h>
#include <errno.h>
#include <glib-unix.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "sc-cli.h"
#include "sc-error.h"
#include "sc-i18n.h"
#include "sc-admin-server.h"
#include "sc-ingress.h"
#include "sc-notifier.h"
#include "sc-runner.h"
#include "sc-spool-uri.h"
#include "sc-systemd.h"

typedef struct {
	ScCli *cli;
	ScRunner *runner;
	ScNotifier *notifier;     /* (nullable) */
	ScAdminServer *admin;     /* (nullable) */
	ScIngress *ingress;       /* (nullable) gone once stopping */
	char *ready_status;       /* systemd's STATUS= while running */
	guint ready_id;           /* the idle that says READY=1, until it has */
} ScDaemon;

static gboolean
kick_runner_cb (gpointer user_data)
{
	sc_runner_kick (user_data);
	return G_SOURCE_REMOVE;
}

static gboolean
kick_notifier_cb (gpointer user_data)
{
	sc_notifier_kick (user_data);
	return G_SOURCE_REMOVE;
}

static gboolean
stop_cb (gpointer user_data)
{
	ScDaemon *daemon = user_data;

	sc_systemd_stopping ("Stopping: finishing the stages in flight");
	/* no new mail first: what is queued is committed and answered, later
	 * clients get 421/451 or a refused connection and keep their mail */
	if (daemon->admin != NULL)
		sc_admin_server_set_acceptor (daemon->admin, NULL);
	g_clear_pointer (&daemon->ingress, sc_ingress_free);
	sc_runner_stop (daemon->runner);
	return G_SOURCE_CONTINUE;
}

static gboolean
reload_cb (gpointer user_data)
{
	ScDaemon *daemon = user_data;
	g_autoptr(GError) error = NULL;
	g_autofree char *path = sc_config_find_path (daemon->cli->config_path);
	g_autoptr(ScConfig) config = NULL;

	sc_systemd_reloading ();
	config = sc_config_load (path, &error);
	if (config == NULL) {
		g_warning ("SIGHUP: keeping the running configuration, the new one has errors:\n%s",
			   error->message);
		/* still serving, on the old configuration: ready again */
		sc_systemd_ready ("Running; the last reload failed, the configuration has errors (see the log)");
		return G_SOURCE_CONTINUE;
	}
	if (g_strcmp0 (config->spool, daemon->cli->config->spool) != 0)
		g_warning ("SIGHUP: spool= changed; that takes a restart");
	if (g_strcmp0 (config->state_dir, daemon->cli->config->state_dir) != 0)
		g_warning ("SIGHUP: state-dir= changed; that takes a restart");
	g_message ("configuration reloaded from %s", path != NULL ? path : "(defaults)");
	sc_runner_set_config (daemon->runner, config);
	if (daemon->ingress != NULL)
		sc_ingress_set_config (daemon->ingress, config);
	if (daemon->notifier != NULL)
		sc_notifier_set_config (daemon->notifier, config);
	/* a new listen address is refused there: the socket and its rules stay together */
	if (daemon->admin != NULL && !sc_admin_server_set_config (daemon->admin, config, &error))
		g_warning ("SIGHUP: admin server keeps its old settings: %s", error->message);
	sc_systemd_ready (daemon->ready_status);
	return G_SOURCE_CONTINUE;
}

/* From inside the main loop, so that the runner runs and the admin server
 * answers when systemd hears READY=1; the doors were bound before. */
static gboolean
ready_cb (gpointer user_data)
{
	ScDaemon *daemon = user_data;

	daemon->ready_id = 0;
	sc_systemd_ready (daemon->ready_status);
	return G_SOURCE_REMOVE;
}

int
sc_cli_run (ScCli *cli, int argc, char **argv)
{
	gboolean once = FALSE;
	g_autoptr(ScRunner) runner = NULL;
	g_autoptr(ScClock) clock = sc_clock_new_system ();
	g_autoptr(GError) error = NULL;
	ScDaemon daemon = {.cli = cli};
	gboolean ok;
	guint signal_ids[3];
	guint watchdog_id = 0;
	const GOptionEntry entries[] = {
	    {"once", 0, 0, G_OPTION_ARG_NONE, &once, N_("Process everything due now, then exit"), NULL},
	    {NULL},
	};

	if (!sc_cli_parse (cli, "", _("Run the pipeline."), entries, &argc, &argv))
		return EX_USAGE;
	/* Past --help (GOption printed it in the reader's language and exited),
	 * the daemon speaks English: its log lines embed error texts and are
	 * grepped and documented, its SMTP replies are protocol, and what it
	 * stores in the spool (last errors, notes) is read by every operator
	 * and program alike. */
	setlocale (LC_MESSAGES, "C");
	/* Once, before any worker thread exists; only the daemon's handlers use
	 * curl, so inject and the other short commands skip its TLS start-up
	 * (measured: most of a short command's run time). */
	curl_global_init (CURL_GLOBAL_DEFAULT);
#ifdef __GLIBC__
	/* SQLite frees a statement journal after every statement of a
	 * multi-row transaction; with glibc's default threshold each free
	 * gave the top of the thread's heap back (madvise), and the TLB
	 * shoot-down that follows interrupts the other core: 14 % of the
	 * ingress thread's time in perf, 1.4x the accept rate without it.
	 * Keep up to 8 MiB free per arena instead. */
	(void) mallopt (M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	/* Setting the trim threshold freezes glibc's mmap threshold at its
	 * 128 KiB default (no more dynamic adjustment), and libcurl takes a
	 * 128 KiB scratch buffer for SMTP dot-stuffing per message: each was
	 * an mmap and munmap, the munmap a TLB shoot-down (strace: one pair
	 * per message delivered).  Blocks below 1 MiB come from the heap. */
	(void) mallopt (M_MMAP_THRESHOLD, 1024 * 1024);
#endif
	if (sc_cli_get_config (cli) == NULL)
		return EX_CONFIG;
	for (guint i = 0; cli->config->warnings != NULL && i < cli->config->warnings->len; i++)
		g_warning ("configuration: %s (deliveries through it fail until fixed)",
			   (const char *) cli->config->warnings->pdata[i]);
	/* Before the spool opens (it may wait for a lock, or for PostgreSQL)
	 * and before any door opens: a SIGTERM that comes while the daemon
	 * starts (a unit stopped right after its start) must stop it cleanly
	 * once started, not kill it, with sessions open or not.  The
	 * callbacks run from the main loop, when everything below exists. */
	signal_ids[0] = g_unix_signal_add (SIGTERM, stop_cb, &daemon);
	signal_ids[1] = g_unix_signal_add (SIGINT, stop_cb, &daemon);
	signal_ids[2] = g_unix_signal_add (SIGHUP, reload_cb, &daemon);
	runner = sc_runner_new (cli->config, clock, &error);
	if (runner == NULL) {
		for (gsize i = 0; i < G_N_ELEMENTS (signal_ids); i++)
			g_source_remove (signal_ids[i]);
		return sc_cli_fail (cli, error);
	}
	daemon.runner = runner;
	if (!once) {
		g_autoptr(GError) error_local = NULL;
		ScSpool *spool = sc_runner_get_spool (runner);

		/* after the spool, which made a folder spool's folder (the usual
		 * state-dir, 0750); like the hand-off and the dashboard that need
		 * it, mail flows without it */
		if (g_mkdir_with_parents (cli->config->state_dir, 0700) != 0)
			g_warning ("state-dir: cannot create %s: %s (no hand-off socket, no generated admin token)",
				   cli->config->state_dir, g_strerror (errno));

		daemon.ingress = sc_ingress_new (cli->config, &error_local);
		if (daemon.ingress == NULL) {
			for (gsize i = 0; i < G_N_ELEMENTS (signal_ids); i++)
				g_source_remove (signal_ids[i]);
			return sc_cli_fail (cli, error_local);
		}
		sc_ingress_set_accepted_hook (daemon.ingress, kick_runner_cb, runner);
		{
			ScHandover handover = {
			    .owner = sc_runner_get_owner (runner),
			    .reserve = sc_runner_reserve,
			    .take = sc_runner_take,
			    .runner = runner,
			};
			sc_ingress_set_handover (daemon.ingress, &handover);
		}
		daemon.notifier = sc_notifier_new (cli->config, spool, clock);
		sc_runner_set_notify_hook (runner, kick_notifier_cb, daemon.notifier);
		if (cli->config->admin_listen != NULL) {
			/* mail keeps flowing without a dashboard: a busy port is a warning */
			daemon.admin = sc_admin_server_new (cli->config, spool, clock, &error_local);
			if (daemon.admin == NULL)
				g_warning ("admin server not started: %s", error_local->message);
			else
				sc_admin_server_set_kick (daemon.admin, kick_runner_cb, runner);
			if (daemon.admin != NULL)
				sc_admin_server_set_acceptor (daemon.admin, sc_ingress_get_acceptor (daemon.ingress));
		}
	}
	if (!once) {
		g_autofree char *shown = sc_spool_uri_mask (cli->config->spool);
		const char *backend = sc_spool_backend_name (sc_runner_get_spool (runner));
		g_message ("stagecoach %s running on spool %s (%s), state in %s", PACKAGE_VERSION, shown,
			   backend, cli->config->state_dir);
		daemon.ready_status = g_strdup_printf ("Running on spool %s (%s)", shown, backend);
		/* default priority: a busy runner's own sources cannot hold it back */
		daemon.ready_id = g_idle_add_full (G_PRIORITY_DEFAULT, ready_cb, &daemon, NULL);
		watchdog_id = sc_systemd_watchdog_start ();
	}
	ok = sc_runner_run (runner, once, &error);
	if (watchdog_id != 0)
		g_source_remove (watchdog_id);
	if (daemon.ready_id != 0)
		g_source_remove (daemon.ready_id);
	for (gsize i = 0; i < G_N_ELEMENTS (signal_ids); i++)
		g_source_remove (signal_ids[i]);
	g_clear_pointer (&daemon.ingress, sc_ingress_free);
	g_clear_pointer (&daemon.admin, sc_admin_server_free);
	g_clear_pointer (&daemon.notifier, sc_notifier_free);
	g_free (daemon.ready_status);
	if (!ok)
		return sc_cli_fail (cli, error);
	return EX_OK;
}

/* @message with the spool's location shown masked, in case an error
 * repeats what it was given. (transfer full) */
static char *
without_password (const ScConfig *config, const char *message)
{
	g_autofree char *shown = sc_spool_uri_mask (config->spool);
	g_autoptr(GString) text = g_string_new (message);

	if (shown != NULL && strcmp (shown, config->spool) != 0)
		g_string_replace (text, config->spool, shown, 0);
	return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Opens the spool as the daemon would and says what it is; a folder spool
 * not made yet is only announced (opening would create it).  EX_TEMPFAIL
 * when it cannot be opened now: the file itself is fine. */
static int
check_spool (ScCli *cli)
{
	const ScConfig *config = cli->config;
	g_autofree char *shown = sc_spool_uri_mask (config->spool);
	g_autoptr(GError) error = NULL;
	g_autofree char *server = NULL;
	int schema = 0;

	if (config->spool_kind == SC_SPOOL_URI_FOLDER) {
		g_autofree char *db = g_build_filename (config->spool, "spool.db", NULL);
		if (!g_file_test (db, G_FILE_TEST_EXISTS)) {
			printf (_("spool: sqlite at %s (not there yet: the first start creates it)\n"), shown);
			return EX_OK;
		}
	}
	cli->spool = sc_spool_open (config->spool, config->busy_timeout, &error);
	if (cli->spool == NULL || !sc_spool_describe (cli->spool, &server, &schema, &error)) {
		g_autofree char *message = without_password (config, error->message);
		g_autofree char *safe = sc_cli_terminal_safe (message, TRUE);
		fprintf (stderr, "stagecoach %s: %s\n", cli->command,
			 _("the spool cannot be used now (the configuration itself is valid):"));
		fprintf (stderr, "%s: %s\n", shown, safe);
		return EX_TEMPFAIL;
	}
	printf (_("spool: %s (%s, schema %d) at %s\n"), sc_spool_backend_name (cli->spool), server, schema, shown);
	return EX_OK;
}

int
sc_cli_check_config (ScCli *cli, int argc, char **argv)
{
	const GOptionEntry entries[] = {{NULL}};
	g_autofree char *path = NULL;

	if (!sc_cli_parse (cli, "", _("Check the configuration."), entries, &argc, &argv))
		return EX_USAGE;
	if (sc_cli_get_config (cli) == NULL)
		return EX_CONFIG;
	path = sc_config_find_path (cli->config_path);
	if (cli->config->warnings != NULL && cli->config->warnings->len > 0) {
		fprintf (stderr, "stagecoach %s: %s\n", cli->command, _("the configuration has errors:"));
		for (guint i = 0; i < cli->config->warnings->len; i++)
			fprintf (stderr, "%s\n", (const char *) cli->config->warnings->pdata[i]);
		return EX_CONFIG;
	}
	printf (g_dngettext (GETTEXT_PACKAGE, "%s: OK (%u list)\n", "%s: OK (%u lists)\n",
			     g_hash_table_size (cli->config->lists)),
		path != NULL ? path : _("built-in defaults"),
		g_hash_table_size (cli->config->lists));
	if (g_file_test (cli->config->state_dir, G_FILE_TEST_IS_DIR))
		printf (_("state-dir: %s\n"), cli->config->state_dir);
	else
		printf (_("state-dir: %s (not there yet: the first start creates it)\n"), cli->config->state_dir);
	fflush (stdout);
	return check_spool (cli);
}

int
sc_cli_admin_url (ScCli *cli, int argc, char **argv)
{
	const GOptionEntry entries[] = {{NULL}};
	g_autoptr(GError) error = NULL;
	g_autofree char *url = NULL;

	if (!sc_cli_parse (cli, "", _("Print the dashboard's login link."), entries, &argc, &argv))
		return EX_USAGE;
	if (sc_cli_get_config (cli) == NULL)
		return EX_CONFIG;
	url = sc_admin_login_url (cli->config, &error);
	if (url == NULL)
		return sc_cli_fail (cli, error);
	printf ("%s\n", url);
	return EX_OK;
}
