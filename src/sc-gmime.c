/* sc-gmime.c — see sc-gmime.h. */
#include "config.h"

#include "sc-gmime.h"

static gpointer
gmime_init_cb (gpointer data)
{
	g_mime_init ();
	return NULL;
}

void
sc_gmime_init (void)
{
	static GOnce once = G_ONCE_INIT;

	g_once (&once, gmime_init_cb, NULL);
}
