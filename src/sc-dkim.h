/* sc-dkim.h — DKIM signing as a list's domain (RFC 6376), with libopendkim.
 *
 * One signer for every caller: the sign stage, `stagecoach dkim-record`,
 * and deliver when it must sign a message per recipient.  Every function
 * here may run on any thread; the key file is read at each use (a rotated
 * key needs no reload) and its contents never reach an error, a note or a
 * log line.
 */
#pragma once

#include <glib.h>

#include "sc-config.h"

G_BEGIN_DECLS

/* RSA keys below this are refused: RFC 8301 asks signers for 2048 bits, and
 * 1024-bit keys are within reach of factoring by well-funded parties. */
#define SC_DKIM_RSA_MIN_BITS 2048
/* … and above this too: RFC 8301 obliges verifiers only up to 4096 bits. */
#define SC_DKIM_RSA_MAX_BITS 4096
/* A key file larger than this is not a key. */
#define SC_DKIM_KEY_FILE_MAX (64 * 1024)

typedef enum {
	SC_DKIM_KEY_RSA,     /* a=rsa-sha256 */
	SC_DKIM_KEY_ED25519, /* a=ed25519-sha256 (RFC 8463) */
} ScDkimKeyType;

typedef struct {
	ScDkimKeyType type;
	guint bits; /* RSA: the modulus; Ed25519: 256 */
} ScDkimKeyInfo;

/* "rsa-sha256" or "ed25519-sha256": the a= tag. */
const char *sc_dkim_algorithm_name (ScDkimKeyType type);

/* Whether the libopendkim this process runs with signs Ed25519 (its
 * DKIM_FEATURE_ED25519; Debian 12's does). */
gboolean sc_dkim_ed25519_supported (void);

/* The header fields signed when present (RFC 6376 §5.4.1's list, plus
 * List-Unsubscribe-Post, Message-ID, MIME-Version and the Content-*
 * fields), and the ones over-signed: named once more in h= than they
 * occur, so that a copy added after signing breaks the signature.
 * NULL-terminated. */
const char *const *sc_dkim_signed_fields (void);
const char *const *sc_dkim_oversigned_fields (void);

/* Reads and checks a private key file: PEM, unencrypted, RSA of
 * SC_DKIM_RSA_MIN_BITS to SC_DKIM_RSA_MAX_BITS or Ed25519 (when
 * supported).  Errors (SC_CONFIG_ERROR_INVALID) name the file, never its
 * contents. */
gboolean sc_dkim_key_load (const char *path, ScDkimKeyInfo *out_info, GError **error);

/* Checks @list's dkim-domain, dkim-selector and dkim-key-file settings
 * (set, well formed) without reading the key.  Errors
 * (SC_CONFIG_ERROR_INVALID) name the key. */
gboolean sc_dkim_list_settings_check (const ScListConfig *list, GError **error);

/* Checks that @list can sign: dkim-domain, dkim-selector and dkim-key-file
 * set and well formed, the key loads.  Errors (SC_CONFIG_ERROR_INVALID)
 * name the key and, for the key file, the file.  @out_info: (optional) */
gboolean sc_dkim_list_check (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error);

/* The message as the list sends it: every line end CRLF (a lone LF or a
 * lone CR becomes CRLF: RFC 5322 allows neither, and verifiers disagree
 * on what a bare CR means), a final CRLF added when missing, a leading
 * mbox "From " line dropped.  The input itself (another reference) when
 * it is in that form already. (transfer full) */
GBytes *sc_dkim_normalize (GBytes *message);

/* Signs @message as @list's dkim-domain with its dkim-selector and key,
 * relaxed/relaxed, and returns the normalized message (see
 * sc_dkim_normalize) with the DKIM-Signature field in front: exactly the
 * bytes to send.  A header block that ends in a line that is neither
 * field nor continuation, with no empty line, gets the empty line before
 * that line (verifiers would otherwise split it each their own way);
 * @out_repair (optional, transfer full) then says so, else is NULL.
 * Signing the same bytes again gives the same signature but for t=.
 * Errors are SC_STAGE_ERROR: TRANSIENT when the key or the list's
 * settings are at fault (an operator can fix them; the error names the
 * file), PERMANENT when the message cannot carry a signature (empty, or
 * no header field on its first line).
 * @out_info: (optional) the key used. (transfer full) */
GBytes *sc_dkim_sign_full (const ScListConfig *list,
			   GBytes *message,
			   ScDkimKeyInfo *out_info,
			   char **out_repair,
			   GError **error);
GBytes *sc_dkim_sign (const ScListConfig *list, GBytes *message, GError **error);

/* "SELECTOR._domainkey.DOMAIN" for @list (no final dot). (transfer full) */
char *sc_dkim_record_name (const ScListConfig *list);
/* The DNS TXT record text that publishes @list's public key, derived from
 * its private key file: "v=DKIM1; k=rsa; p=BASE64(SubjectPublicKeyInfo)"
 * or "v=DKIM1; k=ed25519; p=BASE64(32-byte key)".  Errors as
 * sc_dkim_list_check(). (transfer full) */
char *sc_dkim_txt_record (const ScListConfig *list, ScDkimKeyInfo *out_info, GError **error);

G_END_DECLS
