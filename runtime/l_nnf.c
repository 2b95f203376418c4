/* l_nnf.c — functional layer ops and index ops (placeholder) */
#include "l_core.h"
void mgl_open_nnf(lua_State *L) { (void)L; }
