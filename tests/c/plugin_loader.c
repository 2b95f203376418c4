/*
** plugin_loader.c — the plugin loader against deliberately broken plugins.
** Builds tests/plugins/broken.c once per -D flag with the documented plugin
** command into a temporary directory, loads each, and checks the refusal message
** (file and reason) and that the runtime keeps working afterwards. Also: the
** built-ins are discovered, directory scanning and MOONGRAD_PLUGIN_PATH, static
** registration, hyperparameter validation, optimizer-level state with a
** state_version migration, and the script-side load switch.
** Run from the source tree root (as `make test` does).
*/
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mg_plugin.h"
#include "tap.h"

int mgl_open_with(lua_State *L, mg_rt *rt, bool owned);  /* l_moongrad.c */

static char dir[256];
static const char *SRC = "tests/plugins/broken.c";

static const char *build(const char *flag) {
  static char path[512];
  char cmd[1400];
  snprintf(path, sizeof path, "%s/%s.so", dir, flag);
  snprintf(cmd, sizeof cmd, "cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -D%s -o %s %s", flag, path, SRC);
  if (system(cmd) != 0) { diag("build failed: %s", cmd); return NULL; }
  return path;
}

/* the runtime still works: an sgd step on a fresh parameter */
static int works(mg_rt *rt) {
  mg_tensor *p = mg_from_data(rt, MG_F32, 1, (int64_t[]){2}, (double[]){1, 2});
  p->grad = mg_from_data(rt, MG_F32, 1, (int64_t[]){2}, (double[]){1, -1});
  mg_hpval lr = {.name = "lr", .type = MG_HV_NUM, .num = 0.5};
  mg_optim *o = mg_optim_new(rt, "sgd", 1, &p, 1, &lr);
  int good = o && mg_optim_step(o) == 0 && mg_f32(p)[0] == 0.5f && mg_f32(p)[1] == 2.5f;
  mg_optim_free(o);
  mg_release(p);
  return good;
}

static int nwarn;
static char lastwarn[2048];
static void warn(void *ud, const char *msg) { (void)ud; nwarn++; snprintf(lastwarn, sizeof lastwarn, "%s", msg); }

static int has(mg_rt *rt, const char *name, const char *kind) {
  for (int i = 0, n = mg_plugin_count(rt); i < n; i++) {
    mg_plugin_info in;
    mg_plugin_get(rt, i, &in);
    if (!strcmp(in.name, name) && !strcmp(in.kind, kind)) return 1;
  }
  return 0;
}

/* a descriptor linked into this program (mg_plugin_register, no dlopen) */
static const mgp_host *SH;
static int halve_step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)hp; (void)user;
  for (int i = 0; i < SH->nparams(ctx); i++) {
    mgp_tensor *p = SH->param(ctx, i);
    float *x = SH->data(p);
    for (int64_t k = 0; k < SH->numel(p); k++) x[k] *= 0.5f;
  }
  return 0;
}
static const mgp_optim_desc halve = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "halve", "1.0", "static test optimizer"),
  .step = halve_step,
};

int main(void) {
  if (access(SRC, R_OK) != 0) { printf("1..0 # SKIP run from the source root (needs %s)\n", SRC); return 0; }
  snprintf(dir, sizeof dir, "/tmp/mg_plugin_test_XXXXXX");
  if (!mkdtemp(dir)) { printf("Bail out! mkdtemp\n"); return 1; }

  mg_rt *rt = mg_rt_new();
  mg_plugin_set_warn(rt, warn, NULL);
  /* built-ins, found next to the executable's build tree */
  static const char *builtins[][2] = {
    {"sgd", "optim"}, {"adam", "optim"}, {"adamw", "optim"}, {"rmsprop", "optim"}, {"adagrad", "optim"},
    {"mse", "loss"}, {"l1", "loss"}, {"smooth_l1", "loss"}, {"huber", "loss"}, {"cross_entropy", "loss"},
    {"nll", "loss"}, {"bce", "loss"}, {"bce_with_logits", "loss"}, {"kl_div", "loss"}};
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
    ok(has(rt, builtins[i][0], builtins[i][1]), "built-in %s %s is registered", builtins[i][1], builtins[i][0]);
  mg_plugin_info info = {0};
  int got = mg_plugin_get(rt, 0, &info);
  ok(got == 0 && strstr(info.file, "/plugins/") && !strcmp(info.version, "1.0.0"),
     "listing gives file and version (%s %s)", info.file, info.version);
  ok(nwarn == 0, "no refusals among the built-ins%s%s", nwarn ? ": " : "", nwarn ? lastwarn : "");
  ok(works(rt), "sgd works");

  /* each broken plugin: refused with the file and the reason; the runtime keeps working */
  static const char *cases[][2] = {
    {"BAD_MAJOR", "plugin 'signsgd': ABI major version mismatch (plugin built for ABI 2.0, runtime has ABI 1.0)"},
    {"NEWER_MINOR", "plugin 'signsgd': built for ABI 1.1, newer than the runtime's ABI 1.0"},
    {"BAD_FINGERPRINT", "plugin 'signsgd': type fingerprint 0x"},
    {"NO_ENTRY", "missing entry point 'mg_plugin_init' (not a moongrad plugin?)"},
    {"SMALL_DESC", "plugin 'signsgd': descriptor too small ("},
    {"NO_STEP", "plugin 'signsgd': missing required callback 'step'"},
    {"NO_FORWARD", "plugin 'brokenloss': missing required callback 'forward'"},
    {"DUP_NAME", "plugin 'sgd': duplicate name (an optimizer named 'sgd' is already registered from "},
    {"INIT_FAIL", "this plugin needs a GPU"},
    {"NO_REGISTER", "entry point registered no optimizer or loss"},
    {"BAD_HPARAM", "plugin 'signsgd': default 2 of 'decay' is outside its range [0, 1]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *path = build(cases[i][0]);
    int n0 = mg_plugin_count(rt);
    int rc = path ? mg_plugin_load(rt, path) : 0;
    char want[700];
    snprintf(want, sizeof want, "load_plugin: %s: ", path ? path : "?");
    ok(rc == -1, "%s is refused", cases[i][0]);
    like(mg_errmsg(rt), want, "  the message names the file");
    like(mg_errmsg(rt), cases[i][1], "  and the reason");
    ok(mg_plugin_count(rt) == n0 && has(rt, "sgd", "optim") && !has(rt, "signsgd", "optim"), "  nothing was registered");
    ok(works(rt), "  the runtime keeps working");
  }
  ok(mg_plugin_nrefusals(rt) == (int)(sizeof cases / sizeof *cases), "refusals are recorded (%d)", mg_plugin_nrefusals(rt));
  ok(mg_plugin_load(rt, "/nonexistent/x.so") == -1, "a missing file is refused");
  like(mg_errmsg(rt), "load_plugin: /nonexistent/x.so: no such file", "  with its name");
  ok(mg_plugin_load(rt, SRC) == -1, "a non-library is refused");
  like(mg_errmsg(rt), "cannot load: ", "  with dlopen's reason");

  /* a good plugin: loads, lists, trains; loading it again does nothing */
  char good[600];
  const char *built = build("GOOD");
  snprintf(good, sizeof good, "%s", built ? built : "?");
  ok(mg_plugin_load(rt, good) == 0, "a valid plugin loads");
  ok(has(rt, "signsgd", "optim"), "and registers its optimizer");
  ok(mg_plugin_load(rt, good) == 0 && mg_plugin_count(rt) == 15, "loading the same file again is a no-op");
  void *h = dlopen(good, RTLD_NOW | RTLD_NOLOAD);
  ok(h != NULL, "the library stays open while registered");
  if (h) dlclose(h);

  mg_tensor *p = mg_from_data(rt, MG_F64, 1, (int64_t[]){3}, (double[]){1, 2, 3});
  const char *nm0; mg_tensor *st0; double v0 = 0;
  mg_hpval lr = {.name = "lr", .type = MG_HV_NUM, .num = 0.25};
  nwarn = 0;
  mg_optim *o = mg_optim_new(rt, "signsgd", 1, &p, 1, &lr);
  ok(o != NULL, "optimizer from the loaded plugin");
  ok(nwarn == 1, "the plugin's create() ran and logged through the host");
  like(lastwarn, "optim signsgd: created with lr 0.25", "  prefixed with the optimizer");
  ok(mg_optim_save_prepare(o) == 0 && mg_optim_save_prepare(o) == 0, "save hook runs");
  ok(mg_optim_state_count(o, -1) == 1 && mg_optim_state_entry(o, -1, 0, &nm0, &st0, &v0) == 0 &&
     !strcmp(nm0, "saves") && v0 == 2, "  and keeps its private count in the state (private data persists)");
  mg_optim_state_clear(o);
  p->grad = mg_from_data(rt, MG_F64, 1, (int64_t[]){3}, (double[]){5, -0.1, 0});
  mg_optim_step(o);
  mg_optim_step(o);
  ok(mg_f64(p)[0] == 0.5 && mg_f64(p)[1] == 2.5 && mg_f64(p)[2] == 3, "its step follows its rule");
  const char *nm; mg_tensor *st; double v = 0;
  ok(mg_optim_state_count(o, -1) == 1 && mg_optim_state_entry(o, -1, 0, &nm, &st, &v) == 0 && !strcmp(nm, "t") && v == 2,
     "optimizer-level state counts the steps");
  /* state_version migration through the plugin's load hook */
  mg_optim_state_clear(o);
  mg_optim_state_set_num(o, -1, "count", 7);
  ok(mg_optim_load_finish(o, 1) == 0, "a state_version 1 checkpoint is migrated by the plugin");
  ok(mg_optim_state_count(o, -1) == 2 && mg_optim_state_entry(o, -1, 1, &nm, &st, &v) == 0 && !strcmp(nm, "t") && v == 7,
     "  (count -> t)");
  mg_optim_state_clear(o);
  ok(mg_optim_load_finish(o, 9) == -1, "an unknown state_version is refused");
  like(mg_errmsg(rt), "optim signsgd: load_state_dict: cannot read state_version 9", "  with the plugin's reason");
  mg_tensor *wrong = mg_full(rt, MG_F64, 1, (int64_t[]){4}, 0);
  ok(mg_optim_state_set_tensor(o, 0, "buf", wrong) == -1, "a state tensor of the wrong shape is refused");
  like(mg_errmsg(rt), "state 'buf' of parameter 1 has shape {4}, the parameter has {3}", "  naming both shapes");
  mg_release(wrong);

  /* hyperparameter validation before the plugin sees anything */
  mg_hpval bad[] = {{.name = "lrr", .type = MG_HV_NUM, .num = 1}};
  ok(!mg_optim_new(rt, "signsgd", 1, &p, 1, bad), "unknown option");
  is_str(mg_errmsg(rt), "optim signsgd: unknown option 'lrr' (accepted: lr, every)", "  lists the accepted names");
  mg_hpval frac = {.name = "every", .type = MG_HV_NUM, .num = 2.5};
  ok(mg_optim_set_hparam(o, &frac) == -1, "a fraction for an integer option");
  is_str(mg_errmsg(rt), "optim signsgd: option 'every' expects an integer, got 2.5", "  is refused");
  frac.num = 0;
  ok(mg_optim_set_hparam(o, &frac) == -1 && strstr(mg_errmsg(rt), "option 'every' must be in [1, 1000], got 0"),
     "an integer option's range is checked");
  frac.num = 10;
  ok(mg_optim_set_hparam(o, &frac) == 0 && mg_optim_hparam_value(o, 1) == 10, "a valid integer is stored");
  mg_hpval neg = {.name = "lr", .type = MG_HV_NUM, .num = -1};
  ok(mg_optim_set_hparam(o, &neg) == -1, "setting lr out of range");
  is_str(mg_errmsg(rt), "optim signsgd: option 'lr' must be >= 0, got -1", "  is refused with the range");
  ok(mg_optim_hparam_value(o, 0) == 0.25, "  and leaves lr unchanged");
  mg_hpval nan_ = {.name = "lr", .type = MG_HV_NUM, .num = NAN};
  ok(mg_optim_set_hparam(o, &nan_) == -1 && strstr(mg_errmsg(rt), "option 'lr' is NaN"), "NaN is refused");
  mg_hpval nest[] = {{.name = "lr", .type = MG_HV_NUM, .num = 0.1}, {.name = "nesterov", .type = MG_HV_BOOL, .num = 1}};
  ok(!mg_optim_new(rt, "sgd", 1, &p, 2, nest), "the plugin's validate hook runs");
  like(mg_errmsg(rt), "optim sgd: invalid options: nesterov momentum requires a momentum > 0 and zero dampening", "  with its reason");
  ok(!mg_optim_new(rt, "sgd", 1, &p, 0, NULL), "sgd's lr is required (as in PyTorch)");
  is_str(mg_errmsg(rt), "optim sgd: option 'lr' is required (accepted: lr, momentum, dampening, weight_decay, nesterov)", "  message");
  mg_hpval nb = {.name = "amsgrad", .type = MG_HV_NUM, .num = 1};
  ok(!mg_optim_new(rt, "adam", 1, &p, 1, &nb), "a number for a boolean option");
  is_str(mg_errmsg(rt), "optim adam: option 'amsgrad' expects a boolean, got number", "  is refused");
  ok(!mg_optim_new(rt, "adam", 0, NULL, 0, NULL), "an empty parameter list");
  is_str(mg_errmsg(rt), "optim adam: got an empty parameter list", "  is refused");
  mg_tensor *two[] = {p, p};
  ok(!mg_optim_new(rt, "adam", 2, two, 0, NULL) && strstr(mg_errmsg(rt), "parameter 2 is the same tensor as parameter 1"),
     "a duplicated parameter is refused");
  ok(!mg_optim_new(rt, "adamx", 1, &p, 0, NULL), "an unknown optimizer");
  is_str(mg_errmsg(rt), "optim: no optimizer named 'adamx' (available: adagrad, adam, adamw, rmsprop, sgd, signsgd)",
         "  lists the available ones");
  mg_optim_free(o);

  /* a plugin whose step reports an error: the error surfaces, the runtime goes on */
  const char *fs = build("STEP_ERROR");
  ok(fs && mg_plugin_load(rt, fs) == 0, "failstep loads");
  o = mg_optim_new(rt, "failstep", 1, &p, 0, NULL);
  ok(o && mg_optim_step(o) == 0, "its first step works");
  ok(o && mg_optim_step(o) == -1, "its second step fails");
  is_str(mg_errmsg(rt), "optim failstep: step: gradient exploded at step 2", "  with the plugin's message");
  mg_optim_free(o);
  ok(works(rt), "the runtime keeps working");
  mg_release(p);
  p = NULL;

  /* static registration: the plugin reaches the host table through mg_plugin_host() */
  SH = mg_plugin_host();
  ok(SH && mgp_host_ok(SH), "the host table is available to static plugins");
  ok(mg_plugin_register(rt, &halve, "test-binary") == 0, "static registration");
  ok(mg_plugin_register(rt, &halve, "test-binary") == -1, "registering the same name twice");
  like(mg_errmsg(rt), "register_plugin: test-binary: plugin 'halve': duplicate name", "  is refused");
  mgp_optim_desc tiny = halve;
  tiny.head.size = 8;
  tiny.head.name = "tiny";
  ok(mg_plugin_register(rt, &tiny, "test-binary") == -1, "a descriptor smaller than its head");
  like(mg_errmsg(rt), "descriptor too small (8 bytes", "  is refused");
  got = mg_plugin_get(rt, mg_plugin_count(rt) - 1, &info);
  ok(got == 0 && !strcmp(info.name, "halve") && !strcmp(info.file, "test-binary"), "listed with its origin");
  p = mg_from_data(rt, MG_F32, 1, (int64_t[]){2}, (double[]){3, -4});
  o = mg_optim_new(rt, "halve", 1, &p, 0, NULL);
  ok(o && mg_optim_step(o) == 0 && mg_f32(p)[0] == 1.5f && mg_f32(p)[1] == -2.0f, "the static optimizer steps");
  mg_optim_free(o);
  mg_release(p);
  mg_rt_free(rt);

  /* directory scanning: $MOONGRAD_PLUGIN_PATH and added dirs; refusals are warned, missing dirs ignored */
  char d1[300], d2[300], cmd[3000];
  snprintf(d1, sizeof d1, "%s/env", dir);
  snprintf(d2, sizeof d2, "%s/added", dir);
  snprintf(cmd, sizeof cmd, "mkdir -p %s %s && cp %s/GOOD.so %s/ && cp %s/BAD_MAJOR.so %s/STEP_ERROR.so %s/", d1, d2, dir, d1,
           dir, dir, d2);
  ok(system(cmd) == 0, "plugin directories prepared");
  char envv[700];
  snprintf(envv, sizeof envv, "/nonexistent/dir:%s", d1);
  setenv("MOONGRAD_PLUGIN_PATH", envv, 1);
  rt = mg_rt_new();
  nwarn = 0;
  mg_plugin_set_warn(rt, warn, NULL);
  ok(mg_plugin_add_dir(rt, d2) == 0 && mg_plugin_add_dir(rt, "/nonexistent/other") == 0, "directories added");
  ok(has(rt, "signsgd", "optim"), "a plugin from $MOONGRAD_PLUGIN_PATH is found");
  ok(has(rt, "failstep", "optim"), "a plugin from an added directory is found");
  ok(has(rt, "adam", "optim"), "the built-ins are still there");
  ok(nwarn == 1 && mg_plugin_nrefusals(rt) == 1, "one refusal while scanning (%d)", nwarn);
  like(lastwarn, "BAD_MAJOR.so: plugin 'signsgd': ABI major version mismatch", "  warned with file and reason");
  ok(works(rt), "the runtime works");
  mg_rt_free(rt);
  unsetenv("MOONGRAD_PLUGIN_PATH");

  /* no default directories: only what is added */
  rt = mg_rt_new();
  mg_plugin_default_dirs(rt, false);
  mg_plugin_add_dir(rt, d1);
  ok(mg_plugin_count(rt) == 1 && has(rt, "signsgd", "optim"), "default directories can be turned off");
  mg_rt_free(rt);

  /* script-side mg.load_plugin follows the host's switch */
  rt = mg_rt_new();
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  mgl_open_with(L, rt, true);
  lua_setglobal(L, "mg");
  char code[800];
  snprintf(code, sizeof code, "return mg.load_plugin('%s')[1]", good);
  int lst = luaL_dostring(L, code);
  ok(lst == LUA_OK && lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "signsgd"),
     "mg.load_plugin returns the registered names");
  if (lst != LUA_OK) diag("%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  mg_plugin_allow_script_load(rt, false);
  ok(luaL_dostring(L, code) != LUA_OK, "mg.load_plugin is refused when the host forbids it");
  like(lua_tostring(L, -1), "loading plugins from scripts is disabled by the host", "  with a clear message");
  lua_close(L);

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
