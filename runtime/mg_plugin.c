/* mg_plugin.c — plugin loader and registry (placeholder) */
#include "mg_core.h"
int mg_plugins_init(mg_rt *rt);
void mg_plugins_free(mg_rt *rt);
int mg_plugins_init(mg_rt *rt) { rt->plugins = NULL; return 0; }
void mg_plugins_free(mg_rt *rt) { (void)rt; }
