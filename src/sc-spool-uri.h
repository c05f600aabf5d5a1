/* sc-spool-uri.h — what a `spool=` value names: its backend by scheme,
 * as OpenSMTPD names its queue backend.  libc only: the lean front
 * (sc-front.c) and the configuration loader read it the same way. */
#pragma once

typedef enum {
	SC_SPOOL_URI_FOLDER,     /* `sqlite:FOLDER` or a bare FOLDER: the embedded spool */
	SC_SPOOL_URI_POSTGRESQL, /* a postgresql:// URI or libpq key=value string */
	SC_SPOOL_URI_UNKNOWN,    /* another SCHEME:// */
} ScSpoolUriKind;

/* @out_folder: (out) with SC_SPOOL_URI_FOLDER, the folder part of @value
 * (a pointer into it; may be empty). */
ScSpoolUriKind sc_spool_uri_parse (const char *value, const char **out_folder);
