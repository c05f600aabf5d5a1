/* placeholder: replaced by the real handler */
#include "config.h"
#include "sc-handler.h"
static gboolean
run (ScStageContext *context, GError **error)
{
	g_set_error (error, SC_STAGE_ERROR, SC_STAGE_ERROR_TRANSIENT, "not implemented yet");
	return FALSE;
}
const ScHandler sc_handler_decorate = {.name = "decorate", .run = run};
