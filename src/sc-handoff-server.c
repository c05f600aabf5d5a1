/* sc-handoff-server.c — the local hand-off socket STATE-DIR/ingress.sock
 * (state-dir= is the spool folder for a SQLite spool: sc-config.h).
 *
 * `stagecoach inject` and `sendmail` (the lean front, sc-front.c, and the
 * full program alike: sc-handoff-client.c) give their command line and
 * the message to the running daemon, which parses the command line with
 * the very code the commands use (sc_ingress_args_parse,
 * sc_ingress_input_new in sc-cli-inject.c), submits the message to the
 * acceptor and answers after the commit.  One connection, one message.
 *
 * Protocol: every field is a netstring (decimal length, ':', the bytes,
 * ','), as QMQP frames a message and its envelope.
 *
 *   client:  "stagecoach-handoff/1"  CONFIG-HASH  COMMAND  ARGC  ARG…
 *   daemon:  "go" | "direct" | ANSWER
 *   client:  CHUNK… ""          (after "go": the message in pieces; the
 *                               empty netstring ends it)
 *   daemon:  ANSWER
 *   ANSWER = EXIT-CODE  STDOUT-TEXT  STDERR-TEXT
 *
 * CONFIG-HASH: 16 hex digits, FNV-1a 64 of the client's configuration
 * file (sc_handoff_hash).  The daemon says "direct" when it differs from
 * the file it loaded (a configuration changed and not yet reloaded, or
 * another file naming the same spool), when the greeting is unknown
 * (another version), when it is stopping or has max-connections local
 * clients: the client then writes the spool itself, as without a
 * daemon; it has read nothing from its standard input yet.  A command
 * line the direct path would refuse before reading the message is
 * answered at once (ANSWER instead of "go").  The empty chunk is the
 * only end: a client that dies mid-message leaves EOF without it, and
 * nothing is stored.  EXIT-CODE is the command's sysexits code; the
 * texts are what the command prints, byte for byte what the direct path
 * prints.
 *
 * Who may connect: the socket is created mode 0600 (bound under a
 * temporary name, chmod, then renamed over the old one, so it is never
 * reachable with looser permissions), i.e. the daemon's user and root
 * — exactly who can write spool.db (0600, sc-spool-file.c) and so
 * inject without a daemon (with a PostgreSQL spool: the user whose
 * credentials reach the database).
 *
 * Threads: everything runs on the thread-default main context of the
 * thread calling sc_handoff_server_new() (the ingress thread); call
 * stop and free there too.  set_config may come from any thread.
 */
#include "config.h"

#include "sc-handoff-server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-cli.h"
#include "sc-error.h"
#include "sc-handoff-client.h"
#include "sc-i18n.h"

#define MAX_FIELD 64
#define MAX_ARG (128 * 1024) /* Linux's MAX_ARG_STRLEN */
#define MAX_ARGC 100000
#define MAX_CHUNK (1024 * 1024)
#define READ_SIZE 65536

struct _ScHandoffServer {
	GMutex lock; /* config, config_hash */
	ScConfig *config;
	char *config_hash; /* (nullable) NULL: the file was unreadable, everyone goes direct */
	ScAcceptor *acceptor;
	GSocketService *service;
	char *path;
	dev_t dev;
	ino_t ino;
	GHashTable *connections; /* Connection* set */
	gboolean stopped;
};

typedef enum {
	STATE_GREETING,
	STATE_HASH,
	STATE_COMMAND,
	STATE_ARGC,
	STATE_ARGS,
	STATE_DATA,
	STATE_COMMITTING,
} ConnectionState;

typedef struct {
	gint ref_count;
	ScHandoffServer *server; /* (nullable) NULL once the server is freed */
	ScAcceptor *acceptor;
	GSocketConnection *connection;
	GCancellable *cancellable;
	GSource *timeout;
	ConnectionState state;
	GByteArray *pending;
	gsize offset;
	gboolean hash_ok;
	gboolean greeting_ok;
	char *command;
	guint argc;
	GPtrArray *argv;
	ScConfig *config;
	ScIngressArgs *args;
	GByteArray *message;
	gboolean too_big;
	char *peer;
	guint8 buffer[READ_SIZE];
} Connection;

static Connection *
connection_ref (Connection *conn)
{
	g_atomic_int_inc (&conn->ref_count);
	return conn;
}

static void
connection_unref (Connection *conn)
{
	if (!g_atomic_int_dec_and_test (&conn->ref_count))
		return;
	if (conn->timeout != NULL) {
		g_source_destroy (conn->timeout);
		g_source_unref (conn->timeout);
	}
	g_object_unref (conn->connection);
	g_object_unref (conn->cancellable);
	g_byte_array_unref (conn->pending);
	g_free (conn->command);
	g_ptr_array_unref (conn->argv);
	g_clear_pointer (&conn->config, sc_config_unref);
	g_clear_pointer (&conn->args, sc_ingress_args_free);
	g_clear_pointer (&conn->message, g_byte_array_unref);
	g_free (conn->peer);
	g_free (conn);
}

/* Done with it (answered, or the client went away). */
static void
connection_finish (Connection *conn)
{
	if (conn->timeout != NULL)
		g_source_destroy (conn->timeout);
	g_cancellable_cancel (conn->cancellable);
	(void) g_io_stream_close (G_IO_STREAM (conn->connection), NULL, NULL);
	if (conn->server != NULL && g_hash_table_remove (conn->server->connections, conn))
		connection_unref (conn);
}

static void
append_netstring (GString *out, const char *data, gsize size)
{
	g_string_append_printf (out, "%" G_GSIZE_FORMAT ":", size);
	g_string_append_len (out, data, size);
	g_string_append_c (out, ',');
}

/* "go", "direct", or the final answer (@status with its texts).  Written
 * at once: a few bytes to a client that sends nothing until it reads
 * them, so the socket buffer always has room; and an answer written
 * before we return cannot be lost when the ingress thread stops. */
static void
send_reply (Connection *conn, const char *word, int status, const char *out, const char *err)
{
	g_autoptr(GString) text = g_string_new (NULL);
	g_autoptr(GError) error = NULL;
	GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (conn->connection));

	if (word != NULL) {
		append_netstring (text, word, strlen (word));
	} else {
		g_autofree char *code = g_strdup_printf ("%d", status);
		append_netstring (text, code, strlen (code));
		append_netstring (text, out, strlen (out));
		append_netstring (text, err, strlen (err));
	}
	if (word == NULL)
		g_debug ("hand-off from %s: %s answered, exit %d", conn->peer, conn->command, status);
	else if (strcmp (word, "direct") == 0)
		g_debug ("hand-off from %s: told to write the spool itself", conn->peer);
	if (!g_output_stream_write_all (output, text->str, text->len, NULL, NULL, &error))
		g_debug ("hand-off: %s went away before our answer: %s", conn->peer, error->message);
	if (word == NULL || strcmp (word, "go") != 0 || error != NULL)
		connection_finish (conn);
}

/* What the command prints for @error, and its exit code. */
static void
send_error (Connection *conn, const GError *error)
{
	g_autofree char *message = sc_cli_terminal_safe (error->message, TRUE);
	g_autofree char *text = g_strdup_printf ("stagecoach %s: %s\n", conn->command, message);

	send_reply (conn, NULL, sc_error_to_exit_code (error), "", text);
}

static void
on_accepted (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *conn = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAccepted) accepted = sc_acceptor_accept_finish (conn->acceptor, result, &error);

	if (accepted == NULL) {
		send_error (conn, error);
	} else {
		/* sendmail prints nothing on success; inject the queue id — for a
		 * resend already accepted (nothing new stored), the earlier one's */
		const char *queue_id = accepted->queue_id != NULL ? accepted->queue_id : accepted->duplicate_of;
		g_autofree char *out = strcmp (conn->command, "inject") == 0 && queue_id != NULL
					   ? g_strdup_printf ("%s\n", queue_id)
					   : g_strdup ("");
		send_reply (conn, NULL, EX_OK, out, "");
	}
	connection_unref (conn);
}

/* The end mark came: check the message as the command would, submit it. */
static void
submit (Connection *conn)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) message = NULL;
	g_autoptr(ScIngressInput) input = NULL;

	conn->state = STATE_COMMITTING;
	if (conn->timeout != NULL)
		g_source_destroy (conn->timeout);
	if (conn->too_big) {
		sc_ingress_set_too_big (&error, conn->config->max_message_size);
		send_error (conn, error);
		return;
	}
	message = g_byte_array_free_to_bytes (g_steal_pointer (&conn->message));
	input = sc_ingress_input_new (conn->config, conn->args, message, &error);
	if (input == NULL) {
		send_error (conn, error);
		return;
	}
	{
		ScSubmission submission = {
		    .door = "local",
		    .peer = conn->peer,
		    .list_id = input->list_id,
		    .sender = input->sender,
		    .recipients = (const char *const *) input->recipients->pdata,
		    .raw = input->raw,
		};
		sc_acceptor_accept_async (conn->acceptor, &submission, NULL, on_accepted,
					  connection_ref (conn));
	}
}

/* The command line is complete: hand off, refuse at once, or send it back. */
static void
decide (Connection *conn)
{
	g_autoptr(GError) error = NULL;
	g_autofree char **argv = NULL;
	gboolean ours = conn->greeting_ok && conn->hash_ok && conn->server != NULL &&
			!conn->server->stopped &&
			(strcmp (conn->command, "inject") == 0 || strcmp (conn->command, "sendmail") == 0);

	if (!ours) {
		send_reply (conn, "direct", 0, NULL, NULL);
		return;
	}
	/* argv[0] is the command's name, as on the command line; GOption reorders the copy */
	argv = g_new0 (char *, conn->argv->len + 2);
	argv[0] = conn->command;
	for (guint i = 0; i < conn->argv->len; i++)
		argv[i + 1] = conn->argv->pdata[i];
	conn->args = sc_ingress_args_parse (conn->command, conn->argv->len + 1, argv, FALSE, &error);
	if (conn->args == NULL) {
		send_error (conn, error);
		return;
	}
	conn->message = g_byte_array_new ();
	conn->state = STATE_DATA;
	send_reply (conn, "go", 0, NULL, NULL);
}

/* One netstring from conn->pending: 1 and its bytes, 0 (need more) or -1 (garbage). */
static int
take_netstring (Connection *conn, gsize max, const guint8 **out_data, gsize *out_size)
{
	const guint8 *data = conn->pending->data + conn->offset;
	gsize available = conn->pending->len - conn->offset;
	gsize size = 0;
	gsize i = 0;

	for (; i < available && g_ascii_isdigit (data[i]); i++) {
		if (i >= 10)
			return -1;
		size = size * 10 + (data[i] - '0');
	}
	if (i == available)
		return 0;
	if (i == 0 || data[i] != ':' || size > max)
		return -1;
	if (available < i + 1 + size + 1)
		return 0;
	if (data[i + 1 + size] != ',')
		return -1;
	*out_data = data + i + 1;
	*out_size = size;
	conn->offset += i + 1 + size + 1;
	return 1;
}

static gboolean
parse_count (const guint8 *data, gsize size, guint max, guint *out)
{
	g_autofree char *text = g_strndup ((const char *) data, size);
	guint64 value = 0;

	if (!g_ascii_string_to_unsigned (text, 10, 0, max, &value, NULL))
		return FALSE;
	*out = (guint) value;
	return TRUE;
}

/* Consumes what arrived; FALSE when the connection needs no more input
 * (answered, submitted, or garbage). */
static gboolean
process (Connection *conn)
{
	for (;;) {
		const guint8 *data = NULL;
		gsize size = 0;
		gsize max = conn->state == STATE_ARGS ? MAX_ARG
			    : conn->state == STATE_DATA ? MAX_CHUNK
							: MAX_FIELD;
		int got = take_netstring (conn, max, &data, &size);

		if (got < 0) {
			g_debug ("hand-off: %s sent garbage; closing", conn->peer);
			connection_finish (conn);
			return FALSE;
		}
		if (got == 0)
			break;
		switch (conn->state) {
		case STATE_GREETING:
			conn->greeting_ok = size == strlen (SC_HANDOFF_GREETING) &&
					    memcmp (data, SC_HANDOFF_GREETING, size) == 0;
			conn->state = STATE_HASH;
			break;
		case STATE_HASH:
			if (conn->server != NULL) {
				g_mutex_lock (&conn->server->lock);
				conn->hash_ok = conn->server->config_hash != NULL &&
						size == strlen (conn->server->config_hash) &&
						memcmp (data, conn->server->config_hash, size) == 0;
				conn->config = sc_config_ref (conn->server->config);
				g_mutex_unlock (&conn->server->lock);
			}
			conn->state = STATE_COMMAND;
			break;
		case STATE_COMMAND:
			conn->command = g_strndup ((const char *) data, size);
			conn->state = STATE_ARGC;
			break;
		case STATE_ARGC:
			if (!parse_count (data, size, MAX_ARGC, &conn->argc)) {
				connection_finish (conn);
				return FALSE;
			}
			conn->state = STATE_ARGS;
			break;
		case STATE_ARGS:
			g_ptr_array_add (conn->argv, g_strndup ((const char *) data, size));
			break;
		case STATE_DATA:
			if (size == 0) {
				submit (conn);
				return FALSE;
			}
			if (!conn->too_big) {
				g_byte_array_append (conn->message, data, size);
				if (conn->message->len > conn->config->max_message_size) {
					/* read on to the end: the client must get our answer */
					conn->too_big = TRUE;
					g_byte_array_set_size (conn->message, 0);
				}
			}
			break;
		default:
			/* nothing may come between the end mark and our answer */
			connection_finish (conn);
			return FALSE;
		}
		if (conn->state == STATE_ARGS && conn->argv->len == conn->argc) {
			decide (conn);
			if (conn->state != STATE_DATA)
				return FALSE;
		}
	}
	/* keep only what is not parsed yet */
	if (conn->offset > 0) {
		g_byte_array_remove_range (conn->pending, 0, conn->offset);
		conn->offset = 0;
	}
	return TRUE;
}

static gboolean
on_timeout (gpointer user_data)
{
	Connection *conn = user_data;

	g_debug ("hand-off: %s sent nothing for too long; closing", conn->peer);
	connection_finish (conn);
	return G_SOURCE_REMOVE;
}

static void
restart_timeout (Connection *conn)
{
	gint64 timeout = conn->config != NULL ? conn->config->ingress.data_timeout : 0;

	if (conn->timeout != NULL) {
		g_source_destroy (conn->timeout);
		g_source_unref (conn->timeout);
	}
	if (timeout <= 0)
		timeout = 10 * 60 * G_USEC_PER_SEC; /* before the configuration is known */
	conn->timeout = g_timeout_source_new (timeout / 1000);
	g_source_set_callback (conn->timeout, on_timeout, conn, NULL);
	g_source_attach (conn->timeout, g_main_context_get_thread_default ());
}

static void read_more (Connection *conn);

static void
on_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
	Connection *conn = user_data;
	g_autoptr(GError) error = NULL;
	gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

	if (n <= 0) {
		/* EOF or an error before the end mark: the client died, nothing is stored */
		if (conn->state < STATE_COMMITTING) {
			if (conn->state == STATE_DATA)
				g_info ("hand-off: %s went away in the middle of a message; nothing stored",
					conn->peer);
			connection_finish (conn);
		}
	} else {
		g_byte_array_append (conn->pending, conn->buffer, n);
		if (process (conn))
			read_more (conn);
	}
	connection_unref (conn);
}

static void
read_more (Connection *conn)
{
	GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (conn->connection));

	restart_timeout (conn);
	g_input_stream_read_async (input, conn->buffer, sizeof conn->buffer, G_PRIORITY_DEFAULT,
				   conn->cancellable, on_read, connection_ref (conn));
}

static char *
describe_peer (GSocketConnection *connection)
{
	GSocket *socket = g_socket_connection_get_socket (connection);
	g_autoptr(GCredentials) credentials = g_socket_get_credentials (socket, NULL);
	uid_t uid;
	pid_t pid;

	if (credentials == NULL)
		return g_strdup ("local");
	uid = g_credentials_get_unix_user (credentials, NULL);
	pid = g_credentials_get_unix_pid (credentials, NULL);
	return g_strdup_printf ("uid %u pid %d", (guint) uid, (int) pid);
}

static gboolean
on_incoming (GSocketService *service, GSocketConnection *connection, GObject *source, gpointer user_data)
{
	ScHandoffServer *server = user_data;
	Connection *conn = g_new0 (Connection, 1);
	guint max;

	conn->ref_count = 1;
	conn->server = server;
	conn->acceptor = server->acceptor;
	conn->connection = g_object_ref (connection);
	conn->cancellable = g_cancellable_new ();
	conn->pending = g_byte_array_new ();
	conn->argv = g_ptr_array_new_with_free_func (g_free);
	conn->peer = describe_peer (connection);
	g_hash_table_add (server->connections, conn); /* holds the first reference */
	g_mutex_lock (&server->lock);
	max = server->config->ingress.max_connections;
	g_mutex_unlock (&server->lock);
	if (max > 0 && g_hash_table_size (server->connections) > max) {
		/* the client writes the spool itself: slower, never refused */
		send_reply (conn, "direct", 0, NULL, NULL);
		return TRUE;
	}
	read_more (conn);
	return TRUE;
}

/* The configuration's text as the commands hash it. */
static char *
hash_config (const ScConfig *config)
{
	g_autofree char *text = NULL;
	gsize size = 0;

	if (config->path != NULL && !g_file_get_contents (config->path, &text, &size, NULL)) {
		g_warning ("hand-off: cannot read %s: inject and sendmail write the spool themselves",
			   config->path);
		return NULL;
	}
	return g_strdup_printf ("%016" G_GINT64_MODIFIER "x", (guint64) sc_handoff_hash (text, size));
}

void
sc_handoff_server_set_config (ScHandoffServer *server, ScConfig *config)
{
	char *hash = hash_config (config);

	g_mutex_lock (&server->lock);
	sc_config_unref (server->config);
	server->config = sc_config_ref (config);
	g_free (server->config_hash);
	server->config_hash = hash;
	g_mutex_unlock (&server->lock);
}

/* Binds @name in the state folder @dir_fd names, as an address. */
static GSocketAddress *
address_in (const char *state_dir, int dir_fd, const char *name)
{
	g_autofree char *path = g_build_filename (state_dir, name, NULL);
	struct sockaddr_un limit;

	if (strlen (path) >= sizeof limit.sun_path) {
		g_free (path);
		path = g_strdup_printf ("/proc/self/fd/%d/%s", dir_fd, name);
	}
	return g_unix_socket_address_new (path);
}

static GSocket *
make_socket (ScHandoffServer *server, const char *state_dir, GError **error)
{
	g_autofree char *temporary = g_strdup_printf (".%s.%d", SC_HANDOFF_SOCKET, (int) getpid ());
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GSocketAddress) address = NULL;
	struct stat st;
	int dir_fd = open (state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	gboolean ok = FALSE;

	if (dir_fd < 0) {
		int saved = errno;
		g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("cannot open %s: %s"),
			     state_dir, g_strerror (saved));
		return NULL;
	}
	(void) unlinkat (dir_fd, temporary, 0); /* left by a crashed daemon with our pid */
	socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
	address = address_in (state_dir, dir_fd, temporary);
	if (socket != NULL && g_socket_bind (socket, address, FALSE, error)) {
		/* never reachable with the umask's permissions: 0600 before its real name */
		if (fchmodat (dir_fd, temporary, 0600, 0) != 0 ||
		    renameat (dir_fd, temporary, dir_fd, SC_HANDOFF_SOCKET) != 0 ||
		    fstatat (dir_fd, SC_HANDOFF_SOCKET, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			int saved = errno;
			g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
				     _("cannot create %s: %s"), server->path, g_strerror (saved));
			(void) unlinkat (dir_fd, temporary, 0);
		} else {
			server->dev = st.st_dev;
			server->ino = st.st_ino;
			ok = TRUE;
		}
	}
	close (dir_fd);
	if (!ok)
		return NULL;
	g_socket_set_listen_backlog (socket, 256);
	if (!g_socket_listen (socket, error))
		return NULL;
	return g_steal_pointer (&socket);
}

ScHandoffServer *
sc_handoff_server_new (ScConfig *config, ScAcceptor *acceptor, GError **error)
{
	ScHandoffServer *server = g_new0 (ScHandoffServer, 1);
	g_autoptr(GSocket) socket = NULL;

	g_mutex_init (&server->lock);
	server->config = sc_config_ref (config);
	server->config_hash = hash_config (config);
	server->acceptor = acceptor;
	server->path = g_build_filename (config->state_dir, SC_HANDOFF_SOCKET, NULL);
	server->connections = g_hash_table_new (NULL, NULL);
	/* a socket left by a crashed daemon is replaced: state-dir is this
	 * daemon's own (one daemon per state folder, doc/postgresql.md) */
	socket = make_socket (server, config->state_dir, error);
	server->service = g_socket_service_new ();
	if (socket == NULL ||
	    !g_socket_listener_add_socket (G_SOCKET_LISTENER (server->service), socket, NULL, error)) {
		sc_handoff_server_free (server);
		return NULL;
	}
	g_signal_connect (server->service, "incoming", G_CALLBACK (on_incoming), server);
	g_socket_service_start (server->service);
	g_debug ("hand-off: listening on %s", server->path);
	return server;
}

void
sc_handoff_server_stop (ScHandoffServer *server)
{
	struct stat st;

	if (server->stopped)
		return;
	server->stopped = TRUE;
	g_socket_service_stop (server->service);
	g_socket_listener_close (G_SOCKET_LISTENER (server->service));
	/* only ours: never a socket someone else put there since */
	if (lstat (server->path, &st) == 0 && st.st_dev == server->dev && st.st_ino == server->ino)
		(void) unlink (server->path);
}

void
sc_handoff_server_free (ScHandoffServer *server)
{
	GHashTableIter iter;
	gpointer key;

	if (server == NULL)
		return;
	sc_handoff_server_stop (server);
	/* connections still answering finish on their own, without us */
	g_hash_table_iter_init (&iter, server->connections);
	while (g_hash_table_iter_next (&iter, &key, NULL)) {
		Connection *conn = key;
		conn->server = NULL;
		if (conn->state < STATE_COMMITTING)
			g_cancellable_cancel (conn->cancellable);
		connection_unref (conn);
	}
	g_hash_table_unref (server->connections);
	g_clear_object (&server->service);
	sc_config_unref (server->config);
	g_free (server->config_hash);
	g_free (server->path);
	g_mutex_clear (&server->lock);
	g_free (server);
}
