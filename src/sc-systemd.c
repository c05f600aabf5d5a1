/* sc-systemd.c — sd_notify for the daemon (sc-systemd.h). */
#include "config.h"

#include "sc-systemd.h"

#ifdef HAVE_LIBSYSTEMD
#include <string.h>
#include <systemd/sd-daemon.h>
#endif

#ifdef HAVE_LIBSYSTEMD

/* Keeps one line: a STATUS= value ends at the first newline. */
static char *
one_line (const char *status)
{
	char *line = g_strdup (status != NULL ? status : "");
	char *newline = strpbrk (line, "\r\n");

	if (newline != NULL)
		*newline = '\0';
	return line;
}

static void
notify (const char *state)
{
	/* 0: not sent (no $NOTIFY_SOCKET); < 0: systemd is gone or the
	 * socket is not ours, nothing the daemon can do about it */
	int r = sd_notify (0, state);

	if (r < 0)
		g_debug ("sd_notify: %s", g_strerror (-r));
}

gboolean
sc_systemd_available (void)
{
	return TRUE;
}

/* @fields: "" or assignments each ending in a newline; then STATUS= */
static void
notify_with_status (const char *fields, const char *status)
{
	g_autofree char *line = one_line (status);
	g_autofree char *state = g_strdup_printf ("%sSTATUS=%s", fields, line);

	notify (state);
}

void
sc_systemd_ready (const char *status)
{
	notify_with_status ("READY=1\n", status);
}

void
sc_systemd_reloading (void)
{
	g_autofree char *state =
	    g_strdup_printf ("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT "\nSTATUS=Reloading the configuration",
			     g_get_monotonic_time ());

	notify (state);
}

void
sc_systemd_stopping (const char *status)
{
	notify_with_status ("STOPPING=1\n", status);
}

void
sc_systemd_status (const char *status)
{
	notify_with_status ("", status);
}

static gboolean
watchdog_cb (gpointer user_data)
{
	/* from the main loop itself: a loop stuck for WatchdogSec= gets the
	 * daemon restarted */
	notify ("WATCHDOG=1");
	return G_SOURCE_CONTINUE;
}

guint
sc_systemd_watchdog_start (void)
{
	uint64_t usec = 0;
	guint interval_ms;
	GSource *source;
	guint id;
	g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

	/* > 0 only when $WATCHDOG_PID is this process (or unset) */
	if (sd_watchdog_enabled (0, &usec) <= 0 || usec == 0)
		return 0;
	interval_ms = (guint) MAX (usec / 2 / 1000, 1);
	source = g_timeout_source_new (interval_ms);
	g_source_set_callback (source, watchdog_cb, NULL, NULL);
	g_source_set_name (source, "sd_notify watchdog");
	id = g_source_attach (source, context);
	g_source_unref (source);
	g_debug ("systemd watchdog: pinging every %u ms", interval_ms);
	/* the first ping at once: the interval starts now, not at READY */
	notify ("WATCHDOG=1");
	return id;
}

#else /* !HAVE_LIBSYSTEMD */

gboolean
sc_systemd_available (void)
{
	return FALSE;
}

void
sc_systemd_ready (const char *status)
{
}

void
sc_systemd_reloading (void)
{
}

void
sc_systemd_stopping (const char *status)
{
}

void
sc_systemd_status (const char *status)
{
}

guint
sc_systemd_watchdog_start (void)
{
	return 0;
}

#endif
