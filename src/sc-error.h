/* sc-error.h — stagecoach's GError domains and their conversions.
 *
 * One domain per decision a caller takes: the runner branches on
 * SC_STAGE_ERROR transient/permanent, the CLI maps SC_SPOOL_ERROR and
 * SC_CONFIG_ERROR to sysexits codes.  Foreign errors (errno, GIO, SQLite,
 * curl) are converted at the boundary by table, keeping their text.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SC_STAGE_ERROR (sc_stage_error_quark ())
#define SC_SPOOL_ERROR (sc_spool_error_quark ())
#define SC_CONFIG_ERROR (sc_config_error_quark ())
#define SC_INPUT_ERROR (sc_input_error_quark ())

typedef enum {
	SC_STAGE_ERROR_TRANSIENT, /* retry later: network, 4xx, disk full, fixable config */
	SC_STAGE_ERROR_PERMANENT, /* retrying cannot help */
} ScStageError;

typedef enum {
	SC_SPOOL_ERROR_TEMPORARY, /* busy/locked, disk full, I/O: try again (EX_TEMPFAIL) */
	SC_SPOOL_ERROR_NOT_FOUND, /* no such message / stage */
	SC_SPOOL_ERROR_INVALID,   /* the request does not fit the message's state */
	SC_SPOOL_ERROR_FAILED,    /* corrupt or newer-than-known spool (EX_SOFTWARE) */
	SC_SPOOL_ERROR_NO_SPACE,  /* the disk is full: try again later (EX_TEMPFAIL) */
} ScSpoolError;

typedef enum {
	SC_CONFIG_ERROR_INVALID, /* file, section/key and reason in the message (EX_CONFIG) */
} ScConfigError;

typedef enum {
	SC_INPUT_ERROR_USAGE, /* bad command line (EX_USAGE) */
	SC_INPUT_ERROR_DATA,  /* bad message or address (EX_DATAERR) */
} ScInputError;

GQuark sc_stage_error_quark (void);
GQuark sc_spool_error_quark (void);
GQuark sc_config_error_quark (void);
GQuark sc_input_error_quark (void);

/* Stage errors from errno: ENOSPC, EIO, EAGAIN, EACCES … are transient
 * (an operator can fix them), EINVAL-like programming errors permanent. */
ScStageError sc_stage_error_code_from_errno (int errno_value);
void sc_stage_error_set_errno (GError **error, int errno_value, const char *format, ...)
    G_GNUC_PRINTF (3, 4);
/* A GIO/GLib error (GFileError, GIOError, GSpawnError) as a stage error. */
void sc_stage_error_propagate (GError **error, GError *foreign, const char *prefix);

/* sysexits.h code for any error a CLI command can end with. */
int sc_error_to_exit_code (const GError *error);

G_END_DECLS
