/* sc-dkim-library.c — the process's one DKIM_LIB, and an arena for libopendkim's allocations.
 *
 * One DKIM_LIB serves the whole process (as the opendkim milter shares
 * one between its threads): it is made once, its options are set before
 * anyone signs and never changed after, and each message gets a DKIM
 * handle of its own, allocating through an arena (below).
 */
#include "config.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "sc-dkim-private.h"
#include "sc-error.h"
#include "sc-i18n.h"

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

void
sc_dkim_arena_init (ScDkimArena *arena, gboolean ed25519)
{
	arena->blocks = g_hash_table_new (NULL, NULL);
	arena->ed25519 = ed25519;
	arena->orphans = g_ptr_array_new ();
}

/* After dkim_free(): the signature buffers it left, and only those (a
 * block libopendkim may have freed by other means is not touched). */
void
sc_dkim_arena_clear (ScDkimArena *arena)
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
	if (!library_set (lib, DKIM_OPTS_SIGNHDRS, sc_dkim_signed_fields ()) ||
	    !library_set (lib, DKIM_OPTS_OVERSIGNHDRS, sc_dkim_oversigned_fields ()) ||
	    !library_set (lib, DKIM_OPTS_REQUIREDHDRS, none)) {
		library_problem = g_strdup (_("libopendkim refused the header field lists"));
		dkim_close (lib);
		return;
	}
	library = lib;
}

/* The process's one DKIM_LIB, or NULL with the reason. */
DKIM_LIB *
sc_dkim_library (GError **error)
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
	DKIM_LIB *lib = sc_dkim_library (NULL);

	return lib != NULL && dkim_libfeature (lib, DKIM_FEATURE_ED25519);
}
