/* l_plugin.c — mg.optim, mg.loss, mg.load_plugin, mg.plugins (placeholder until the loader lands) */
#include "l_core.h"
void mgl_open_plugin(lua_State *L) { (void)L; }
