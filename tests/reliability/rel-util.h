/* rel-util.h — what the crash suite and the fault matrix share on top of
 * tests/sc-test-util.h: a daemon handle that can tell whether it still
 * runs, injection to many recipients, waiting on one message's state, and
 * reading the spool and smtp-sink dumps in bulk. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "sc-test-sink.h"

G_BEGIN_DECLS

typedef struct {
	GSubprocess *process;
	char *log_path;
} RelDaemon;

/* `stagecoach run` in the background, its output appended to @log_path;
 * killed if the calling thread ends first (call from the main thread).
 * @env: (nullable) NULL-terminated "NAME=VALUE" extras (LD_PRELOAD …). */
RelDaemon *rel_daemon_start (const char *config, const char *log_path, const char *const *env);
/* TRUE while the process has not exited. */
gboolean rel_daemon_alive (RelDaemon *daemon);
/* SIGKILL and reap. */
void rel_daemon_kill (RelDaemon *daemon);
/* SIGTERM, wait up to @timeout_ms (then SIGKILL); the exit status, or
 * 128+signal, or -1 when it had to be killed. */
int rel_daemon_stop (RelDaemon *daemon, guint timeout_ms);
void rel_daemon_free (RelDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelDaemon, rel_daemon_free)

/* inject --list @list RCPT… with @message (@length bytes) on stdin; the
 * exit status; @out_queue_id and @out_stderr: (optional) (transfer full). */
int rel_inject (const char *config,
		const char *list,
		const char *message,
		gsize length,
		const char *const *recipients,
		char **out_queue_id,
		char **out_stderr);

/* Member @name of @object as a string, NULL when absent or null. */
const char *rel_member (JsonObject *object, const char *name);
/* Polls `show --json` until the state is one of @states ("done|dead"),
 * up to @timeout_ms; returns the last shown object. (transfer full) */
JsonObject *rel_wait_state (const char *config, const char *queue_id, const char *states, guint timeout_ms);
/* Recipients of @shown in @status. */
guint rel_count_recipient_status (JsonObject *shown, const char *status);
/* Attempts of @shown with @outcome (NULL: all). */
guint rel_count_attempts (JsonObject *shown, const char *outcome);

/* The Message-ID (with <>) of a message's header block, NULL if none. (transfer full) */
char *rel_message_id (const char *data, gsize length);
/* "Message-ID recipient" → complete copies received, over every dump. */
GHashTable *rel_sink_pair_counts (ScTestSink *sink);

/* A "[mailer:NAME]" section for an smtp-sink URL; @extra: (nullable) more keys. */
char *rel_mailer_section (const char *name, const char *url, const char *extra);

G_END_DECLS
