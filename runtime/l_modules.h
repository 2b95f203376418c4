/* The Lua modules of modules/NAME.lua, compiled into the library by tools/embed.lua. */
#ifndef L_MODULES_H
#define L_MODULES_H
#include <stddef.h>
struct mgl_module { const char *name, *path, *src; size_t len; };
extern const struct mgl_module mgl_modules[]; /* ends with a NULL name */
#endif
