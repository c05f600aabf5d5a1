/* sc-handler-registry.c — the table of built-in handlers, looked up by name.
 *
 * As OpenSMTPD's scheduler_backend.c: handlers are data.  "exec:NAME"
 * selects the exec handler with NAME as its argument.
 */
#include "config.h"

#include "sc-handler.h"
#include "sc-i18n.h"

static const ScHandler *const builtin_handlers[] = {
    &sc_handler_decorate,
    &sc_handler_archive,
    &sc_handler_exec,
    &sc_handler_deliver,
    &sc_handler_sign,
};

const ScHandler *
sc_handler_registry_lookup (const char *stage, char **out_argument, GError **error)
{
	g_autofree char *name = NULL;
	const char *colon;

	g_return_val_if_fail (stage != NULL, NULL);
	colon = strchr (stage, ':');
	name = colon != NULL ? g_strndup (stage, colon - stage) : g_strdup (stage);
	if (colon != NULL && (strcmp (name, "exec") != 0 || colon[1] == '\0')) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     _("unknown stage “%s” (only exec:NAME takes an argument)"),
			     stage);
		return NULL;
	}
	if (colon == NULL && strcmp (name, "exec") == 0) {
		g_set_error (error,
			     SC_CONFIG_ERROR,
			     SC_CONFIG_ERROR_INVALID,
			     _("stage “exec” needs a handler name: exec:NAME"));
		return NULL;
	}
	for (gsize i = 0; i < G_N_ELEMENTS (builtin_handlers); i++) {
		if (strcmp (builtin_handlers[i]->name, name) == 0) {
			if (out_argument != NULL)
				*out_argument = colon != NULL ? g_strdup (colon + 1) : NULL;
			return builtin_handlers[i];
		}
	}
	g_set_error (error,
		     SC_CONFIG_ERROR,
		     SC_CONFIG_ERROR_INVALID,
		     _("unknown stage “%s” (known: decorate, sign, archive, deliver, exec:NAME)"),
		     stage);
	return NULL;
}

void
sc_handler_registry_shutdown (void)
{
	for (gsize i = 0; i < G_N_ELEMENTS (builtin_handlers); i++) {
		if (builtin_handlers[i]->shutdown != NULL)
			builtin_handlers[i]->shutdown ();
	}
}

void
sc_stage_context_clear_outputs (ScStageContext *context)
{
	g_clear_pointer (&context->output, g_bytes_unref);
	g_clear_pointer (&context->note, g_free);
	g_clear_pointer (&context->mailer, g_free);
	g_clear_pointer (&context->notification_kind, g_free);
	g_clear_pointer (&context->notification_detail, g_free);
	g_clear_pointer (&context->last_updates, g_free);
	g_clear_pointer (&context->last_update_strings, g_string_chunk_free);
	context->n_last_updates = 0;
}

void
sc_stage_context_keep_last_updates (ScStageContext *context, const ScRecipientUpdate *updates, guint n_updates)
{
	g_return_if_fail (context->last_updates == NULL);
	context->last_update_strings = g_string_chunk_new (256);
	context->last_updates = g_new (ScRecipientUpdate, n_updates);
	context->n_last_updates = n_updates;
	for (guint i = 0; i < n_updates; i++) {
		ScRecipientUpdate *copy = &context->last_updates[i];
		*copy = updates[i];
		copy->status = g_string_chunk_insert_const (context->last_update_strings, updates[i].status);
		copy->reply = updates[i].reply != NULL
				  ? g_string_chunk_insert (context->last_update_strings, updates[i].reply)
				  : NULL;
		copy->mailer = updates[i].mailer != NULL
				   ? g_string_chunk_insert_const (context->last_update_strings, updates[i].mailer)
				   : NULL;
	}
}
