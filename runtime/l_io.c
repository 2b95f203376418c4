/* l_io.c — mg.save, mg.load and the data readers (placeholder) */
#include "l_core.h"
void mgl_open_io(lua_State *L) { (void)L; }
