/* sc-sqlite-presence.c — which runners a spool has, whether each is alive,
 * and how a writer wakes them, behind the spool so that nothing above it
 * knows the embedded backend keeps them in its folder (lock files in
 * runners/, sc-owner.c; datagram sockets in wake/, sc-wake.c).  A backend
 * spanning hosts answers the same questions otherwise (issue 10: advisory
 * locks and LISTEN/NOTIFY).
 */
#include "config.h"

#include "sc-owner.h"
#include "sc-sqlite-private.h"
#include "sc-wake.h"

#include <glib/gstdio.h>

ScOwner *
sc_sqlite_register_runner (ScSpool *spool, GError **error)
{
	return sc_owner_register (sc_sqlite (spool)->folder, error);
}

gboolean
sc_sqlite_runner_is_alive (ScSpool *spool, const char *owner)
{
	return sc_owner_is_alive (sc_sqlite (spool)->folder, owner);
}

GHashTable *
sc_sqlite_runner_in_handler (ScSpool *spool, const char *owner)
{
	return sc_owner_read_in_handler (sc_sqlite (spool)->folder, owner);
}

void
sc_sqlite_forget_runner (ScSpool *spool, const char *owner)
{
	sc_owner_forget (sc_sqlite (spool)->folder, owner);
}

void
sc_sqlite_wake_runners (ScSpool *spool)
{
	sc_wake_notify (sc_sqlite (spool)->folder);
}

typedef struct {
	GSocket *socket;
	char *path;
	GSourceFunc func;
	gpointer data;
} Waker;

static void
waker_free (gpointer user_data)
{
	Waker *waker = user_data;

	(void) g_unlink (waker->path);
	g_free (waker->path);
	g_object_unref (waker->socket);
	g_free (waker);
}

static gboolean
waker_dispatch (GSocket *socket, GIOCondition condition, gpointer user_data)
{
	Waker *waker = user_data;

	sc_wake_drain (socket);
	(void) waker->func (waker->data);
	return G_SOURCE_CONTINUE;
}

GSource *
sc_sqlite_wake_source_new (ScSpool *spool, GSourceFunc func, gpointer data, GError **error)
{
	Waker *waker = g_new0 (Waker, 1);
	GSource *source;

	waker->socket = sc_wake_listen (sc_sqlite (spool)->folder, &waker->path, error);
	if (waker->socket == NULL) {
		g_free (waker);
		return NULL;
	}
	waker->func = func;
	waker->data = data;
	source = g_socket_create_source (waker->socket, G_IO_IN, NULL);
	g_source_set_callback (source, (GSourceFunc) (void (*) (void)) waker_dispatch, waker, waker_free);
	g_source_set_static_name (source, "stagecoach-wake");
	return source;
}
