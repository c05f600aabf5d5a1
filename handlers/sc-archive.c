/* sc-archive.c — the archive stage: keeps a copy of each message as lists send it.
 *
 * A list's "archive" value picks a backend by scheme — maildir:PATH, mbox:PATH
 * or an http(s):// URL — and this file only parses it and dispatches, as
 * OpenSMTPD's queue_backend.c does for queue_fs.c and queue_ram.c.  An empty
 * value switches archiving off.  Every backend names its copy after the queue
 * id, so running the stage again after a crash stores nothing new.
 *
 * Must never: archive the raw message instead of the current one (footers
 * belong in the archive), or let a password or token of an archiver URL
 * reach an error message, which ends up in the spool and the dashboard.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "sc-archive-private.h"
#include "sc-i18n.h"

static const ScArchiveBackend *const archive_backends[] = {
    &sc_archive_backend_maildir,
    &sc_archive_backend_mbox,
    &sc_archive_backend_http,
};

/* Finds the backend for @value; @out_location points into @value. */
static const ScArchiveBackend *
sc_archive_lookup (const char *value, const char **out_location, GError **error)
{
	const char *colon = strchr (value, ':');
	g_autofree char *scheme = NULL;

	if (colon != NULL && colon != value) {
		scheme = g_ascii_strdown (value, colon - value);
		for (gsize i = 0; i < G_N_ELEMENTS (archive_backends); i++) {
			const ScArchiveBackend *backend = archive_backends[i];
			if (!g_strv_contains (backend->schemes, scheme))
				continue;
			*out_location = backend->location_is_url ? value : colon + 1;
			return backend;
		}
	}
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     /* TRANSLATORS: maildir:PATH etc. are literal syntax */
		     _("“%s” is not maildir:PATH, mbox:PATH or an http(s):// URL"),
		     value);
	return NULL;
}

char *
sc_archive_display (const char *value)
{
	g_autoptr(GUri) uri = NULL;

	if (g_ascii_strncasecmp (value, "http:", 5) != 0 &&
	    g_ascii_strncasecmp (value, "https:", 6) != 0)
		return g_strdup (value);
	uri = g_uri_parse (value,
			   G_URI_FLAGS_ENCODED | G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_PARSE_RELAXED,
			   NULL);
	if (uri == NULL)
		return g_strdup ("http(s)://…");
	return g_uri_to_string_partial (uri, G_URI_HIDE_PASSWORD | G_URI_HIDE_QUERY);
}

static gboolean
sc_archive_run (ScStageContext *context, GError **error)
{
	const char *value = context->list->archive;
	const char *location = NULL;
	const ScArchiveBackend *backend;
	g_autoptr(GError) error_local = NULL;

	if (value == NULL || *value == '\0') {
		g_debug ("%s: archiving is off for %s", context->queue_id, context->list->id);
		return TRUE;
	}
	/* check() ran at load, so this is a config changed under us: fixable */
	backend = sc_archive_lookup (value, &location, &error_local);
	if (backend == NULL) {
		sc_stage_error_propagate (error, error_local, "archive: ");
		return FALSE;
	}
	if (!backend->store (location, context, error)) {
		g_autofree char *display = sc_archive_display (value);
		g_prefix_error (error, "archive %s: ", display);
		return FALSE;
	}
	return TRUE;
}

static gboolean
sc_archive_check (const ScConfig *config,
		  const ScListConfig *list,
		  const char *stage_argument,
		  GPtrArray *warnings,
		  GError **error)
{
	const char *location = NULL;
	const ScArchiveBackend *backend;

	if (list->archive == NULL || *list->archive == '\0')
		return TRUE;
	backend = sc_archive_lookup (list->archive, &location, error);
	if (backend == NULL || !backend->check (location, error)) {
		g_prefix_error (error, "%s: ", SC_KEY_LIST_ARCHIVE);
		return FALSE;
	}
	return TRUE;
}

const ScHandler sc_handler_archive = {
    .name = "archive",
    .run = sc_archive_run,
    .check = sc_archive_check,
};

gboolean
sc_archive_check_local_path (const char *path, GError **error)
{
	if (*path == '\0') {
		g_set_error_literal (error,
				     SC_CONFIG_ERROR,
				     SC_CONFIG_ERROR_INVALID,
				     _("the path is empty"));
		return FALSE;
	}
	if (!g_path_is_absolute (path)) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     _("“%s” is not an absolute path"),
			     path);
		return FALSE;
	}
	return TRUE;
}

static gboolean
sc_archive_put (FILE *stream, const char *data, gsize length, gsize *total)
{
	if (stream != NULL && length > 0 && fwrite (data, 1, length, stream) != length) {
		if (errno == 0)
			errno = EIO;
		return FALSE;
	}
	*total += length;
	return TRUE;
}

static gboolean
sc_archive_is_from_line (const char *line, gsize length)
{
	gsize i = 0;

	while (i < length && line[i] == '>')
		i++;
	return length - i >= 5 && memcmp (line + i, "From ", 5) == 0;
}

gboolean
sc_archive_write_local (FILE *stream, GBytes *message, gboolean mboxrd, gsize *out_length)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (message, &size);
	const char *end = data + size;
	const char *line = data;
	gsize total = 0;

	/* an envelope line some list software hands over is not part of the message */
	if (size >= 5 && memcmp (data, "From ", 5) == 0) {
		const char *newline = memchr (data, '\n', size);
		line = newline != NULL ? newline + 1 : end;
	}
	errno = 0;
	while (line < end) {
		const char *newline = memchr (line, '\n', end - line);
		gsize length = (newline != NULL ? newline : end) - line;

		if (length > 0 && line[length - 1] == '\r')
			length--;
		if (mboxrd && sc_archive_is_from_line (line, length) &&
		    !sc_archive_put (stream, ">", 1, &total))
			return FALSE;
		if (!sc_archive_put (stream, line, length, &total) ||
		    !sc_archive_put (stream, "\n", 1, &total))
			return FALSE;
		line = newline != NULL ? newline + 1 : end;
	}
	if (out_length != NULL)
		*out_length = total;
	return TRUE;
}

char *
sc_archive_sanitize_line (const char *text, gsize length, gsize max_length)
{
	g_autofree char *copy = g_strndup (text, MIN (length, max_length));
	g_autofree char *valid = NULL;

	for (char *cursor = copy; *cursor != '\0'; cursor++) {
		if ((guchar) *cursor < 0x20 || *cursor == 0x7f)
			*cursor = ' ';
	}
	valid = g_utf8_make_valid (copy, -1);
	return g_strdup (g_strstrip (valid));
}

char *
sc_archive_get_message_id (GBytes *message)
{
	gsize size = 0;
	const char *data = g_bytes_get_data (message, &size);
	const char *end = data + size;
	const char *line = data;
	g_autoptr(GString) value = NULL;

	while (line < end) {
		const char *newline = memchr (line, '\n', end - line);
		const char *next = newline != NULL ? newline + 1 : end;
		gsize length = (newline != NULL ? newline : end) - line;

		if (length > 0 && line[length - 1] == '\r')
			length--;
		if (length == 0)
			break; /* end of the header block */
		if (value != NULL) {
			if (line[0] != ' ' && line[0] != '\t')
				break; /* the header had no more folded lines */
			g_string_append_len (value, line, length);
		} else if (length >= 11 && g_ascii_strncasecmp (line, "Message-ID:", 11) == 0) {
			value = g_string_new_len (line + 11, length - 11);
		}
		line = next;
	}
	if (value == NULL)
		return NULL;
	/* RFC 5322 caps a line at 998; a longer ID is not one */
	return sc_archive_sanitize_line (value->str, value->len, 998);
}

gboolean
sc_archive_fsync_directory (const char *path, GError **error)
{
	int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1) {
		sc_stage_error_set_errno (error, errno, _("failed to open %s"), path);
		return FALSE;
	}
	/* some file systems cannot sync a directory, and say so with EINVAL */
	if (fsync (fd) == -1 && errno != EINVAL) {
		int saved_errno = errno;
		close (fd);
		sc_stage_error_set_errno (error, saved_errno, _("failed to sync %s"), path);
		return FALSE;
	}
	close (fd);
	return TRUE;
}
