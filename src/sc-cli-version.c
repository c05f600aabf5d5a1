/* sc-cli-version.c — `stagecoach --version`: this build, and the libraries it runs with.
 *
 * The library versions are the ones loaded at run time (sqlite3_libversion,
 * glib_*_version, curl_version_info …), not the headers it was built
 * against: after a Debian point release they are what a bug report needs.
 * json-glib only says its build-time version.
 */
#include "config.h"

#include <curl/curl.h>
#include <dkim.h>
#include <gmime/gmime.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#ifdef HAVE_PG_SPOOL
#include <libpq-fe.h>
#endif

#include "sc-cli.h"
#include "sc-revision.h"

int
sc_cli_version (void)
{
	const curl_version_info_data *curl = curl_version_info (CURLVERSION_NOW);
	guint32 dkim = dkim_libversion ();

	if (strcmp (SC_GIT_REVISION, SC_GIT_REVISION_NONE) != 0)
		printf ("stagecoach %s (git %s)\n", PACKAGE_VERSION, SC_GIT_REVISION);
	else
		printf ("stagecoach %s\n", PACKAGE_VERSION);
	printf ("SQLite %s\n", sqlite3_libversion ());
	printf ("GLib %u.%u.%u\n", glib_major_version, glib_minor_version, glib_micro_version);
	printf ("libsoup %u.%u.%u\n", soup_get_major_version (), soup_get_minor_version (),
		soup_get_micro_version ());
	printf ("libcurl %s\n", curl->version);
	printf ("GMime %u.%u.%u\n", gmime_major_version, gmime_minor_version, gmime_micro_version);
	printf ("json-glib %s\n", JSON_VERSION_S);
	/* 0xMMmmPPxx: major, minor, patch, beta */
	printf ("libopendkim %u.%u.%u\n", dkim >> 24, (dkim >> 16) & 0xff, (dkim >> 8) & 0xff);
	printf ("OpenSSL %s\n", OpenSSL_version (OPENSSL_VERSION_STRING));
#ifdef HAVE_PG_SPOOL
	printf ("libpq %d.%d\n", PQlibVersion () / 10000, PQlibVersion () % 10000);
#endif
	return EX_OK;
}
