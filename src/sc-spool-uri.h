/* sc-spool-uri.h — what a `spool=` value names: its backend by scheme,
 * as OpenSMTPD names its queue backend.  libc only: the lean front
 * (sc-front.c) and the configuration loader read it the same way. */
#pragma once

typedef enum {
	SC_SPOOL_URI_FOLDER,     /* `sqlite:FOLDER` or a bare FOLDER: the embedded spool */
	SC_SPOOL_URI_POSTGRESQL, /* a postgresql:// URI or libpq key=value string */
	SC_SPOOL_URI_UNKNOWN,    /* another SCHEME:// */
} ScSpoolUriKind;

/* Where host-local state (the hand-off socket, the generated admin token)
 * goes when the spool is a database rather than a folder and state-dir=
 * is not set.  Here, not in sc-config.h, because the front reads it too. */
#define SC_SPOOL_URI_DEFAULT_STATE_DIR "/var/lib/stagecoach"

/* @out_folder: (out) with SC_SPOOL_URI_FOLDER, the folder part of @value
 * (a pointer into it; may be empty). */
ScSpoolUriKind sc_spool_uri_parse (const char *value, const char **out_folder);

/* @value as it may be shown — logs, `status`, `check-config`, errors:
 * every password in a PostgreSQL URI (user:PASSWORD@, ?password=) or
 * connection string (password=…, also inside a dbname= that is itself a
 * URI or connection string) replaced by "***"; anything else unchanged.
 * (malloc; free() it — g_free() too; NULL only when out of memory) */
char *sc_spool_uri_mask (const char *value);

/* Whether @value carries a non-empty password (see sc_spool_uri_mask). */
int sc_spool_uri_has_password (const char *value);
