/* sc-ingress-message.c — what every door does with a message before and
 * while it is stored: check it, choose its list, and commit a batch.
 *
 * The checks are the ones `inject` always made (empty, too big, not a
 * message, bad addresses, no recipients, unknown list), so a message is
 * refused for the same reason whichever door it came in by.
 */
#include "config.h"

#include <unistd.h>

#include "sc-i18n.h"
#include "sc-ingress.h"
#include "sc-message-headers.h"

G_DEFINE_QUARK (sc-ingress-error-quark, sc_ingress_error)

void
sc_accepted_free (ScAccepted *accepted)
{
	if (accepted == NULL)
		return;
	g_free (accepted->queue_id);
	g_free (accepted->list_id);
	g_free (accepted->message_id);
	g_free (accepted->duplicate_of);
	g_free (accepted);
}

void
sc_prepared_free (ScPrepared *prepared)
{
	if (prepared == NULL)
		return;
	g_free (prepared->list_id);
	g_free (prepared->pipeline);
	g_free (prepared->sender);
	g_strfreev (prepared->recipients);
	g_free (prepared->subject);
	g_free (prepared->message_id);
	g_clear_pointer (&prepared->raw, g_bytes_unref);
	g_free (prepared->door);
	g_free (prepared->peer);
	g_free (prepared);
}

void
sc_ingress_set_too_big (GError **error, guint64 limit)
{
	g_autofree char *size = g_format_size_full (limit, G_FORMAT_SIZE_IEC_UNITS);

	g_set_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_TOO_BIG,
		     _("the message is larger than max-message-size (%s)"), size);
}

/* "List name <list.example.org>" → "list.example.org" */
static char *
list_id_from_header (const char *value)
{
	const char *open = strrchr (value, '<');
	const char *close = open != NULL ? strchr (open, '>') : NULL;

	if (open == NULL || close == NULL)
		return g_strstrip (g_strdup (value));
	return g_strndup (open + 1, close - open - 1);
}

const ScListConfig *
sc_ingress_route (const ScConfig *config, const char *list_id_header, const char *sender)
{
	GHashTableIter iter;
	gpointer value;

	if (list_id_header != NULL) {
		g_autofree char *list_id = list_id_from_header (list_id_header);
		const ScListConfig *list = sc_config_get_list (config, list_id);
		if (list != NULL)
			return list;
	}
	/* list software sends its posts from the list's bounce address */
	if (sender != NULL && *sender != '\0') {
		g_hash_table_iter_init (&iter, config->lists);
		while (g_hash_table_iter_next (&iter, NULL, &value)) {
			const ScListConfig *list = value;
			if (list->bounces != NULL && g_ascii_strcasecmp (list->bounces, sender) == 0)
				return list;
		}
	}
	return sc_config_get_list (config, config->default_list);
}

static char *
make_message_id (void)
{
	g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
	g_autofree char *stamp = g_date_time_format (now, "%Y%m%d%H%M%S");
	char host[256] = "localhost";

	if (gethostname (host, sizeof host - 1) != 0 || strchr (host, '.') == NULL)
		g_strlcat (host, ".stagecoach.invalid", sizeof host);
	return g_strdup_printf ("%s.%08x%08x@%s", stamp, g_random_int (), g_random_int (), host);
}

static void
set_from (GError **error, ScIngressError code, GError *cause)
{
	g_set_error_literal (error, SC_INGRESS_ERROR, code, cause->message);
}

ScPrepared *
sc_ingress_prepare (const ScConfig *config, const ScSubmission *submission, GError **error)
{
	g_autoptr(ScPrepared) prepared = g_new0 (ScPrepared, 1);
	g_autoptr(ScMessageHeaders) headers = NULL;
	g_autoptr(GBytes) raw = NULL;
	g_autoptr(GError) error_local = NULL;
	const ScListConfig *list;
	const char *message_id;
	gsize size = g_bytes_get_size (submission->raw);
	const char *sender = submission->sender != NULL ? submission->sender : "";

	if (size > config->max_message_size) {
		sc_ingress_set_too_big (error, config->max_message_size);
		return NULL;
	}
	if (strcmp (sender, "<>") == 0)
		sender = ""; /* the null reverse-path */
	if (!sc_address_validate (sender, TRUE, &error_local)) {
		set_from (error, SC_INGRESS_ERROR_BAD_ADDRESS, error_local);
		return NULL;
	}
	if (submission->recipients == NULL || submission->recipients[0] == NULL) {
		g_set_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_BAD_ADDRESS, _("no recipients"));
		return NULL;
	}
	for (guint i = 0; submission->recipients[i] != NULL; i++) {
		if (!sc_address_validate (submission->recipients[i], FALSE, &error_local)) {
			set_from (error, SC_INGRESS_ERROR_BAD_ADDRESS, error_local);
			return NULL;
		}
	}
	raw = sc_message_trim_leading (submission->raw);
	headers = sc_message_headers_parse (raw, &error_local);
	if (headers == NULL) {
		set_from (error, SC_INGRESS_ERROR_BAD_MESSAGE, error_local);
		return NULL;
	}
	if (submission->list_id != NULL) {
		list = sc_config_get_list (config, submission->list_id);
		if (list == NULL) {
			g_set_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_NO_LIST,
				     _("unknown list “%s” (no [list:%s] in the configuration)"),
				     submission->list_id, submission->list_id);
			return NULL;
		}
	} else {
		list = sc_ingress_route (config, sc_message_headers_get (headers, "List-Id"), sender);
		if (list == NULL) {
			g_set_error (error, SC_INGRESS_ERROR, SC_INGRESS_ERROR_NO_LIST,
				     _("no list for this message: its List-Id names no [list:…] "
				       "section, its sender is no list's bounces= address, and "
				       "there is no default-list"));
			return NULL;
		}
	}
	prepared->list_id = g_strdup (list->id);
	prepared->pipeline = g_strdup (list->pipeline_text);
	prepared->sender = g_strdup (sender);
	prepared->recipients = g_strdupv ((char **) submission->recipients);
	prepared->subject = sc_message_headers_get_decoded (headers, "Subject");
	message_id = sc_message_headers_get (headers, "Message-ID");
	if (message_id != NULL) {
		prepared->message_id = g_strstrip (g_utf8_make_valid (message_id, -1));
		prepared->raw = g_bytes_ref (raw);
	} else {
		/* RFC 5322 says SHOULD; every archive and dedup needs one.  A
		 * generated id is new, so it is never looked up for resends. */
		g_autofree char *generated = make_message_id ();
		prepared->message_id = g_strdup_printf ("<%s>", generated);
		prepared->raw = sc_message_headers_add_message_id (headers, generated);
		prepared->generated_message_id = TRUE;
	}
	prepared->door = g_strdup (submission->door);
	prepared->peer = g_strdup (submission->peer);
	return g_steal_pointer (&prepared);
}

gboolean
sc_ingress_store (ScSpool *spool,
		  ScPrepared *const *prepared,
		  guint n_prepared,
		  gint64 dedupe_window,
		  gint64 now,
		  const ScIngressLease *lease,
		  ScAccepted **out_accepted,
		  GError **error)
{
	g_autofree ScNewMessage *messages = g_new0 (ScNewMessage, n_prepared);
	g_autofree const ScNewMessage **pointers = g_new0 (const ScNewMessage *, n_prepared);
	g_autofree char **queue_ids = g_new0 (char *, n_prepared);
	g_autofree guint *duplicates = g_new0 (guint, n_prepared);
	g_autofree char **duplicate_of = g_new0 (char *, n_prepared);
	g_autoptr(GError) error_local = NULL;

	for (guint i = 0; i < n_prepared; i++) {
		const ScPrepared *p = prepared[i];
		messages[i] = (ScNewMessage) {
		    .list_id = p->list_id,
		    .sender = p->sender,
		    .recipients = (const char *const *) p->recipients,
		    .pipeline = p->pipeline,
		    .subject = p->subject,
		    /* a generated id cannot have been seen: no lookup, no pair kept */
		    .message_id = p->message_id,
		    .dedupe = !p->generated_message_id,
		    .raw = p->raw,
		    .now = now,
		    .door = p->door,
		    .peer = p->peer,
		    .lease_owner = lease != NULL && i < lease->count ? lease->owner : NULL,
		    .lease_expires_at = lease != NULL ? lease->expires_at : 0,
		};
		pointers[i] = &messages[i];
	}
	if (!sc_spool_inject_batch (spool, pointers, n_prepared, dedupe_window, queue_ids, duplicates,
				    duplicate_of, lease != NULL ? lease->claimed : NULL, &error_local)) {
		g_set_error_literal (error, SC_INGRESS_ERROR,
				     g_error_matches (error_local, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NO_SPACE)
					 ? SC_INGRESS_ERROR_SPOOL_FULL
					 : SC_INGRESS_ERROR_SPOOL_BUSY,
				     error_local->message);
		return FALSE;
	}
	for (guint i = 0; i < n_prepared; i++) {
		ScAccepted *accepted = g_new0 (ScAccepted, 1);
		accepted->queue_id = queue_ids[i];
		accepted->list_id = g_strdup (prepared[i]->list_id);
		accepted->message_id = g_strdup (prepared[i]->message_id);
		accepted->n_duplicates = duplicates[i];
		accepted->duplicate_of = duplicate_of[i];
		accepted->n_recipients = g_strv_length (prepared[i]->recipients) - duplicates[i];
		out_accepted[i] = accepted;
	}
	return TRUE;
}
