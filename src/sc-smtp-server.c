/* sc-smtp-server.c — the SMTP and LMTP listeners (sc-smtp-server.h).
 *
 * Each connection is a pump around its ScSmtpSession: run the session,
 * write what it said, then do what it waits for (read with a timeout,
 * hand the message to the acceptor, TLS handshake, close).  One operation
 * per connection at a time, all on the ingress thread's context.
 *
 * A plain socket (TCP or the LMTP unix socket) is driven by hand, because
 * the GIO async streams cost more than the dialogue itself (issue 8: a
 * GTask, a GCancellable, a timeout GSource and a copy of the reply per
 * read and write; ~140 us of CPU per message on our VMs): each connection
 * has one long-lived GSource that polls its socket (for reading, for the
 * rest of a reply that did not fit, or not at all) and carries its
 * deadline.  Replies are written at once with a non-blocking send; only
 * what the socket does not take waits for it to drain.  Once STARTTLS has
 * run, the stream is a GTlsConnection and reads, writes and the handshake
 * use the GIO async calls as before (the same GSource keeps the deadline).
 *
 * The connection's GSource polls a GPollFD that we own (g_source_add_poll)
 * and whose events we change in place, 0 when we wait for nothing: GLib's
 * main context reads them afresh at every iteration, while
 * g_source_modify_unix_fd(), g_source_set_ready_time() and adding or
 * removing a poll wake the context (a write and a read on its eventfd and
 * one more poll) every time, as the deadline computed in prepare() does
 * not.  This is only sound on the context's own thread, which is the only
 * one that ever touches a connection.  (Never the fd: GLib keeps its poll
 * records sorted by fd and asserts it.)  poll() still reports an error
 * or hang-up (a reset) with no events asked: check() ignores it until we
 * read or write again, but the loop does not sleep meanwhile, which lasts
 * at most while the acceptor commits that connection's message.
 *
 * The GSource may recurse: GLib blocks one that may not while it
 * dispatches, by taking its poll out of the context and back in, which
 * wakes the context twice per dispatch.  Nothing in ours iterates the
 * context.
 *
 * References: the server's list holds one; every GIO async operation in
 * flight (TLS reads and writes, the handshake, the acceptor, the TLS
 * close) holds one, so a callback after sc_smtp_server_free() finds the
 * connection detached and only drops it; the pump and the GSource's
 * callback hold one while they run, as they may close the connection. */
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

/* The one GSource of a connection: its socket (pollfd.events is 0 when
 * we wait for neither input nor room to write; not polled at all once TLS
 * runs) and its deadline. */
typedef struct {
	GSource source;
	GPollFD pollfd;
	gint64 deadline;             /* monotonic, -1: none */
} ConnectionSource;

struct _Connection {
	gint ref_count;
	ScSmtpServer *server;        /* NULL once detached (server freed) */
	ScSmtpProtocol protocol;
	GSocketConnection *socket_connection;
	GSocket *socket;             /* (owned by socket_connection) */
	GIOStream *stream;           /* the socket, or TLS over it */
	gboolean tls;                /* stream is a GTlsConnection: GIO async I/O */
	ScSmtpSession *session;
	GCancellable *cancellable;   /* the whole connection: cancelled to abort */
	GCancellable *read_cancellable; /* (nullable) TLS: this read only: timeout, shutdown */
	gboolean read_interrupted;   /* this read ends without input: timeout or shutdown */
	ConnectionSource *source;    /* (owned) attached until detached */
	Busy busy;
	char *peer;                  /* (nullable) */
	gsize written;               /* plain: bytes of the session's output already sent */
	GBytes *writing;             /* (nullable) TLS: the reply being written */
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
	if (connection->source != NULL) {
		g_source_destroy ((GSource *) connection->source);
		g_source_unref ((GSource *) connection->source);
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

static const char *
connection_door (Connection *connection)
{
	return connection->protocol == SC_SMTP_PROTOCOL_LMTP ? "lmtp" : "smtp";
}

static const char *
connection_peer (Connection *connection)
{
	return connection->peer != NULL ? connection->peer : "local socket";
}

static gboolean
connection_source_prepare (GSource *source, gint *timeout)
{
	ConnectionSource *self = (ConnectionSource *) source;
	gint64 now;

	*timeout = -1;
	if (self->deadline < 0)
		return FALSE;
	now = g_source_get_time (source);
	if (now >= self->deadline) {
		*timeout = 0;
		return TRUE;
	}
	/* rounded up: a timeout never fires early */
	*timeout = (gint) MIN ((self->deadline - now + 999) / 1000, G_MAXINT);
	return FALSE;
}

static gboolean
connection_source_check (GSource *source)
{
	ConnectionSource *self = (ConnectionSource *) source;

	if (self->pollfd.events != 0 && self->pollfd.revents != 0)
		return TRUE;
	return self->deadline >= 0 && g_source_get_time (source) >= self->deadline;
}

static gboolean
connection_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
	return callback (user_data);
}

static GSourceFuncs connection_source_funcs = {
	.prepare = connection_source_prepare,
	.check = connection_source_check,
	.dispatch = connection_source_dispatch,
};

/* What the connection's GSource waits for: @events on the socket (0:
 * nothing) and @timeout_us from now (-1: no deadline). */
static void
connection_wait (Connection *connection, GIOCondition events, gint64 timeout_us)
{
	ConnectionSource *source = connection->source;

	source->pollfd.events = events;
	source->pollfd.revents = 0;
	source->deadline = timeout_us < 0 ? -1 : g_source_get_time ((GSource *) source) + timeout_us;
}

/* Drops the connection from the server's list (its last reference goes
 * with the operation in flight, if any). */
static void
connection_detach (Connection *connection)
{
	if (connection->source != NULL) {
		connection_wait (connection, 0, -1);
		g_source_destroy ((GSource *) connection->source);
	}
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

/* The caller must hold a reference: this drops the server's. */
static void
connection_close (Connection *connection)
{
	connection->busy = BUSY_CLOSE;
	connection_detach (connection);
	if (!connection->tls) {
		/* a socket's close does not block */
		(void) g_io_stream_close (connection->stream, NULL, NULL);
		return;
	}
	/* no cancellable: detaching cancelled the connection's */
	g_io_stream_close_async (connection->stream, G_PRIORITY_DEFAULT, NULL, on_closed, connection_ref (connection));
}

/* The end of the input: EOF, reset, or an error. */
static void
connection_lost (Connection *connection)
{
	/* gone: whatever was in DATA is not stored */
	if (sc_smtp_session_in_data (connection->session))
		g_info ("%s: lost connection from %s in DATA; nothing stored", connection_door (connection),
			connection_peer (connection));
	connection_close (connection);
}

/* A read ends without input (timeout or shutdown): the session knows
 * what to answer. */
static void
connection_interrupt_read (Connection *connection)
{
	connection->read_interrupted = TRUE;
	if (connection->tls) {
		/* on_read pumps */
		g_cancellable_cancel (connection->read_cancellable);
		return;
	}
	connection->busy = BUSY_NONE;
	connection_wait (connection, 0, -1);
	connection_pump (connection);
}

static void
connection_timeout (Connection *connection)
{
	connection->source->deadline = -1;
	if (connection->busy == BUSY_READ && connection->read_interrupted) {
		/* stopped (sc_smtp_server_stop) */
		connection_interrupt_read (connection);
	} else if (connection->busy == BUSY_READ) {
		/* answered 421 4.4.2 */
		g_info ("%s: timeout from %s", connection_door (connection), connection_peer (connection));
		sc_smtp_session_timeout (connection->session);
		connection_interrupt_read (connection);
	} else {
		/* a client that does not read its replies, or stalls the handshake */
		connection_detach (connection);
	}
}

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;
	gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

	connection->busy = BUSY_NONE;
	if (connection->server == NULL) {
		connection_unref (connection);
		return;
	}
	connection_wait (connection, 0, -1);
	if (n > 0) {
		sc_smtp_session_feed (connection->session, connection->buffer, n);
	} else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
		   g_cancellable_is_cancelled (connection->cancellable)) {
		connection_lost (connection);
		connection_unref (connection);
		return;
	}
	/* else: cancelled by a timeout or by stopping; the session knows */
	connection_pump (connection);
	connection_unref (connection);
}

/* Plain socket, readable (or hung up). */
static void
connection_receive (Connection *connection)
{
	g_autoptr(GError) error = NULL;
	gssize n = g_socket_receive_with_blocking (connection->socket, (char *) connection->buffer,
						   sizeof connection->buffer, FALSE, NULL, &error);

	if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
		return; /* not yet after all: the source still waits */
	connection->busy = BUSY_NONE;
	connection_wait (connection, 0, -1);
	if (n <= 0) {
		connection_lost (connection);
		return;
	}
	sc_smtp_session_feed (connection->session, connection->buffer, n);
	connection_pump (connection);
}

static void
connection_read (Connection *connection)
{
	gint64 timeout = sc_smtp_session_in_data (connection->session)
			     ? connection->server->config->ingress.data_timeout
			     : connection_command_timeout (connection);

	connection->busy = BUSY_READ;
	connection->read_interrupted = FALSE;
	if (!connection->tls) {
		/* the session consumed all its input: wait for more */
		connection_wait (connection, G_IO_IN | G_IO_HUP | G_IO_ERR, timeout);
		return;
	}
	connection_wait (connection, 0, timeout);
	g_clear_object (&connection->read_cancellable);
	connection->read_cancellable = g_cancellable_new ();
	g_input_stream_read_async (g_io_stream_get_input_stream (connection->stream), connection->buffer,
				   sizeof connection->buffer, G_PRIORITY_DEFAULT, connection->read_cancellable,
				   on_read, connection_ref (connection));
}

/* Plain socket: sends the session's output from connection->written on.
 * TRUE when all of it went; else the rest waits for room (BUSY_WRITE)
 * within the command timeout, or the connection is closed. */
static gboolean
connection_send (Connection *connection)
{
	GString *output = sc_smtp_session_get_output (connection->session);

	while (connection->written < output->len) {
		g_autoptr(GError) error = NULL;
		gssize n = g_socket_send_with_blocking (connection->socket, output->str + connection->written,
							output->len - connection->written, FALSE, NULL, &error);

		if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
			if (connection->busy != BUSY_WRITE) {
				/* the timeout covers the whole reply, as from its start */
				connection->busy = BUSY_WRITE;
				connection_wait (connection, G_IO_OUT | G_IO_HUP | G_IO_ERR,
						 connection_command_timeout (connection));
			}
			return FALSE;
		}
		if (n < 0) {
			connection_close (connection);
			return FALSE;
		}
		connection->written += n;
	}
	g_string_truncate (output, 0);
	connection->written = 0;
	if (connection->busy == BUSY_WRITE) {
		connection->busy = BUSY_NONE;
		connection_wait (connection, 0, -1);
	}
	return TRUE;
}

static gboolean
on_source_ready (gpointer user_data)
{
	Connection *connection = user_data;
	ConnectionSource *source = connection->source;
	GIOCondition revents = source->pollfd.events != 0 ? source->pollfd.revents : 0;

	source->pollfd.revents = 0;
	connection_ref (connection);
	if (connection->busy == BUSY_READ && revents != 0 && !connection->read_interrupted) {
		connection_receive (connection);
	} else if (connection->busy == BUSY_WRITE && revents != 0) {
		if (connection_send (connection))
			connection_pump (connection);
	} else if (source->deadline >= 0 && g_source_get_time ((GSource *) source) >= source->deadline) {
		connection_timeout (connection);
	}
	connection_unref (connection);
	return G_SOURCE_CONTINUE;
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;

	connection->busy = BUSY_NONE;
	g_clear_pointer (&connection->writing, g_bytes_unref);
	if (connection->server != NULL)
		connection_wait (connection, 0, -1);
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

/* TLS: the session's output goes as one async write of a copy. */
static void
connection_write_tls (Connection *connection)
{
	GString *output = sc_smtp_session_get_output (connection->session);
	gsize length = output->len;

	connection->writing = g_bytes_new (output->str, length);
	g_string_truncate (output, 0);
	connection->busy = BUSY_WRITE;
	connection_wait (connection, 0, connection_command_timeout (connection));
	g_output_stream_write_all_async (g_io_stream_get_output_stream (connection->stream),
					 g_bytes_get_data (connection->writing, NULL), length, G_PRIORITY_DEFAULT,
					 connection->cancellable, on_written, connection_ref (connection));
}

static void
on_accepted (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *connection = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAccepted) accepted = sc_acceptor_accept_finish (NULL, result, &error);
	const ScSubmission *submission;

	connection->busy = BUSY_NONE;
	if (connection->server == NULL) {
		connection_unref (connection);
		return;
	}
	submission = sc_smtp_session_get_submission (connection->session);
	/* one line per transaction, never the content: the acceptor logs
	 * what it stored, for every door; refusals are said here */
	if (accepted == NULL)
		g_info ("%s: from %s: refused (%s), %" G_GSIZE_FORMAT " bytes, %u recipient(s), sender <%s>",
			connection_door (connection), connection_peer (connection), error->message,
			g_bytes_get_size (submission->raw), g_strv_length ((GStrv) submission->recipients),
			submission->sender);
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
	if (connection->server != NULL)
		connection_wait (connection, 0, -1);
	if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error)) {
		if (connection->server != NULL) {
			g_info ("smtp: TLS handshake with %s failed: %s", connection_peer (connection),
				error->message);
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
	connection->tls = TRUE;
	/* GIO polls the socket from now on (once per connection: this wakes the context) */
	g_source_remove_poll ((GSource *) connection->source, &connection->source->pollfd);
	connection->busy = BUSY_HANDSHAKE;
	connection_wait (connection, 0, connection_command_timeout (connection));
	g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, connection->cancellable,
					  on_handshake, connection_ref (connection));
}

/* Runs the session and does what it says until the connection waits for
 * something (or is closed).  A reply the socket takes at once does not
 * wait: the session runs again, as after any write. */
static void
connection_pump (Connection *connection)
{
	connection_ref (connection);
	while (connection->busy == BUSY_NONE && connection->server != NULL) {
		ScSmtpStep step = sc_smtp_session_run (connection->session);

		if (sc_smtp_session_get_output (connection->session)->len > 0) {
			if (connection->tls)
				connection_write_tls (connection);
			else
				(void) connection_send (connection);
			continue;
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
	connection_unref (connection);
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
	connection->socket = g_socket_connection_get_socket (socket_connection);
	connection->stream = G_IO_STREAM (g_object_ref (socket_connection));
	connection->cancellable = g_cancellable_new ();
	connection->source = (ConnectionSource *) g_source_new (&connection_source_funcs, sizeof (ConnectionSource));
	connection->source->pollfd.fd = g_socket_get_fd (connection->socket);
	connection->source->deadline = -1;
	g_source_set_static_name ((GSource *) connection->source, "sc-smtp-connection");
	g_source_set_callback ((GSource *) connection->source, on_source_ready, connection, NULL);
	/* not blocked while it dispatches: see the top of the file */
	g_source_set_can_recurse ((GSource *) connection->source, TRUE);
	g_source_add_poll ((GSource *) connection->source, &connection->source->pollfd);
	g_source_attach ((GSource *) connection->source, server->context);
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

		if (!sc_smtp_session_shutdown (connection->session) || connection->busy != BUSY_READ)
			continue;
		if (connection->tls) {
			connection->read_interrupted = TRUE;
			g_cancellable_cancel (connection->read_cancellable);
		} else {
			/* its source fires at the next iteration: the pump must
			 * not run under the caller */
			connection->read_interrupted = TRUE;
			connection->source->deadline = 0;
		}
	}
	g_list_free (connections);
}

gboolean
sc_smtp_server_is_flushing (ScSmtpServer *server)
{
	for (GList *l = server->connections; l != NULL; l = l->next) {
		Connection *connection = l->data;

		/* a read cancelled by stop comes back to write its 421 */
		if (connection->busy == BUSY_WRITE || (connection->busy == BUSY_READ && connection->read_interrupted))
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
