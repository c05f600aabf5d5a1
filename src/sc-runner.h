/* sc-runner.h — the daemon's heart: claims due messages, runs their stages
 * on worker threads, commits outcomes in groups, sleeps until the next due
 * time.  Lives on the thread that created it (the main context's).
 */
#pragma once

#include "sc-clock.h"
#include "sc-config.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct _ScRunner ScRunner;

/* Opens the spool and registers as an owner. */
ScRunner *sc_runner_new (ScConfig *config, ScClock *clock, GError **error);
void sc_runner_free (ScRunner *runner);

/* Runs the main loop until sc_runner_stop() (or, with @once, until nothing
 * is due any more: everything due at the start, retries that came due
 * included, has been processed). */
gboolean sc_runner_run (ScRunner *runner, gboolean once, GError **error);
/* Finish in-flight work (or release it after a grace period), then return. */
void sc_runner_stop (ScRunner *runner);
/* New claims use @config; work already claimed keeps its snapshot. */
void sc_runner_set_config (ScRunner *runner, ScConfig *config);

/* The runner's own spool connection, for others on the same main context
 * (admin server, notifier).  (transfer none) */
ScSpool *sc_runner_get_spool (ScRunner *runner);
/* Called on the main thread after a commit that wrote admin
 * notifications (a message died, recipients were refused). */
void sc_runner_set_notify_hook (ScRunner *runner, GSourceFunc func, gpointer data);
/* New work may be due (an operator's retry): claim now. */
void sc_runner_kick (ScRunner *runner);
/* The hand-over from the acceptor (ScHandover; any thread): how many of
 * @wanted new messages the runner takes leased now (its room for a
 * claim), and the messages stored leased to it (transfer full). */
guint sc_runner_reserve (gpointer runner, guint wanted);
void sc_runner_take (gpointer runner, GPtrArray *messages);
/* Its lease owner name. */
const char *sc_runner_get_owner (ScRunner *runner);

/* Messages whose processing crashed a runner this many times are held. */
#define SC_RUNNER_CRASH_LIMIT 3

/* Bytes a claimed message holds at its peak per byte of its raw size
 * (raw, latest output, a stage's working copies); claim-memory counts
 * this.  Measured: one 50 MB message through decorate;archive peaks at
 * 5.2 times its size above the process baseline (DECISIONS.md). */
#define SC_RUNNER_MEMORY_FACTOR 6

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScRunner, sc_runner_free)

G_END_DECLS
