/* sc-events.h — admin events raised on worker threads that belong to no
 * message (a mailer's circuit opened or closed), carried to the main
 * thread, which writes them to the notification outbox. */
#pragma once

#include "sc-spool.h"

G_BEGIN_DECLS

/* Any thread.  @kind: "mailer.circuit_open"; @detail: (nullable) */
void sc_events_push (const char *kind, const char *detail);
/* Main thread: writes every queued event; returns how many. */
guint sc_events_drain (ScSpool *spool, gint64 now);

G_END_DECLS
