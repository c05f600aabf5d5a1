/* sc-test-dns.c — runs dnsmasq as a private authoritative-only DNS server for tests.
 *
 * Each ScTestDns owns one dnsmasq on 127.0.0.1 (-k: in the foreground, so
 * we hold its PID; --log-facility=-: its log, queries included, goes to
 * dns.log in its own temporary folder).  It reads no config file, no
 * /etc/hosts and no resolv.conf, and forwards nothing: --local=/TLD/ for
 * every top-level domain of the records makes it answer those from the
 * records alone.  As root it runs as nobody (switched in the child before
 * exec, so that the parent-death signal survives).
 *
 * Must never: listen beyond 127.0.0.1, signal any process but the one it
 * started (by PID), or leave that process running after stop()/free().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sc-test-dns.h"
#include "sc-test-util.h"

#define DNSMASQ_PATH "/usr/sbin/dnsmasq"
#define DNS_START_TRIES 5
#define DNS_READY_TIMEOUT_MS 5000
#define TXT_STRING_MAX 255

struct _ScTestDns {
	char *dir;
	char *log_path;
	char *server; /* "127.0.0.1:PORT" */
	guint16 port;
	GPid pid;     /* 0 when not running */
	pid_t parent;
	gboolean drop_privileges; /* running as root: dnsmasq runs as nobody */
	uid_t uid;
	gid_t gid;
};

static void
dns_child_setup (gpointer user_data)
{
	ScTestDns *dns = user_data;

	/* here, not with dnsmasq's --user: its setuid() would clear the
	 * parent-death signal, and a test that aborts would leave it running */
	if (dns->drop_privileges) {
		if (setgroups (0, NULL) != 0 || setgid (dns->gid) != 0 || setuid (dns->uid) != 0)
			_exit (127);
	}
	if (prctl (PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid () != dns->parent)
		_exit (127);
}

/* "--txt-record=NAME,part,part": on the command line dnsmasq takes each
 * comma-separated part as one character-string of the record (quotes
 * would be kept as part of the text), so a text may hold no comma. */
static char *
txt_record_argument (const char *name, const char *text)
{
	GString *argument = g_string_new ("--txt-record=");
	gsize length = strlen (text);

	g_assert_null (strchr (text, ','));
	g_string_append (argument, name);
	for (gsize start = 0; start < length; start += TXT_STRING_MAX) {
		g_string_append_c (argument, ',');
		g_string_append_len (argument, text + start, MIN (TXT_STRING_MAX, length - start));
	}
	return g_string_free (argument, FALSE);
}

static gboolean
dns_spawn (ScTestDns *dns, const char *const *records, guint ttl)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GHashTable) zones = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	GHashTableIter iter;
	gpointer zone;
	gint64 deadline;
	int log_fd;

	g_ptr_array_add (argv, g_strdup (DNSMASQ_PATH));
	g_ptr_array_add (argv, g_strdup ("--keep-in-foreground"));
	g_ptr_array_add (argv, g_strdup ("--conf-file=/dev/null"));
	g_ptr_array_add (argv, g_strdup ("--no-resolv"));
	g_ptr_array_add (argv, g_strdup ("--no-hosts"));
	g_ptr_array_add (argv, g_strdup ("--no-poll"));
	g_ptr_array_add (argv, g_strdup ("--bind-interfaces"));
	g_ptr_array_add (argv, g_strdup ("--listen-address=127.0.0.1"));
	g_ptr_array_add (argv, g_strdup ("--pid-file="));
	g_ptr_array_add (argv, g_strdup ("--log-facility=-"));
	g_ptr_array_add (argv, g_strdup ("--log-queries"));
	g_ptr_array_add (argv, g_strdup ("--cache-size=0"));
	g_ptr_array_add (argv, g_strdup_printf ("--local-ttl=%u", ttl));
	g_ptr_array_add (argv, g_strdup_printf ("--port=%u", dns->port));
	for (guint i = 0; records != NULL && records[i] != NULL && records[i + 1] != NULL; i += 2) {
		const char *dot = strrchr (records[i], '.');

		g_ptr_array_add (argv, txt_record_argument (records[i], records[i + 1]));
		g_hash_table_add (zones, g_ascii_strdown (dot != NULL ? dot + 1 : records[i], -1));
	}
	g_hash_table_add (zones, g_strdup ("test"));
	g_hash_table_iter_init (&iter, zones);
	while (g_hash_table_iter_next (&iter, &zone, NULL))
		g_ptr_array_add (argv, g_strdup_printf ("--local=/%s/", (const char *) zone));
	g_ptr_array_add (argv, NULL);

	log_fd = open (dns->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	g_assert_cmpint (log_fd, >=, 0);
	g_spawn_async_with_fds (NULL,
				(char **) argv->pdata,
				NULL,
				G_SPAWN_DO_NOT_REAP_CHILD,
				dns_child_setup,
				dns,
				&dns->pid,
				-1,
				log_fd,
				log_fd,
				&error);
	close (log_fd);
	g_assert_no_error (error);

	/* dnsmasq listens on TCP as well: ready once that accepts */
	deadline = g_get_monotonic_time () + DNS_READY_TIMEOUT_MS * 1000;
	while (g_get_monotonic_time () < deadline) {
		if (sc_test_reap_child (&dns->pid, FALSE))
			return FALSE;
		if (sc_test_wait_port (dns->port, NULL, 20))
			return TRUE;
		g_usleep (20 * 1000);
	}
	g_error ("dnsmasq did not listen on port %u within %d ms; see %s",
		 dns->port,
		 DNS_READY_TIMEOUT_MS,
		 dns->log_path);
	return FALSE;
}

ScTestDns *
sc_test_dns_start (const char *const *records, guint ttl)
{
	ScTestDns *dns;

	if (!g_file_test (DNSMASQ_PATH, G_FILE_TEST_IS_EXECUTABLE)) {
		g_test_skip ("dnsmasq (package dnsmasq-base) is not installed");
		return NULL;
	}
	dns = g_new0 (ScTestDns, 1);
	dns->dir = sc_test_make_tmpdir ("sc-test-dns");
	dns->log_path = g_build_filename (dns->dir, "dns.log", NULL);
	dns->parent = getpid ();
	if (geteuid () == 0) {
		struct passwd *nobody = getpwnam ("nobody");

		g_assert_nonnull (nobody);
		dns->drop_privileges = TRUE;
		dns->uid = nobody->pw_uid;
		dns->gid = nobody->pw_gid;
	}
	for (guint i = 0; i < DNS_START_TRIES; i++) {
		dns->port = sc_test_free_port ();
		if (dns_spawn (dns, records, ttl)) {
			dns->server = g_strdup_printf ("127.0.0.1:%u", dns->port);
			return dns;
		}
	}
	g_error ("dnsmasq would not start; see %s", dns->log_path);
	return NULL;
}

void
sc_test_dns_restart (ScTestDns *dns, const char *const *records, guint ttl)
{
	sc_test_dns_stop (dns);
	for (guint i = 0; i < DNS_START_TRIES; i++) {
		if (dns_spawn (dns, records, ttl))
			return;
		g_usleep (100 * 1000);
	}
	g_error ("dnsmasq would not restart on port %u; see %s", dns->port, dns->log_path);
}

guint16
sc_test_dns_get_port (ScTestDns *dns)
{
	return dns->port;
}

const char *
sc_test_dns_get_server (ScTestDns *dns)
{
	return dns->server;
}

guint
sc_test_dns_count_queries (ScTestDns *dns, const char *name)
{
	g_autofree char *log = NULL;
	g_auto(GStrv) lines = NULL;
	g_autofree char *needle = g_strdup_printf ("query[TXT] %s from", name);
	guint count = 0;

	if (!g_file_get_contents (dns->log_path, &log, NULL, NULL))
		return 0;
	lines = g_strsplit (log, "\n", -1);
	for (gsize i = 0; lines[i] != NULL; i++) {
		g_autofree char *lower = g_ascii_strdown (lines[i], -1);
		g_autofree char *lower_needle = g_ascii_strdown (needle, -1);
		if (strstr (lower, lower_needle) != NULL)
			count++;
	}
	return count;
}

void
sc_test_dns_stop (ScTestDns *dns)
{
	if (dns->pid == 0)
		return;
	kill (dns->pid, SIGTERM);
	sc_test_reap_child (&dns->pid, TRUE);
}

void
sc_test_dns_free (ScTestDns *dns)
{
	if (dns == NULL)
		return;
	sc_test_dns_stop (dns);
	sc_test_remove_tree (dns->dir);
	g_free (dns->dir);
	g_free (dns->log_path);
	g_free (dns->server);
	g_free (dns);
}

GObject *
sc_test_dns_silent_new (char **out_server)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4,
					G_SOCKET_TYPE_DATAGRAM,
					G_SOCKET_PROTOCOL_UDP,
					&error);

	g_assert_no_error (error);
	g_socket_bind (socket, address, FALSE, &error);
	g_assert_no_error (error);
	bound = g_socket_get_local_address (socket, &error);
	g_assert_no_error (error);
	*out_server = g_strdup_printf ("127.0.0.1:%u",
				       g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
	return G_OBJECT (socket);
}
