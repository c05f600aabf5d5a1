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

G_END_DECLS
