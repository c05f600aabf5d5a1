/* sc-message-json.h — the JSON shapes of messages, shared by the CLI's
 * --json output and the admin API, so both promise the same contract. */
#pragma once

#include <json-glib/json-glib.h>

#include "sc-spool.h"

G_BEGIN_DECLS

/* {"id","state","list","sender","subject","message_id","last_error",...} */
JsonNode *sc_message_summary_to_json (const ScMessageSummary *summary);
/* The `show --json` object: the summary plus pipeline, stages, attempts,
 * recipients, next_attempt_at. (transfer full) */
JsonNode *sc_message_json_build (ScSpool *spool, const char *queue_id, GError **error);
/* {"queued":N,...,"total":N} */
JsonNode *sc_status_json_build (const gint64 counts[SC_STATE_LAST]);
/* Member helpers: NULL and 0 become JSON null. */
void sc_json_add_string (JsonBuilder *builder, const char *key, const char *value);
void sc_json_add_time (JsonBuilder *builder, const char *key, gint64 time);

/* (transfer full) pretty or compact text of @node, newline-terminated. */
char *sc_json_to_string (JsonNode *node, gboolean pretty);

G_END_DECLS
