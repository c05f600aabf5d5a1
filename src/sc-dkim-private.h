/* sc-dkim-private.h — what the parts of the DKIM signer share (sc-dkim*.c).
 *
 * sc-dkim.c signs a message; sc-dkim-key.c reads, checks and caches key
 * files and derives the DNS record; sc-dkim-library.c holds the process's
 * one DKIM_LIB and the allocation arena that works around libopendkim's
 * Ed25519 leak.
 */
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <dkim.h>

#include "sc-dkim.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BIO, BIO_free)

/* sc-dkim-library.c */

typedef struct {
	GHashTable *blocks; /* pointer → size, for the handle's live allocations */
	gboolean ed25519;
	GPtrArray *orphans; /* signature buffers whose owner was freed without them */
} ScDkimArena;

/* Before dkim_sign(): the handle's allocations go through @arena. */
void sc_dkim_arena_init (ScDkimArena *arena, gboolean ed25519);
/* After dkim_free(): frees what libopendkim left. */
void sc_dkim_arena_clear (ScDkimArena *arena);
/* The process's one DKIM_LIB, or NULL with the reason. */
DKIM_LIB *sc_dkim_library (GError **error);

/* sc-dkim-key.c */

/* A parsed key file, shared read-only between threads. */
typedef struct {
	gint ref_count;
	guint8 digest[EVP_MAX_MD_SIZE]; /* SHA-256 of the file's bytes */
	ScDkimKeyInfo info;
	EVP_PKEY *key;
	BIO *pem;             /* what libopendkim is given */
	const char *pem_data; /* inside pem */
} ScDkimKey;

void sc_dkim_key_unref (ScDkimKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScDkimKey, sc_dkim_key_unref)
/* The list's key, its settings checked, read now (parsed only when the
 * file's bytes changed). (transfer full) */
ScDkimKey *sc_dkim_list_key (const ScListConfig *list, GError **error);

G_END_DECLS
