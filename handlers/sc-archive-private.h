/* sc-archive-private.h — what the archive handler's files share: the backend
 * interface and the few helpers every local backend needs.  Not for other
 * modules: the rest of stagecoach sees only sc_handler_archive.
 */
#pragma once

#include <stdio.h>

#include "sc-handler.h"

G_BEGIN_DECLS

/* One archive backend, as OpenSMTPD's struct queue_backend: verbs only, found
 * by scheme in sc-archive.c.  Both functions may run on any thread at once for
 * different messages; a backend keeps no state but what is per thread. */
typedef struct {
	const char *name;           /* for logs: "maildir" */
	const char *const *schemes; /* NULL-terminated: {"http", "https", NULL} */
	/* TRUE: the backend is given the whole value ("https://…");
	 * FALSE: only what follows "scheme:" (the PATH of maildir:PATH). */
	gboolean location_is_url;
	/* At config load: is @location usable?  Must not touch the file system
	 * or the network: check-config runs as any user on any host.  The error
	 * (SC_CONFIG_ERROR_INVALID) says what is wrong without naming the key. */
	gboolean (*check) (const char *location, GError **error);
	/* Archives context->current.  Safe to repeat for the same queue id: a
	 * second call finds the first copy and stores nothing.  The error is
	 * SC_STAGE_ERROR and carries no "archive LOCATION:" prefix (the caller
	 * adds it). */
	gboolean (*store) (const char *location, ScStageContext *context, GError **error);
} ScArchiveBackend;

extern const ScArchiveBackend sc_archive_backend_maildir;
extern const ScArchiveBackend sc_archive_backend_mbox;
extern const ScArchiveBackend sc_archive_backend_http;

/* Checks that @path is usable as a local archive location. */
gboolean sc_archive_check_local_path (const char *path, GError **error);

/* @value (an archive setting or an URL) as errors and logs may show it: an
 * http(s) URL loses its password and query, which may hold the archiver's
 * credentials. (transfer full) */
char *sc_archive_display (const char *value);

/* Writes @message to @stream as a local mail file holds it: line ends as LF,
 * a leading mbox "From " line dropped, a final newline added if missing; with
 * @mboxrd, lines matching ^>*From  get one more '>' (mboxrd quoting).
 * @stream may be NULL to only count.  Returns FALSE with errno set when a
 * write fails.  @out_length: (out) (optional): bytes written (or counted). */
gboolean sc_archive_write_local (FILE *stream, GBytes *message, gboolean mboxrd, gsize *out_length);

/* The Message-ID header of @message, unfolded and without CR/LF, or NULL if
 * it has none.  Reads the header block only.  (transfer full) */
char *sc_archive_get_message_id (GBytes *message);

/* @text made safe for one header line or log field: control characters
 * become spaces, at most @max_length bytes, valid UTF-8.  (transfer full) */
char *sc_archive_sanitize_line (const char *text, gsize length, gsize max_length);

/* Fsyncs a directory so a rename or create inside it survives a crash. */
gboolean sc_archive_fsync_directory (const char *path, GError **error);

G_END_DECLS
