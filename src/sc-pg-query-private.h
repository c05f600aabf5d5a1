/* sc-pg-query-private.h — what sc-pg-query.c shares with the PostgreSQL
 * spool's operator actions (sc-pg-admin.c).  Not for other modules. */
#pragma once

#include "sc-pg-private.h"

G_BEGIN_DECLS

/* sc_pg_get_summary, with the row locked FOR UPDATE until the caller's
 * transaction ends: an operator action reads the state it checks and
 * changes it with no runner's claim in between (a claim running at the
 * time is waited for, then seen). */
ScMessageSummary *sc_pg_get_summary_for_update (ScPgSpool *pg, const char *queue_id, GError **error);

/* "50%_off" → "%50\%\_off%" for ILIKE … ESCAPE '\' (transfer full) */
char *sc_pg_like_pattern (const char *query);

/* The notification outbox's leader lock (sc-pg-notify.c): the two-int
 * advisory lock space's key (objsubid 2), apart from the runners'
 * single-bigint keys (objsubid 1). */
#define SC_PG_NOTIFIER_LOCK_CLASS 0x5c4e /* "SN" */
#define SC_PG_NOTIFIER_LOCK_ID 1

/* How long a claimed notification is kept from others when its notifier
 * neither marks it sent nor failed (it died, or lost its connection). */
#define SC_PG_NOTIFY_LEASE (2 * 60 * G_USEC_PER_SEC)

/* For tests (tests/test-pg-query.c checks their generic plans, as
 * test-spool.c does SQLite's query plans): the statements that must read
 * an index, never scan a table; @out_ordered: those that walk it in
 * order and need no sort either (keyset pages).  NULL-terminated. */
void sc_pg_query_plan_statements (const ScPgStatement *const **out_ordered,
				  const ScPgStatement *const **out_indexed);
void sc_pg_notify_plan_statements (const ScPgStatement *const **out_ordered,
				   const ScPgStatement *const **out_indexed);

G_END_DECLS
