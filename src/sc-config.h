/* sc-config.h — the configuration: keys, defaults and the loaded form.
 *
 * Every key stagecoach reads is named here beside its default, as Postfix's
 * mail_params.h does; check-config, the loader and doc/stagecoach.conf.5
 * follow this list.  A loaded ScConfig is immutable and reference counted:
 * SIGHUP loads a new one and swaps it in, while work already claimed keeps
 * the snapshot it started with.
 */
#pragma once

#include <gio/gio.h>

#include "sc-spool-uri.h"

G_BEGIN_DECLS

/* [stagecoach] */
#define SC_CONFIG_SECTION_MAIN "stagecoach"
#define SC_KEY_SPOOL "spool" /* FOLDER | sqlite:FOLDER | postgresql://… | libpq key=value */
#define SC_DEF_SPOOL "/var/spool/stagecoach"
/* host-local state: the hand-off socket, the generated admin token;
 * default: the spool folder, or SC_DEF_STATE_DIR for a database spool */
#define SC_KEY_STATE_DIR "state-dir"
#define SC_DEF_STATE_DIR SC_SPOOL_URI_DEFAULT_STATE_DIR
#define SC_KEY_WORKERS "workers" /* handler threads */
#define SC_DEF_WORKERS 4
#define SC_KEY_LEASE "lease" /* how long a claim lasts without renewal */
#define SC_DEF_LEASE "5m"
#define SC_KEY_BUSY_TIMEOUT "busy-timeout" /* wait for a locked spool before giving up */
#define SC_DEF_BUSY_TIMEOUT "10s"
#define SC_KEY_MAX_MESSAGE_SIZE "max-message-size"
#define SC_DEF_MAX_MESSAGE_SIZE "100M"
#define SC_KEY_DEFAULT_LIST "default-list" /* for sendmail mode without List-Id */
#define SC_KEY_RESCAN "rescan" /* safety-net rescan; wakeups are hints */
#define SC_DEF_RESCAN "30s"
#define SC_KEY_CLAIM_BATCH "claim-batch" /* messages claimed per spool transaction */
#define SC_DEF_CLAIM_BATCH 64
#define SC_KEY_CLAIM_MEMORY "claim-memory" /* message bytes a runner holds in flight */
#define SC_DEF_CLAIM_MEMORY "256M"
/* DNS for the DMARC lookups of decorate's from-rewrite=dmarc */
#define SC_KEY_DNS_SERVER "dns-server" /* HOST[:PORT], ';'-separated; default: /etc/resolv.conf */
#define SC_KEY_DNS_TIMEOUT "dns-timeout" /* per lookup, all servers and retries together */
#define SC_DEF_DNS_TIMEOUT "5s"
#define SC_KEY_PUBLIC_SUFFIX_LIST "public-suffix-list" /* for DMARC's organizational domain */
#define SC_DEF_PUBLIC_SUFFIX_LIST "/usr/share/publicsuffix/public_suffix_list.dat"

/* [ingress] — the SMTP/LMTP listeners inside `run` (sc-ingress.h) */
#define SC_CONFIG_SECTION_INGRESS "ingress"
#define SC_KEY_INGRESS_SMTP "smtp" /* HOST:PORT; empty: no SMTP listener */
#define SC_KEY_INGRESS_LMTP "lmtp" /* HOST:PORT or an absolute unix socket path; empty: none */
#define SC_KEY_INGRESS_ALLOW "allow" /* client networks (CIDR, ';'-separated) that may send without AUTH */
#define SC_DEF_INGRESS_ALLOW "127.0.0.0/8;::1/128"
#define SC_KEY_INGRESS_HOSTNAME "hostname" /* name in the greeting and EHLO reply; default: host name */
#define SC_KEY_INGRESS_TLS_CERT_FILE "tls-cert-file" /* PEM; with tls-key-file: STARTTLS offered */
#define SC_KEY_INGRESS_TLS_KEY_FILE "tls-key-file"
#define SC_KEY_INGRESS_AUTH_FILE "auth-file" /* lines "USER PASSWORD"; AUTH offered after STARTTLS */
#define SC_KEY_INGRESS_MAX_CONNECTIONS "max-connections" /* more: 421 4.7.0 */
#define SC_DEF_INGRESS_MAX_CONNECTIONS 100
#define SC_KEY_INGRESS_MAX_RECIPIENTS "max-recipients" /* per transaction; more: 452 4.5.3 */
#define SC_DEF_INGRESS_MAX_RECIPIENTS 1000
#define SC_KEY_INGRESS_COMMAND_TIMEOUT "command-timeout" /* waiting for a command (RFC 5321: 5 min) */
#define SC_DEF_INGRESS_COMMAND_TIMEOUT "5m"
#define SC_KEY_INGRESS_DATA_TIMEOUT "data-timeout" /* waiting for the next DATA bytes */
#define SC_DEF_INGRESS_DATA_TIMEOUT "10m"
#define SC_KEY_INGRESS_BARE_NEWLINE "bare-newline" /* normalize | reject (Postfix smtpd_forbid_bare_newline) */
#define SC_DEF_INGRESS_BARE_NEWLINE "normalize"
#define SC_KEY_INGRESS_DEDUPE_WINDOW "dedupe-window" /* a resent (Message-ID, recipient) is not sent again; 0: off */
#define SC_DEF_INGRESS_DEDUPE_WINDOW "24h"

/* [retry] */
#define SC_CONFIG_SECTION_RETRY "retry"
#define SC_KEY_RETRY_INITIAL "initial"
#define SC_DEF_RETRY_INITIAL "30s"
#define SC_KEY_RETRY_FACTOR "factor"
#define SC_DEF_RETRY_FACTOR 2.0
#define SC_KEY_RETRY_MAX_DELAY "max-delay"
#define SC_DEF_RETRY_MAX_DELAY "1h"
#define SC_KEY_RETRY_JITTER "jitter" /* fraction: 0.1 = ±10 % */
#define SC_DEF_RETRY_JITTER 0.1
#define SC_KEY_RETRY_MAX_AGE "max-age"
#define SC_DEF_RETRY_MAX_AGE "5d"
#define SC_KEY_RETRY_MAX_ATTEMPTS "max-attempts" /* 0: only max-age limits */
#define SC_DEF_RETRY_MAX_ATTEMPTS 0

/* [list:LIST-ID] */
#define SC_CONFIG_SECTION_LIST_PREFIX "list:"
#define SC_KEY_LIST_PIPELINE "pipeline"
#define SC_DEF_LIST_PIPELINE "decorate;archive"
#define SC_KEY_LIST_NAME "name" /* $list_name; default: LIST-ID's first label */
#define SC_KEY_LIST_SUBJECT_PREFIX "subject-prefix"
#define SC_KEY_LIST_HEADER "header" /* template file prepended to the text a reader sees */
#define SC_KEY_LIST_FOOTER "footer" /* template file appended to it */
#define SC_KEY_LIST_ARCHIVE "archive" /* maildir:PATH | mbox:PATH | http(s)://URL | empty */
#define SC_KEY_LIST_POST "post" /* List-Post address */
#define SC_KEY_LIST_HELP "help" /* List-Help URL */
#define SC_KEY_LIST_ARCHIVE_URL "archive-url" /* List-Archive URL */
#define SC_KEY_LIST_UNSUBSCRIBE "unsubscribe" /* List-Unsubscribe URLs, ';'-separated */
#define SC_KEY_LIST_UNSUBSCRIBE_POST "unsubscribe-one-click" /* RFC 8058 */
/* https:// template with $recipient: List-Unsubscribe per recipient, one-click (RFC 8058) */
#define SC_KEY_LIST_UNSUBSCRIBE_URL "unsubscribe-url"
/* HMAC-SHA256 key for unsubscribe-url's $token; read per use, never logged */
#define SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE "unsubscribe-secret-file"
#define SC_KEY_LIST_ADDRESS "address" /* the list's own address; default: post when an address */
#define SC_KEY_LIST_FROM_REWRITE "from-rewrite" /* never | always | dmarc */
#define SC_DEF_LIST_FROM_REWRITE "dmarc"
#define SC_KEY_LIST_FROM_ORIGINAL "from-original" /* where a rewritten From's author goes: reply-to | cc */
#define SC_DEF_LIST_FROM_ORIGINAL "reply-to"
#define SC_KEY_LIST_FOOTER_IF_ABSENT "footer-if-absent" /* no second header/footer text */
#define SC_KEY_LIST_DKIM_DOMAIN "dkim-domain" /* d= of the sign stage; default: the address's domain */
#define SC_KEY_LIST_DKIM_SELECTOR "dkim-selector" /* s= */
#define SC_KEY_LIST_DKIM_KEY_FILE "dkim-key-file" /* PEM, RSA or Ed25519; read per use */

#define SC_KEY_LIST_MAILERS "mailers" /* ';'-separated mailer names; default: all, by priority */
#define SC_KEY_LIST_BOUNCES "bounces" /* envelope sender for deliveries */
#define SC_KEY_LIST_VERP "verp" /* bounces=list-bounces@x → list-bounces+rcpt=dom@x per recipient */

/* [deliver] */
#define SC_CONFIG_SECTION_DELIVER "deliver"
#define SC_KEY_DELIVER_CIRCUIT_FAILURES "circuit-failures" /* consecutive failures that open it */
#define SC_DEF_DELIVER_CIRCUIT_FAILURES 3
#define SC_KEY_DELIVER_CIRCUIT_COOLDOWN "circuit-cooldown" /* how long an open mailer is skipped */
#define SC_DEF_DELIVER_CIRCUIT_COOLDOWN "1m"

/* [admin] */
#define SC_CONFIG_SECTION_ADMIN "admin"
#define SC_KEY_ADMIN_LISTEN "listen" /* HOST:PORT; empty: no admin server */
#define SC_DEF_ADMIN_LISTEN "127.0.0.1:8470"
#define SC_KEY_ADMIN_TOKEN_FILE "token-file" /* lines "NAME TOKEN [inject]"; required off loopback */
#define SC_KEY_ADMIN_PUBLIC_URL "public-url" /* base of links in notifications */
#define SC_KEY_ADMIN_ALLOWED_HOSTS "allowed-hosts" /* extra Host names served, ';'-separated */
#define SC_ADMIN_GENERATED_TOKEN_FILE "admin-token" /* in state-dir without token-file */
#define SC_ADMIN_TOKEN_MIN 16 /* characters: shorter tokens are refused */
#define SC_ADMIN_SCOPE_FULL "full"     /* a token file line's optional third field */
#define SC_ADMIN_SCOPE_INJECT "inject" /* may only POST /api/v1/messages */

/* [notify] */
#define SC_CONFIG_SECTION_NOTIFY "notify"
#define SC_KEY_NOTIFY_WEBHOOK "webhook" /* http(s)://URL; empty: notifications stay in the spool */
#define SC_KEY_NOTIFY_SECRET_FILE "secret-file" /* HMAC-SHA256 key for X-Stagecoach-Signature */
#define SC_KEY_NOTIFY_DIGEST_INTERVAL "digest-interval" /* roll notifications up this long */
#define SC_DEF_NOTIFY_DIGEST_INTERVAL "1m"
#define SC_KEY_NOTIFY_DIGEST_THRESHOLD "digest-threshold" /* more pending than this: one digest */
#define SC_DEF_NOTIFY_DIGEST_THRESHOLD 5
#define SC_KEY_NOTIFY_BACKLOG_THRESHOLD "backlog-threshold" /* due messages that raise backlog.high; 0 off */
#define SC_DEF_NOTIFY_BACKLOG_THRESHOLD 10000
#define SC_KEY_NOTIFY_TIMEOUT "timeout"
#define SC_DEF_NOTIFY_TIMEOUT "30s"

/* [mailer:NAME] */
#define SC_CONFIG_SECTION_MAILER_PREFIX "mailer:"
#define SC_KEY_MAILER_URL "url" /* smtp://host:port or smtps://host:port */
#define SC_KEY_MAILER_PRIORITY "priority" /* lower first */
#define SC_DEF_MAILER_PRIORITY 10
#define SC_KEY_MAILER_STARTTLS "starttls" /* required | opportunistic | off */
#define SC_DEF_MAILER_STARTTLS "opportunistic"
#define SC_KEY_MAILER_TLS_VERIFY "tls-verify"
#define SC_KEY_MAILER_USERNAME "username"
#define SC_KEY_MAILER_PASSWORD_FILE "password-file" /* read at each connection, never logged */
#define SC_KEY_MAILER_MAX_RECIPIENTS "max-recipients" /* per transaction */
#define SC_DEF_MAILER_MAX_RECIPIENTS 100
#define SC_KEY_MAILER_MAX_CONNECTIONS "max-connections"
#define SC_DEF_MAILER_MAX_CONNECTIONS 4
#define SC_KEY_MAILER_TIMEOUT "timeout" /* per SMTP command and for connecting */
#define SC_DEF_MAILER_TIMEOUT "60s"
#define SC_KEY_MAILER_HELO "helo" /* name sent in EHLO; default: this host's name */

/* [handler:NAME] for exec:NAME stages */
#define SC_CONFIG_SECTION_HANDLER_PREFIX "handler:"
#define SC_KEY_HANDLER_COMMAND "command"
#define SC_KEY_HANDLER_REPLACE "replace"
#define SC_KEY_HANDLER_TIMEOUT "timeout"
#define SC_DEF_HANDLER_TIMEOUT "5m"

typedef struct {
	gint64 initial;   /* µs */
	double factor;
	gint64 max_delay; /* µs */
	double jitter;
	gint64 max_age;   /* µs, measured from the start of the current cycle */
	guint max_attempts;
} ScRetryPolicy;

typedef enum {
	SC_FROM_REWRITE_NEVER, /* zero, so a list built in code rewrites nothing */
	SC_FROM_REWRITE_ALWAYS,
	SC_FROM_REWRITE_DMARC, /* when the author's domain publishes p=quarantine or p=reject */
} ScFromRewrite;

typedef enum {
	SC_FROM_ORIGINAL_REPLY_TO,
	SC_FROM_ORIGINAL_CC,
} ScFromOriginal;

typedef struct {
	char *id;              /* LIST-ID */
	char **pipeline;       /* stage names, e.g. {"decorate", "exec:spam", "archive"} */
	char *pipeline_text;   /* the same joined with ';' — what a message stores */
	char *name;
	char *subject_prefix;  /* (nullable) */
	char *header_path;     /* (nullable) */
	char *header_template; /* (nullable) the file's text, read at load */
	char *footer_path;     /* (nullable) */
	char *footer_template; /* (nullable) */
	char *archive;         /* (nullable) NULL or "" disables archiving */
	char *post;            /* (nullable) */
	char *help;            /* (nullable) */
	char *archive_url;     /* (nullable) */
	char **unsubscribe;    /* (nullable) */
	gboolean unsubscribe_one_click;
	char *unsubscribe_url; /* (nullable) https:// template; $recipient etc. */
	char *unsubscribe_secret_file; /* (nullable) absolute: $token's HMAC key */
	char *address;         /* (nullable) the list's address: a rewritten From */
	ScFromRewrite from_rewrite;
	ScFromOriginal from_original;
	gboolean footer_if_absent; /* skip a header/footer text the body already has */
	char *dkim_domain;     /* (nullable) */
	char *dkim_selector;   /* (nullable) */
	char *dkim_key_file;   /* (nullable) absolute */
	char **mailers;        /* (nullable) names, in the order to try; NULL: all by priority */
	char *bounces;         /* (nullable) envelope sender; else the message's sender */
	gboolean verp;
} ScListConfig;

typedef enum {
	SC_STARTTLS_OPPORTUNISTIC,
	SC_STARTTLS_REQUIRED,
	SC_STARTTLS_OFF,
} ScStartTls;

typedef struct {
	char *name;
	char *url;            /* smtp:// or smtps:// */
	guint priority;
	ScStartTls starttls;  /* smtps:// is TLS from the first byte whatever this says */
	gboolean tls_verify;
	char *username;       /* (nullable) */
	char *password_file;  /* (nullable) absolute */
	guint max_recipients;
	guint max_connections;
	gint64 timeout;       /* µs */
	char *helo;           /* (nullable) */
} ScMailerConfig;

typedef enum {
	SC_BARE_NEWLINE_NORMALIZE, /* a bare LF ends a line (as CRLF), never DATA */
	SC_BARE_NEWLINE_REJECT,    /* a bare LF or CR in DATA: 550 5.5.2, nothing stored */
} ScBareNewline;

typedef struct {
	char *smtp;                /* (nullable) "127.0.0.1:2525"; NULL: off */
	char *lmtp;                /* (nullable) "HOST:PORT" or "/abs/path"; NULL: off */
	GPtrArray *allow;          /* (owned) (element-type GInetAddressMask) */
	char *hostname;            /* never NULL */
	char *tls_cert_file;       /* (nullable) absolute; set with tls_key_file */
	char *tls_key_file;        /* (nullable) absolute */
	char *auth_file;           /* (nullable) absolute; needs TLS */
	guint max_connections;
	guint max_recipients;
	gint64 command_timeout;    /* µs */
	gint64 data_timeout;       /* µs */
	ScBareNewline bare_newline;
	gint64 dedupe_window;      /* µs; 0: no deduplication */
} ScIngressConfig;

typedef struct {
	char *name;
	char **argv;     /* parsed from command= with shell quoting, no shell run */
	gboolean replace;
	gint64 timeout;  /* µs */
} ScExecConfig;

typedef struct {
	gint ref_count;
	char *path;           /* (nullable) the file read; NULL for built-in defaults */
	/* the backend location: an absolute folder (sqlite: taken off) or,
	 * with libpq, a PostgreSQL URI or connection string as written —
	 * which may hold a password: show it through sc_spool_uri_mask() */
	char *spool;
	ScSpoolUriKind spool_kind; /* SC_SPOOL_URI_FOLDER or SC_SPOOL_URI_POSTGRESQL */
	char *state_dir;      /* absolute; this host's own, never shared */
	guint workers;
	gint64 lease;
	gint64 busy_timeout;
	gint64 rescan;
	guint claim_batch;
	guint64 claim_memory;
	guint64 max_message_size;
	char *default_list;   /* (nullable) */
	char **dns_servers;   /* (nullable) "HOST[:PORT]"; NULL: /etc/resolv.conf */
	gint64 dns_timeout;   /* µs */
	char *public_suffix_list; /* absolute */
	ScRetryPolicy retry;
	GHashTable *lists;    /* (owned) LIST-ID → ScListConfig* */
	GHashTable *execs;    /* (owned) NAME → ScExecConfig* */
	GPtrArray *mailers;   /* (owned) ScMailerConfig*, by priority then name */
	/* (owned) problems that only hurt at run time and that the daemon
	 * survives (a mailer's unreadable password file: that mailer fails
	 * transiently, the others work): `check-config` fails on them, `run`
	 * logs them and starts. */
	GPtrArray *warnings;
	guint circuit_failures;
	gint64 circuit_cooldown;
	char *admin_listen;        /* (nullable) "127.0.0.1:8470"; NULL: off */
	char *admin_token_file;    /* (nullable) absolute */
	char *admin_public_url;    /* (nullable) */
	GStrv admin_allowed_hosts; /* (nullable) extra Host names, lower case */
	char *notify_webhook;      /* (nullable) */
	char *notify_secret_file;  /* (nullable) absolute */
	gint64 notify_digest_interval;
	guint notify_digest_threshold;
	guint notify_backlog_threshold;
	gint64 notify_timeout;
	ScIngressConfig ingress;
} ScConfig;

/* The file to use: explicit, else $STAGECOACH_CONFIG, else the system
 * default if it exists, else NULL (built-in defaults). (transfer full) */
char *sc_config_find_path (const char *explicit_path);

/* Loads and checks everything, handlers' per-list checks included.  On
 * failure the error (SC_CONFIG_ERROR_INVALID) lists every problem found,
 * one per line, each naming the file, section and key. */
ScConfig *sc_config_load (const char *path, GError **error);

/* Why a load failed, so that ingress can tell a file being rewritten or
 * broken elsewhere (try again) from wrong ingress settings. */
typedef struct {
	gboolean unparsed;  /* missing, unreadable or not a key file as a whole */
	GPtrArray *places;  /* (nullable) where the problems are; see _has() */
} ScConfigFailure;

/* sc_config_load(), and on failure fills @out_failure (optional; clear it
 * with sc_config_failure_clear()). */
ScConfig *sc_config_load_full (const char *path, ScConfigFailure *out_failure, GError **error);
void sc_config_failure_clear (ScConfigFailure *failure);
/* Whether a problem was found at [@section] @key (@key NULL: any key, or
 * the section itself). */
gboolean sc_config_failure_has (const ScConfigFailure *failure, const char *section, const char *key);

/* Secret files (password-file, secret-file, token-file, the generated
 * admin token) and spool files (spool.db and its WAL and SHM) that other
 * users can read, and a password written into spool=: one warning each,
 * naming the file, for run and check-config.
 * (transfer full) (element-type utf8) */
GPtrArray *sc_config_check_permissions (const ScConfig *config);

ScConfig *sc_config_ref (ScConfig *config);
void sc_config_unref (ScConfig *config);

const ScListConfig *sc_config_get_list (const ScConfig *config, const char *list_id);
const ScExecConfig *sc_config_get_exec (const ScConfig *config, const char *name);
const ScMailerConfig *sc_config_get_mailer (const ScConfig *config, const char *name);
/* The mailers a list delivers through, in the order to try them.
 * (transfer container) (element-type ScMailerConfig) */
GPtrArray *sc_config_list_mailers (const ScConfig *config, const ScListConfig *list);

/* The admin token file: lines "NAME TOKEN [SCOPE]", '#' comments; SCOPE
 * is SC_ADMIN_SCOPE_FULL (the default: everything) or
 * SC_ADMIN_SCOPE_INJECT (only POST /api/v1/messages).  Returns NAME,
 * TOKEN, SCOPE, NAME, TOKEN, SCOPE, … (SCOPE always filled in)
 * (transfer full); errors name the file and line, never a token:
 * unreadable, a malformed line, an unknown scope, a token shorter than
 * SC_ADMIN_TOKEN_MIN, no token at all. */
GStrv sc_config_read_admin_tokens (const char *path, GError **error);

/* The ingress AUTH file: lines "USER PASSWORD", '#' comments.  Returns
 * USER, PASSWORD, … (transfer full); errors name the file and line,
 * never a password. */
GStrv sc_config_read_ingress_credentials (const char *path, GError **error);

/* Whether @address may use the ingress without AUTH ([ingress] allow). */
gboolean sc_config_ingress_allows (const ScConfig *config, GInetAddress *address);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScConfig, sc_config_unref)

G_END_DECLS
