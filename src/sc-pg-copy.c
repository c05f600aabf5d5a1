/* sc-pg-copy.c — spool-copy's entries for the PostgreSQL backend: rows of
 * the tables sc-spool-copy.c describes, out and in, ids kept.
 *
 * The statements are built once from that constant description (table
 * and column names are never anything else; every value is a
 * parameter) and prepared per connection like the others (sc_pg_exec).
 *
 * In: one INSERT … SELECT FROM unnest($1::text[], $2::text[], …) per
 * batch, each column's values as one text array (bytes as hex, decoded
 * by the server): one round trip per batch rather than per row, and the
 * statement-level state_counts trigger adds one delta row per batch and
 * list, not one per message.  Those are folded before the commit.
 * Explicit ids do not move the identity sequences: the commit sets each
 * past the largest id copied, so rows made later follow them.
 *
 * Out: the source is read in one REPEATABLE READ, READ ONLY transaction
 * (one snapshot for every batch and for the checks), in key order after
 * the previous batch's last key.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-pg-private.h"

typedef struct {
	ScPgStatement first;  /* the first batch */
	ScPgStatement next;   /* a batch after a key */
	ScPgStatement insert;
	ScPgStatement count;
	ScPgStatement setval; /* NULL sql: no identity */
} TableStatements;

static TableStatements table_statements[SC_SPOOL_COPY_N_TABLES];

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

static const char *
base_type (const char *type)
{
	return type[0] == 'm' ? type + 1 : type;
}

static const char *
sql_type (const char *type)
{
	return strcmp (base_type (type), "x") == 0 ? "bigint" : "text";
}

/* Built once, kept for the process's life (statement names must outlive
 * every connection that prepared them). */
static void
build_statements (void)
{
	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
		const ScCopyTable *table = &sc_spool_copy_tables[t];
		TableStatements *s = &table_statements[t];
		GString *first = g_string_new ("SELECT ");
		GString *next = g_string_new ("SELECT ");
		GString *insert = g_string_new (NULL);

		append_columns (first, table, table->n_columns);
		g_string_append_printf (first, " FROM %s ORDER BY ", identifier (table->name));
		append_columns (first, table, table->n_key);
		g_string_append (first, " LIMIT $1");

		append_columns (next, table, table->n_columns);
		g_string_append_printf (next, " FROM %s WHERE (", table->name);
		append_columns (next, table, table->n_key);
		g_string_append (next, ") > (");
		for (guint k = 0; k < table->n_key; k++)
			g_string_append_printf (next, k == 0 ? "$%u::%s" : ", $%u::%s", k + 1,
						sql_type (table->columns[k].type));
		g_string_append (next, ") ORDER BY ");
		append_columns (next, table, table->n_key);
		g_string_append_printf (next, " LIMIT $%u", table->n_key + 1);

		g_string_append_printf (insert, "INSERT INTO %s (", table->name);
		append_columns (insert, table, table->n_columns);
		g_string_append (insert, ") SELECT ");
		for (guint c = 0; c < table->n_columns; c++) {
			const char *type = base_type (table->columns[c].type);
			if (c > 0)
				g_string_append (insert, ", ");
			if (strcmp (type, "x") == 0)
				g_string_append_printf (insert, "c%u::bigint", c);
			else if (strcmp (type, "ay") == 0)
				g_string_append_printf (insert, "decode (c%u, 'hex')", c);
			else
				g_string_append_printf (insert, "c%u", c);
		}
		g_string_append (insert, " FROM unnest (");
		for (guint c = 0; c < table->n_columns; c++)
			g_string_append_printf (insert, c == 0 ? "$%u::text[]" : ", $%u::text[]", c + 1);
		g_string_append (insert, ") AS u (");
		for (guint c = 0; c < table->n_columns; c++)
			g_string_append_printf (insert, c == 0 ? "c%u" : ", c%u", c);
		g_string_append_c (insert, ')');

		s->first.name = g_strdup_printf ("sc_copy_first_%s", table->name);
		s->first.sql = g_string_free (first, FALSE);
		s->next.name = g_strdup_printf ("sc_copy_next_%s", table->name);
		s->next.sql = g_string_free (next, FALSE);
		s->insert.name = g_strdup_printf ("sc_copy_insert_%s", table->name);
		s->insert.sql = g_string_free (insert, FALSE);
		s->count.name = g_strdup_printf ("sc_copy_count_%s", table->name);
		s->count.sql = g_strdup_printf ("SELECT count(*) FROM %s", table->name);
		if (table->identity != NULL) {
			/* the sequence named by value: $1 table, $2 column */
			s->setval.name = g_strdup_printf ("sc_copy_setval_%s", table->name);
			s->setval.sql = g_strdup_printf (
			    "SELECT setval (pg_get_serial_sequence ($1, $2),"
			    " coalesce ((SELECT max (%s) FROM %s), 0) + 1, false)",
			    identifier (table->identity), table->name);
		}
	}
}

static const TableStatements *
statements_for (const ScCopyTable *table)
{
	static gsize built;
	gsize index = (gsize) (table - sc_spool_copy_tables);

	g_assert (index < SC_SPOOL_COPY_N_TABLES);
	if (g_once_init_enter (&built)) {
		build_statements ();
		g_once_init_leave (&built, 1);
	}
	return &table_statements[index];
}

gboolean
sc_pg_copy_begin (ScSpool *spool, gboolean write, GError **error)
{
	static const ScPgStatement snapshot = {
	    "sc_copy_begin_snapshot",
	    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
	};
	ScPgSpool *pg = SC_PG_SPOOL (spool);

	if (write)
		return sc_pg_begin (pg, error);
	g_return_val_if_fail (!pg->in_transaction, FALSE);
	if (!sc_pg_exec_done (pg, &snapshot, NULL, "spool-copy: begin", NULL, error))
		return FALSE;
	pg->in_transaction = TRUE;
	return TRUE;
}

gboolean
sc_pg_copy_commit (ScSpool *spool, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);

	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
		const ScCopyTable *table = &sc_spool_copy_tables[t];
		const TableStatements *s = statements_for (table);
		g_auto(ScPgParams) params = {0};

		if (table->identity == NULL)
			continue;
		sc_pg_params_text (&params, table->name);
		sc_pg_params_text (&params, table->identity);
		if (!sc_pg_exec_done (pg, &s->setval, &params, "spool-copy: sequences", NULL, error)) {
			sc_pg_rollback (pg);
			return FALSE;
		}
	}
	/* one row per (state, list) again, as a long-running spool has */
	if (!sc_pg_fold_state_counts (pg, error)) {
		sc_pg_rollback (pg);
		return FALSE;
	}
	return sc_pg_commit (pg, error);
}

void
sc_pg_copy_rollback (ScSpool *spool)
{
	sc_pg_rollback (SC_PG_SPOOL (spool));
}

/* Field (@row, @column) as a GVariant of the column's type; NULL with
 * @error for a value the type cannot hold. */
static GVariant *
field_value (const ScCopyTable *table, const PGresult *result, int row, int column, GError **error)
{
	const char *type = table->columns[column].type;
	gboolean nullable = type[0] == 'm';
	const char *base = base_type (type);
	GVariant *value;

	if (PQgetisnull (result, row, column)) {
		if (nullable)
			return g_variant_new_maybe (G_VARIANT_TYPE (base), NULL);
		g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
			     _("%s.%s is NULL in a row, which the schema does not allow"), table->name,
			     table->columns[column].name);
		return NULL;
	}
	if (strcmp (base, "x") == 0) {
		value = g_variant_new_int64 (sc_pg_get_int64 (result, row, column));
	} else if (strcmp (base, "s") == 0) {
		const char *text = PQgetvalue (result, row, column);
		/* a SQL_ASCII database can hold any bytes */
		if (!g_utf8_validate (text, PQgetlength (result, row, column), NULL)) {
			g_autofree char *key = g_utf8_make_valid (PQgetvalue (result, row, 0), -1);
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
				     _("%s.%s of the row with %s %s is not UTF-8 text"), table->name,
				     table->columns[column].name, table->columns[0].name, key);
			return NULL;
		}
		value = g_variant_new_string (text);
	} else {
		g_autoptr(GBytes) bytes = sc_pg_get_bytes (result, row, column);
		value = g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING, bytes, TRUE);
	}
	return nullable ? g_variant_new_maybe (NULL, value) : value;
}

/* Adds @value (of column type @type) to @params as text (int64 rendered). */
static void
add_key_param (ScPgParams *params, const char *type, GVariant *value)
{
	if (strcmp (base_type (type), "x") == 0)
		sc_pg_params_int64 (params, g_variant_get_int64 (value));
	else
		sc_pg_params_text (params, g_variant_get_string (value, NULL));
}

GPtrArray *
sc_pg_copy_out (ScSpool *spool, const ScCopyTable *table, GVariant *after, guint limit, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	const TableStatements *s = statements_for (table);
	g_auto(ScPgParams) params = {0};
	g_autoptr(PGresult) result = NULL;
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);

	if (after != NULL) {
		for (guint k = 0; k < table->n_key; k++) {
			g_autoptr(GVariant) key = g_variant_get_child_value (after, k);
			add_key_param (&params, table->columns[k].type, key);
		}
	}
	sc_pg_params_int64 (&params, limit);
	result = sc_pg_exec (pg, after != NULL ? &s->next : &s->first, &params, "spool-copy: read", error);
	if (result == NULL)
		return NULL;
	for (int row = 0; row < PQntuples (result); row++) {
		GVariant *values[32];
		g_assert (table->n_columns <= G_N_ELEMENTS (values));
		for (guint c = 0; c < table->n_columns; c++) {
			values[c] = field_value (table, result, row, (int) c, error);
			if (values[c] == NULL) {
				for (guint d = 0; d < c; d++)
					g_variant_unref (g_variant_ref_sink (values[d]));
				return NULL;
			}
		}
		g_ptr_array_add (rows, g_variant_ref_sink (g_variant_new_tuple (values, table->n_columns)));
	}
	return g_steal_pointer (&rows);
}

/* One element of a text[] literal: quoted, \ and " escaped. */
static void
append_element (GString *array, const char *text, gsize length)
{
	g_string_append_c (array, '"');
	for (gsize i = 0; i < length; i++) {
		if (text[i] == '"' || text[i] == '\\')
			g_string_append_c (array, '\\');
		g_string_append_c (array, text[i]);
	}
	g_string_append_c (array, '"');
}

static void
append_value (GString *array, const char *type, GVariant *value)
{
	g_autoptr(GVariant) inner = NULL;

	if (type[0] == 'm') {
		inner = g_variant_get_maybe (value);
		if (inner == NULL) {
			g_string_append (array, "NULL");
			return;
		}
		value = inner;
		type++;
	}
	if (strcmp (type, "x") == 0) {
		g_string_append_printf (array, "%" G_GINT64_FORMAT, g_variant_get_int64 (value));
	} else if (strcmp (type, "s") == 0) {
		gsize length = 0;
		const char *text = g_variant_get_string (value, &length);
		append_element (array, text, length);
	} else {
		static const char hex[] = "0123456789abcdef";
		gsize length = 0;
		const guint8 *data = g_variant_get_fixed_array (value, &length, 1);
		g_string_append_c (array, '"');
		for (gsize i = 0; i < length; i++) {
			g_string_append_c (array, hex[data[i] >> 4]);
			g_string_append_c (array, hex[data[i] & 0xf]);
		}
		g_string_append_c (array, '"');
	}
}

gboolean
sc_pg_copy_in (ScSpool *spool, const ScCopyTable *table, GPtrArray *rows, GError **error)
{
	ScPgSpool *pg = SC_PG_SPOOL (spool);
	const TableStatements *s = statements_for (table);
	g_auto(ScPgParams) params = {0};
	g_autoptr(GPtrArray) arrays = g_ptr_array_new_with_free_func (g_free);

	g_assert (table->n_columns <= SC_PG_MAX_PARAMS);
	if (rows->len == 0)
		return TRUE;
	for (guint c = 0; c < table->n_columns; c++) {
		GString *array = g_string_new ("{");
		for (guint i = 0; i < rows->len; i++) {
			g_autoptr(GVariant) value = NULL;
			g_return_val_if_fail (g_variant_is_of_type (rows->pdata[i], sc_copy_table_row_type (table)),
					      FALSE);
			value = g_variant_get_child_value (rows->pdata[i], c);
			if (i > 0)
				g_string_append_c (array, ',');
			append_value (array, table->columns[c].type, value);
		}
		g_string_append_c (array, '}');
		g_ptr_array_add (arrays, g_string_free (array, FALSE));
		sc_pg_params_text (&params, arrays->pdata[c]);
	}
	return sc_pg_exec_done (pg, &s->insert, &params, "spool-copy: write", NULL, error);
}

gboolean
sc_pg_copy_count (ScSpool *spool, const ScCopyTable *table, guint64 *out_rows, GError **error)
{
	g_autoptr(PGresult) result =
	    sc_pg_exec (SC_PG_SPOOL (spool), &statements_for (table)->count, NULL, "spool-copy: count", error);

	if (result == NULL)
		return FALSE;
	*out_rows = (guint64) sc_pg_get_int64 (result, 0, 0);
	return TRUE;
}
