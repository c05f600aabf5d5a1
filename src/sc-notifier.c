/* sc-notifier.c — drains the admin notification outbox to the webhook.
 *
 * Pending rows of the spool's notifications table become signed JSON POSTs
 * (one per row, or one digest for many when a burst would flood the
 * receiver), one request in flight at a time, on the main context through
 * libsoup's async API.  A row leaves the outbox only when the receiver
 * answered 2xx; any other outcome moves its next_attempt_at back with an
 * exponential backoff, so nothing is lost across restarts and a repeat
 * carries the same X-Stagecoach-Delivery id.  Redirects are not followed
 * (a 3xx is a failure, logged with its Location), at most
 * SC_NOTIFIER_REPLY_MAX bytes of a reply are read, and the webhook URL is
 * logged without its user-info and query.  Once a minute it also
 * checks the due backlog and queues backlog.high (at most once an hour).
 *
 * It must never: block the main context, mark a row sent without a 2xx,
 * change a message's state, or poll on a tick — one timer is set to the
 * next due row (or the next backlog check) and sc_notifier_kick() fires it.
 */
#include "config.h"

#include "sc-timer.h"
#include "sc-notifier.h"

#include <json-glib/json-glib.h>

#include "sc-error.h"
#include "sc-duration.h"
#include "sc-i18n.h"

#define SC_NOTIFY_SEC G_GINT64_CONSTANT (1000000)
#define SC_NOTIFY_BACKOFF_INITIAL (10 * SC_NOTIFY_SEC)
#define SC_NOTIFY_BACKOFF_MAX (10 * 60 * SC_NOTIFY_SEC)
#define SC_NOTIFY_DIGEST_MAX 1000 /* events per digest POST; a full one is followed at once */
#define SC_NOTIFY_BACKLOG_CHECK (60 * SC_NOTIFY_SEC)
#define SC_NOTIFY_BACKLOG_QUIET (3600 * SC_NOTIFY_SEC)
#define SC_NOTIFY_SPOOL_RETRY (10 * SC_NOTIFY_SEC)
#define SC_NOTIFY_FAILED_RECIPIENTS_MAX 100 /* listed per message; the dashboard has all */

typedef struct _Request Request;

struct _ScNotifier {
	ScConfig *config;         /* (owned) */
	ScSpool *spool;           /* (unowned) the main thread's connection */
	ScClock *clock;           /* (owned) */
	GMainContext *context;    /* (owned) the thread-default context at creation */
	SoupSession *session;     /* (owned) */
	GSource *timer;           /* (owned) ready at the next thing to do */
	Request *in_flight;       /* (nullable) (unowned) owned by its callback */
	guint failures;           /* consecutive failed POSTs */
	gint64 blocked_until;     /* the receiver is failing: no POST before this */
	gint64 window_start;      /* single POSTs are counted per digest interval */
	guint window_sent;
	gint64 digest_hold_until; /* after a digest: nothing before this */
	gint64 next_backlog_check;
	gint64 last_backlog_at;   /* 0: none since start */
};

struct _Request {
	ScNotifier *notifier;      /* (nullable) (unowned) NULL once the notifier is freed */
	SoupMessage *message;      /* (owned) (nullable) */
	GCancellable *cancellable; /* (owned) */
	GSource *timeout;          /* (owned) (nullable) cancels after notify_timeout */
	GInputStream *reply;       /* (owned) (nullable) the reply body, once the headers came */
	guint8 *reply_data;        /* (owned) (nullable) SC_NOTIFIER_REPLY_MAX bytes */
	gboolean reply_complete;   /* read to its end: the connection may be reused */
	GArray *ids;               /* (owned) (element-type gint64) rows carried */
	char *delivery;            /* (owned) */
	guint attempts;            /* most failed tries among the rows */
	gboolean digest;
	gboolean full;             /* a digest of SC_NOTIFY_DIGEST_MAX: more are waiting */
	gboolean timed_out;
};

static void notifier_drain (ScNotifier *self);

/* Closes a reply body without reading the rest of it: libsoup's close would
 * otherwise read on to the end, however long, before freeing the
 * connection.  A body read to its end closes normally (keep-alive). */
static void
reply_close (GInputStream *stream, gboolean complete)
{
	g_autoptr(GCancellable) now = g_cancellable_new ();

	if (!complete)
		g_cancellable_cancel (now);
	g_input_stream_close (stream, now, NULL);
}

static void
request_free (Request *request)
{
	if (request->timeout != NULL) {
		g_source_destroy (request->timeout);
		g_source_unref (request->timeout);
	}
	if (request->reply != NULL) {
		reply_close (request->reply, request->reply_complete);
		g_object_unref (request->reply);
	}
	g_free (request->reply_data);
	g_clear_object (&request->message);
	g_clear_object (&request->cancellable);
	g_array_unref (request->ids);
	g_free (request->delivery);
	g_free (request);
}

static gint64
backoff (guint attempts)
{
	gint64 delay = SC_NOTIFY_BACKOFF_INITIAL;

	for (guint i = 1; i < attempts && delay < SC_NOTIFY_BACKOFF_MAX; i++)
		delay *= 2;
	return MIN (delay, SC_NOTIFY_BACKOFF_MAX);
}

/* ---- the request: body, signature, session ---- */

char *
sc_notifier_sign (const char *key, gsize key_len, GBytes *body)
{
	g_autoptr(GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) key, key_len);
	gsize size = 0;
	const guchar *data = g_bytes_get_data (body, &size);

	if (size > 0)
		g_hmac_update (hmac, data, (gssize) size);
	return g_strdup_printf ("sha256=%s", g_hmac_get_string (hmac));
}

static const char *
getenv_either (const char *lower, const char *upper)
{
	const char *value = g_getenv (lower);

	if (value == NULL || *value == '\0')
		value = g_getenv (upper);
	return value != NULL && *value != '\0' ? value : NULL;
}

/* Proxies from the environment, as curl reads them for the other stages;
 * NULL (no proxy) when none is set.  Not GIO's default resolver: its GNOME
 * module reads GSettings and aborts the process when the desktop schemas
 * are missing, as on most servers. */
static GProxyResolver *
proxy_resolver_from_environment (void)
{
	const char *no_proxy = getenv_either ("no_proxy", "NO_PROXY");
	const char *http = getenv_either ("http_proxy", "HTTP_PROXY");
	const char *https = getenv_either ("https_proxy", "HTTPS_PROXY");
	const char *all = getenv_either ("all_proxy", "ALL_PROXY");
	g_auto(GStrv) ignore = NULL;
	GProxyResolver *resolver;

	if (http == NULL && https == NULL && all == NULL)
		return NULL;
	ignore = no_proxy != NULL ? g_strsplit (no_proxy, ",", -1) : NULL;
	resolver = g_simple_proxy_resolver_new (all, ignore);

	if (http != NULL)
		g_simple_proxy_resolver_set_uri_proxy (G_SIMPLE_PROXY_RESOLVER (resolver), "http", http);
	if (https != NULL)
		g_simple_proxy_resolver_set_uri_proxy (G_SIMPLE_PROXY_RESOLVER (resolver), "https", https);
	return resolver;
}

SoupSession *
sc_notifier_new_session (const ScConfig *config)
{
	guint seconds = (guint) CLAMP (config->notify_timeout / G_USEC_PER_SEC, 1, G_MAXUINT);
	g_autoptr(GProxyResolver) resolver = proxy_resolver_from_environment ();

	return soup_session_new_with_options ("user-agent", "stagecoach/" PACKAGE_VERSION,
					      "timeout", seconds,
					      "proxy-resolver", resolver,
					      NULL);
}

SoupMessage *
sc_notifier_build_message (const ScConfig *config, const char *delivery, GBytes *body, GError **error)
{
	g_autoptr(SoupMessage) message = NULL;
	g_autofree char *key = NULL;
	g_autofree char *signature = NULL;
	g_autoptr(GError) error_local = NULL;
	SoupMessageHeaders *headers;
	gsize key_len = 0;

	g_return_val_if_fail (config != NULL && delivery != NULL && body != NULL, NULL);
	if (config->notify_webhook == NULL || *config->notify_webhook == '\0') {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("no webhook configured ([notify] webhook)"));
		return NULL;
	}
	if (config->notify_secret_file == NULL) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("no secret file configured ([notify] secret-file)"));
		return NULL;
	}
	/* read at each send: a rotated secret needs no reload */
	if (!g_file_get_contents (config->notify_secret_file, &key, &key_len, &error_local)) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("cannot read the notify secret file: %s"), error_local->message);
		return NULL;
	}
	while (key_len > 0 && (key[key_len - 1] == '\n' || key[key_len - 1] == '\r'))
		key[--key_len] = '\0';
	message = soup_message_new (SOUP_METHOD_POST, config->notify_webhook);
	if (message == NULL) {
		g_autofree char *shown = sc_notifier_redact_url (config->notify_webhook);
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("“%s” is not a usable webhook URL"), shown);
		return NULL;
	}
	soup_message_add_flags (message, SOUP_MESSAGE_NO_REDIRECT);
	signature = sc_notifier_sign (key, key_len, body);
	soup_message_set_request_body_from_bytes (message, "application/json", body);
	headers = soup_message_get_request_headers (message);
	soup_message_headers_replace (headers, "X-Stagecoach-Signature", signature);
	soup_message_headers_replace (headers, "X-Stagecoach-Delivery", delivery);
	return g_steal_pointer (&message);
}

GBytes *
sc_notifier_read_reply (GInputStream *stream, GError **error)
{
	g_autofree guint8 *data = g_malloc (SC_NOTIFIER_REPLY_MAX);
	gsize length = 0;
	gboolean ok;

	ok = g_input_stream_read_all (stream, data, SC_NOTIFIER_REPLY_MAX, &length, NULL, error);

	reply_close (stream, ok && length < SC_NOTIFIER_REPLY_MAX);
	if (!ok)
		return NULL;
	return g_bytes_new_take (g_steal_pointer (&data), length);
}

char *
sc_notifier_redact_url (const char *url)
{
	g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED, NULL);

	if (uri == NULL)
		return g_strdup (_("(an unparseable URL)"));
	return g_uri_join (G_URI_FLAGS_ENCODED, g_uri_get_scheme (uri),
			   g_uri_get_userinfo (uri) != NULL ? "***" : NULL, g_uri_get_host (uri),
			   g_uri_get_port (uri), g_uri_get_path (uri),
			   g_uri_get_query (uri) != NULL ? "***" : NULL, NULL);
}

char *
sc_notifier_redirect_location (SoupMessage *message)
{
	const char *location;
	g_autoptr(GUri) target = NULL;
	g_autofree char *text = NULL;

	if (!SOUP_STATUS_IS_REDIRECTION (soup_message_get_status (message)))
		return NULL;
	location = soup_message_headers_get_one (soup_message_get_response_headers (message), "Location");
	if (location == NULL)
		return NULL;
	target = g_uri_parse_relative (soup_message_get_uri (message), location, G_URI_FLAGS_ENCODED, NULL);
	if (target == NULL)
		return g_strdup (_("(an unparseable URL)"));
	text = g_uri_to_string (target);
	return sc_notifier_redact_url (text);
}

/* ---- payloads ---- */

static void
add_string (JsonBuilder *builder, const char *key, const char *value)
{
	json_builder_set_member_name (builder, key);
	if (value != NULL)
		json_builder_add_string_value (builder, value);
	else
		json_builder_add_null_value (builder);
}

static void
add_time (JsonBuilder *builder, const char *key, gint64 time)
{
	g_autofree char *text = sc_time_to_iso8601 (time);
	add_string (builder, key, text);
}

static void
add_failed_recipients (JsonBuilder *builder, GPtrArray *recipients)
{
	guint listed = 0;

	json_builder_set_member_name (builder, "failed_recipients");
	json_builder_begin_array (builder);
	for (guint i = 0; recipients != NULL && i < recipients->len; i++) {
		const ScRecipientRecord *record = recipients->pdata[i];
		if (g_strcmp0 (record->status, "failed") != 0)
			continue;
		if (listed++ == SC_NOTIFY_FAILED_RECIPIENTS_MAX)
			break;
		json_builder_begin_object (builder);
		add_string (builder, "address", record->address);
		json_builder_set_member_name (builder, "code");
		json_builder_add_int_value (builder, record->code);
		add_string (builder, "reply", record->reply);
		json_builder_end_object (builder);
	}
	json_builder_end_array (builder);
}

/* "message": the facts a person needs to decide, read now from the spool
 * (a deleted message keeps only its queue id). */
static void
add_message (ScNotifier *self, JsonBuilder *builder, const ScNotification *row)
{
	g_autoptr(ScMessageSummary) summary = NULL;
	g_autoptr(GPtrArray) recipients = NULL;
	g_autoptr(GPtrArray) attempts = NULL;
	g_autoptr(GError) error_local = NULL;
	g_autofree char *url = NULL;
	const char *stage = NULL;
	const char *public_url = self->config->admin_public_url;

	json_builder_set_member_name (builder, "message");
	if (row->queue_id == NULL) {
		json_builder_add_null_value (builder);
		return;
	}
	summary = sc_spool_get_summary (self->spool, row->queue_id, &error_local);
	if (summary == NULL && !g_error_matches (error_local, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND))
		g_warning ("notifier: reading %s: %s", row->queue_id, error_local->message);
	if (summary != NULL) {
		recipients = sc_spool_get_recipients (self->spool, summary->id, NULL);
		attempts = sc_spool_get_attempts (self->spool, summary->id, NULL);
	}
	if (attempts != NULL && attempts->len > 0)
		stage = ((ScAttemptRecord *) attempts->pdata[attempts->len - 1])->stage;
	if (public_url != NULL && *public_url != '\0') {
		gsize len = strlen (public_url);
		while (len > 0 && public_url[len - 1] == '/')
			len--;
		url = g_strdup_printf ("%.*s/#/message/%s", (int) len, public_url, row->queue_id);
	}
	json_builder_begin_object (builder);
	add_string (builder, "id", row->queue_id);
	add_string (builder, "list", summary != NULL ? summary->list_id : NULL);
	add_string (builder, "subject", summary != NULL ? summary->subject : NULL);
	add_string (builder, "stage", stage);
	add_string (builder, "error",
		    summary != NULL && summary->last_error != NULL ? summary->last_error : row->detail);
	add_failed_recipients (builder, recipients);
	add_string (builder, "url", url);
	json_builder_end_object (builder);
}

static void
add_event (ScNotifier *self, JsonBuilder *builder, const ScNotification *row)
{
	g_autofree char *delivery = g_strdup_printf ("n-%" G_GINT64_FORMAT, row->id);

	json_builder_begin_object (builder);
	add_string (builder, "event", row->kind);
	add_time (builder, "time", row->created_at);
	add_string (builder, "delivery", delivery);
	add_string (builder, "detail", row->detail);
	add_message (self, builder, row);
	json_builder_end_object (builder);
}

static GBytes *
builder_to_bytes (JsonBuilder *builder)
{
	g_autoptr(JsonNode) root = json_builder_get_root (builder);
	g_autoptr(JsonGenerator) generator = json_generator_new ();
	gsize length = 0;
	char *text;

	json_generator_set_root (generator, root);
	text = json_generator_to_data (generator, &length);
	return g_bytes_new_take (text, length);
}

/* ---- sending ---- */

static void
notifier_schedule (ScNotifier *self, gint64 when)
{
	gint64 delay;

	if (self->config->notify_backlog_threshold > 0)
		when = MIN (when, self->next_backlog_check);
	if (when == G_MAXINT64) {
		sc_timer_source_arm (self->timer, -1);
		return;
	}
	delay = when - sc_clock_now (self->clock);
	sc_timer_source_arm (self->timer, MAX (delay, 0));
}

static void
notifier_sent (ScNotifier *self, Request *request, gint64 now)
{
	g_autoptr(GError) error_local = NULL;

	self->failures = 0;
	self->blocked_until = 0;
	if (request->digest)
		self->digest_hold_until = request->full ? 0 : now + self->config->notify_digest_interval;
	else
		self->window_sent++;
	if (!sc_spool_notify_mark_sent (self->spool, (const gint64 *) request->ids->data,
					request->ids->len, now, &error_local))
		/* they stay pending and go again under the same delivery id */
		g_warning ("notifier: %s was delivered but not recorded: %s", request->delivery,
			   error_local->message);
	g_debug ("notifier: %s delivered (%u rows)", request->delivery, request->ids->len);
}

static void
notifier_failed (ScNotifier *self, Request *request, const char *reason, gint64 now)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree char *webhook = sc_notifier_redact_url (self->config->notify_webhook);
	gint64 delay = backoff (request->attempts + 1);

	self->failures++;
	self->blocked_until = now + backoff (self->failures);
	if (!sc_spool_notify_mark_failed (self->spool, (const gint64 *) request->ids->data,
					  request->ids->len, now + delay, reason, &error_local))
		g_warning ("notifier: recording the failure of %s: %s", request->delivery,
			   error_local->message);
	/* expected while the receiver is down: not a warning */
	g_message ("notifier: %s to %s failed, next try in %" G_GINT64_FORMAT "s: %s",
		   request->delivery, webhook, delay / G_USEC_PER_SEC, reason);
}

/* The answer is in (or none will come: @error): record it, go on. */
static void
request_done (Request *request, const GError *error)
{
	ScNotifier *self = request->notifier;
	g_autofree char *reason = NULL;
	g_autofree char *location = NULL;
	guint status;
	gint64 now;

	self->in_flight = NULL;
	now = sc_clock_now (self->clock);
	status = soup_message_get_status (request->message);
	if (request->reply != NULL && SOUP_STATUS_IS_SUCCESSFUL (status)) {
		/* the status decides; the body is only read to free the connection */
		notifier_sent (self, request, now);
	} else {
		if (request->timed_out) {
			/* a translatable format cannot hold G_GINT64_FORMAT */
			g_autofree char *limit = sc_duration_format (self->config->notify_timeout);
			reason = g_strdup_printf (_("no answer within %s"), limit);
		}
		else if (error != NULL)
			reason = g_strdup (error->message);
		else if ((location = sc_notifier_redirect_location (request->message)) != NULL)
			reason = g_strdup_printf (_("HTTP %u %s to %s (redirects are not followed)"),
						  status, soup_message_get_reason_phrase (request->message),
						  location);
		else
			reason = g_strdup_printf ("HTTP %u %s", status,
						  soup_message_get_reason_phrase (request->message));
		notifier_failed (self, request, reason, now);
	}
	request_free (request);
	notifier_drain (self);
}

static void
request_read_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Request *request = user_data;
	g_autoptr(GError) error = NULL;
	gsize length = 0;

	if (g_input_stream_read_all_finish (G_INPUT_STREAM (source), result, &length, &error))
		request->reply_complete = length < SC_NOTIFIER_REPLY_MAX;
	else
		g_debug ("notifier: reading the reply to %s: %s", request->delivery, error->message);
	if (request->notifier == NULL) {
		/* the notifier is gone; the rows stay pending */
		request_free (request);
		return;
	}
	request_done (request, NULL);
}

static void
request_sent_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Request *request = user_data;
	g_autoptr(GError) error = NULL;

	request->reply = soup_session_send_finish (SOUP_SESSION (source), result, &error);
	if (request->notifier == NULL) {
		request_free (request);
		return;
	}
	if (request->reply == NULL) {
		request_done (request, error);
		return;
	}
	/* at most the cap, whatever the receiver sends */
	request->reply_data = g_malloc (SC_NOTIFIER_REPLY_MAX);
	g_input_stream_read_all_async (request->reply, request->reply_data, SC_NOTIFIER_REPLY_MAX,
				       G_PRIORITY_DEFAULT, request->cancellable, request_read_cb, request);
}

static gboolean
request_timeout_cb (gpointer user_data)
{
	Request *request = user_data;

	request->timed_out = TRUE;
	g_cancellable_cancel (request->cancellable);
	return G_SOURCE_REMOVE;
}

/* Sends @rows (one, or a digest of them); takes no ownership. */
static void
notifier_send (ScNotifier *self, GPtrArray *rows, gboolean digest, gint64 now)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(GBytes) body = NULL;
	g_autoptr(GError) error = NULL;
	Request *request = g_new0 (Request, 1);
	gint64 first = G_MAXINT64;
	gint64 last = 0;

	request->ids = g_array_sized_new (FALSE, FALSE, sizeof (gint64), rows->len);
	request->digest = digest;
	request->full = digest && rows->len >= SC_NOTIFY_DIGEST_MAX;
	for (guint i = 0; i < rows->len; i++) {
		const ScNotification *row = rows->pdata[i];
		g_array_append_val (request->ids, row->id);
		request->attempts = MAX (request->attempts, row->attempts);
		first = MIN (first, row->id);
		last = MAX (last, row->id);
	}
	if (digest) {
		request->delivery = g_strdup_printf ("d-%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT, first, last);
		json_builder_begin_object (builder);
		add_string (builder, "event", "digest");
		add_time (builder, "time", now);
		add_string (builder, "delivery", request->delivery);
		json_builder_set_member_name (builder, "count");
		json_builder_add_int_value (builder, rows->len);
		json_builder_set_member_name (builder, "events");
		json_builder_begin_array (builder);
		for (guint i = 0; i < rows->len; i++)
			add_event (self, builder, rows->pdata[i]);
		json_builder_end_array (builder);
		json_builder_end_object (builder);
	} else {
		request->delivery = g_strdup_printf ("n-%" G_GINT64_FORMAT, first);
		add_event (self, builder, rows->pdata[0]);
	}
	body = builder_to_bytes (builder);
	request->message = sc_notifier_build_message (self->config, request->delivery, body, &error);
	if (request->message == NULL) {
		notifier_failed (self, request, error->message, now);
		request_free (request);
		notifier_schedule (self, self->blocked_until);
		return;
	}
	request->notifier = self;
	request->cancellable = g_cancellable_new ();
	request->timeout = g_timeout_source_new ((guint) CLAMP (self->config->notify_timeout / 1000, 1, G_MAXUINT));
	g_source_set_callback (request->timeout, request_timeout_cb, request, NULL);
	g_source_set_static_name (request->timeout, "stagecoach-notify-timeout");
	g_source_attach (request->timeout, self->context);
	self->in_flight = request;
	soup_session_send_async (self->session, request->message, G_PRIORITY_DEFAULT,
				 request->cancellable, request_sent_cb, request);
}

/* backlog.high, at most once an hour; rows are queued even without a webhook. */
static void
notifier_check_backlog (ScNotifier *self, gint64 now)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree char *detail = NULL;
	guint threshold = self->config->notify_backlog_threshold;
	guint64 count = 0;

	self->next_backlog_check = now + SC_NOTIFY_BACKLOG_CHECK;
	if (self->last_backlog_at != 0 && now < self->last_backlog_at + SC_NOTIFY_BACKLOG_QUIET)
		return;
	if (!sc_spool_notify_count_backlog (self->spool, now, (guint64) threshold + 1, &count,
					    &error_local)) {
		g_warning ("notifier: counting the backlog: %s", error_local->message);
		return;
	}
	if (count <= threshold)
		return;
	detail = g_strdup_printf ("more than %u messages are due", threshold);
	if (!sc_spool_notify_insert_event (self->spool, "backlog.high", detail, now, &error_local)) {
		g_warning ("notifier: recording backlog.high: %s", error_local->message);
		return;
	}
	self->last_backlog_at = now;
}

static void
notifier_drain (ScNotifier *self)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) rows = NULL;
	gint64 now = sc_clock_now (self->clock);
	guint threshold = self->config->notify_digest_threshold;
	guint64 due = 0;
	gint64 next = G_MAXINT64;
	gboolean digest;

	if (self->config->notify_backlog_threshold > 0 && now >= self->next_backlog_check)
		notifier_check_backlog (self, now);
	if (self->in_flight != NULL)
		return; /* its end drains again */
	if (self->config->notify_webhook == NULL || *self->config->notify_webhook == '\0') {
		notifier_schedule (self, G_MAXINT64);
		return;
	}
	if (now < self->blocked_until) {
		notifier_schedule (self, self->blocked_until);
		return;
	}
	if (!sc_spool_notify_count_pending (self->spool, now, &due, &error)) {
		g_warning ("notifier: %s", error->message);
		notifier_schedule (self, now + SC_NOTIFY_SPOOL_RETRY);
		return;
	}
	if (due == 0) {
		if (!sc_spool_notify_next_due (self->spool, &next, &error) && error != NULL) {
			g_warning ("notifier: %s", error->message);
			next = now + SC_NOTIFY_SPOOL_RETRY;
		}
		notifier_schedule (self, next);
		return;
	}
	if (now < self->digest_hold_until) {
		notifier_schedule (self, self->digest_hold_until);
		return;
	}
	if (now - self->window_start >= self->config->notify_digest_interval) {
		self->window_start = now;
		self->window_sent = 0;
	}
	/* a burst (many pending at once, or many sent one by one lately)
	 * goes as one digest per interval */
	digest = due > threshold || self->window_sent >= threshold;
	rows = sc_spool_notify_claim (self->spool, now, digest ? SC_NOTIFY_DIGEST_MAX : 1, &error);
	if (rows == NULL) {
		g_warning ("notifier: %s", error->message);
		notifier_schedule (self, now + SC_NOTIFY_SPOOL_RETRY);
		return;
	}
	if (rows->len == 0) {
		notifier_schedule (self, now + SC_NOTIFY_SPOOL_RETRY);
		return;
	}
	notifier_send (self, rows, digest, now);
}

static gboolean
timer_cb (gpointer user_data)
{
	notifier_drain (user_data);
	return G_SOURCE_CONTINUE;
}

/* ---- public ---- */

ScNotifier *
sc_notifier_new (ScConfig *config, ScSpool *spool, ScClock *clock)
{
	ScNotifier *self;

	g_return_val_if_fail (config != NULL && spool != NULL && clock != NULL, NULL);
	self = g_new0 (ScNotifier, 1);
	self->config = sc_config_ref (config);
	self->spool = spool;
	self->clock = sc_clock_ref (clock);
	self->context = g_main_context_ref_thread_default ();
	self->session = sc_notifier_new_session (config);
	self->next_backlog_check = sc_clock_now (clock);
	self->timer = sc_timer_source_new (timer_cb, self, "stagecoach-notify-timer");
	sc_timer_source_arm (self->timer, 0);
	g_source_attach (self->timer, self->context);
	return self;
}

void
sc_notifier_kick (ScNotifier *self)
{
	g_return_if_fail (self != NULL);
	sc_timer_source_arm (self->timer, 0);
}

void
sc_notifier_set_config (ScNotifier *self, ScConfig *config)
{
	g_return_if_fail (self != NULL && config != NULL);
	sc_config_ref (config);
	sc_config_unref (self->config);
	self->config = config;
	g_object_set (self->session, "timeout",
		      (guint) CLAMP (config->notify_timeout / G_USEC_PER_SEC, 1, G_MAXUINT), NULL);
	/* a new webhook deserves a try at once */
	self->blocked_until = 0;
	sc_notifier_kick (self);
}

void
sc_notifier_free (ScNotifier *self)
{
	if (self == NULL)
		return;
	if (self->in_flight != NULL) {
		self->in_flight->notifier = NULL;
		g_cancellable_cancel (self->in_flight->cancellable);
		self->in_flight = NULL;
	}
	g_source_destroy (self->timer);
	g_source_unref (self->timer);
	soup_session_abort (self->session);
	g_object_unref (self->session);
	g_main_context_unref (self->context);
	sc_clock_unref (self->clock);
	sc_config_unref (self->config);
	g_free (self);
}
