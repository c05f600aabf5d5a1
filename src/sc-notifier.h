/* sc-notifier.h — drains the admin notification outbox to the webhook.
 *
 * An ScNotifier lives on the main thread of `run`: it uses the spool
 * connection it is given and libsoup's async API on the thread-default main
 * context current at sc_notifier_new().  Every function here must be called
 * from that thread.
 */
#pragma once

#include <libsoup/soup.h>

#include "sc-clock.h"
#include "sc-config.h"
#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct _ScNotifier ScNotifier;

/* Starts draining at once (rows left pending by an earlier run go first).
 * @spool: (unowned) must outlive the notifier.  @config and @clock are
 * referenced.  With no webhook configured it sends nothing: rows stay
 * pending. (transfer full) */
ScNotifier *sc_notifier_new (ScConfig *config, ScSpool *spool, ScClock *clock);
/* New rows may exist (the runner committed a dead message): drain soon. */
void sc_notifier_kick (ScNotifier *notifier);
/* Swaps in a reloaded configuration (SIGHUP); a request in flight keeps
 * the old one. */
void sc_notifier_set_config (ScNotifier *notifier, ScConfig *config);
/* Cancels a request in flight; its rows stay pending for the next run. */
void sc_notifier_free (ScNotifier *notifier);

/* What `notify-test` shares with the notifier. */

/* The most of a reply body that is read: receivers answer with a line or
 * two, and nothing a receiver sends may grow the daemon's memory. */
#define SC_NOTIFIER_REPLY_MAX (64 * 1024)

/* The session every notification goes through: User-Agent
 * stagecoach/VERSION, @config's notify timeout. (transfer full) */
SoupSession *sc_notifier_new_session (const ScConfig *config);
/* A POST of @body to the webhook with Content-Type application/json,
 * that follows no redirect (a 3xx is the answer: the signed body must not
 * go to another host, nor turn into a GET),
 * X-Stagecoach-Delivery: @delivery and X-Stagecoach-Signature: sha256=HEX
 * (HMAC-SHA256 of @body under the secret file's contents, trailing newline
 * trimmed).  No webhook, a bad URL or an unreadable secret file is
 * SC_CONFIG_ERROR_INVALID. (transfer full) */
SoupMessage *sc_notifier_build_message (const ScConfig *config,
					const char *delivery,
					GBytes *body,
					GError **error);
/* Reads at most SC_NOTIFIER_REPLY_MAX bytes of a reply body (blocking)
 * and closes @stream without waiting for the rest. (transfer full) */
GBytes *sc_notifier_read_reply (GInputStream *stream, GError **error);
/* @url for a log line: user-info and query (where credentials live) shown
 * as "***", no fragment. (transfer full) */
char *sc_notifier_redact_url (const char *url);
/* (nullable) A 3xx answer's Location, resolved against the request URL
 * and redacted; NULL for other answers. (transfer full) */
char *sc_notifier_redirect_location (SoupMessage *message);
/* "sha256=HEX" of @body under @key. (transfer full) */
char *sc_notifier_sign (const char *key, gsize key_len, GBytes *body);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScNotifier, sc_notifier_free)

G_END_DECLS
