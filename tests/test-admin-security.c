/* test-admin-security.c — the admin server's defences, through the real
 * `stagecoach run` binary on 127.0.0.1 (issue 7, items 10–20): descriptors
 * stay flat over many one-shot requests, a reload cannot open the API to
 * the network, deep or huge bodies are refused before they are read, a
 * token is always required (generated in the spool when none is
 * configured), guessing is logged and slowed, Host is checked, and
 * half-sent requests are dropped.
 *
 * HTTP is spoken by hand over blocking sockets, so a test sees exactly
 * what the server sends and when it closes.
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "sc-test-util.h"

#define TOKEN "alice-token-0123456789abcdef"
#define IO_TIMEOUT 20 /* seconds: only proves an answer came, never how fast */

typedef struct {
	char *dir;             /* (owned) */
	char *config_path;     /* (owned) */
	char *log_path;        /* (owned) */
	char *spool;           /* (owned) */
	GSubprocess *daemon;   /* (owned) */
	guint16 port;
} Fixture;

/* ---- raw HTTP ---- */

static guint16
free_port (void)
{
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	g_autoptr(GError) error = NULL;

	g_assert_nonnull (socket);
	g_socket_bind (socket, address, TRUE, &error);
	g_assert_no_error (error);
	bound = g_socket_get_local_address (socket, &error);
	g_assert_no_error (error);
	return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static GSocket *
connect_to (const char *host, guint16 port)
{
	g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
	g_autoptr(GError) error = NULL;
	GSocket *socket = g_socket_new (g_inet_address_get_family (inet), G_SOCKET_TYPE_STREAM, 0, &error);

	g_assert_no_error (error);
	g_socket_set_timeout (socket, IO_TIMEOUT);
	g_socket_connect (socket, address, NULL, &error);
	g_assert_no_error (error);
	return socket;
}

static void
send_all (GSocket *socket, const char *data, gsize length)
{
	while (length > 0) {
		g_autoptr(GError) error = NULL;
		gssize n = g_socket_send (socket, data, length, NULL, &error);
		g_assert_no_error (error);
		data += n;
		length -= n;
	}
}

/* Reads one response: the head, then Content-Length bytes of body.
 * Returns the status (0: the connection ended or timed out first). */
static guint
read_response (GSocket *socket, GString *out_head, GString *out_body)
{
	GString *buffer = g_string_new (NULL);
	const char *end = NULL;
	gint64 content_length = 0;
	guint status = 0;

	while ((end = strstr (buffer->str, "\r\n\r\n")) == NULL) {
		char chunk[4096];
		gssize n = g_socket_receive (socket, chunk, sizeof chunk, NULL, NULL);
		if (n <= 0) {
			g_string_free (buffer, TRUE);
			return 0;
		}
		g_string_append_len (buffer, chunk, n);
	}
	{
		gsize head_length = end - buffer->str + 4;
		g_autofree char *head = g_strndup (buffer->str, head_length);
		g_autofree char *lower = g_ascii_strdown (head, -1);
		const char *length_header = strstr (lower, "\r\ncontent-length:");

		if (sscanf (head, "HTTP/1.%*d %u", &status) != 1)
			status = 0;
		if (length_header != NULL)
			content_length = g_ascii_strtoll (length_header + strlen ("\r\ncontent-length:"), NULL, 10);
		g_string_erase (buffer, 0, head_length);
		if (out_head != NULL)
			g_string_assign (out_head, head);
	}
	while ((gint64) buffer->len < content_length) {
		char chunk[4096];
		gssize n = g_socket_receive (socket, chunk, sizeof chunk, NULL, NULL);
		if (n <= 0)
			break;
		g_string_append_len (buffer, chunk, n);
	}
	if (out_body != NULL)
		g_string_assign (out_body, buffer->str);
	g_string_free (buffer, TRUE);
	return status;
}

/* One request on its own connection (closed by us after the answer). */
static guint
request_on (const char *host, guint16 port, const char *request, GString *out_head, GString *out_body)
{
	g_autoptr(GSocket) socket = connect_to (host, port);
	guint status;

	send_all (socket, request, strlen (request));
	status = read_response (socket, out_head, out_body);
	g_socket_close (socket, NULL);
	return status;
}

static guint
request (Fixture *fixture, const char *request, GString *out_head, GString *out_body)
{
	return request_on ("127.0.0.1", fixture->port, request, out_head, out_body);
}

static char *
get_request (const char *path, const char *extra_headers)
{
	return g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path,
				extra_headers != NULL ? extra_headers : "");
}

/* ---- the daemon ---- */

static void
write_config (Fixture *fixture, const char *listen_host, const char *admin_extra)
{
	g_autofree char *text = g_strdup_printf ("[stagecoach]\nspool = %s\n\n"
						 "[admin]\nlisten = %s:%u\n%s\n"
						 "[list:a.example.org]\npipeline = decorate;archive\n",
						 fixture->spool, listen_host, fixture->port,
						 admin_extra != NULL ? admin_extra : "");
	g_autofree char *path = sc_test_write_file (fixture->dir, "stagecoach.conf", text);

	g_free (fixture->config_path);
	fixture->config_path = g_steal_pointer (&path);
}

static char *
read_log (Fixture *fixture)
{
	char *text = NULL;

	if (!g_file_get_contents (fixture->log_path, &text, NULL, NULL))
		return g_strdup ("");
	return text;
}

static gboolean
healthy (Fixture *fixture)
{
	g_autoptr(GInetAddress) inet = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, fixture->port);
	g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
	g_autofree char *get = get_request ("/healthz", NULL);

	g_socket_set_timeout (socket, IO_TIMEOUT);
	if (!g_socket_connect (socket, address, NULL, NULL))
		return FALSE;
	send_all (socket, get, strlen (get));
	return read_response (socket, NULL, NULL) == 200;
}

static void
start_daemon (Fixture *fixture)
{
	gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

	fixture->daemon = sc_test_spawn (fixture->config_path, fixture->log_path, "run", NULL);
	while (!healthy (fixture)) {
		if (g_get_monotonic_time () > deadline || g_subprocess_get_identifier (fixture->daemon) == NULL) {
			g_autofree char *log = read_log (fixture);
			g_error ("the daemon did not start:\n%s", log);
		}
		g_usleep (50 * 1000);
	}
}

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
	const char *tokens = user_data;

	fixture->dir = sc_test_make_tmpdir ("sc-admin-security");
	fixture->spool = g_build_filename (fixture->dir, "spool", NULL);
	fixture->log_path = g_build_filename (fixture->dir, "daemon.log", NULL);
	fixture->port = free_port ();
	if (tokens != NULL) {
		g_autofree char *path = sc_test_write_file (fixture->dir, "tokens", tokens);
		g_assert_cmpint (g_chmod (path, 0600), ==, 0);
		write_config (fixture, "127.0.0.1", "token-file = tokens\n");
	} else {
		write_config (fixture, "127.0.0.1", NULL);
	}
	start_daemon (fixture);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
	if (fixture->daemon != NULL) {
		g_subprocess_send_signal (fixture->daemon, SIGTERM);
		g_subprocess_wait (fixture->daemon, NULL, NULL);
		g_clear_object (&fixture->daemon);
	}
	sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->config_path);
	g_free (fixture->log_path);
	g_free (fixture->spool);
}

static guint
count_fds (Fixture *fixture)
{
	g_autofree char *path = g_strdup_printf ("/proc/%s/fd", g_subprocess_get_identifier (fixture->daemon));
	g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
	guint count = 0;

	g_assert_nonnull (dir);
	while (g_dir_read_name (dir) != NULL)
		count++;
	return count;
}

static void
assert_alive (Fixture *fixture)
{
	g_assert_nonnull (g_subprocess_get_identifier (fixture->daemon));
	g_assert_true (healthy (fixture));
}

/* ---- item 10: descriptors ---- */

static void
test_descriptors_flat (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *get = get_request ("/healthz", NULL);
	g_autofree char *api = get_request ("/api/v1/status", "Authorization: Bearer " TOKEN "\r\n");
	guint before = count_fds (fixture);
	guint after;

	/* one-shot clients that close once they have their answer, as curl does */
	for (guint i = 0; i < 2000; i++)
		g_assert_cmpuint (request (fixture, i % 2 == 0 ? get : api, NULL, NULL), ==, 200);
	after = count_fds (fixture);
	g_test_message ("descriptors: %u before, %u after 2,000 requests", before, after);
	/* a few may be in flight (the spool's WAL, a worker): never one per request */
	g_assert_cmpuint (after, <=, before + 10);
}

/* ---- item 11: reload ---- */

/* A non-loopback address of this machine, or NULL. */
static char *
local_address (void)
{
	g_autoptr(GResolver) resolver = g_resolver_get_default ();
	g_autolist(GInetAddress) addresses = g_resolver_lookup_by_name (resolver, g_get_host_name (), NULL, NULL);
	g_autoptr(GSocket) probe = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
	g_autoptr(GInetAddress) remote = g_inet_address_new_from_string ("192.0.2.254");
	g_autoptr(GSocketAddress) target = g_inet_socket_address_new (remote, 9);

	for (GList *l = addresses; l != NULL; l = l->next) {
		GInetAddress *address = l->data;
		if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4 &&
		    !g_inet_address_get_is_loopback (address))
			return g_inet_address_to_string (address);
	}
	/* the source address a route would use (no packet is sent) */
	if (probe != NULL && g_socket_connect (probe, target, NULL, NULL)) {
		g_autoptr(GSocketAddress) local = g_socket_get_local_address (probe, NULL);
		GInetAddress *address = local != NULL ? g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local)) : NULL;
		if (address != NULL && !g_inet_address_get_is_loopback (address) && !g_inet_address_get_is_any (address))
			return g_inet_address_to_string (address);
	}
	return NULL;
}

static void
test_reload_keeps_auth (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *address = local_address ();
	g_autofree char *get = NULL;
	g_autofree char *log = NULL;
	GString *body = g_string_new (NULL);
	guint status;

	if (address == NULL) {
		g_test_skip ("no non-loopback IPv4 address on this machine");
		g_string_free (body, TRUE);
		return;
	}
	/* the fixture started on loopback: restart on every address with a token */
	g_subprocess_send_signal (fixture->daemon, SIGTERM);
	g_subprocess_wait (fixture->daemon, NULL, NULL);
	g_clear_object (&fixture->daemon);
	write_config (fixture, "0.0.0.0", "token-file = tokens\n");
	start_daemon (fixture);
	get = g_strdup_printf ("GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n");
	g_assert_cmpuint (request_on (address, fixture->port, get, NULL, NULL), ==, 401);

	/* reload: loopback, no token file; the old socket must not stay open unguarded */
	write_config (fixture, "127.0.0.1", NULL);
	g_subprocess_send_signal (fixture->daemon, SIGHUP);
	for (guint i = 0; i < 200; i++) {
		g_free (log);
		log = read_log (fixture);
		if (strstr (log, "configuration reloaded") != NULL)
			break;
		g_usleep (50 * 1000);
	}
	g_assert_nonnull (strstr (log, "configuration reloaded"));
	status = request_on (address, fixture->port, get, NULL, body);
	g_test_message ("after the reload, from %s: %u %s", address, status, body->str);
	/* refused (401: a token is still required), or not listening there at all (0) */
	g_assert_true (status == 401 || status == 0);
	g_string_free (body, TRUE);
	assert_alive (fixture);
}

/* ---- item 12: bodies ---- */

static void
test_deep_json (Fixture *fixture, gconstpointer user_data)
{
	const guint depth = 150000;
	GString *json = g_string_sized_new (2 * depth);
	g_autofree char *head = NULL;
	g_autoptr(GSocket) socket = NULL;
	guint status;

	for (guint i = 0; i < depth; i++)
		g_string_append_c (json, '[');
	for (guint i = 0; i < depth; i++)
		g_string_append_c (json, ']');
	head = g_strdup_printf ("POST /api/v1/retry HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				"Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n"
				"Content-Length: %" G_GSIZE_FORMAT "\r\n\r\n",
				json->len);
	socket = connect_to ("127.0.0.1", fixture->port);
	send_all (socket, head, strlen (head));
	/* the server may answer and close before it has all of it */
	{
		gsize done = 0;
		while (done < json->len) {
			gssize n = g_socket_send (socket, json->str + done, json->len - done, NULL, NULL);
			if (n <= 0)
				break;
			done += n;
		}
	}
	status = read_response (socket, NULL, NULL);
	g_test_message ("150,000-deep array: %u", status);
	g_assert_true (status == 400 || status == 413);
	g_string_free (json, TRUE);
	assert_alive (fixture);

	{
		/* deep but small: refused by the nesting limit, not the size cap */
		GString *small = g_string_new (NULL);
		g_autofree char *post = NULL;
		GString *body = g_string_new (NULL);
		for (guint i = 0; i < 1000; i++)
			g_string_append (small, "{\"a\":[");
		post = g_strdup_printf ("POST /api/v1/retry HTTP/1.1\r\nHost: 127.0.0.1\r\n"
					"Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n"
					"Content-Length: %" G_GSIZE_FORMAT "\r\n\r\n%s",
					small->len, small->str);
		g_assert_cmpuint (request (fixture, post, NULL, body), ==, 400);
		g_assert_nonnull (strstr (body->str, "deep"));
		g_string_free (small, TRUE);
		g_string_free (body, TRUE);
	}
	assert_alive (fixture);
}

/* A body announced but never sent: the answer must come from the headers alone. */
static guint
announce_body (Fixture *fixture, const char *headers, GString *out_head)
{
	g_autofree char *post = g_strdup_printf ("POST /api/v1/retry HTTP/1.1\r\nHost: 127.0.0.1\r\n"
						 "Content-Type: application/json\r\n%s\r\n", headers);

	return request (fixture, post, out_head, NULL);
}

static void
test_big_body (Fixture *fixture, gconstpointer user_data)
{
	GString *head = g_string_new (NULL);

	/* unauthenticated: 401 before a byte of the gigabyte is read */
	g_assert_cmpuint (announce_body (fixture, "Content-Length: 1073741824\r\n", head), ==, 401);
	/* authenticated, but over the cap */
	g_assert_cmpuint (announce_body (fixture, "Authorization: Bearer " TOKEN "\r\n"
					 "Content-Length: 1073741824\r\n", head), ==, 413);
	/* no length announced: refused rather than read without a bound */
	g_assert_cmpuint (announce_body (fixture, "Authorization: Bearer " TOKEN "\r\n"
					 "Transfer-Encoding: chunked\r\n", head), ==, 411);
	g_string_free (head, TRUE);
	assert_alive (fixture);
}

/* ---- item 13: a token always ---- */

static void
test_generated_token (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *token_path = g_build_filename (fixture->spool, "admin-token", NULL);
	g_autofree char *contents = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *log = read_log (fixture);
	g_autofree char *anonymous = get_request ("/api/v1/status", NULL);
	g_autofree char *bearer_x = get_request ("/api/v1/status", "Authorization: Bearer x\r\n");
	g_autofree char *authorized = NULL;
	g_autofree char *prefix = NULL;
	g_auto(GStrv) fields = NULL;
	const char *token;
	GStatBuf st;

	/* generated at the first start, private to the daemon's user */
	g_assert_cmpint (g_stat (token_path, &st), ==, 0);
	g_assert_cmpint (st.st_mode & 0777, ==, 0600);
	g_assert_true (g_file_get_contents (token_path, &contents, NULL, NULL));
	fields = g_strsplit_set (g_strstrip (contents), " \t", 2);
	g_assert_nonnull (fields[1]);
	token = fields[1];
	g_assert_cmpuint (strlen (token), >=, 32);
	/* the log says where it is, never what it is */
	g_assert_nonnull (strstr (log, token_path));
	g_assert_null (strstr (log, token));

	/* any local user: no longer an admin */
	g_assert_cmpuint (request (fixture, anonymous, NULL, NULL), ==, 401);
	g_assert_cmpuint (request (fixture, bearer_x, NULL, NULL), ==, 401);
	{
		g_autofree char *header = g_strdup_printf ("Authorization: Bearer %s\r\n", token);
		authorized = get_request ("/api/v1/status", header);
	}
	g_assert_cmpuint (request (fixture, authorized, NULL, NULL), ==, 200);

	/* the operator's login URL: the token in the fragment, which no server sees */
	g_assert_cmpint (sc_test_run (fixture->config_path, NULL, &out, &err, "admin-url", NULL), ==, 0);
	prefix = g_strdup_printf ("http://127.0.0.1:%u/#token=%s\n", fixture->port, token);
	g_assert_cmpstr (out, ==, prefix);

	/* a restart keeps the same token (bookmarked URLs go on working) */
	g_subprocess_send_signal (fixture->daemon, SIGTERM);
	g_subprocess_wait (fixture->daemon, NULL, NULL);
	g_clear_object (&fixture->daemon);
	start_daemon (fixture);
	g_assert_cmpuint (request (fixture, authorized, NULL, NULL), ==, 200);
}

/* ---- item 14: guessing, token strength, Host ---- */

static void
test_guessing (Fixture *fixture, gconstpointer user_data)
{
	g_autofree char *log = NULL;
	guint refused = 0;
	guint slowed = 0;
	GString *head = g_string_new (NULL);

	for (guint i = 0; i < 40; i++) {
		g_autofree char *header = g_strdup_printf ("Authorization: Bearer guess-%u\r\n", i);
		g_autofree char *get = get_request ("/api/v1/status", header);
		guint status = request (fixture, get, head, NULL);
		if (status == 401)
			refused++;
		else if (status == 429 && strstr (head->str, "Retry-After:") != NULL)
			slowed++;
	}
	g_test_message ("40 guesses: %u checked (401), %u slowed down (429)", refused, slowed);
	g_assert_cmpuint (refused + slowed, ==, 40);
	/* a handful are checked, then each waits longer (generous: a slow machine
	 * may see the first short wait expire) */
	g_assert_cmpuint (refused, <=, 12);
	g_assert_cmpuint (slowed, >=, 28);
	log = read_log (fixture);
	/* one line per failure, with the peer, in a shape fail2ban can match */
	g_assert_nonnull (strstr (log, "admin authentication failure from 127.0.0.1"));
	g_assert_null (strstr (log, "guess-1"));
	g_string_free (head, TRUE);
}

static void
test_host_checked (Fixture *fixture, gconstpointer user_data)
{
	const char *rebound = "GET /api/v1/status HTTP/1.1\r\nHost: evil.example\r\n"
			      "Authorization: Bearer " TOKEN "\r\n\r\n";
	const char *local = "GET /api/v1/status HTTP/1.1\r\nHost: localhost:1\r\n"
			    "Authorization: Bearer " TOKEN "\r\n\r\n";

	g_assert_cmpuint (request (fixture, rebound, NULL, NULL), ==, 403);
	g_assert_cmpuint (request (fixture, local, NULL, NULL), ==, 200);
}

static void
test_short_token_refused (void)
{
	Fixture fixture_data = {0};
	Fixture *fixture = &fixture_data;
	g_autofree char *get = NULL;
	g_autofree char *log = NULL;
	g_autofree char *path = NULL;

	fixture->dir = sc_test_make_tmpdir ("sc-admin-security");
	fixture->spool = g_build_filename (fixture->dir, "spool", NULL);
	fixture->log_path = g_build_filename (fixture->dir, "daemon.log", NULL);
	fixture->port = free_port ();
	path = sc_test_write_file (fixture->dir, "tokens", "alice x\n");
	g_assert_cmpint (g_chmod (path, 0600), ==, 0);
	write_config (fixture, "127.0.0.1", "token-file = tokens\n");
	{
		g_autofree char *out = NULL;
		g_autofree char *err = NULL;
		/* check-config says so before the daemon ever runs */
		g_assert_cmpint (sc_test_run (fixture->config_path, NULL, &out, &err, "check-config", NULL), !=, 0);
		g_assert_nonnull (strstr (err, "too short"));
	}
	fixture->daemon = sc_test_spawn (fixture->config_path, fixture->log_path, "run", NULL);
	for (guint i = 0; i < 200; i++) {
		g_free (log);
		log = read_log (fixture);
		if (strstr (log, "too short") != NULL)
			break;
		g_usleep (50 * 1000);
	}
	g_assert_nonnull (strstr (log, "too short"));
	g_assert_null (strstr (log, "alice x"));
	fixture_teardown (fixture, NULL);
}

/* ---- item 20: half-sent requests ---- */

static void
test_half_sent (Fixture *fixture, gconstpointer user_data)
{
	const guint n = 100;
	g_autoptr(GPtrArray) sockets = g_ptr_array_new_with_free_func (g_object_unref);
	guint before = count_fds (fixture);
	guint closed = 0;
	gint64 deadline;

	for (guint i = 0; i < n; i++) {
		GSocket *socket = connect_to ("127.0.0.1", fixture->port);
		const char *partial = i % 2 == 0 ? "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
						 : "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
						   "Content-Length: 100\r\n\r\ntoken=";
		send_all (socket, partial, strlen (partial));
		g_ptr_array_add (sockets, socket);
	}
	g_assert_cmpuint (count_fds (fixture), >=, before + n / 2);
	/* the server must hang up on each of them; the deadline only bounds the wait */
	deadline = g_get_monotonic_time () + 3 * IO_TIMEOUT * G_USEC_PER_SEC;
	for (guint i = 0; i < n; i++) {
		GSocket *socket = sockets->pdata[i];
		char buffer[4096];
		/* the deadline alone bounds the wait: a socket timeout (IO_TIMEOUT,
		 * 20 s) would end g_socket_condition_timed_wait early, before the
		 * server's 30 s body deadline for the half-sent POSTs (a flake on a
		 * loaded machine: 99 of 100) */
		g_socket_set_timeout (socket, 0);
		for (;;) {
			g_autoptr(GError) error = NULL;
			gint64 left = MAX (deadline - g_get_monotonic_time (), 0);
			gssize got;
			if (!g_socket_condition_timed_wait (socket, G_IO_IN, left, NULL, NULL))
				break;
			got = g_socket_receive (socket, buffer, sizeof buffer, NULL, &error);
			if (got <= 0) {
				closed++;
				break;
			}
		}
	}
	g_test_message ("%u of %u half-sent requests closed by the server", closed, n);
	g_assert_cmpuint (closed, ==, n);
	g_ptr_array_set_size (sockets, 0);
	g_assert_cmpuint (count_fds (fixture), <=, before + 10);
	assert_alive (fixture);
}

int
main (int argc, char **argv)
{
	static const char tokens[] = "alice " TOKEN "\n";

	g_test_init (&argc, &argv, NULL);
#define ADD(path, data, func) g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
	ADD ("/admin-security/descriptors-flat", tokens, test_descriptors_flat);
	ADD ("/admin-security/reload-keeps-auth", tokens, test_reload_keeps_auth);
	ADD ("/admin-security/deep-json", tokens, test_deep_json);
	ADD ("/admin-security/big-body", tokens, test_big_body);
	ADD ("/admin-security/generated-token", NULL, test_generated_token);
	ADD ("/admin-security/guessing", tokens, test_guessing);
	ADD ("/admin-security/host-checked", tokens, test_host_checked);
	g_test_add_func ("/admin-security/short-token-refused", test_short_token_refused);
	ADD ("/admin-security/half-sent", tokens, test_half_sent);
#undef ADD
	return g_test_run ();
}
