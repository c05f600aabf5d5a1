/* sc-handoff-client.c — see sc-handoff-client.h.  Plain libc and
 * blocking I/O: one message, one connection, then exit. */
#include "config.h"

#include "sc-handoff-client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libintl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

/* before the daemon said "go": no answer by then and we write the spool ourselves */
#define HANDSHAKE_TIMEOUT_S 10
/* after: the daemon commits (a group commit under load, a busy disk) */
#define ANSWER_TIMEOUT_S 300
#define CHUNK_SIZE 65536
#define MAX_ANSWER_TEXT (1024 * 1024)

/* Our own messages are rare: the locale is set up only to print one. */
static const char *
tr (const char *text)
{
	static int ready;

	if (!ready) {
		ready = 1;
		setlocale (LC_ALL, "");
		bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
		bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
	}
	return dgettext (GETTEXT_PACKAGE, text);
}

uint64_t
sc_handoff_hash (const void *data, size_t size)
{
	const unsigned char *p = data;
	uint64_t hash = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < size; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

int
sc_handoff_connect (const char *state_dir)
{
	struct sockaddr_un address = {.sun_family = AF_UNIX};
	int dir_fd = -1;
	int fd;
	int saved;
	int n = snprintf (address.sun_path, sizeof address.sun_path, "%s/%s", state_dir, SC_HANDOFF_SOCKET);

	if (n < 0 || (size_t) n >= sizeof address.sun_path) {
		/* too long for sun_path: name the folder through our descriptor */
		dir_fd = open (state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dir_fd < 0)
			return -1;
		snprintf (address.sun_path, sizeof address.sun_path, "/proc/self/fd/%d/%s", dir_fd,
			  SC_HANDOFF_SOCKET);
	}
	fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect (fd, (struct sockaddr *) &address, sizeof address) != 0) {
		saved = errno;
		close (fd);
		fd = -1;
		errno = saved;
	}
	if (dir_fd >= 0) {
		saved = errno;
		close (dir_fd);
		errno = saved;
	}
	return fd;
}

static int
send_all (int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t n = send (fd, p, size, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		size -= n;
	}
	return 0;
}

/* What goes to the daemon is gathered here and sent in one piece: a
 * send per netstring field woke the daemon's thread once per field (26
 * sends for one short inject). */
typedef struct {
	int fd;
	size_t length;
	char buffer[16384];
} Writer;

static int
writer_flush (Writer *writer)
{
	if (writer->length > 0 && send_all (writer->fd, writer->buffer, writer->length) != 0)
		return -1;
	writer->length = 0;
	return 0;
}

static int
writer_put (Writer *writer, const void *data, size_t size)
{
	if (writer->length + size > sizeof writer->buffer) {
		if (writer_flush (writer) != 0)
			return -1;
		if (size > sizeof writer->buffer)
			return send_all (writer->fd, data, size);
	}
	memcpy (writer->buffer + writer->length, data, size);
	writer->length += size;
	return 0;
}

/* One netstring: "LEN:" DATA ",". */
static int
put_netstring (Writer *writer, const void *data, size_t size)
{
	char head[32];
	int n = snprintf (head, sizeof head, "%zu:", size);

	if (writer_put (writer, head, n) != 0 || writer_put (writer, data, size) != 0)
		return -1;
	return writer_put (writer, ",", 1);
}

static int
put_string (Writer *writer, const char *text)
{
	return put_netstring (writer, text, strlen (text));
}

typedef struct {
	int fd;
	char buffer[4096];
	size_t start;
	size_t end;
} Reader;

static int
read_byte (Reader *reader)
{
	if (reader->start == reader->end) {
		ssize_t n;
		do
			n = recv (reader->fd, reader->buffer, sizeof reader->buffer, 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return -1;
		reader->start = 0;
		reader->end = n;
	}
	return (unsigned char) reader->buffer[reader->start++];
}

/* A netstring of at most @max bytes, NUL-terminated (malloc). NULL: EOF,
 * timeout or garbage. */
static char *
read_netstring (Reader *reader, size_t max, size_t *out_size)
{
	size_t size = 0;
	int digits = 0;
	int c;
	char *data;

	while ((c = read_byte (reader)) >= '0' && c <= '9' && digits < 10) {
		size = size * 10 + (c - '0');
		digits++;
	}
	if (c != ':' || digits == 0 || size > max)
		return NULL;
	data = malloc (size + 1);
	if (data == NULL)
		return NULL;
	for (size_t i = 0; i < size; i++) {
		if ((c = read_byte (reader)) < 0) {
			free (data);
			return NULL;
		}
		data[i] = (char) c;
	}
	data[size] = '\0';
	if (read_byte (reader) != ',') {
		free (data);
		return NULL;
	}
	if (out_size != NULL)
		*out_size = size;
	return data;
}

static void
set_timeout (int fd, int seconds)
{
	struct timeval timeout = {.tv_sec = seconds};

	setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
	setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
}

static int
write_all (int fd, const char *data, size_t size)
{
	while (size > 0) {
		ssize_t n = write (fd, data, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		size -= n;
	}
	return 0;
}

/* The daemon's answer after @status: its stdout and stderr texts. */
static int
print_answer (Reader *reader, const char *command, const char *status)
{
	char *end = NULL;
	long code = strtol (status, &end, 10);
	size_t out_size = 0;
	size_t err_size = 0;
	char *out = NULL;
	char *err = NULL;
	int result;

	if (*status == '\0' || *end != '\0' || code < 0 || code > 255 ||
	    (out = read_netstring (reader, MAX_ANSWER_TEXT, &out_size)) == NULL ||
	    (err = read_netstring (reader, MAX_ANSWER_TEXT, &err_size)) == NULL) {
		free (out);
		/* it may have stored the message: the caller must try again, not give up */
		fprintf (stderr, "stagecoach %s: %s\n", command,
			 tr ("the daemon's answer was cut off; try again"));
		return EX_TEMPFAIL;
	}
	result = (int) code;
	write_all (STDERR_FILENO, err, err_size);
	if (write_all (STDOUT_FILENO, out, out_size) != 0 && result == 0)
		result = EX_IOERR; /* committed, but the caller cannot know (as the direct path) */
	free (out);
	free (err);
	return result;
}

static void
drain (int in_fd, char *chunk)
{
	ssize_t n;

	while ((n = read (in_fd, chunk, CHUNK_SIZE)) > 0 || (n < 0 && errno == EINTR))
		;
}

int
sc_handoff_client_run (const char *state_dir,
		       uint64_t config_hash,
		       const char *command,
		       int argc,
		       char *const *argv,
		       int in_fd)
{
	Reader reader = {0};
	Writer writer = {0};
	char number[32];
	char *status = NULL;
	char *chunk = NULL;
	int result = SC_HANDOFF_NO_DAEMON;
	int fd = sc_handoff_connect (state_dir);

	if (fd < 0)
		return SC_HANDOFF_NO_DAEMON;
	reader.fd = fd;
	writer.fd = fd;
	set_timeout (fd, HANDSHAKE_TIMEOUT_S);
	snprintf (number, sizeof number, "%016" PRIx64, config_hash);
	if (put_string (&writer, SC_HANDOFF_GREETING) != 0 || put_string (&writer, number) != 0 ||
	    put_string (&writer, command) != 0)
		goto out;
	snprintf (number, sizeof number, "%d", argc);
	if (put_string (&writer, number) != 0)
		goto out;
	for (int i = 0; i < argc; i++) {
		if (put_string (&writer, argv[i]) != 0)
			goto out;
	}
	if (writer_flush (&writer) != 0)
		goto out;
	status = read_netstring (&reader, 16, NULL);
	if (status == NULL || strcmp (status, "direct") == 0)
		goto out; /* nothing read from @in_fd yet */
	if (strcmp (status, "go") != 0) {
		/* refused on the command line alone, as the direct path does before reading */
		result = print_answer (&reader, command, status);
		goto out;
	}
	/* from here on standard input is being consumed: no way back */
	set_timeout (fd, ANSWER_TIMEOUT_S);
	chunk = malloc (CHUNK_SIZE);
	if (chunk == NULL) {
		result = EX_OSERR;
		goto out;
	}
	for (;;) {
		ssize_t n = read (in_fd, chunk, CHUNK_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* no end mark: the daemon stores nothing */
			fprintf (stderr, "stagecoach %s: %s: %s\n", command,
				 tr ("cannot read the message"), strerror (errno));
			result = EX_IOERR;
			goto out;
		}
		/* the empty chunk (n == 0) ends the message and sends what is gathered */
		if (put_netstring (&writer, chunk, n) != 0 || (n == 0 && writer_flush (&writer) != 0)) {
			/* the daemon hung up (perhaps with an answer): standard input is
			 * read to its end all the same, as the direct path reads it, so
			 * the list software writing it gets our exit status, not EPIPE */
			if (n > 0)
				drain (in_fd, chunk);
			break;
		}
		if (n == 0)
			break;
	}
	free (status);
	status = read_netstring (&reader, 16, NULL);
	if (status == NULL) {
		/* the end mark may have reached it: a commit is possible */
		fprintf (stderr, "stagecoach %s: %s\n", command,
			 tr ("the daemon went away before answering; try again"));
		result = EX_TEMPFAIL;
		goto out;
	}
	result = print_answer (&reader, command, status);
out:
	free (chunk);
	free (status);
	close (fd);
	return result;
}
