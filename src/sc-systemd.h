/* sc-systemd.h — what the daemon tells systemd (sd_notify).
 *
 * Under a Type=notify unit (data/systemd/stagecoach.service.in):
 * READY=1 once the spool is open and every listener is bound, RELOADING=1
 * then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM/SIGINT,
 * STATUS= lines for `systemctl status`, and WATCHDOG=1 from the main loop
 * at half of WatchdogSec=.  Outside systemd (no $NOTIFY_SOCKET) and in a
 * build without libsystemd every call does nothing.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Whether this build can talk to systemd at all (libsystemd). */
gboolean sc_systemd_available (void);
/* READY=1 with a STATUS= line. */
void sc_systemd_ready (const char *status);
/* RELOADING=1 (with MONOTONIC_USEC=, as newer systemd wants). */
void sc_systemd_reloading (void);
/* STOPPING=1 with a STATUS= line. */
void sc_systemd_stopping (const char *status);
/* A STATUS= line alone. */
void sc_systemd_status (const char *status);
/* Pings WATCHDOG=1 from the thread-default main context every half of
 * $WATCHDOG_USEC when systemd asked this process for it; returns the
 * source id to g_source_remove(), 0 when there is no watchdog. */
guint sc_systemd_watchdog_start (void);

G_END_DECLS
