/* sc-spool-uri.c — see sc-spool-uri.h.
 *
 * The masking follows libpq's own reading of a value (conninfo_parse and
 * conninfo_uri_parse_options in fe-connect.c), so that what libpq would
 * take for a password is what is hidden: in a URI the text between the
 * first ':' and the '@' that ends the user part, and a `password`
 * parameter after '?'; in a connection string the value of the
 * `password` keyword, quoted or not, with backslash escapes.  libpq
 * expands a `dbname` that is itself a URI or connection string, so such a
 * value is masked in turn.
 */
#include "config.h"

#include "sc-spool-uri.h"

#include <stdlib.h>
#include <string.h>

#define MASK "***"

static int
has_prefix (const char *value, const char *prefix)
{
	return strncmp (value, prefix, strlen (prefix)) == 0;
}

static int
is_space (char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A libpq connection string starts with KEYWORD= (spaces allowed around
 * '='); a folder's name rarely does, and a path with a slash before any
 * '=' never. */
static int
is_conninfo (const char *value)
{
	const char *p = value;
	const char *start;

	while (is_space (*p))
		p++;
	start = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_')
		p++;
	if (p == start || (*start >= '0' && *start <= '9'))
		return 0;
	while (is_space (*p))
		p++;
	return *p == '=';
}

static int
is_uri (const char *value)
{
	return has_prefix (value, "postgresql://") || has_prefix (value, "postgres://");
}

ScSpoolUriKind
sc_spool_uri_parse (const char *value, const char **out_folder)
{
	*out_folder = value;
	if (has_prefix (value, "sqlite:")) {
		*out_folder = value + strlen ("sqlite:");
		return SC_SPOOL_URI_FOLDER;
	}
	if (has_prefix (value, "postgresql:") || has_prefix (value, "postgres:") || is_conninfo (value))
		return SC_SPOOL_URI_POSTGRESQL;
	if (strstr (value, "://") != NULL)
		return SC_SPOOL_URI_UNKNOWN;
	return SC_SPOOL_URI_FOLDER;
}

/* ---- a growing string, libc only ---- */

typedef struct {
	char *data;
	size_t length;
	size_t capacity;
	int failed; /* out of memory */
} Buffer;

static void
append_len (Buffer *buffer, const char *text, size_t length)
{
	if (buffer->failed)
		return;
	if (buffer->length + length + 1 > buffer->capacity) {
		size_t capacity = (buffer->length + length + 1) * 2;
		char *bigger = realloc (buffer->data, capacity);
		if (bigger == NULL) {
			buffer->failed = 1;
			return;
		}
		buffer->data = bigger;
		buffer->capacity = capacity;
	}
	memcpy (buffer->data + buffer->length, text, length);
	buffer->length += length;
	buffer->data[buffer->length] = '\0';
}

static void
append (Buffer *buffer, const char *text)
{
	append_len (buffer, text, strlen (text));
}

static char *
buffer_steal (Buffer *buffer)
{
	if (buffer->failed) {
		free (buffer->data);
		return NULL;
	}
	if (buffer->data == NULL)
		return strdup ("");
	return buffer->data;
}

static void mask_into (Buffer *out, const char *value, int *found);

/* ---- URI ---- */

static int
hex_value (char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Whether [start, end) percent-decodes to @word. */
static int
decodes_to (const char *start, const char *end, const char *word)
{
	for (const char *p = start; p < end; word++) {
		char c = *p++;
		if (c == '%' && end - p >= 2 && hex_value (p[0]) >= 0 && hex_value (p[1]) >= 0) {
			c = (char) (hex_value (p[0]) * 16 + hex_value (p[1]));
			p += 2;
		}
		if (*word == '\0' || c != *word)
			return 0;
	}
	return *word == '\0';
}

static void
mask_uri (Buffer *out, const char *value, int *found)
{
	const char *rest = strstr (value, "://") + 3;
	const char *p = rest;
	const char *query;

	append_len (out, value, rest - value);
	/* libpq: the user part ends at the first '@' before any '/' */
	while (*p != '\0' && *p != '@' && *p != '/')
		p++;
	if (*p == '@') {
		const char *colon = memchr (rest, ':', p - rest);
		if (colon != NULL) {
			append_len (out, rest, colon + 1 - rest);
			append (out, MASK);
			if (p > colon + 1)
				*found = 1;
		} else {
			append_len (out, rest, p - rest);
		}
		rest = p;
	}
	query = strchr (rest, '?');
	if (query == NULL) {
		append (out, rest);
		return;
	}
	append_len (out, rest, query + 1 - rest);
	for (p = query + 1; *p != '\0';) {
		const char *end = strchrnul (p, '&');
		const char *equals = memchr (p, '=', end - p);

		if (equals != NULL && decodes_to (p, equals, "password")) {
			append_len (out, p, equals + 1 - p);
			append (out, MASK);
			if (end > equals + 1)
				*found = 1;
		} else {
			append_len (out, p, end - p);
		}
		if (*end == '&')
			append (out, "&");
		p = *end == '&' ? end + 1 : end;
	}
}

/* ---- key=value connection string ---- */

static void
mask_conninfo (Buffer *out, const char *value, int *found)
{
	const char *p = value;

	while (*p != '\0') {
		const char *key;
		size_t key_length;
		const char *value_start;
		char *unquoted;
		size_t u = 0;

		while (is_space (*p))
			append_len (out, p++, 1);
		if (*p == '\0')
			break;
		key = p;
		while (*p != '\0' && *p != '=' && !is_space (*p))
			p++;
		key_length = p - key;
		while (is_space (*p))
			p++;
		if (*p != '=') {
			/* not a connection string libpq takes: show the rest as it is */
			append (out, key);
			return;
		}
		p++;
		while (is_space (*p))
			p++;
		value_start = p;
		unquoted = malloc (strlen (p) + 1);
		if (unquoted == NULL) {
			out->failed = 1;
			return;
		}
		if (*p == '\'') {
			for (p++; *p != '\0' && *p != '\''; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				unquoted[u++] = *p;
			}
			if (*p == '\'')
				p++;
		} else {
			for (; *p != '\0' && !is_space (*p); p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				unquoted[u++] = *p;
			}
		}
		unquoted[u] = '\0';
		append_len (out, key, key_length);
		append (out, "=");
		if (key_length == strlen ("password") && strncmp (key, "password", key_length) == 0) {
			append (out, MASK);
			if (u > 0)
				*found = 1;
		} else if (key_length == strlen ("dbname") && strncmp (key, "dbname", key_length) == 0 &&
			   sc_spool_uri_has_password (unquoted)) {
			Buffer inner = {0};
			mask_into (&inner, unquoted, found);
			append (out, "'");
			for (size_t i = 0; !inner.failed && i < inner.length; i++) {
				if (inner.data[i] == '\'' || inner.data[i] == '\\')
					append (out, "\\");
				append_len (out, inner.data + i, 1);
			}
			append (out, "'");
			out->failed |= inner.failed;
			free (inner.data);
		} else {
			append_len (out, value_start, p - value_start);
		}
		free (unquoted);
	}
}

static void
mask_into (Buffer *out, const char *value, int *found)
{
	const char *folder;

	if (sc_spool_uri_parse (value, &folder) != SC_SPOOL_URI_POSTGRESQL)
		append (out, value);
	else if (is_uri (value))
		mask_uri (out, value, found);
	else if (is_conninfo (value))
		mask_conninfo (out, value, found);
	else
		append (out, value); /* "postgresql:" without "//": libpq refuses it */
}

char *
sc_spool_uri_mask (const char *value)
{
	Buffer out = {0};
	int found = 0;

	mask_into (&out, value, &found);
	return buffer_steal (&out);
}

int
sc_spool_uri_has_password (const char *value)
{
	Buffer out = {0};
	int found = 0;

	mask_into (&out, value, &found);
	free (out.data);
	return found;
}
