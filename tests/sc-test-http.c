/* sc-test-http.c — see sc-test-http.h. */
#include "config.h"

#include "sc-test-http.h"

struct _ScTestHttpServer {
	GThread *thread;
	GMainContext *context;
	GMainLoop *loop;
	char *server_header;
	SoupServerCallback callback;
	gpointer user_data;
	GMutex mutex;
	GCond cond;
	guint16 port; /* under mutex until the thread has started */
};

static gpointer
server_thread (gpointer data)
{
	ScTestHttpServer *self = data;
	g_autoptr(SoupServer) server = NULL;
	g_autoptr(GError) error = NULL;
	GSList *uris;

	g_main_context_push_thread_default (self->context);
	server = soup_server_new ("server-header", self->server_header, NULL);
	soup_server_add_handler (server, NULL, self->callback, self->user_data, NULL);
	soup_server_listen_local (server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
	g_assert_no_error (error);
	uris = soup_server_get_uris (server);
	g_assert_nonnull (uris);
	g_mutex_lock (&self->mutex);
	self->port = g_uri_get_port (uris->data);
	g_cond_signal (&self->cond);
	g_mutex_unlock (&self->mutex);
	g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

	g_main_loop_run (self->loop);
	soup_server_disconnect (server);
	g_clear_object (&server);
	/* let the closed connections finish on this context */
	while (g_main_context_iteration (self->context, FALSE))
		;
	g_main_context_pop_thread_default (self->context);
	return NULL;
}

ScTestHttpServer *
sc_test_http_server_start (const char *server_header, SoupServerCallback callback, gpointer user_data)
{
	ScTestHttpServer *self = g_new0 (ScTestHttpServer, 1);

	g_mutex_init (&self->mutex);
	g_cond_init (&self->cond);
	self->server_header = g_strdup (server_header);
	self->callback = callback;
	self->user_data = user_data;
	self->context = g_main_context_new ();
	self->loop = g_main_loop_new (self->context, FALSE);
	self->thread = g_thread_new ("test-http", server_thread, self);
	g_mutex_lock (&self->mutex);
	while (self->port == 0)
		g_cond_wait (&self->cond, &self->mutex);
	g_mutex_unlock (&self->mutex);
	return self;
}

guint16
sc_test_http_server_get_port (ScTestHttpServer *self)
{
	return self->port;
}

static gboolean
quit_cb (gpointer user_data)
{
	g_main_loop_quit (user_data);
	return G_SOURCE_REMOVE;
}

void
sc_test_http_server_stop (ScTestHttpServer *self)
{
	if (self == NULL)
		return;
	g_main_context_invoke (self->context, quit_cb, self->loop);
	g_thread_join (self->thread);
	g_main_loop_unref (self->loop);
	g_main_context_unref (self->context);
	g_mutex_clear (&self->mutex);
	g_cond_clear (&self->cond);
	g_free (self->server_header);
	g_free (self);
}

static void
send_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	ScTestHttpPending *pending = user_data;

	pending->body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &pending->error);
	pending->done = TRUE;
}

void
sc_test_http_send_async (SoupSession *session, SoupMessage *message, ScTestHttpPending *pending)
{
	soup_session_send_and_read_async (session, message, G_PRIORITY_DEFAULT, NULL, send_cb, pending);
}

GBytes *
sc_test_http_send (SoupSession *session, SoupMessage *message)
{
	ScTestHttpPending pending = {0};

	sc_test_http_send_async (session, message, &pending);
	while (!pending.done)
		g_main_context_iteration (NULL, TRUE);
	g_assert_no_error (pending.error);
	return pending.body;
}
