/*
** l_plugin.c — Lua bindings of the plugin layer:
**   mg.optim(name, params [, opts])   an optimizer (mg.optim is a callable table;
**                                     modules/optim.lua adds the schedulers to it)
**   mg.loss(name [, opts])            a criterion: crit(pred, target)
**   mg.load_plugin(path)              load one plugin file, returns the names it registered
**   mg.plugins()                      {name=, kind=, version=, file=, doc=} per plugin
**   mg.add_plugin_dir(dir)            the runner's -P
**   mg.plugin_refusals()              messages of plugins refused during discovery
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "l_core.h"
#include "mg_plugin.h"

#define MGL_OPTIM "moongrad.Optimizer"
#define MGL_LOSS "moongrad.Loss"
#define MAX_OPTS 64

typedef struct { mg_optim *o; } optbox;
typedef struct { mg_loss *l; } lossbox;

/* ---- options table -> mg_hpval[] ---------------------------------------------- */

/* the value at idx as an mg_hpval (name set by the caller) */
static void to_hpval(lua_State *L, int idx, mg_hpval *v) {
  v->t = NULL;
  v->str = NULL;
  v->num = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: v->type = MG_HV_NUM; v->num = lua_tonumber(L, idx); break;
    case LUA_TBOOLEAN: v->type = MG_HV_BOOL; v->num = lua_toboolean(L, idx); break;
    case LUA_TSTRING: v->type = MG_HV_STRING; v->str = lua_tostring(L, idx); break;
    default:
      if ((v->t = mgl_test(L, idx))) v->type = MG_HV_TENSOR;
      else { v->type = MG_HV_OTHER; v->str = mgl_typename(L, idx); }
  }
}

/* read the options table at idx into opts (strings stay valid while the table lives) */
static int read_opts(lua_State *L, int idx, mg_hpval *opts, const char *who) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx)) luaL_error(L, "%s: options must be a table, got %s", who, mgl_typename(L, idx));
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: option names must be strings, got a %s key", who, mgl_typename(L, -2));
    if (n == MAX_OPTS) luaL_error(L, "%s: too many options (at most %d)", who, MAX_OPTS);
    opts[n].name = lua_tostring(L, -2);
    to_hpval(L, -1, &opts[n]);
    n++;
    lua_pop(L, 1);
  }
  return n;
}

/* ---- optimizers ------------------------------------------------------------------ */

/* the name the running method was called by, for "did you call opt.step(...)" */
static const char *method_name(lua_State *L, const char *def) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) return ar.name;
  return def;
}

static mg_optim *checkopt(lua_State *L, int idx) {
  optbox *b = luaL_testudata(L, idx, MGL_OPTIM);
  if (!b) {
    const char *m = method_name(L, "step");
    char op[64];
    snprintf(op, sizeof op, "optim %s", m);
    mgl_selferror(L, idx, op, "opt", m, "an optimizer");
  }
  if (!b->o) luaL_error(L, "optim: the optimizer was closed");
  return b->o;
}

/* mg.optim(name, params [, opts]); params: an array of tensors or a module */
static int optim_new(lua_State *L) {
  /* called through __call: argument 1 is the mg.optim table itself */
  if (lua_type(L, 2) != LUA_TSTRING)  /* numbered as the user sees it */
    return luaL_error(L, "optim: argument #1: expected an optimizer name (a string such as \"sgd\"), got %s",
                      mgl_typename(L, 2));
  lua_settop(L, 4);
  const char *name = lua_tostring(L, 2);
  char who[96];
  snprintf(who, sizeof who, "optim %s", name);
  if (lua_type(L, 3) == LUA_TTABLE && lua_rawlen(L, 3) == 0) {
    lua_getfield(L, 3, "parameters");   /* a module: use m:parameters() */
    if (lua_isfunction(L, -1)) {
      lua_pushvalue(L, 3);
      lua_call(L, 1, 1);
      lua_replace(L, 3);
    } else lua_pop(L, 1);
  }
  if (!lua_istable(L, 3))
    return luaL_error(L, "%s: argument #2: expected an array of parameter tensors, got %s", who, mgl_typename(L, 3));
  lua_Integer np = (lua_Integer)lua_rawlen(L, 3);
  if (np > 1000000) return luaL_error(L, "%s: too many parameters", who);
  mg_tensor **ps = lua_newuserdatauv(L, (size_t)(np ? np : 1) * sizeof *ps, 0);  /* scratch, collected */
  for (lua_Integer i = 1; i <= np; i++) {
    lua_rawgeti(L, 3, i);
    ps[i - 1] = mgl_test(L, -1);
    if (mgl_is_closed(L, -1)) return luaL_error(L, "%s: tensor #%d in the parameter list was closed", who, (int)i);
    if (!ps[i - 1]) return luaL_error(L, "%s: parameter %d is a %s, not a tensor", who, (int)i, mgl_typename(L, -1));
    lua_pop(L, 1);
  }
  mg_hpval opts[MAX_OPTS];
  int nopts = read_opts(L, 4, opts, who);
  optbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->o = NULL;
  luaL_setmetatable(L, MGL_OPTIM);
  b->o = mg_optim_new(mgl_rt(L), name, (int)np, ps, nopts, opts);
  if (!b->o) return mgl_error(L);
  return 1;
}

static int optim_gc(lua_State *L) {
  optbox *b = luaL_checkudata(L, 1, MGL_OPTIM);
  mg_optim_free(b->o);
  b->o = NULL;
  return 0;
}

/* opt:step([closure]): runs closure (if any) first and returns its results */
static int optim_step(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  int nres = 0;
  if (!lua_isnoneornil(L, 2)) {
    mgl_checktype(L, 2, LUA_TFUNCTION, "optim step", "a closure (a function)");
    lua_settop(L, 2);
    lua_call(L, 0, LUA_MULTRET);
    nres = lua_gettop(L) - 1;  /* the function was replaced by its results */
  }
  if (mg_optim_step(o)) return mgl_error(L);
  return nres;
}

static int optim_zero_grad(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  if (mg_optim_zero_grad(o, lua_toboolean(L, 2))) return mgl_error(L);
  return 0;
}

static void push_hp(lua_State *L, mg_optim *o, int k) {
  const mgp_hparam *h = mg_optim_hparam_decl(o, k);
  double v = mg_optim_hparam_value(o, k);
  if (h->type == MGP_BOOL) lua_pushboolean(L, v != 0);
  else if (h->type == MGP_INT) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
}

static int optim_hparams(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  lua_createtable(L, 0, mg_optim_nhparams(o));
  for (int k = 0; k < mg_optim_nhparams(o); k++) {
    push_hp(L, o, k);
    lua_setfield(L, -2, mg_optim_hparam_decl(o, k)->name);
  }
  return 1;
}

static int optim_params(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  lua_createtable(L, mg_optim_nparams(o), 0);
  for (int i = 0; i < mg_optim_nparams(o); i++) {
    mgl_push(L, mg_retain(mg_optim_param(o, i)));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* push the state entries of parameter i (-1: the optimizer's own) as a table */
static void push_state(lua_State *L, mg_optim *o, int i) {
  int n = mg_optim_state_count(o, i);
  lua_createtable(L, 0, n);
  for (int k = 0; k < n; k++) {
    const char *name;
    mg_tensor *t;
    double v;
    mg_optim_state_entry(o, i, k, &name, &t, &v);
    if (t) mgl_push(L, mg_clone(t));
    else if (v == floor(v) && fabs(v) < 9e15) lua_pushinteger(L, (lua_Integer)v);
    else lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
  }
}

/* opt:state_dict(): {optim=, version=, state_version=, hparams={...},
**   state={[i]={name=tensor|number,...}}, global={...}} with copies of the buffers */
static int optim_state_dict(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  if (mg_optim_save_prepare(o)) return mgl_error(L);
  lua_newtable(L);
  lua_pushstring(L, mg_optim_name(o));
  lua_setfield(L, -2, "optim");
  lua_pushinteger(L, mg_optim_state_version(o));
  lua_setfield(L, -2, "state_version");
  optim_hparams(L);
  lua_setfield(L, -2, "hparams");
  lua_newtable(L);
  for (int i = 0; i < mg_optim_nparams(o); i++) {
    if (mg_optim_state_count(o, i) == 0) continue;
    push_state(L, o, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "state");
  if (mg_optim_state_count(o, -1) > 0) {
    push_state(L, o, -1);
    lua_setfield(L, -2, "global");
  }
  return 1;
}

/* a number from a number or a numeric string (checkpoints may stringify); false if neither */
static bool getnum(lua_State *L, int idx, double *v) {
  if (lua_type(L, idx) == LUA_TNUMBER) { *v = lua_tonumber(L, idx); return true; }
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    char *end;
    *v = strtod(s, &end);
    return end != s && *end == 0;
  }
  return false;
}

/* a checkpoint value as an hpval for hyperparameter h (booleans may come back as strings) */
static void sd_hpval(lua_State *L, int idx, const mgp_hparam *h, mg_hpval *v) {
  to_hpval(L, idx, v);
  if (v->type != MG_HV_STRING) return;
  if (h->type == MGP_BOOL && (!strcmp(v->str, "true") || !strcmp(v->str, "false"))) {
    v->type = MG_HV_BOOL;
    v->num = !strcmp(v->str, "true");
  } else if (h->type != MGP_BOOL && getnum(L, idx, &v->num)) v->type = MG_HV_NUM;
}

/* the 0-based parameter index of a state key (integer or numeric string), -2 if none */
static int param_key(lua_State *L, int idx, int np) {
  double v;
  if (!getnum(L, idx, &v) || v != floor(v) || v < 1 || v > np) return -2;
  return (int)v - 1;
}

/* check (apply = false) or load (apply = true) the entries of the table at idx for parameter i */
static void load_entries(lua_State *L, mg_optim *o, int idx, int i, bool apply, const char *who) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "%s: load_state_dict: state of parameter %d has a non-string key", who, i + 1);
    const char *name = lua_tostring(L, -2);
    mg_tensor *t = mgl_test(L, -1);
    double v;
    if (t) {
      mg_tensor *p = mg_optim_param(o, i < 0 ? 0 : i);
      char a[64], b[64];
      if (i < 0) luaL_error(L, "%s: load_state_dict: global state '%s' must be a number", who, name);
      if (!mg_same_shape(p, t))
        luaL_error(L, "%s: load_state_dict: state '%s' of parameter %d has shape %s, the parameter has %s", who,
                   name, i + 1, mg_shape_str(t, a, sizeof a), mg_shape_str(p, b, sizeof b));
      if (apply && mg_optim_state_set_tensor(o, i, name, t)) mgl_error(L);
    } else if (getnum(L, -1, &v)) {
      if (apply && mg_optim_state_set_num(o, i, name, v)) mgl_error(L);
    } else
      luaL_error(L, "%s: load_state_dict: state '%s' of parameter %d must be a tensor or a number, got %s", who,
                 name, i + 1, mgl_typename(L, -1));
    lua_pop(L, 1);
  }
}

/* walk sd.state: check everything, or apply */
static void load_state(lua_State *L, mg_optim *o, int sd, bool apply, const char *who) {
  lua_getfield(L, sd, "state");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) luaL_error(L, "%s: load_state_dict: 'state' must be a table, got %s", who, mgl_typename(L, -1));
    int st = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, st)) {
      int i = param_key(L, -2, mg_optim_nparams(o));
      if (i == -2) {
        lua_pushvalue(L, -2);
        luaL_error(L, "%s: load_state_dict: state key '%s' is not a parameter index (1..%d)", who,
                   luaL_tolstring(L, -1, NULL), mg_optim_nparams(o));
      }
      if (!lua_istable(L, -1))
        luaL_error(L, "%s: load_state_dict: state of parameter %d must be a table, got %s", who, i + 1, mgl_typename(L, -1));
      load_entries(L, o, -1, i, apply, who);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, sd, "global");
  if (lua_istable(L, -1)) load_entries(L, o, -1, -1, apply, who);
  lua_pop(L, 1);
}

static int optim_load_state_dict(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  char who[96];
  snprintf(who, sizeof who, "optim %s", mg_optim_name(o));
  if (!lua_istable(L, 2)) return luaL_error(L, "%s: load_state_dict: expected a table, got %s", who, mgl_typename(L, 2));
  lua_settop(L, 2);
  lua_getfield(L, 2, "optim");
  if (!lua_isnil(L, -1) && (!lua_isstring(L, -1) || strcmp(lua_tostring(L, -1), mg_optim_name(o)) != 0))
    return luaL_error(L, "%s: load_state_dict: the state is for optimizer '%s'", who, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  double ver = mg_optim_state_version(o);
  lua_getfield(L, 2, "state_version");
  if (!lua_isnil(L, -1) && (!getnum(L, -1, &ver) || ver != floor(ver)))
    return luaL_error(L, "%s: load_state_dict: 'state_version' must be an integer", who);
  lua_pop(L, 1);
  /* hyperparameters and state: check all before changing any */
  lua_getfield(L, 2, "hparams");
  int hps = lua_gettop(L), nv = 0;
  mg_hpval vals[MAX_OPTS];
  if (!lua_isnil(L, hps) && !lua_istable(L, hps))
    return luaL_error(L, "%s: load_state_dict: 'hparams' must be a table, got %s", who, mgl_typename(L, hps));
  load_state(L, o, 2, false, who);  /* raises on any malformed entry, nothing changed yet */
  if (lua_istable(L, hps)) {
    lua_pushnil(L);
    while (lua_next(L, hps)) {
      if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "%s: load_state_dict: hparams keys must be strings", who);
      if (nv == MAX_OPTS) return luaL_error(L, "%s: load_state_dict: too many hparams", who);
      mg_hpval *v = &vals[nv++];
      v->name = lua_tostring(L, -2);
      int k = mg_optim_hparam_index(o, v->name);
      if (k >= 0) sd_hpval(L, -1, mg_optim_hparam_decl(o, k), v);
      else to_hpval(L, -1, v);
      lua_pop(L, 1);
    }
  }
  if (mg_optim_set_hparams(o, nv, vals)) return luaL_error(L, "%s (in load_state_dict)", mg_errmsg(mgl_rt(L)));
  mg_optim_state_clear(o);
  load_state(L, o, 2, true, who);
  if (mg_optim_load_finish(o, (int)ver)) return mgl_error(L);
  return 0;
}

static int optim_index(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  const char *key = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;  /* a method */
  int k = mg_optim_hparam_index(o, key);
  if (k >= 0) { push_hp(L, o, k); return 1; }
  if (!strcmp(key, "name")) { lua_pushstring(L, mg_optim_name(o)); return 1; }
  if (!strcmp(key, "params")) return optim_params(L);
  lua_pushnil(L);
  return 1;
}

static int optim_newindex(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  mg_hpval v;
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_error(L, "optim %s: cannot set a %s key", mg_optim_name(o), mgl_typename(L, 2));
  v.name = lua_tostring(L, 2);
  to_hpval(L, 3, &v);
  if (mg_optim_set_hparam(o, &v)) return mgl_error(L);
  return 0;
}

static int optim_tostring(lua_State *L) {
  mg_optim *o = checkopt(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "optim %s (", mg_optim_name(o));
  luaL_addvalue(&b);
  for (int k = 0; k < mg_optim_nhparams(o); k++) {
    const mgp_hparam *h = mg_optim_hparam_decl(o, k);
    double v = mg_optim_hparam_value(o, k);
    char num[64];
    if (h->type == MGP_BOOL) snprintf(num, sizeof num, "%s", v != 0 ? "true" : "false");
    else snprintf(num, sizeof num, "%.6g", v);
    lua_pushfstring(L, "%s%s=%s", k ? ", " : "", h->name, num);
    luaL_addvalue(&b);
  }
  lua_pushfstring(L, ") over %d parameters", mg_optim_nparams(o));
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  return 1;
}

/* ---- losses ----------------------------------------------------------------------- */

static mg_loss *checkloss(lua_State *L, int idx) {
  lossbox *b = luaL_testudata(L, idx, MGL_LOSS);
  if (!b) mgl_selferror(L, idx, "loss forward", "crit", "forward", "a loss criterion");
  if (!b->l) luaL_error(L, "loss: the criterion was closed");
  return b->l;
}

static int loss_new(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING)  /* numbered as the user sees it: argument 1 is the mg.loss table */
    return luaL_error(L, "loss: argument #1: expected a loss name (a string such as \"mse\"), got %s", mgl_typename(L, 2));
  lua_settop(L, 3);
  const char *name = lua_tostring(L, 2);
  char who[96];
  snprintf(who, sizeof who, "loss %s", name);
  mg_hpval opts[MAX_OPTS];
  int nopts = read_opts(L, 3, opts, who);
  lossbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->l = NULL;
  luaL_setmetatable(L, MGL_LOSS);
  b->l = mg_loss_new(mgl_rt(L), name, nopts, opts);
  if (!b->l) return mgl_error(L);
  return 1;
}

static int loss_gc(lua_State *L) {
  lossbox *b = luaL_checkudata(L, 1, MGL_LOSS);
  mg_loss_free(b->l);
  b->l = NULL;
  return 0;
}

/* crit(pred, target) and crit:forward(pred, target) */
static int loss_call(lua_State *L) {
  mg_loss *l = checkloss(L, 1);
  mg_tensor *pred = mgl_test(L, 2), *target;
  if (!pred)
    return luaL_error(L, "loss %s: argument #1 (prediction): expected a tensor, got %s", mg_loss_name(l), mgl_typename(L, 2));
  mg_tensor *tmp = NULL;
  if (lua_type(L, 3) == LUA_TNUMBER) target = tmp = mg_scalar(mgl_rt(L), pred->dtype, lua_tonumber(L, 3));
  else if (!(target = mgl_test(L, 3)))
    return luaL_error(L, "loss %s: argument #2 (target): expected a tensor, got %s", mg_loss_name(l), mgl_typename(L, 3));
  mg_tensor *out = mg_loss_apply(l, pred, target);
  mg_release(tmp);
  return mgl_push(L, out);
}

static int loss_index(lua_State *L) {
  mg_loss *l = checkloss(L, 1);
  const char *key = lua_tostring(L, 2);
  if (!key) return 0;
  if (!strcmp(key, "forward")) { lua_pushcfunction(L, loss_call); return 1; }
  if (!strcmp(key, "name")) { lua_pushstring(L, mg_loss_name(l)); return 1; }
  if (!strcmp(key, "reduction")) { lua_pushstring(L, mg_loss_reduction(l)); return 1; }
  lua_pushnil(L);
  return 1;
}

static int loss_tostring(lua_State *L) {
  mg_loss *l = checkloss(L, 1);
  lua_pushfstring(L, "loss %s (reduction=%s)", mg_loss_name(l), mg_loss_reduction(l));
  return 1;
}

/* ---- plugin management ---------------------------------------------------------------- */

static int l_load_plugin(lua_State *L) {
  const char *path = mgl_checkstring(L, 1, "load_plugin", "a plugin file path");
  mg_rt *rt = mgl_rt(L);
  if (!mg_plugin_script_load_allowed(rt))
    return luaL_error(L, "load_plugin: %s: loading plugins from scripts is disabled by the host", path);
  int before = mg_plugin_count(rt);
  if (mg_plugin_load(rt, path)) return mgl_error(L);
  int after = mg_plugin_count(rt);
  lua_createtable(L, after - before, 0);
  for (int i = before; i < after; i++) {
    mg_plugin_info info;
    mg_plugin_get(rt, i, &info);
    lua_pushstring(L, info.name);
    lua_rawseti(L, -2, i - before + 1);
  }
  return 1;
}

static int l_plugins(lua_State *L) {
  mg_rt *rt = mgl_rt(L);
  int n = mg_plugin_count(rt);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    mg_plugin_info info;
    mg_plugin_get(rt, i, &info);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, info.name); lua_setfield(L, -2, "name");
    lua_pushstring(L, info.kind); lua_setfield(L, -2, "kind");
    lua_pushstring(L, info.version); lua_setfield(L, -2, "version");
    lua_pushstring(L, info.file); lua_setfield(L, -2, "file");
    lua_pushstring(L, info.doc); lua_setfield(L, -2, "doc");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_add_plugin_dir(lua_State *L) {
  const char *dir = mgl_checkstring(L, 1, "add_plugin_dir", "a directory path");
  if (!mg_plugin_script_load_allowed(mgl_rt(L)))
    return luaL_error(L, "add_plugin_dir: %s: loading plugins from scripts is disabled by the host", dir);
  if (mg_plugin_add_dir(mgl_rt(L), dir)) return mgl_error(L);
  return 0;
}

static int l_plugin_refusals(lua_State *L) {
  mg_rt *rt = mgl_rt(L);
  mg_plugin_discover(rt);
  int n = mg_plugin_nrefusals(rt);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, mg_plugin_refusal(rt, i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* mg.optim(...) / mg.loss(...) when the module chunk turned the table into a plain function */
static int optim_fn(lua_State *L) { lua_pushnil(L); lua_insert(L, 1); return optim_new(L); }
static int loss_fn(lua_State *L) { lua_pushnil(L); lua_insert(L, 1); return loss_new(L); }

void mgl_open_plugin(lua_State *L) {
  static const luaL_Reg optim_methods[] = {
    {"step", optim_step}, {"zero_grad", optim_zero_grad}, {"state_dict", optim_state_dict},
    {"load_state_dict", optim_load_state_dict}, {"hparams", optim_hparams}, {"parameters", optim_params},
    {NULL, NULL}};
  luaL_newmetatable(L, MGL_OPTIM);
  lua_newtable(L);
  luaL_setfuncs(L, optim_methods, 0);
  lua_pushcclosure(L, optim_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, optim_newindex); lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, optim_gc); lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, optim_gc); lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, optim_tostring); lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  luaL_newmetatable(L, MGL_LOSS);
  lua_pushcfunction(L, loss_index); lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, loss_call); lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, loss_gc); lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, loss_gc); lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, loss_tostring); lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  static const luaL_Reg fns[] = {
    {"load_plugin", l_load_plugin}, {"plugins", l_plugins}, {"add_plugin_dir", l_add_plugin_dir},
    {"plugin_refusals", l_plugin_refusals}, {NULL, NULL}};
  mgl_register(L, fns, NULL);

  /* mg.optim and mg.loss: callable tables, so Lua modules can add to them. The
  ** binding functions run with the `mg` table on top of the stack. */
  if (lua_istable(L, -1) && lua_getfield(L, -1, "version") == LUA_TSTRING) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, optim_new);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "optim");
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, loss_new);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "loss");
  } else {
    lua_pop(L, 1);
    static const luaL_Reg plain[] = {{"optim", optim_fn}, {"loss", loss_fn}, {NULL, NULL}};
    mgl_register(L, plain, NULL);
  }
}
