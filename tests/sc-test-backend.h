/* sc-test-backend.h — which spool backend an integration test's fixtures
 * use.  meson runs the integration tests once as they are (the embedded
 * SQLite spool, a folder) and once more in the `postgres` suite with
 * SC_TEST_SPOOL_BACKEND=postgresql: each fixture then gets a fresh
 * database on one private server per test binary (sc-test-postgres.h). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* TRUE when this run's fixtures use PostgreSQL. */
gboolean sc_test_backend_is_postgresql (void);
/* From main(), after g_test_init: starts this run's private server when
 * it needs one.  FALSE when the backend cannot be had (no PostgreSQL
 * binaries, or a build without the PostgreSQL spool), after printing a
 * TAP "1..0 # SKIP why": main then returns 0 without running a case. */
gboolean sc_test_backend_init (void);
/* The [stagecoach] lines that name a fixture's spool in @dir: "spool=spool\n"
 * (a folder beside the config) for SQLite; for PostgreSQL a fresh
 * database's URI and "state-dir=state\n" (the host-local folder).
 * Call it once per fixture. (transfer full) */
char *sc_test_backend_spool_lines (const char *dir);
/* What sc_spool_open takes for that same spool: DIR/spool, or the URI.
 * Valid after sc_test_backend_spool_lines (@dir). (transfer full) */
char *sc_test_backend_spool_location (const char *dir);
/* The fixture's host-local folder: DIR/spool for SQLite (the spool folder
 * is its state folder), DIR/state for PostgreSQL. (transfer full) */
char *sc_test_backend_state_dir (const char *dir);


/* For checks the spool's verbs do not offer: one SQL statement run
 * straight on the spool @location names (FOLDER/spool.db, or the
 * PostgreSQL database), in plain SQL both backends read alike.  The first
 * column of the first row, as a number or as text (NULL for SQL NULL). */
gint64 sc_test_backend_query_int (const char *location, const char *sql);
char *sc_test_backend_query_text (const char *location, const char *sql);
/* Runs @sql for its effect (setting up a state no verb makes). */
void sc_test_backend_exec (const char *location, const char *sql);

G_END_DECLS
