/* sc-dkim.c — a DKIM signature (libopendkim) over the message as it will be sent.
 *
 * The key comes from sc-dkim-key.c, the library and its allocation arena
 * from sc-dkim-library.c.
 *
 * Only the header fields to be signed are given to libopendkim: the
 * others cannot change the signature, and libopendkim would parse an
 * author's DKIM-Signature it has no business with (and fail the message on
 * a malformed one).  The header block is split here, by the same rules
 * decorate uses; where it ends without the empty line (a stray line that
 * is neither field nor continuation), the empty line is put in, so that
 * every verifier splits the message as the signer did.
 *
 * Must never: put key material in an error, a note or a log line; prompt
 * on a terminal; sign bytes other than the ones returned.
 */
#include "config.h"

#include "sc-dkim-private.h"
#include "sc-message-headers.h"
#include "sc-error.h"
#include "sc-i18n.h"

#define SIGNATURE_PREFIX DKIM_SIGNHEADER ": "

/* RFC 6376 §5.4.1, then the fields that make a list message what it is
 * and the MIME fields that say how to read the body. */
static const char *const signed_fields[] = {
    "From", "Reply-To", "Subject", "Date", "To", "Cc",
    "Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
    "In-Reply-To", "References",
    "List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
    "List-Owner", "List-Archive", "List-Unsubscribe-Post",
    "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    NULL,
};

/* A second From or Subject would change what a reader sees; a second
 * List-Id or List-Unsubscribe(-Post) where to unsubscribe (RFC 8058 §4
 * asks for both to be signed). */
static const char *const oversigned_fields[] = {
    "From", "Subject", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", NULL,
};

const char *const *
sc_dkim_signed_fields (void)
{
	return signed_fields;
}

const char *const *
sc_dkim_oversigned_fields (void)
{
	return oversigned_fields;
}

const char *
sc_dkim_algorithm_name (ScDkimKeyType type)
{
	return type == SC_DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256";
}

/* ---- the message ---------------------------------------------------------- */

/* Whether @data has a CR or LF that is not part of a CRLF pair. */
static gboolean
has_bare_line_end (const guint8 *data, gsize length)
{
	for (gsize i = 0; i < length; i++) {
		if (data[i] == '\r') {
			if (i + 1 >= length || data[i + 1] != '\n')
				return TRUE;
			i++;
		} else if (data[i] == '\n') {
			return TRUE;
		}
	}
	return FALSE;
}

GBytes *
sc_dkim_normalize (GBytes *message)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	const guint8 *p = data;
	const guint8 *end = data + length;
	GByteArray *out;

	if (length == 0)
		return g_bytes_ref (message);
	/* an mbox "From " separator is not part of the message */
	p = data + sc_message_mbox_separator_length (data, length);
	if (p == data && length >= 2 && data[length - 2] == '\r' && data[length - 1] == '\n' &&
	    !has_bare_line_end (data, length))
		return g_bytes_ref (message);
	out = g_byte_array_sized_new ((end - p) + (end - p) / 32 + 2);
	while (p < end) {
		const guint8 *stop = p;
		while (stop < end && *stop != '\r' && *stop != '\n')
			stop++;
		g_byte_array_append (out, p, stop - p);
		if (stop == end)
			break;
		/* CRLF stays; a lone LF or CR ends its line as CRLF: verifiers
		 * disagree on what a bare CR means (libopendkim and dkimpy do) */
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
		p = stop + (*stop == '\r' && stop + 1 < end && stop[1] == '\n' ? 2 : 1);
	}
	/* What libcurl would add before the final "." anyway: the bytes
	 * returned are the bytes the receiver gets. */
	if (out->len > 0 && (out->len < 2 || out->data[out->len - 2] != '\r' ||
			     out->data[out->len - 1] != '\n'))
		g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	return g_byte_array_free_to_bytes (out);
}

typedef struct {
	gsize start;       /* offset of the field's first byte */
	gsize end;         /* offset of its final CRLF */
	gsize name_length;
} ScDkimField;

/* Splits a normalized message's header block into fields, the way
 * decorate does; NULL with a reason (transfer full) when there is no
 * header block.  A later line that is neither field nor continuation
 * ends the block without an empty line: *out_stray_line is its number
 * and *out_body its offset (else 0, and the offset after the empty line).
 * (element-type ScDkimField) */
static GArray *
header_fields (GBytes *message, gsize *out_body, guint *out_stray_line, char **out_reason)
{
	g_autoptr(GArray) fields = g_array_new (FALSE, FALSE, sizeof (ScDkimField));
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	gsize pos = 0;
	guint line_number = 0;
	gboolean in_field = FALSE;

	*out_body = length;
	*out_stray_line = 0;
	if (length == 0) {
		*out_reason = g_strdup (_("empty message"));
		return NULL;
	}
	while (pos < length) {
		const guint8 *lf = memchr (data + pos, '\n', length - pos);
		/* normalized: every line ends with CRLF */
		gsize line_end = lf != NULL ? (gsize) (lf - data) - 1 : length;
		gsize next = lf != NULL ? line_end + 2 : length;
		gsize name_length;
		gsize colon = 0;

		line_number++;
		if (line_end == pos) {
			if (line_number == 1) {
				*out_reason = g_strdup (
				    _("not a message: it starts with a blank line, no header block"));
				return NULL;
			}
			*out_body = next;
			return g_steal_pointer (&fields);
		}
		if (data[pos] == ' ' || data[pos] == '\t') {
			if (!in_field) {
				*out_reason = g_strdup (
				    _("not a message: the first line is not a header field"));
				return NULL;
			}
			g_array_index (fields, ScDkimField, fields->len - 1).end = line_end;
			pos = next;
			continue;
		}
		name_length = sc_header_field_name_length (data + pos, line_end - pos, &colon);
		if (name_length == 0 && line_number == 1) {
			*out_reason = g_strdup (_("not a message: the first line is not a header field"));
			return NULL;
		}
		if (name_length == 0) {
			*out_stray_line = line_number;
			*out_body = pos;
			return g_steal_pointer (&fields);
		}
		g_array_append_val (fields, ((ScDkimField){pos, line_end, name_length}));
		in_field = TRUE;
		pos = next;
	}
	/* a header block without a body */
	return g_steal_pointer (&fields);
}

/* @message with the white space between a field's name and its colon
 * (RFC 5322 4.5.3 obs-optional, which must not be generated) taken out of
 * every top-level field, or NULL when no field has any.  Relaxed
 * canonicalization drops it anyway; strict parsers (dkimpy) refuse it. */
static GBytes *
without_obsolete_colon_space (GBytes *message, GArray *fields, guint *out_count)
{
	gsize length = 0;
	const guint8 *data = g_bytes_get_data (message, &length);
	GByteArray *out = NULL;
	gsize copied = 0;

	*out_count = 0;
	for (guint i = 0; i < fields->len; i++) {
		const ScDkimField *field = &g_array_index (fields, ScDkimField, i);
		gsize after_name = field->start + field->name_length;
		gsize colon = after_name;

		while (data[colon] != ':')
			colon++;
		if (colon == after_name)
			continue;
		if (out == NULL)
			out = g_byte_array_sized_new (length);
		g_byte_array_append (out, data + copied, after_name - copied);
		copied = colon;
		(*out_count)++;
	}
	if (out == NULL)
		return NULL;
	g_byte_array_append (out, data + copied, length - copied);
	return g_byte_array_free_to_bytes (out);
}

static gboolean
field_is_signed (const guint8 *name, gsize length)
{
	for (gsize i = 0; signed_fields[i] != NULL; i++) {
		if (strlen (signed_fields[i]) == length &&
		    g_ascii_strncasecmp (signed_fields[i], (const char *) name, length) == 0)
			return TRUE;
	}
	return FALSE;
}

/* ---- signing ---------------------------------------------------------------- */

static void G_GNUC_PRINTF (4, 5)
library_error (GError **error, ScStageError code, DKIM *dkim, const char *format, ...)
{
	g_autofree char *what = NULL;
	const char *detail = dkim != NULL ? dkim_geterror (dkim) : NULL;
	va_list args;

	va_start (args, format);
	what = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error (error, SC_STAGE_ERROR, code, "%s%s%s", what,
		     detail != NULL && *detail != '\0' ? ": " : "",
		     detail != NULL ? detail : "");
}

/* The message's fault or ours: libopendkim says SYNTAX for a field it will
 * not take; anything else (memory, internal state) may pass. */
static ScStageError
status_code (DKIM_STAT status)
{
	return status == DKIM_STAT_SYNTAX ? SC_STAGE_ERROR_PERMANENT : SC_STAGE_ERROR_TRANSIENT;
}

GBytes *
sc_dkim_sign_full (const ScListConfig *list,
		   GBytes *message,
		   ScDkimKeyInfo *out_info,
		   char **out_repair,
		   GError **error)
{
	g_autoptr(GError) error_local = NULL;
	g_autoptr(ScDkimKey) key = NULL;
	g_autoptr(GBytes) normalized = NULL;
	g_autoptr(GArray) fields = NULL;
	g_autoptr(GByteArray) scratch = NULL;
	g_autofree char *reason = NULL;
	guint stray_line = 0;
	DKIM_LIB *lib;
	DKIM *dkim;
	DKIM_STAT status = DKIM_STAT_OK;
	ScDkimArena arena;
	u_char *signature = NULL;
	size_t signature_length = 0;
	const guint8 *data;
	gsize length = 0;
	gsize body = 0;
	GByteArray *out;

	g_return_val_if_fail (list != NULL, NULL);
	g_return_val_if_fail (message != NULL, NULL);

	/* the key and the settings first: an operator can fix those, so a
	 * message waits for them rather than dying of them */
	lib = sc_dkim_library (&error_local);
	if (lib != NULL)
		key = sc_dkim_list_key (list, &error_local);
	if (key == NULL) {
		g_set_error_literal (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT,
				     error_local->message);
		return NULL;
	}
	if (out_repair != NULL)
		*out_repair = NULL;
	normalized = sc_dkim_normalize (message);
	fields = header_fields (normalized, &body, &stray_line, &reason);
	if (fields == NULL) {
		g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_PERMANENT,
			     _("cannot be DKIM-signed: %s"), reason);
		return NULL;
	}
	if (stray_line > 0) {
		/* Verifiers would each end the header block their own way (dkimpy
		 * refuses the message): say where it ends, with the empty line
		 * RFC 5322 wants, as mail parsers read such a message anyway. */
		gsize old_length = 0;
		const guint8 *old = g_bytes_get_data (normalized, &old_length);
		GByteArray *repaired = g_byte_array_sized_new (old_length + 2);

		g_byte_array_append (repaired, old, body);
		g_byte_array_append (repaired, (const guint8 *) "\r\n", 2);
		g_byte_array_append (repaired, old + body, old_length - body);
		g_bytes_unref (normalized);
		normalized = g_byte_array_free_to_bytes (repaired);
		body += 2;
		if (out_repair != NULL)
			*out_repair = g_strdup_printf (
			    _("an empty line put before header line %u, which is neither a field "
			      "nor a continuation: the header block ends there"),
			    stray_line);
	}
	{
		guint count = 0;
		GBytes *cleaned = without_obsolete_colon_space (normalized, fields, &count);

		if (cleaned != NULL) {
			g_autofree char *earlier = out_repair != NULL ? *out_repair : NULL;
			g_autofree char *note = g_strdup_printf (
			    _("white space before the colon taken out of %u header field(s) "
			      "(obsolete syntax)"),
			    count);

			g_bytes_unref (normalized);
			normalized = cleaned;
			g_array_unref (fields);
			fields = header_fields (normalized, &body, &stray_line, &reason);
			g_assert (fields != NULL);
			if (out_repair != NULL)
				*out_repair = earlier != NULL ? g_strdup_printf ("%s; %s", earlier, note)
							      : g_steal_pointer (&note);
		}
	}
	sc_dkim_arena_init (&arena, key->info.type == SC_DKIM_KEY_ED25519);
	dkim = dkim_sign (lib, (const u_char *) "stagecoach", &arena, (dkim_sigkey_t) key->pem_data,
			  (const u_char *) list->dkim_selector, (const u_char *) list->dkim_domain,
			  DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
			  key->info.type == SC_DKIM_KEY_ED25519 ? DKIM_SIGN_ED25519SHA256
								: DKIM_SIGN_RSASHA256,
			  -1, &status);
	if (dkim == NULL) {
		sc_dkim_arena_clear (&arena);
		library_error (error, SC_STAGE_ERROR_TRANSIENT, NULL,
			       _("libopendkim could not start a signature: %s"),
			       dkim_getresultstr (status));
		return NULL;
	}

	data = g_bytes_get_data (normalized, &length);
	scratch = g_byte_array_new ();
	for (guint i = 0; i < fields->len && status == DKIM_STAT_OK; i++) {
		const ScDkimField *field = &g_array_index (fields, ScDkimField, i);

		if (!field_is_signed (data + field->start, field->name_length))
			continue;
		/* a copy: dkim_header() takes a non-const buffer */
		g_byte_array_set_size (scratch, 0);
		g_byte_array_append (scratch, data + field->start, field->end - field->start);
		status = dkim_header (dkim, scratch->data, scratch->len);
		if (status != DKIM_STAT_OK) {
			g_autofree char *name =
			    g_strndup ((const char *) data + field->start, field->name_length);
			library_error (error, status_code (status), dkim,
				       _("cannot be DKIM-signed: libopendkim refused the %s field"),
				       name);
		}
	}
	if (status == DKIM_STAT_OK) {
		status = dkim_eoh (dkim);
		if (status != DKIM_STAT_OK)
			library_error (error, status_code (status), dkim,
				       _("cannot be DKIM-signed: the header block"));
	}
	if (status == DKIM_STAT_OK && body < length) {
		/* libopendkim only reads the body (dkim_canon_bodychunk) */
		status = dkim_body (dkim, (u_char *) data + body, length - body);
		if (status != DKIM_STAT_OK)
			library_error (error, status_code (status), dkim,
				       _("cannot be DKIM-signed: the body"));
	}
	if (status == DKIM_STAT_OK) {
		status = dkim_eom (dkim, NULL);
		if (status != DKIM_STAT_OK)
			library_error (error, SC_STAGE_ERROR_TRANSIENT, dkim,
				       _("libopendkim could not sign"));
	}
	if (status == DKIM_STAT_OK) {
		status = dkim_getsighdr_d (dkim, strlen (SIGNATURE_PREFIX), &signature,
					   &signature_length);
		if (status != DKIM_STAT_OK)
			library_error (error, SC_STAGE_ERROR_TRANSIENT, dkim,
				       _("libopendkim could not write the signature"));
	}
	if (status != DKIM_STAT_OK) {
		dkim_free (dkim);
		sc_dkim_arena_clear (&arena);
		return NULL;
	}
	out = g_byte_array_sized_new (strlen (SIGNATURE_PREFIX) + signature_length + 2 + length);
	g_byte_array_append (out, (const guint8 *) SIGNATURE_PREFIX, strlen (SIGNATURE_PREFIX));
	g_byte_array_append (out, signature, signature_length);
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	g_byte_array_append (out, data, length);
	dkim_free (dkim);
	sc_dkim_arena_clear (&arena);
	if (out_info != NULL)
		*out_info = key->info;
	return g_byte_array_free_to_bytes (out);
}

GBytes *
sc_dkim_sign (const ScListConfig *list, GBytes *message, GError **error)
{
	return sc_dkim_sign_full (list, message, NULL, NULL, error);
}
