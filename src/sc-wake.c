/* sc-wake.c — datagram wakeups between inject and the runners (sc-wake.h). */
#include "config.h"

#include "sc-wake.h"

#include <glib/gstdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sc-error.h"
#include "sc-i18n.h"

GSocket *
sc_wake_listen (const char *spool_folder, char **out_path, GError **error)
{
	g_autofree char *dir = g_build_filename (spool_folder, "wake", NULL);
	g_autofree char *name = g_strdup_printf ("%d.sock", (int) getpid ());
	g_autofree char *path = g_build_filename (dir, name, NULL);
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	struct sockaddr_un probe;

	if (strlen (path) >= sizeof probe.sun_path) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
			     _("wake socket path %s is too long"), path);
		return NULL;
	}
	if (g_mkdir_with_parents (dir, 0750) != 0) {
		int saved_errno = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
			     _("cannot create %s: %s"), dir, g_strerror (saved_errno));
		return NULL;
	}
	/* A file of our PID can only be a leftover of a dead process. */
	(void) g_unlink (path);
	socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_DEFAULT, error);
	if (socket == NULL)
		return NULL;
	address = g_unix_socket_address_new (path);
	if (!g_socket_bind (socket, address, FALSE, error))
		return NULL;
	g_socket_set_blocking (socket, FALSE);
	*out_path = g_steal_pointer (&path);
	return g_steal_pointer (&socket);
}

void
sc_wake_notify (const char *spool_folder)
{
	g_autofree char *dir_path = g_build_filename (spool_folder, "wake", NULL);
	g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
	g_autoptr(GSocket) socket = NULL;
	const char *name;

	if (dir == NULL)
		return;
	socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_DEFAULT, NULL);
	if (socket == NULL)
		return;
	g_socket_set_blocking (socket, FALSE);
	while ((name = g_dir_read_name (dir)) != NULL) {
		g_autofree char *path = NULL;
		g_autoptr(GSocketAddress) address = NULL;
		g_autoptr(GError) error_local = NULL;

		if (!g_str_has_suffix (name, ".sock"))
			continue;
		path = g_build_filename (dir_path, name, NULL);
		address = g_unix_socket_address_new (path);
		if (g_socket_send_to (socket, address, "w", 1, NULL, &error_local) < 0 &&
		    g_error_matches (error_local, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
			(void) g_unlink (path); /* nobody listens there any more */
	}
}

void
sc_wake_drain (GSocket *socket)
{
	char buffer[64];

	while (g_socket_receive (socket, buffer, sizeof buffer, NULL, NULL) > 0)
		;
}
