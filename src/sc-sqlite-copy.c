/* sc-sqlite-copy.c — spool-copy's entries for the SQLite backend: rows of
 * the tables sc-spool-copy.c describes, out and in, ids kept.
 *
 * The statements are built from that constant description (table and
 * column names are never anything else); every value is bound.  They
 * are prepared per call rather than cached: a copy runs once, in batches
 * of hundreds of rows, and the statement cache is an enum.
 *
 * The source is read in one deferred transaction: in WAL mode its first
 * read fixes the snapshot every later batch sees.  The destination is
 * written in one IMMEDIATE transaction (sc_sqlite_begin).  INTEGER
 * PRIMARY KEY numbers later rows after the largest id by itself.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-sqlite-private.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* Identifiers come from sc_spool_copy_tables only: make sure of it. */
static const char *
identifier (const char *name)
{
	for (const char *p = name; *p != '\0'; p++)
		g_assert ((*p >= 'a' && *p <= 'z') || *p == '_');
	return name;
}

static void
append_columns (GString *sql, const ScCopyTable *table, guint n_columns)
{
	for (guint c = 0; c < n_columns; c++)
		g_string_append_printf (sql, c == 0 ? "%s" : ", %s", identifier (table->columns[c].name));
}

static sqlite3_stmt *
prepare (ScSpool *spool, const char *sql, GError **error)
{
	sqlite3_stmt *stmt = NULL;
	int rc = sqlite3_prepare_v2 (sc_sqlite_get_db (spool), sql, -1, &stmt, NULL);

	if (rc != SQLITE_OK) {
		sc_sqlite_set_error (spool, rc, error, "spool-copy: prepare");
		sqlite3_finalize (stmt);
		return NULL;
	}
	return stmt;
}

gboolean
sc_sqlite_copy_begin (ScSpool *spool, gboolean write, GError **error)
{
	int rc;

	if (write)
		return sc_sqlite_begin (spool, error);
	rc = sqlite3_exec (sc_sqlite_get_db (spool), "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sc_sqlite_set_error (spool, rc, error, "spool-copy: begin");
		return FALSE;
	}
	return TRUE;
}

gboolean
sc_sqlite_copy_commit (ScSpool *spool, GError **error)
{
	return sc_sqlite_commit (spool, error);
}

void
sc_sqlite_copy_rollback (ScSpool *spool)
{
	sc_sqlite_rollback (spool);
}

/* Binds @value (of column type @type) to parameter @index. */
static void
bind_value (sqlite3_stmt *stmt, int index, const char *type, GVariant *value)
{
	g_autoptr(GVariant) inner = NULL;

	if (type[0] == 'm') {
		inner = g_variant_get_maybe (value);
		if (inner == NULL) {
			sqlite3_bind_null (stmt, index);
			return;
		}
		value = inner;
		type++;
	}
	if (strcmp (type, "x") == 0) {
		sqlite3_bind_int64 (stmt, index, g_variant_get_int64 (value));
	} else if (strcmp (type, "s") == 0) {
		gsize length = 0;
		const char *text = g_variant_get_string (value, &length);
		sqlite3_bind_text64 (stmt, index, text, length, SQLITE_TRANSIENT, SQLITE_UTF8);
	} else {
		gsize length = 0;
		gconstpointer data = g_variant_get_fixed_array (value, &length, 1);
		/* a zero-length blob, not NULL */
		sqlite3_bind_blob64 (stmt, index, length > 0 ? data : "", length, SQLITE_TRANSIENT);
	}
}

/* Column @column of the current row as a GVariant of @type; NULL with
 * @error for a value the type cannot hold. */
static GVariant *
column_value (ScSpool *spool,
	      const ScCopyTable *table,
	      sqlite3_stmt *stmt,
	      int column,
	      GError **error)
{
	const char *type = table->columns[column].type;
	gboolean nullable = type[0] == 'm';
	const char *base = nullable ? type + 1 : type;
	GVariant *value;

	if (sqlite3_column_type (stmt, column) == SQLITE_NULL) {
		if (nullable)
			return g_variant_new_maybe (G_VARIANT_TYPE (base), NULL);
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
			     _("%s.%s is NULL in a row, which the schema does not allow"), table->name,
			     table->columns[column].name);
		return NULL;
	}
	if (strcmp (base, "x") == 0) {
		value = g_variant_new_int64 (sqlite3_column_int64 (stmt, column));
	} else if (strcmp (base, "s") == 0) {
		const char *text = (const char *) sqlite3_column_text (stmt, column);
		int length = sqlite3_column_bytes (stmt, column);
		/* GVariant strings are UTF-8 (and so is every PostgreSQL
		 * database spool-copy can write to) */
		if (text == NULL || !g_utf8_validate (text, length, NULL)) {
			g_autofree char *key = g_utf8_make_valid ((const char *) sqlite3_column_text (stmt, 0), -1);
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
				     /* TRANSLATORS: "recipients.reply of the row with message_id 12 …" */
				     _("%s.%s of the row with %s %s is not UTF-8 text"), table->name,
				     table->columns[column].name, table->columns[0].name, key);
			return NULL;
		}
		value = g_variant_new_string (text);
	} else {
		gconstpointer data = sqlite3_column_blob (stmt, column);
		int length = sqlite3_column_bytes (stmt, column);
		value = g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, length > 0 ? data : "", length, 1);
	}
	return nullable ? g_variant_new_maybe (NULL, value) : value;
}

GPtrArray *
sc_sqlite_copy_out (ScSpool *spool, const ScCopyTable *table, GVariant *after, guint limit, GError **error)
{
	g_autoptr(GString) sql = g_string_new ("SELECT ");
	g_autoptr(sqlite3_stmt) stmt = NULL;
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
	int rc;

	append_columns (sql, table, table->n_columns);
	g_string_append_printf (sql, " FROM %s", identifier (table->name));
	if (after != NULL) {
		/* a row value: the key's order, walked on its index */
		g_string_append (sql, " WHERE (");
		append_columns (sql, table, table->n_key);
		g_string_append (sql, ") > (");
		for (guint k = 0; k < table->n_key; k++)
			g_string_append_printf (sql, k == 0 ? "?%u" : ", ?%u", k + 1);
		g_string_append_c (sql, ')');
	}
	g_string_append (sql, " ORDER BY ");
	append_columns (sql, table, table->n_key);
	g_string_append_printf (sql, " LIMIT ?%u", table->n_key + 1);
	stmt = prepare (spool, sql->str, error);
	if (stmt == NULL)
		return NULL;
	if (after != NULL) {
		for (guint k = 0; k < table->n_key; k++) {
			g_autoptr(GVariant) key = g_variant_get_child_value (after, k);
			bind_value (stmt, (int) k + 1, table->columns[k].type, key);
		}
	}
	sqlite3_bind_int64 (stmt, (int) table->n_key + 1, limit);
	while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
		GVariant *values[32];
		g_assert (table->n_columns <= G_N_ELEMENTS (values));
		for (guint c = 0; c < table->n_columns; c++) {
			values[c] = column_value (spool, table, stmt, (int) c, error);
			if (values[c] == NULL) {
				for (guint d = 0; d < c; d++)
					g_variant_unref (g_variant_ref_sink (values[d]));
				return NULL;
			}
		}
		g_ptr_array_add (rows, g_variant_ref_sink (g_variant_new_tuple (values, table->n_columns)));
	}
	if (rc != SQLITE_DONE) {
		sc_sqlite_set_error (spool, rc, error, "spool-copy: read");
		return NULL;
	}
	return g_steal_pointer (&rows);
}

gboolean
sc_sqlite_copy_in (ScSpool *spool, const ScCopyTable *table, GPtrArray *rows, GError **error)
{
	g_autoptr(GString) sql = g_string_new (NULL);
	g_autoptr(sqlite3_stmt) stmt = NULL;

	g_string_printf (sql, "INSERT INTO %s (", identifier (table->name));
	append_columns (sql, table, table->n_columns);
	g_string_append (sql, ") VALUES (");
	for (guint c = 0; c < table->n_columns; c++)
		g_string_append_printf (sql, c == 0 ? "?%u" : ", ?%u", c + 1);
	g_string_append_c (sql, ')');
	stmt = prepare (spool, sql->str, error);
	if (stmt == NULL)
		return FALSE;
	for (guint i = 0; i < rows->len; i++) {
		GVariant *row = rows->pdata[i];
		int rc;

		g_return_val_if_fail (g_variant_is_of_type (row, sc_copy_table_row_type (table)), FALSE);
		for (guint c = 0; c < table->n_columns; c++) {
			g_autoptr(GVariant) value = g_variant_get_child_value (row, c);
			bind_value (stmt, (int) c + 1, table->columns[c].type, value);
		}
		rc = sqlite3_step (stmt);
		if (rc != SQLITE_DONE) {
			sc_sqlite_set_error (spool, rc, error, "spool-copy: write");
			return FALSE;
		}
		sqlite3_reset (stmt);
		sqlite3_clear_bindings (stmt);
	}
	return TRUE;
}

gboolean
sc_sqlite_copy_count (ScSpool *spool, const ScCopyTable *table, guint64 *out_rows, GError **error)
{
	g_autofree char *sql = g_strdup_printf ("SELECT count(*) FROM %s", identifier (table->name));
	g_autoptr(sqlite3_stmt) stmt = prepare (spool, sql, error);
	int rc;

	if (stmt == NULL)
		return FALSE;
	rc = sqlite3_step (stmt);
	if (rc != SQLITE_ROW) {
		sc_sqlite_set_error (spool, rc, error, "spool-copy: count");
		return FALSE;
	}
	*out_rows = (guint64) sqlite3_column_int64 (stmt, 0);
	return TRUE;
}
