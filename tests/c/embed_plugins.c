/* embed_plugins.c — plugins from the host: a descriptor registered statically
** (no dlopen) and used from Lua, bad descriptors refused, configured plugin
** directories, loading from the host while scripts may not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "moongrad.h"
#include "moongrad_plugin.h"

static const mgp_host *H;

/* p <- p - lr * g, and count the steps in the optimizer's state */
static int plain_step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i);
    for (int64_t k = 0, m = H->numel(p); k < m; k++)
      mgp_set(H->data(p), H->dtype(p), k, mgp_get(H->data(p), H->dtype(p), k) - hp[0] * mgp_get(H->data(g), H->dtype(g), k));
  }
  return H->state_put(ctx, -1, "steps", H->state_get(ctx, -1, "steps", 0) + 1);
}

static const mgp_hparam plain_hp[] = {{"lr", MGP_NUM, 0.5, 0.0, HUGE_VAL, MGP_HP_MIN_OPEN, "learning rate"}};
static const mgp_optim_desc plain = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "host_plain", "2.0.0", "test optimizer from the host"),
  .hparams = plain_hp, .nhparams = 1, .state_version = 1, .step = plain_step,
};
/* broken: no step callback */
static const mgp_optim_desc nostep = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "host_nostep", "1.0.0", NULL),
  .hparams = plain_hp, .nhparams = 1,
};
/* broken: built for another ABI major */
static const mgp_optim_desc future = {
  .head = {sizeof(mgp_optim_desc), MGP_ABI_MAJOR + 1, 0, MGP_FINGERPRINT, MGP_OPTIM, "host_future", "1", NULL},
  .hparams = plain_hp, .nhparams = 1, .step = plain_step,
};

int main(void) {
  const char *build = getenv("MG_BUILD");
  if (!build) build = "build";
  char plugdir[512];
  snprintf(plugdir, sizeof plugdir, "%s/plugins", build);
  char err[256];

  H = mg_plugin_host_table();
  ok(H && mgp_host_ok(H), "the host table serves this SDK's ABI");

  /* only what the host names: no default directories */
  mg_config cfg;
  mg_config_init(&cfg);
  cfg.default_plugin_dirs = false;
  mg_runtime *R = mg_open(&cfg, err, sizeof err);
  ok(R != NULL, "open without default plugin directories");
  ok(mg_plugin_list_count(R) == 0, "no plugins at all");
  ok(mg_register_plugin(R, &plain, "embed_plugins.c") == MG_OK, "register a static optimizer");
  ok(mg_plugin_list_count(R) == 1, "one plugin now");
  mg_plugin_entry e = {0};
  ok(mg_plugin_list_get(R, 0, &e) == MG_OK, "list it");
  is_str(e.name, "host_plain", "name");
  is_str(e.kind, "optim", "kind");
  is_str(e.version, "2.0.0", "version");
  is_str(e.file, "embed_plugins.c", "origin");
  ok(mg_plugin_list_get(R, 1, &e) == MG_ERR_ARG, "no plugin #1");

  ok(mg_run_string(R,
       "local mg = require('moongrad')\n"
       "p = mg.tensor({1, 2, 3}, {requires_grad = true})\n"
       "local opt = mg.optim('host_plain', {p}, {lr = 0.25})\n"
       "for i = 1, 2 do opt:zero_grad(); (p * p):sum():backward(); opt:step() end\n") == MG_OK, "a script trains with the static optimizer");
  if (*mg_last_error(R)) diag("%s", mg_last_error(R));
  mg_value *p = NULL;
  float pv[3] = {0};
  ok(mg_get_global_tensor(R, "p", &p) == MG_OK && mg_tensor_read(p, MG_FLOAT32, pv, 3) == MG_OK, "read p");
  /* p <- p - 0.25 * 2p = p/2, twice */
  is_num(pv[0], 0.25, 1e-6, "p[1] = 1/4");
  is_num(pv[2], 0.75, 1e-6, "p[3] = 3/4");
  ok(mg_run_string(R, "local mg = require('moongrad'); mg.optim('host_plain', {p}, {lr = -1})") == MG_ERR_RUN,
     "its hyperparameters are validated by the runtime");
  like(mg_last_error(R), "lr", "message names lr");
  ok(mg_run_string(R, "local mg = require('moongrad'); mg.optim('sgd', {p}, {lr = 1})") == MG_ERR_RUN,
     "sgd is not there without the default directories");

  ok(mg_register_plugin(R, &plain, "again") == MG_ERR_ARG, "a duplicate name is refused");
  like(mg_last_error(R), "duplicate name", "message");
  ok(mg_register_plugin(R, &nostep, NULL) == MG_ERR_ARG, "a descriptor without step is refused");
  like(mg_last_error(R), "step", "message names the callback");
  ok(mg_register_plugin(R, &future, NULL) == MG_ERR_ARG, "another ABI major is refused");
  like(mg_last_error(R), "ABI", "message names the ABI");
  ok(mg_register_plugin(R, NULL, NULL) == MG_ERR_ARG, "NULL is refused");
  ok(mg_plugin_list_count(R) == 1, "still one plugin");

  /* the host may load plugins even when scripts may not */
  ok(mg_load_plugin(R, "/nonexistent/x.so") == MG_ERR_ARG, "a missing file: MG_ERR_ARG");
  like(mg_last_error(R), "no such file", "message");
  char path[600];
  snprintf(path, sizeof path, "%s/adam.so", plugdir);
  ok(mg_load_plugin(R, path) == MG_OK, "mg_load_plugin adam.so");
  ok(mg_plugin_list_count(R) == 3, "three plugins (adam.so registers adam and adamw)");
  mg_close(R);

  /* plugin directories from the config, scripts not allowed to load */
  const char *dirs[] = {plugdir, NULL};
  mg_config_init(&cfg);
  cfg.default_plugin_dirs = false;
  cfg.plugin_dirs = dirs;
  cfg.allow_plugin_load = false;
  R = mg_open(&cfg, err, sizeof err);
  ok(R != NULL, "open with plugin_dirs = {%s}", plugdir);
  ok(mg_plugin_list_count(R) >= 10, "the directory's plugins are registered (%d)", mg_plugin_list_count(R));
  ok(mg_run_string(R, "local mg = require('moongrad'); local o = mg.optim('sgd', {mg.zeros(1, {requires_grad = true})}, {lr = 1})") == MG_OK,
     "a script uses one");
  ok(mg_run_string(R, "local mg = require('moongrad'); mg.load_plugin('x.so')") == MG_ERR_RUN,
     "but may not load one");
  ok(mg_add_plugin_dir(R, "/nonexistent") == MG_OK, "adding a missing directory is not an error");
  mg_close(R);
  return done_testing();
}
