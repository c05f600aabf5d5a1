/* sc-pg-conn.c — the PostgreSQL spool's connection: connecting, statements
 * prepared once per connection, errors, transactions, and getting the
 * connection back after the server or the network dropped it (see
 * sc-pg-private.h). */
#include "config.h"

#include <string.h>

#include "sc-i18n.h"
#include "sc-pg-private.h"

/* ---- parameters ---- */

static guint
next_param (ScPgParams *params)
{
	g_assert (params->n < SC_PG_MAX_PARAMS);
	return params->n++;
}

void
sc_pg_params_text (ScPgParams *params, const char *value)
{
	guint i = next_param (params);

	params->values[i] = value;
}

void
sc_pg_params_null (ScPgParams *params)
{
	(void) next_param (params);
}

void
sc_pg_params_int64 (ScPgParams *params, gint64 value)
{
	guint i = next_param (params);

	g_snprintf (params->ints[i], sizeof params->ints[i], "%" G_GINT64_FORMAT, value);
	params->values[i] = params->ints[i];
}

void
sc_pg_params_bytes (ScPgParams *params, GBytes *value)
{
	guint i = next_param (params);
	gsize size = 0;
	gconstpointer data;

	if (value == NULL)
		return;
	data = g_bytes_get_data (value, &size);
	g_assert (size <= G_MAXINT);
	params->bytes[i] = g_bytes_ref (value);
	params->values[i] = data != NULL ? data : "";
	params->lengths[i] = (int) size;
	params->formats[i] = 1;
}

void
sc_pg_params_int64_array (ScPgParams *params, const gint64 *values, guint n_values)
{
	guint i = next_param (params);
	GString *text = g_string_new ("{");

	for (guint v = 0; v < n_values; v++)
		g_string_append_printf (text, v == 0 ? "%" G_GINT64_FORMAT : ",%" G_GINT64_FORMAT, values[v]);
	g_string_append_c (text, '}');
	params->owned[i] = g_string_free (text, FALSE);
	params->values[i] = params->owned[i];
}

void
sc_pg_params_clear (ScPgParams *params)
{
	for (guint i = 0; i < params->n; i++) {
		g_free (params->owned[i]);
		g_clear_pointer (&params->bytes[i], g_bytes_unref);
	}
	memset (params, 0, sizeof *params);
}

/* ---- results ---- */

gboolean
sc_pg_is_null (const PGresult *result, int row, int column)
{
	return PQgetisnull (result, row, column) != 0;
}

gint64
sc_pg_get_int64 (const PGresult *result, int row, int column)
{
	const char *value = PQgetvalue (result, row, column);

	if (PQgetisnull (result, row, column))
		return 0;
	if (PQfformat (result, column) == 1) {
		/* network order, as wide as the column's type */
		switch (PQgetlength (result, row, column)) {
		case 8: {
			guint64 v;
			memcpy (&v, value, 8);
			return (gint64) GUINT64_FROM_BE (v);
		}
		case 4: {
			guint32 v;
			memcpy (&v, value, 4);
			return (gint32) GUINT32_FROM_BE (v);
		}
		case 2: {
			guint16 v;
			memcpy (&v, value, 2);
			return (gint16) GUINT16_FROM_BE (v);
		}
		default:
			return 0;
		}
	}
	return g_ascii_strtoll (value, NULL, 10);
}

gboolean
sc_pg_get_bool (const PGresult *result, int row, int column)
{
	const char *value = PQgetvalue (result, row, column);

	if (PQgetisnull (result, row, column))
		return FALSE;
	if (PQfformat (result, column) == 1)
		return value[0] != 0;
	return value[0] == 't';
}

char *
sc_pg_dup_text (const PGresult *result, int row, int column)
{
	if (PQgetisnull (result, row, column))
		return NULL;
	return g_strndup (PQgetvalue (result, row, column), PQgetlength (result, row, column));
}

GBytes *
sc_pg_get_bytes (const PGresult *result, int row, int column)
{
	unsigned char *data;
	size_t length = 0;

	if (PQgetisnull (result, row, column))
		return NULL;
	if (PQfformat (result, column) == 1)
		return g_bytes_new (PQgetvalue (result, row, column), PQgetlength (result, row, column));
	data = PQunescapeBytea ((const unsigned char *) PQgetvalue (result, row, column), &length);
	if (data == NULL)
		g_error ("out of memory decoding a bytea column");
	return g_bytes_new_with_free_func (data, length, PQfreemem, data);
}

guint64
sc_pg_changed (const PGresult *result)
{
	return g_ascii_strtoull (PQcmdTuples ((PGresult *) result), NULL, 10);
}

/* ---- errors ---- */

static gboolean
is_connection_sqlstate (const char *sqlstate)
{
	return sqlstate != NULL &&
	       (g_str_has_prefix (sqlstate, "08") || strcmp (sqlstate, "57P01") == 0 ||
		strcmp (sqlstate, "57P02") == 0 || strcmp (sqlstate, "57P03") == 0);
}

ScSpoolError
sc_pg_error_code (const char *sqlstate)
{
	if (sqlstate == NULL || is_connection_sqlstate (sqlstate))
		return SC_SPOOL_ERROR_TEMPORARY;
	if (strcmp (sqlstate, "53100") == 0)
		return SC_SPOOL_ERROR_NO_SPACE;
	if (g_str_has_prefix (sqlstate, "53") || g_str_has_prefix (sqlstate, "58") ||
	    strcmp (sqlstate, "40001") == 0 || strcmp (sqlstate, "40P01") == 0 ||
	    strcmp (sqlstate, "55P03") == 0 || strcmp (sqlstate, "57014") == 0)
		return SC_SPOOL_ERROR_TEMPORARY;
	return SC_SPOOL_ERROR_FAILED;
}

static void
set_error_code (ScPgSpool *pg, const PGresult *result, ScSpoolError code, GError **error, const char *doing)
{
	const char *message = result != NULL ? PQresultErrorMessage (result) : "";
	g_autofree char *text = NULL;

	if (message == NULL || *message == '\0')
		message = PQerrorMessage (pg->conn);
	text = g_strchomp (g_strdup (message != NULL && *message != '\0' ? message : _("no answer")));
	g_set_error (error,
		     SC_SPOOL_ERROR,
		     code,
		     /* TRANSLATORS: "spool db.example.org:5432/mail: inject: ERROR: …" */
		     _("spool %s: %s: %s"),
		     pg->display != NULL ? pg->display : "postgresql",
		     doing,
		     text);
}

void
sc_pg_set_error (ScPgSpool *pg, const PGresult *result, GError **error, const char *doing)
{
	const char *sqlstate = result != NULL ? PQresultErrorField (result, PG_DIAG_SQLSTATE) : NULL;

	set_error_code (pg, result, sc_pg_error_code (sqlstate), error, doing);
}

/* ---- connecting ---- */

static void
notice_cb (void *data, const char *message)
{
	g_debug ("postgresql: %s", message);
}

PGconn *
sc_pg_connect (const char *conninfo, gint64 busy_timeout, GError **error)
{
	g_autofree char *timeout = g_strdup_printf ("%" G_GINT64_FORMAT,
						    MAX (2, (busy_timeout + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC));
	/* ours first: the operator's connection string overrides them */
	const char *const keywords[] = {"application_name", "connect_timeout", "keepalives_idle",
					"keepalives_interval", "keepalives_count", "dbname", NULL};
	const char *const values[] = {"stagecoach", timeout, "30", "10", "3", conninfo, NULL};
	PGconn *conn = PQconnectdbParams (keywords, values, 1);

	if (conn == NULL)
		g_error ("out of memory connecting to PostgreSQL");
	if (PQstatus (conn) != CONNECTION_OK) {
		g_autofree char *text = g_strchomp (g_strdup (PQerrorMessage (conn)));
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_TEMPORARY,
			     _("cannot connect to the PostgreSQL spool: %s"),
			     text);
		PQfinish (conn);
		return NULL;
	}
	PQsetNoticeProcessor (conn, notice_cb, NULL);
	return conn;
}

/* What each (re)connection needs before its first call: lock waits
 * bounded by busy_timeout (55P03 → TEMPORARY), and the runner's lock. */
static gboolean
session_setup (ScPgSpool *pg, GError **error)
{
	static const ScPgStatement set_lock_timeout = {
	    "sc_conn_lock_timeout",
	    "SELECT set_config ('lock_timeout', $1::text, false)",
	};
	g_auto(ScPgParams) params = {0};
	g_autofree char *timeout = g_strdup_printf ("%" G_GINT64_FORMAT "ms", MAX (1, pg->busy_timeout / 1000));

	sc_pg_params_text (&params, timeout);
	if (!sc_pg_exec_done (pg, &set_lock_timeout, &params, "connect", NULL, error))
		return FALSE;
	pg->runner_locked = FALSE;
	return pg->runner == NULL || sc_pg_take_runner_lock (pg, error);
}

gboolean
sc_pg_take_runner_lock (ScPgSpool *pg, GError **error)
{
	static const ScPgStatement try_lock = {
	    "sc_conn_runner_lock",
	    "SELECT pg_try_advisory_lock ($1::bigint)",
	};
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;

	if (pg->runner_locked)
		return TRUE;
	sc_pg_params_int64 (&params, pg->runner_key);
	result = sc_pg_exec (pg, &try_lock, &params, "register runner", error);
	if (result == NULL)
		return FALSE;
	if (!sc_pg_get_bool (result, 0, 0)) {
		/* the old session (terminated, its socket gone) may not have
		 * ended on the server yet: the caller tries again later */
		g_set_error (error,
			     SC_SPOOL_ERROR,
			     SC_SPOOL_ERROR_TEMPORARY,
			     _("spool %s: runner %s is registered by another connection"),
			     pg->display,
			     pg->runner);
		return FALSE;
	}
	pg->runner_locked = TRUE;
	return TRUE;
}

/* Gets a working connection back, trying with backoff for at most
 * busy_timeout (once at least).  Everything bound to the old session is
 * gone: prepared statements, the open transaction, the runner's lock
 * (taken again here; a runner whose lock lapsed meanwhile may have been
 * found dead, and its claims taken back — its later results then find
 * their leases gone, as they must). */
static gboolean
reconnect (ScPgSpool *pg)
{
	gint64 deadline = g_get_monotonic_time () + pg->busy_timeout;
	gulong delay = 10 * 1000;

	g_hash_table_remove_all (pg->prepared);
	pg->in_transaction = FALSE;
	pg->runner_locked = FALSE;
	for (;;) {
		g_autoptr(GError) error = NULL;

		PQreset (pg->conn);
		if (PQstatus (pg->conn) == CONNECTION_OK) {
			pg->reconnecting = TRUE; /* session_setup's calls must not recurse */
			if (session_setup (pg, &error)) {
				pg->reconnecting = FALSE;
				g_message ("spool %s: reconnected", pg->display);
				return TRUE;
			}
			pg->reconnecting = FALSE;
			g_debug ("spool %s: after reconnecting: %s", pg->display, error->message);
			if (PQstatus (pg->conn) == CONNECTION_OK && pg->runner != NULL && !pg->runner_locked) {
				/* connected, lock still held by the dying session: usable;
				 * the lock is tried again before the next call */
				return TRUE;
			}
		}
		if (g_get_monotonic_time () + (gint64) delay > deadline)
			return FALSE;
		g_usleep (delay);
		delay = MIN (delay * 2, G_USEC_PER_SEC);
	}
}

static gboolean
connection_lost (ScPgSpool *pg, const PGresult *result)
{
	if (PQstatus (pg->conn) != CONNECTION_OK)
		return TRUE;
	return result != NULL && is_connection_sqlstate (PQresultErrorField (result, PG_DIAG_SQLSTATE));
}

/* The call failed: say why, and when the connection is what failed, get
 * it back for the next call (this one is TEMPORARY either way). */
static void
fail (ScPgSpool *pg, const PGresult *result, GError **error, const char *doing)
{
	if (!connection_lost (pg, result)) {
		sc_pg_set_error (pg, result, error, doing);
		return;
	}
	set_error_code (pg, result, SC_SPOOL_ERROR_TEMPORARY, error, doing);
	if (!pg->reconnecting && !reconnect (pg))
		g_debug ("spool %s: not reconnected yet", pg->display);
}

/* Before a call outside a transaction: a connection an earlier reconnect
 * could not get back is tried again; a runner's lock it could not take
 * again is too. */
static gboolean
ready (ScPgSpool *pg, const char *doing, GError **error)
{
	if (pg->reconnecting || pg->in_transaction)
		return TRUE;
	if (PQstatus (pg->conn) != CONNECTION_OK && !reconnect (pg)) {
		set_error_code (pg, NULL, SC_SPOOL_ERROR_TEMPORARY, error, doing);
		return FALSE;
	}
	if (pg->runner != NULL && !pg->runner_locked) {
		gboolean locked;
		pg->reconnecting = TRUE;
		locked = sc_pg_take_runner_lock (pg, error);
		pg->reconnecting = FALSE;
		if (!locked)
			return FALSE;
	}
	return TRUE;
}

PGresult *
sc_pg_exec (ScPgSpool *pg, const ScPgStatement *stmt, const ScPgParams *params, const char *doing, GError **error)
{
	PGresult *result;
	ExecStatusType status;

	if (!ready (pg, doing, error))
		return NULL;
	if (!g_hash_table_contains (pg->prepared, stmt->name)) {
		g_autoptr(PGresult) prepared = PQprepare (pg->conn, stmt->name, stmt->sql, 0, NULL);
		if (PQresultStatus (prepared) != PGRES_COMMAND_OK) {
			fail (pg, prepared, error, doing);
			return NULL;
		}
		g_hash_table_add (pg->prepared, (gpointer) stmt->name);
	}
	result = PQexecPrepared (pg->conn,
				 stmt->name,
				 params != NULL ? (int) params->n : 0,
				 params != NULL ? params->values : NULL,
				 params != NULL ? params->lengths : NULL,
				 params != NULL ? params->formats : NULL,
				 stmt->binary_result ? 1 : 0);
	status = PQresultStatus (result);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		fail (pg, result, error, doing);
		PQclear (result);
		return NULL;
	}
	return result;
}

gboolean
sc_pg_exec_done (ScPgSpool *pg,
		 const ScPgStatement *stmt,
		 const ScPgParams *params,
		 const char *doing,
		 guint64 *out_changed,
		 GError **error)
{
	g_autoptr(PGresult) result = sc_pg_exec (pg, stmt, params, doing, error);

	if (result == NULL)
		return FALSE;
	if (out_changed != NULL)
		*out_changed = sc_pg_changed (result);
	return TRUE;
}

/* ---- transactions ---- */

gboolean
sc_pg_begin (ScPgSpool *pg, GError **error)
{
	static const ScPgStatement begin = {"sc_conn_begin", "BEGIN"};

	g_return_val_if_fail (!pg->in_transaction, FALSE);
	if (!sc_pg_exec_done (pg, &begin, NULL, "begin", NULL, error))
		return FALSE;
	pg->in_transaction = TRUE;
	return TRUE;
}

gboolean
sc_pg_commit (ScPgSpool *pg, GError **error)
{
	static const ScPgStatement commit = {"sc_conn_commit", "COMMIT"};
	g_autoptr(PGresult) result = sc_pg_exec (pg, &commit, NULL, "commit", error);

	pg->in_transaction = FALSE;
	if (result == NULL) {
		/* lost with the connection: the outcome is unknown, and
		 * TEMPORARY says so (nothing here sends it again) */
		sc_pg_rollback (pg);
		return FALSE;
	}
	/* COMMIT of a transaction a failed statement aborted answers ROLLBACK */
	if (strcmp (PQcmdStatus (result), "ROLLBACK") == 0) {
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
			     _("spool %s: commit: the transaction was rolled back"), pg->display);
		return FALSE;
	}
	return TRUE;
}

void
sc_pg_rollback (ScPgSpool *pg)
{
	pg->in_transaction = FALSE;
	if (PQstatus (pg->conn) == CONNECTION_OK && PQtransactionStatus (pg->conn) != PQTRANS_IDLE) {
		g_autoptr(PGresult) result = PQexec (pg->conn, "ROLLBACK");
		(void) result;
	}
}
