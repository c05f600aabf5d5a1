/* test-pg-query.c — what only the PostgreSQL spool's read, operator and
 * outbox verbs (sc-pg-query.c, sc-pg-admin.c, sc-pg-notify.c) must show;
 * their contracts are the contract suite's (test-spool-contract.c).
 *
 *  - search finds the same messages as SQLite's, in the same order, for
 *    queries with %, _, \ and non-ASCII letters — in a database whose
 *    collation (ICU en-US) would fold É to é if the search let it;
 *  - operator actions give SQLite's states, errors and audit rows;
 *  - state counts (delta rows, folded while writers run) equal a count of
 *    the messages at every moment, under concurrent writers;
 *  - two notifiers never hold the same outbox row: one sends at a time,
 *    and a row claimed by a notifier that died or lost its connection is
 *    not sent by another before its lease ends.
 *
 * A private server (tests/sc-test-postgres.c) for the whole binary, a
 * fresh database per case; every case skips, saying why, without one. */
#include "config.h"

#include <string.h>

#include "sc-test-postgres.h"
#include "sc-test-spool.h"
#include "sc-test-util.h"

/* HAVE_PG_SPOOL: libpq and the backend built (meson) */
#ifdef HAVE_PG_SPOOL
#include "sc-pg-query-private.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGconn, PQfinish)

static ScTestPostgres *server;

typedef struct {
	char *dbname;  /* (owned) */
	char *conninfo; /* (owned) */
	char *dir;     /* (owned) the SQLite spool's folder */
} Fixture;

static gboolean
skipped (void)
{
	if (server != NULL)
		return FALSE;
	g_test_skip (sc_test_postgres_why_unavailable () != NULL ? sc_test_postgres_why_unavailable ()
								: "no PostgreSQL server");
	return TRUE;
}

static PGconn *
connect_db (const char *dbname)
{
	g_autofree char *conninfo = sc_test_postgres_get_conninfo (server, dbname);
	PGconn *conn = PQconnectdb (conninfo);

	if (PQstatus (conn) != CONNECTION_OK)
		g_error ("connecting to %s: %s", conninfo, PQerrorMessage (conn));
	return conn;
}

/* The first column of the first row of @sql, as text. */
static char *
query_text (PGconn *conn, const char *sql)
{
	g_autoptr(PGresult) result = PQexec (conn, sql);
	char *value;

	if (PQresultStatus (result) != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
	value = g_strdup (PQgetvalue (result, 0, 0));
	return value;
}

static void
exec_ok (PGconn *conn, const char *sql)
{
	g_autoptr(PGresult) result = PQexec (conn, sql);

	if (PQresultStatus (result) != PGRES_COMMAND_OK && PQresultStatus (result) != PGRES_TUPLES_OK)
		g_error ("%s: %s", sql, PQresultErrorMessage (result));
}

static void
setup (Fixture *fixture, gconstpointer data)
{
	static guint serial;
	g_autoptr(GError) error = NULL;

	if (server == NULL)
		return;
	fixture->dbname = g_strdup_printf ("pg_query_%u", ++serial);
	if (data != NULL) {
		/* a collation that folds more than ASCII: what the search must not use */
		PGconn *conn = connect_db ("postgres");
		g_autofree char *sql = g_strdup_printf ("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'"
							" LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
							fixture->dbname);
		g_autoptr(PGresult) result = PQexec (conn, sql);
		if (PQresultStatus (result) != PGRES_COMMAND_OK) {
			g_test_message ("no ICU collation (%s): the database's own", PQresultErrorMessage (result));
			g_assert_true (sc_test_postgres_create_database (server, fixture->dbname, &error));
		}
		PQfinish (conn);
	} else {
		g_assert_true (sc_test_postgres_create_database (server, fixture->dbname, &error));
	}
	g_assert_no_error (error);
	fixture->conninfo = sc_test_postgres_get_conninfo (server, fixture->dbname);
	fixture->dir = sc_test_make_tmpdir ("sc-pg-query");
}

static void
teardown (Fixture *fixture, gconstpointer data)
{
	if (fixture->dir != NULL)
		sc_test_remove_tree (fixture->dir);
	g_free (fixture->dir);
	g_free (fixture->conninfo);
	g_free (fixture->dbname);
}

static ScSpool *
pg_open (Fixture *fixture, const char *application_name)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *conninfo =
	    application_name != NULL ? g_strdup_printf ("%s application_name=%s", fixture->conninfo, application_name)
				     : g_strdup (fixture->conninfo);
	ScSpool *spool = sc_pg_spool_open (conninfo, BUSY_TIMEOUT * 50, &error);

	g_assert_no_error (error);
	g_assert_nonnull (spool);
	return spool;
}

static void
pg_close (ScSpool *spool)
{
	spool->backend->close (spool);
}

/* ---- one spool of each kind, driven alike ---- */

typedef struct {
	ScSpool *spool;
	gboolean pg;
} Store;

static char *
store_inject (Store *store, const ScNewMessage *message)
{
	g_autoptr(GError) error = NULL;
	char *queue_id = NULL;

	if (store->pg) {
		guint duplicates = 0;
		g_assert_true (store->spool->backend->inject_batch (store->spool, &message, 1, 0, &queue_id,
								    &duplicates, NULL, NULL, &error));
	} else {
		queue_id = sc_spool_inject (store->spool, message, &error);
	}
	g_assert_no_error (error);
	g_assert_nonnull (queue_id);
	return queue_id;
}

static GPtrArray *
store_search (Store *store, const ScMessageSearch *search)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *found = store->pg ? sc_pg_search (store->spool, search, &error)
				     : sc_spool_search (store->spool, search, &error);

	g_assert_no_error (error);
	g_assert_nonnull (found);
	return found;
}

/* Claims the next due message and records a transient failure with
 * @reason: the message is deferred with it as last_error. */
static void
store_fail_next (Store *store, gint64 now, const char *reason)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) claimed = NULL;
	ScStageResult result = {0};
	ScStageResult *results[] = {&result};
	ScMessage *message;

	claimed = store->pg ? store->spool->backend->claim_within (store->spool, "runner", now, now + LEASE, 1,
								   G_MAXUINT64, TRUE, &error)
			    : sc_spool_claim (store->spool, "runner", now, now + LEASE, 1, &error);
	g_assert_no_error (error);
	g_assert_cmpuint (claimed->len, ==, 1);
	message = claimed->pdata[0];
	result.id = message->id;
	result.lease_generation = message->lease_generation;
	result.stage = sc_message_next_stage (message);
	result.outcome = SC_OUTCOME_TRANSIENT;
	result.started_at = now;
	result.finished_at = now;
	result.error = reason;
	result.next_state = SC_STATE_DEFERRED;
	result.next_attempt_at = now + HOUR;
	result.attempts = 1;
	if (store->pg) {
		g_assert_true (store->spool->backend->commit_batch (store->spool, "runner", NULL, 0, results, 1, TRUE, &error));
	} else {
		guint stale = 99;
		g_assert_true (sc_spool_record_results (store->spool, "runner", results, 1, &stale, &error));
		g_assert_cmpuint (stale, ==, 0);
	}
	g_assert_no_error (error);
	g_assert_true (result.applied);
}

typedef struct {
	const char *subject;
	const char *sender;
	const char *message_id;
	const char *list_id;
	const char *pipeline;
	const char *fail; /* (nullable) a transient failure's reason: last_error */
} Sample;

/* Subjects are unique: a search's result is told by them.  The failures
 * come first: each is then the only message due when it is claimed. */
static const Sample samples[] = {
    {"quiet", "q@example.org", "<q@example.org>", "a.example.org", PIPELINE, "Connection REFUSED: 50%_\\ busy"},
    {"ÅNGSTRÖM", "physics@example.se", "<åå@example.se>", "b.example.org", PIPELINE, "timeout in ångström"},
    {"50% off today", "sales@example.org", "<a1@example.org>", "a.example.org", PIPELINE, NULL},
    {"500 offers", "sales@example.org", "<a2@example.org>", "a.example.org", PIPELINE, NULL},
    {"snake_case names", "dev@example.org", "<b1@example.org>", "b.example.org", PIPELINE, NULL},
    {"snakeXcase names", "dev@example.org", "<b2@example.org>", "b.example.org", PIPELINE, NULL},
    {"C:\\path\\to", "win@example.org", "<c1@example.org>", "a.example.org", PIPELINE, NULL},
    {"École d'été", "prof@example.fr", "<d1@example.fr>", "b.example.org", PIPELINE, NULL},
    {"école primaire", "prof@example.fr", "<d2@example.fr>", "a.example.org", "archive", NULL},
    {"ÉCOLE NORMALE", "prof@example.fr", "<d3@example.fr>", "b.example.org", PIPELINE, NULL},
    {"Straße und STRASSE", "de@example.de", "<e1@example.de>", "a.example.org", PIPELINE, NULL},
    {"HELLO World", "Hello@Example.ORG", "<HeLLo@example.org>", "b.example.org", PIPELINE, NULL},
    {"plain", "plain@example.org", "<plain@example.org>", "a.example.org", PIPELINE, NULL},
};

static void
fill (Store *store)
{
	static const char *const recipients[] = {"x@example.org", NULL};

	for (guint i = 0; i < G_N_ELEMENTS (samples); i++) {
		g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: x\r\n\r\nbody\r\n", 21);
		ScNewMessage message = {
		    .list_id = samples[i].list_id,
		    .sender = samples[i].sender,
		    .recipients = recipients,
		    .pipeline = samples[i].pipeline,
		    .subject = samples[i].subject,
		    .message_id = samples[i].message_id,
		    .raw = raw,
		    .now = T0 + i * SEC,
		};
		g_autofree char *queue_id = store_inject (store, &message);
		if (samples[i].fail != NULL)
			store_fail_next (store, T0 + i * SEC, samples[i].fail);
	}
}

/* The subjects found, in order, joined by "|". */
static char *
found_subjects (GPtrArray *found)
{
	GString *out = g_string_new (NULL);

	for (guint i = 0; i < found->len; i++)
		g_string_append_printf (out, "%s%s", i > 0 ? "|" : "",
					((ScMessageSummary *) found->pdata[i])->subject);
	return g_string_free (out, FALSE);
}

/* A search's result on both, compared; each page of @page rows too. */
static void
assert_same_search (Store *sqlite, Store *pg, const ScMessageSearch *search, guint page)
{
	g_autoptr(GPtrArray) a = store_search (sqlite, search);
	g_autoptr(GPtrArray) b = store_search (pg, search);
	g_autofree char *sa = found_subjects (a);
	g_autofree char *sb = found_subjects (b);
	ScMessageSearch paged = *search;
	g_autoptr(GString) walked = g_string_new (NULL);

	g_test_message ("q=%s state=%s list=%s stage=%s: %s", search->query,
			search->has_state ? sc_message_state_to_string (search->state) : "*",
			search->list_id, search->stage, sb);
	g_assert_cmpstr (sa, ==, sb);
	for (guint i = 0; i < a->len; i++) {
		ScMessageSummary *x = a->pdata[i];
		ScMessageSummary *y = b->pdata[i];
		g_assert_cmpint (x->id, ==, y->id);
		g_assert_cmpint (x->state, ==, y->state);
		g_assert_cmpstr (x->last_error, ==, y->last_error);
		g_assert_cmpint (x->next_attempt_at, ==, y->next_attempt_at);
		g_assert_cmpint (x->size, ==, y->size);
	}
	/* keyset pages add up to the whole, on PostgreSQL */
	paged.limit = page;
	paged.after_id = 0;
	for (;;) {
		g_autoptr(GPtrArray) part = store_search (pg, &paged);
		g_autofree char *s = found_subjects (part);
		if (part->len == 0)
			break;
		g_assert_cmpuint (part->len, <=, page);
		g_string_append_printf (walked, "%s%s", walked->len > 0 ? "|" : "", s);
		paged.after_id = ((ScMessageSummary *) part->pdata[part->len - 1])->id;
	}
	g_assert_cmpstr (walked->str, ==, sb);
}

static void
test_search_same_as_sqlite (Fixture *fixture, gconstpointer data)
{
	static const char *const queries[] = {
	    "%", "_", "\\", "50%", "50%_\\", "0%", "%_", "snake_case", "e_c", "C:\\p", "école", "ÉCOLE",
	    "École", "éco", "ÉCO", "eco", "ECOLE", "ß", "STRASSE", "strasse", "hello", "HELLO",
	    "example.ORG", "<hello@", "refused", "REFUSED", "ångström", "ÅNGSTRÖM", "å", "Å", "'", "\"",
	    "none-such", "",
	};
	g_autoptr(GError) error = NULL;
	g_autoptr(PGconn) conn = NULL;
	Store sqlite = {0};
	Store pg = {0};

	if (skipped ())
		return;
	sqlite.spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
	pg.spool = pg_open (fixture, NULL);
	pg.pg = TRUE;
	{
		g_autofree char *provider = NULL;
		conn = connect_db (fixture->dbname);
		provider = query_text (conn, "SELECT datlocprovider FROM pg_database WHERE datname = current_database()");
		g_test_message ("database collation provider: %s", provider);
	}
	fill (&sqlite);
	fill (&pg);

	for (guint i = 0; i < G_N_ELEMENTS (queries); i++) {
		ScMessageSearch search = {.query = queries[i]};
		assert_same_search (&sqlite, &pg, &search, 2);
		/* and under each filter shape */
		search.list_id = "b.example.org";
		assert_same_search (&sqlite, &pg, &search, 3);
		search.has_state = TRUE;
		search.state = SC_STATE_QUEUED;
		assert_same_search (&sqlite, &pg, &search, 1);
		search.list_id = NULL;
		search.state = SC_STATE_DEFERRED;
		assert_same_search (&sqlite, &pg, &search, 1);
		search.has_state = FALSE;
		search.stage = "archive";
		assert_same_search (&sqlite, &pg, &search, 2);
		search.stage = "decorate";
		assert_same_search (&sqlite, &pg, &search, 5);
	}
	/* what the ICU collation alone would have found: É for é */
	{
		ScMessageSearch search = {.query = "éc"};
		g_autoptr(GPtrArray) found = store_search (&pg, &search);
		g_autofree char *subjects = found_subjects (found);
		g_assert_cmpstr (subjects, ==, "école primaire");
	}
	/* a queue id, whole and by a piece in another case */
	{
		g_autoptr(GPtrArray) all = store_search (&pg, &(ScMessageSearch) {0});
		ScMessageSummary *third = all->pdata[2];
		g_autofree char *upper = g_ascii_strup (third->queue_id + 2, 6);
		ScMessageSearch search = {.query = third->queue_id};
		g_autoptr(GPtrArray) found = store_search (&pg, &search);
		g_assert_cmpuint (found->len, ==, 1);
		g_assert_cmpstr (((ScMessageSummary *) found->pdata[0])->queue_id, ==, third->queue_id);
		g_clear_pointer (&found, g_ptr_array_unref);
		search.query = upper;
		found = store_search (&pg, &search);
		g_assert_cmpuint (found->len, >=, 1);
	}
	sc_spool_close (sqlite.spool);
	pg_close (pg.spool);
}

/* ---- operator actions: SQLite's states, errors and audit rows ---- */

typedef enum {
	DO_HOLD,
	DO_RELEASE,
	DO_DELETE,
	DO_RETRY,
	DO_RETRY_FROM,
	DO_RETRY_FROM_BAD,
} Do;

static int
store_act (Store *store, Do what, const char *queue_id, const ScAuditContext *audit)
{
	g_autoptr(GError) error = NULL;
	gboolean ok = FALSE;

	switch (what) {
	case DO_HOLD:
		ok = store->pg ? sc_pg_hold (store->spool, queue_id, NULL, audit, &error)
			       : sc_spool_hold (store->spool, queue_id, NULL, audit, &error);
		break;
	case DO_RELEASE:
		ok = store->pg ? sc_pg_release (store->spool, queue_id, audit, &error)
			       : sc_spool_release (store->spool, queue_id, audit, &error);
		break;
	case DO_DELETE:
		ok = store->pg ? sc_pg_delete_message (store->spool, queue_id, audit, &error)
			       : sc_spool_delete (store->spool, queue_id, audit, &error);
		break;
	case DO_RETRY:
	case DO_RETRY_FROM:
	case DO_RETRY_FROM_BAD: {
		const char *from = what == DO_RETRY ? NULL : what == DO_RETRY_FROM ? "archive" : "no-such-stage";
		ok = store->pg ? sc_pg_retry (store->spool, queue_id, from, audit, &error)
			       : sc_spool_retry (store->spool, queue_id, from, audit, &error);
		break;
	}
	}
	if (ok) {
		g_assert_no_error (error);
		return -1;
	}
	g_assert_nonnull (error);
	g_assert_true (error->domain == SC_SPOOL_ERROR);
	return error->code;
}

static char *
store_describe (Store *store)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) all = store_search (store, &(ScMessageSearch) {0});
	g_autoptr(GPtrArray) audit = store->pg ? sc_pg_list_audit (store->spool, 0, 0, &error)
					       : sc_spool_list_audit (store->spool, 0, 0, &error);
	GString *out = g_string_new (NULL);
	gint64 counts[SC_STATE_LAST];

	g_assert_no_error (error);
	for (guint i = 0; i < all->len; i++) {
		ScMessageSummary *s = all->pdata[i];
		g_autoptr(GPtrArray) stages = store->pg ? sc_pg_get_stages (store->spool, s->id, &error)
							: sc_spool_get_stages (store->spool, s->id, &error);
		g_autoptr(GPtrArray) recipients = store->pg ? sc_pg_get_recipients (store->spool, s->id, &error)
							    : sc_spool_get_recipients (store->spool, s->id, &error);
		g_assert_no_error (error);
		g_string_append_printf (out, "%s %s cycle=%u attempts=%u next=%" G_GINT64_FORMAT " hold=%s stages=%u",
					s->subject, sc_message_state_to_string (s->state), s->cycle, s->attempts,
					s->next_attempt_at, s->hold_reason, stages->len);
		for (guint j = 0; j < recipients->len; j++)
			g_string_append_printf (out, " %s", ((ScRecipientRecord *) recipients->pdata[j])->status);
		g_string_append_c (out, '\n');
	}
	for (guint i = 0; i < audit->len; i++) {
		ScAuditEntry *row = audit->pdata[i];
		g_string_append_printf (out, "audit %" G_GINT64_FORMAT " %s %s %s %s\n", row->at, row->actor,
					row->action, row->queue_id != NULL ? "(id)" : "-", row->detail);
	}
	g_assert_true (store->pg ? sc_pg_count_states (store->spool, NULL, counts, &error)
				 : sc_spool_count_states (store->spool, NULL, counts, &error));
	g_assert_no_error (error);
	for (guint i = 0; i < SC_STATE_LAST; i++)
		g_string_append_printf (out, "%s=%" G_GINT64_FORMAT " ", sc_message_state_to_string (i), counts[i]);
	return g_string_free (out, FALSE);
}

static void
test_actions_same_as_sqlite (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	Store stores[2] = {{0}, {.pg = TRUE}};
	GPtrArray *ids[2] = {NULL, NULL};
	char *described[2] = {NULL, NULL};
	GString *codes[2] = {g_string_new (NULL), g_string_new (NULL)};

	if (skipped ())
		return;
	stores[0].spool = sc_spool_open (fixture->dir, BUSY_TIMEOUT, &error);
	g_assert_no_error (error);
	stores[1].spool = pg_open (fixture, NULL);
	for (guint s = 0; s < 2; s++) {
		fill (&stores[s]);
		ids[s] = store_search (&stores[s], &(ScMessageSearch) {0});
	}
	for (guint s = 0; s < 2; s++) {
		Store *store = &stores[s];
		g_autoptr(GPtrArray) claimed = NULL;
		ScAuditContext audit = {.actor = "alice", .remote = "127.0.0.1", .now = T0 + HOUR};

		/* one message active: every action refuses it */
		claimed = store->pg ? store->spool->backend->claim_within (store->spool, "runner", T0 + MINUTE,
									   T0 + HOUR, 1, G_MAXUINT64, TRUE, &error)
				    : sc_spool_claim (store->spool, "runner", T0 + MINUTE, T0 + HOUR, 1, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (claimed->len, ==, 1);
		/* every action on every message, twice over, in one order */
		for (guint round = 0; round < 2; round++) {
			for (Do what = DO_HOLD; what <= DO_RETRY_FROM_BAD; what++) {
				for (guint i = 0; i < ids[s]->len; i++) {
					ScMessageSummary *m = ids[s]->pdata[(i * 7 + what + round) % ids[s]->len];
					if (what == DO_DELETE && (i % 4) != round)
						continue; /* keep most for later actions */
					audit.now += SEC;
					g_string_append_printf (codes[s], "%d,", store_act (store, what, m->queue_id, &audit));
				}
			}
		}
		g_assert_cmpint (store_act (store, DO_HOLD, "no-such-id", &audit), ==, SC_SPOOL_ERROR_NOT_FOUND);
		described[s] = store_describe (store);
	}
	g_test_message ("%s", described[1]);
	g_assert_cmpstr (codes[0]->str, ==, codes[1]->str);
	g_assert_cmpstr (described[0], ==, described[1]);
	/* the bulk retries */
	for (guint s = 0; s < 2; s++) {
		ScAuditContext audit = {.actor = "bob", .now = T0 + 2 * HOUR};
		guint count = 99;
		g_autoptr(GPtrArray) queue_ids = g_ptr_array_new ();
		gboolean ok;

		ok = stores[s].pg ? sc_pg_retry_matching (stores[s].spool, SC_STATE_HELD, NULL, &audit, &count, &error)
				  : sc_spool_retry_matching (stores[s].spool, SC_STATE_HELD, NULL, &audit, &count, &error);
		g_assert_false (ok);
		g_assert_error (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID);
		g_clear_error (&error);
		ok = stores[s].pg
			 ? sc_pg_retry_matching (stores[s].spool, SC_STATE_DEFERRED, "a.example.org", &audit, &count, &error)
			 : sc_spool_retry_matching (stores[s].spool, SC_STATE_DEFERRED, "a.example.org", &audit, &count,
						    &error);
		g_assert_no_error (error);
		g_assert_true (ok);
		g_string_append_printf (codes[s], "matching=%u,", count);
		for (guint i = 0; i < ids[s]->len; i++)
			g_ptr_array_add (queue_ids, ((ScMessageSummary *) ids[s]->pdata[i])->queue_id);
		count = 5;
		audit.now += SEC;
		ok = stores[s].pg ? sc_pg_retry_list (stores[s].spool, queue_ids, "q=all", &audit, &count, &error)
				  : sc_spool_retry_list (stores[s].spool, queue_ids, "q=all", &audit, &count, &error);
		g_assert_no_error (error);
		g_assert_true (ok);
		g_string_append_printf (codes[s], "list=%u", count);
		g_clear_pointer (&described[s], g_free);
		described[s] = store_describe (&stores[s]);
	}
	g_test_message ("%s", described[1]);
	g_assert_cmpstr (codes[0]->str, ==, codes[1]->str);
	g_assert_cmpstr (described[0], ==, described[1]);
	for (guint s = 0; s < 2; s++) {
		g_string_free (codes[s], TRUE);
		g_ptr_array_unref (ids[s]);
		g_free (described[s]);
	}
	sc_spool_close (stores[0].spool);
	pg_close (stores[1].spool);
}

/* ---- state counts under concurrent writers ---- */

#define WRITERS 4
#define WRITER_MESSAGES 150

typedef struct {
	Fixture *fixture;
	guint index;
	gint *stop;
	guint done;
	guint temporary; /* deadlocks, lock timeouts: tried again */
} Writer;

static gpointer
writer_thread (gpointer data)
{
	Writer *writer = data;
	ScSpool *spool = pg_open (writer->fixture, NULL);
	g_autoptr(GPtrArray) mine = g_ptr_array_new_with_free_func (g_free);
	g_autoptr(GRand) rand = g_rand_new_with_seed (writer->index + 1);
	static const char *const recipients[] = {"x@example.org", NULL};
	ScAuditContext audit = {.actor = "writer", .now = T0};

	for (guint i = 0; i < WRITER_MESSAGES; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) raw = g_bytes_new_static ("Subject: x\r\n\r\nbody\r\n", 21);
		g_autofree char *subject = g_strdup_printf ("w%u-%u", writer->index, i);
		const char *list = (i % 3) == 0 ? "a.example.org" : (i % 3) == 1 ? "b.example.org" : "c.example.org";
		ScNewMessage message = {
		    .list_id = list, .sender = "s@example.org", .recipients = recipients, .pipeline = PIPELINE,
		    .subject = subject, .raw = raw, .now = T0,
		};
		const ScNewMessage *batch[] = {&message};
		char *queue_id = NULL;
		guint duplicates = 0;
		guint action = g_rand_int_range (rand, 0, 6);

		if (spool->backend->inject_batch (spool, batch, 1, 0, &queue_id, &duplicates, NULL, NULL, &error))
			g_ptr_array_add (mine, queue_id);
		else if (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY))
			writer->temporary++;
		else
			g_error ("inject: %s", error->message);
		g_clear_error (&error);
		/* act on one of this writer's messages (another writer claims it meanwhile, maybe) */
		if (mine->len > 0) {
			const char *target = mine->pdata[g_rand_int_range (rand, 0, mine->len)];
			gboolean ok = TRUE;
			audit.now += SEC;
			switch (action) {
			case 0:
				ok = sc_pg_hold (spool, target, NULL, &audit, &error);
				break;
			case 1:
				ok = sc_pg_release (spool, target, &audit, &error);
				break;
			case 2:
				ok = sc_pg_delete_message (spool, target, &audit, &error);
				break;
			case 3:
				ok = sc_pg_retry (spool, target, NULL, &audit, &error);
				break;
			default: {
				g_autoptr(GPtrArray) claimed = spool->backend->claim_within (
				    spool, "writer", T0 + HOUR, T0 + 2 * HOUR, 2, G_MAXUINT64, TRUE, &error);
				ok = claimed != NULL;
				break;
			}
			}
			if (!ok) {
				if (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY))
					writer->temporary++;
				else if (!g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_INVALID) &&
					 !g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_NOT_FOUND))
					g_error ("action %u on %s: %s", action, target, error->message);
			}
		}
		writer->done++;
	}
	pg_close (spool);
	return NULL;
}

static gpointer
folder_thread (gpointer data)
{
	Writer *folder = data;
	ScSpool *spool = pg_open (folder->fixture, NULL);

	while (!g_atomic_int_get (folder->stop)) {
		g_autoptr(GError) error = NULL;
		if (!sc_pg_fold_state_counts (SC_PG_SPOOL (spool), &error)) {
			g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY));
			folder->temporary++;
		}
		folder->done++;
		g_usleep (2000);
	}
	pg_close (spool);
	return NULL;
}

/* In one snapshot: the counts the spool keeps and a count of the rows,
 * per (state, list), as "state/list=n" lines; equal or the test fails. */
static void
assert_counts_exact (PGconn *conn, ScSpool *spool, gboolean final)
{
	static const char *const kept =
	    "SELECT coalesce(string_agg(state || '/' || list_id || '=' || n, ' ' ORDER BY state, list_id), '')"
	    " FROM (SELECT state, list_id, sum(count) AS n FROM state_counts GROUP BY state, list_id"
	    " HAVING sum(count) <> 0) AS kept";
	static const char *const real =
	    "SELECT coalesce(string_agg(state || '/' || list_id || '=' || n, ' ' ORDER BY state, list_id), '')"
	    " FROM (SELECT state, list_id, count(*) AS n FROM messages GROUP BY state, list_id) AS real";
	g_autofree char *a = NULL;
	g_autofree char *b = NULL;

	exec_ok (conn, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	a = query_text (conn, kept);
	b = query_text (conn, real);
	exec_ok (conn, "COMMIT");
	g_assert_cmpstr (a, ==, b);
	if (final) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GString) via_verb = g_string_new (NULL);
		g_autoptr(GString) via_rows = g_string_new (NULL);
		static const char *const lists[] = {NULL, "a.example.org", "b.example.org", "c.example.org", "none"};
		g_test_message ("%s", b);
		for (guint l = 0; l < G_N_ELEMENTS (lists); l++) {
			gint64 counts[SC_STATE_LAST];
			g_assert_true (sc_pg_count_states (spool, lists[l], counts, &error));
			g_assert_no_error (error);
			for (guint s = 0; s < SC_STATE_LAST; s++) {
				g_autofree char *sql = g_strdup_printf (
				    "SELECT count(*) FROM messages WHERE state = '%s'%s%s%s",
				    sc_message_state_to_string (s), lists[l] != NULL ? " AND list_id = '" : "",
				    lists[l] != NULL ? lists[l] : "", lists[l] != NULL ? "'" : "");
				g_autofree char *n = query_text (conn, sql);
				g_string_append_printf (via_verb, "%" G_GINT64_FORMAT " ", counts[s]);
				g_string_append_printf (via_rows, "%s ", n);
			}
		}
		g_assert_cmpstr (via_verb->str, ==, via_rows->str);
	}
}

static void
test_counts_concurrent (Fixture *fixture, gconstpointer data)
{
	Writer writers[WRITERS];
	GThread *threads[WRITERS];
	Writer folder = {0};
	GThread *folder_th;
	gint stop = 0;
	g_autoptr(PGconn) conn = NULL;
	ScSpool *spool;
	guint checks = 0;
	gboolean running = TRUE;

	if (skipped ())
		return;
	spool = pg_open (fixture, NULL); /* creates the schema before the writers come */
	conn = connect_db (fixture->dbname);
	folder = (Writer) {.fixture = fixture, .stop = &stop};
	folder_th = g_thread_new ("folder", folder_thread, &folder);
	for (guint i = 0; i < WRITERS; i++) {
		writers[i] = (Writer) {.fixture = fixture, .index = i, .stop = &stop};
		threads[i] = g_thread_new ("writer", writer_thread, &writers[i]);
	}
	while (running) {
		running = FALSE;
		for (guint i = 0; i < WRITERS; i++)
			running |= g_atomic_int_get ((gint *) &writers[i].done) < WRITER_MESSAGES;
		assert_counts_exact (conn, spool, FALSE);
		checks++;
	}
	for (guint i = 0; i < WRITERS; i++) {
		g_thread_join (threads[i]);
		g_test_message ("writer %u: %u temporary errors", i, writers[i].temporary);
	}
	g_atomic_int_set (&stop, 1);
	g_thread_join (folder_th);
	g_test_message ("%u snapshot checks, %u folds (%u temporary)", checks, folder.done, folder.temporary);
	g_assert_cmpuint (checks, >, 1);
	g_assert_cmpuint (folder.done, >, 1);
	assert_counts_exact (conn, spool, TRUE);
	/* folded: one row per (state, list) */
	{
		g_autoptr(GError) error = NULL;
		g_autofree char *rows = NULL;
		g_autofree char *groups = NULL;
		g_assert_true (sc_pg_fold_state_counts (SC_PG_SPOOL (spool), &error));
		g_assert_no_error (error);
		rows = query_text (conn, "SELECT count(*) FROM state_counts");
		groups = query_text (conn, "SELECT count(*) FROM (SELECT DISTINCT state, list_id FROM messages) AS g");
		g_assert_cmpstr (rows, ==, groups);
		assert_counts_exact (conn, spool, TRUE);
	}
	pg_close (spool);
}

/* ---- the notification outbox: one notifier at a time ---- */

#define EVENTS 300

typedef struct {
	Fixture *fixture;
	const char *name;
	GMutex *lock;
	GHashTable *claimed_by; /* id → name of the notifier that claimed it */
	guint doubles;
	guint claimed;
	gint *stop;
} Notifier;

static gpointer
notifier_thread (gpointer data)
{
	Notifier *notifier = data;
	ScSpool *spool = pg_open (notifier->fixture, notifier->name);

	while (!g_atomic_int_get (notifier->stop)) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) rows = sc_pg_notify_claim (spool, T0, 7, &error);
		g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint64));

		g_assert_no_error (error);
		for (guint i = 0; i < rows->len; i++) {
			ScNotification *row = rows->pdata[i];
			g_mutex_lock (notifier->lock);
			if (g_hash_table_contains (notifier->claimed_by, &row->id))
				notifier->doubles++;
			g_hash_table_insert (notifier->claimed_by, g_memdup2 (&row->id, sizeof row->id),
					     (gpointer) notifier->name);
			g_mutex_unlock (notifier->lock);
			g_array_append_val (ids, row->id);
		}
		notifier->claimed += rows->len;
		if (ids->len > 0) {
			g_usleep (1000); /* the POST */
			g_assert_true (sc_pg_notify_mark_sent (spool, (gint64 *) ids->data, ids->len, T0, &error));
			g_assert_no_error (error);
		} else {
			g_usleep (500);
		}
	}
	pg_close (spool);
	return NULL;
}

static guint64
pending_due (ScSpool *spool, gint64 now)
{
	g_autoptr(GError) error = NULL;
	guint64 count = 0;

	g_assert_true (sc_pg_notify_count_pending (spool, now, &count, &error));
	g_assert_no_error (error);
	return count;
}

static GPtrArray *
outbox_claim (ScSpool *spool, gint64 now, guint limit)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *rows = sc_pg_notify_claim (spool, now, limit, &error);

	g_assert_no_error (error);
	g_assert_nonnull (rows);
	return rows;
}

static void
test_notify_one_notifier (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GHashTable) claimed_by = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
	GMutex lock;
	gint stop = 0;
	Notifier notifiers[3];
	GThread *threads[3];
	ScSpool *spool;

	if (skipped ())
		return;
	g_mutex_init (&lock);
	spool = pg_open (fixture, NULL);
	for (guint i = 0; i < EVENTS; i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *detail = g_strdup_printf ("event %u", i);
		g_assert_true (sc_pg_notify_insert_event (spool, "backlog.high", detail, T0 - i, &error));
		g_assert_no_error (error);
	}
	g_assert_cmpuint (pending_due (spool, T0), ==, EVENTS);
	for (guint i = 0; i < 3; i++) {
		static const char *const names[] = {"notifier-a", "notifier-b", "notifier-c"};
		notifiers[i] = (Notifier) {.fixture = fixture, .name = names[i], .lock = &lock,
					   .claimed_by = claimed_by, .stop = &stop};
		threads[i] = g_thread_new (names[i], notifier_thread, &notifiers[i]);
	}
	for (guint waited = 0; pending_due (spool, G_MAXINT64) > 0; waited++) {
		g_assert_cmpuint (waited, <, 3000);
		g_usleep (10 * 1000);
	}
	g_atomic_int_set (&stop, 1);
	for (guint i = 0; i < 3; i++) {
		g_thread_join (threads[i]);
		g_test_message ("%s claimed %u", notifiers[i].name, notifiers[i].claimed);
		g_assert_cmpuint (notifiers[i].doubles, ==, 0);
	}
	g_assert_cmpuint (g_hash_table_size (claimed_by), ==, EVENTS);
	g_assert_cmpuint (notifiers[0].claimed + notifiers[1].claimed + notifiers[2].claimed, ==, EVENTS);
	/* one sent them all: the first to claim holds the outbox while it lives */
	g_assert_cmpuint ((notifiers[0].claimed == EVENTS) + (notifiers[1].claimed == EVENTS) +
			      (notifiers[2].claimed == EVENTS), ==, 1);
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(GPtrArray) outbox = sc_pg_list_notifications (spool, 0, 0, &error);
		g_assert_no_error (error);
		g_assert_cmpuint (outbox->len, ==, EVENTS);
		for (guint i = 0; i < outbox->len; i++) {
			ScNotificationEntry *entry = outbox->pdata[i];
			g_assert_cmpstr (entry->state, ==, "sent");
			g_assert_cmpuint (entry->attempts, ==, 1);
			g_assert_cmpint (entry->sent_at, ==, T0);
		}
	}
	g_mutex_clear (&lock);
	pg_close (spool);
}

/* The notifier holding the outbox dies with rows claimed: the next one
 * takes the outbox over at once, those rows when their lease ends. */
static void
test_notify_takeover (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScSpool *a;
	ScSpool *b;
	ScSpool *observer;
	g_autoptr(GPtrArray) first = NULL;
	g_autoptr(GPtrArray) none = NULL;
	g_autoptr(GPtrArray) rest = NULL;
	g_autoptr(GPtrArray) late = NULL;
	gint64 next = 0;

	if (skipped ())
		return;
	observer = pg_open (fixture, NULL);
	for (guint i = 0; i < 10; i++) {
		g_assert_true (sc_pg_notify_insert_event (observer, "mailer.down", "x", T0 + i, &error));
		g_assert_no_error (error);
	}
	a = pg_open (fixture, "notifier-a");
	b = pg_open (fixture, "notifier-b");
	first = outbox_claim (a, T0 + HOUR, 4);
	g_assert_cmpuint (first->len, ==, 4);
	/* earliest due first */
	for (guint i = 0; i < 4; i++)
		g_assert_cmpint (((ScNotification *) first->pdata[i])->created_at, ==, T0 + i);
	/* a holds the outbox: b, with rows due, gets none */
	none = outbox_claim (b, T0 + HOUR, 100);
	g_assert_cmpuint (none->len, ==, 0);
	/* the claimed rows are not due while their lease runs */
	g_assert_cmpuint (pending_due (observer, T0 + HOUR), ==, 6);
	g_assert_true (sc_pg_notify_next_due (observer, &next, &error));
	g_assert_cmpint (next, ==, T0 + 4);

	/* a dies: b takes the outbox over as soon as the server has ended
	 * a's session (a moment after the socket closed), not a's rows */
	pg_close (a);
	for (guint waited = 0;; waited++) {
		rest = outbox_claim (b, T0 + HOUR, 100);
		if (rest->len > 0)
			break;
		g_assert_cmpuint (waited, <, 500);
		g_clear_pointer (&rest, g_ptr_array_unref);
		g_usleep (10 * 1000);
	}
	g_assert_cmpuint (rest->len, ==, 6);
	g_assert_cmpint (((ScNotification *) rest->pdata[0])->created_at, ==, T0 + 4);
	/* b's first send failed: due again at its own time, not before */
	{
		gint64 ids[6];
		for (guint i = 0; i < 6; i++)
			ids[i] = ((ScNotification *) rest->pdata[i])->id;
		g_assert_true (sc_pg_notify_mark_failed (b, ids, 6, T0 + HOUR + MINUTE, "503", &error));
		g_assert_no_error (error);
	}
	g_clear_pointer (&late, g_ptr_array_unref);
	late = outbox_claim (b, T0 + HOUR + SEC, 100);
	g_assert_cmpuint (late->len, ==, 0);
	/* a's rows come back when their lease ends (it was taken at T0 + HOUR) */
	g_clear_pointer (&late, g_ptr_array_unref);
	late = outbox_claim (b, T0 + HOUR + 2 * MINUTE - 1, 100);
	g_assert_cmpuint (late->len, ==, 6); /* b's failed ones, due at + 1 min */
	g_clear_pointer (&late, g_ptr_array_unref);
	late = outbox_claim (b, T0 + HOUR + 2 * MINUTE + 2 * MINUTE, 100);
	g_assert_cmpuint (late->len, ==, 4 + 6);
	for (guint i = 0; i < 4; i++)
		g_assert_cmpint (((ScNotification *) late->pdata[i])->id, ==, ((ScNotification *) first->pdata[i])->id);
	{
		g_autoptr(GPtrArray) outbox = sc_pg_list_notifications (observer, 0, 0, &error);
		g_assert_no_error (error);
		for (guint i = 0; i < outbox->len; i++) {
			ScNotificationEntry *entry = outbox->pdata[i];
			g_assert_cmpstr (entry->state, ==, "pending");
			g_assert_cmpuint (entry->attempts, ==, entry->created_at >= T0 + 4 ? 1 : 0);
		}
	}
	pg_close (b);
	pg_close (observer);
}

/* The notifier holding the outbox loses its connection mid-send: another
 * takes the outbox over but does not send the rows in flight; the first,
 * reconnected, records them sent. */
static void
test_notify_connection_lost (Fixture *fixture, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	ScSpool *a;
	ScSpool *b;
	g_autoptr(GPtrArray) flight = NULL;
	g_autoptr(GPtrArray) rows = NULL;
	gint64 ids[3];
	int killed;
	gboolean marked = FALSE;

	if (skipped ())
		return;
	a = pg_open (fixture, "notifier-a");
	b = pg_open (fixture, "notifier-b");
	for (guint i = 0; i < 5; i++) {
		g_assert_true (sc_pg_notify_insert_event (a, "mailer.down", "x", T0 + i, &error));
		g_assert_no_error (error);
	}
	flight = outbox_claim (a, T0 + 10 * SEC, 3);
	g_assert_cmpuint (flight->len, ==, 3);
	for (guint i = 0; i < 3; i++)
		ids[i] = ((ScNotification *) flight->pdata[i])->id;
	killed = sc_test_postgres_terminate_backends (server, fixture->dbname, "notifier-a", &error);
	g_assert_no_error (error);
	g_assert_cmpint (killed, ==, 1);

	rows = outbox_claim (b, T0 + 10 * SEC, 100);
	g_assert_cmpuint (rows->len, ==, 2); /* not the three in flight */
	/* a's mark: the first call finds the connection gone and reconnects */
	for (guint tries = 0; tries < 20 && !marked; tries++) {
		g_clear_error (&error);
		marked = sc_pg_notify_mark_sent (a, ids, 3, T0 + 20 * SEC, &error);
		if (!marked)
			g_assert_true (g_error_matches (error, SC_SPOOL_ERROR, SC_SPOOL_ERROR_TEMPORARY));
	}
	g_assert_true (marked);
	g_clear_pointer (&rows, g_ptr_array_unref);
	rows = outbox_claim (b, T0 + HOUR, 100);
	g_assert_cmpuint (rows->len, ==, 2); /* b's own, its lease over; a's are sent */
	g_assert_cmpuint (pending_due (b, G_MAXINT64), ==, 2);
	pg_close (a);
	pg_close (b);
}

/* ---- plans: indexes walked, never a table scanned ---- */

/* @stmt's generic plan (the one a prepared statement settles on), with
 * every parameter NULL (a generic plan does not look at them). */
static char *
generic_plan (PGconn *conn, const ScPgStatement *stmt)
{
	g_autoptr(GString) call = g_string_new ("EXPLAIN EXECUTE ");
	g_autoptr(GString) plan = g_string_new (NULL);
	g_autoptr(PGresult) prepared = PQprepare (conn, stmt->name, stmt->sql, 0, NULL);
	g_autoptr(PGresult) explained = NULL;
	guint n_params = 0;

	if (PQresultStatus (prepared) != PGRES_COMMAND_OK)
		g_error ("%s: %s", stmt->name, PQresultErrorMessage (prepared));
	for (const char *p = strchr (stmt->sql, '$'); p != NULL; p = strchr (p + 1, '$'))
		n_params = MAX (n_params, (guint) g_ascii_strtoull (p + 1, NULL, 10));
	g_string_append (call, stmt->name);
	for (guint i = 0; i < n_params; i++)
		g_string_append (call, i == 0 ? " (NULL" : ", NULL");
	if (n_params > 0)
		g_string_append_c (call, ')');
	explained = PQexec (conn, call->str);
	if (PQresultStatus (explained) != PGRES_TUPLES_OK)
		g_error ("%s: %s", call->str, PQresultErrorMessage (explained));
	for (int row = 0; row < PQntuples (explained); row++)
		g_string_append_printf (plan, "%s\n", PQgetvalue (explained, row, 0));
	return g_string_free (g_steal_pointer (&plan), FALSE);
}

static void
assert_plans (PGconn *conn, const ScPgStatement *const *statements, gboolean ordered)
{
	static const char *const tables[] = {"messages", "notifications", "attempts", "audit",
					     "stages", "recipients", "bodies"};

	for (guint i = 0; statements[i] != NULL; i++) {
		g_autofree char *plan = generic_plan (conn, statements[i]);
		g_test_message ("%s:\n%s", statements[i]->name, plan);
		for (guint t = 0; t < G_N_ELEMENTS (tables); t++) {
			g_autofree char *scan = g_strdup_printf ("Seq Scan on %s ", tables[t]);
			g_assert_null (strstr (plan, scan));
		}
		g_assert_nonnull (strstr (plan, "Index"));
		if (ordered)
			g_assert_null (strstr (plan, "Sort"));
	}
}

/* Scans and sorts made as costly as the planner allows: what remains in
 * a plan is what it cannot do without (an index it lacks shows as a
 * Seq Scan; an order no index gives, as a Sort), at any table size. */
static void
test_plans (Fixture *fixture, gconstpointer data)
{
	const ScPgStatement *const *ordered = NULL;
	const ScPgStatement *const *indexed = NULL;
	g_autoptr(PGconn) conn = NULL;
	ScSpool *spool;

	if (skipped ())
		return;
	spool = pg_open (fixture, NULL); /* the schema */
	conn = connect_db (fixture->dbname);
	exec_ok (conn, "SET plan_cache_mode = force_generic_plan");
	exec_ok (conn, "SET enable_seqscan = off");
	exec_ok (conn, "SET enable_sort = off");
	sc_pg_query_plan_statements (&ordered, &indexed);
	assert_plans (conn, ordered, TRUE);
	assert_plans (conn, indexed, FALSE);
	sc_pg_notify_plan_statements (&ordered, &indexed);
	assert_plans (conn, ordered, TRUE);
	assert_plans (conn, indexed, FALSE);
	pg_close (spool);
}

int
main (int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	int status;

	g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	sc_test_install_log_writer ();
	if (sc_test_postgres_available ()) {
		server = sc_test_postgres_start (&error);
		g_assert_no_error (error);
	} else {
		g_test_message ("skipping: %s", sc_test_postgres_why_unavailable ());
	}
	g_test_add ("/pg-query/search/same-as-sqlite", Fixture, GINT_TO_POINTER (1), setup,
		    test_search_same_as_sqlite, teardown);
	g_test_add ("/pg-query/actions/same-as-sqlite", Fixture, NULL, setup, test_actions_same_as_sqlite,
		    teardown);
	g_test_add ("/pg-query/plans", Fixture, NULL, setup, test_plans, teardown);
	g_test_add ("/pg-query/counts/concurrent-writers", Fixture, NULL, setup, test_counts_concurrent, teardown);
	g_test_add ("/pg-query/notify/one-notifier", Fixture, NULL, setup, test_notify_one_notifier, teardown);
	g_test_add ("/pg-query/notify/takeover", Fixture, NULL, setup, test_notify_takeover, teardown);
	g_test_add ("/pg-query/notify/connection-lost", Fixture, NULL, setup, test_notify_connection_lost,
		    teardown);
	status = g_test_run ();
	g_clear_pointer (&server, sc_test_postgres_stop);
	return status;
}

#else /* !HAVE_PG_SPOOL */

static void
test_without_libpq (void)
{
	g_test_skip ("built without the PostgreSQL spool (libpq)");
}

int
main (int argc, char **argv)
{
	g_test_init (&argc, &argv, NULL);
	g_test_add_func ("/pg-query/search/same-as-sqlite", test_without_libpq);
	return g_test_run ();
}

#endif
