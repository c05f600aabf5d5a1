/* sc-spool-copy.c — the tables spool-copy moves, described once for
 * every backend, and the copy itself.
 *
 * Why one transaction: an operator who grows from SQLite to PostgreSQL
 * must not end up with half a spool that a runner starts on.  The
 * destination is written in one transaction (a failed copy leaves it
 * empty) and checked against the source before it commits; the source
 * is read in one snapshot, so the copy is the spool at one instant even
 * if something touched it meanwhile (the daemons should be stopped:
 * a message a live runner holds fails the copy).
 *
 * Ids are kept as they are: they are opaque to callers but stable
 * (sc-spool.h), and the audit log, the notifications and an operator's
 * notes name messages by queue id, the rows by id.
 */
#include "config.h"

#include "sc-i18n.h"
#include "sc-spool-backend.h"
#include "sc-spool-copy.h"

static const ScCopyColumn messages_columns[] = {
    {"id", "x"},
    {"queue_id", "s"},
    {"list_id", "s"},
    {"sender", "s"},
    {"subject", "ms"},
    {"message_id", "ms"},
    {"pipeline", "s"},
    {"state", "s"},
    {"created_at", "x"},
    {"updated_at", "x"},
    {"cycle", "x"},
    {"cycle_started_at", "x"},
    {"attempts", "x"},
    {"crashes", "x"},
    {"next_attempt_at", "mx"},
    {"lease_owner", "ms"},
    {"lease_expires_at", "mx"},
    {"lease_generation", "x"},
    {"last_error", "ms"},
    {"hold_reason", "ms"},
    {"size", "x"},
};

static const ScCopyColumn bodies_columns[] = {
    {"message_id", "x"},
    {"raw", "ay"},
};

static const ScCopyColumn stages_columns[] = {
    {"id", "x"},
    {"message_id", "x"},
    {"stage", "s"},
    {"completed_at", "x"},
    {"note", "ms"},
    {"output", "may"},
};

static const ScCopyColumn attempts_columns[] = {
    {"id", "x"},
    {"message_id", "x"},
    {"cycle", "x"},
    {"stage", "s"},
    {"outcome", "s"},
    {"error", "ms"},
    {"mailer", "ms"},
    {"started_at", "x"},
    {"finished_at", "x"},
};

static const ScCopyColumn recipients_columns[] = {
    {"message_id", "x"},
    {"position", "x"},
    {"address", "s"},
    {"status", "s"},
    {"code", "mx"},
    {"reply", "ms"},
    {"mailer", "ms"},
    {"updated_at", "mx"},
};

static const ScCopyColumn notifications_columns[] = {
    {"id", "x"},
    {"kind", "s"},
    {"message_id", "mx"},
    {"queue_id", "ms"},
    {"detail", "ms"},
    {"created_at", "x"},
    {"state", "s"},
    {"attempts", "x"},
    {"next_attempt_at", "x"},
    {"sent_at", "mx"},
    {"last_error", "ms"},
};

static const ScCopyColumn audit_columns[] = {
    {"id", "x"},
    {"at", "x"},
    {"actor", "s"},
    {"remote", "ms"},
    {"action", "s"},
    {"queue_id", "ms"},
    {"detail", "ms"},
};

static const ScCopyColumn accepted_columns[] = {
    {"message_id", "s"},
    {"recipient", "s"},
    {"accepted_at", "x"},
    {"queue_id", "s"},
};

#define TABLE(name, n_key, identity)                                                               \
	{                                                                                          \
		#name, name##_columns, G_N_ELEMENTS (name##_columns), n_key, identity              \
	}

const ScCopyTable sc_spool_copy_tables[SC_SPOOL_COPY_N_TABLES] = {
    TABLE (messages, 1, "id"),
    TABLE (bodies, 1, NULL),
    TABLE (stages, 1, "id"),
    TABLE (attempts, 1, "id"),
    TABLE (recipients, 2, NULL),
    TABLE (notifications, 1, "id"),
    TABLE (audit, 1, "id"),
    TABLE (accepted, 2, NULL),
};

const GVariantType *
sc_copy_table_row_type (const ScCopyTable *table)
{
	static GVariantType *types[SC_SPOOL_COPY_N_TABLES];
	static gsize initialized;
	gsize index = (gsize) (table - sc_spool_copy_tables);

	g_return_val_if_fail (index < SC_SPOOL_COPY_N_TABLES, NULL);
	if (g_once_init_enter (&initialized)) {
		for (gsize t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
			g_autoptr(GString) text = g_string_new ("(");
			for (guint c = 0; c < sc_spool_copy_tables[t].n_columns; c++)
				g_string_append (text, sc_spool_copy_tables[t].columns[c].type);
			g_string_append_c (text, ')');
			types[t] = g_variant_type_new (text->str);
		}
		g_once_init_leave (&initialized, 1);
	}
	return types[index];
}

/* Blobs make rows large: fewer of them per batch bounds the memory. */
static guint
batch_size (const ScCopyTable *table)
{
	for (guint c = 0; c < table->n_columns; c++) {
		if (g_str_has_suffix (table->columns[c].type, "ay"))
			return 32;
	}
	return 1000;
}

static int
column_index (const ScCopyTable *table, const char *name)
{
	for (guint c = 0; c < table->n_columns; c++) {
		if (strcmp (table->columns[c].name, name) == 0)
			return (int) c;
	}
	g_assert_not_reached ();
}

static gboolean
can_copy (ScSpool *spool, GError **error)
{
	const ScSpoolBackend *backend = spool->backend;

	if (backend->copy_begin != NULL && backend->copy_out != NULL && backend->copy_in != NULL &&
	    backend->copy_count != NULL && backend->copy_commit != NULL && backend->copy_rollback != NULL)
		return TRUE;
	g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
		     _("the %s spool backend of this stagecoach cannot copy spools"), backend->name);
	return FALSE;
}

/* Rows that cannot be without their message (a NOT NULL message_id):
 * an empty messages table says they are gone too. */
static gboolean
belongs_to_message (const ScCopyTable *table)
{
	for (guint c = 0; c < table->n_columns; c++) {
		if (strcmp (table->columns[c].name, "message_id") == 0)
			return strcmp (table->columns[c].type, "x") == 0;
	}
	return FALSE;
}

/* Whether @to holds anything; says what in @error. */
static gboolean
check_empty (ScSpool *to, GError **error)
{
	g_autoptr(GString) held = g_string_new (NULL);

	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
		const ScCopyTable *table = &sc_spool_copy_tables[t];
		g_autoptr(GPtrArray) rows = NULL;

		if (belongs_to_message (table))
			continue;
		rows = to->backend->copy_out (to, table, NULL, 1, error);
		if (rows == NULL)
			return FALSE;
		if (rows->len == 0)
			continue;
		if (held->len > 0)
			g_string_append (held, ", ");
		if (t == 0) {
			gint64 counts[SC_STATE_LAST];
			gint64 total = 0;
			if (!sc_spool_count_states (to, NULL, counts, error))
				return FALSE;
			for (guint s = 0; s < SC_STATE_LAST; s++)
				total += counts[s];
			g_string_append_printf (held, "%s (%" G_GINT64_FORMAT ")", table->name, total);
		} else {
			g_string_append (held, table->name);
		}
	}
	if (held->len == 0)
		return TRUE;
	g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID,
		     /* TRANSLATORS: %s lists tables: "messages (12), audit, notifications" */
		     _("the destination spool is not empty: it holds %s; spool-copy copies into a new, "
		       "empty spool only"),
		     held->str);
	return FALSE;
}

/* A message leased by a runner that still runs: that runner goes on
 * writing to the source, and what it writes would not be copied. */
static gboolean
check_leases (ScSpool *from, const ScCopyTable *table, GPtrArray *rows, GHashTable *asked, GError **error)
{
	int state_column = column_index (table, "state");
	int owner_column = column_index (table, "lease_owner");
	int queue_id_column = column_index (table, "queue_id");

	for (guint i = 0; i < rows->len; i++) {
		g_autoptr(GVariant) state = g_variant_get_child_value (rows->pdata[i], state_column);
		g_autoptr(GVariant) owner = NULL;
		g_autoptr(GVariant) owner_name = NULL;
		const char *name;

		if (strcmp (g_variant_get_string (state, NULL), "active") != 0)
			continue;
		owner = g_variant_get_child_value (rows->pdata[i], owner_column);
		owner_name = g_variant_get_maybe (owner);
		if (owner_name == NULL)
			continue;
		name = g_variant_get_string (owner_name, NULL);
		if (g_hash_table_contains (asked, name))
			continue;
		g_hash_table_add (asked, g_strdup (name));
		if (sc_spool_runner_is_alive (from, name)) {
			g_autoptr(GVariant) queue_id = g_variant_get_child_value (rows->pdata[i], queue_id_column);
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY,
				     _("runner %s is running on the source spool (it holds message %s): "
				       "stop every stagecoach daemon of the spool before copying it"),
				     name, g_variant_get_string (queue_id, NULL));
			return FALSE;
		}
	}
	return TRUE;
}

/* The key columns of @row, as copy_out's @after. */
static GVariant *
key_of (const ScCopyTable *table, GVariant *row)
{
	GVariant *children[4];
	GVariant *key;

	g_assert (table->n_key <= G_N_ELEMENTS (children));
	for (guint k = 0; k < table->n_key; k++)
		children[k] = g_variant_get_child_value (row, k);
	/* the tuple takes its own references of non-floating children */
	key = g_variant_ref_sink (g_variant_new_tuple (children, table->n_key));
	for (guint k = 0; k < table->n_key; k++)
		g_variant_unref (children[k]);
	return key;
}

static gboolean
copy_table (ScSpool *from,
	    ScSpool *to,
	    const ScCopyTable *table,
	    GHashTable *asked,
	    ScSpoolCopyProgress progress,
	    gpointer user_data,
	    guint64 *out_rows,
	    GError **error)
{
	g_autoptr(GVariant) after = NULL;
	guint limit = batch_size (table);
	guint64 rows = 0;

	for (;;) {
		g_autoptr(GPtrArray) batch = from->backend->copy_out (from, table, after, limit, error);

		if (batch == NULL) {
			g_prefix_error (error, _("reading %s: "), table->name);
			return FALSE;
		}
		if (batch->len == 0)
			break;
		if (table == &sc_spool_copy_tables[0] && !check_leases (from, table, batch, asked, error))
			return FALSE;
		if (!to->backend->copy_in (to, table, batch, error)) {
			g_prefix_error (error, _("writing %s: "), table->name);
			return FALSE;
		}
		rows += batch->len;
		g_clear_pointer (&after, g_variant_unref);
		after = key_of (table, batch->pdata[batch->len - 1]);
		if (progress != NULL)
			progress (table, rows, FALSE, user_data);
		if (batch->len < limit)
			break;
	}
	if (progress != NULL)
		progress (table, rows, TRUE, user_data);
	*out_rows = rows;
	return TRUE;
}

/* Both sides hold what was read: rows per table, messages per state. */
static gboolean
verify (ScSpool *from, ScSpool *to, const guint64 rows[SC_SPOOL_COPY_N_TABLES], GError **error)
{
	gint64 from_counts[SC_STATE_LAST];
	gint64 to_counts[SC_STATE_LAST];

	for (guint t = 0; t < SC_SPOOL_COPY_N_TABLES; t++) {
		const ScCopyTable *table = &sc_spool_copy_tables[t];
		guint64 in_from = 0;
		guint64 in_to = 0;

		if (!from->backend->copy_count (from, table, &in_from, error) ||
		    !to->backend->copy_count (to, table, &in_to, error))
			return FALSE;
		if (in_from != rows[t] || in_to != rows[t]) {
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
				     /* %llu: a macro in a msgid hides it from xgettext */
				     _("check failed: %s has %llu rows in the source, %llu were copied and the "
				       "destination has %llu"),
				     table->name, (unsigned long long) in_from, (unsigned long long) rows[t],
				     (unsigned long long) in_to);
			return FALSE;
		}
	}
	if (!sc_spool_count_states (from, NULL, from_counts, error) ||
	    !sc_spool_count_states (to, NULL, to_counts, error))
		return FALSE;
	for (guint s = 0; s < SC_STATE_LAST; s++) {
		if (from_counts[s] != to_counts[s]) {
			g_set_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_FAILED,
				     _("check failed: %lld messages are %s in the source, %lld in the destination"),
				     (long long) from_counts[s], sc_message_state_to_string (s),
				     (long long) to_counts[s]);
			return FALSE;
		}
	}
	return TRUE;
}

gboolean
sc_spool_copy (ScSpool *from,
	       ScSpool *to,
	       ScSpoolCopyProgress progress,
	       gpointer user_data,
	       guint64 out_rows[SC_SPOOL_COPY_N_TABLES],
	       GError **error)
{
	g_autoptr(GHashTable) asked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	guint64 rows[SC_SPOOL_COPY_N_TABLES] = {0};
	gboolean ok;

	g_return_val_if_fail (from != NULL && to != NULL && from != to, FALSE);
	if (!can_copy (from, error) || !can_copy (to, error))
		return FALSE;
	if (!from->backend->copy_begin (from, FALSE, error))
		return FALSE;
	if (!to->backend->copy_begin (to, TRUE, error)) {
		from->backend->copy_rollback (from);
		return FALSE;
	}
	ok = check_empty (to, error);
	for (guint t = 0; ok && t < SC_SPOOL_COPY_N_TABLES; t++)
		ok = copy_table (from, to, &sc_spool_copy_tables[t], asked, progress, user_data, &rows[t], error);
	ok = ok && verify (from, to, rows, error);
	/* a failed commit has rolled back */
	if (ok)
		ok = to->backend->copy_commit (to, error);
	else
		to->backend->copy_rollback (to);
	/* the source was only read: its snapshot ends either way */
	from->backend->copy_rollback (from);
	if (ok && out_rows != NULL)
		memcpy (out_rows, rows, sizeof rows);
	return ok;
}
