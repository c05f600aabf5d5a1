/* sc-ingress.h — every door mail comes in by, and the one way behind them.
 *
 * Doors: the SMTP and LMTP listeners (sc-smtp-server.c), the local
 * hand-off socket that `inject` and `sendmail` use while a daemon runs
 * (sc-handoff-server.c), and HTTP POST /api/v1/messages on the admin
 * server.  Each turns what it received into an ScSubmission and calls
 * sc_acceptor_accept_async(); the answer ("250", "201", queue id) is given
 * only in the callback, after the COMMIT (synchronous=FULL) returned.
 *
 * One writer: the acceptor runs on the ingress thread (its own
 * GMainContext, where the SMTP/LMTP/hand-off listeners also run).
 * Submissions from every connection and door queue up there and are
 * committed together by an idle source: when idle, a message is committed
 * at once; under load, everything that arrived during one fsync goes into
 * the next transaction (group commit, as Postfix's cleanup cannot and
 * PostgreSQL's WAL writer does).  Writers in one process never wait in
 * SQLite's busy handler: the spool serializes them with a mutex.
 */
#pragma once

#include <gio/gio.h>

#include "sc-config.h"
#include "sc-spool.h"

G_BEGIN_DECLS

/* What a door received: the envelope and the bytes, nothing checked yet. */
typedef struct {
	const char *door;              /* "smtp", "lmtp", "local", "http": for logs */
	const char *peer;              /* (nullable) remote address, for logs */
	const char *list_id;           /* (nullable) named by the caller (inject --list,
				        * HTTP list=); NULL: chosen by sc_ingress_route() */
	const char *sender;            /* "" for the null reverse-path */
	const char *const *recipients; /* NULL-terminated, at least one */
	GBytes *raw;                   /* the message as received (LF or CRLF line ends) */
} ScSubmission;

/* Which list a message belongs to, the documented rule: its List-Id
 * (the part in <>) naming a [list:…]; else the envelope sender equal
 * (ASCII case-insensitive) to a list's bounces= address; else
 * default-list.  NULL when none applies. (transfer none) */
const ScListConfig *sc_ingress_route (const ScConfig *config,
				      const char *list_id_header, /* (nullable) raw header value */
				      const char *sender);

/* Why a submission was not accepted: the door maps these to its replies
 * (SMTP code, enhanced status, HTTP status, exit code). */
#define SC_INGRESS_ERROR (sc_ingress_error_quark ())
typedef enum {
	SC_INGRESS_ERROR_BAD_MESSAGE,   /* empty, not a message, NUL in headers: 550 5.6.0 / 422 / 65 */
	SC_INGRESS_ERROR_BAD_ADDRESS,   /* sender or a recipient: 553 5.1.3 / 422 / 65 */
	SC_INGRESS_ERROR_NO_LIST,       /* no list for it (route, or an unknown explicit
					 * list): 550 5.1.1 / 422 / 64 */
	SC_INGRESS_ERROR_TOO_BIG,       /* over max-message-size: 552 5.3.4 / 413 / 65 */
	SC_INGRESS_ERROR_SPOOL_BUSY,    /* locked, I/O, stopping: 451 4.3.0 / 503 / 75 */
	SC_INGRESS_ERROR_SPOOL_FULL,    /* no space: 452 4.3.1 / 507 / 75 */
} ScIngressError;
GQuark sc_ingress_error_quark (void);

/* The answer to an accepted submission. */
typedef struct {
	char *queue_id;      /* (nullable) NULL: every recipient was a duplicate (nothing new stored) */
	char *list_id;
	char *message_id;    /* the Message-ID stored (generated if the message had none) */
	guint n_recipients;  /* stored for delivery */
	guint n_duplicates;  /* recipients accepted before within dedupe-window: not sent again */
	char *duplicate_of;  /* (nullable) the queue id the first duplicate recipient went to:
			      * what a retrying caller is told when nothing new was stored */
} ScAccepted;

void sc_accepted_free (ScAccepted *accepted);

/* SC_INGRESS_ERROR_TOO_BIG for a message over @limit bytes: one text for
 * every door, whether it counted while reading or afterwards. */
void sc_ingress_set_too_big (GError **error, guint64 limit);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAccepted, sc_accepted_free)

/* A submission checked and routed: what the spool stores.  The same
 * checks for every door and for `inject` writing the spool itself. */
typedef struct {
	char *list_id;
	char *pipeline;
	char *sender;
	GStrv recipients;
	char *subject;     /* (nullable) decoded */
	char *message_id;  /* with <>; generated (and added to raw) when missing */
	gboolean generated_message_id;
	GBytes *raw;
	char *door;
	char *peer;        /* (nullable) */
} ScPrepared;

/* Checks and routes @submission against @config: size, headers, sender
 * and recipient syntax, list.  (transfer full) NULL with SC_INGRESS_ERROR. */
ScPrepared *sc_ingress_prepare (const ScConfig *config, const ScSubmission *submission, GError **error);
void sc_prepared_free (ScPrepared *prepared);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScPrepared, sc_prepared_free)

/* Which messages of a batch are stored already leased to the runner in
 * this process, which then takes them without a claim transaction. */
typedef struct {
	const char *owner;   /* the runner's lease owner name */
	gint64 expires_at;
	guint count;         /* the batch's first @count; the others are queued */
	ScMessage **claimed; /* (out) [n_prepared] each as claimed, or NULL: queued */
} ScIngressLease;

/* Commits @prepared (one transaction, synchronous=FULL) with
 * deduplication over @dedupe_window (µs, 0: off); out_accepted[i] gets
 * each one's answer.  For the acceptor's group commit and for `inject`
 * when no daemon runs (@lease NULL).  Errors are SC_INGRESS_ERROR_SPOOL_*:
 * nothing of the batch is stored. */
gboolean sc_ingress_store (ScSpool *spool,
			   ScPrepared *const *prepared,
			   guint n_prepared,
			   gint64 dedupe_window,
			   gint64 now,
			   const ScIngressLease *lease, /* (nullable) */
			   ScAccepted **out_accepted,
			   GError **error);

typedef struct _ScAcceptor ScAcceptor;

/* Checks @submission at once on the calling thread (addresses, headers,
 * list, size), then queues it for the next group commit; @callback runs
 * on the caller's thread-default main context after the commit (or the
 * refusal).  @submission is copied; the caller may free it on return. */
void sc_acceptor_accept_async (ScAcceptor *acceptor,
			       const ScSubmission *submission,
			       GCancellable *cancellable,
			       GAsyncReadyCallback callback,
			       gpointer user_data);
/* (transfer full) NULL with an SC_INGRESS_ERROR. */
ScAccepted *sc_acceptor_accept_finish (ScAcceptor *acceptor, GAsyncResult *result, GError **error);

/* The runner in this process, as the acceptor hands it what it accepted:
 * @reserve (any thread) says how many of @wanted messages it takes now;
 * that many are stored leased to @owner and given to @take (any thread,
 * after the commit; transfer full, element-type ScMessage).  The rest
 * are queued and claimed as usual. */
typedef struct {
	const char *owner;
	guint (*reserve) (gpointer runner, guint wanted);
	void (*take) (gpointer runner, GPtrArray *messages);
	gpointer runner;
} ScHandover;

/* The ingress thread: acceptor + listeners.  Started by `run` (not with
 * --once); binds every configured listener before returning, so a port
 * in use is an error here, not later. */
typedef struct _ScIngress ScIngress;

ScIngress *sc_ingress_new (ScConfig *config, GError **error);
ScAcceptor *sc_ingress_get_acceptor (ScIngress *ingress);
GMainContext *sc_ingress_get_context (ScIngress *ingress);
/* Called on the main context after each group commit that stored
 * something (the daemon kicks its runner). */
void sc_ingress_set_accepted_hook (ScIngress *ingress, GSourceFunc hook, gpointer user_data);
/* From now on, accepted messages go to @handover's runner while it has
 * room (copied; the runner must outlive @ingress). */
void sc_ingress_set_handover (ScIngress *ingress, const ScHandover *handover);
/* SIGHUP: new limits and lists for the next connections and commits;
 * listen addresses keep their sockets (a change needs a restart). */
void sc_ingress_set_config (ScIngress *ingress, ScConfig *config);
/* Stops listening, answers connections in progress 421 at their next
 * command, commits what is queued, refuses later submissions
 * (SC_INGRESS_ERROR_SPOOL_BUSY), joins the thread. */
void sc_ingress_free (ScIngress *ingress);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScIngress, sc_ingress_free)

G_END_DECLS
