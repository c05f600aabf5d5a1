/* sc-spool-copy.h — `stagecoach spool-copy`: a whole spool moved between
 * backends (SQLite → PostgreSQL and back), every record kept, ids too.
 *
 * The tables are one description (sc_spool_copy_tables) that every
 * backend reads and writes by: column names and a GVariant type per
 * column, so a row travels as one GVariant tuple from any backend's
 * copy_out to any backend's copy_in (sc-spool-backend.h).
 */
#pragma once

#include "sc-spool.h"

G_BEGIN_DECLS

typedef struct {
	const char *name; /* the column, as both schemas spell it */
	/* "x" integer, "s" text, "ay" bytes; "m…" when it may be NULL */
	const char *type;
} ScCopyColumn;

typedef struct _ScCopyTable ScCopyTable;
struct _ScCopyTable {
	const char *name;
	const ScCopyColumn *columns; /* the key columns first */
	guint n_columns;
	/* The first n_key columns are the table's key, never NULL: rows are
	 * read in its order, each batch after the last key of the previous. */
	guint n_key;
	/* "id" when the destination numbers new rows itself after the copy
	 * (PostgreSQL's identity sequences move past the largest); NULL else. */
	const char *identity;
};

/* messages, bodies, stages, attempts, recipients, notifications, audit,
 * accepted: foreign-key order.  Not copied: state_counts (the
 * destination's triggers count the messages as they arrive) and
 * clock_anchor (it belongs to one host's boot clock). */
#define SC_SPOOL_COPY_N_TABLES 8
extern const ScCopyTable sc_spool_copy_tables[SC_SPOOL_COPY_N_TABLES];

/* The type of one row of @table: a tuple of its columns' types. */
const GVariantType *sc_copy_table_row_type (const ScCopyTable *table);

/* Called after each batch (@done FALSE) and once per table at its end
 * (@done TRUE, @rows its total). */
typedef void (*ScSpoolCopyProgress) (const ScCopyTable *table,
				     guint64 rows,
				     gboolean done,
				     gpointer user_data);

/* Copies every record of @from into @to, which must be empty (no
 * message, audit row, notification or accepted pair: otherwise
 * SC_SPOOL_ERROR_FAILED saying what it holds, and @to is not touched).
 * @from is read in one snapshot, @to written in one transaction: a copy
 * that fails leaves @to as it was.  Before committing it checks that
 * both sides hold as many rows per table and messages per state.
 * A message leased by a runner that is still alive (the daemons must be
 * stopped) fails the copy.  @out_rows (nullable): the rows copied per
 * table, in sc_spool_copy_tables' order. */
gboolean sc_spool_copy (ScSpool *from,
			ScSpool *to,
			ScSpoolCopyProgress progress,
			gpointer user_data,
			guint64 out_rows[SC_SPOOL_COPY_N_TABLES],
			GError **error);

G_END_DECLS
