/* sc-test-util.h — helpers shared by the GTest binaries. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The corpus folder ($SC_CORPUS, default ../shared/corpus), or NULL when it
 * is absent: callers then g_test_skip() so the skip is counted and visible. */
const char *sc_test_corpus_dir (void);
/* Sorted *.eml file names in the corpus. (transfer full) */
GPtrArray *sc_test_corpus_files (void);
/* The stagecoach binary under test ($STAGECOACH_BIN). */
const char *sc_test_binary (void);
/* A fresh temporary folder, removed by sc_test_remove_tree(). (transfer full) */
char *sc_test_make_tmpdir (const char *prefix);
void sc_test_remove_tree (const char *path);
/* Writes text to dir/name, returns the path. (transfer full) */
char *sc_test_write_file (const char *dir, const char *name, const char *contents);

G_END_DECLS
