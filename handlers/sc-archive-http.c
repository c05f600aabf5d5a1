/* sc-archive-http.c — archive backend posting each message to an archiver over HTTP(S).
 *
 * http://URL and https://URL POST the message as message/rfc822 with libcurl
 * (to a HyperKitty-style archiver), with an Idempotency-Key and
 * X-Stagecoach-Queue-Id of the queue id, so a rerun after a crash is one the
 * archiver can recognise, plus X-Stagecoach-List-Id and, when the message
 * has one, X-Message-Id.  2xx is done.  408, 409, 429, 5xx, redirects and
 * every connection or TLS failure are transient (the archiver or its address
 * can be fixed); any other 4xx is permanent: the archiver refuses this
 * message.
 *
 * One CURL easy handle per worker thread, kept in a GPrivate so connections
 * are reused and freed when the thread ends; curl_global_init() is main()'s.
 *
 * Must never: follow a redirect (it could carry the message to another host;
 * the operator updates the URL instead), put a header value from the message
 * on the wire without stripping CR and LF, or show the URL's password or
 * query in an error.
 */
#include "config.h"

#include <curl/curl.h>

#include "sc-archive-private.h"
#include "sc-i18n.h"

#define SC_ARCHIVE_HTTP_CONNECT_TIMEOUT_MS 30000
#define SC_ARCHIVE_HTTP_TIMEOUT_MS 120000
/* enough of the body for the first line of an error page */
#define SC_ARCHIVE_HTTP_BODY_KEEP 4096
#define SC_ARCHIVE_HTTP_ERROR_LINE_MAX 300

static const char *const http_schemes[] = {"http", "https", NULL};

static GPrivate curl_handle = G_PRIVATE_INIT ((GDestroyNotify) curl_easy_cleanup);

typedef struct {
	struct curl_slist *list;
} ScArchiveHttpHeaders;

static void
sc_archive_http_headers_clear (ScArchiveHttpHeaders *headers)
{
	g_clear_pointer (&headers->list, curl_slist_free_all);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ScArchiveHttpHeaders, sc_archive_http_headers_clear)

static gboolean
sc_archive_http_add_header (ScArchiveHttpHeaders *headers, const char *name, const char *value)
{
	g_autofree char *clean = sc_archive_sanitize_line (value, strlen (value), 998);
	g_autofree char *line = g_strdup_printf ("%s: %s", name, clean);
	struct curl_slist *list = curl_slist_append (headers->list, line);

	if (list == NULL)
		return FALSE;
	headers->list = list;
	return TRUE;
}

static size_t
sc_archive_http_body_cb (char *data, size_t size, size_t count, void *user_data)
{
	GString *body = user_data;
	gsize length = size * count;

	if (body->len < SC_ARCHIVE_HTTP_BODY_KEEP)
		g_string_append_len (body, data, MIN (length, SC_ARCHIVE_HTTP_BODY_KEEP - body->len));
	return length;
}

static int
sc_archive_http_progress_cb (void *user_data,
			     curl_off_t download_total,
			     curl_off_t downloaded,
			     curl_off_t upload_total,
			     curl_off_t uploaded)
{
	/* non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK */
	return g_cancellable_is_cancelled (user_data) ? 1 : 0;
}

/* The thread's handle, reset to defaults (its connection cache survives). */
static CURL *
sc_archive_http_get_handle (void)
{
	CURL *curl = g_private_get (&curl_handle);

	if (curl == NULL) {
		curl = curl_easy_init ();
		g_private_set (&curl_handle, curl);
	} else {
		curl_easy_reset (curl);
	}
	return curl;
}

/* A refusal worth retrying: the archiver is slow, busy or broken, not the
 * message.  409 is what the Idempotency-Key draft answers while a first
 * request with the same key is still being processed — after a crash, ours. */
static gboolean
sc_archive_http_status_is_transient (long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500 || status < 200;
}

/* "HTTP 503: first line of the body". (transfer full) */
static char *
sc_archive_http_describe (long status, GString *body)
{
	const char *newline = memchr (body->str, '\n', body->len);
	gsize length = newline != NULL ? (gsize) (newline - body->str) : body->len;
	g_autofree char *first_line =
	    sc_archive_sanitize_line (body->str, length, SC_ARCHIVE_HTTP_ERROR_LINE_MAX);

	if (*first_line == '\0')
		return g_strdup_printf ("HTTP %ld", status);
	return g_strdup_printf ("HTTP %ld: %s", status, first_line);
}

static gboolean
sc_archive_http_store (const char *url, ScStageContext *context, GError **error)
{
	g_auto(ScArchiveHttpHeaders) headers = {NULL};
	g_autoptr(GString) body = g_string_new (NULL);
	g_autofree char *message_id = sc_archive_get_message_id (context->current);
	g_autofree char *user_agent = g_strdup_printf ("stagecoach/%s", PACKAGE_VERSION);
	char error_buffer[CURL_ERROR_SIZE] = "";
	gsize size = 0;
	const char *data = g_bytes_get_data (context->current, &size);
	g_autofree char *description = NULL;
	struct curl_slist *list;
	long status = 0;
	CURLcode rc;
	CURL *curl;

	curl = sc_archive_http_get_handle ();
	if (curl == NULL ||
	    !sc_archive_http_add_header (&headers, "Content-Type", "message/rfc822") ||
	    !sc_archive_http_add_header (&headers, "Idempotency-Key", context->queue_id) ||
	    !sc_archive_http_add_header (&headers, "X-Stagecoach-Queue-Id", context->queue_id) ||
	    !sc_archive_http_add_header (&headers, "X-Stagecoach-List-Id", context->list_id) ||
	    (message_id != NULL && *message_id != '\0' &&
	     !sc_archive_http_add_header (&headers, "X-Message-Id", message_id))) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("out of memory"));
		return FALSE;
	}
	/* no "Expect: 100-continue": some servers never answer it, which
	 * stalls every large message by a second */
	list = curl_slist_append (headers.list, "Expect:");
	if (list != NULL)
		headers.list = list;

	curl_easy_setopt (curl, CURLOPT_URL, url);
	curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT_MS, (long) SC_ARCHIVE_HTTP_CONNECT_TIMEOUT_MS);
	curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) SC_ARCHIVE_HTTP_TIMEOUT_MS);
	curl_easy_setopt (curl, CURLOPT_USERAGENT, user_agent);
	curl_easy_setopt (curl, CURLOPT_POST, 1L);
	curl_easy_setopt (curl, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size);
	curl_easy_setopt (curl, CURLOPT_HTTPHEADER, headers.list);
	curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, sc_archive_http_body_cb);
	curl_easy_setopt (curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, error_buffer);
	if (context->cancellable != NULL) {
		curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, sc_archive_http_progress_cb);
		curl_easy_setopt (curl, CURLOPT_XFERINFODATA, context->cancellable);
	}

	rc = curl_easy_perform (curl);
	/* the handle outlives this call: drop pointers to our locals */
	curl_easy_setopt (curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt (curl, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt (curl, CURLOPT_POSTFIELDS, NULL);
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		g_set_error_literal (error,
				     SC_STAGE_ERROR,
				     SC_STAGE_ERROR_TRANSIENT,
				     _("cancelled"));
		return FALSE;
	}
	if (rc != CURLE_OK) {
		/* connection refused, DNS, TLS, timeouts: all for an operator to fix */
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_TRANSIENT,
			     "%s",
			     error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror (rc));
		return FALSE;
	}
	curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
	/* 303 See Other is how an HTML form handler says "done, look there" */
	if ((status >= 200 && status < 300) || status == 303) {
		g_debug ("%s: archived, HTTP %ld", context->queue_id, status);
		return TRUE;
	}
	if (status >= 300 && status < 400) {
		const char *target = NULL;
		g_autofree char *shown = NULL;

		curl_easy_getinfo (curl, CURLINFO_REDIRECT_URL, &target);
		shown = sc_archive_display (target != NULL ? target : "?");
		g_set_error (error,
			     SC_STAGE_ERROR,
			     SC_STAGE_ERROR_TRANSIENT,
			     /* TRANSLATORS: "HTTP 301 to URL: …"; archive is a config key */
			     _("HTTP %ld to %s: redirects are not followed; update archive = to the new "
			       "address"),
			     status,
			     shown);
		return FALSE;
	}
	description = sc_archive_http_describe (status, body);
	g_set_error_literal (error,
			     SC_STAGE_ERROR,
			     sc_archive_http_status_is_transient (status) ? SC_STAGE_ERROR_TRANSIENT
								  : SC_STAGE_ERROR_PERMANENT,
			     description);
	return FALSE;
}

static gboolean
sc_archive_http_check (const char *location, GError **error)
{
	g_autoptr(GUri) uri = NULL;

	/* GLib's own message would quote the URL, password and all */
	uri = g_uri_parse (location, G_URI_FLAGS_ENCODED | G_URI_FLAGS_HAS_PASSWORD, NULL);
	if (uri == NULL) {
		g_set_error_literal (error,
				     SC_CONFIG_ERROR,
				     SC_CONFIG_ERROR_INVALID,
				     _("not a valid URL"));
		return FALSE;
	}
	if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0') {
		g_set_error_literal (error,
				     SC_CONFIG_ERROR,
				     SC_CONFIG_ERROR_INVALID,
				     _("the URL names no host"));
		return FALSE;
	}
	return TRUE;
}

const ScArchiveBackend sc_archive_backend_http = {
    .name = "http",
    .schemes = http_schemes,
    .location_is_url = TRUE,
    .check = sc_archive_http_check,
    .store = sc_archive_http_store,
};
