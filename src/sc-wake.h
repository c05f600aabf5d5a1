/* sc-wake.h — wake a sleeping runner the moment new work is committed.
 *
 * Wakeups are hints; the spool is the truth.  Each runner listens on a
 * datagram socket spool/wake/PID.sock; `inject` sends one byte to each after
 * its commit.  A lost wakeup costs at most the runner's rescan interval.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* (transfer full) a bound, non-blocking datagram socket; NULL with @error
 * if the path would be too long for a Unix socket (the caller carries on
 * with rescans). @out_path: (out) (transfer full) to unlink at exit. */
GSocket *sc_wake_listen (const char *spool_folder, char **out_path, GError **error);
/* Best effort, never blocks: pokes every runner of this spool. */
void sc_wake_notify (const char *spool_folder);
/* Reads and discards pending datagrams. */
void sc_wake_drain (GSocket *socket);

G_END_DECLS
