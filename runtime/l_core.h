/*
** l_core.h — helpers shared by the Lua bindings (l_*.c). This is the only layer
** that raises Lua errors: core failures become luaL_error at the boundary.
** Lua conventions: dims and indices are 1-based, negative dims count from the
** end; every error message starts with the operation's Lua name.
*/
#ifndef L_CORE_H
#define L_CORE_H

#include <lua.h>
#include <lauxlib.h>
#include "mg_core.h"

#define MGL_TENSOR "moongrad.Tensor"

/* The full userdata behind a Lua tensor: t (NULL once closed) and a tag that
** only boxes made by mgl_newbox carry; mgl_tobox recognises a tensor by it. */
typedef struct { mg_tensor *t; uint64_t tag; } mgl_box;

/* the runtime of this Lua state */
mg_rt *mgl_rt(lua_State *L);
/* argument idx as a tensor, or an error "op: argument #idx: expected a tensor, got <type>" */
mg_tensor *mgl_check(lua_State *L, int idx, const char *op);
mg_tensor *mgl_test(lua_State *L, int idx);          /* NULL if not a (live) tensor */
/* push a new tensor box (t NULL) with the tensor metatable; no GC accounting */
mgl_box *mgl_newbox(lua_State *L);
/* a tensor, or a number made into a 0-dim tensor of dtype dt (caller releases *tmp) */
mg_tensor *mgl_operand(lua_State *L, int idx, const char *op, mg_dtype dt, mg_tensor **tmp);
/* arguments 1 and 2 of a binary op: tensors, or one tensor and a number made
** into a 0-dim tensor of its dtype (*tmp, which the caller releases) */
void mgl_operands(lua_State *L, const char *op, mg_tensor **x, mg_tensor **y, mg_tensor **tmp);
/* the box at idx if that value is a tensor (live or closed), else NULL. A tensor
** is a full userdata of exactly sizeof(mgl_box) bytes tagged mgl_box_secret ^ its
** address; l_moongrad.c says why the tag cannot be forged. */
extern uint64_t mgl_box_secret;
static inline mgl_box *mgl_tobox(lua_State *L, int idx) {
  mgl_box *b = lua_touserdata(L, idx);  /* NULL unless full or light userdata */
  if (!b || lua_rawlen(L, idx) != sizeof *b) return NULL;  /* light userdata: rawlen 0 */
  return b->tag == (mgl_box_secret ^ (uint64_t)(uintptr_t)b) ? b : NULL;
}
/* push t, taking its reference; t == NULL raises the runtime's error */
int mgl_push(lua_State *L, mg_tensor *t);
/* raise the runtime's current error as a Lua error */
int mgl_error(lua_State *L);
/* luaL_error with C's printf formats (%g, %lld, ...): lua_pushfstring knows only a few */
int mgl_errorf(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* argument errors: "op: argument #idx: expected <what>, got <type>"; when a tensor
** method was called as t.name(...) instead of t:name(...) the message says so */
int mgl_argerror(lua_State *L, int idx, const char *op, const char *what);
/* "op: expected <what> as self (did you call var.name(...) instead of var:name(...)?), got <type>" */
int mgl_selferror(lua_State *L, int idx, const char *op, const char *var, const char *name, const char *what);
void mgl_operands_error(lua_State *L, const char *op);
/* the type at idx as users know it: "tensor", "closed tensor", a metatable's __name, else Lua's */
const char *mgl_typename(lua_State *L, int idx);
bool mgl_is_closed(lua_State *L, int idx);            /* a tensor after t:close() */
/* luaL_check* / luaL_opt* with messages naming op; what (NULL: "a number", ...) says what was expected */
double mgl_checknumber(lua_State *L, int idx, const char *op, const char *what);
double mgl_optnumber(lua_State *L, int idx, const char *op, const char *what, double def);
lua_Integer mgl_checkinteger(lua_State *L, int idx, const char *op, const char *what);
lua_Integer mgl_optinteger(lua_State *L, int idx, const char *op, const char *what, lua_Integer def);
const char *mgl_checkstring(lua_State *L, int idx, const char *op, const char *what);
void mgl_checktype(lua_State *L, int idx, int type, const char *op, const char *what);
/* a Lua dim argument (1-based, negative from the end) as a 0-based dim of a
** tensor with ndim dims; error naming op when out of range */
int mgl_dim(lua_State *L, int idx, int ndim, const char *op);
int mgl_optdim(lua_State *L, int idx, int ndim, const char *op, int def); /* def if none/nil */
/* a shape given as varargs from idx (numbers) or as one table at idx; returns ndim.
** Stops at the first non-number (an options table may follow). */
int mgl_shape(lua_State *L, int idx, int64_t *shape, const char *op, int *next);
/* read an options table field: if absent (or opts not a table) returns def */
double mgl_optnum(lua_State *L, int opts, const char *key, double def, const char *op);
bool mgl_optbool(lua_State *L, int opts, const char *key, bool def, const char *op);
mg_dtype mgl_optdtype(lua_State *L, int opts, mg_dtype def, const char *op);
/* reject option names not in the NULL-terminated list (error lists the accepted names) */
void mgl_checkopts(lua_State *L, int opts, const char *const *names, const char *op);

/* luaL_setfuncs into the table on top, giving each function the runtime, the tensor
** metatable and method table as upvalues (fast mgl_rt, mgl_push, method lookup);
** use it for metatables too */
void mgl_setfuncs(lua_State *L, const luaL_Reg *funcs);
/* register functions into the `mg` table and methods into the tensor method table.
** Call from an mgl_open_* function; either list may be NULL. */
void mgl_register(lua_State *L, const luaL_Reg *mgfuncs, const luaL_Reg *methods);

/* binding files: each registers its own functions, called in luaopen_moongrad */
void mgl_open_tensor(lua_State *L);   /* l_tensor.c: creation, inspection, views, metamethods */
void mgl_open_math(lua_State *L);     /* l_math.c: elementwise, reductions, linalg */
void mgl_open_reduce(lua_State *L);   /* l_reduce.c: reductions, matmul, dot, outer, linear */
void mgl_open_nnf(lua_State *L);      /* l_nnf.c: conv, pooling, norms, softmax, index ops */
void mgl_open_autograd(lua_State *L); /* l_autograd.c: backward, no_grad, Function, gradcheck */
void mgl_open_plugin(lua_State *L);   /* l_plugin.c: mg.optim, mg.loss, mg.load_plugin, mg.plugins */
void mgl_open_io(lua_State *L);       /* l_io.c: mg.save, mg.load, data readers */
void mgl_open_sys(lua_State *L);      /* l_sys.c: clock, threads, seeds, misc */

#endif
