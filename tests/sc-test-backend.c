/* sc-test-backend.c — see sc-test-backend.h. */
#include "config.h"

#include "sc-test-backend.h"
#include "sc-test-postgres.h"

#include <stdlib.h>

static ScTestPostgres *server;   /* started on first use, stopped at exit */
static GHashTable *uris;         /* fixture dir → its database's URI */
static guint databases;

gboolean
sc_test_backend_is_postgresql (void)
{
	return g_strcmp0 (g_getenv ("SC_TEST_SPOOL_BACKEND"), "postgresql") == 0;
}

static void
stop_server (void)
{
	g_clear_pointer (&server, sc_test_postgres_stop);
	g_clear_pointer (&uris, g_hash_table_unref);
}

static gboolean
skip_all (const char *why)
{
	g_print ("1..0 # SKIP %s\n", why);
	return FALSE;
}

gboolean
sc_test_backend_init (void)
{
	g_autoptr(GError) error = NULL;

	if (!sc_test_backend_is_postgresql ())
		return TRUE;
#ifndef HAVE_PG_SPOOL
	return skip_all ("this build has no PostgreSQL spool (libpq not found)");
#endif
	if (!sc_test_postgres_available ())
		return skip_all (sc_test_postgres_why_unavailable ());
	server = sc_test_postgres_start (&error);
	if (server == NULL)
		g_error ("private PostgreSQL: %s", error->message);
	uris = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
	atexit (stop_server);
	return TRUE;
}

char *
sc_test_backend_spool_lines (const char *dir)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *name = NULL;
	char *uri;

	if (!sc_test_backend_is_postgresql ())
		return g_strdup ("spool=spool\n");
	g_assert_nonnull (server); /* sc_test_backend_init () first */
	name = g_strdup_printf ("fixture%u", ++databases);
	if (!sc_test_postgres_create_database (server, name, &error))
		g_error ("CREATE DATABASE %s: %s", name, error->message);
	uri = sc_test_postgres_get_uri (server, name);
	g_hash_table_replace (uris, g_strdup (dir), uri);
	return g_strdup_printf ("spool=%s\nstate-dir=state\n", uri);
}

char *
sc_test_backend_spool_location (const char *dir)
{
	if (!sc_test_backend_is_postgresql ())
		return g_build_filename (dir, "spool", NULL);
	g_assert_nonnull (uris);
	return g_strdup (g_hash_table_lookup (uris, dir));
}

char *
sc_test_backend_state_dir (const char *dir)
{
	return g_build_filename (dir, sc_test_backend_is_postgresql () ? "state" : "spool", NULL);
}
