/* bench-refuser.c — figure 5's relay: a real SMTP receiver on loopback that
 * answers 450 after the data to the first R deliveries of each message and
 * 250 from then on.
 *
 *   build/tests/bench-refuser REFUSALS
 *
 * Binds 127.0.0.1:0 and prints "port N" on its first line; then one line
 * per answer to a message's data, "450" or "250 T" (T: CLOCK_MONOTONIC in
 * seconds, the clock of Python's time.monotonic(), so that the bench can
 * time the last 250 against its own start).  A message is its Message-ID
 * with its recipients, lower-cased, as benchlib.Refuser keys it.  Stops at
 * SIGTERM or when standard input closes.
 *
 * Why C: the Python receiver it replaces used half a core for ~3,000
 * transactions a second on this 2-core machine, beside the daemon it
 * measured (stop 28, doc/DECISIONS.md).  One thread, poll(), non-blocking
 * sockets; it offers PIPELINING and answers every command in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#define MAX_SESSIONS 1024

typedef struct {
	int fd;
	GString *in;         /* bytes read, not yet parsed */
	GString *out;        /* replies not yet written */
	gboolean in_data;    /* between 354 and the lone "." */
	gboolean in_header;  /* in the data, before the empty line */
	GString *key;        /* Message-ID, then "\n" + each recipient */
	GPtrArray *rcpts;    /* (element-type char*) this transaction's */
	char *message_id;
	gboolean closing;    /* QUIT answered: close once out is written */
} Session;

static GHashTable *seen; /* key → deliveries so far */
static guint refusals;
static volatile sig_atomic_t stopping;

static void
on_term (int sig)
{
	(void) sig;
	stopping = 1;
}

static double
monotonic_seconds (void)
{
	struct timespec now;
	clock_gettime (CLOCK_MONOTONIC, &now);
	return now.tv_sec + now.tv_nsec / 1e9;
}

static Session *
session_new (int fd)
{
	Session *s = g_new0 (Session, 1);
	s->fd = fd;
	s->in = g_string_new (NULL);
	s->out = g_string_new ("220 refuser.localdomain ESMTP\r\n");
	s->rcpts = g_ptr_array_new_with_free_func (g_free);
	return s;
}

static void
session_free (Session *s)
{
	close (s->fd);
	g_string_free (s->in, TRUE);
	g_string_free (s->out, TRUE);
	g_ptr_array_free (s->rcpts, TRUE);
	g_free (s->message_id);
	g_free (s);
}

static void
reset_transaction (Session *s)
{
	g_ptr_array_set_size (s->rcpts, 0);
	g_clear_pointer (&s->message_id, g_free);
}

/* The end of a message's data: its answer, and the line for the bench. */
static void
answer_data (Session *s)
{
	GString *key = g_string_new (s->message_id != NULL ? s->message_id : "");
	gpointer count;
	guint n;

	for (guint i = 0; i < s->rcpts->len; i++)
		g_string_append_printf (key, "\n%s", (const char *) s->rcpts->pdata[i]);
	count = g_hash_table_lookup (seen, key->str);
	n = GPOINTER_TO_UINT (count);
	g_hash_table_replace (seen, g_string_free (key, FALSE), GUINT_TO_POINTER (n + 1));
	if (n < refusals) {
		g_string_append (s->out, "450 4.7.1 try again later (bench refuser)\r\n");
		fputs ("450\n", stdout);
	} else {
		g_string_append (s->out, "250 2.0.0 accepted\r\n");
		printf ("250 %.6f\n", monotonic_seconds ());
	}
	reset_transaction (s);
}

static void
command (Session *s, char *line)
{
	if (g_ascii_strncasecmp (line, "EHLO", 4) == 0) {
		g_string_append (s->out, "250-refuser.localdomain\r\n250-PIPELINING\r\n"
					 "250-8BITMIME\r\n250 SIZE 100000000\r\n");
	} else if (g_ascii_strncasecmp (line, "HELO", 4) == 0) {
		g_string_append (s->out, "250 refuser.localdomain\r\n");
	} else if (g_ascii_strncasecmp (line, "MAIL", 4) == 0) {
		reset_transaction (s);
		g_string_append (s->out, "250 2.1.0 ok\r\n");
	} else if (g_ascii_strncasecmp (line, "RCPT", 4) == 0) {
		char *address = g_strstrip (g_strdup (strlen (line) > 8 ? line + 8 : ""));

		for (char *c = address; *c != '\0'; c++)
			*c = g_ascii_tolower (*c);
		g_ptr_array_add (s->rcpts, address);
		g_string_append (s->out, "250 2.1.5 ok\r\n");
	} else if (g_ascii_strncasecmp (line, "DATA", 4) == 0) {
		s->in_data = TRUE;
		s->in_header = TRUE;
		g_string_append (s->out, "354 go ahead\r\n");
	} else if (g_ascii_strncasecmp (line, "RSET", 4) == 0) {
		reset_transaction (s);
		g_string_append (s->out, "250 2.0.0 ok\r\n");
	} else if (g_ascii_strncasecmp (line, "NOOP", 4) == 0) {
		g_string_append (s->out, "250 2.0.0 ok\r\n");
	} else if (g_ascii_strncasecmp (line, "QUIT", 4) == 0) {
		g_string_append (s->out, "221 2.0.0 bye\r\n");
		s->closing = TRUE;
	} else {
		g_string_append (s->out, "502 5.5.2 not implemented\r\n");
	}
}

static void
data_line (Session *s, char *line)
{
	if (strcmp (line, ".") == 0) {
		s->in_data = FALSE;
		answer_data (s);
	} else if (s->in_header) {
		if (line[0] == '\0')
			s->in_header = FALSE;
		else if (g_ascii_strncasecmp (line, "message-id:", 11) == 0 && s->message_id == NULL)
			s->message_id = g_strstrip (g_strdup (line + 11));
	}
}

/* Every complete line in s->in, in order. */
static void
parse (Session *s)
{
	gsize start = 0;

	while (!s->closing) {
		char *end = memchr (s->in->str + start, '\n', s->in->len - start);
		char *line;
		if (end == NULL)
			break;
		*end = '\0';
		if (end > s->in->str + start && end[-1] == '\r')
			end[-1] = '\0';
		line = s->in->str + start;
		start = end - s->in->str + 1;
		if (s->in_data)
			data_line (s, line);
		else
			command (s, line);
	}
	g_string_erase (s->in, 0, start);
}

/* FALSE: the session is over (EOF, error, or QUIT answered). */
static gboolean
session_io (Session *s, short revents)
{
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		char buffer[65536];
		ssize_t n = read (s->fd, buffer, sizeof buffer);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return FALSE;
		if (n > 0) {
			g_string_append_len (s->in, buffer, n);
			parse (s);
		}
	}
	if (s->out->len > 0) {
		ssize_t n = write (s->fd, s->out->str, s->out->len);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return FALSE;
		if (n > 0)
			g_string_erase (s->out, 0, n);
	}
	return !(s->closing && s->out->len == 0);
}

int
main (int argc, char **argv)
{
	struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
	socklen_t length = sizeof address;
	Session *sessions[MAX_SESSIONS];
	guint count = 0;
	int listener;

	if (argc != 2) {
		fprintf (stderr, "usage: %s REFUSALS\n", argv[0]);
		return 2;
	}
	refusals = (guint) g_ascii_strtoull (argv[1], NULL, 10);
	seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
	signal (SIGTERM, on_term);
	signal (SIGPIPE, SIG_IGN);
	listener = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener < 0 || bind (listener, (struct sockaddr *) &address, sizeof address) < 0 ||
	    listen (listener, 1024) < 0 || getsockname (listener, (struct sockaddr *) &address, &length) < 0) {
		perror ("bench-refuser: listen");
		return 1;
	}
	printf ("port %u\n", ntohs (address.sin_port));
	fflush (stdout);
	while (!stopping) {
		struct pollfd fds[MAX_SESSIONS + 2];
		fds[0] = (struct pollfd){.fd = listener, .events = POLLIN};
		fds[1] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		for (guint i = 0; i < count; i++)
			fds[i + 2] = (struct pollfd){.fd = sessions[i]->fd,
						     .events = POLLIN | (sessions[i]->out->len > 0 ? POLLOUT : 0)};
		if (poll (fds, count + 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			perror ("bench-refuser: poll");
			return 1;
		}
		if (fds[1].revents != 0) {
			char byte;
			if (read (STDIN_FILENO, &byte, 1) <= 0)
				break; /* the bench is gone */
		}
		/* back to front, so that removing a session moves one already seen */
		for (guint i = count; i-- > 0;) {
			if (fds[i + 2].revents == 0 && sessions[i]->out->len == 0)
				continue;
			if (!session_io (sessions[i], fds[i + 2].revents)) {
				session_free (sessions[i]);
				sessions[i] = sessions[--count];
			}
		}
		if (fds[0].revents & POLLIN) {
			int fd;
			while (count < MAX_SESSIONS &&
			       (fd = accept4 (listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				sessions[count] = session_new (fd);
				session_io (sessions[count], 0); /* the greeting */
				count++;
			}
		}
		fflush (stdout);
	}
	while (count > 0)
		session_free (sessions[--count]);
	close (listener);
	g_hash_table_destroy (seen);
	return 0;
}
