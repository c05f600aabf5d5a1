/* sc-gmime.h — GMime's one-time initialization, shared by every user.
 * g_mime_init() keeps an unsynchronized counter: two threads must never
 * race through it, so everyone goes through this single once. */
#pragma once

#include <gmime/gmime.h>

/* GMime 3.2 declares no autoptr cleanups of its own. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (InternetAddressList, g_object_unref)

void sc_gmime_init (void);
