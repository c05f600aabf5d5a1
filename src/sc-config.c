/* placeholder: the loader is being written */
#include "config.h"
#include "sc-config.h"
char *sc_config_find_path (const char *p) { return g_strdup (p); }
ScConfig *sc_config_load (const char *path, GError **error) { return NULL; }
ScConfig *sc_config_ref (ScConfig *c) { return c; }
void sc_config_unref (ScConfig *c) { }
const ScListConfig *sc_config_get_list (const ScConfig *c, const char *id) { return NULL; }
const ScExecConfig *sc_config_get_exec (const ScConfig *c, const char *n) { return NULL; }
