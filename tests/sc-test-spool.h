/* sc-test-spool.h — what the spool tests (test-spool.c, SQLite-only, and
 * test-spool-contract.c, every backend) share: the fixed clock's units,
 * and verbs that assert their own success.  Public interface only. */
#pragma once

#include "sc-clock.h"
#include "sc-spool.h"

G_BEGIN_DECLS

#define SEC G_GINT64_CONSTANT (1000000)
#define MINUTE (60 * SEC)
#define HOUR (3600 * SEC)
/* 2026-11-23T12:00:00Z */
#define T0 (G_GINT64_CONSTANT (1795435200) * SEC)
#define LEASE (5 * MINUTE)
#define BUSY_TIMEOUT (100 * 1000) /* 100 ms */

#define PIPELINE "decorate;archive;exec:deliver"

/* Three recipients, Message-ID <id@example.org>. (transfer full) the queue id */
char *sc_test_spool_inject_full (ScSpool *spool, const char *list_id, const char *pipeline, const char *body,
				 gint64 now);
ScMessageSummary *sc_test_spool_summary (ScSpool *spool, const char *queue_id);
/* Leases up to @limit due messages for LEASE. */
GPtrArray *sc_test_spool_claim (ScSpool *spool, ScClock *clock, const char *owner, guint limit);
/* Claims exactly one message, which must be @queue_id when given. */
ScMessage *sc_test_spool_claim_one (ScSpool *spool, ScClock *clock, const char *owner, const char *queue_id);
/* Records one result; returns how many were stale (0 or 1). */
guint sc_test_spool_record (ScSpool *spool, const char *owner, const ScStageResult *result);
/* The result of @message's next stage, finished now. */
ScStageResult sc_test_spool_result_for (ScClock *clock,
					const ScMessage *message,
					ScOutcome outcome,
					ScMessageState next_state);
gint64 sc_test_spool_count_of (ScSpool *spool, const char *list_id, ScMessageState state);

/* What reclaim's probe answers, for tests. */
typedef struct {
	const char *const *alive; /* owners that are alive */
	gboolean all_alive;       /* every owner is alive */
	guint calls;
	GPtrArray *asked;         /* (nullable) owners asked about, in order */
	GArray *in_handler;       /* (nullable) ScLease: claims a handler ran; NULL: all */
	GArray *in_flight;        /* (nullable) ScLease: self's claims; NULL: all */
} ScTestOwnerCheck;

/* sc_spool_reclaim with @check as its probe; asserts it did not fail. */
guint sc_test_spool_reclaim (ScSpool *spool, const char *self, ScTestOwnerCheck *check, gint64 now,
			     guint crash_limit);

/* The same, for a test's fixture with ->spool and ->clock. */
#define inject_full(f, list, pipeline, body, now) sc_test_spool_inject_full ((f)->spool, list, pipeline, body, now)
#define inject(f, list)                                                                            \
	sc_test_spool_inject_full ((f)->spool, list, PIPELINE, "Subject: hi\r\n\r\nbody\r\n",      \
				   sc_clock_now ((f)->clock))
#define summary(f, queue_id) sc_test_spool_summary ((f)->spool, queue_id)
#define claim(f, owner, limit) sc_test_spool_claim ((f)->spool, (f)->clock, owner, limit)
#define claim_one(f, owner, queue_id) sc_test_spool_claim_one ((f)->spool, (f)->clock, owner, queue_id)
#define record(f, owner, result) sc_test_spool_record ((f)->spool, owner, result)
#define result_for(f, message, outcome, state) sc_test_spool_result_for ((f)->clock, message, outcome, state)
#define count_of(f, list, state) sc_test_spool_count_of ((f)->spool, list, state)

G_END_DECLS
