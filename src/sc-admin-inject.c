/* sc-admin-inject.c — POST /api/v1/messages: list software hands a message
 * in over HTTP (doc/admin-api.md).
 *
 * The body is the message itself (Content-Type: message/rfc822), the
 * envelope is in the query (list=, from=, to= once per recipient): no
 * escaping of the message, any bytes, and a one-line curl.  Everything
 * the headers can decide is decided before the body is read (Bearer
 * token, max-message-size, content type, envelope); then the submission
 * goes to the daemon's acceptor, the same group commit as SMTP and the
 * local hand-off, and the request stays paused until the commit
 * (synchronous=FULL) or the refusal: 201 means stored.
 *
 * It must never answer 201 before the commit, never take mail on a
 * cookie session (a page in the operator's browser could post it), and
 * never read a body it is going to refuse.
 */
#include "config.h"

#include <string.h>

#include "sc-admin-private.h"
#include "sc-i18n.h"
#include "sc-message-json.h"

#define ENVELOPE_KEY "sc-admin-envelope"
#define BUSY_RETRY_AFTER "5" /* seconds: a locked or stopping spool */

void
sc_admin_envelope_free (ScAdminEnvelope *envelope)
{
	if (envelope == NULL)
		return;
	g_free (envelope->list_id);
	g_free (envelope->sender);
	g_ptr_array_unref (envelope->recipients);
	g_free (envelope);
}

ScAdminEnvelope *
sc_admin_parse_inject_query (const char *query, guint max_recipients, GError **error)
{
	g_autoptr(ScAdminEnvelope) envelope = g_new0 (ScAdminEnvelope, 1);
	g_autoptr(GError) error_local = NULL;
	GUriParamsIter iter;
	char *name = NULL;
	char *value = NULL;
	gboolean has_list = FALSE;

	envelope->recipients = g_ptr_array_new_with_free_func (g_free);
	/* G_URI_PARAMS_NONE: "+" stays a plus (user+tag@…), %2B works too */
	g_uri_params_iter_init (&iter, query != NULL ? query : "", -1, "&", G_URI_PARAMS_NONE);
	while (g_uri_params_iter_next (&iter, &name, &value, &error_local)) {
		g_autofree char *owned_name = name;
		g_autofree char *owned_value = value;

		if (!g_utf8_validate (name, -1, NULL) || !g_utf8_validate (value, -1, NULL)) {
			g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
					     _("the query is not UTF-8"));
			return NULL;
		}
		if (strcmp (name, "to") == 0) {
			if (*value == '\0') {
				g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
						     _("to= is empty: give one recipient address per to="));
				return NULL;
			}
			if (envelope->recipients->len >= max_recipients) {
				g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
					     _("more than %u recipients: split them over several requests"),
					     max_recipients);
				return NULL;
			}
			g_ptr_array_add (envelope->recipients, g_steal_pointer (&owned_value));
		} else if (strcmp (name, "from") == 0 && envelope->sender == NULL) {
			envelope->sender = g_steal_pointer (&owned_value);
		} else if (strcmp (name, "list") == 0 && !has_list) {
			has_list = TRUE;
			if (*value != '\0')
				envelope->list_id = g_steal_pointer (&owned_value);
		} else if (strcmp (name, "from") == 0 || strcmp (name, "list") == 0) {
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				     _("%s= is given more than once"), name);
			return NULL;
		} else {
			/* a typo (rcpt=, sender=) must not quietly lose an envelope part */
			g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				     _("unknown parameter “%s” (known: list, from, to)"), name);
			return NULL;
		}
	}
	if (error_local != NULL) {
		g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			     _("the query is malformed: %s"), error_local->message);
		return NULL;
	}
	if (envelope->sender == NULL) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				     _("from= is missing (the envelope sender; from= with nothing for the null "
				       "sender)"));
		return NULL;
	}
	if (envelope->recipients->len == 0) {
		g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
				     _("no recipient: give each one as to="));
		return NULL;
	}
	g_ptr_array_add (envelope->recipients, NULL);
	return g_steal_pointer (&envelope);
}

static void
reply_envelope_error (SoupServerMessage *message, const GError *error)
{
	if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT))
		sc_admin_reply_error_code (message, SOUP_STATUS_BAD_REQUEST, "bad-request",
					   error->message);
	else
		sc_admin_reply_error_code (message, SOUP_STATUS_UNPROCESSABLE_ENTITY, "bad-envelope",
					   error->message);
}

static void
reply_no_acceptor (ScAdminServer *server, SoupServerMessage *message)
{
	if (server->acceptor_gone) {
		/* temporary: the sender keeps the message and comes back */
		SoupMessageHeaders *headers = soup_server_message_get_response_headers (message);

		soup_message_headers_replace (headers, "Retry-After", BUSY_RETRY_AFTER);
		sc_admin_reply_error_code (message, SOUP_STATUS_SERVICE_UNAVAILABLE, "spool-busy",
					   _("stagecoach is stopping"));
		return;
	}
	sc_admin_reply_error_code (message, SOUP_STATUS_SERVICE_UNAVAILABLE, "no-ingress",
				   _("this server takes no mail over HTTP (no ingress runs in it)"));
}

static ScAdminEnvelope *
parse_envelope (ScAdminServer *server, SoupServerMessage *message, GError **error)
{
	GUri *uri = soup_server_message_get_uri (message);

	return sc_admin_parse_inject_query (uri != NULL ? g_uri_get_query (uri) : NULL,
					    server->config->ingress.max_recipients,
					    error);
}

gboolean
sc_admin_inject_check_headers (ScAdminServer *server,
			       SoupServerMessage *message,
			       const ScAdminIdentity *identity)
{
	SoupMessageHeaders *headers = soup_server_message_get_request_headers (message);
	goffset length = sc_admin_announced_body (message);
	const char *content_type = soup_message_headers_get_content_type (headers, NULL);
	g_autoptr(ScAdminEnvelope) envelope = NULL;
	g_autoptr(GError) error = NULL;

	/* a browser sends the cookie on its own, the Bearer header never */
	if (!identity->bearer) {
		sc_admin_reply_error_code (message, SOUP_STATUS_FORBIDDEN, "bearer-required",
					   _("handing in mail needs an Authorization: Bearer token; a dashboard "
					   "session cannot"));
		return FALSE;
	}
	if (length < 0) {
		sc_admin_reply_error_code (message, SOUP_STATUS_LENGTH_REQUIRED, "length-required",
					   _("a request body needs a Content-Length"));
		return FALSE;
	}
	if ((guint64) length > server->config->max_message_size) {
		g_autofree char *text = g_strdup_printf (_("the message is larger than max-message-size "
							   "(%llu bytes)"),
							 (unsigned long long) server->config->max_message_size);
		sc_admin_reply_error_code (message, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "too-big", text);
		return FALSE;
	}
	if (content_type == NULL || g_ascii_strcasecmp (content_type, "message/rfc822") != 0) {
		sc_admin_reply_error_code (message, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE,
					   "unsupported-media-type",
					   _("send the message itself as the body, with Content-Type: "
					     "message/rfc822"));
		return FALSE;
	}
	envelope = parse_envelope (server, message, &error);
	if (envelope == NULL) {
		reply_envelope_error (message, error);
		return FALSE;
	}
	if (server->acceptor == NULL) {
		reply_no_acceptor (server, message);
		return FALSE;
	}
	g_object_set_data_full (G_OBJECT (message), ENVELOPE_KEY, g_steal_pointer (&envelope),
				(GDestroyNotify) sc_admin_envelope_free);
	return TRUE;
}

typedef struct {
	ScAcceptor *acceptor;       /* (unowned) outlives the server */
	SoupServerMessage *message; /* (owned) paused until the answer */
	char *actor;
	char *remote;
} ScAdminInject;

static void
inject_free (ScAdminInject *inject)
{
	g_object_unref (inject->message);
	g_free (inject->actor);
	g_free (inject->remote);
	g_free (inject);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScAdminInject, inject_free)

static void
reply_refused (SoupServerMessage *message, const GError *error)
{
	SoupMessageHeaders *headers = soup_server_message_get_response_headers (message);
	guint status;
	const char *code;

	if (error->domain != SC_INGRESS_ERROR) {
		g_warning ("admin inject: %s", error->message);
		sc_admin_reply_error_code (message, SOUP_STATUS_INTERNAL_SERVER_ERROR, "internal",
					   error->message);
		return;
	}
	switch ((ScIngressError) error->code) {
	case SC_INGRESS_ERROR_BAD_MESSAGE:
		status = SOUP_STATUS_UNPROCESSABLE_ENTITY, code = "bad-message";
		break;
	case SC_INGRESS_ERROR_BAD_ADDRESS:
		status = SOUP_STATUS_UNPROCESSABLE_ENTITY, code = "bad-address";
		break;
	case SC_INGRESS_ERROR_NO_LIST:
		/* 422, not 404: the resource is there, the submission names no list it serves */
		status = SOUP_STATUS_UNPROCESSABLE_ENTITY, code = "no-list";
		break;
	case SC_INGRESS_ERROR_TOO_BIG:
		status = SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, code = "too-big";
		break;
	case SC_INGRESS_ERROR_SPOOL_FULL:
		status = SOUP_STATUS_INSUFFICIENT_STORAGE, code = "spool-full";
		break;
	case SC_INGRESS_ERROR_SPOOL_BUSY:
	default:
		/* temporary: the sender keeps the message and comes back */
		soup_message_headers_replace (headers, "Retry-After", BUSY_RETRY_AFTER);
		status = SOUP_STATUS_SERVICE_UNAVAILABLE, code = "spool-busy";
		break;
	}
	sc_admin_reply_error_code (message, status, code, error->message);
}

static void
reply_accepted (SoupServerMessage *message, const ScAccepted *accepted)
{
	g_autoptr(JsonBuilder) builder = json_builder_new ();
	g_autoptr(JsonNode) node = NULL;

	json_builder_begin_object (builder);
	sc_json_add_string (builder, "queue_id", accepted->queue_id);
	sc_json_add_string (builder, "list", accepted->list_id);
	sc_json_add_string (builder, "message_id", accepted->message_id);
	json_builder_set_member_name (builder, "recipients");
	json_builder_add_int_value (builder, accepted->n_recipients);
	json_builder_set_member_name (builder, "duplicates");
	json_builder_add_int_value (builder, accepted->n_duplicates);
	sc_json_add_string (builder, "duplicate_of", accepted->duplicate_of);
	json_builder_end_object (builder);
	node = json_builder_get_root (builder);
	if (accepted->queue_id != NULL) {
		g_autofree char *escaped = g_uri_escape_string (accepted->queue_id, NULL, FALSE);
		g_autofree char *location = g_strconcat (SC_ADMIN_INJECT_PATH "/", escaped, NULL);
		SoupMessageHeaders *headers = soup_server_message_get_response_headers (message);

		soup_message_headers_replace (headers, "Location", location);
		sc_admin_reply_json (message, SOUP_STATUS_CREATED, node);
	} else {
		/* every recipient had it already: nothing new to point at */
		sc_admin_reply_json (message, SOUP_STATUS_OK, node);
	}
}

static void
accepted_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(ScAdminInject) inject = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(ScAccepted) accepted = sc_acceptor_accept_finish (inject->acceptor, result, &error);

	if (accepted == NULL) {
		g_debug ("admin inject from %s (%s) refused: %s", inject->remote, inject->actor,
			 error->message);
		reply_refused (inject->message, error);
	} else {
		g_debug ("admin inject from %s (%s): %s, %u recipients, %u duplicates", inject->remote,
			 inject->actor, accepted->queue_id != NULL ? accepted->queue_id : "(nothing new)",
			 accepted->n_recipients, accepted->n_duplicates);
		reply_accepted (inject->message, accepted);
	}
	soup_server_message_unpause (inject->message);
}

void
sc_admin_inject_handle (ScAdminServer *server,
			SoupServerMessage *message,
			const ScAdminIdentity *identity)
{
	ScAdminEnvelope *envelope = g_object_get_data (G_OBJECT (message), ENVELOPE_KEY);
	g_autoptr(GBytes) raw = NULL;
	ScSubmission submission = {0};
	ScAdminInject *inject;

	/* the server's early checks ran for this path; never without them */
	if (envelope == NULL && !sc_admin_inject_check_headers (server, message, identity))
		return;
	envelope = g_object_get_data (G_OBJECT (message), ENVELOPE_KEY);
	g_return_if_fail (envelope != NULL);
	if (server->acceptor == NULL) {
		/* unset after the headers came: the daemon stops */
		reply_no_acceptor (server, message);
		return;
	}
	raw = soup_message_body_flatten (soup_server_message_get_request_body (message));
	submission.door = "http";
	submission.peer = soup_server_message_get_remote_host (message);
	submission.list_id = envelope->list_id;
	submission.sender = envelope->sender;
	submission.recipients = (const char *const *) envelope->recipients->pdata;
	submission.raw = raw;

	inject = g_new0 (ScAdminInject, 1);
	inject->acceptor = server->acceptor;
	inject->message = g_object_ref (message);
	inject->actor = g_strdup (identity->actor);
	inject->remote = g_strdup (submission.peer);
	/* the answer waits for the commit */
	soup_server_message_pause (message);
	sc_acceptor_accept_async (server->acceptor, &submission, NULL, accepted_cb, inject);
}
