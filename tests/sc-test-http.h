/* sc-test-http.h — a real HTTP server on 127.0.0.1 for tests, served from
 * its own thread and main context so the code under test may block. */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _ScTestHttpServer ScTestHttpServer;

/* Listens on a free loopback port; @callback runs on the server's thread. */
ScTestHttpServer *sc_test_http_server_start (const char *server_header,
					     SoupServerCallback callback,
					     gpointer user_data);
guint16 sc_test_http_server_get_port (ScTestHttpServer *server);
/* Stops the thread after the open connections close, frees everything. */
void sc_test_http_server_stop (ScTestHttpServer *server);

/* The client side, for a server on this thread's default main context
 * (the admin server under test): a request in flight, done when its
 * whole body has been read. */
typedef struct {
	gboolean done;
	GBytes *body;   /* (transfer full) */
	GError *error;  /* (transfer full) */
} ScTestHttpPending;

/* Starts @message on @session; iterate the default context until
 * @pending->done. */
void sc_test_http_send_async (SoupSession *session, SoupMessage *message, ScTestHttpPending *pending);
/* Sends @message and waits for the whole body (asserted no transport
 * error). (transfer full) */
GBytes *sc_test_http_send (SoupSession *session, SoupMessage *message);

G_END_DECLS
