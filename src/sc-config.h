/* sc-config.h — the configuration: keys, defaults and the loaded form.
 *
 * Every key stagecoach reads is named here beside its default, as Postfix's
 * mail_params.h does; check-config, the loader and doc/stagecoach.conf.5
 * follow this list.  A loaded ScConfig is immutable and reference counted:
 * SIGHUP loads a new one and swaps it in, while work already claimed keeps
 * the snapshot it started with.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* [stagecoach] */
#define SC_CONFIG_SECTION_MAIN "stagecoach"
#define SC_KEY_SPOOL "spool" /* folder holding spool.db; relative to the config file */
#define SC_DEF_SPOOL "/var/spool/stagecoach"
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
} ScListConfig;

typedef struct {
	char *name;
	char **argv;     /* parsed from command= with shell quoting, no shell run */
	gboolean replace;
	gint64 timeout;  /* µs */
} ScExecConfig;

typedef struct {
	gint ref_count;
	char *path;           /* (nullable) the file read; NULL for built-in defaults */
	char *spool;          /* absolute */
	guint workers;
	gint64 lease;
	gint64 busy_timeout;
	gint64 rescan;
	guint claim_batch;
	guint64 max_message_size;
	char *default_list;   /* (nullable) */
	ScRetryPolicy retry;
	GHashTable *lists;    /* (owned) LIST-ID → ScListConfig* */
	GHashTable *execs;    /* (owned) NAME → ScExecConfig* */
} ScConfig;

/* The file to use: explicit, else $STAGECOACH_CONFIG, else the system
 * default if it exists, else NULL (built-in defaults). (transfer full) */
char *sc_config_find_path (const char *explicit_path);

/* Loads and checks everything, handlers' per-list checks included.  On
 * failure the error (SC_CONFIG_ERROR_INVALID) lists every problem found,
 * one per line, each naming the file, section and key. */
ScConfig *sc_config_load (const char *path, GError **error);
ScConfig *sc_config_ref (ScConfig *config);
void sc_config_unref (ScConfig *config);

const ScListConfig *sc_config_get_list (const ScConfig *config, const char *list_id);
const ScExecConfig *sc_config_get_exec (const ScConfig *config, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScConfig, sc_config_unref)

G_END_DECLS
