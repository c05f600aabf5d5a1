/* sc-error.c — error domains and the tables that convert foreign errors.
 *
 * The rule of thumb (as Postfix's sys_exits.c): anything an operator can fix
 * without changing the message is temporary; only what no retry can mend
 * is permanent.
 */
#include "config.h"

#include "sc-error.h"
#include "sc-ingress.h"

#include <errno.h>
#include <gio/gio.h>
#include <sysexits.h>

G_DEFINE_QUARK (sc-stage-error-quark, sc_stage_error)
G_DEFINE_QUARK (sc-spool-error-quark, sc_spool_error)
G_DEFINE_QUARK (sc-config-error-quark, sc_config_error)
G_DEFINE_QUARK (sc-input-error-quark, sc_input_error)

static const struct {
	int errno_value;
	ScStageError code;
} errno_table[] = {
    {EINVAL, SC_STAGE_ERROR_PERMANENT},
    {EMSGSIZE, SC_STAGE_ERROR_PERMANENT},
    {E2BIG, SC_STAGE_ERROR_PERMANENT},
    {EFBIG, SC_STAGE_ERROR_PERMANENT},
};

ScStageError
sc_stage_error_code_from_errno (int errno_value)
{
	for (gsize i = 0; i < G_N_ELEMENTS (errno_table); i++) {
		if (errno_table[i].errno_value == errno_value)
			return errno_table[i].code;
	}
	/* ENOSPC, EIO, EACCES, ENOENT, EROFS, EAGAIN …: fixable by an operator */
	return SC_STAGE_ERROR_TRANSIENT;
}

void
sc_stage_error_set_errno (GError **error, int errno_value, const char *format, ...)
{
	va_list args;
	g_autofree char *prefix = NULL;

	va_start (args, format);
	prefix = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error (error,
		     SC_STAGE_ERROR,
		     sc_stage_error_code_from_errno (errno_value),
		     "%s: %s",
		     prefix,
		     g_strerror (errno_value));
}

void
sc_stage_error_propagate (GError **error, GError *foreign, const char *prefix)
{
	ScStageError code = SC_STAGE_ERROR_TRANSIENT;

	g_return_if_fail (foreign != NULL);
	if (foreign->domain == SC_STAGE_ERROR) {
		code = foreign->code;
	} else if (foreign->domain == G_FILE_ERROR) {
		code = sc_stage_error_code_from_errno (
		    foreign->code == G_FILE_ERROR_INVAL ? EINVAL : EIO);
	} else if (g_error_matches (foreign, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
		   g_error_matches (foreign, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
		   g_error_matches (foreign, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE)) {
		code = SC_STAGE_ERROR_PERMANENT;
	}
	g_set_error (error,
		     SC_STAGE_ERROR,
		     code,
		     "%s%s",
		     prefix != NULL ? prefix : "",
		     foreign->message);
}

static const struct {
	GQuark (*domain) (void);
	int code;
	int exit_code;
} exit_table[] = {
    {sc_spool_error_quark, SC_SPOOL_ERROR_TEMPORARY, EX_TEMPFAIL},
    {sc_spool_error_quark, SC_SPOOL_ERROR_NOT_FOUND, EX_NOINPUT},
    {sc_spool_error_quark, SC_SPOOL_ERROR_INVALID, EX_DATAERR},
    {sc_spool_error_quark, SC_SPOOL_ERROR_FAILED, EX_SOFTWARE},
    {sc_spool_error_quark, SC_SPOOL_ERROR_NO_SPACE, EX_TEMPFAIL},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_BAD_MESSAGE, EX_DATAERR},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_BAD_ADDRESS, EX_DATAERR},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_TOO_BIG, EX_DATAERR},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_NO_LIST, EX_USAGE},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_SPOOL_BUSY, EX_TEMPFAIL},
    {sc_ingress_error_quark, SC_INGRESS_ERROR_SPOOL_FULL, EX_TEMPFAIL},
    {sc_config_error_quark, SC_CONFIG_ERROR_INVALID, EX_CONFIG},
    {sc_input_error_quark, SC_INPUT_ERROR_USAGE, EX_USAGE},
    {sc_input_error_quark, SC_INPUT_ERROR_DATA, EX_DATAERR},
    {sc_stage_error_quark, SC_STAGE_ERROR_TRANSIENT, EX_TEMPFAIL},
    {sc_stage_error_quark, SC_STAGE_ERROR_PERMANENT, EX_UNAVAILABLE},
};

int
sc_error_to_exit_code (const GError *error)
{
	if (error == NULL)
		return EX_OK;
	for (gsize i = 0; i < G_N_ELEMENTS (exit_table); i++) {
		if (error->domain == exit_table[i].domain () && error->code == exit_table[i].code)
			return exit_table[i].exit_code;
	}
	if (error->domain == G_IO_ERROR || error->domain == G_FILE_ERROR)
		return EX_IOERR;
	return EX_SOFTWARE;
}
