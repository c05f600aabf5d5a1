/* sc-admin-metrics.c — GET /metrics in the Prometheus text format.
 *
 * Gauges (messages per state and list, pending notifications, how late the
 * oldest due message is) are read from the spool at each scrape, from the
 * trigger-kept state_counts and the heads of partial indexes.  Counters
 * and the duration histogram are folded from the attempts table, which is
 * append-only: each scrape reads only the attempts added since the last
 * one (at most FOLD_BATCH of them, so a first scrape of a large spool
 * catches up over several scrapes instead of stalling the main loop).
 * Counters therefore start from the spool's whole history at process
 * start, which Prometheus handles like any counter.
 *
 * This file must never scan the messages table and never print a label
 * value without escaping it (list ids and stage names come from the
 * configuration, mailer names too, but escaping costs nothing).
 */
#include "config.h"

#include <string.h>

#include "sc-admin-private.h"
#include "sc-i18n.h"

#define FOLD_BATCH 100000

static const double duration_buckets[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};

typedef struct {
	guint64 buckets[G_N_ELEMENTS (duration_buckets)]; /* cumulative at render */
	guint64 count;
	double sum; /* seconds */
} ScHistogram;

struct _ScAdminMetrics {
	gint64 last_attempt_id;
	GTree *outcomes;   /* (owned) "stage\037outcome" → guint64* */
	GTree *deliveries; /* (owned) "mailer\037result" → guint64* */
	GTree *durations;  /* (owned) stage → ScHistogram* */
};

static int
compare_keys (gconstpointer a, gconstpointer b, gpointer user_data)
{
	return strcmp (a, b);
}

ScAdminMetrics *
sc_admin_metrics_new (void)
{
	ScAdminMetrics *metrics = g_new0 (ScAdminMetrics, 1);

	metrics->outcomes = g_tree_new_full (compare_keys, NULL, g_free, g_free);
	metrics->deliveries = g_tree_new_full (compare_keys, NULL, g_free, g_free);
	metrics->durations = g_tree_new_full (compare_keys, NULL, g_free, g_free);
	return metrics;
}

void
sc_admin_metrics_free (ScAdminMetrics *metrics)
{
	if (metrics == NULL)
		return;
	g_tree_unref (metrics->outcomes);
	g_tree_unref (metrics->deliveries);
	g_tree_unref (metrics->durations);
	g_free (metrics);
}

static void
count_pair (GTree *tree, const char *first, const char *second)
{
	g_autofree char *key = g_strconcat (first, "\037", second, NULL);
	guint64 *value = g_tree_lookup (tree, key);

	if (value == NULL) {
		value = g_new0 (guint64, 1);
		g_tree_insert (tree, g_steal_pointer (&key), value);
	}
	(*value)++;
}

static void
fold_attempt_cb (const char *stage, const char *outcome, const char *mailer, gint64 duration, gpointer user_data)
{
	ScAdminMetrics *metrics = user_data;
	ScHistogram *histogram;
	double seconds = MAX (duration, 0) / (double) G_USEC_PER_SEC;

	if (stage == NULL || outcome == NULL)
		return;
	count_pair (metrics->outcomes, stage, outcome);
	if (strcmp (stage, "deliver") == 0)
		count_pair (metrics->deliveries, mailer != NULL ? mailer : "", outcome);
	histogram = g_tree_lookup (metrics->durations, stage);
	if (histogram == NULL) {
		histogram = g_new0 (ScHistogram, 1);
		g_tree_insert (metrics->durations, g_strdup (stage), histogram);
	}
	for (guint i = 0; i < G_N_ELEMENTS (duration_buckets); i++) {
		if (seconds <= duration_buckets[i]) {
			histogram->buckets[i]++;
			break;
		}
	}
	histogram->count++;
	histogram->sum += seconds;
}

/* Prometheus label values: backslash, double quote and newline escaped. */
static void
append_label (GString *out, const char *name, const char *value, gboolean first)
{
	if (!first)
		g_string_append_c (out, ',');
	g_string_append_printf (out, "%s=\"", name);
	for (const char *c = value; *c != '\0'; c++) {
		if (*c == '\\')
			g_string_append (out, "\\\\");
		else if (*c == '"')
			g_string_append (out, "\\\"");
		else if (*c == '\n')
			g_string_append (out, "\\n");
		else
			g_string_append_c (out, *c);
	}
	g_string_append_c (out, '"');
}

typedef struct {
	GString *out;
	const char *metric;
	const char *first_label;
	const char *second_label;
} ScPairRender;

static gboolean
render_pair_cb (gpointer key, gpointer value, gpointer user_data)
{
	ScPairRender *render = user_data;
	const char *separator = strchr (key, '\037');
	g_autofree char *first = g_strndup (key, separator - (const char *) key);

	g_string_append_printf (render->out, "%s{", render->metric);
	append_label (render->out, render->first_label, first, TRUE);
	append_label (render->out, render->second_label, separator + 1, FALSE);
	g_string_append_printf (render->out, "} %" G_GUINT64_FORMAT "\n", *(guint64 *) value);
	return FALSE;
}

static gboolean
render_histogram_cb (gpointer key, gpointer value, gpointer user_data)
{
	GString *out = user_data;
	ScHistogram *histogram = value;
	guint64 cumulative = 0;
	char number[G_ASCII_DTOSTR_BUF_SIZE];

	for (guint i = 0; i < G_N_ELEMENTS (duration_buckets); i++) {
		cumulative += histogram->buckets[i];
		g_string_append (out, "stagecoach_stage_duration_seconds_bucket{");
		append_label (out, "stage", key, TRUE);
		/* %g: "0.05", not dtostr's round-trip "0.050000000000000003" */
		append_label (out, "le", g_ascii_formatd (number, sizeof number, "%g", duration_buckets[i]), FALSE);
		g_string_append_printf (out, "} %" G_GUINT64_FORMAT "\n", cumulative);
	}
	g_string_append (out, "stagecoach_stage_duration_seconds_bucket{");
	append_label (out, "stage", key, TRUE);
	append_label (out, "le", "+Inf", FALSE);
	g_string_append_printf (out, "} %" G_GUINT64_FORMAT "\n", histogram->count);
	g_string_append (out, "stagecoach_stage_duration_seconds_sum{");
	append_label (out, "stage", key, TRUE);
	g_string_append_printf (out, "} %s\n", g_ascii_dtostr (number, sizeof number, histogram->sum));
	g_string_append (out, "stagecoach_stage_duration_seconds_count{");
	append_label (out, "stage", key, TRUE);
	g_string_append_printf (out, "} %" G_GUINT64_FORMAT "\n", histogram->count);
	return FALSE;
}

static char *
render (ScAdminServer *server, GError **error)
{
	ScAdminMetrics *metrics = server->metrics;
	g_autoptr(GString) out = g_string_new (NULL);
	g_autoptr(GPtrArray) lists = NULL;
	gint64 now = sc_clock_now (server->clock);
	gint64 pending = 0;
	gint64 next_due = 0;
	double oldest_due = 0;
	char number[G_ASCII_DTOSTR_BUF_SIZE];
	ScPairRender pairs = {.out = out};

	lists = sc_spool_count_by_list (server->spool, error);
	if (lists == NULL)
		return NULL;
	if (!sc_spool_count_notifications_pending (server->spool, &pending, error))
		return NULL;
	if (sc_spool_next_due (server->spool, &next_due, NULL) && next_due < now)
		oldest_due = (now - next_due) / (double) G_USEC_PER_SEC;
	if (!sc_spool_fold_attempts (server->spool,
				     &metrics->last_attempt_id,
				     FOLD_BATCH,
				     fold_attempt_cb,
				     metrics,
				     error))
		return NULL;

	g_string_append (out,
			 "# HELP stagecoach_messages Messages in the spool, by state and list.\n"
			 "# TYPE stagecoach_messages gauge\n");
	for (guint i = 0; i < lists->len; i++) {
		ScListCounts *list = lists->pdata[i];
		for (guint state = 0; state < SC_STATE_LAST; state++) {
			g_string_append (out, "stagecoach_messages{");
			append_label (out, "state", sc_message_state_to_string (state), TRUE);
			append_label (out, "list", list->list_id, FALSE);
			g_string_append_printf (out, "} %" G_GINT64_FORMAT "\n", list->counts[state]);
		}
	}

	g_string_append (out,
			 "# HELP stagecoach_stage_outcomes_total Stage attempts, by stage and outcome.\n"
			 "# TYPE stagecoach_stage_outcomes_total counter\n");
	pairs.metric = "stagecoach_stage_outcomes_total";
	pairs.first_label = "stage";
	pairs.second_label = "outcome";
	g_tree_foreach (metrics->outcomes, render_pair_cb, &pairs);

	g_string_append (out,
			 "# HELP stagecoach_stage_duration_seconds How long stage attempts took.\n"
			 "# TYPE stagecoach_stage_duration_seconds histogram\n");
	g_tree_foreach (metrics->durations, render_histogram_cb, out);

	g_string_append (out,
			 "# HELP stagecoach_deliveries_total Deliver stage attempts, by mailer and result.\n"
			 "# TYPE stagecoach_deliveries_total counter\n");
	pairs.metric = "stagecoach_deliveries_total";
	pairs.first_label = "mailer";
	pairs.second_label = "result";
	g_tree_foreach (metrics->deliveries, render_pair_cb, &pairs);

	g_string_append_printf (out,
				"# HELP stagecoach_notifications_pending Admin notifications not yet sent.\n"
				"# TYPE stagecoach_notifications_pending gauge\n"
				"stagecoach_notifications_pending %" G_GINT64_FORMAT "\n",
				pending);
	g_string_append_printf (out,
				"# HELP stagecoach_oldest_due_seconds How long the oldest due message has waited.\n"
				"# TYPE stagecoach_oldest_due_seconds gauge\n"
				"stagecoach_oldest_due_seconds %s\n",
				g_ascii_dtostr (number, sizeof number, oldest_due));
	return g_string_free (g_steal_pointer (&out), FALSE);
}

void
sc_admin_metrics_handle (ScAdminServer *server, SoupServerMessage *message)
{
	g_autoptr(GError) error = NULL;
	char *text = render (server, &error);

	if (text == NULL) {
		g_warning ("metrics: %s", error->message);
		sc_admin_reply_error (message, SOUP_STATUS_INTERNAL_SERVER_ERROR, error->message);
		return;
	}
	soup_server_message_set_status (message, SOUP_STATUS_OK, NULL);
	soup_server_message_set_response (message,
					  "text/plain; version=0.0.4; charset=utf-8",
					  SOUP_MEMORY_TAKE,
					  text,
					  strlen (text));
}
