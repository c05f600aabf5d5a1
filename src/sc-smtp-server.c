/* sc-smtp-server.c — the SMTP and LMTP listeners (sc-smtp-server.h).
 *
 * Each connection is a pump around its ScSmtpSession: run the session,
 * write what it said, then do what it waits for (read with a timeout,
 * hand the message to the acceptor, TLS handshake, close).  One async
 * operation per connection at a time, all on the ingress thread's
 * context.  Every async operation holds a reference on its connection, so
 * a callback after sc_smtp_server_free() finds it detached and only
 * drops it. */
#include "config.h"

#include "sc-smtp-server.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>

#include "sc-i18n.h"
#include "sc-smtp-session.h"

typedef enum {
	BUSY_NONE,
	BUSY_READ,
	BUSY_WRITE,
	BUSY_SUBMIT,
	BUSY_HANDSHAKE,
	BUSY_CLOSE,
} Busy;

typedef struct _Connection Connection;

struct _ScSmtpServer {
	ScConfig *config;
	ScAcceptor *acceptor;
	GMainContext *context;
	GSocketService *services[2]; /* by ScSmtpProtocol */
	char *unix_path;             /* (nullable) the LMTP socket we made */
	GTlsCertificate *certificate;
	GStrv credentials;
	GList *connections;          /* (element-type Connection) */
	gboolean stopped;
};

struct _Connection {
	gint ref_count;
	ScSmtpServer *server;        /* NULL once detached (server freed) */
	ScSmtpProtocol protocol;
	GSocketConnection *socket_connection;
	GIOStream *stream;           /* the socket, or TLS over it */
	ScSmtpSession *session;
	GCancellable *cancellable;   /* the whole connection: cancelled to abort */
	GCancellable *read_cancellable; /* this read only: timeout, shutdown */
	GSource *timer;
	Busy busy;
	char *peer;                  /* (nullable) */
	GBytes *writing;
	guint8 buffer[16 * 1024];
	GList *link;                 /* in server->connections */
};

static void connection_pump (Connection *connection);

static Connection *
connection_ref (Connection *connection)
{
	connection->ref_count++;
	return connection;
}

static void
connection_unref (Connection *connection)
{
	if (--connection->ref_count > 0)
		return;
	g_assert (connection->link == NULL);
	if (connection->timer != NULL) {
		g_source_destroy (connection->timer);
		g_source_unref (connection->timer);
	}
	g_clear_object (&connection->read_cancellable);
	g_clear_object (&connection->cancellable);
	g_clear_object (&connection->stream);
	g_clear_object (&connection->socket_connection);
	g_clear_pointer (&connection->session, sc_smtp_session_free);
	g_clear_pointer (&connection->writing, g_bytes_unref);
	g_free (connection->peer);
	g_free (connection);
}

static void
connection_stop_timer (Connection *connection)
{
	if (connection->timer != NULL) {
		g_source_destroy (connection->timer);
		g_clear_pointer (&connection->timer, g_source_unref);
	}
}

/* Drops the connection from the server's list (its last reference goes
 * with the operation in flight, if any). */
static void
connection_detach (Connection *connection)
{
	connection_stop_timer (connection);
	g_cancellable_cancel (connection->cancellable);
	if (connection->read_cancellable != NULL)
		g_cancellable_cancel (connection->read_cancellable);
	if (connection->server != NULL && connection->link != NULL) {
		connection->server->connections = g_list_delete_link (connection->server->connections, connection->link);
		connection->link = NULL;
		connection->server = NULL;
		connection_unref (connection);
	}
}

static gboolean
on_timeout (gpointer user_data)
{
	Connection *connection = user_data;

	g_clear_pointer (&connection->timer, g_source_unref);
	if (connection->busy == BUSY_READ) {
		/* answered 421 4.4.2 once the read is cancelled */
		g_info ("%s: timeout from %s", connection->protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp",
			connection->peer != NULL ? connection->peer : "local socket");
		sc_smtp_session_timeout (connection->session);
		g_cancellable_cancel (connection->read_cancellable);
	} else {
		/* a client that does not read its replies, or stalls the handshake */
		connection_detach (connection);
	}
	return G_SOURCE_REMOVE;
}

static void
connection_start_timer (Connection *connection, gint64 timeout_us)
{
	connection_stop_timer (connection);
	connection->timer = g_timeout_source_new ((guint) MIN (timeout_us / 1000, G_MAXUINT));
	g_source_set_callback (connection->timer, on_timeout, connection, NULL);
	g_source_attach (connection->timer, g_main_context_get_thread_default ());
}

static gint64
connection_command_timeout (Connection *connection)
{
	return connection->server->config->ingress.command_timeout;
}

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;

	(void) g_io_stream_close_finish (G_IO_STREAM (source), result, NULL);
	connection_unref (connection);
}

static void
connection_close (Connection *connection)
{
	connection->busy = BUSY_CLOSE;
	connection_ref (connection);
	connection_detach (connection);
	/* no cancellable: detaching cancelled the connection's */
	g_io_stream_close_async (connection->stream, G_PRIORITY_DEFAULT, NULL, on_closed, connection);
}

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;
	gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

	connection->busy = BUSY_NONE;
	connection_stop_timer (connection);
	if (connection->server == NULL) {
		connection_unref (connection);
		return;
	}
	if (n > 0) {
		sc_smtp_session_feed (connection->session, connection->buffer, n);
	} else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
		   g_cancellable_is_cancelled (connection->cancellable)) {
		/* gone (EOF, reset): whatever was in DATA is not stored */
		if (sc_smtp_session_in_data (connection->session))
			g_info ("%s: lost connection from %s in DATA; nothing stored",
				connection->protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp",
				connection->peer != NULL ? connection->peer : "local socket");
		connection_close (connection);
		connection_unref (connection);
		return;
	}
	/* else: cancelled by a timeout or by stopping; the session knows */
	connection_pump (connection);
	connection_unref (connection);
}

static void
connection_read (Connection *connection)
{
	gint64 timeout = sc_smtp_session_in_data (connection->session)
			     ? connection->server->config->ingress.data_timeout
			     : connection_command_timeout (connection);

	connection->busy = BUSY_READ;
	g_clear_object (&connection->read_cancellable);
	connection->read_cancellable = g_cancellable_new ();
	connection_start_timer (connection, timeout);
	g_input_stream_read_async (g_io_stream_get_input_stream (connection->stream), connection->buffer,
				   sizeof connection->buffer, G_PRIORITY_DEFAULT, connection->read_cancellable,
				   on_read, connection_ref (connection));
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;

	connection->busy = BUSY_NONE;
	connection_stop_timer (connection);
	g_clear_pointer (&connection->writing, g_bytes_unref);
	if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error)) {
		if (connection->server != NULL)
			connection_close (connection);
		connection_unref (connection);
		return;
	}
	if (connection->server != NULL)
		connection_pump (connection);
	connection_unref (connection);
}

static void
on_accepted (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAccepted) accepted = sc_acceptor_accept_finish (NULL, result, &error);
	const ScSubmission *submission;
	const char *door = connection->protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp";
	const char *peer = connection->peer != NULL ? connection->peer : "local socket";

	connection->busy = BUSY_NONE;
	if (connection->server == NULL) {
		connection_unref (connection);
		return;
	}
	submission = sc_smtp_session_get_submission (connection->session);
	/* one line per transaction, never the content: the acceptor logs
	 * what it stored, for every door; refusals are said here */
	if (accepted == NULL)
		g_info ("%s: from %s: refused (%s), %" G_GSIZE_FORMAT " bytes, %u recipient(s), sender <%s>", door, peer,
			error->message, g_bytes_get_size (submission->raw),
			g_strv_length ((GStrv) submission->recipients), submission->sender);
	sc_smtp_session_submitted (connection->session, accepted, error);
	connection_pump (connection);
	connection_unref (connection);
}

static void
on_handshake (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;

	connection->busy = BUSY_NONE;
	connection_stop_timer (connection);
	if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error)) {
		if (connection->server != NULL) {
			g_info ("smtp: TLS handshake with %s failed: %s",
				connection->peer != NULL ? connection->peer : "local socket", error->message);
			connection_close (connection);
		}
		connection_unref (connection);
		return;
	}
	if (connection->server != NULL) {
		sc_smtp_session_tls_started (connection->session);
		connection_pump (connection);
	}
	connection_unref (connection);
}

static void
connection_starttls (Connection *connection)
{
	g_autoptr(GError) error = NULL;
	GIOStream *tls;

	tls = g_tls_server_connection_new (G_IO_STREAM (connection->socket_connection),
					   connection->server->certificate, &error);
	if (tls == NULL) {
		g_warning ("smtp: cannot start TLS: %s", error->message);
		connection_close (connection);
		return;
	}
	/* clients often just close after QUIT */
	g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (tls), FALSE);
	g_object_unref (connection->stream);
	connection->stream = tls;
	connection->busy = BUSY_HANDSHAKE;
	connection_start_timer (connection, connection_command_timeout (connection));
	g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, connection->cancellable,
					  on_handshake, connection_ref (connection));
}

static void
connection_pump (Connection *connection)
{
	ScSmtpStep step;
	GString *output;

	if (connection->busy != BUSY_NONE || connection->server == NULL)
		return;
	step = sc_smtp_session_run (connection->session);
	output = sc_smtp_session_get_output (connection->session);
	if (output->len > 0) {
		gsize length = output->len;

		connection->writing = g_bytes_new_take (g_string_free (g_string_new_len (output->str, length), FALSE),
							length);
		g_string_truncate (output, 0);
		connection->busy = BUSY_WRITE;
		connection_start_timer (connection, connection_command_timeout (connection));
		g_output_stream_write_all_async (g_io_stream_get_output_stream (connection->stream),
						 g_bytes_get_data (connection->writing, NULL), length,
						 G_PRIORITY_DEFAULT, connection->cancellable, on_written,
						 connection_ref (connection));
		return;
	}
	switch (step) {
	case SC_SMTP_STEP_READ:
		connection_read (connection);
		break;
	case SC_SMTP_STEP_SUBMIT:
		connection->busy = BUSY_SUBMIT;
		sc_acceptor_accept_async (connection->server->acceptor,
					  sc_smtp_session_get_submission (connection->session),
					  connection->cancellable, on_accepted, connection_ref (connection));
		break;
	case SC_SMTP_STEP_STARTTLS:
		connection_starttls (connection);
		break;
	case SC_SMTP_STEP_CLOSE:
	default:
		connection_close (connection);
		break;
	}
}

static char *
peer_of (GSocketConnection *socket_connection, GInetAddress **out_address)
{
	g_autoptr(GSocketAddress) remote = g_socket_connection_get_remote_address (socket_connection, NULL);

	*out_address = NULL;
	if (remote == NULL || !G_IS_INET_SOCKET_ADDRESS (remote))
		return NULL;
	*out_address = g_object_ref (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
	return g_inet_address_to_string (*out_address);
}

static gboolean
on_incoming (GSocketService *service, GSocketConnection *socket_connection, GObject *source_object, gpointer user_data)
{
	ScSmtpServer *server = user_data;
	Connection *connection = g_new0 (Connection, 1);
	g_autoptr(GInetAddress) address = NULL;
	ScConfig *config = server->config;
	ScSmtpSessionConfig session_config = {
	    .protocol = service == server->services[SC_SMTP_PROTOCOL_LMTP] ? SC_SMTP_PROTOCOL_LMTP
									  : SC_SMTP_PROTOCOL_SMTP,
	    .hostname = config->ingress.hostname,
	    .max_message_size = config->max_message_size,
	    .max_recipients = config->ingress.max_recipients,
	    .bare_newline = config->ingress.bare_newline,
	    .tls_available = server->certificate != NULL,
	    .credentials = (const char *const *) server->credentials,
	};
	gboolean busy = g_list_length (server->connections) >= config->ingress.max_connections;

	connection->ref_count = 1; /* the server's list */
	connection->server = server;
	connection->protocol = session_config.protocol;
	connection->socket_connection = g_object_ref (socket_connection);
	connection->stream = G_IO_STREAM (g_object_ref (socket_connection));
	connection->cancellable = g_cancellable_new ();
	connection->peer = peer_of (socket_connection, &address);
	session_config.peer_local = address == NULL;
	session_config.peer_allowed = address != NULL && sc_config_ingress_allows (config, address);
	connection->session = sc_smtp_session_new (&session_config, connection->peer);
	server->connections = g_list_prepend (server->connections, connection);
	connection->link = server->connections;
	if (busy)
		g_info ("%s: too many connections, refusing %s", session_config.protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp",
			connection->peer != NULL ? connection->peer : "local socket");
	(void) sc_smtp_session_greet (connection->session, busy || server->stopped);
	connection_pump (connection);
	return TRUE;
}

/* HOST:PORT with a numeric or "localhost" host, or (LMTP) /path. */
static GSocketAddress *
listen_address (const char *text, gboolean unix_ok, GError **error)
{
	const char *colon = strrchr (text, ':');
	g_autofree char *host = NULL;
	g_autoptr(GInetAddress) address = NULL;
	guint64 port = 0;

	if (unix_ok && text[0] == '/')
		return g_unix_socket_address_new (text);
	if (colon != NULL)
		host = g_strndup (text, colon - text);
	if (host != NULL && host[0] == '[' && g_str_has_suffix (host, "]")) {
		char *bare = g_strndup (host + 1, strlen (host) - 2);
		g_free (host);
		host = bare;
	}
	if (host != NULL && g_ascii_strcasecmp (host, "localhost") == 0)
		address = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	else if (host != NULL)
		address = g_inet_address_new_from_string (host);
	if (address == NULL || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL)) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			     _("listen address “%s” is not IP:PORT%s"), text, unix_ok ? _(" or an absolute path") : "");
		return NULL;
	}
	return g_inet_socket_address_new (address, (guint16) port);
}

/* A socket file left by a daemon that died: nobody answers on it. */
static gboolean
remove_stale_socket (const char *path, GError **error)
{
	struct stat st;
	g_autoptr(GSocketClient) client = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	g_autoptr(GSocketConnection) probe = NULL;

	if (lstat (path, &st) != 0 || !S_ISSOCK (st.st_mode))
		return TRUE; /* absent, or not ours to remove: binding will say */
	client = g_socket_client_new ();
	address = g_unix_socket_address_new (path);
	probe = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, NULL);
	if (probe != NULL) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
			     _("LMTP socket %s: another program listens on it"), path);
		return FALSE;
	}
	if (unlink (path) != 0 && errno != ENOENT) {
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), _("LMTP socket %s: %s"), path,
			     g_strerror (errno));
		return FALSE;
	}
	return TRUE;
}

static gboolean
load_files (ScSmtpServer *server, ScConfig *config, GError **error)
{
	g_autoptr(GTlsCertificate) certificate = NULL;
	g_auto(GStrv) credentials = NULL;

	if (config->ingress.tls_cert_file != NULL && config->ingress.tls_key_file != NULL) {
		certificate = g_tls_certificate_new_from_files (config->ingress.tls_cert_file,
								config->ingress.tls_key_file, error);
		if (certificate == NULL) {
			g_prefix_error (error, _("[ingress] tls-cert-file %s: "), config->ingress.tls_cert_file);
			return FALSE;
		}
	}
	if (config->ingress.auth_file != NULL && certificate != NULL) {
		credentials = sc_config_read_ingress_credentials (config->ingress.auth_file, error);
		if (credentials == NULL)
			return FALSE;
	}
	g_clear_object (&server->certificate);
	server->certificate = g_steal_pointer (&certificate);
	g_strfreev (server->credentials);
	server->credentials = g_steal_pointer (&credentials);
	return TRUE;
}

static gboolean
listen_on (ScSmtpServer *server, ScSmtpProtocol protocol, const char *text, GError **error)
{
	g_autoptr(GSocketAddress) address = listen_address (text, protocol == SC_SMTP_PROTOCOL_LMTP, error);
	GSocketService *service;

	if (address == NULL)
		return FALSE;
	if (G_IS_UNIX_SOCKET_ADDRESS (address) && !remove_stale_socket (text, error))
		return FALSE;
	service = g_socket_service_new ();
	server->services[protocol] = service;
	if (!g_socket_listener_add_address (G_SOCKET_LISTENER (service), address, G_SOCKET_TYPE_STREAM,
					    G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, error)) {
		g_prefix_error (error, _("[ingress] %s=%s: "), protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp", text);
		return FALSE;
	}
	if (G_IS_UNIX_SOCKET_ADDRESS (address)) {
		server->unix_path = g_strdup (text);
		/* connect() needs write permission: an MTA's LMTP client runs as
		 * its own user (Postfix: postfix).  Anyone local may already use
		 * the loopback listeners; the socket's folder restricts it. */
		if (chmod (text, 0666) != 0) {
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), _("LMTP socket %s: %s"),
				     text, g_strerror (errno));
			return FALSE;
		}
	}
	g_signal_connect (service, "incoming", G_CALLBACK (on_incoming), server);
	g_socket_service_start (service);
	return TRUE;
}

ScSmtpServer *
sc_smtp_server_new (ScConfig *config, ScAcceptor *acceptor, GError **error)
{
	g_autoptr(ScSmtpServer) server = g_new0 (ScSmtpServer, 1);

	server->config = sc_config_ref (config);
	server->acceptor = acceptor;
	server->context = g_main_context_ref_thread_default ();
	if (!load_files (server, config, error))
		return NULL;
	if (config->ingress.smtp != NULL && !listen_on (server, SC_SMTP_PROTOCOL_SMTP, config->ingress.smtp, error))
		return NULL;
	if (config->ingress.lmtp != NULL && !listen_on (server, SC_SMTP_PROTOCOL_LMTP, config->ingress.lmtp, error))
		return NULL;
	return g_steal_pointer (&server);
}

void
sc_smtp_server_set_config (ScSmtpServer *server, ScConfig *config)
{
	g_autoptr(GError) error = NULL;

	if (!load_files (server, config, &error))
		g_warning ("ingress: keeping the TLS and AUTH files loaded before: %s", error->message);
	sc_config_unref (server->config);
	server->config = sc_config_ref (config);
}

void
sc_smtp_server_stop (ScSmtpServer *server)
{
	GList *connections;

	if (server->stopped)
		return;
	server->stopped = TRUE;
	for (guint i = 0; i < G_N_ELEMENTS (server->services); i++) {
		if (server->services[i] != NULL) {
			g_socket_service_stop (server->services[i]);
			g_socket_listener_close (G_SOCKET_LISTENER (server->services[i]));
		}
	}
	if (server->unix_path != NULL)
		(void) unlink (server->unix_path);
	/* idle sessions get their 421 4.3.2 now, the others after their message */
	connections = g_list_copy (server->connections);
	for (GList *l = connections; l != NULL; l = l->next) {
		Connection *connection = l->data;

		if (sc_smtp_session_shutdown (connection->session) && connection->busy == BUSY_READ)
			g_cancellable_cancel (connection->read_cancellable);
	}
	g_list_free (connections);
}

gboolean
sc_smtp_server_is_flushing (ScSmtpServer *server)
{
	for (GList *l = server->connections; l != NULL; l = l->next) {
		Connection *connection = l->data;

		/* a read cancelled by stop comes back to write its 421 */
		if (connection->busy == BUSY_WRITE ||
		    (connection->busy == BUSY_READ && connection->read_cancellable != NULL &&
		     g_cancellable_is_cancelled (connection->read_cancellable)))
			return TRUE;
	}
	return FALSE;
}

void
sc_smtp_server_free (ScSmtpServer *server)
{
	if (server == NULL)
		return;
	sc_smtp_server_stop (server);
	while (server->connections != NULL)
		connection_detach (server->connections->data);
	for (guint i = 0; i < G_N_ELEMENTS (server->services); i++) {
		if (server->services[i] != NULL)
			g_signal_handlers_disconnect_by_data (server->services[i], server);
		g_clear_object (&server->services[i]);
	}
	g_free (server->unix_path);
	g_clear_object (&server->certificate);
	g_strfreev (server->credentials);
	g_clear_pointer (&server->config, sc_config_unref);
	g_clear_pointer (&server->context, g_main_context_unref);
	g_free (server);
}
