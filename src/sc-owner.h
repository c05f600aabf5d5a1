/* sc-owner.h — a runner's identity on a spool, and whether another is alive.
 *
 * Each runner holds an flock on spool/runners/NAME.lock for its whole life.
 * The kernel drops the lock when the process dies however it dies (kill -9
 * included), so "can I lock NAME.lock?" answers "is NAME dead?" without
 * trusting PIDs, which get reused.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScOwner ScOwner;

ScOwner *sc_owner_register (const char *spool_folder, GError **error);
const char *sc_owner_get_name (ScOwner *owner);
void sc_owner_free (ScOwner *owner);
/* TRUE while the runner NAME holds its lock. */
gboolean sc_owner_is_alive (const char *spool_folder, const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScOwner, sc_owner_free)

G_END_DECLS
