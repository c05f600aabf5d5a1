/* test-notifier.c — the admin notifier against a real HTTP receiver on
 * 127.0.0.1: signatures, stable delivery ids, retries while the receiver is
 * down or failing, digests for a burst, no webhook, backlog.high, and
 * `stagecoach notify-test` through the binary.
 *
 * The receiver runs on its own thread and main context (the CLI test blocks
 * this thread in sc_test_run); the notifier runs on this thread's default
 * context with a fixed clock, so backoff is crossed by advancing the clock
 * and kicking, never by sleeping.
 */
#include "config.h"

#include <sysexits.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sqlite3.h>

#include "sc-clock.h"
#include "sc-config.h"
#include "sc-error.h"
#include "sc-notifier.h"
#include "sc-sqlite-private.h"
#include "sc-test-backend.h"
#include "sc-spool.h"
#include "sc-test-http.h"
#include "sc-test-util.h"

#define SEC G_GINT64_CONSTANT (1000000)
/* 2026-11-23T12:00:00Z */
#define T0 (G_GINT64_CONSTANT (1795435200) * SEC)
#define SECRET "s3cret-key"
#define WAIT_MS 15000

/* ---- the receiver ---- */

typedef struct {
	char *method;
	char *delivery;  /* X-Stagecoach-Delivery */
	char *signature; /* X-Stagecoach-Signature */
	char *content_type;
	char *user_agent;
	GBytes *body;
	guint status;    /* what we answered */
} Received;

static void
received_free (Received *received)
{
	g_free (received->method);
	g_free (received->delivery);
	g_free (received->signature);
	g_free (received->content_type);
	g_free (received->user_agent);
	g_bytes_unref (received->body);
	g_free (received);
}

typedef struct {
	ScTestHttpServer *http;
	guint port;
	GMutex mutex;
	/* under mutex */
	guint answer; /* status to answer with */
	char *location; /* (nullable) Location header to answer with */
	gboolean huge; /* answer with a body that never ends */
	GPtrArray *received; /* (element-type Received) */
} Receiver;

/* A reply bigger than anything the notifier should read: 1 MiB, then the
 * body neither goes on nor ends (the receiver keeps the connection open). */
#define HUGE_REPLY (1024 * 1024)

static void
answer_huge (SoupServerMessage *message)
{
	static char chunk[HUGE_REPLY];

	memset (chunk, 'x', sizeof chunk);
	soup_server_message_set_status (message, SOUP_STATUS_OK, NULL);
	soup_message_headers_set_encoding (soup_server_message_get_response_headers (message),
					   SOUP_ENCODING_CHUNKED);
	soup_message_body_append (soup_server_message_get_response_body (message), SOUP_MEMORY_STATIC,
				  chunk, sizeof chunk);
}

static void
receiver_callback (SoupServer *server,
		   SoupServerMessage *message,
		   const char *path,
		   GHashTable *query,
		   gpointer user_data)
{
	Receiver *receiver = user_data;
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);
	Received *received = g_new0 (Received, 1);
	g_autofree char *reply = NULL;
	g_autofree char *location = NULL;
	gboolean huge;
	guint status;

	received->method = g_strdup (soup_server_message_get_method (message));
	received->delivery = g_strdup (soup_message_headers_get_one (headers, "X-Stagecoach-Delivery"));
	received->signature = g_strdup (soup_message_headers_get_one (headers, "X-Stagecoach-Signature"));
	received->content_type = g_strdup (soup_message_headers_get_one (headers, "Content-Type"));
	received->user_agent = g_strdup (soup_message_headers_get_one (headers, "User-Agent"));
	received->body = soup_message_body_flatten (soup_server_message_get_request_body (message));
	g_mutex_lock (&receiver->mutex);
	status = receiver->answer;
	location = g_strdup (receiver->location);
	huge = receiver->huge;
	received->status = status;
	g_ptr_array_add (receiver->received, received);
	g_mutex_unlock (&receiver->mutex);
	if (huge) {
		answer_huge (message);
		return;
	}
	if (location != NULL)
		soup_message_headers_replace (soup_server_message_get_response_headers (message),
					      "Location", location);
	reply = g_strdup_printf ("receiver says %u for %s\n", status, received->delivery);
	soup_server_message_set_status (message, status, NULL);
	soup_server_message_set_response (message, "text/plain", SOUP_MEMORY_COPY, reply, strlen (reply));
}

static Receiver *
receiver_start (void)
{
	Receiver *receiver = g_new0 (Receiver, 1);

	g_mutex_init (&receiver->mutex);
	receiver->answer = SOUP_STATUS_OK;
	receiver->received = g_ptr_array_new_with_free_func ((GDestroyNotify) received_free);
	receiver->http = sc_test_http_server_start ("test-receiver", receiver_callback, receiver);
	receiver->port = sc_test_http_server_get_port (receiver->http);
	return receiver;
}

static void
receiver_stop (Receiver *receiver)
{
	sc_test_http_server_stop (receiver->http);
	g_ptr_array_unref (receiver->received);
	g_mutex_clear (&receiver->mutex);
	g_free (receiver->location);
	g_free (receiver);
}

/* Answers @status with Location: @location from now on. */
static void
receiver_set_redirect (Receiver *receiver, guint status, const char *location)
{
	g_mutex_lock (&receiver->mutex);
	receiver->answer = status;
	g_free (receiver->location);
	receiver->location = g_strdup (location);
	g_mutex_unlock (&receiver->mutex);
}

static void
receiver_set_huge (Receiver *receiver)
{
	g_mutex_lock (&receiver->mutex);
	receiver->huge = TRUE;
	g_mutex_unlock (&receiver->mutex);
}

static void
receiver_set_answer (Receiver *receiver, guint status)
{
	g_mutex_lock (&receiver->mutex);
	receiver->answer = status;
	g_mutex_unlock (&receiver->mutex);
}

static guint
receiver_count (Receiver *receiver)
{
	guint count;

	g_mutex_lock (&receiver->mutex);
	count = receiver->received->len;
	g_mutex_unlock (&receiver->mutex);
	return count;
}

/* (transfer none) valid until receiver_stop; the array only grows */
static Received *
receiver_get (Receiver *receiver, guint index)
{
	Received *received;

	g_mutex_lock (&receiver->mutex);
	g_assert_cmpuint (index, <, receiver->received->len);
	received = receiver->received->pdata[index];
	g_mutex_unlock (&receiver->mutex);
	return received;
}

/* A port nothing listens on. */
static guint
closed_port (void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
						  G_SOCKET_PROTOCOL_TCP, &error);
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;

	g_assert_no_error (error);
	g_assert_true (g_socket_bind (socket, any, FALSE, &error));
	g_assert_no_error (error);
	bound = g_socket_get_local_address (socket, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* ---- fixture ---- */

typedef struct {
	char *dir;           /* (owned) */
	char *spool_dir;     /* (owned) the spool: a folder or a URI (sc-test-backend.h) */
	char *spool_lines;   /* (owned) the config's lines naming it */
	char *config_path;   /* (owned) */
	ScSpool *spool;      /* (owned) */
	ScClock *clock;      /* (owned) fixed at T0 */
	ScConfig *config;    /* (owned) (nullable) */
	Receiver *receiver;  /* (owned) */
	ScNotifier *notifier; /* (owned) (nullable) */
} Fixture;

static void
write_config (Fixture *fixture, const char *webhook, const char *extra)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *secret = sc_test_write_file (fixture->dir, "secret", SECRET "\n");
	g_autofree char *notify = webhook != NULL
				      ? g_strdup_printf ("webhook=%s\nsecret-file=%s\n", webhook, secret)
				      : g_strdup ("");
	g_autofree char *text = g_strdup_printf ("[stagecoach]\n"
						 "%s"
						 "busy-timeout=1s\n"
						 "[admin]\n"
						 "public-url=https://admin.example.org/\n"
						 "[notify]\n"
						 "%s"
						 "timeout=5s\n"
						 "%s"
						 "[list:test.example.org]\n"
						 "pipeline=decorate;archive\n"
						 "archive=\n",
						 fixture->spool_lines,
						 notify,
						 extra != NULL ? extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);

	g_clear_pointer (&fixture->config, sc_config_unref);
	fixture->config = sc_config_load (path, &error);
	g_assert_no_error (error);
	g_assert_nonnull (fixture->config);
}

static char *
receiver_url (Fixture *fixture)
{
	return g_strdup_printf ("http://127.0.0.1:%u/hook", fixture->receiver->port);
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *url = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-notifier");
	fixture->spool_lines = sc_test_backend_spool_lines (fixture->dir);
	fixture->spool_dir = sc_test_backend_spool_location (fixture->dir);
	fixture->config_path = g_build_filename (fixture->dir, "stagecoach.conf", NULL);
	fixture->clock = sc_clock_new_fixed (T0);
	fixture->spool = sc_spool_open (fixture->spool_dir, SEC, &error);
	g_assert_no_error (error);
	fixture->receiver = receiver_start ();
	url = receiver_url (fixture);
	write_config (fixture, url, NULL);
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	g_clear_pointer (&fixture->notifier, sc_notifier_free);
	/* let a cancelled request finish on this context */
	while (g_main_context_iteration (NULL, FALSE))
		;
	g_clear_pointer (&fixture->receiver, receiver_stop);
	g_clear_pointer (&fixture->config, sc_config_unref);
	g_clear_pointer (&fixture->spool, sc_spool_close);
	g_clear_pointer (&fixture->clock, sc_clock_unref);
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->spool_dir);
	g_free (fixture->spool_lines);
	g_free (fixture->config_path);
}

/* ---- spool helpers ---- */

/* Plain SQL on the spool, for what no verb shows (sc-test-backend.h). */
static gint64
db_int (Fixture *fixture, const char *sql)
{
	return sc_test_backend_query_int (fixture->spool_dir, sql);
}

static gint64
count_sent (Fixture *fixture)
{
	return db_int (fixture, "SELECT count(*) FROM notifications WHERE state = 'sent'");
}

static gint64
count_pending (Fixture *fixture)
{
	return db_int (fixture, "SELECT count(*) FROM notifications WHERE state = 'pending'");
}

/* Kills @n fresh messages (the first recipient failed with a 550); returns
 * their queue ids. */
static GPtrArray *
make_dead (Fixture *fixture, guint n)
{
	static const char *const recipients[] = {"a@example.org", "b@example.net", NULL};
	g_autoptr(GPtrArray) queue_ids = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GError) error = NULL;
	gint64 now = sc_clock_now (fixture->clock);

	for (guint i = 0; i < n; i++) {
		g_autofree char *subject = g_strdup_printf ("dead %u", i);
		g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: x\r\n\r\nbody\r\n", 20);
		ScNewMessage message = {
		    .list_id = "test.example.org",
		    .sender = "owner@example.org",
		    .recipients = recipients,
		    .pipeline = "decorate;archive",
		    .subject = subject,
		    .raw = raw,
		    .now = now,
		};
		char *queue_id = sc_spool_inject (fixture->spool, &message, &error);
		g_assert_no_error (error);
		g_ptr_array_add (queue_ids, queue_id);
	}
	while (TRUE) {
		g_autoptr(GPtrArray) claimed = sc_spool_claim (fixture->spool, "test", now, now + 60 * SEC, 100, &error);
		g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func (g_free);
		g_assert_no_error (error);
		if (claimed->len == 0)
			break;
		g_autofree ScRecipientUpdate *updates = g_new0 (ScRecipientUpdate, claimed->len);
		g_autofree ScRecipientGroup *groups = g_new0 (ScRecipientGroup, claimed->len);
		for (guint i = 0; i < claimed->len; i++) {
			ScMessage *message = claimed->pdata[i];
			ScStageResult *result = g_new0 (ScStageResult, 1);
			updates[i] = (ScRecipientUpdate){
			    .id = message->id,
			    .lease_generation = message->lease_generation,
			    .position = 0,
			    .status = "failed",
			    .code = 550,
			    .reply = "550 5.1.1 no such user",
			    .at = now,
			};
			groups[i].updates = &updates[i];
			groups[i].n_updates = 1;
			result->id = message->id;
			result->lease_generation = message->lease_generation;
			result->stage = "decorate";
			result->outcome = SC_OUTCOME_PERMANENT;
			result->started_at = now;
			result->finished_at = now;
			result->error = "554 5.7.1 relay refused everything";
			result->next_state = SC_STATE_DEAD;
			result->attempts = 1;
			g_ptr_array_add (results, result);
		}
		g_assert_true (sc_spool_commit_batch (fixture->spool, "test", groups, claimed->len,
						      (ScStageResult *const *) results->pdata, results->len,
						      TRUE, &error));
		g_assert_no_error (error);
		for (guint i = 0; i < claimed->len; i++)
			g_assert_false (groups[i].lease_lost);
	}
	return g_steal_pointer (&queue_ids);
}

typedef gboolean (*Condition) (Fixture *fixture, gpointer data);

/* Runs the default context until @condition holds (real time, bounded). */
static gboolean
wait_until (Fixture *fixture, Condition condition, gpointer data)
{
	gint64 deadline = g_get_monotonic_time () + WAIT_MS * 1000;

	while (!condition (fixture, data)) {
		if (g_get_monotonic_time () > deadline)
			return FALSE;
		if (!g_main_context_iteration (NULL, FALSE))
			g_usleep (1000);
	}
	return TRUE;
}

static gboolean
sent_at_least (Fixture *fixture, gpointer data)
{
	return count_sent (fixture) >= GPOINTER_TO_INT (data);
}

static gboolean
attempts_at_least (Fixture *fixture, gpointer data)
{
	return db_int (fixture, "SELECT coalesce(max(attempts), 0) FROM notifications") >= GPOINTER_TO_INT (data);
}

static gboolean
received_at_least (Fixture *fixture, gpointer data)
{
	return receiver_count (fixture->receiver) >= (guint) GPOINTER_TO_INT (data);
}

/* Spins the context for @ms of real time. */
static void
spin (guint ms)
{
	gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

	while (g_get_monotonic_time () < end) {
		if (!g_main_context_iteration (NULL, FALSE))
			g_usleep (1000);
	}
}

static JsonObject *
parse_object (GBytes *body)
{
	g_autoptr(JsonParser) parser = json_parser_new ();
	g_autoptr(GError) error = NULL;
	gsize size = 0;
	const char *data = g_bytes_get_data (body, &size);

	json_parser_load_from_data (parser, data, (gssize) size, &error);
	g_assert_no_error (error);
	g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
	return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
assert_signed (const Received *received)
{
	gsize size = 0;
	const guchar *data = g_bytes_get_data (received->body, &size);
	g_autofree char *hex = g_compute_hmac_for_data (G_CHECKSUM_SHA256, (const guchar *) SECRET,
							strlen (SECRET), data, size);
	g_autofree char *expected = g_strconcat ("sha256=", hex, NULL);

	g_assert_cmpstr (received->signature, ==, expected);
}

/* ---- tests ---- */

static void
test_signed_payload (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 1);
	g_autoptr(JsonObject) payload = NULL;
	g_autofree char *url = NULL;
	JsonObject *message;
	JsonArray *failed;
	Received *received;

	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
	received = receiver_get (fixture->receiver, 0);
	assert_signed (received);
	g_assert_cmpstr (received->content_type, ==, "application/json");
	g_assert_true (g_str_has_prefix (received->user_agent, "stagecoach/"));
	g_assert_true (g_str_has_prefix (received->delivery, "n-"));

	payload = parse_object (received->body);
	g_assert_cmpstr (json_object_get_string_member (payload, "event"), ==, "message.dead");
	g_assert_cmpstr (json_object_get_string_member (payload, "delivery"), ==, received->delivery);
	g_assert_cmpstr (json_object_get_string_member (payload, "time"), ==, "2026-11-23T12:00:00.000000Z");
	message = json_object_get_object_member (payload, "message");
	g_assert_cmpstr (json_object_get_string_member (message, "id"), ==, queue_ids->pdata[0]);
	g_assert_cmpstr (json_object_get_string_member (message, "list"), ==, "test.example.org");
	g_assert_cmpstr (json_object_get_string_member (message, "subject"), ==, "dead 0");
	g_assert_cmpstr (json_object_get_string_member (message, "stage"), ==, "decorate");
	g_assert_cmpstr (json_object_get_string_member (message, "error"), ==,
			 "554 5.7.1 relay refused everything");
	url = g_strdup_printf ("https://admin.example.org/#/message/%s", (char *) queue_ids->pdata[0]);
	g_assert_cmpstr (json_object_get_string_member (message, "url"), ==, url);
	failed = json_object_get_array_member (message, "failed_recipients");
	g_assert_cmpuint (json_array_get_length (failed), ==, 1);
	g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (failed, 0), "address"),
			 ==, "a@example.org");
	g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (failed, 0), "code"),
			 ==, 550);
	g_assert_cmpint (count_pending (fixture), ==, 0);

	/* nothing more is sent */
	sc_clock_advance (fixture->clock, 3600 * SEC);
	sc_notifier_kick (fixture->notifier);
	spin (100);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
}

/* 503 first: retried after the backoff, same delivery id, then 2xx once. */
static void
test_retry_after_503 (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 1);
	g_autofree char *last_error = NULL;
	Received *first;
	Received *second;

	receiver_set_answer (fixture->receiver, SOUP_STATUS_SERVICE_UNAVAILABLE);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, attempts_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpint (count_pending (fixture), ==, 1);
	g_assert_cmpint (count_sent (fixture), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM notifications"), ==, T0 + 10 * SEC);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE last_error LIKE '%503%'"), ==, 1);

	/* not due yet: a kick sends nothing */
	sc_notifier_kick (fixture->notifier);
	spin (50);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);

	receiver_set_answer (fixture->receiver, SOUP_STATUS_ACCEPTED);
	sc_clock_advance (fixture->clock, 11 * SEC);
	sc_notifier_kick (fixture->notifier);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 2);
	first = receiver_get (fixture->receiver, 0);
	second = receiver_get (fixture->receiver, 1);
	g_assert_cmpstr (first->delivery, ==, second->delivery);
	g_assert_cmpuint (first->status, ==, SOUP_STATUS_SERVICE_UNAVAILABLE);
	g_assert_cmpuint (second->status, ==, SOUP_STATUS_ACCEPTED);
	assert_signed (second);
	g_assert_true (g_bytes_equal (first->body, second->body));

	sc_clock_advance (fixture->clock, 3600 * SEC);
	sc_notifier_kick (fixture->notifier);
	spin (100);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 2);
}

/* Nothing listening; the row survives the notifier (a restart), and the
 * next notifier, with the receiver configured, delivers it once. */
static void
test_receiver_down (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 2);
	g_autofree char *down = g_strdup_printf ("http://127.0.0.1:%u/hook", closed_port ());
	g_autofree char *up = receiver_url (fixture);

	write_config (fixture, down, NULL);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, attempts_at_least, GINT_TO_POINTER (1)));
	/* the receiver is failing: the second row waits too */
	spin (50);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE attempts > 0"), ==, 1);
	g_assert_cmpint (count_pending (fixture), ==, 2);
	g_clear_pointer (&fixture->notifier, sc_notifier_free);

	/* "restart" with a working webhook */
	write_config (fixture, up, NULL);
	sc_clock_advance (fixture->clock, 11 * SEC);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (2)));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 2);
	g_assert_cmpstr (receiver_get (fixture->receiver, 0)->delivery, !=,
			 receiver_get (fixture->receiver, 1)->delivery);

	/* set_config back to the dead one changes nothing already sent */
	write_config (fixture, down, NULL);
	sc_notifier_set_config (fixture->notifier, fixture->config);
	spin (50);
	g_assert_cmpint (count_pending (fixture), ==, 0);
}

static gboolean
pending_none (Fixture *fixture, gpointer data)
{
	return count_pending (fixture) == 0;
}

/* 500 messages die in five bursts while the notifier runs. */
static void
test_digest_burst (Fixture *fixture, gconstpointer data)
{
	gint64 events = 0;
	guint posts;

	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	for (guint burst = 0; burst < 5; burst++) {
		g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 100);
		sc_notifier_kick (fixture->notifier);
		spin (20);
		sc_clock_advance (fixture->clock, 20 * SEC);
	}
	/* whatever waits for the digest interval goes within two of them */
	for (guint i = 0; i < 20 && count_pending (fixture) > 0; i++) {
		sc_clock_advance (fixture->clock, 61 * SEC);
		sc_notifier_kick (fixture->notifier);
		wait_until (fixture, pending_none, NULL);
	}
	g_assert_cmpint (count_pending (fixture), ==, 0);
	g_assert_cmpint (count_sent (fixture), ==, 500);
	posts = receiver_count (fixture->receiver);
	g_assert_cmpuint (posts, >=, 1);
	g_assert_cmpuint (posts, <=, 5);
	for (guint i = 0; i < posts; i++) {
		Received *received = receiver_get (fixture->receiver, i);
		g_autoptr(JsonObject) payload = parse_object (received->body);
		assert_signed (received);
		if (g_strcmp0 (json_object_get_string_member (payload, "event"), "digest") == 0) {
			JsonArray *list = json_object_get_array_member (payload, "events");
			JsonObject *first = json_array_get_object_element (list, 0);
			g_assert_true (g_str_has_prefix (received->delivery, "d-"));
			g_assert_cmpint (json_object_get_int_member (payload, "count"), ==,
					 json_array_get_length (list));
			g_assert_cmpstr (json_object_get_string_member (first, "event"), ==, "message.dead");
			g_assert_nonnull (json_object_get_object_member (first, "message"));
			events += json_array_get_length (list);
		} else {
			events++;
		}
	}
	g_assert_cmpint (events, ==, 500);
}

static void
test_no_webhook (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 3);

	write_config (fixture, NULL, NULL);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	sc_notifier_kick (fixture->notifier);
	spin (200);
	g_assert_cmpint (count_pending (fixture), ==, 3);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 0);
}

static void
test_backlog (Fixture *fixture, gconstpointer data)
{
	static const char *const recipients[] = {"a@example.org", NULL};
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) payload = NULL;

	write_config (fixture, NULL, "backlog-threshold=2\n");
	for (guint i = 0; i < 3; i++) {
		g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: x\r\n\r\nbody\r\n", 20);
		ScNewMessage message = {
		    .list_id = "test.example.org",
		    .sender = "",
		    .recipients = recipients,
		    .pipeline = "decorate",
		    .raw = raw,
		    .now = T0,
		};
		g_autofree char *queue_id = sc_spool_inject (fixture->spool, &message, &error);
		g_assert_no_error (error);
	}
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	spin (50);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE kind = 'backlog.high'"
				 " AND message_id IS NULL AND state = 'pending'"), ==, 1);
	/* checked again a minute later, but raised at most once an hour */
	sc_clock_advance (fixture->clock, 2 * 60 * SEC);
	sc_notifier_kick (fixture->notifier);
	spin (50);
	g_assert_cmpint (db_int (fixture, "SELECT count(*) FROM notifications WHERE kind = 'backlog.high'"), ==, 1);

	/* with a webhook it goes out, "message": null */
	{
		g_autofree char *url = receiver_url (fixture);
		write_config (fixture, url, "backlog-threshold=2\n");
	}
	sc_notifier_set_config (fixture->notifier, fixture->config);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (1)));
	g_assert_true (wait_until (fixture, received_at_least, GINT_TO_POINTER (1)));
	payload = parse_object (receiver_get (fixture->receiver, 0)->body);
	g_assert_cmpstr (json_object_get_string_member (payload, "event"), ==, "backlog.high");
	g_assert_true (json_object_get_null_member (payload, "message"));
}

static void
test_cli_notify_test (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *down = g_strdup_printf ("http://127.0.0.1:%u/hook", closed_port ());
	g_autoptr(JsonObject) payload = NULL;
	Received *received;
	int status;

	status = sc_test_run (fixture->config_path, NULL, &out, &err, "notify-test", NULL);
	g_assert_cmpint (status, ==, 0);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
	received = receiver_get (fixture->receiver, 0);
	assert_signed (received);
	g_assert_true (g_str_has_prefix (received->delivery, "t-"));
	g_assert_true (g_str_has_prefix (out, "200 OK\n"));
	g_assert_nonnull (strstr (out, received->delivery));
	payload = parse_object (received->body);
	g_assert_cmpstr (json_object_get_string_member (payload, "event"), ==, "test");

	/* an answer that is not 2xx: printed, exit 75 */
	receiver_set_answer (fixture->receiver, SOUP_STATUS_SERVICE_UNAVAILABLE);
	g_clear_pointer (&out, g_free);
	status = sc_test_run (fixture->config_path, NULL, &out, NULL, "notify-test", NULL);
	g_assert_cmpint (status, ==, EX_TEMPFAIL);
	g_assert_true (g_str_has_prefix (out, "503 "));

	/* nothing listening: exit 75 */
	write_config (fixture, down, NULL);
	g_clear_pointer (&err, g_free);
	status = sc_test_run (fixture->config_path, NULL, NULL, &err, "notify-test", NULL);
	g_assert_cmpint (status, ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (err, down));

	/* no webhook: a configuration problem */
	write_config (fixture, NULL, NULL);
	status = sc_test_run (fixture->config_path, NULL, NULL, NULL, "notify-test", NULL);
	g_assert_cmpint (status, ==, EX_CONFIG);
}

/* The outbox reads walk notifications_due, never scan. */
static void
test_plans (Fixture *fixture, gconstpointer data)
{
	static const ScSql checked[] = {
	    SC_SQL_NOTIFY_CLAIM, SC_SQL_NOTIFY_COUNT_DUE, SC_SQL_NOTIFY_NEXT_DUE,
	    SC_SQL_NOTIFY_COUNT_BACKLOG,
	};

	if (sc_test_backend_is_postgresql ()) {
		g_test_skip ("SQLite's query plans");
		return;
	}

	for (gsize i = 0; i < G_N_ELEMENTS (checked); i++) {
		g_autofree char *sql = g_strdup_printf ("EXPLAIN QUERY PLAN %s", sc_sqlite_sql_text (checked[i]));
		sqlite3_stmt *stmt = NULL;
		g_autoptr(GString) plan = g_string_new (NULL);

		g_assert_cmpint (sqlite3_prepare_v2 (sc_sqlite_get_db (fixture->spool), sql, -1, &stmt, NULL),
				 ==, SQLITE_OK);
		while (sqlite3_step (stmt) == SQLITE_ROW)
			g_string_append_printf (plan, "%s\n", sqlite3_column_text (stmt, 3));
		sqlite3_finalize (stmt);
		g_assert_null (strstr (plan->str, "SCAN notifications"));
		g_assert_null (strstr (plan->str, "SCAN messages"));
	}
}

/* ---- defect 18: redirects, secrets in logs, huge replies ---- */

/* A 301/302 to another host is a failure, retried later: nothing goes to
 * the other host (neither the signature nor a bodiless GET), the row is
 * not marked sent, and the error names the Location (redacted). */
static void
test_redirect_not_followed (Fixture *fixture, gconstpointer data)
{
	guint status = GPOINTER_TO_UINT (data);
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 1);
	Receiver *other = receiver_start ();
	g_autofree char *location =
	    g_strdup_printf ("http://127.0.0.1:%u/elsewhere?token=location-secret", other->port);
	g_autofree char *expected = g_strdup_printf ("127.0.0.1:%u/elsewhere", other->port);
	g_autofree char *last_error = NULL;

	receiver_set_redirect (fixture->receiver, status, location);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, attempts_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpint (count_sent (fixture), ==, 0);
	g_assert_cmpint (count_pending (fixture), ==, 1);
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
	g_assert_cmpstr (receiver_get (fixture->receiver, 0)->method, ==, "POST");
	g_assert_cmpuint (receiver_count (other), ==, 0);
	g_assert_cmpint (db_int (fixture, "SELECT next_attempt_at FROM notifications"), ==, T0 + 10 * SEC);
	last_error = sc_test_backend_query_text (fixture->spool_dir, "SELECT last_error FROM notifications");
	g_assert_nonnull (strstr (last_error, status == 301 ? "301" : "302"));
	g_assert_nonnull (strstr (last_error, expected));
	g_assert_null (strstr (last_error, "location-secret"));

	/* the receiver is fixed: the retry goes to it, once */
	receiver_set_redirect (fixture->receiver, SOUP_STATUS_OK, NULL);
	sc_clock_advance (fixture->clock, 11 * SEC);
	sc_notifier_kick (fixture->notifier);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 2);
	g_assert_cmpuint (receiver_count (other), ==, 0);
	receiver_stop (other);
}

/* notify-test does not follow a redirect either: 75, Location shown. */
static void
test_cli_redirect (Fixture *fixture, gconstpointer data)
{
	Receiver *other = receiver_start ();
	g_autofree char *location = g_strdup_printf ("http://127.0.0.1:%u/elsewhere", other->port);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	int status;

	receiver_set_redirect (fixture->receiver, SOUP_STATUS_FOUND, location);
	status = sc_test_run (fixture->config_path, NULL, &out, &err, "notify-test", NULL);
	g_assert_cmpint (status, ==, EX_TEMPFAIL);
	g_assert_true (g_str_has_prefix (out, "302 "));
	g_assert_nonnull (strstr (err, location));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
	g_assert_cmpuint (receiver_count (other), ==, 0);
	receiver_stop (other);
}

#define WEBHOOK_USER "hook-user"
#define WEBHOOK_PASSWORD "userinfo-secret"
#define WEBHOOK_QUERY "token=query-secret"

/* A webhook URL with credentials in its user-info and query, on @port. */
static char *
secret_url (guint port)
{
	return g_strdup_printf ("http://" WEBHOOK_USER ":" WEBHOOK_PASSWORD "@127.0.0.1:%u/hook?" WEBHOOK_QUERY,
				port);
}

/* The daemon's log line for a failed POST names the webhook without its
 * user-info and query. */
static void
test_log_redacted (Fixture *fixture, gconstpointer data)
{
	if (g_test_subprocess ()) {
		g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 1);
		g_autofree char *url = secret_url (closed_port ());

		write_config (fixture, url, NULL);
		fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
		g_assert_true (wait_until (fixture, attempts_at_least, GINT_TO_POINTER (1)));
		return;
	}
	g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
	g_test_trap_assert_passed ();
	/* the line is there, with the host and path */
	g_test_trap_assert_stderr ("*notifier: n-1 to http://***@127.0.0.1:*/hook?*** failed*");
	g_test_trap_assert_stderr_unmatched ("*" WEBHOOK_PASSWORD "*");
	g_test_trap_assert_stderr_unmatched ("*query-secret*");
	g_test_trap_assert_stderr_unmatched ("*" WEBHOOK_USER "*");
}

/* notify-test shows the webhook it could not reach without its secrets. */
static void
test_cli_redacted (Fixture *fixture, gconstpointer data)
{
	g_autofree char *down = secret_url (closed_port ());
	g_autofree char *err = NULL;
	int status;

	write_config (fixture, down, NULL);
	status = sc_test_run (fixture->config_path, NULL, NULL, &err, "notify-test", NULL);
	g_assert_cmpint (status, ==, EX_TEMPFAIL);
	g_assert_nonnull (strstr (err, "http://***@127.0.0.1:"));
	g_assert_nonnull (strstr (err, "/hook?***"));
	g_assert_null (strstr (err, WEBHOOK_PASSWORD));
	g_assert_null (strstr (err, WEBHOOK_USER));
	g_assert_null (strstr (err, "query-secret"));
}

/* A 2xx whose body is far larger than the cap and never ends: the
 * notifier reads a little, counts the 2xx and moves on (before, it read
 * until the request timed out and retried forever). */
static void
test_huge_reply (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GPtrArray) queue_ids = make_dead (fixture, 1);

	receiver_set_huge (fixture->receiver);
	fixture->notifier = sc_notifier_new (fixture->config, fixture->spool, fixture->clock);
	g_assert_true (wait_until (fixture, sent_at_least, GINT_TO_POINTER (1)));
	g_assert_cmpuint (receiver_count (fixture->receiver), ==, 1);
}

/* notify-test prints at most the cap of such a reply and exits 0. */
static void
test_cli_huge_reply (Fixture *fixture, gconstpointer data)
{
	g_autofree char *out = NULL;
	int status;

	receiver_set_huge (fixture->receiver);
	status = sc_test_run (fixture->config_path, NULL, &out, NULL, "notify-test", NULL);
	g_assert_cmpint (status, ==, 0);
	g_assert_true (g_str_has_prefix (out, "200 OK\n"));
	g_assert_cmpuint (strlen (out), >, 1024);
	g_assert_cmpuint (strlen (out), <, HUGE_REPLY / 4);
}

int
main (int argc, char **argv)
{
	static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
					      "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};

	/* the receiver is on loopback: no proxy, here or in the binary */
	for (gsize i = 0; i < G_N_ELEMENTS (proxies); i++)
		g_unsetenv (proxies[i]);
	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	if (!sc_test_backend_init ())
		return 0;
	g_test_add ("/notifier/signed-payload", Fixture, NULL, setup, test_signed_payload, teardown);
	g_test_add ("/notifier/retry/503", Fixture, NULL, setup, test_retry_after_503, teardown);
	g_test_add ("/notifier/retry/receiver-down", Fixture, NULL, setup, test_receiver_down, teardown);
	g_test_add ("/notifier/digest/burst", Fixture, NULL, setup, test_digest_burst, teardown);
	g_test_add ("/notifier/no-webhook", Fixture, NULL, setup, test_no_webhook, teardown);
	g_test_add ("/notifier/backlog", Fixture, NULL, setup, test_backlog, teardown);
	g_test_add ("/notifier/plans", Fixture, NULL, setup, test_plans, teardown);
	g_test_add ("/notifier/cli/notify-test", Fixture, NULL, setup, test_cli_notify_test, teardown);
	g_test_add ("/notifier/redirect/301", Fixture, GUINT_TO_POINTER (301), setup,
		    test_redirect_not_followed, teardown);
	g_test_add ("/notifier/redirect/302", Fixture, GUINT_TO_POINTER (302), setup,
		    test_redirect_not_followed, teardown);
	g_test_add ("/notifier/cli/redirect", Fixture, NULL, setup, test_cli_redirect, teardown);
	g_test_add ("/notifier/log-redacted", Fixture, NULL, setup, test_log_redacted, teardown);
	g_test_add ("/notifier/cli/redacted", Fixture, NULL, setup, test_cli_redacted, teardown);
	g_test_add ("/notifier/huge-reply", Fixture, NULL, setup, test_huge_reply, teardown);
	g_test_add ("/notifier/cli/huge-reply", Fixture, NULL, setup, test_cli_huge_reply, teardown);
	return g_test_run ();
}
