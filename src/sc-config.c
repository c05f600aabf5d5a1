/* sc-config.c — load, check and hold the configuration file.
 *
 * A GKeyFile read once into plain structs.  Every problem is collected, not
 * just the first, so `check-config` can show them all; each names the file,
 * the section and the key.  Unknown sections and keys are errors: a typo in
 * a retry setting must not silently leave the default in force.  Relative
 * paths are resolved against the config file's folder.
 */
#include "config.h"

#include "sc-config.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sc-duration.h"
#include "sc-error.h"
#include "sc-handler.h"
#include "sc-i18n.h"
#include "sc-spool-uri.h"
#include "sc-message-headers.h"

typedef struct {
	const char *path;     /* for messages */
	const char *base_dir; /* for relative paths */
	GKeyFile *keyfile;
	GPtrArray *problems;  /* (element-type utf8) */
	GPtrArray *warnings;  /* (element-type utf8) the config's own */
	GPtrArray *places;    /* (element-type utf8) "SECTION\nKEY" of each problem */
} ScConfigLoader;

static void G_GNUC_PRINTF (4, 5)
    add_problem (ScConfigLoader *loader, const char *section, const char *key, const char *format, ...)
{
	va_list args;
	g_autofree char *reason = NULL;

	va_start (args, format);
	reason = g_strdup_vprintf (format, args);
	va_end (args);
	g_ptr_array_add (loader->places, g_strdup_printf ("%s\n%s", section, key != NULL ? key : ""));
	if (key != NULL)
		g_ptr_array_add (loader->problems,
				 g_strdup_printf ("%s: [%s] %s: %s", loader->path, section, key, reason));
	else
		g_ptr_array_add (loader->problems,
				 g_strdup_printf ("%s: [%s]: %s", loader->path, section, reason));
}

static char *
get_string (ScConfigLoader *loader, const char *section, const char *key, const char *fallback)
{
	g_autofree char *value = NULL;

	if (!g_key_file_has_key (loader->keyfile, section, key, NULL))
		return g_strdup (fallback);
	value = g_key_file_get_string (loader->keyfile, section, key, NULL);
	if (value == NULL) {
		add_problem (loader, section, key, _("not valid UTF-8"));
		return g_strdup (fallback);
	}
	return g_strstrip (g_steal_pointer (&value));
}

static char *
resolve_path (ScConfigLoader *loader, const char *path)
{
	if (path == NULL || *path == '\0')
		return g_strdup (path);
	return g_canonicalize_filename (path, loader->base_dir);
}

static gint64
get_duration (ScConfigLoader *loader, const char *section, const char *key, const char *fallback)
{
	g_autofree char *text = get_string (loader, section, key, fallback);
	g_autoptr(GError) error_local = NULL;
	gint64 value = 0;

	if (!sc_duration_parse (text, &value, &error_local)) {
		add_problem (loader, section, key, "%s", error_local->message);
		(void) sc_duration_parse (fallback, &value, NULL);
	}
	return value;
}

static guint64
get_size (ScConfigLoader *loader, const char *section, const char *key, const char *fallback)
{
	g_autofree char *text = get_string (loader, section, key, fallback);
	g_autoptr(GError) error_local = NULL;
	guint64 value = 0;

	if (!sc_size_parse (text, &value, &error_local)) {
		add_problem (loader, section, key, "%s", error_local->message);
		(void) sc_size_parse (fallback, &value, NULL);
	}
	return value;
}

static guint
get_uint (ScConfigLoader *loader,
	  const char *section,
	  const char *key,
	  guint fallback,
	  guint minimum,
	  guint maximum)
{
	g_autofree char *text = get_string (loader, section, key, NULL);
	guint64 value = 0;

	if (text == NULL)
		return fallback;
	if (!g_ascii_string_to_unsigned (text, 10, minimum, maximum, &value, NULL)) {
		add_problem (loader,
			     section,
			     key,
			     _("“%s” is not a whole number from %u to %u"),
			     text,
			     minimum,
			     maximum);
		return fallback;
	}
	return (guint) value;
}

static double
get_double (ScConfigLoader *loader,
	    const char *section,
	    const char *key,
	    double fallback,
	    double minimum,
	    double maximum)
{
	g_autofree char *text = get_string (loader, section, key, NULL);
	char *end = NULL;
	double value;

	if (text == NULL)
		return fallback;
	value = g_ascii_strtod (text, &end);
	if (end == text || *end != '\0' || !(value >= minimum && value <= maximum)) {
		add_problem (loader,
			     section,
			     key,
			     _("“%s” is not a number from %g to %g"),
			     text,
			     minimum,
			     maximum);
		return fallback;
	}
	return value;
}

static gboolean
get_boolean (ScConfigLoader *loader, const char *section, const char *key, gboolean fallback)
{
	g_autofree char *text = get_string (loader, section, key, NULL);

	if (text == NULL)
		return fallback;
	if (g_ascii_strcasecmp (text, "true") == 0 || g_ascii_strcasecmp (text, "yes") == 0 ||
	    strcmp (text, "1") == 0)
		return TRUE;
	if (g_ascii_strcasecmp (text, "false") == 0 || g_ascii_strcasecmp (text, "no") == 0 ||
	    strcmp (text, "0") == 0)
		return FALSE;
	add_problem (loader, section, key, _("“%s” is not true or false"), text);
	return fallback;
}

/* Keys a section may hold; anything else is reported. */
static void
check_known_keys (ScConfigLoader *loader, const char *section, const char *const *known)
{
	g_auto(GStrv) keys = g_key_file_get_keys (loader->keyfile, section, NULL, NULL);

	for (gsize i = 0; keys != NULL && keys[i] != NULL; i++) {
		if (!g_strv_contains (known, keys[i]))
			add_problem (loader, section, keys[i], _("unknown key"));
	}
}

static char **
split_list (const char *text)
{
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
	g_auto(GStrv) parts = g_strsplit (text != NULL ? text : "", ";", -1);

	for (gsize i = 0; parts[i] != NULL; i++) {
		g_strstrip (parts[i]);
		if (*parts[i] != '\0')
			g_strv_builder_add (builder, parts[i]);
	}
	return g_strv_builder_end (builder);
}

static void
list_config_free (ScListConfig *list)
{
	g_free (list->id);
	g_strfreev (list->pipeline);
	g_free (list->pipeline_text);
	g_free (list->name);
	g_free (list->subject_prefix);
	g_free (list->header_path);
	g_free (list->header_template);
	g_free (list->footer_path);
	g_free (list->footer_template);
	g_free (list->archive);
	g_free (list->post);
	g_free (list->help);
	g_free (list->archive_url);
	g_strfreev (list->unsubscribe);
	g_free (list->unsubscribe_url);
	g_free (list->unsubscribe_secret_file);
	g_free (list->address);
	g_free (list->dkim_domain);
	g_free (list->dkim_selector);
	g_free (list->dkim_key_file);
	g_strfreev (list->mailers);
	g_free (list->bounces);
	g_free (list);
}

static void
exec_config_free (ScExecConfig *exec)
{
	g_free (exec->name);
	g_strfreev (exec->argv);
	g_free (exec);
}

static char *
read_template (ScConfigLoader *loader, const char *section, const char *key, const char *path)
{
	g_autoptr(GError) error_local = NULL;
	g_autofree char *contents = NULL;

	if (!g_file_get_contents (path, &contents, NULL, &error_local)) {
		add_problem (loader, section, key, "%s", error_local->message);
		return NULL;
	}
	if (!g_utf8_validate (contents, -1, NULL)) {
		add_problem (loader, section, key, _("template %s is not valid UTF-8"), path);
		return NULL;
	}
	return g_steal_pointer (&contents);
}

static const char *const main_keys[] = {
    SC_KEY_SPOOL,
    SC_KEY_STATE_DIR,
    SC_KEY_WORKERS,
    SC_KEY_LEASE,
    SC_KEY_BUSY_TIMEOUT,
    SC_KEY_MAX_MESSAGE_SIZE,
    SC_KEY_DEFAULT_LIST,
    SC_KEY_RESCAN,
    SC_KEY_CLAIM_BATCH,
    SC_KEY_CLAIM_MEMORY,
    SC_KEY_DNS_SERVER,
    SC_KEY_DNS_TIMEOUT,
    SC_KEY_PUBLIC_SUFFIX_LIST,
    NULL,
};

static const char *const retry_keys[] = {
    SC_KEY_RETRY_INITIAL,
    SC_KEY_RETRY_FACTOR,
    SC_KEY_RETRY_MAX_DELAY,
    SC_KEY_RETRY_JITTER,
    SC_KEY_RETRY_MAX_AGE,
    SC_KEY_RETRY_MAX_ATTEMPTS,
    NULL,
};

static const char *const list_keys[] = {
    SC_KEY_LIST_PIPELINE,
    SC_KEY_LIST_NAME,
    SC_KEY_LIST_SUBJECT_PREFIX,
    SC_KEY_LIST_HEADER,
    SC_KEY_LIST_FOOTER,
    SC_KEY_LIST_ARCHIVE,
    SC_KEY_LIST_POST,
    SC_KEY_LIST_HELP,
    SC_KEY_LIST_ARCHIVE_URL,
    SC_KEY_LIST_UNSUBSCRIBE,
    SC_KEY_LIST_UNSUBSCRIBE_POST,
    SC_KEY_LIST_UNSUBSCRIBE_URL,
    SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE,
    SC_KEY_LIST_ADDRESS,
    SC_KEY_LIST_FROM_REWRITE,
    SC_KEY_LIST_FROM_ORIGINAL,
    SC_KEY_LIST_FOOTER_IF_ABSENT,
    SC_KEY_LIST_DKIM_DOMAIN,
    SC_KEY_LIST_DKIM_SELECTOR,
    SC_KEY_LIST_DKIM_KEY_FILE,
    SC_KEY_LIST_MAILERS,
    SC_KEY_LIST_BOUNCES,
    SC_KEY_LIST_VERP,
    NULL,
};

static const char *const deliver_keys[] = {
    SC_KEY_DELIVER_CIRCUIT_FAILURES,
    SC_KEY_DELIVER_CIRCUIT_COOLDOWN,
    NULL,
};

static const char *const admin_keys[] = {
    SC_KEY_ADMIN_LISTEN,
    SC_KEY_ADMIN_TOKEN_FILE,
    SC_KEY_ADMIN_PUBLIC_URL,
    SC_KEY_ADMIN_ALLOWED_HOSTS,
    NULL,
};

static const char *const ingress_keys[] = {
    SC_KEY_INGRESS_SMTP,
    SC_KEY_INGRESS_LMTP,
    SC_KEY_INGRESS_ALLOW,
    SC_KEY_INGRESS_HOSTNAME,
    SC_KEY_INGRESS_TLS_CERT_FILE,
    SC_KEY_INGRESS_TLS_KEY_FILE,
    SC_KEY_INGRESS_AUTH_FILE,
    SC_KEY_INGRESS_MAX_CONNECTIONS,
    SC_KEY_INGRESS_MAX_RECIPIENTS,
    SC_KEY_INGRESS_COMMAND_TIMEOUT,
    SC_KEY_INGRESS_DATA_TIMEOUT,
    SC_KEY_INGRESS_BARE_NEWLINE,
    SC_KEY_INGRESS_DEDUPE_WINDOW,
    NULL,
};

static const char *const notify_keys[] = {
    SC_KEY_NOTIFY_WEBHOOK,
    SC_KEY_NOTIFY_SECRET_FILE,
    SC_KEY_NOTIFY_DIGEST_INTERVAL,
    SC_KEY_NOTIFY_DIGEST_THRESHOLD,
    SC_KEY_NOTIFY_BACKLOG_THRESHOLD,
    SC_KEY_NOTIFY_TIMEOUT,
    NULL,
};

static const char *const mailer_keys[] = {
    SC_KEY_MAILER_URL,
    SC_KEY_MAILER_PRIORITY,
    SC_KEY_MAILER_STARTTLS,
    SC_KEY_MAILER_TLS_VERIFY,
    SC_KEY_MAILER_USERNAME,
    SC_KEY_MAILER_PASSWORD_FILE,
    SC_KEY_MAILER_MAX_RECIPIENTS,
    SC_KEY_MAILER_MAX_CONNECTIONS,
    SC_KEY_MAILER_TIMEOUT,
    SC_KEY_MAILER_HELO,
    NULL,
};

static const char *const handler_keys[] = {
    SC_KEY_HANDLER_COMMAND,
    SC_KEY_HANDLER_REPLACE,
    SC_KEY_HANDLER_TIMEOUT,
    NULL,
};

/* The spool names its backend by scheme (sc-spool-uri.c): a folder is
 * resolved like any path; a PostgreSQL URI or connection string is kept
 * as written for libpq (a relative host= socket folder is libpq's to
 * read), and refused by name in a build without libpq rather than taken
 * for a folder called "postgresql:". */
static char *
resolve_spool (ScConfigLoader *loader, const char *section, const char *value, ScSpoolUriKind *out_kind)
{
	const char *folder = value;

	*out_kind = sc_spool_uri_parse (value, &folder);
	switch (*out_kind) {
	case SC_SPOOL_URI_FOLDER:
		break;
	case SC_SPOOL_URI_POSTGRESQL:
#ifdef HAVE_LIBPQ
		return g_strdup (value);
#else
		add_problem (loader, section, SC_KEY_SPOOL,
			     _("a PostgreSQL spool needs stagecoach built with libpq; this build has "
			       "only the SQLite spool: use a folder or sqlite:FOLDER"));
		*out_kind = SC_SPOOL_URI_FOLDER;
		folder = SC_DEF_SPOOL;
		break;
#endif
	case SC_SPOOL_URI_UNKNOWN:
		add_problem (loader, section, SC_KEY_SPOOL,
			     _("unknown spool backend (known: sqlite:FOLDER or a folder, "
			       "postgresql://… or a libpq key=value string)"));
		*out_kind = SC_SPOOL_URI_FOLDER;
		folder = SC_DEF_SPOOL;
		break;
	}
	if (*folder == '\0') {
		add_problem (loader, section, SC_KEY_SPOOL, _("must not be empty"));
		folder = SC_DEF_SPOOL;
	}
	return resolve_path (loader, folder);
}

/* Host-local state goes beside a folder spool, as before state-dir=
 * existed; a database spool is shared by hosts, so each has its own. */
static char *
resolve_state_dir (ScConfigLoader *loader, const char *section, const ScConfig *config)
{
	g_autofree char *value = get_string (loader, section, SC_KEY_STATE_DIR, NULL);

	if (value != NULL && *value == '\0') {
		add_problem (loader, section, SC_KEY_STATE_DIR, _("must not be empty"));
		g_clear_pointer (&value, g_free);
	}
	if (value != NULL)
		return resolve_path (loader, value);
	if (config->spool_kind == SC_SPOOL_URI_FOLDER)
		return g_strdup (config->spool);
	return g_strdup (SC_DEF_STATE_DIR);
}

/* dns-server= takes addresses, not names: the resolver must not need
 * itself to be found. */
static void
load_dns (ScConfigLoader *loader, const char *section, ScConfig *config)
{
	g_autofree char *servers = get_string (loader, section, SC_KEY_DNS_SERVER, NULL);
	g_autofree char *suffixes =
	    get_string (loader, section, SC_KEY_PUBLIC_SUFFIX_LIST, SC_DEF_PUBLIC_SUFFIX_LIST);

	if (servers != NULL && *servers != '\0') {
		config->dns_servers = split_list (servers);
		for (gsize i = 0; config->dns_servers[i] != NULL; i++) {
			g_autoptr(GSocketConnectable) parsed =
			    g_network_address_parse (config->dns_servers[i], 53, NULL);
			const char *host = parsed != NULL
					       ? g_network_address_get_hostname (G_NETWORK_ADDRESS (parsed))
					       : NULL;
			if (host == NULL || !g_hostname_is_ip_address (host))
				add_problem (loader,
					     section,
					     SC_KEY_DNS_SERVER,
					     _("“%s” is not an IP address with an optional port"),
					     config->dns_servers[i]);
		}
	}
	config->dns_timeout = get_duration (loader, section, SC_KEY_DNS_TIMEOUT, SC_DEF_DNS_TIMEOUT);
	if (config->dns_timeout < G_USEC_PER_SEC / 10) {
		add_problem (loader, section, SC_KEY_DNS_TIMEOUT, _("must be at least 100ms"));
		(void) sc_duration_parse (SC_DEF_DNS_TIMEOUT, &config->dns_timeout, NULL);
	}
	config->public_suffix_list = resolve_path (loader, suffixes);
}

static void
load_main (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_MAIN;
	g_autofree char *spool = get_string (loader, section, SC_KEY_SPOOL, SC_DEF_SPOOL);

	check_known_keys (loader, section, main_keys);
	config->spool = resolve_spool (loader, section, spool, &config->spool_kind);
	config->state_dir = resolve_state_dir (loader, section, config);
	config->workers = get_uint (loader, section, SC_KEY_WORKERS, SC_DEF_WORKERS, 1, 256);
	config->lease = get_duration (loader, section, SC_KEY_LEASE, SC_DEF_LEASE);
	if (config->lease < 5 * G_USEC_PER_SEC) {
		add_problem (loader, section, SC_KEY_LEASE, _("must be at least 5s"));
		(void) sc_duration_parse (SC_DEF_LEASE, &config->lease, NULL);
	}
	config->busy_timeout = get_duration (loader, section, SC_KEY_BUSY_TIMEOUT, SC_DEF_BUSY_TIMEOUT);
	config->rescan = get_duration (loader, section, SC_KEY_RESCAN, SC_DEF_RESCAN);
	if (config->rescan < G_USEC_PER_SEC) {
		add_problem (loader, section, SC_KEY_RESCAN, _("must be at least 1s"));
		(void) sc_duration_parse (SC_DEF_RESCAN, &config->rescan, NULL);
	}
	config->claim_batch =
	    get_uint (loader, section, SC_KEY_CLAIM_BATCH, SC_DEF_CLAIM_BATCH, 1, 10000);
	config->claim_memory = get_size (loader, section, SC_KEY_CLAIM_MEMORY, SC_DEF_CLAIM_MEMORY);
	config->max_message_size =
	    get_size (loader, section, SC_KEY_MAX_MESSAGE_SIZE, SC_DEF_MAX_MESSAGE_SIZE);
	config->default_list = get_string (loader, section, SC_KEY_DEFAULT_LIST, NULL);
	load_dns (loader, section, config);
}

static void
load_retry (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_RETRY;
	ScRetryPolicy *retry = &config->retry;

	check_known_keys (loader, section, retry_keys);
	retry->initial = get_duration (loader, section, SC_KEY_RETRY_INITIAL, SC_DEF_RETRY_INITIAL);
	retry->factor =
	    get_double (loader, section, SC_KEY_RETRY_FACTOR, SC_DEF_RETRY_FACTOR, 1.0, 100.0);
	retry->max_delay =
	    get_duration (loader, section, SC_KEY_RETRY_MAX_DELAY, SC_DEF_RETRY_MAX_DELAY);
	retry->jitter =
	    get_double (loader, section, SC_KEY_RETRY_JITTER, SC_DEF_RETRY_JITTER, 0.0, 1.0);
	retry->max_age = get_duration (loader, section, SC_KEY_RETRY_MAX_AGE, SC_DEF_RETRY_MAX_AGE);
	retry->max_attempts = get_uint (loader,
					section,
					SC_KEY_RETRY_MAX_ATTEMPTS,
					SC_DEF_RETRY_MAX_ATTEMPTS,
					0,
					G_MAXINT);
	if (retry->initial < G_USEC_PER_SEC) {
		/* 0s would retry in a tight loop until max-age */
		add_problem (loader, section, SC_KEY_RETRY_INITIAL, _("must be at least 1s"));
		(void) sc_duration_parse (SC_DEF_RETRY_INITIAL, &retry->initial, NULL);
	}
	if (retry->max_delay < retry->initial)
		add_problem (loader,
			     section,
			     SC_KEY_RETRY_MAX_DELAY,
			     _("must not be shorter than %s"),
			     SC_KEY_RETRY_INITIAL);
}

/* The list's own address: address=, else post= when it names a mailbox
 * (a bare address or a mailto: URI without query). */
static char *
list_address (ScConfigLoader *loader, const char *section, const ScListConfig *list)
{
	g_autofree char *address = get_string (loader, section, SC_KEY_LIST_ADDRESS, NULL);
	g_autoptr(GError) error_local = NULL;
	const char *post = list->post;

	if (address != NULL && *address != '\0') {
		if (!sc_address_validate (address, FALSE, &error_local)) {
			add_problem (loader, section, SC_KEY_LIST_ADDRESS, "%s", error_local->message);
			return NULL;
		}
		return g_steal_pointer (&address);
	}
	if (post == NULL)
		return NULL;
	if (g_ascii_strncasecmp (post, "mailto:", 7) == 0)
		post += 7;
	if (strchr (post, '?') != NULL || !sc_address_validate (post, FALSE, NULL))
		return NULL;
	return g_strdup (post);
}

/* Issue 11's keys: DMARC-safe From, footers once, DKIM, one-click. */
static void
load_list_deliverability (ScConfigLoader *loader, const char *section, ScListConfig *list)
{
	g_autofree char *rewrite = NULL;
	g_autofree char *original =
	    get_string (loader, section, SC_KEY_LIST_FROM_ORIGINAL, SC_DEF_LIST_FROM_ORIGINAL);
	g_autofree char *key_file = get_string (loader, section, SC_KEY_LIST_DKIM_KEY_FILE, NULL);
	gboolean rewrite_set = g_key_file_has_key (loader->keyfile, section,
						   SC_KEY_LIST_FROM_REWRITE, NULL);

	list->address = list_address (loader, section, list);
	rewrite = get_string (loader, section, SC_KEY_LIST_FROM_REWRITE, SC_DEF_LIST_FROM_REWRITE);
	if (strcmp (rewrite, "never") == 0)
		list->from_rewrite = SC_FROM_REWRITE_NEVER;
	else if (strcmp (rewrite, "always") == 0)
		list->from_rewrite = SC_FROM_REWRITE_ALWAYS;
	else if (strcmp (rewrite, "dmarc") == 0)
		list->from_rewrite = SC_FROM_REWRITE_DMARC;
	else
		add_problem (loader, section, SC_KEY_LIST_FROM_REWRITE,
			     _("“%s” is not never, always or dmarc"), rewrite);
	/* A From can only be rewritten to the list's address: the default
	 * (dmarc) quietly means never for a list without one; asking for it
	 * in so many words without one is an error. */
	if (list->address == NULL && list->from_rewrite != SC_FROM_REWRITE_NEVER) {
		if (rewrite_set)
			add_problem (loader, section, SC_KEY_LIST_FROM_REWRITE,
				     _("needs the list's address in %s or %s"),
				     SC_KEY_LIST_ADDRESS, SC_KEY_LIST_POST);
		list->from_rewrite = SC_FROM_REWRITE_NEVER;
	}
	if (strcmp (original, "reply-to") == 0)
		list->from_original = SC_FROM_ORIGINAL_REPLY_TO;
	else if (strcmp (original, "cc") == 0)
		list->from_original = SC_FROM_ORIGINAL_CC;
	else
		add_problem (loader, section, SC_KEY_LIST_FROM_ORIGINAL,
			     _("“%s” is not reply-to or cc"), original);
	list->footer_if_absent = get_boolean (loader, section, SC_KEY_LIST_FOOTER_IF_ABSENT, TRUE);
	list->unsubscribe_url = get_string (loader, section, SC_KEY_LIST_UNSUBSCRIBE_URL, NULL);
	if (list->unsubscribe_url != NULL && *list->unsubscribe_url == '\0')
		g_clear_pointer (&list->unsubscribe_url, g_free);
	if (list->unsubscribe_url != NULL &&
	    g_ascii_strncasecmp (list->unsubscribe_url, "https://", 8) != 0)
		add_problem (loader, section, SC_KEY_LIST_UNSUBSCRIBE_URL,
			     _("must be an https:// URL (RFC 8058)"));
	{
		g_autofree char *secret =
		    get_string (loader, section, SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE, NULL);

		if (secret != NULL && *secret != '\0') {
			list->unsubscribe_secret_file = resolve_path (loader, secret);
			/* read at each use: checked here so check-config tells */
			if (g_access (list->unsubscribe_secret_file, R_OK) != 0)
				g_ptr_array_add (loader->warnings,
						 g_strdup_printf ("%s: [%s] %s: %s", loader->path, section,
								  SC_KEY_LIST_UNSUBSCRIBE_SECRET_FILE,
								  g_strerror (errno)));
		}
	}
	list->dkim_selector = get_string (loader, section, SC_KEY_LIST_DKIM_SELECTOR, NULL);
	list->dkim_domain = get_string (loader, section, SC_KEY_LIST_DKIM_DOMAIN, NULL);
	if (list->dkim_domain == NULL && list->address != NULL)
		list->dkim_domain = g_strdup (strrchr (list->address, '@') + 1);
	if (key_file != NULL && *key_file != '\0')
		list->dkim_key_file = resolve_path (loader, key_file);
}

static ScListConfig *
load_list (ScConfigLoader *loader, const char *section, const char *list_id)
{
	ScListConfig *list = g_new0 (ScListConfig, 1);
	g_autofree char *pipeline = NULL;
	g_autofree char *unsubscribe = NULL;
	g_autofree char *archive = NULL;

	check_known_keys (loader, section, list_keys);
	list->id = g_strdup (list_id);
	if (*list_id == '\0' || strchr (list_id, ' ') != NULL || strchr (list_id, '<') != NULL ||
	    strchr (list_id, '>') != NULL)
		add_problem (loader, section, NULL, _("“%s” is not a valid list id"), list_id);
	pipeline = get_string (loader, section, SC_KEY_LIST_PIPELINE, SC_DEF_LIST_PIPELINE);
	list->pipeline = split_list (pipeline);
	list->pipeline_text = g_strjoinv (";", list->pipeline);
	if (list->pipeline[0] == NULL)
		add_problem (loader, section, SC_KEY_LIST_PIPELINE, _("names no stage"));
	for (gsize i = 0; list->pipeline[i] != NULL; i++) {
		for (gsize j = 0; j < i; j++) {
			if (strcmp (list->pipeline[i], list->pipeline[j]) == 0)
				add_problem (loader,
					     section,
					     SC_KEY_LIST_PIPELINE,
					     _("stage “%s” appears twice"),
					     list->pipeline[i]);
		}
	}
	list->name = get_string (loader, section, SC_KEY_LIST_NAME, NULL);
	if (list->name == NULL) {
		const char *dot = strchr (list_id, '.');
		list->name = dot != NULL ? g_strndup (list_id, dot - list_id) : g_strdup (list_id);
	}
	list->subject_prefix = get_string (loader, section, SC_KEY_LIST_SUBJECT_PREFIX, NULL);
	list->header_path = get_string (loader, section, SC_KEY_LIST_HEADER, NULL);
	list->footer_path = get_string (loader, section, SC_KEY_LIST_FOOTER, NULL);
	if (list->header_path != NULL && *list->header_path != '\0') {
		char *resolved = resolve_path (loader, list->header_path);
		g_free (list->header_path);
		list->header_path = resolved;
		list->header_template =
		    read_template (loader, section, SC_KEY_LIST_HEADER, list->header_path);
	}
	if (list->footer_path != NULL && *list->footer_path != '\0') {
		char *resolved = resolve_path (loader, list->footer_path);
		g_free (list->footer_path);
		list->footer_path = resolved;
		list->footer_template =
		    read_template (loader, section, SC_KEY_LIST_FOOTER, list->footer_path);
	}
	archive = get_string (loader, section, SC_KEY_LIST_ARCHIVE, NULL);
	if (archive != NULL && (g_str_has_prefix (archive, "maildir:") ||
				g_str_has_prefix (archive, "mbox:"))) {
		const char *colon = strchr (archive, ':');
		g_autofree char *scheme = g_strndup (archive, colon - archive);
		g_autofree char *path = resolve_path (loader, colon + 1);
		list->archive = g_strdup_printf ("%s:%s", scheme, path);
	} else {
		list->archive = g_steal_pointer (&archive);
	}
	list->post = get_string (loader, section, SC_KEY_LIST_POST, NULL);
	list->help = get_string (loader, section, SC_KEY_LIST_HELP, NULL);
	list->archive_url = get_string (loader, section, SC_KEY_LIST_ARCHIVE_URL, NULL);
	unsubscribe = get_string (loader, section, SC_KEY_LIST_UNSUBSCRIBE, NULL);
	if (unsubscribe != NULL)
		list->unsubscribe = split_list (unsubscribe);
	list->unsubscribe_one_click =
	    get_boolean (loader, section, SC_KEY_LIST_UNSUBSCRIBE_POST, FALSE);
	{
		g_autofree char *mailers = get_string (loader, section, SC_KEY_LIST_MAILERS, NULL);
		if (mailers != NULL)
			list->mailers = split_list (mailers);
	}
	list->bounces = get_string (loader, section, SC_KEY_LIST_BOUNCES, NULL);
	if (list->bounces != NULL && *list->bounces != '\0') {
		g_autoptr(GError) error_local = NULL;
		if (!sc_address_validate (list->bounces, FALSE, &error_local))
			add_problem (loader, section, SC_KEY_LIST_BOUNCES, "%s", error_local->message);
	}
	list->verp = get_boolean (loader, section, SC_KEY_LIST_VERP, FALSE);
	if (list->verp && (list->bounces == NULL || *list->bounces == '\0'))
		add_problem (loader, section, SC_KEY_LIST_VERP, _("needs %s"), SC_KEY_LIST_BOUNCES);
	load_list_deliverability (loader, section, list);
	return list;
}

static void
mailer_config_free (ScMailerConfig *mailer)
{
	g_free (mailer->name);
	g_free (mailer->url);
	g_free (mailer->username);
	g_free (mailer->password_file);
	g_free (mailer->helo);
	g_free (mailer);
}

static ScMailerConfig *
load_mailer (ScConfigLoader *loader, const char *section, const char *name)
{
	ScMailerConfig *mailer = g_new0 (ScMailerConfig, 1);
	g_autofree char *starttls = NULL;
	g_autofree char *password_file = NULL;

	check_known_keys (loader, section, mailer_keys);
	mailer->name = g_strdup (name);
	if (*name == '\0' || strchr (name, ';') != NULL || strchr (name, ' ') != NULL)
		add_problem (loader, section, NULL, _("“%s” is not a valid mailer name"), name);
	mailer->url = get_string (loader, section, SC_KEY_MAILER_URL, NULL);
	if (mailer->url == NULL || *mailer->url == '\0') {
		add_problem (loader, section, SC_KEY_MAILER_URL, _("missing"));
	} else {
		g_autoptr(GUri) uri = g_uri_parse (mailer->url, G_URI_FLAGS_NONE, NULL);
		if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "smtp") != 0 &&
				    g_strcmp0 (g_uri_get_scheme (uri), "smtps") != 0) ||
		    g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
			add_problem (loader, section, SC_KEY_MAILER_URL,
				     _("“%s” is not smtp://HOST[:PORT] or smtps://HOST[:PORT]"), mailer->url);
		else if (g_uri_get_user (uri) != NULL || g_uri_get_password (uri) != NULL)
			add_problem (loader, section, SC_KEY_MAILER_URL,
				     _("must not hold credentials: use %s and %s"),
				     SC_KEY_MAILER_USERNAME, SC_KEY_MAILER_PASSWORD_FILE);
	}
	mailer->priority = get_uint (loader, section, SC_KEY_MAILER_PRIORITY, SC_DEF_MAILER_PRIORITY, 0, 1000000);
	starttls = get_string (loader, section, SC_KEY_MAILER_STARTTLS, SC_DEF_MAILER_STARTTLS);
	if (strcmp (starttls, "opportunistic") == 0)
		mailer->starttls = SC_STARTTLS_OPPORTUNISTIC;
	else if (strcmp (starttls, "required") == 0)
		mailer->starttls = SC_STARTTLS_REQUIRED;
	else if (strcmp (starttls, "off") == 0)
		mailer->starttls = SC_STARTTLS_OFF;
	else
		add_problem (loader, section, SC_KEY_MAILER_STARTTLS,
			     _("“%s” is not required, opportunistic or off"), starttls);
	mailer->tls_verify = get_boolean (loader, section, SC_KEY_MAILER_TLS_VERIFY, TRUE);
	mailer->username = get_string (loader, section, SC_KEY_MAILER_USERNAME, NULL);
	password_file = get_string (loader, section, SC_KEY_MAILER_PASSWORD_FILE, NULL);
	if (password_file != NULL && *password_file != '\0') {
		mailer->password_file = resolve_path (loader, password_file);
		/* checked here, read at each connection: a rotated secret needs no reload */
		if (g_access (mailer->password_file, R_OK) != 0)
			g_ptr_array_add (loader->warnings,
					 g_strdup_printf ("%s: [%s] %s: %s", loader->path, section,
							  SC_KEY_MAILER_PASSWORD_FILE,
							  g_strerror (errno)));
	}
	if (mailer->username != NULL && mailer->password_file == NULL)
		add_problem (loader, section, SC_KEY_MAILER_PASSWORD_FILE,
			     _("needed with %s"), SC_KEY_MAILER_USERNAME);
	/* no AUTH without a name: the file is never read (and such a plain
	 * mailer gets the pipelined client, which has no password at all) */
	if (mailer->username == NULL && mailer->password_file != NULL)
		g_ptr_array_add (loader->warnings,
				 g_strdup_printf (_("%s: [%s] %s: not used without %s"), loader->path, section,
						  SC_KEY_MAILER_PASSWORD_FILE, SC_KEY_MAILER_USERNAME));
	mailer->max_recipients = get_uint (loader, section, SC_KEY_MAILER_MAX_RECIPIENTS,
					   SC_DEF_MAILER_MAX_RECIPIENTS, 1, 100000);
	mailer->max_connections = get_uint (loader, section, SC_KEY_MAILER_MAX_CONNECTIONS,
					    SC_DEF_MAILER_MAX_CONNECTIONS, 1, 1000);
	mailer->timeout = get_duration (loader, section, SC_KEY_MAILER_TIMEOUT, SC_DEF_MAILER_TIMEOUT);
	if (mailer->timeout < G_USEC_PER_SEC) {
		add_problem (loader, section, SC_KEY_MAILER_TIMEOUT, _("must be at least 1s"));
		(void) sc_duration_parse (SC_DEF_MAILER_TIMEOUT, &mailer->timeout, NULL);
	}
	mailer->helo = get_string (loader, section, SC_KEY_MAILER_HELO, NULL);
	return mailer;
}

static int
compare_mailers (gconstpointer a, gconstpointer b)
{
	const ScMailerConfig *mailer_a = *(const ScMailerConfig *const *) a;
	const ScMailerConfig *mailer_b = *(const ScMailerConfig *const *) b;

	if (mailer_a->priority != mailer_b->priority)
		return mailer_a->priority < mailer_b->priority ? -1 : 1;
	return strcmp (mailer_a->name, mailer_b->name);
}

static ScExecConfig *
load_exec (ScConfigLoader *loader, const char *section, const char *name)
{
	ScExecConfig *exec = g_new0 (ScExecConfig, 1);
	g_autofree char *command = NULL;
	g_autoptr(GError) error_local = NULL;

	check_known_keys (loader, section, handler_keys);
	exec->name = g_strdup (name);
	command = get_string (loader, section, SC_KEY_HANDLER_COMMAND, NULL);
	if (command == NULL || *command == '\0') {
		add_problem (loader, section, SC_KEY_HANDLER_COMMAND, _("missing"));
	} else if (!g_shell_parse_argv (command, NULL, &exec->argv, &error_local)) {
		add_problem (loader, section, SC_KEY_HANDLER_COMMAND, "%s", error_local->message);
	} else if (!g_path_is_absolute (exec->argv[0]) && strchr (exec->argv[0], '/') != NULL) {
		char *resolved = resolve_path (loader, exec->argv[0]);
		g_free (exec->argv[0]);
		exec->argv[0] = resolved;
	}
	exec->replace = get_boolean (loader, section, SC_KEY_HANDLER_REPLACE, FALSE);
	exec->timeout =
	    get_duration (loader, section, SC_KEY_HANDLER_TIMEOUT, SC_DEF_HANDLER_TIMEOUT);
	return exec;
}

static void
load_deliver (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_DELIVER;

	check_known_keys (loader, section, deliver_keys);
	config->circuit_failures = get_uint (loader, section, SC_KEY_DELIVER_CIRCUIT_FAILURES,
					     SC_DEF_DELIVER_CIRCUIT_FAILURES, 1, 1000);
	config->circuit_cooldown = get_duration (loader, section, SC_KEY_DELIVER_CIRCUIT_COOLDOWN,
						 SC_DEF_DELIVER_CIRCUIT_COOLDOWN);
}

static gboolean
host_is_loopback (const char *host)
{
	g_autoptr(GInetAddress) address = g_inet_address_new_from_string (host);
	if (address != NULL)
		return g_inet_address_get_is_loopback (address);
	return g_ascii_strcasecmp (host, "localhost") == 0;
}

GStrv
sc_config_read_admin_tokens (const char *path, GError **error)
{
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GStrvBuilder) triples = g_strv_builder_new ();
	guint count = 0;

	if (!g_file_get_contents (path, &contents, NULL, error))
		return NULL;
	lines = g_strsplit (contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) fields = NULL;
		char *line = g_strstrip (lines[i]);
		const char *token;
		const char *scope = SC_ADMIN_SCOPE_FULL;
		guint n = 0;

		if (*line == '\0' || *line == '#')
			continue;
		/* NAME TOKEN [SCOPE], separated by runs of blanks */
		fields = g_strsplit_set (line, " \t", -1);
		for (guint f = 0; fields[f] != NULL; f++) {
			if (*fields[f] != '\0')
				fields[n++] = fields[f];
			else
				g_free (fields[f]);
		}
		fields[n] = NULL;
		token = n >= 2 ? fields[1] : NULL;
		if (token == NULL || n > 3) {
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s line %u: expected “NAME TOKEN” or “NAME TOKEN inject”"), path, i + 1);
			return NULL;
		}
		if (n == 3) {
			if (strcmp (fields[2], SC_ADMIN_SCOPE_INJECT) != 0 &&
			    strcmp (fields[2], SC_ADMIN_SCOPE_FULL) != 0) {
				g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
					     _("%s line %u: unknown scope “%s” for %s (known: %s, %s)"), path,
					     i + 1, fields[2], fields[0], SC_ADMIN_SCOPE_FULL, SC_ADMIN_SCOPE_INJECT);
				return NULL;
			}
			scope = fields[2];
		}
		/* a public listener answers as fast as it can be asked */
		if (g_utf8_strlen (token, -1) < SC_ADMIN_TOKEN_MIN) {
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s line %u: the token of %s is too short (at least %d characters)"),
				     path, i + 1, fields[0], SC_ADMIN_TOKEN_MIN);
			return NULL;
		}
		g_strv_builder_add (triples, fields[0]);
		g_strv_builder_add (triples, token);
		g_strv_builder_add (triples, scope);
		count++;
	}
	if (count == 0) {
		g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, _("%s holds no token"), path);
		return NULL;
	}
	return g_strv_builder_end (triples);
}

/* HOST:PORT (a bracketed IPv6 host too); *@out_host is the bare host. */
static gboolean
split_host_port (const char *text, char **out_host, guint16 *out_port)
{
	const char *colon = strrchr (text, ':');
	guint64 port = 0;
	g_autofree char *host = colon != NULL ? g_strndup (text, colon - text) : NULL;

	if (host != NULL && host[0] == '[' && g_str_has_suffix (host, "]")) {
		char *bare = g_strndup (host + 1, strlen (host) - 2);
		g_free (host);
		host = bare;
	}
	if (colon == NULL || *host == '\0' ||
	    !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
		return FALSE;
	*out_host = g_steal_pointer (&host);
	*out_port = (guint16) port;
	return TRUE;
}

static void
load_admin (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_ADMIN;
	g_autofree char *listen = NULL;
	g_autofree char *token_file = NULL;

	check_known_keys (loader, section, admin_keys);
	listen = get_string (loader, section, SC_KEY_ADMIN_LISTEN, SC_DEF_ADMIN_LISTEN);
	token_file = get_string (loader, section, SC_KEY_ADMIN_TOKEN_FILE, NULL);
	if (token_file != NULL && *token_file != '\0') {
		config->admin_token_file = resolve_path (loader, token_file);
		if (g_access (config->admin_token_file, R_OK) != 0) {
			add_problem (loader, section, SC_KEY_ADMIN_TOKEN_FILE, _("cannot read %s: %s"),
				     config->admin_token_file, g_strerror (errno));
		} else {
			g_autoptr(GError) error_local = NULL;
			g_auto(GStrv) tokens = sc_config_read_admin_tokens (config->admin_token_file, &error_local);
			if (tokens == NULL)
				add_problem (loader, section, SC_KEY_ADMIN_TOKEN_FILE, "%s", error_local->message);
		}
	}
	if (*listen != '\0') {
		g_autofree char *host = NULL;
		guint16 port = 0;
		if (!split_host_port (listen, &host, &port)) {
			add_problem (loader, section, SC_KEY_ADMIN_LISTEN,
				     _("“%s” is not HOST:PORT"), listen);
		} else if (!host_is_loopback (host) && config->admin_token_file == NULL) {
			/* anyone who can reach it could retry and delete mail */
			add_problem (loader, section, SC_KEY_ADMIN_LISTEN,
				     _("%s is not a loopback address: set %s"), host, SC_KEY_ADMIN_TOKEN_FILE);
		}
		config->admin_listen = g_steal_pointer (&listen);
	}
	config->admin_public_url = get_string (loader, section, SC_KEY_ADMIN_PUBLIC_URL, NULL);
	{
		g_autofree char *hosts = get_string (loader, section, SC_KEY_ADMIN_ALLOWED_HOSTS, NULL);
		if (hosts != NULL && *hosts != '\0') {
			g_autofree char *lower = g_ascii_strdown (hosts, -1);
			g_auto(GStrv) names = g_strsplit_set (lower, "; \t,", -1);
			g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
			for (guint i = 0; names[i] != NULL; i++) {
				if (*names[i] != '\0')
					g_strv_builder_add (builder, names[i]);
			}
			config->admin_allowed_hosts = g_strv_builder_end (builder);
		}
	}
}

GStrv
sc_config_read_ingress_credentials (const char *path, GError **error)
{
	g_autofree char *contents = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GStrvBuilder) pairs = g_strv_builder_new ();

	if (!g_file_get_contents (path, &contents, NULL, error))
		return NULL;
	lines = g_strsplit (contents, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		g_auto(GStrv) fields = NULL;
		char *line = g_strstrip (lines[i]);

		if (*line == '\0' || *line == '#')
			continue;
		fields = g_strsplit_set (line, " \t", 2);
		if (fields[1] == NULL || *g_strstrip (fields[1]) == '\0') {
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s line %u: expected “USER PASSWORD”"), path, i + 1);
			return NULL;
		}
		g_strv_builder_add (pairs, fields[0]);
		g_strv_builder_add (pairs, fields[1]);
	}
	return g_strv_builder_end (pairs);
}

gboolean
sc_config_ingress_allows (const ScConfig *config, GInetAddress *address)
{
	for (guint i = 0; config->ingress.allow != NULL && i < config->ingress.allow->len; i++) {
		if (g_inet_address_mask_matches (config->ingress.allow->pdata[i], address))
			return TRUE;
	}
	return FALSE;
}


/* An ingress listen address: HOST:PORT, or (@unix_ok) an absolute path.
 * Returns whether it is reachable only from this machine. */
static gboolean
check_ingress_listen (ScConfigLoader *loader, const char *key, const char *value, gboolean unix_ok)
{
	g_autofree char *host = NULL;
	guint16 port = 0;

	if (unix_ok && value[0] == '/')
		return TRUE;
	if (!split_host_port (value, &host, &port)) {
		add_problem (loader, SC_CONFIG_SECTION_INGRESS, key,
			     unix_ok ? _("“%s” is not HOST:PORT or an absolute socket path")
				     : _("“%s” is not HOST:PORT"),
			     value);
		return TRUE;
	}
	return host_is_loopback (host);
}

static void
load_ingress (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_INGRESS;
	ScIngressConfig *ingress = &config->ingress;
	g_autofree char *smtp = get_string (loader, section, SC_KEY_INGRESS_SMTP, NULL);
	g_autofree char *lmtp = get_string (loader, section, SC_KEY_INGRESS_LMTP, NULL);
	g_autofree char *allow = get_string (loader, section, SC_KEY_INGRESS_ALLOW, SC_DEF_INGRESS_ALLOW);
	g_autofree char *cert = get_string (loader, section, SC_KEY_INGRESS_TLS_CERT_FILE, NULL);
	g_autofree char *key = get_string (loader, section, SC_KEY_INGRESS_TLS_KEY_FILE, NULL);
	g_autofree char *auth = get_string (loader, section, SC_KEY_INGRESS_AUTH_FILE, NULL);
	g_autofree char *bare = get_string (loader, section, SC_KEY_INGRESS_BARE_NEWLINE,
					    SC_DEF_INGRESS_BARE_NEWLINE);
	g_auto(GStrv) networks = NULL;
	gboolean local_only = TRUE;
	char host[256] = "localhost";

	check_known_keys (loader, section, ingress_keys);
	ingress->allow = g_ptr_array_new_with_free_func (g_object_unref);
	networks = split_list (allow);
	for (guint i = 0; networks[i] != NULL; i++) {
		g_autoptr(GError) error_local = NULL;
		GInetAddressMask *mask = g_inet_address_mask_new_from_string (networks[i], &error_local);
		if (mask == NULL)
			add_problem (loader, section, SC_KEY_INGRESS_ALLOW,
				     _("“%s” is not an address or network (CIDR)"), networks[i]);
		else
			g_ptr_array_add (ingress->allow, mask);
	}
	if (smtp != NULL && *smtp != '\0') {
		local_only &= check_ingress_listen (loader, SC_KEY_INGRESS_SMTP, smtp, FALSE);
		ingress->smtp = g_steal_pointer (&smtp);
	}
	if (lmtp != NULL && *lmtp != '\0') {
		local_only &= check_ingress_listen (loader, SC_KEY_INGRESS_LMTP, lmtp, TRUE);
		ingress->lmtp = g_steal_pointer (&lmtp);
	}
	if ((cert != NULL && *cert != '\0') != (key != NULL && *key != '\0'))
		add_problem (loader, section, cert != NULL && *cert != '\0' ? SC_KEY_INGRESS_TLS_KEY_FILE
									: SC_KEY_INGRESS_TLS_CERT_FILE,
			     _("%s and %s go together"), SC_KEY_INGRESS_TLS_CERT_FILE,
			     SC_KEY_INGRESS_TLS_KEY_FILE);
	if (cert != NULL && *cert != '\0' && key != NULL && *key != '\0') {
		g_autoptr(GError) error_local = NULL;
		g_autoptr(GTlsCertificate) certificate = NULL;
		ingress->tls_cert_file = resolve_path (loader, cert);
		ingress->tls_key_file = resolve_path (loader, key);
		certificate = g_tls_certificate_new_from_files (ingress->tls_cert_file,
								ingress->tls_key_file, &error_local);
		if (certificate == NULL)
			add_problem (loader, section, SC_KEY_INGRESS_TLS_CERT_FILE, "%s (%s, %s)",
				     error_local->message, ingress->tls_cert_file, ingress->tls_key_file);
	}
	if (auth != NULL && *auth != '\0') {
		g_autoptr(GError) error_local = NULL;
		g_auto(GStrv) credentials = NULL;
		ingress->auth_file = resolve_path (loader, auth);
		credentials = sc_config_read_ingress_credentials (ingress->auth_file, &error_local);
		if (credentials == NULL)
			add_problem (loader, section, SC_KEY_INGRESS_AUTH_FILE, "%s", error_local->message);
		else if (ingress->tls_cert_file == NULL)
			/* a password must never cross the network in clear text */
			add_problem (loader, section, SC_KEY_INGRESS_AUTH_FILE,
				     _("needs %s and %s: AUTH is offered only after STARTTLS"),
				     SC_KEY_INGRESS_TLS_CERT_FILE, SC_KEY_INGRESS_TLS_KEY_FILE);
	}
	if (!local_only && !g_key_file_has_key (loader->keyfile, section, SC_KEY_INGRESS_ALLOW, NULL) &&
	    ingress->auth_file == NULL)
		/* an open relay into every list is one typo away */
		add_problem (loader, section, ingress->smtp != NULL ? SC_KEY_INGRESS_SMTP : SC_KEY_INGRESS_LMTP,
			     _("listens on a non-loopback address: set %s (the networks that may send) "
			       "or %s with TLS"),
			     SC_KEY_INGRESS_ALLOW, SC_KEY_INGRESS_AUTH_FILE);
	ingress->hostname = get_string (loader, section, SC_KEY_INGRESS_HOSTNAME, NULL);
	if (ingress->hostname == NULL || *ingress->hostname == '\0') {
		g_free (ingress->hostname);
		if (gethostname (host, sizeof host - 1) != 0)
			g_strlcpy (host, "localhost", sizeof host);
		ingress->hostname = g_strdup (host);
	}
	ingress->max_connections = get_uint (loader, section, SC_KEY_INGRESS_MAX_CONNECTIONS,
					     SC_DEF_INGRESS_MAX_CONNECTIONS, 1, 100000);
	ingress->max_recipients = get_uint (loader, section, SC_KEY_INGRESS_MAX_RECIPIENTS,
					    SC_DEF_INGRESS_MAX_RECIPIENTS, 1, 1000000);
	ingress->command_timeout = get_duration (loader, section, SC_KEY_INGRESS_COMMAND_TIMEOUT,
						 SC_DEF_INGRESS_COMMAND_TIMEOUT);
	ingress->data_timeout = get_duration (loader, section, SC_KEY_INGRESS_DATA_TIMEOUT,
					      SC_DEF_INGRESS_DATA_TIMEOUT);
	if (ingress->command_timeout < G_USEC_PER_SEC || ingress->data_timeout < G_USEC_PER_SEC) {
		add_problem (loader, section,
			     ingress->command_timeout < G_USEC_PER_SEC ? SC_KEY_INGRESS_COMMAND_TIMEOUT
								       : SC_KEY_INGRESS_DATA_TIMEOUT,
			     _("must be at least 1s"));
		(void) sc_duration_parse (SC_DEF_INGRESS_COMMAND_TIMEOUT, &ingress->command_timeout, NULL);
		(void) sc_duration_parse (SC_DEF_INGRESS_DATA_TIMEOUT, &ingress->data_timeout, NULL);
	}
	if (g_ascii_strcasecmp (bare, "normalize") == 0)
		ingress->bare_newline = SC_BARE_NEWLINE_NORMALIZE;
	else if (g_ascii_strcasecmp (bare, "reject") == 0)
		ingress->bare_newline = SC_BARE_NEWLINE_REJECT;
	else
		add_problem (loader, section, SC_KEY_INGRESS_BARE_NEWLINE,
			     _("“%s” is not normalize or reject"), bare);
	ingress->dedupe_window = get_duration (loader, section, SC_KEY_INGRESS_DEDUPE_WINDOW,
					       SC_DEF_INGRESS_DEDUPE_WINDOW);
}

static void
load_notify (ScConfigLoader *loader, ScConfig *config)
{
	const char *section = SC_CONFIG_SECTION_NOTIFY;
	g_autofree char *webhook = NULL;
	g_autofree char *secret_file = NULL;

	check_known_keys (loader, section, notify_keys);
	webhook = get_string (loader, section, SC_KEY_NOTIFY_WEBHOOK, NULL);
	if (webhook != NULL && *webhook != '\0') {
		g_autoptr(GUri) uri = g_uri_parse (webhook, G_URI_FLAGS_NONE, NULL);
		if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 &&
				    g_strcmp0 (g_uri_get_scheme (uri), "https") != 0))
			add_problem (loader, section, SC_KEY_NOTIFY_WEBHOOK,
				     _("“%s” is not an http:// or https:// URL"), webhook);
		config->notify_webhook = g_steal_pointer (&webhook);
	}
	secret_file = get_string (loader, section, SC_KEY_NOTIFY_SECRET_FILE, NULL);
	if (secret_file != NULL && *secret_file != '\0') {
		config->notify_secret_file = resolve_path (loader, secret_file);
		if (g_access (config->notify_secret_file, R_OK) != 0)
			add_problem (loader, section, SC_KEY_NOTIFY_SECRET_FILE, _("cannot read %s: %s"),
				     config->notify_secret_file, g_strerror (errno));
	} else if (config->notify_webhook != NULL) {
		add_problem (loader, section, SC_KEY_NOTIFY_SECRET_FILE,
			     _("needed with %s: receivers must be able to verify the sender"),
			     SC_KEY_NOTIFY_WEBHOOK);
	}
	config->notify_digest_interval = get_duration (loader, section, SC_KEY_NOTIFY_DIGEST_INTERVAL,
						       SC_DEF_NOTIFY_DIGEST_INTERVAL);
	config->notify_digest_threshold = get_uint (loader, section, SC_KEY_NOTIFY_DIGEST_THRESHOLD,
						    SC_DEF_NOTIFY_DIGEST_THRESHOLD, 1, 1000000);
	config->notify_backlog_threshold = get_uint (loader, section, SC_KEY_NOTIFY_BACKLOG_THRESHOLD,
						     SC_DEF_NOTIFY_BACKLOG_THRESHOLD, 0, G_MAXINT);
	config->notify_timeout = get_duration (loader, section, SC_KEY_NOTIFY_TIMEOUT, SC_DEF_NOTIFY_TIMEOUT);
}

/* A list's mailers= must name [mailer:NAME] sections. */
/* Read when a DMARC lookup needs it: a missing file defers those lists'
 * messages (decorate), so check-config says so beforehand. */
static void
check_public_suffix_list (ScConfigLoader *loader, ScConfig *config)
{
	GHashTableIter iter;
	gpointer value;

	if (g_access (config->public_suffix_list, R_OK) == 0)
		return;
	g_hash_table_iter_init (&iter, config->lists);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		const ScListConfig *list = value;

		if (list->from_rewrite != SC_FROM_REWRITE_DMARC)
			continue;
		g_ptr_array_add (loader->warnings,
				 g_strdup_printf (_("%s: [%s] %s: %s: %s (needed by %s=dmarc of "
						    "[list:%s]; Debian package publicsuffix)"),
						  loader->path,
						  SC_CONFIG_SECTION_MAIN,
						  SC_KEY_PUBLIC_SUFFIX_LIST,
						  config->public_suffix_list,
						  g_strerror (errno),
						  SC_KEY_LIST_FROM_REWRITE,
						  list->id));
		return;
	}
}

static void
check_list_mailers (ScConfigLoader *loader, ScConfig *config)
{
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, config->lists);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		const ScListConfig *list = value;
		g_autofree char *section = g_strconcat (SC_CONFIG_SECTION_LIST_PREFIX, list->id, NULL);

		for (guint i = 0; list->mailers != NULL && list->mailers[i] != NULL; i++) {
			if (sc_config_get_mailer (config, list->mailers[i]) == NULL)
				add_problem (loader, section, SC_KEY_LIST_MAILERS,
					     _("no section [mailer:%s]"), list->mailers[i]);
		}
	}
}

/* Each stage of each list is looked up and its handler checks the list. */
static void
check_pipelines (ScConfigLoader *loader, ScConfig *config)
{
	GHashTableIter iter;
	gpointer value;

	g_hash_table_iter_init (&iter, config->lists);
	while (g_hash_table_iter_next (&iter, NULL, &value)) {
		const ScListConfig *list = value;
		g_autofree char *section =
		    g_strconcat (SC_CONFIG_SECTION_LIST_PREFIX, list->id, NULL);

		for (gsize i = 0; list->pipeline[i] != NULL; i++) {
			g_autoptr(GError) error_local = NULL;
			g_autofree char *argument = NULL;
			const ScHandler *handler =
			    sc_handler_registry_lookup (list->pipeline[i], &argument, &error_local);

			if (handler == NULL) {
				add_problem (loader,
					     section,
					     SC_KEY_LIST_PIPELINE,
					     "%s",
					     error_local->message);
				continue;
			}
			if (handler->check != NULL &&
			    !handler->check (config, list, argument, loader->warnings, &error_local))
				add_problem (loader, section, NULL, "%s", error_local->message);
		}
	}
}

static ScConfig *
config_new (void)
{
	ScConfig *config = g_new0 (ScConfig, 1);

	config->ref_count = 1;
	config->lists = g_hash_table_new_full (g_str_hash,
					       g_str_equal,
					       NULL,
					       (GDestroyNotify) list_config_free);
	config->execs = g_hash_table_new_full (g_str_hash,
					       g_str_equal,
					       NULL,
					       (GDestroyNotify) exec_config_free);
	config->mailers = g_ptr_array_new_with_free_func ((GDestroyNotify) mailer_config_free);
	config->warnings = g_ptr_array_new_with_free_func (g_free);
	return config;
}

void
sc_config_failure_clear (ScConfigFailure *failure)
{
	if (failure == NULL)
		return;
	g_clear_pointer (&failure->places, g_ptr_array_unref);
	failure->unparsed = FALSE;
}

gboolean
sc_config_failure_has (const ScConfigFailure *failure, const char *section, const char *key)
{
	g_autofree char *prefix = g_strdup_printf ("%s\n%s", section, key != NULL ? key : "");

	for (guint i = 0; failure->places != NULL && i < failure->places->len; i++) {
		const char *place = failure->places->pdata[i];
		if (key != NULL ? strcmp (place, prefix) == 0 : g_str_has_prefix (place, prefix))
			return TRUE;
	}
	return FALSE;
}

ScConfig *
sc_config_load (const char *path, GError **error)
{
	return sc_config_load_full (path, NULL, error);
}

ScConfig *
sc_config_load_full (const char *path, ScConfigFailure *out_failure, GError **error)
{
	g_autoptr(ScConfig) config = config_new ();
	g_autoptr(GPtrArray) places = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GKeyFile) keyfile = g_key_file_new ();
	g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func (g_free);
	g_autofree char *base_dir = NULL;
	g_auto(GStrv) groups = NULL;
	ScConfigLoader loader = {0};

	if (path != NULL) {
		g_autoptr(GError) error_local = NULL;
		if (!g_key_file_load_from_file (keyfile, path, G_KEY_FILE_NONE, &error_local)) {
			g_set_error (error,
				     SC_CONFIG_ERROR,
				     SC_CONFIG_ERROR_INVALID,
				     "%s: %s",
				     path,
				     error_local->message);
			if (out_failure != NULL)
				out_failure->unparsed = TRUE;
			return NULL;
		}
		config->path = g_canonicalize_filename (path, NULL);
		base_dir = g_path_get_dirname (config->path);
	} else {
		base_dir = g_get_current_dir ();
	}
	loader.path = path != NULL ? path : _("(built-in defaults)");
	loader.base_dir = base_dir;
	loader.keyfile = keyfile;
	loader.problems = problems;
	loader.warnings = config->warnings;
	loader.places = places;

	load_main (&loader, config);
	load_retry (&loader, config);
	load_deliver (&loader, config);
	load_admin (&loader, config);
	load_notify (&loader, config);
	load_ingress (&loader, config);
	groups = g_key_file_get_groups (keyfile, NULL);
	for (gsize i = 0; groups[i] != NULL; i++) {
		const char *group = groups[i];
		if (strcmp (group, SC_CONFIG_SECTION_MAIN) == 0 ||
		    strcmp (group, SC_CONFIG_SECTION_RETRY) == 0 ||
		    strcmp (group, SC_CONFIG_SECTION_DELIVER) == 0 ||
		    strcmp (group, SC_CONFIG_SECTION_ADMIN) == 0 ||
		    strcmp (group, SC_CONFIG_SECTION_NOTIFY) == 0 ||
		    strcmp (group, SC_CONFIG_SECTION_INGRESS) == 0)
			continue;
		if (g_str_has_prefix (group, SC_CONFIG_SECTION_LIST_PREFIX)) {
			ScListConfig *list =
			    load_list (&loader, group, group + strlen (SC_CONFIG_SECTION_LIST_PREFIX));
			g_hash_table_replace (config->lists, list->id, list);
		} else if (g_str_has_prefix (group, SC_CONFIG_SECTION_MAILER_PREFIX)) {
			const char *name = group + strlen (SC_CONFIG_SECTION_MAILER_PREFIX);
			g_ptr_array_add (config->mailers, load_mailer (&loader, group, name));
		} else if (g_str_has_prefix (group, SC_CONFIG_SECTION_HANDLER_PREFIX)) {
			const char *name = group + strlen (SC_CONFIG_SECTION_HANDLER_PREFIX);
			ScExecConfig *exec = load_exec (&loader, group, name);
			g_hash_table_replace (config->execs, exec->name, exec);
		} else {
			add_problem (&loader, group, NULL, _("unknown section"));
		}
	}
	if (config->default_list != NULL &&
	    !g_hash_table_contains (config->lists, config->default_list))
		add_problem (&loader,
			     SC_CONFIG_SECTION_MAIN,
			     SC_KEY_DEFAULT_LIST,
			     _("no section [list:%s]"),
			     config->default_list);
	g_ptr_array_sort (config->mailers, compare_mailers);
	check_list_mailers (&loader, config);
	check_public_suffix_list (&loader, config);
	check_pipelines (&loader, config);

	if (problems->len > 0) {
		g_autofree char *joined = NULL;
		g_ptr_array_add (problems, NULL);
		joined = g_strjoinv ("\n", (char **) problems->pdata);
		g_set_error_literal (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID, joined);
		if (out_failure != NULL)
			out_failure->places = g_steal_pointer (&places);
		return NULL;
	}
	return g_steal_pointer (&config);
}

char *
sc_config_find_path (const char *explicit_path)
{
	const char *env = g_getenv ("STAGECOACH_CONFIG");
	g_autofree char *system_path = NULL;

	if (explicit_path != NULL)
		return g_strdup (explicit_path);
	if (env != NULL && *env != '\0')
		return g_strdup (env);
	system_path = g_build_filename (SYSCONFDIR, "stagecoach", "stagecoach.conf", NULL);
	if (g_file_test (system_path, G_FILE_TEST_EXISTS))
		return g_steal_pointer (&system_path);
	return NULL;
}

static void
check_private (GPtrArray *warnings, const char *path)
{
	GStatBuf st;

	if (path == NULL || *path == '\0' || g_stat (path, &st) != 0)
		return;
	if ((st.st_mode & S_IROTH) != 0)
		g_ptr_array_add (warnings,
				 g_strdup_printf (_("%s is readable by other users (mode %04o): chmod o-r it"),
						  path, (guint) (st.st_mode & 07777)));
}

GPtrArray *
sc_config_check_permissions (const ScConfig *config)
{
	GPtrArray *warnings = g_ptr_array_new_with_free_func (g_free);
	const char *spool_files[] = {"spool.db", "spool.db-wal", "spool.db-shm"};
	g_autofree char *generated_token = g_build_filename (config->state_dir, SC_ADMIN_GENERATED_TOKEN_FILE, NULL);

	for (guint i = 0; config->mailers != NULL && i < config->mailers->len; i++)
		check_private (warnings, ((ScMailerConfig *) config->mailers->pdata[i])->password_file);
	check_private (warnings, config->notify_secret_file);
	check_private (warnings, config->admin_token_file);
	if (config->admin_token_file == NULL)
		check_private (warnings, generated_token);
	check_private (warnings, config->ingress.tls_key_file);
	check_private (warnings, config->ingress.auth_file);
	{
		GHashTableIter iter;
		gpointer list;

		g_hash_table_iter_init (&iter, config->lists);
		while (g_hash_table_iter_next (&iter, NULL, &list))
		{
			check_private (warnings, ((const ScListConfig *) list)->dkim_key_file);
			check_private (warnings, ((const ScListConfig *) list)->unsubscribe_secret_file);
		}
	}
	for (gsize i = 0; config->spool_kind == SC_SPOOL_URI_FOLDER && i < G_N_ELEMENTS (spool_files); i++) {
		g_autofree char *path = g_build_filename (config->spool, spool_files[i], NULL);
		check_private (warnings, path);
	}
	/* libpq gets the value in memory, never on a command line: the risk
	 * is the file, and every copy or paste of it; libpq reads a password
	 * file of its own */
	if (config->spool_kind == SC_SPOOL_URI_POSTGRESQL && sc_spool_uri_has_password (config->spool))
		g_ptr_array_add (warnings,
				 g_strdup_printf (_("%s: [%s] %s holds a password: keep it out of the "
						    "configuration, in ~/.pgpass, the file $PGPASSFILE names "
						    "or passfile= (mode 0600)"),
						  config->path != NULL ? config->path : _("(built-in defaults)"),
						  SC_CONFIG_SECTION_MAIN, SC_KEY_SPOOL));
	return warnings;
}

ScConfig *
sc_config_ref (ScConfig *config)
{
	g_return_val_if_fail (config != NULL, NULL);
	g_atomic_int_inc (&config->ref_count);
	return config;
}

void
sc_config_unref (ScConfig *config)
{
	if (config == NULL || !g_atomic_int_dec_and_test (&config->ref_count))
		return;
	g_free (config->path);
	g_free (config->spool);
	g_free (config->state_dir);
	g_free (config->default_list);
	g_strfreev (config->dns_servers);
	g_free (config->public_suffix_list);
	g_hash_table_unref (config->lists);
	g_hash_table_unref (config->execs);
	g_clear_pointer (&config->mailers, g_ptr_array_unref); /* hand-built configs have none */
	g_clear_pointer (&config->warnings, g_ptr_array_unref);
	g_free (config->admin_listen);
	g_free (config->admin_token_file);
	g_free (config->admin_public_url);
	g_strfreev (config->admin_allowed_hosts);
	g_free (config->notify_webhook);
	g_free (config->notify_secret_file);
	g_free (config->ingress.smtp);
	g_free (config->ingress.lmtp);
	g_clear_pointer (&config->ingress.allow, g_ptr_array_unref);
	g_free (config->ingress.hostname);
	g_free (config->ingress.tls_cert_file);
	g_free (config->ingress.tls_key_file);
	g_free (config->ingress.auth_file);
	g_free (config);
}

const ScListConfig *
sc_config_get_list (const ScConfig *config, const char *list_id)
{
	g_return_val_if_fail (config != NULL, NULL);
	if (list_id == NULL)
		return NULL;
	return g_hash_table_lookup (config->lists, list_id);
}

const ScExecConfig *
sc_config_get_exec (const ScConfig *config, const char *name)
{
	g_return_val_if_fail (config != NULL, NULL);
	if (name == NULL)
		return NULL;
	return g_hash_table_lookup (config->execs, name);
}

const ScMailerConfig *
sc_config_get_mailer (const ScConfig *config, const char *name)
{
	g_return_val_if_fail (config != NULL, NULL);
	for (guint i = 0; name != NULL && config->mailers != NULL && i < config->mailers->len; i++) {
		const ScMailerConfig *mailer = config->mailers->pdata[i];
		if (strcmp (mailer->name, name) == 0)
			return mailer;
	}
	return NULL;
}

GPtrArray *
sc_config_list_mailers (const ScConfig *config, const ScListConfig *list)
{
	GPtrArray *mailers = g_ptr_array_new ();

	if (list != NULL && list->mailers != NULL) {
		for (guint i = 0; list->mailers[i] != NULL; i++) {
			const ScMailerConfig *mailer = sc_config_get_mailer (config, list->mailers[i]);
			if (mailer != NULL)
				g_ptr_array_add (mailers, (gpointer) mailer);
		}
		return mailers;
	}
	for (guint i = 0; config->mailers != NULL && i < config->mailers->len; i++)
		g_ptr_array_add (mailers, config->mailers->pdata[i]);
	return mailers;
}
