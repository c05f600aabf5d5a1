/* sc-sign.c — the sign stage: a DKIM signature as the list's domain.
 *
 * The signature is computed over the message as it leaves the pipeline,
 * so sign must come after every stage that may change it (decorate, an
 * exec:NAME whose output replaces the message) and before deliver;
 * check() refuses any other order.  Its output is the signed message,
 * in CRLF form: exactly the bytes deliver sends, nothing rewrites them
 * afterwards.  The work itself is sc-dkim.c's, which deliver calls too
 * when it must sign per recipient: a list whose unsubscribe-url names
 * $recipient gets its List-Unsubscribe per copy at delivery, so this stage
 * only checks the key and leaves the signing to deliver.
 *
 * check() refuses missing or malformed dkim-* settings; a key file that
 * cannot be used is a warning (check-config fails on it, run logs it).
 * Outcomes: a key file that is missing, unreadable or not a usable key
 * is transient (the operator fixes it and the message goes on; the error
 * names the file); a message that cannot carry a signature — empty, or no
 * header field on its first line (ingress refuses those already) — is
 * permanent, with the reason.  A header block that runs into a stray line
 * gets the empty line before it, said in the note.  Signing is pure: a
 * retry signs again, with a new t=.
 */
#include "config.h"

#include "sc-dkim.h"
#include "sc-handler.h"
#include "sc-i18n.h"
#include "sc-list-unsubscribe.h"

static gboolean
sc_sign_run (ScStageContext *context, GError **error)
{
	ScDkimKeyInfo info = {0};
	g_autofree char *repair = NULL;
	GBytes *signed_message;

	if (sc_list_unsubscribe_is_personal (context->list)) {
		/* Each recipient's copy gets its own List-Unsubscribe at delivery,
		 * and a signature made now would not cover it (the field is over-
		 * signed): deliver signs every copy with sc_dkim_sign().  The key
		 * is checked here all the same, so that a broken one holds the
		 * message at this stage rather than failing it recipient by
		 * recipient; the message goes on in CRLF form. */
		g_autoptr(GError) error_local = NULL;

		if (!sc_dkim_list_check (context->list, &info, &error_local)) {
			g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT, "sign: %s",
				     error_local->message);
			return FALSE;
		}
		context->output = sc_dkim_normalize (context->current);
		context->note = g_strdup_printf (
		    _("left for deliver to sign each recipient's copy as d=%s s=%s (%s, %u-bit key): "
		      "unsubscribe-url names $recipient"),
		    context->list->dkim_domain, context->list->dkim_selector,
		    sc_dkim_algorithm_name (info.type), info.bits);
		return TRUE;
	}
	signed_message = sc_dkim_sign_full (context->list, context->current, &info, &repair, error);
	if (signed_message == NULL) {
		g_prefix_error (error, "sign: ");
		return FALSE;
	}
	context->output = signed_message;
	context->note = g_strdup_printf (_("signed as d=%s s=%s (%s, %u-bit key)%s%s"),
					 context->list->dkim_domain, context->list->dkim_selector,
					 sc_dkim_algorithm_name (info.type), info.bits,
					 repair != NULL ? "; " : "", repair != NULL ? repair : "");
	g_debug ("%s: %s", context->queue_id, context->note);
	return TRUE;
}

/* Whether stage @name may change the message (then it must come before sign). */
static gboolean
stage_rewrites (const ScConfig *config, const char *name)
{
	if (strcmp (name, "decorate") == 0)
		return TRUE;
	if (g_str_has_prefix (name, "exec:")) {
		const ScExecConfig *exec = sc_config_get_exec (config, name + strlen ("exec:"));
		return exec != NULL && exec->replace;
	}
	return FALSE;
}

static gboolean
sc_sign_check (const ScConfig *config,
	       const ScListConfig *list,
	       const char *stage_argument,
	       GPtrArray *warnings,
	       GError **error)
{
	g_autoptr(GError) error_local = NULL;
	gboolean after_sign = FALSE;

	for (gsize i = 0; list->pipeline[i] != NULL; i++) {
		const char *stage = list->pipeline[i];

		if (strcmp (stage, "sign") == 0) {
			after_sign = TRUE;
		} else if (after_sign && stage_rewrites (config, stage)) {
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s: “%s” comes after sign and may change the message, "
				       "which breaks the signature: put sign after it"),
				     SC_KEY_LIST_PIPELINE, stage);
			return FALSE;
		} else if (!after_sign && strcmp (stage, "deliver") == 0) {
			/* check() runs only for pipelines that name sign: it is later */
			g_set_error (error, SC_CONFIG_ERROR, SC_CONFIG_ERROR_INVALID,
				     _("%s: deliver comes before sign, so nothing it sends is "
				       "signed: put sign before deliver"),
				     SC_KEY_LIST_PIPELINE);
			return FALSE;
		}
	}
	if (!sc_dkim_list_settings_check (list, error))
		return FALSE;
	/* The key file is a run-time matter, like a mailer's password file:
	 * check-config fails on it and `run` logs it (sc-config.h, warnings),
	 * but it must not stop list software's inject, which may run as a
	 * user that cannot read the key; signing fails transiently until it
	 * is fixed, naming the file. */
	if (!sc_dkim_key_load (list->dkim_key_file, NULL, &error_local))
		g_ptr_array_add (warnings,
				 g_strdup_printf ("%s: [%s%s] %s %s",
						  config->path != NULL ? config->path : _("(built-in defaults)"),
						  SC_CONFIG_SECTION_LIST_PREFIX, list->id,
						  SC_KEY_LIST_DKIM_KEY_FILE, error_local->message));
	return TRUE;
}

const ScHandler sc_handler_sign = {
    .name = "sign",
    .run = sc_sign_run,
    .check = sc_sign_check,
    .inline_before_deliver = TRUE,
};
