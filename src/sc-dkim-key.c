/* sc-dkim-key.c — DKIM key files (read with OpenSSL), the list's settings, the DNS record.
 *
 * OpenSSL reads the key file first, for three reasons: to pick the
 * algorithm (rsa-sha256 or ed25519-sha256) from the key itself, to refuse
 * what libopendkim would mishandle (an encrypted key makes OpenSSL's
 * default callback ask for a passphrase on the terminal; a PEM file with
 * anything before the key is taken for DER), and to derive the public key
 * for the DNS record.  libopendkim then gets the key again as clean PKCS#8
 * PEM, from OpenSSL's secure heap.
 *
 * Must never: put key material in an error, a note or a log line; prompt
 * on a terminal.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sc-dkim-private.h"
#include "sc-error.h"
#include "sc-i18n.h"

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


static ScDkimKey *
key_ref (ScDkimKey *key)
{
	g_atomic_int_inc (&key->ref_count);
	return key;
}

void
sc_dkim_key_unref (ScDkimKey *key)
{
	if (!g_atomic_int_dec_and_test (&key->ref_count))
		return;
	EVP_PKEY_free (key->key);
	BIO_free (key->pem);
	g_free (key);
}


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
						   (GDestroyNotify) sc_dkim_key_unref);
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
	if (sc_dkim_library (error) == NULL)
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

ScDkimKey *
sc_dkim_list_key (const ScListConfig *list, GError **error)
{
	ScDkimKey *key;

	if (sc_dkim_library (error) == NULL || !sc_dkim_list_settings_check (list, error))
		return NULL;
	key = key_get (list->dkim_key_file, error);
	if (key == NULL)
		g_prefix_error (error, "%s ", SC_KEY_LIST_DKIM_KEY_FILE);
	return key;
}

gboolean
sc_dkim_list_check (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error)
{
	g_autoptr(ScDkimKey) key = sc_dkim_list_key (list, error);

	if (key == NULL)
		return FALSE;
	if (out_info != NULL)
		*out_info = key->info;
	return TRUE;
}

/* ---- the DNS record ---- */

char *
sc_dkim_record_name (const ScListConfig *list)
{
	return g_strdup_printf ("%s._domainkey.%s", list->dkim_selector, list->dkim_domain);
}

char *
sc_dkim_txt_record (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error)
{
	g_autoptr(ScDkimKey) key = sc_dkim_list_key (list, error);
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
