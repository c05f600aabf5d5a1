/* sc-spool-uri.c — see sc-spool-uri.h. */
#include "config.h"

#include "sc-spool-uri.h"

#include <string.h>

ScSpoolUriKind
sc_spool_uri_parse (const char *value, const char **out_folder)
{
	*out_folder = value;
	if (strncmp (value, "sqlite:", strlen ("sqlite:")) == 0) {
		*out_folder = value + strlen ("sqlite:");
		return SC_SPOOL_URI_FOLDER;
	}
	/* a libpq connection string: key=value words, no path */
	if (strncmp (value, "postgresql:", strlen ("postgresql:")) == 0 ||
	    strncmp (value, "postgres:", strlen ("postgres:")) == 0 ||
	    (strchr (value, '=') != NULL && strchr (value, '/') == NULL))
		return SC_SPOOL_URI_POSTGRESQL;
	if (strstr (value, "://") != NULL)
		return SC_SPOOL_URI_UNKNOWN;
	return SC_SPOOL_URI_FOLDER;
}
