/* sc-dkim.c — DKIM signatures with libopendkim, keys read with OpenSSL.
 *
 * libopendkim signs; OpenSSL reads the key file first, for three reasons:
 * to pick the algorithm (rsa-sha256 or ed25519-sha256) from the key
 * itself, to refuse what libopendkim would mishandle (an encrypted key
 * makes OpenSSL's default callback ask for a passphrase on the terminal;
 * a PEM file with anything before the key is taken for DER), and to derive
 * the public key for the DNS record.  libopendkim then gets the key again
 * as clean PKCS#8 PEM, from OpenSSL's secure heap.
 *
 * One DKIM_LIB serves the whole process (as the opendkim milter shares
 * one between its threads): it is made once, its options are set before
 * anyone signs and never changed after, and each message gets a DKIM
 * handle of its own.
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

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <dkim.h>

#include "sc-dkim.h"
#include "sc-message-headers.h"
#include "sc-error.h"
#include "sc-i18n.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BIO, BIO_free)

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

/* ---- the library ------------------------------------------------------ */

/* libopendkim 2.11 (Debian 12's, and upstream's develop branch) leaks in
 * dkim_free() what it made to sign with Ed25519: it frees the key's
 * EVP_PKEY, its BIO and the signature buffer only for RSA signatures.
 * That is ~470 bytes a message, a copy of the private key among them.
 * Each signing handle therefore allocates through an arena of its own
 * (dkim_init's allocator hooks, with the handle's memory closure):
 * when libopendkim frees the 64-byte block that holds its crypto state
 * for an Ed25519 signature, the EVP_PKEY and BIO it names are freed
 * first, and the signature buffer it names after dkim_free().
 * The block is recognized by its contents, not only its size (the layout
 * of struct dkim_crypto in libopendkim's dkim-types.h): key size 512
 * bits, signature length 64, the signature buffer one of this arena's
 * live 64-byte blocks, no RSA key.  A libopendkim that frees these itself
 * has cleared them first, and then nothing matches. */
typedef struct {
	unsigned char pad;
	int keysize;
	size_t inlen;
	size_t outlen;
	EVP_PKEY *pkey;
	void *key;
	BIO *keydata;
	unsigned char *in;
	unsigned char *out;
} ScDkimCryptoLayout;

typedef struct {
	GHashTable *blocks; /* pointer → size, for the handle's live allocations */
	gboolean ed25519;
	GPtrArray *orphans; /* signature buffers whose owner was freed without them */
} ScDkimArena;

static void *
arena_malloc_cb (void *closure, size_t size)
{
	ScDkimArena *arena = closure;
	void *block = g_malloc (size);

	if (arena != NULL)
		g_hash_table_insert (arena->blocks, block, GSIZE_TO_POINTER (size));
	return block;
}

static void
arena_release_crypto (ScDkimArena *arena, void *block)
{
	ScDkimCryptoLayout *crypto = block;

	/* an Ed25519 signature: 64 bytes, EVP_PKEY_size() * 8 bits of "key size" */
	if (crypto->keysize != 64 * 8 || crypto->outlen != 64 || crypto->key != NULL ||
	    crypto->out == NULL || crypto->pkey == NULL ||
	    GPOINTER_TO_SIZE (g_hash_table_lookup (arena->blocks, crypto->out)) != 64)
		return;
	if (EVP_PKEY_get_base_id (crypto->pkey) != EVP_PKEY_ED25519)
		return;
	EVP_PKEY_free (crypto->pkey);
	crypto->pkey = NULL;
	BIO_free (crypto->keydata);
	crypto->keydata = NULL;
	g_ptr_array_add (arena->orphans, crypto->out);
}

static void
arena_free_cb (void *closure, void *block)
{
	ScDkimArena *arena = closure;

	if (arena != NULL && block != NULL) {
		gsize size = GPOINTER_TO_SIZE (g_hash_table_lookup (arena->blocks, block));
		if (arena->ed25519 && size == sizeof (ScDkimCryptoLayout))
			arena_release_crypto (arena, block);
		g_hash_table_remove (arena->blocks, block);
	}
	g_free (block);
}

static void
arena_init (ScDkimArena *arena, gboolean ed25519)
{
	arena->blocks = g_hash_table_new (NULL, NULL);
	arena->ed25519 = ed25519;
	arena->orphans = g_ptr_array_new ();
}

/* After dkim_free(): the signature buffers it left, and only those (a
 * block libopendkim may have freed by other means is not touched). */
static void
arena_clear (ScDkimArena *arena)
{
	for (guint i = 0; i < arena->orphans->len; i++) {
		if (g_hash_table_remove (arena->blocks, arena->orphans->pdata[i]))
			g_free (arena->orphans->pdata[i]);
	}
	g_clear_pointer (&arena->orphans, g_ptr_array_unref);
	g_clear_pointer (&arena->blocks, g_hash_table_unref);
}

static DKIM_LIB *library;
static char *library_problem; /* why there is none */

static gboolean
library_set (DKIM_LIB *lib, int option, const char *const *value)
{
	/* libopendkim copies the array; it wants the array itself and the size of a pointer */
	return dkim_options (lib, DKIM_OP_SETOPT, option, (void *) value, sizeof (char **)) ==
	       DKIM_STAT_OK;
}

static void
library_init (void)
{
	static const char *const none[] = {NULL};
	DKIM_LIB *lib = dkim_init (arena_malloc_cb, arena_free_cb);

	if (lib == NULL) {
		library_problem = g_strdup (_("libopendkim could not start (dkim_init failed)"));
		return;
	}
	if (!dkim_libfeature (lib, DKIM_FEATURE_OVERSIGN)) {
		library_problem = g_strdup (
		    _("this libopendkim cannot over-sign header fields (no DKIM_FEATURE_OVERSIGN)"));
		dkim_close (lib);
		return;
	}
	/* The sign list becomes one regular expression together with the
	 * required fields: set it while From is still required, then require
	 * nothing, so a message without From (it has none to protect) is
	 * still signed, with From over-signed as absent. */
	if (!library_set (lib, DKIM_OPTS_SIGNHDRS, signed_fields) ||
	    !library_set (lib, DKIM_OPTS_OVERSIGNHDRS, oversigned_fields) ||
	    !library_set (lib, DKIM_OPTS_REQUIREDHDRS, none)) {
		library_problem = g_strdup (_("libopendkim refused the header field lists"));
		dkim_close (lib);
		return;
	}
	library = lib;
}

/* The process's one DKIM_LIB, or NULL with the reason. */
static DKIM_LIB *
library_get (GError **error)
{
	static gsize initialized;

	if (g_once_init_enter (&initialized)) {
		library_init ();
		g_once_init_leave (&initialized, 1);
	}
	if (library == NULL)
		g_set_error_literal (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, library_problem);
	return library;
}

gboolean
sc_dkim_ed25519_supported (void)
{
	DKIM_LIB *lib = library_get (NULL);

	return lib != NULL && dkim_libfeature (lib, DKIM_FEATURE_ED25519);
}

/* ---- keys --------------------------------------------------------------- */

static void
secret_free (char *data, gsize length)
{
	if (data != NULL) {
		OPENSSL_cleanse (data, length);
		g_free (data);
	}
}

static void G_GNUC_PRINTF (3, 4)
key_error (GError **error, const char *path, const char *format, ...)
{
	g_autofree char *reason = NULL;
	va_list args;

	va_start (args, format);
	reason = g_strdup_vprintf (format, args);
	va_end (args);
	g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, "%s: %s", path, reason);
}

/* The file's bytes, NUL-terminated; free with secret_free(). */
static char *
key_file_read (const char *path, gsize *out_length, GError **error)
{
	struct stat info;
	char *data;
	gsize done = 0;
	int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int saved = errno;
		key_error (error, path, "%s", g_strerror (saved));
		return NULL;
	}
	if (fstat (fd, &info) != 0) {
		int saved = errno;
		close (fd);
		key_error (error, path, "%s", g_strerror (saved));
		return NULL;
	}
	if (!S_ISREG (info.st_mode)) {
		close (fd);
		key_error (error, path, "%s", _("not a regular file"));
		return NULL;
	}
	if (info.st_size > SC_DKIM_KEY_FILE_MAX) {
		close (fd);
		key_error (error, path, _("larger than %u bytes: not a key file"),
			   (guint) SC_DKIM_KEY_FILE_MAX);
		return NULL;
	}
	data = g_malloc (info.st_size + 1);
	while (done < (gsize) info.st_size) {
		ssize_t got = read (fd, data + done, info.st_size - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int saved = errno;
			close (fd);
			secret_free (data, info.st_size + 1);
			key_error (error, path, "%s", g_strerror (saved));
			return NULL;
		}
		if (got == 0)
			break; /* shrank meanwhile: parse what there is */
		done += got;
	}
	close (fd);
	data[done] = '\0';
	*out_length = done;
	return data;
}

/* OpenSSL's default would ask on the terminal: say no, and remember why. */
static int
passphrase_refuse_cb (char *buffer, int size, int rwflag, void *user_data)
{
	*(gboolean *) user_data = TRUE;
	return -1;
}

/* Parses and checks a key file's bytes. (transfer full) */
static EVP_PKEY *
key_parse (const char *path, const char *data, gsize length, ScDkimKeyInfo *out_info,
	   GError **error)
{
	g_autoptr(BIO) bio = NULL;
	g_autoptr(EVP_PKEY) key = NULL;
	gboolean encrypted = FALSE;
	int id;

	bio = BIO_new_mem_buf (data, (int) length);
	key = PEM_read_bio_PrivateKey (bio, NULL, passphrase_refuse_cb, &encrypted);
	/* the queue is per thread: leave nothing for the next caller to misread */
	ERR_clear_error ();
	if (key == NULL) {
		if (encrypted)
			key_error (error, path, "%s",
				   _("encrypted with a passphrase; stagecoach reads unencrypted keys "
				     "only (keep the file readable by stagecoach alone instead)"));
		else
			key_error (error, path, "%s", _("not a private key in PEM form"));
		return NULL;
	}
	id = EVP_PKEY_get_base_id (key);
	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits (key);
		if (bits < SC_DKIM_RSA_MIN_BITS || bits > SC_DKIM_RSA_MAX_BITS) {
			key_error (error, path,
				   _("an RSA key of %d bits; DKIM keys must have %d to %d (RFC 8301)"),
				   bits, SC_DKIM_RSA_MIN_BITS, SC_DKIM_RSA_MAX_BITS);
			return NULL;
		}
		out_info->type = SC_DKIM_KEY_RSA;
		out_info->bits = bits;
	} else if (id == EVP_PKEY_ED25519) {
		if (!sc_dkim_ed25519_supported ()) {
			key_error (error, path, "%s",
				   _("an Ed25519 key, but this libopendkim cannot sign with Ed25519 "
				     "(RFC 8463): use an RSA key"));
			return NULL;
		}
		out_info->type = SC_DKIM_KEY_ED25519;
		out_info->bits = 256;
	} else {
		const char *name = EVP_PKEY_get0_type_name (key);
		key_error (error, path, _("a key of type %s; DKIM signs with RSA or Ed25519 keys"),
			   name != NULL ? name : "?");
		return NULL;
	}
	return g_steal_pointer (&key);
}

/* @key as unencrypted PKCS#8 PEM on OpenSSL's secure heap (cleansed when
 * freed), NUL-terminated as libopendkim reads it. (transfer full) */
static BIO *
key_pem (EVP_PKEY *key)
{
	g_autoptr(BIO) bio = BIO_new (BIO_s_secmem ());

	if (bio == NULL || !PEM_write_bio_PrivateKey (bio, key, NULL, NULL, 0, NULL, NULL) ||
	    BIO_write (bio, "", 1) != 1) {
		ERR_clear_error ();
		return NULL;
	}
	return g_steal_pointer (&bio);
}

/* A parsed key file, shared read-only between threads. */
typedef struct {
	gint ref_count;
	guint8 digest[EVP_MAX_MD_SIZE]; /* SHA-256 of the file's bytes */
	ScDkimKeyInfo info;
	EVP_PKEY *key;
	BIO *pem;             /* what libopendkim is given */
	const char *pem_data; /* inside pem */
} ScDkimKey;

static ScDkimKey *
key_ref (ScDkimKey *key)
{
	g_atomic_int_inc (&key->ref_count);
	return key;
}

static void
key_unref (ScDkimKey *key)
{
	if (!g_atomic_int_dec_and_test (&key->ref_count))
		return;
	EVP_PKEY_free (key->key);
	BIO_free (key->pem);
	g_free (key);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScDkimKey, key_unref)

/* Key files parsed before, by path.  OpenSSL 3.0 takes ~0.5 ms to decode
 * a key (and libopendkim decodes it again for every message): the file is
 * still read at each use — a new key takes effect at once, a removed one
 * fails at once — but parsed only when its bytes changed. */
static GMutex key_cache_lock;
static GHashTable *key_cache; /* path → ScDkimKey */

/* @path's key, read now, parsed if it changed. (transfer full) */
static ScDkimKey *
key_get (const char *path, GError **error)
{
	gsize length = 0;
	char *data = key_file_read (path, &length, error);
	guint8 digest[EVP_MAX_MD_SIZE];
	unsigned int digest_length = 0;
	g_autoptr(ScDkimKey) key = NULL;
	ScDkimKey *cached;

	if (data == NULL)
		return NULL;
	if (length == 0) {
		secret_free (data, length + 1);
		key_error (error, path, "%s", _("empty"));
		return NULL;
	}
	if (EVP_Digest (data, length, digest, &digest_length, EVP_sha256 (), NULL) != 1) {
		ERR_clear_error ();
		memset (digest, 0, sizeof (digest));
	}
	g_mutex_lock (&key_cache_lock);
	if (key_cache == NULL)
		key_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
						   (GDestroyNotify) key_unref);
	cached = g_hash_table_lookup (key_cache, path);
	if (cached != NULL && digest_length > 0 && memcmp (cached->digest, digest, digest_length) == 0)
		key = key_ref (cached);
	g_mutex_unlock (&key_cache_lock);
	if (key != NULL) {
		secret_free (data, length + 1);
		return g_steal_pointer (&key);
	}

	key = g_new0 (ScDkimKey, 1);
	key->ref_count = 1;
	memcpy (key->digest, digest, sizeof (digest));
	key->key = key_parse (path, data, length, &key->info, error);
	secret_free (data, length + 1);
	if (key->key == NULL)
		return NULL;
	key->pem = key_pem (key->key);
	if (key->pem == NULL || BIO_get_mem_data (key->pem, (char **) &key->pem_data) <= 0) {
		key_error (error, path, "%s", _("the key could not be prepared for libopendkim"));
		return NULL;
	}
	if (digest_length > 0) {
		g_mutex_lock (&key_cache_lock);
		g_hash_table_replace (key_cache, g_strdup (path), key_ref (key));
		g_mutex_unlock (&key_cache_lock);
	}
	return g_steal_pointer (&key);
}

gboolean
sc_dkim_key_load (const char *path, ScDkimKeyInfo *out_info, GError **error)
{
	g_autoptr(ScDkimKey) key = NULL;

	g_return_val_if_fail (path != NULL, FALSE);
	if (library_get (error) == NULL)
		return FALSE;
	key = key_get (path, error);
	if (key == NULL)
		return FALSE;
	if (out_info != NULL)
		*out_info = key->info;
	return TRUE;
}

/* A domain name or selector as DKIM takes it: dot-separated labels of
 * letters, digits, '-' and '_' (RFC 6376 §3.1 and §3.5). */
static gboolean
dns_name_valid (const char *name)
{
	gsize label = 0;
	gsize length = strlen (name);

	if (length == 0 || length > 253)
		return FALSE;
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return FALSE;
			label = 0;
		} else if (g_ascii_isalnum (*p) || *p == '-' || *p == '_') {
			if (++label > 63)
				return FALSE;
		} else {
			return FALSE;
		}
	}
	return label > 0;
}

gboolean
sc_dkim_list_settings_check (const ScListConfig *list, GError **error)
{
	if (list->dkim_domain == NULL || *list->dkim_domain == '\0') {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s: missing, and the list has no %s (nor %s address) to take "
			       "the domain from"),
			     SC_KEY_LIST_DKIM_DOMAIN, SC_KEY_LIST_ADDRESS, SC_KEY_LIST_POST);
		return FALSE;
	}
	if (!dns_name_valid (list->dkim_domain)) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s: “%s” is not a domain name"), SC_KEY_LIST_DKIM_DOMAIN,
			     list->dkim_domain);
		return FALSE;
	}
	if (list->dkim_selector == NULL || *list->dkim_selector == '\0') {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, _("%s: missing"),
			     SC_KEY_LIST_DKIM_SELECTOR);
		return FALSE;
	}
	if (!dns_name_valid (list->dkim_selector)) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
			     _("%s: “%s” is not a selector (letters, digits, '-', '_', dots)"),
			     SC_KEY_LIST_DKIM_SELECTOR, list->dkim_selector);
		return FALSE;
	}
	if (list->dkim_key_file == NULL || *list->dkim_key_file == '\0') {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, _("%s: missing"),
			     SC_KEY_LIST_DKIM_KEY_FILE);
		return FALSE;
	}
	return TRUE;
}

/* The list's key, checked. (transfer full) */
static ScDkimKey *
list_key_get (const ScListConfig *list, GError **error)
{
	ScDkimKey *key;

	if (library_get (error) == NULL || !sc_dkim_list_settings_check (list, error))
		return NULL;
	key = key_get (list->dkim_key_file, error);
	if (key == NULL)
		g_prefix_error (error, "%s ", SC_KEY_LIST_DKIM_KEY_FILE);
	return key;
}

gboolean
sc_dkim_list_check (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error)
{
	g_autoptr(ScDkimKey) key = list_key_get (list, error);

	if (key == NULL)
		return FALSE;
	if (out_info != NULL)
		*out_info = key->info;
	return TRUE;
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
	/* An mbox "From " separator is not part of the message; "From :" and
	 * "From  :" are obsolete-syntax From fields and stay (as decorate). */
	if (length > 5 && memcmp (data, "From ", 5) == 0 && data[5] != ' ' && data[5] != '\t' &&
	    data[5] != ':') {
		const guint8 *newline = memchr (data, '\n', length);
		p = newline != NULL ? newline + 1 : end;
	}
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
	lib = library_get (&error_local);
	if (lib != NULL)
		key = list_key_get (list, &error_local);
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
	arena_init (&arena, key->info.type == SC_DKIM_KEY_ED25519);
	dkim = dkim_sign (lib, (const u_char *) "stagecoach", &arena, (dkim_sigkey_t) key->pem_data,
			  (const u_char *) list->dkim_selector, (const u_char *) list->dkim_domain,
			  DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
			  key->info.type == SC_DKIM_KEY_ED25519 ? DKIM_SIGN_ED25519SHA256
								: DKIM_SIGN_RSASHA256,
			  -1, &status);
	if (dkim == NULL) {
		arena_clear (&arena);
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
		arena_clear (&arena);
		return NULL;
	}
	out = g_byte_array_sized_new (strlen (SIGNATURE_PREFIX) + signature_length + 2 + length);
	g_byte_array_append (out, (const guint8 *) SIGNATURE_PREFIX, strlen (SIGNATURE_PREFIX));
	g_byte_array_append (out, signature, signature_length);
	g_byte_array_append (out, (const guint8 *) "\r\n", 2);
	g_byte_array_append (out, data, length);
	dkim_free (dkim);
	arena_clear (&arena);
	if (out_info != NULL)
		*out_info = key->info;
	return g_byte_array_free_to_bytes (out);
}

GBytes *
sc_dkim_sign (const ScListConfig *list, GBytes *message, GError **error)
{
	return sc_dkim_sign_full (list, message, NULL, NULL, error);
}

/* ---- the DNS record ------------------------------------------------------------ */

char *
sc_dkim_record_name (const ScListConfig *list)
{
	return g_strdup_printf ("%s._domainkey.%s", list->dkim_selector, list->dkim_domain);
}

char *
sc_dkim_txt_record (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error)
{
	g_autoptr(ScDkimKey) key = list_key_get (list, error);
	g_autofree char *encoded = NULL;

	if (key == NULL)
		return NULL;
	if (key->info.type == SC_DKIM_KEY_ED25519) {
		/* RFC 8463 §4.2: the bare 32-byte key, not a SubjectPublicKeyInfo */
		guint8 raw[32];
		size_t raw_length = sizeof (raw);
		if (EVP_PKEY_get_raw_public_key (key->key, raw, &raw_length) != 1 || raw_length != 32) {
			ERR_clear_error ();
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s %s: no Ed25519 public key could be derived"),
				     SC_KEY_LIST_DKIM_KEY_FILE, list->dkim_key_file);
			return NULL;
		}
		encoded = g_base64_encode (raw, raw_length);
	} else {
		unsigned char *der = NULL;
		int der_length = i2d_PUBKEY (key->key, &der);
		if (der_length <= 0) {
			ERR_clear_error ();
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s %s: no RSA public key could be derived"),
				     SC_KEY_LIST_DKIM_KEY_FILE, list->dkim_key_file);
			return NULL;
		}
		encoded = g_base64_encode (der, der_length);
		OPENSSL_free (der);
	}
	if (out_info != NULL)
		*out_info = key->info;
	return g_strdup_printf ("v=DKIM1; k=%s; p=%s",
				key->info.type == SC_DKIM_KEY_ED25519 ? "ed25519" : "rsa", encoded);
}
