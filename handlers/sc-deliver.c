/* sc-deliver.c — the deliver stage: every recipient not yet sent, over
 * SMTP, through the list's mailers with failover.
 *
 * Recipients are grouped by domain into transactions of at most
 * max-recipients.  Each transaction tries the mailers in order, skipping
 * those whose circuit is open; a mailer that cannot be used at all
 * (connect, TLS, AUTH, server-wide refusal) hands the same transaction to
 * the next one.  A message of several transactions is sent over as many
 * connections at once as its first usable mailer's max-connections allows
 * (senders take the next transaction in turn), as an MTA sends one
 * message to many recipients over parallel connections.  Right after each
 * transaction the recipients' new states (sent, deferred, failed, with
 * the server's words) are committed, before that sender starts another:
 * a crash can then repeat at most the transactions in flight, one per
 * sender, and a retry never sends to a recipient already `sent`.  The
 * last transaction to finish has its states go with the stage's result,
 * in the same commit, when the runner allows it.
 *
 * The stage is done when every recipient is sent or failed (with a
 * recipients.failed notification when some failed); it fails transiently
 * while any is pending or deferred; permanently only when no recipient was
 * ever sent and every one failed.  No usable mailer is a transient failure:
 * the message waits for the operator's fix, it never dies of it.
 */
#include "config.h"

#include "sc-deliver-mailer.h"
#include "sc-deliver-reply.h"
#include "sc-deliver-smtp.h"
#include "sc-dkim.h"
#include "sc-handler.h"
#include "sc-i18n.h"
#include "sc-list-unsubscribe.h"
#include "sc-message-headers.h"

typedef struct {
	guint position;
	const char *address; /* (unowned) */
	const char *status;  /* (unowned) static string */
	char *reply;         /* (owned) (nullable) the last reply for it */
} Pending;

static void
pending_clear (gpointer data)
{
	Pending *item = data;
	g_clear_pointer (&item->reply, g_free);
}

static const char *
domain_of (const char *address)
{
	const char *at = strrchr (address, '@');
	return at != NULL ? at + 1 : "";
}

static int
compare_by_domain (gconstpointer a, gconstpointer b)
{
	const Pending *pa = a;
	const Pending *pb = b;
	int by_domain = g_ascii_strcasecmp (domain_of (pa->address), domain_of (pb->address));
	return by_domain != 0 ? by_domain : (int) pa->position - (int) pb->position;
}

/* Whether deliver still sends to @record: not sent yet, and not failed
 * for good (only an operator's retry resets that). */
static gboolean
still_to_send (const ScRecipientRecord *record)
{
	return g_strcmp0 (record->status, "sent") != 0 && g_strcmp0 (record->status, "failed") != 0;
}

/* bounces=list-bounces@example.org, rcpt=joe@example.net →
 * list-bounces+joe=example.net@example.org */
static char *
verp_sender (const char *bounces, const char *recipient)
{
	const char *at = strrchr (bounces, '@');
	g_autofree char *encoded = g_strdup (recipient);

	if (at == NULL)
		return g_strdup (bounces);
	g_strdelimit (encoded, "@", '=');
	return g_strdup_printf ("%.*s+%s%s", (int) (at - bounces), bounces, encoded, at);
}

/* One SMTP transaction's recipients: pending[start, start + n). */
typedef struct {
	guint start;
	guint n;
} Batch;

/* One deliver run, shared by its senders (the worker and its helpers). */
typedef struct {
	ScStageContext *context;
	GPtrArray *mailers;       /* (element-type ScMailerConfig) in order */
	GArray *pending;          /* (element-type Pending) a batch's items are its sender's alone */
	GArray *batches;          /* (element-type Batch) in sending order */
	const char *sender;       /* the envelope sender without VERP */
	gboolean personal;        /* a copy of its own for each recipient */
	guint sent_before;        /* recipients sent by earlier attempts */
	GMutex lock;              /* guards the fields below */
	guint next_batch;         /* the next one a sender takes */
	guint unfinished;         /* batches whose states are not yet handed on */
	GError *stop_error;       /* (owned) (nullable) set: every sender stops */
	GString *mailer_failures; /* "a: 421 …; b: connection refused" */
	GHashTable *used_mailers; /* names of mailers that took a transaction */
	guint sent_now;
	guint senders;            /* senders running */
	guint senders_waiting;    /* of them, waiting for a connection slot */
	gboolean said_waiting;    /* context->waiting last told TRUE */
} Delivery;

/* A sender starts (@running +1) or ends (-1), or starts or stops waiting
 * for a connection slot (@waiting +1/-1): while every running sender
 * waits, the runner is told the handler only waits.  (Commits are not
 * counted: they are short, and on PostgreSQL each mark is a round trip.) */
static void
senders_change (Delivery *delivery, int running, int waiting)
{
	ScStageContext *context = delivery->context;
	gboolean all_wait;

	g_mutex_lock (&delivery->lock);
	delivery->senders += running;
	delivery->senders_waiting += waiting;
	all_wait = delivery->senders > 0 && delivery->senders_waiting == delivery->senders;
	if (all_wait != delivery->said_waiting && context->waiting != NULL) {
		delivery->said_waiting = all_wait;
		context->waiting (context->waiting_data, all_wait);
	}
	g_mutex_unlock (&delivery->lock);
}

static void
sender_waits (Delivery *delivery, gboolean waiting)
{
	senders_change (delivery, 0, waiting ? 1 : -1);
}

static void
note_mailer_failure (Delivery *delivery, const char *name, const ScSmtpResult *result)
{
	g_mutex_lock (&delivery->lock);
	if (delivery->mailer_failures->len > 0)
		g_string_append (delivery->mailer_failures, "; ");
	g_string_append_printf (delivery->mailer_failures, "%s: %s", name,
				result->reply != NULL ? result->reply : _("failed"));
	g_mutex_unlock (&delivery->lock);
}

/* What one recipient's outcome in a transaction becomes. */
static void
fill_update (ScRecipientUpdate *update,
	     const ScSmtpResult *result,
	     const ScSmtpRecipientResult *recipient,
	     const char *mailer_name,
	     gint64 now)
{
	update->mailer = mailer_name;
	update->at = now;
	if (!recipient->accepted) {
		ScReplyClass class = recipient->code > 0 ? sc_smtp_reply_classify (recipient->code, recipient->reply)
							 : SC_REPLY_TRANSIENT;
		update->status = class == SC_REPLY_PERMANENT ? "failed" : "deferred";
		update->code = recipient->code;
		update->reply = recipient->reply;
		return;
	}
	update->code = result->code;
	switch (result->status) {
	case SC_SMTP_SENT:
		update->status = "sent";
		update->reply = result->reply;
		break;
	case SC_SMTP_DATA_UNKNOWN:
		/* the server may have it: retried later, a possible duplicate */
		update->status = "deferred";
		update->reply = result->reply;
		break;
	default:
		update->status = !result->transient && result->code >= 500 ? "failed" : "deferred";
		update->reply = result->reply;
		break;
	}
}

/* Commits one transaction's recipient states before its sender starts
 * another; the last batch to finish may instead go with the stage's
 * result when the runner allows it (ScStageContext.record_last_with_result):
 * every other sender's commit has returned before the handler does. */
static gboolean
commit_recipients (Delivery *delivery, ScRecipientUpdate *updates, guint n, GError **error)
{
	ScStageContext *context = delivery->context;
	gboolean last;

	g_mutex_lock (&delivery->lock);
	last = --delivery->unfinished == 0;
	g_mutex_unlock (&delivery->lock);
	if (last && context->record_last_with_result) {
		sc_stage_context_keep_last_updates (context, updates, n);
		return TRUE;
	}
	return context->record_recipients (context->record_recipients_data, updates, n, error);
}

/* Records @n recipients as not sent by any mailer: deferred (or failed
 * when @refused), with @code and @reply. */
static gboolean
record_unsent (Delivery *delivery,
	       Pending *batch,
	       guint n,
	       gboolean refused,
	       guint code,
	       const char *reply,
	       GError **error)
{
	ScStageContext *context = delivery->context;
	g_autofree ScRecipientUpdate *updates = g_new0 (ScRecipientUpdate, n);

	for (guint i = 0; i < n; i++) {
		updates[i].position = batch[i].position;
		updates[i].status = refused ? "failed" : "deferred";
		batch[i].status = updates[i].status;
		g_free (batch[i].reply);
		batch[i].reply = g_strdup (reply);
		updates[i].code = code;
		updates[i].reply = reply;
		updates[i].at = sc_clock_now (context->clock);
	}
	return commit_recipients (delivery, updates, n, error);
}

/* Whether @attempt's connection may take the next transaction: it was
 * sent, or the server refused it with a reply (to RCPT, DATA or ".") and
 * the session is where a new MAIL starts; not when the server said it is
 * closing (421), nor after a broken or cut connection.  A relay that
 * answers 4xx (greylisting, rate limits) then costs no new connection
 * per message; one that closed it after all is reconnected by the
 * client (a stale pooled connection is not a failure). */
static gboolean
connection_reusable (const ScSmtpResult *attempt)
{
	switch (attempt->status) {
	case SC_SMTP_SENT:
	case SC_SMTP_ALL_REFUSED:
		return TRUE;
	case SC_SMTP_DATA_FAILED:
		return attempt->code >= 400 && attempt->code != 421;
	default:
		return FALSE;
	}
}

/* Sends one batch (same domain, at most max-recipients), failing over
 * across mailers; commits the recipients' new states.  FALSE only when the
 * commit failed (the lease is gone or the spool refused).  The connection
 * that took the transaction goes back to its pool only after that commit
 * (or after its states were kept for the stage's result): a transaction
 * whose outcome is not yet recorded holds a connection, so a crash
 * repeats at most one transaction per connection, however many senders
 * run. */
static gboolean
send_batch (Delivery *delivery,
	    Pending *batch,
	    guint n,
	    const char *sender,
	    GBytes *message,
	    GError **error)
{
	ScStageContext *context = delivery->context;
	const ScConfig *config = context->config;
	g_autoptr(GPtrArray) addresses = g_ptr_array_new ();
	g_autofree ScRecipientUpdate *updates = g_new0 (ScRecipientUpdate, n);
	g_autoptr(ScSmtpResult) last_failure = NULL;
	g_autoptr(ScSmtpResult) result = NULL;
	const char *used = NULL;
	ScMailerState *used_state = NULL;
	ScSmtpConnection *used_connection = NULL;
	gboolean committed;
	guint sent = 0;
	gboolean tried_any = FALSE;
	gboolean all_permanent = TRUE; /* every mailer tried refused for good (MAIL FROM 5xx) */

	for (guint i = 0; i < n; i++)
		g_ptr_array_add (addresses, (gpointer) batch[i].address);
	g_ptr_array_add (addresses, NULL);

	for (guint m = 0; m < delivery->mailers->len && result == NULL; m++) {
		const ScMailerConfig *mailer = delivery->mailers->pdata[m];
		ScMailerState *state = sc_mailer_state_get (mailer);
		ScSmtpConnection *connection;
		g_autoptr(ScSmtpResult) attempt = NULL;

		if (!sc_mailer_state_try_use (state))
			continue; /* circuit open: skipped without its timeout */
		tried_any = TRUE;
		connection = sc_mailer_state_try_acquire (state, mailer);
		if (connection == NULL) {
			/* queued behind other transactions: not working on
			 * this message meanwhile */
			sender_waits (delivery, TRUE);
			connection = sc_mailer_state_acquire (state, mailer, context->cancellable);
			sender_waits (delivery, FALSE);
		}
		if (connection == NULL)
			break; /* cancelled */
		attempt = sc_smtp_send (connection, sender, (const char *const *) addresses->pdata,
					message, context->cancellable);
		if (attempt->status == SC_SMTP_MAILER_FAILED) {
			sc_mailer_state_release (state, connection, FALSE);
			note_mailer_failure (delivery, mailer->name, attempt);
			if (attempt->transient)
				all_permanent = FALSE;
			sc_mailer_state_record_failure (state, attempt->reply, config->circuit_failures,
							config->circuit_cooldown);
			g_clear_pointer (&last_failure, sc_smtp_result_free);
			last_failure = g_steal_pointer (&attempt);
			continue;
		}
		sc_mailer_state_record_success (state);
		used = mailer->name;
		used_state = state;
		used_connection = connection;
		result = g_steal_pointer (&attempt);
	}

	if (result == NULL) {
		/* no mailer took it: every recipient waits, with the last reason */
		g_autofree char *reason = NULL;
		if (!tried_any)
			reason = g_strdup (_("no usable mailer: every circuit is open or none is configured"));
		/* refused for good by every mailer (e.g. 5xx to MAIL FROM
		 * everywhere): no retry can help these recipients */
		gboolean refused = tried_any && last_failure != NULL && all_permanent;
		return record_unsent (delivery,
				      batch,
				      n,
				      refused,
				      last_failure != NULL ? last_failure->code : 0,
				      last_failure != NULL ? last_failure->reply : reason,
				      error);
	}
	for (guint i = 0; i < n; i++) {
		const ScSmtpRecipientResult *recipient = result->recipients->pdata[i];
		updates[i].position = batch[i].position;
		fill_update (&updates[i], result, recipient, used, sc_clock_now (context->clock));
		if (strcmp (updates[i].status, "sent") == 0)
			sent++;
		batch[i].status = updates[i].status;
		g_free (batch[i].reply);
		batch[i].reply = g_strdup (updates[i].reply);
	}
	g_mutex_lock (&delivery->lock);
	g_hash_table_add (delivery->used_mailers, (gpointer) used);
	delivery->sent_now += sent;
	g_mutex_unlock (&delivery->lock);
	committed = commit_recipients (delivery, updates, n, error);
	sc_mailer_state_release (used_state, used_connection, connection_reusable (result));
	return committed;
}

/* The most recipients one transaction takes: the smallest max-recipients
 * of the list's @mailers; one with VERP (an envelope sender each) or
 * personal copies (a List-Unsubscribe and signature each). */
static guint
transaction_size (GPtrArray *mailers, const ScListConfig *list)
{
	guint size = G_MAXUINT;

	for (guint m = 0; m < mailers->len; m++)
		size = MIN (size, ((const ScMailerConfig *) mailers->pdata[m])->max_recipients);
	if (list->verp || sc_list_unsubscribe_is_personal (list))
		size = 1;
	return size;
}

gboolean
sc_deliver_is_one_transaction (const ScConfig *config, const ScListConfig *list, GPtrArray *recipient_records)
{
	g_autoptr(GPtrArray) mailers = sc_config_list_mailers (config, list);
	const char *domain = NULL;
	guint unsent = 0;

	for (guint i = 0; i < recipient_records->len; i++) {
		const ScRecipientRecord *record = recipient_records->pdata[i];
		if (!still_to_send (record))
			continue;
		if (domain == NULL)
			domain = domain_of (record->address);
		else if (g_ascii_strcasecmp (domain, domain_of (record->address)) != 0)
			return FALSE;
		unsent++;
	}
	return mailers->len > 0 && unsent <= transaction_size (mailers, list);
}

/* Whether the message's pipeline (else the list's) signs it. */
static gboolean
pipeline_signs (const ScStageContext *context)
{
	const char *const *stages =
	    context->pipeline != NULL ? context->pipeline : (const char *const *) context->list->pipeline;

	return stages != NULL && g_strv_contains (stages, "sign");
}

/* The bytes for one recipient of a list whose unsubscribe-url names
 * $recipient: its List-Unsubscribe fields on top, then (when the pipeline
 * signs) the DKIM signature over exactly these bytes, since the sign
 * stage left personal messages to deliver. */
static GBytes *
personal_message (const ScStageContext *context, const char *recipient, GError **error)
{
	g_autoptr(GBytes) message =
	    sc_list_unsubscribe_add (context->current, context->list, recipient, error);

	if (message == NULL)
		return NULL;
	if (!pipeline_signs (context))
		return g_steal_pointer (&message);
	return sc_dkim_sign (context->list, message, error);
}

/* Sends one batch: its envelope sender and bytes, then send_batch.
 * FALSE when its states could not be committed (the lease is gone or
 * the spool refused): the spool no longer knows the truth, so every
 * sender stops and the next attempt starts from what is on disk. */
static gboolean
deliver_batch (Delivery *delivery, const Batch *batch, GError **error)
{
	ScStageContext *context = delivery->context;
	Pending *first = &g_array_index (delivery->pending, Pending, batch->start);
	g_autofree char *verp = NULL;
	g_autoptr(GBytes) message = NULL;
	g_autoptr(GError) error_local = NULL;
	gboolean committed;

	if (context->list->verp)
		verp = verp_sender (context->list->bounces, first->address);
	if (delivery->personal)
		message = personal_message (context, first->address, &error_local);
	else
		message = g_bytes_ref (context->current);
	if (message == NULL) {
		/* e.g. the key unreadable: this recipient waits, with why */
		g_autofree char *reply = g_strdup (error_local->message);
		g_clear_error (&error_local);
		committed = record_unsent (delivery, first, batch->n, FALSE, 0, reply, &error_local);
	} else {
		committed = send_batch (delivery, first, batch->n, verp != NULL ? verp : delivery->sender,
					message, &error_local);
	}
	if (!committed)
		g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
			     _("cannot record delivery results: %s"), error_local->message);
	return committed;
}

/* A sender: takes the next batch until none is left or one sender had to
 * stop (shutdown, a commit that failed). */
static gpointer
send_batches (gpointer data)
{
	Delivery *delivery = data;

	senders_change (delivery, 1, 0);
	for (;;) {
		Batch batch;
		GError *error = NULL;

		g_mutex_lock (&delivery->lock);
		if (delivery->stop_error != NULL || delivery->next_batch == delivery->batches->len) {
			g_mutex_unlock (&delivery->lock);
			senders_change (delivery, -1, 0);
			return NULL;
		}
		batch = g_array_index (delivery->batches, Batch, delivery->next_batch++);
		g_mutex_unlock (&delivery->lock);
		if (g_cancellable_is_cancelled (delivery->context->cancellable))
			g_set_error (&error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT, _("stopped"));
		else
			deliver_batch (delivery, &batch, &error);
		if (error != NULL) {
			g_mutex_lock (&delivery->lock);
			if (delivery->stop_error == NULL)
				delivery->stop_error = g_steal_pointer (&error);
			g_mutex_unlock (&delivery->lock);
			g_clear_error (&error);
			senders_change (delivery, -1, 0);
			return NULL;
		}
	}
}

/* Splits the domain-sorted pending recipients into transactions. */
static GArray *
make_batches (GArray *pending, guint batch_size)
{
	GArray *batches = g_array_new (FALSE, FALSE, sizeof (Batch));

	for (guint start = 0; start < pending->len;) {
		const Pending *first = &g_array_index (pending, Pending, start);
		Batch batch = {.start = start, .n = 1};

		while (start + batch.n < pending->len && batch.n < batch_size &&
		       g_ascii_strcasecmp (domain_of (first->address),
					   domain_of (g_array_index (pending, Pending, start + batch.n).address)) == 0)
			batch.n++;
		g_array_append_val (batches, batch);
		start += batch.n;
	}
	return batches;
}

/* How many senders: one per connection the first usable mailer allows,
 * no more than there are batches.  Its pool still bounds how many
 * transactions run against it at once, whichever messages they carry. */
static guint
sender_count (const ScStageContext *context, guint batches)
{
	const ScMailerConfig *first;

	if (batches <= 1)
		return 1; /* the common case: not worth a look at the mailers */
	first = sc_deliver_mailer_key_for_list (context->config, context->list);
	if (first == NULL)
		return 1;
	return MAX (1, MIN (batches, first->max_connections));
}

/* Runs send_batches on this thread and on helpers, one per extra sender,
 * and returns when every one has. */
static void
send_all (Delivery *delivery)
{
	guint senders = sender_count (delivery->context, delivery->batches->len);
	g_autoptr(GPtrArray) helpers = g_ptr_array_new ();

	for (guint i = 1; i < senders; i++) {
		GThread *helper = g_thread_try_new ("sc-deliver", send_batches, delivery, NULL);
		if (helper == NULL)
			break; /* fewer senders, same work */
		g_ptr_array_add (helpers, helper);
	}
	send_batches (delivery);
	for (guint i = 0; i < helpers->len; i++)
		g_thread_join (helpers->pdata[i]);
}

static gboolean
sc_deliver_run (ScStageContext *context, GError **error)
{
	g_autoptr(GArray) pending = g_array_new (FALSE, TRUE, sizeof (Pending));
	g_array_set_clear_func (pending, pending_clear);
	g_autoptr(GString) mailer_failures = g_string_new (NULL);
	g_autoptr(GHashTable) used_mailers = g_hash_table_new (g_str_hash, g_str_equal);
	g_autoptr(GPtrArray) mailers = sc_config_list_mailers (context->config, context->list);
	g_autoptr(GArray) batches = NULL;
	g_autoptr(GString) failed = g_string_new (NULL);
	g_autoptr(GString) deferred = g_string_new (NULL);
	const char *bounces = context->list->bounces;
	Delivery delivery = {
	    .context = context,
	    .mailers = mailers,
	    .pending = pending,
	    .sender = bounces != NULL && *bounces != '\0' ? bounces : context->sender,
	    .personal = sc_list_unsubscribe_is_personal (context->list),
	    .mailer_failures = mailer_failures,
	    .used_mailers = used_mailers,
	};
	guint n_failed = 0;
	guint n_deferred = 0;
	guint n_total = 0;

	g_return_val_if_fail (context->recipient_records != NULL && context->record_recipients != NULL, FALSE);
	for (guint i = 0; i < context->recipient_records->len; i++) {
		const ScRecipientRecord *record = context->recipient_records->pdata[i];
		Pending item = {.position = record->position, .address = record->address, .status = "pending"};
		n_total++;
		if (g_strcmp0 (record->status, "sent") == 0)
			delivery.sent_before++;
		if (still_to_send (record))
			g_array_append_val (pending, item);
	}
	if (pending->len == 0 && n_total > 0) {
		context->note = g_strdup (_("nothing left to send"));
		return TRUE;
	}
	if (mailers->len == 0) {
		g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
			     _("no mailer configured for list %s ([mailer:NAME] sections)"), context->list_id);
		return FALSE;
	}
	g_array_sort (pending, compare_by_domain);
	batches = make_batches (pending, transaction_size (mailers, context->list));
	delivery.batches = batches;
	delivery.unfinished = batches->len;
	g_mutex_init (&delivery.lock);
	send_all (&delivery);
	g_mutex_clear (&delivery.lock);
	if (delivery.stop_error != NULL) {
		g_propagate_error (error, delivery.stop_error);
		return FALSE;
	}

	for (guint i = 0; i < pending->len; i++) {
		Pending *item = &g_array_index (pending, Pending, i);
		if (strcmp (item->status, "failed") == 0) {
			n_failed++;
			g_string_append_printf (failed, "%s%s (%s)", failed->len > 0 ? "; " : "", item->address,
						item->reply != NULL ? item->reply : "");
		} else if (strcmp (item->status, "sent") != 0) {
			n_deferred++;
			if (n_deferred <= 5)
				g_string_append_printf (deferred, "%s%s", deferred->len > 0 ? ", " : "", item->address);
		}
	}
	{
		GString *used = g_string_new (NULL);
		GHashTableIter iter;
		gpointer name;
		g_hash_table_iter_init (&iter, used_mailers);
		while (g_hash_table_iter_next (&iter, &name, NULL))
			g_string_append_printf (used, "%s%s", used->len > 0 ? "," : "", (const char *) name);
		context->mailer = g_string_free (used, used->len == 0);
	}
	if (n_failed > 0) {
		g_autofree char *listed = g_strdup_printf (_("%u recipient(s) refused permanently: %s"),
							   n_failed, failed->str);
		context->notification_kind = g_strdup ("recipients.failed");
		context->notification_detail = g_strdup (listed);
	}
	if (n_deferred > 0) {
		g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
			     _("%u of %u recipient(s) not delivered yet (%s%s)%s%s"),
			     n_deferred, n_total, deferred->str, n_deferred > 5 ? ", …" : "",
			     mailer_failures->len > 0 ? _("; mailers failed: ") : "",
			     mailer_failures->str);
		return FALSE;
	}
	if (n_failed > 0 && delivery.sent_now + delivery.sent_before == 0) {
		g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT,
			     _("every recipient was refused: %s"), failed->str);
		return FALSE;
	}
	if (mailer_failures->len > 0)
		context->note = g_strdup_printf (_("delivered via %s after: %s"), context->mailer,
						 mailer_failures->str);
	return TRUE;
}

static gboolean
sc_deliver_check (const ScConfig *config, const ScListConfig *list, const char *argument, GPtrArray *warnings, GError **error)
{
	g_autoptr(GPtrArray) mailers = sc_config_list_mailers (config, list);

	if (mailers->len == 0) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("pipeline: deliver needs at least one [mailer:NAME] section"));
		return FALSE;
	}
	return TRUE;
}

static void
sc_deliver_shutdown (void)
{
	sc_mailer_state_log_all ();
	sc_mailer_state_reset_all ();
}

const ScHandler sc_handler_deliver = {
    .name = "deliver",
    .run = sc_deliver_run,
    .check = sc_deliver_check,
    .shutdown = sc_deliver_shutdown,
};
