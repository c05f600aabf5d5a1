/* sc-owner.h — a runner's identity on a spool, and whether another is alive.
 *
 * Each runner holds an flock on spool/runners/NAME.lock for its whole life.
 * The kernel drops the lock when the process dies however it dies (kill -9
 * included), so "can I lock NAME.lock?" answers "is NAME dead?" without
 * trusting PIDs, which get reused.
 *
 * The same file records which claims the runner's handlers are running
 * right now: one slot per worker, (message row, lease generation, stage),
 * written with pwrite and never synced.  It costs two small writes per
 * stage and survives the process (the page cache outlives kill -9), so
 * whoever takes a dead runner's messages back can blame only the ones a
 * handler was running — not every message it had merely claimed — and
 * name the stage that was running, also inside a group of stages that
 * commit together.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _ScOwner ScOwner;

ScOwner *sc_owner_register (const char *spool_folder, GError **error);
/* A runner known by @name alone, with no folder and no lock file: for a
 * spool that keeps liveness itself (PostgreSQL: an advisory lock on its
 * connection).  Its in-handler marks go to its mark function, or nowhere
 * without one. */
ScOwner *sc_owner_new_named (const char *name);
/* "HOST-PID-RANDOM": a name no other runner of any host has. (transfer full) */
char *sc_owner_make_name (void);
const char *sc_owner_get_name (ScOwner *owner);
void sc_owner_free (ScOwner *owner);
/* TRUE while the runner NAME holds its lock. */
gboolean sc_owner_is_alive (const char *spool_folder, const char *name);
/* Removes a dead runner's lock file (after its messages were taken back). */
void sc_owner_forget (const char *spool_folder, const char *name);

/* Worker @slot starts running the handler of @stage (its position in the
 * message's pipeline) on claim (message id, generation); id 0: the slot
 * is idle again.  Thread-safe (each worker owns its slot). */
void sc_owner_mark_in_handler (ScOwner *owner, guint slot, gint64 id, gint64 generation, guint stage);
/* Where a folderless runner's marks go (PostgreSQL: a table, written on
 * a connection of the mark function's own).  Called from the worker
 * threads, with what sc_owner_mark_in_handler got; it must be
 * thread-safe and return only once the mark is recorded (or given up):
 * the handler starts after it.  Set once, before any mark; @destroy
 * (nullable) runs on @data when the owner is freed. */
typedef void (*ScOwnerMarkFunc) (guint slot, gint64 id, gint64 generation, guint stage, gpointer data);
void sc_owner_set_mark_func (ScOwner *owner, ScOwnerMarkFunc func, gpointer data, GDestroyNotify destroy);
/* The claims runner NAME had in a handler (sc_owner_marks_find reads
 * them). (transfer full) empty when it recorded none or the file is gone. */
GHashTable *sc_owner_read_in_handler (const char *spool_folder, const char *name);

/* A runner's in-handler marks as read back, by either backend: claim →
 * the stage's position in its pipeline.  (transfer full) */
GHashTable *sc_owner_marks_new (void);
/* @stage: SC_OWNER_STAGE_UNKNOWN when the mark did not say (written by a
 * stagecoach from before schema version 6). */
#define SC_OWNER_STAGE_UNKNOWN (-1)
void sc_owner_marks_add (GHashTable *marks, gint64 id, gint64 generation, gint stage);
/* Was claim (id, generation) in a handler; which stage (nullable @out_stage). */
gboolean sc_owner_marks_find (GHashTable *marks, gint64 id, gint64 generation, gint *out_stage);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ScOwner, sc_owner_free)

G_END_DECLS
