/* sc-front.c — the installed `stagecoach`: a libc-only front.
 *
 * List software runs `stagecoach inject` / `sendmail` once per message,
 * so their start-up is the ingress rate: the full program loads ~49
 * shared objects (GLib, GIO, libsoup, libcurl, TLS) before main().  This
 * front links libc alone.  For inject and sendmail it finds the state
 * folder the way the full program does (global --config/-c before the
 * command, $STAGECOACH_CONFIG, SYSCONFDIR/stagecoach/stagecoach.conf, else
 * built-in defaults; state-dir=, else a folder spool=, else
 * /var/lib/stagecoach for a database spool; relative to the file's
 * folder) and hands the message to the daemon over STATE-DIR/ingress.sock
 * (sc-handoff-client.c).  Everything else — other commands, --help, a
 * configuration it does not read plainly, no daemon answering, a daemon
 * with another configuration — is decided before standard input is
 * touched and execv()s the full program (stagecoach-main, next to this
 * binary, else where LIBEXECDIR is relative to BINDIR, else in LIBEXECDIR)
 * with the same argv: the same process id,
 * exactly today's behaviour.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "sc-handoff-client.h"
#include "sc-spool-uri.h"

#define MAIN_PROGRAM "stagecoach-main"
#define DEFAULT_SPOOL "/var/spool/stagecoach"
#define MAX_CONFIG_SIZE (4 * 1024 * 1024)

static char **saved_argv;

/* The full program, with our argv; returns only if it cannot be run. */
static int
run_main_program (int ingress)
{
	char self[PATH_MAX];
	ssize_t n = readlink ("/proc/self/exe", self, sizeof self - sizeof MAIN_PROGRAM - 1);

	if (n > 0) {
		char *slash;
		self[n] = '\0';
		slash = strrchr (self, '/');
		if (slash != NULL) {
			strcpy (slash + 1, MAIN_PROGRAM);
			execv (self, saved_argv);
#ifdef SC_LIBEXECDIR_FROM_BINDIR
			/* an installed tree where it is not (DESTDIR, a moved prefix):
			 * its own stagecoach-main, not another install's */
			if ((size_t) (slash + 1 - self) + sizeof SC_LIBEXECDIR_FROM_BINDIR "/" MAIN_PROGRAM <=
			    sizeof self) {
				strcpy (slash + 1, SC_LIBEXECDIR_FROM_BINDIR "/" MAIN_PROGRAM);
				execv (self, saved_argv);
			}
#endif
		}
	}
	execv (SC_LIBEXECDIR "/" MAIN_PROGRAM, saved_argv);
	fprintf (stderr, "stagecoach: cannot run %s: %s\n", SC_LIBEXECDIR "/" MAIN_PROGRAM,
		 strerror (errno));
	/* a message must stay with the caller, to be tried again */
	return ingress ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

static char *
read_file (const char *path, size_t *out_size)
{
	int fd = open (path, O_RDONLY | O_CLOEXEC);
	size_t size = 0;
	size_t capacity = 8192;
	char *data;

	if (fd < 0)
		return NULL;
	data = malloc (capacity + 1);
	for (;;) {
		ssize_t n;
		if (data == NULL)
			break;
		if (size == capacity) {
			char *bigger = capacity < MAX_CONFIG_SIZE ? realloc (data, capacity * 2 + 1) : NULL;
			if (bigger == NULL) {
				free (data);
				data = NULL;
				break;
			}
			data = bigger;
			capacity *= 2;
		}
		n = read (fd, data + size, capacity - size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free (data);
			data = NULL;
			break;
		}
		if (n == 0)
			break;
		size += n;
	}
	close (fd);
	if (data != NULL) {
		data[size] = '\0';
		*out_size = size;
	}
	return data;
}

/* @path made absolute against @base (nullable: the current folder) and
 * lexically canonical: as g_canonicalize_filename(). (malloc) */
static char *
canonicalize (const char *path, const char *base)
{
	char cwd[PATH_MAX];
	size_t length;
	char *joined;
	char *out;
	size_t o = 0;

	if (path[0] != '/') {
		if (base == NULL) {
			if (getcwd (cwd, sizeof cwd) == NULL)
				return NULL;
			base = cwd;
		}
		length = strlen (base) + 1 + strlen (path) + 1;
		joined = malloc (length);
		if (joined == NULL)
			return NULL;
		snprintf (joined, length, "%s/%s", base, path);
	} else {
		joined = strdup (path);
		if (joined == NULL)
			return NULL;
	}
	out = malloc (strlen (joined) + 2);
	if (out == NULL) {
		free (joined);
		return NULL;
	}
	for (const char *p = joined; *p != '\0';) {
		const char *end;
		size_t part;
		while (*p == '/')
			p++;
		end = strchrnul (p, '/');
		part = end - p;
		if (part == 0 || (part == 1 && p[0] == '.')) {
			/* nothing */
		} else if (part == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before it; ".." of "/" is "/" */
		} else {
			out[o++] = '/';
			memcpy (out + o, p, part);
			o += part;
		}
		p = end;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	free (joined);
	return out;
}

static char *
trim (char *start, char *end)
{
	while (start < end && (*start == ' ' || *start == '\t'))
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = '\0';
	return start;
}

/* [stagecoach] spool= and state-dir= of a key file: the last of each, as
 * GKeyFile takes them (NULL: none).  -1: one we do not read plainly
 * (escapes); else 0. */
static int
find_main_keys (char *text, char **out_spool, char **out_state_dir)
{
	int in_main = 0;

	*out_spool = NULL;
	*out_state_dir = NULL;
	for (char *line = text; line != NULL && *line != '\0';) {
		char *newline = strchr (line, '\n');
		char *end = newline != NULL ? newline : line + strlen (line);
		char *next = newline != NULL ? newline + 1 : NULL;
		char *start = trim (line, end);
		char *equals;

		if (*start == '[') {
			char *close = strrchr (start, ']');
			in_main = close != NULL && close - start - 1 == (long) strlen ("stagecoach") &&
				  strncmp (start + 1, "stagecoach", close - start - 1) == 0;
		} else if (in_main && *start != '#' && (equals = strchr (start, '=')) != NULL) {
			char *key_end = equals;
			char *key;
			char *value;
			*equals = '\0';
			key = trim (start, key_end);
			value = trim (equals + 1, equals + 1 + strlen (equals + 1));
			if (strcmp (key, "spool") == 0 || strcmp (key, "state-dir") == 0) {
				if (strchr (value, '\\') != NULL)
					return -1;
				if (strcmp (key, "spool") == 0)
					*out_spool = value;
				else
					*out_state_dir = value;
			}
		}
		line = next;
	}
	return 0;
}

/* inject's --help (and GOption's other help spellings) print and exit:
 * the full program's job. */
static int
wants_help (int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp (arg, "--") == 0)
			break;
		if (strncmp (arg, "--help", 6) == 0)
			return 1;
		if (arg[0] == '-' && arg[1] != '-' && (strchr (arg, 'h') != NULL || strchr (arg, '?') != NULL))
			return 1;
	}
	return 0;
}

int
main (int argc, char **argv)
{
	const char *base = strrchr (argv[0], '/') != NULL ? strrchr (argv[0], '/') + 1 : argv[0];
	const char *config_path = NULL;
	const char *command;
	char *config_text = NULL;
	size_t config_size = 0;
	char *state_dir = NULL;
	int first;
	int status;

	saved_argv = argv;
	if (strcmp (base, "sendmail") == 0) {
		/* installed as a sendmail path: the whole line is sendmail's */
		command = "sendmail";
		first = 1;
	} else {
		int i = 1;
		for (; i < argc && argv[i][0] == '-'; i++) {
			if (strcmp (argv[i], "--") == 0) {
				i++;
				break;
			}
			if (strcmp (argv[i], "--config") == 0 || strcmp (argv[i], "-c") == 0) {
				if (i + 1 >= argc)
					return run_main_program (0);
				config_path = argv[++i];
			} else if (strncmp (argv[i], "--config=", 9) == 0) {
				config_path = argv[i] + 9;
			} else if (strcmp (argv[i], "--verbose") != 0 && strcmp (argv[i], "-v") != 0) {
				return run_main_program (0);
			}
		}
		if (i >= argc || (strcmp (argv[i], "inject") != 0 && strcmp (argv[i], "sendmail") != 0))
			return run_main_program (0);
		command = argv[i];
		first = i + 1;
		if (strcmp (command, "inject") == 0 && wants_help (argc - first, argv + first))
			return run_main_program (1);
	}
	if (config_path == NULL) {
		const char *env = getenv ("STAGECOACH_CONFIG");
		if (env != NULL && *env != '\0')
			config_path = env;
		else if (access (SYSCONFDIR "/stagecoach/stagecoach.conf", F_OK) == 0)
			config_path = SYSCONFDIR "/stagecoach/stagecoach.conf";
	}
	if (config_path == NULL) {
		state_dir = strdup (DEFAULT_SPOOL);
	} else {
		char *spool = NULL;
		char *state_value = NULL;
		const char *spool_folder = DEFAULT_SPOOL;
		char *path = canonicalize (config_path, NULL);
		char *folder = path != NULL ? strdup (path) : NULL;
		char *text;

		config_text = read_file (config_path, &config_size);
		text = config_text != NULL ? strdup (config_text) : NULL;
		if (folder == NULL || text == NULL)
			return run_main_program (1); /* the full program says what is wrong */
		*strrchr (folder, '/') = '\0';
		if (find_main_keys (text, &spool, &state_value) < 0)
			return run_main_program (1);
		/* the socket is in state-dir=, else in a folder spool (sqlite: or
		 * none), else in the default state folder of a database spool:
		 * read as sc-config.c reads them; anything else is the full
		 * program's to judge */
		if (spool != NULL) {
			switch (sc_spool_uri_parse (spool, &spool_folder)) {
			case SC_SPOOL_URI_FOLDER:
				break;
			case SC_SPOOL_URI_POSTGRESQL:
				spool_folder = NULL;
				break;
			case SC_SPOOL_URI_UNKNOWN:
				return run_main_program (1);
			}
		}
		if ((spool_folder != NULL && *spool_folder == '\0') ||
		    (state_value != NULL && *state_value == '\0'))
			return run_main_program (1);
		if (state_value != NULL)
			state_dir = canonicalize (state_value, folder[0] != '\0' ? folder : "/");
		else if (spool_folder != NULL)
			state_dir = canonicalize (spool_folder, folder[0] != '\0' ? folder : "/");
		else
			state_dir = strdup (SC_SPOOL_URI_DEFAULT_STATE_DIR);
		free (text);
		free (folder);
		free (path);
	}
	if (state_dir == NULL)
		return run_main_program (1);
	status = sc_handoff_client_run (state_dir, sc_handoff_hash (config_text, config_size), command,
					argc - first, argv + first, STDIN_FILENO);
	free (state_dir);
	free (config_text);
	if (status == SC_HANDOFF_NO_DAEMON)
		return run_main_program (1);
	return status;
}
