/*
** l_io.c — mg.save, mg.load (safetensors checkpoints) and the raw data
** readers behind mg.data.idx / mg.data.csv (registered as mg._idx, mg._csv;
** modules/data.lua takes them into mg.data). Formats: mg_io.h, docs/checkpoints.md.
**
** A saved value (a tensor, or a nested table of tensors, numbers, strings,
** booleans) is flattened to dotted names ("model.1.weight"; a key may hold
** dots itself, as state_dict names do, and then loads nested). Tensors become
** safetensors entries; every other leaf becomes a __metadata__ string under
** its name, with its type in the "moongrad.types" entry (a JSON object
** name -> code) so that mg.load restores it exactly:
**   i integer ("%lld")   n float ("%.17g")   b boolean ("true"/"false")
**   s UTF-8 string       x other string (hex)  t empty table ("")
** "moongrad.root" = "tensor" marks a file holding one bare tensor ("tensor").
** "moongrad.keys" lists the keys of names the dots alone would misread:
** {"model.1.weight": ["ss", "model", "1.weight"]} for {model = {["1.weight"] = w}}.
*/
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "l_core.h"
#include "mg_io.h"

_Static_assert(MGIO_MAX_DIMS == MG_MAX_DIMS, "mg_io and mg_core disagree on MAX_DIMS");

#define K_FORMAT "moongrad.format"
#define K_TYPES "moongrad.types"
#define K_ROOT "moongrad.root"
#define K_KEYS "moongrad.keys"
#define MAX_DEPTH 64

static bool reserved(const char *k) {
  return !strcmp(k, K_FORMAT) || !strcmp(k, K_TYPES) || !strcmp(k, K_ROOT) || !strcmp(k, K_KEYS) ||
         !strcmp(k, MGIO_CRC_KEY);
}

/* ---- key components --------------------------------------------------------------- */

/* s[0..n) is an integer as "%lld" prints it ("0", "-3"; not "01", "+1", "-0") */
static bool canon_int(const char *s, size_t n, lua_Integer *out) {
  char b[32], back[32];
  if (n == 0 || n > 20) return false;
  memcpy(b, s, n);
  b[n] = 0;
  errno = 0;
  long long v = strtoll(b, NULL, 10);
  snprintf(back, sizeof back, "%lld", v);
  if (errno || strcmp(b, back)) return false;
  *out = (lua_Integer)v;
  return true;
}

/* ---- mg.save ------------------------------------------------------------------
** Phase 1 (may raise errors; only Lua objects exist): walk the value into
** `flat`, an array of {name, value, code [, parts]} with keys in a stable
** order. parts, for names whose dots do not tell their keys (a key holding
** '.', a string key that reads as an integer), is {types, key1, key2, ...}:
** one 'i'/'s' per key, then the keys as text; saved in "moongrad.keys".
** Phase 2 (raises nothing until cleanup): contiguous copies, then the write. */

typedef struct { bool isint; lua_Integer i; const char *s; } key;

static int key_cmp(const void *a, const void *b) {
  const key *x = a, *y = b;
  if (x->isint != y->isint) return x->isint ? -1 : 1;
  if (x->isint) return x->i < y->i ? -1 : x->i > y->i;
  return strcmp(x->s, y->s);
}

static bool is_plain(const char *s, size_t n) { return memchr(s, 0, n) == NULL && mgio_utf8_valid(s, n); }

typedef struct { int flat, seen, path; } walk; /* stack indices */

static void claim(lua_State *L, const walk *w, const char *name) {
  if (lua_getfield(L, w->seen, name) != LUA_TNIL) /* {["a.b"] = x, a = {b = y}} */
    luaL_error(L, "save: two values would both be saved as '%s' (keys such as [\"a.b\"] and a.b, or [\"3\"] "
               "and [3], spell the same name)", name);
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, w->seen, name);
}

/* append {name, <value on top>, code [, parts]} to flat; pops the value */
static void record(lua_State *L, const walk *w, const char *name, const char *code, int depth, int irregular) {
  claim(L, w, name);
  lua_createtable(L, 4, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 2);
  lua_pushstring(L, name), lua_rawseti(L, -2, 1);
  lua_pushstring(L, code), lua_rawseti(L, -2, 3);
  if (irregular) {
    char types[MAX_DEPTH + 2];
    lua_createtable(L, depth + 1, 0);
    for (int j = 1; j <= depth; j++) {
      lua_rawgeti(L, w->path, j);
      types[j - 1] = lua_isinteger(L, -1) ? 'i' : 's';
      lua_pop(L, 1);
    }
    lua_pushlstring(L, types, (size_t)depth);
    lua_rawseti(L, -2, 1);
    for (int j = 1; j <= depth; j++) {
      lua_rawgeti(L, w->path, j);
      lua_pushstring(L, lua_tostring(L, -1)); /* an integer as "%lld" */
      lua_rawseti(L, -3, j + 1);
      lua_pop(L, 1);
    }
    lua_rawseti(L, -2, 4);
  }
  lua_rawseti(L, w->flat, (lua_Integer)lua_rawlen(L, w->flat) + 1);
}

/* flatten the value at index v, named prefix, at depth (path[1..depth] are its keys) */
static void flatten(lua_State *L, const walk *w, int v, const char *prefix, int depth, int irregular) {
  luaL_checkstack(L, 12, "save: nested too deep");
  mg_tensor *t = mgl_test(L, v);
  const char *where = *prefix ? prefix : "(root)";
  if (mgl_is_closed(L, v)) luaL_error(L, "save: tensor '%s' was closed", where);
  if (t) {
    if (mg_check_alive(t, "save")) mgl_error(L);
    lua_pushvalue(L, v);
    record(L, w, prefix, "T", depth, irregular);
    return;
  }
  int ty = lua_type(L, v);
  if (ty != LUA_TTABLE) {
    char num[64];
    const char *code;
    switch (ty) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, v)) code = "i", snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, v));
      else code = "n", snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, v));
      lua_pushstring(L, num);
      break;
    case LUA_TBOOLEAN: code = "b", lua_pushstring(L, lua_toboolean(L, v) ? "true" : "false"); break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, v, &n);
      if (is_plain(s, n)) { code = "s", lua_pushvalue(L, v); break; }
      code = "x"; /* hex, so any bytes survive the JSON header */
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (size_t i = 0; i < n; i++) {
        char h[3];
        snprintf(h, sizeof h, "%02x", (unsigned char)s[i]);
        luaL_addlstring(&b, h, 2);
      }
      luaL_pushresult(&b);
      break;
    }
    default:
      luaL_error(L, "save: value at '%s' is a %s; only tensors, numbers, strings, booleans and tables can be saved",
                 where, mgl_typename(L, v));
      return;
    }
    if (reserved(prefix)) luaL_error(L, "save: key '%s' is reserved for moongrad's own metadata", prefix);
    record(L, w, prefix, code, depth, irregular);
    return;
  }
  if (depth >= MAX_DEPTH) luaL_error(L, "save: tables nested more than %d deep at '%s'", MAX_DEPTH, prefix);
  lua_pushvalue(L, v);
  if (lua_rawget(L, w->seen) != LUA_TNIL) luaL_error(L, "save: the table at '%s' contains itself (a cycle)", where);
  lua_pop(L, 1);
  lua_pushvalue(L, v);
  lua_pushboolean(L, 1);
  lua_rawset(L, w->seen);
  /* keys, sorted: integers first, then strings */
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, v)) n++, lua_pop(L, 1);
  key *keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
  int top = lua_gettop(L);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, v)) { /* string keys stay alive: they are keys of v */
    lua_pop(L, 1);
    if (k == n) luaL_error(L, "save: table at '%s' changed while saving", where);
    key *e = &keys[k++];
    if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1)) {
      e->isint = true, e->i = lua_tointeger(L, -1), e->s = NULL;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len;
      e->isint = false, e->s = lua_tolstring(L, -1, &len);
      if (len == 0) luaL_error(L, "save: empty key in the table at '%s'", where);
      if (strlen(e->s) != len || !mgio_utf8_valid(e->s, len))
        luaL_error(L, "save: key in the table at '%s' is not a valid UTF-8 string", where);
      if (e->s[0] == '.' || e->s[len - 1] == '.' || strstr(e->s, ".."))
        luaL_error(L, "save: key '%s' (in '%s') would make an empty part of a dotted name", e->s, where);
    } else {
      luaL_error(L, "save: keys must be strings or integers; the table at '%s' has a %s key", where,
                 lua_type(L, -1) == LUA_TNUMBER ? "non-integer number" : mgl_typename(L, -1));
    }
  }
  qsort(keys, k, sizeof *keys, key_cmp);
  if (k == 0 && depth > 0) { /* an empty nested table */
    if (reserved(prefix)) luaL_error(L, "save: key '%s' is reserved for moongrad's own metadata", prefix);
    lua_pushliteral(L, "");
    record(L, w, prefix, "t", depth, irregular);
  }
  for (size_t i = 0; i < k; i++) {
    char kb[32];
    const char *ks = keys[i].s;
    lua_Integer dummy;
    bool odd = !keys[i].isint && (strchr(ks, '.') || canon_int(ks, strlen(ks), &dummy));
    if (keys[i].isint) snprintf(kb, sizeof kb, LUA_INTEGER_FMT, keys[i].i), ks = kb;
    lua_pushfstring(L, "%s%s%s", prefix, *prefix ? "." : "", ks);
    int name = lua_gettop(L);
    if (keys[i].isint) lua_pushinteger(L, keys[i].i);
    else lua_pushstring(L, ks);
    lua_pushvalue(L, -1);
    lua_rawseti(L, w->path, depth + 1);
    lua_rawget(L, v);
    flatten(L, w, lua_gettop(L), lua_tostring(L, name), depth + 1, irregular + odd);
    lua_settop(L, name - 1);
  }
  lua_settop(L, top - 1);
  lua_pushvalue(L, v);
  lua_pushnil(L);
  lua_rawset(L, w->seen); /* a table may appear twice, just not inside itself */
}

static int l_save(lua_State *L) {
  const char *path = mgl_checkstring(L, 1, "save", "a file path");
  if (lua_isnoneornil(L, 2)) return luaL_error(L, "save: expected a tensor or a table to save, got nothing");
  lua_settop(L, 2);
  lua_newtable(L); /* 3: flat */
  lua_newtable(L); /* 4: seen (tables being walked, names taken) */
  lua_newtable(L); /* 5: path */
  walk w = {3, 4, 5};
  bool root_tensor = mgl_test(L, 2) != NULL;
  if (root_tensor) {
    lua_newtable(L);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "tensor");
    lua_replace(L, 2);
  } else if (!lua_istable(L, 2)) {
    return luaL_error(L, "save: expected a tensor or a table, got %s", mgl_typename(L, 2));
  }
  flatten(L, &w, 2, "", 0, 0);
  int n = (int)lua_rawlen(L, 3), nt = 0, nm = 0;
  /* the types and keys entries, as JSON */
  cJSON *types = cJSON_CreateObject(), *keys = cJSON_CreateObject();
  bool oom = !types || !keys;
  for (int i = 1; i <= n && !oom; i++) {
    lua_rawgeti(L, 3, i);
    lua_rawgeti(L, -1, 1);
    const char *name = lua_tostring(L, -1);
    lua_rawgeti(L, -2, 3);
    const char *c = lua_tostring(L, -1);
    if (*c == 'T') nt++;
    else nm++, oom = !cJSON_AddStringToObject(types, name, c);
    if (lua_rawgeti(L, -3, 4) == LUA_TTABLE) {
      cJSON *a = cJSON_AddArrayToObject(keys, name);
      int m = (int)lua_rawlen(L, -1);
      for (int j = 1; j <= m && a && !oom; j++) {
        lua_rawgeti(L, -1, j);
        cJSON *e = cJSON_CreateString(lua_tostring(L, -1));
        oom = !e || !cJSON_AddItemToArray(a, e);
        lua_pop(L, 1);
      }
      oom = oom || !a;
    }
    lua_pop(L, 4);
  }
  char *tjson = oom ? NULL : cJSON_PrintUnformatted(types);
  char *kjson = oom || !keys->child ? NULL : cJSON_PrintUnformatted(keys);
  bool has_keys = !oom && keys->child;
  cJSON_Delete(types);
  cJSON_Delete(keys);
  if (!tjson || (has_keys && !kjson)) {
    free(tjson), free(kjson);
    return luaL_error(L, "save: out of memory");
  }
  lua_pushstring(L, tjson); /* 6 */
  lua_pushstring(L, kjson ? kjson : ""); /* 7 */
  free(tjson), free(kjson);
  /* C arrays live in a userdata so a raised error cannot leak them */
  size_t need = (size_t)nt * (sizeof(mgio_wtensor) + sizeof(mg_tensor *)) + (size_t)(nm + 4) * sizeof(mgio_kv);
  char *mem = lua_newuserdatauv(L, need ? need : 1, 0);
  mgio_wtensor *ts = (mgio_wtensor *)mem;
  mg_tensor **held = (mg_tensor **)(ts + nt);
  mgio_kv *kv = (mgio_kv *)(held + nt);
  int it = 0, im = 0;
  kv[im++] = (mgio_kv){K_FORMAT, "1"};
  kv[im++] = (mgio_kv){K_TYPES, lua_tostring(L, 6)};
  if (has_keys) kv[im++] = (mgio_kv){K_KEYS, lua_tostring(L, 7)};
  if (root_tensor) kv[im++] = (mgio_kv){K_ROOT, "tensor"};
  /* phase 2: from here no Lua errors until every held tensor is released */
  mg_rt *rt = mgl_rt(L);
  char err[MG_ERRLEN + 64] = "";
  int r = 0;
  for (int i = 1; i <= n; i++) { /* strings and tensors stay anchored by flat (3) */
    lua_rawgeti(L, 3, i);
    lua_rawgeti(L, -1, 1);
    const char *name = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 3);
    bool is_t = *lua_tostring(L, -1) == 'T';
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 2);
    if (is_t) {
      mg_tensor *c = r ? NULL : mg_contiguous(mgl_test(L, -1));
      lua_pop(L, 2);
      if (!c) { if (!r) r = -1, snprintf(err, sizeof err, "%s", mg_errmsg(rt)); continue; }
      held[it] = c;
      ts[it++] = (mgio_wtensor){name, c->dtype == MG_F64 ? MGIO_F64 : MGIO_F32, c->ndim, c->shape, mg_data(c)};
    } else {
      kv[im++] = (mgio_kv){name, lua_tostring(L, -1)};
      lua_pop(L, 2);
    }
  }
  if (!r) r = mgio_st_write(path, ts, it, kv, im, err, sizeof err);
  for (int i = 0; i < it; i++) mg_release(held[i]);
  if (r) return luaL_error(L, "save: %s", err);
  return 0;
}

/* ---- mg.load --------------------------------------------------------------------- */

typedef struct { mg_rt *rt; mg_tensor **out; int n; } allocs;

static void *tensor_alloc(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *err, size_t errlen) {
  allocs *a = ud;
  mg_tensor *t = mg_empty(a->rt, dt == MGIO_F64 ? MG_F64 : MG_F32, ndim, shape);
  if (!t) { snprintf(err, errlen, "%s", mg_errmsg(a->rt)); return NULL; }
  a->out[a->n++] = t;
  return mg_data(t);
}

/* push the keys of a dotted name as a Lua array: from keys[name] ("moongrad.keys",
** already decoded) if there, else split at the dots, integers becoming integer keys */
static void push_parts(lua_State *L, const char *name, int keys) {
  if (keys && lua_getfield(L, keys, name) == LUA_TTABLE) return;
  if (keys) lua_pop(L, 1);
  lua_newtable(L);
  int k = 0;
  for (const char *p = name;; ) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    lua_Integer iv;
    if (canon_int(p, n, &iv)) lua_pushinteger(L, iv);
    else lua_pushlstring(L, p, n);
    lua_rawseti(L, -2, ++k);
    if (!dot) break;
    p = dot + 1;
  }
}

/* root[keys of name] = the value on top of the stack (popped) */
static void insert(lua_State *L, int root, const char *name, const char *file, int keys) {
  int val = lua_gettop(L);
  push_parts(L, name, keys);
  int parts = val + 1, n = (int)lua_rawlen(L, parts);
  lua_pushvalue(L, root); /* the current table, at val + 2 */
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, parts, i);
    lua_pushvalue(L, -1);
    int ty = lua_rawget(L, -3); /* cur, key, cur[key] */
    if (i == n) {
      if (ty != LUA_TNIL) { /* only an empty table may meet another table there */
        if (!(ty == LUA_TTABLE && !mgl_test(L, -1) && lua_istable(L, val) && !mgl_test(L, val)))
          luaL_error(L, "load: %s: entry '%s' conflicts with another entry", file, name);
      } else {
        lua_pop(L, 1);
        lua_pushvalue(L, val);
        lua_rawset(L, -3);
      }
      break;
    }
    if (ty == LUA_TNIL) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, -5); /* cur[key] = {} */
    } else if (ty != LUA_TTABLE || mgl_test(L, -1)) {
      luaL_error(L, "load: %s: entry '%s' conflicts with another entry", file, name);
    }
    lua_replace(L, val + 2); /* descend */
    lua_pop(L, 1);           /* the key */
  }
  lua_settop(L, val - 1);
}

/* decode "moongrad.keys" into a table name -> array of keys; checks each joins to its name */
static void decode_keys(lua_State *L, const char *json, const char *file) {
  cJSON *j = cJSON_Parse(json);
  if (!cJSON_IsObject(j)) {
    cJSON_Delete(j);
    luaL_error(L, "load: %s: metadata %s is not a JSON object", file, K_KEYS);
  }
  /* copy into Lua strings first, so an error below cannot leak the cJSON tree */
  lua_newtable(L);
  int raw = lua_gettop(L), m = 0;
  bool bad = false;
  for (cJSON *c = j->child; c && !bad; c = c->next) {
    lua_createtable(L, cJSON_GetArraySize(c) + 1, 0);
    lua_pushstring(L, c->string), lua_rawseti(L, -2, 1);
    int k = 1;
    for (cJSON *e = cJSON_IsArray(c) ? c->child : NULL; e && !bad; e = e->next) {
      bad = !cJSON_IsString(e);
      if (!bad) lua_pushstring(L, e->valuestring), lua_rawseti(L, -2, ++k);
    }
    bad = bad || !cJSON_IsArray(c);
    lua_rawseti(L, raw, ++m);
  }
  cJSON_Delete(j);
  if (bad) luaL_error(L, "load: %s: metadata %s is malformed", file, K_KEYS);
  lua_newtable(L);
  int out = lua_gettop(L);
  for (int i = 1; i <= m; i++) {
    lua_rawgeti(L, raw, i);
    int e = lua_gettop(L), n = (int)lua_rawlen(L, e);
    lua_rawgeti(L, e, 1);
    const char *name = lua_tostring(L, -1);
    lua_rawgeti(L, e, 2);
    size_t nt;
    const char *types = lua_tolstring(L, -1, &nt);
    if (!types || (int)nt != n - 2) luaL_error(L, "load: %s: metadata %s: bad entry for '%s'", file, K_KEYS, name);
    lua_createtable(L, (int)nt, 0);
    luaL_Buffer b; /* the joined name, to compare */
    luaL_buffinit(L, &b);
    for (size_t k = 0; k < nt; k++) {
      lua_rawgeti(L, e, (lua_Integer)k + 3);
      size_t len;
      const char *part = lua_tolstring(L, -1, &len);
      lua_pop(L, 1); /* still anchored in e */
      if (k) luaL_addchar(&b, '.');
      luaL_addlstring(&b, part, len);
    }
    luaL_pushresult(&b);
    if (strcmp(lua_tostring(L, -1), name))
      luaL_error(L, "load: %s: metadata %s: the keys of '%s' do not spell its name", file, K_KEYS, name);
    lua_pop(L, 1);
    for (size_t k = 0; k < nt; k++) {
      lua_rawgeti(L, e, (lua_Integer)k + 3);
      size_t len;
      const char *part = lua_tolstring(L, -1, &len);
      lua_Integer iv;
      if (types[k] == 'i') {
        if (!canon_int(part, len, &iv)) luaL_error(L, "load: %s: metadata %s: bad integer key in '%s'", file, K_KEYS, name);
        lua_pushinteger(L, iv);
      } else if (types[k] == 's') {
        lua_pushvalue(L, -1);
      } else {
        luaL_error(L, "load: %s: metadata %s: bad key type in '%s'", file, K_KEYS, name);
      }
      lua_rawseti(L, -3, (lua_Integer)k + 1);
      lua_pop(L, 1);
    }
    lua_setfield(L, out, name);
    lua_settop(L, out);
  }
  lua_remove(L, raw);
}

static int hexval(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* push the value of a metadata entry of type code c */
static void push_meta(lua_State *L, const char *file, const char *name, const char *c, const char *s) {
  char *end;
  if (!strcmp(c, "i")) {
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) luaL_error(L, "load: %s: entry '%s': '%s' is not an integer", file, name, s);
    lua_pushinteger(L, (lua_Integer)v);
  } else if (!strcmp(c, "n")) {
    double v = strtod(s, &end);
    if (!*s || *end) luaL_error(L, "load: %s: entry '%s': '%s' is not a number", file, name, s);
    lua_pushnumber(L, (lua_Number)v);
  } else if (!strcmp(c, "b")) {
    if (strcmp(s, "true") && strcmp(s, "false")) luaL_error(L, "load: %s: entry '%s': '%s' is not a boolean", file, name, s);
    lua_pushboolean(L, !strcmp(s, "true"));
  } else if (!strcmp(c, "s")) {
    lua_pushstring(L, s);
  } else if (!strcmp(c, "x")) {
    size_t n = strlen(s);
    if (n % 2) luaL_error(L, "load: %s: entry '%s': bad hex string", file, name);
    luaL_Buffer b;
    char *o = luaL_buffinitsize(L, &b, n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
      int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
      if (h < 0 || l < 0) luaL_error(L, "load: %s: entry '%s': bad hex string", file, name);
      o[i] = (char)(h << 4 | l);
    }
    luaL_pushresultsize(&b, n / 2);
  } else if (!strcmp(c, "t")) {
    lua_newtable(L);
  } else {
    luaL_error(L, "load: %s: entry '%s' has unknown type '%s' (written by a newer moongrad?)", file, name, c);
  }
}

static int l_load(lua_State *L) {
  const char *path = mgl_checkstring(L, 1, "load", "a file path");
  mg_rt *rt = mgl_rt(L);
  char err[MG_ERRLEN + 64];
  mgio_st st;
  if (mgio_st_open(&st, path, err, sizeof err)) return luaL_error(L, "load: %s", err);
  /* tensors are made by the reader through tensor_alloc; nothing raises until they are pushed */
  mg_tensor **out = calloc((size_t)st.n + 1, sizeof *out);
  allocs a = {rt, out, 0};
  int r = out ? mgio_st_read_all(&st, NULL, tensor_alloc, &a, err, sizeof err)
              : (snprintf(err, sizeof err, "%s: out of memory", path), -1);
  if (r) {
    for (int i = 0; i < a.n; i++) mg_release(out[i]);
    free(out);
    mgio_st_close(&st);
    return luaL_error(L, "load: %s", err);
  }
  /* push everything Lua needs first (tensors and strings), then free the C side */
  lua_settop(L, 1);
  lua_createtable(L, st.n, 0); /* 2: tensors by name, in st.t order */
  for (int i = 0; i < st.n; i++) {
    int k = st.order[i]; /* out[] follows the read order */
    mgl_push(L, out[i]);
    lua_setfield(L, 2, st.t[k].name);
  }
  free(out);
  lua_createtable(L, 0, st.nmeta); /* 3: raw metadata */
  for (int i = 0; i < st.nmeta; i++) {
    lua_pushstring(L, st.mval[i]);
    lua_setfield(L, 3, st.mkey[i]);
  }
  lua_createtable(L, st.n, 0); /* 4: tensor names, header order */
  for (int i = 0; i < st.n; i++) {
    lua_pushstring(L, st.t[i].name);
    lua_rawseti(L, 4, i + 1);
  }
  mgio_st_close(&st);
  /* a bare tensor */
  lua_getfield(L, 3, K_ROOT);
  if (lua_isstring(L, -1)) {
    if (strcmp(lua_tostring(L, -1), "tensor") || lua_getfield(L, 2, "tensor") == LUA_TNIL)
      return luaL_error(L, "load: %s: metadata %s does not match the file's tensors", path, K_ROOT);
    lua_pushvalue(L, 3);
    return 2;
  }
  lua_settop(L, 4);
  int keys = 0;
  if (lua_getfield(L, 3, K_KEYS) == LUA_TSTRING) { /* 5: names whose dots do not tell their keys */
    decode_keys(L, lua_tostring(L, 5), path);
    lua_replace(L, 5);
    keys = 5;
  }
  lua_settop(L, 5);
  lua_newtable(L); /* 6: the result */
  int n = (int)lua_rawlen(L, 4);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 4, i);
    const char *name = lua_tostring(L, -1);
    lua_getfield(L, 2, name);
    insert(L, 6, name, path, keys);
    lua_pop(L, 1);
  }
  lua_getfield(L, 3, K_TYPES);
  if (lua_isstring(L, -1)) { /* restore the non-tensor values */
    cJSON *types = cJSON_Parse(lua_tostring(L, -1));
    if (!cJSON_IsObject(types)) {
      cJSON_Delete(types);
      return luaL_error(L, "load: %s: metadata %s is not a JSON object", path, K_TYPES);
    }
    /* copy to Lua first so errors below cannot leak the cJSON tree */
    lua_newtable(L);
    int tt = lua_gettop(L);
    int k = 0;
    for (cJSON *c = types->child; c; c = c->next) {
      if (!cJSON_IsString(c)) continue;
      lua_createtable(L, 2, 0);
      lua_pushstring(L, c->string), lua_rawseti(L, -2, 1);
      lua_pushstring(L, c->valuestring), lua_rawseti(L, -2, 2);
      lua_rawseti(L, tt, ++k);
    }
    cJSON_Delete(types);
    for (int i = 1; i <= k; i++) {
      lua_rawgeti(L, tt, i);
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2);
      const char *name = lua_tostring(L, -2), *code = lua_tostring(L, -1);
      if (lua_getfield(L, 3, name) != LUA_TSTRING)
        return luaL_error(L, "load: %s: entry '%s' is listed in %s but missing from the metadata", path, name, K_TYPES);
      push_meta(L, path, name, code, lua_tostring(L, -1));
      insert(L, 6, name, path, keys);
      lua_pop(L, 4);
    }
  }
  lua_pushvalue(L, 6);
  lua_pushvalue(L, 3);
  return 2;
}

/* ---- data readers: mg._idx(path), mg._csv(path, header, delimiter) --------------- */

static int push_array(lua_State *L, allocs *a, int r, const char *op, const char *err) {
  if (r) {
    if (a->n) mg_release(a->out[0]);
    return luaL_error(L, "%s: %s", op, err);
  }
  return mgl_push(L, a->out[0]);
}

static int l_idx(lua_State *L) {
  const char *path = mgl_checkstring(L, 1, "idx", "a file path");
  char err[MG_ERRLEN + 64];
  mg_tensor *t = NULL;
  allocs a = {mgl_rt(L), &t, 0};
  mgio_array arr;
  int r = mgio_idx_read(path, &arr, tensor_alloc, &a, err, sizeof err);
  return push_array(L, &a, r, "data.idx", err);
}

static int l_csv(lua_State *L) {
  const char *path = mgl_checkstring(L, 1, "csv", "a file path");
  mgio_csv_opts o = {.header = lua_toboolean(L, 2), .delim = ','};
  if (!lua_isnoneornil(L, 3)) {
    size_t n;
    mgl_checkstring(L, 3, "csv", "a delimiter string");
    const char *d = lua_tolstring(L, 3, &n);
    if (n != 1 || *d == '"' || *d == '\n' || *d == '\r')
      return luaL_error(L, "data.csv: delimiter must be one character (not a quote or newline), got '%s'", d);
    o.delim = *d;
  }
  char err[MG_ERRLEN + 64];
  mg_tensor *t = NULL;
  allocs a = {mgl_rt(L), &t, 0};
  mgio_array arr;
  int r = mgio_csv_read(path, &o, &arr, tensor_alloc, &a, err, sizeof err);
  if (!r && arr.names) {
    mgl_push(L, t);
    lua_createtable(L, arr.ncols, 0);
    for (int i = 0; i < arr.ncols; i++) lua_pushstring(L, arr.names[i]), lua_rawseti(L, -2, i + 1);
    mgio_array_free_names(&arr);
    return 2;
  }
  return push_array(L, &a, r, "data.csv", err);
}

void mgl_open_io(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"save", l_save}, {"load", l_load}, {"_idx", l_idx}, {"_csv", l_csv}, {NULL, NULL}};
  mgl_register(L, fns, NULL);
}
