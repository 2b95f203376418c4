/*
** mg_plugin.h — the plugin loader and registry, and the optimizer/loss instances
** made from plugins (internal C API, no Lua). Errors: -1/NULL plus mg_errmsg(rt).
**
** Discovery is lazy: the first lookup or listing scans, in order,
**   1. the built-in directory: <dir of the executable or library>/plugins (or
**      its parent's plugins/) when run from the build tree, else MG_PLUGIN_DIR;
**   2. each directory of $MOONGRAD_PLUGIN_PATH (colon-separated);
**   3. the directories given with mg_plugin_add_dir (runner -P, embedder config).
** mg_plugin_load() loads one file at any time. The first registration of a name
** wins; later ones are refused ("duplicate name"). A refused file is recorded
** (mg_plugin_refusals) and reported through the warn hook; it never stops the
** runtime. A missing directory is not an error.
*/
#ifndef MG_PLUGIN_H
#define MG_PLUGIN_H

#include "mg_core.h"
#include "moongrad_plugin.h"

int mg_plugins_init(mg_rt *rt);
void mg_plugins_free(mg_rt *rt);

/* ---- discovery and registration ------------------------------------------ */

/* queue (before discovery) or scan now (after) a directory of plugins */
int mg_plugin_add_dir(mg_rt *rt, const char *dir);
/* skip the built-in directory and $MOONGRAD_PLUGIN_PATH (call before first use) */
void mg_plugin_default_dirs(mg_rt *rt, bool on);
/* load one shared library; 0 or -1 with "load_plugin: <file>: <reason>".
** Loading a file that is already loaded does nothing. */
int mg_plugin_load(mg_rt *rt, const char *path);
/* register a descriptor (mgp_optim_desc / mgp_loss_desc) linked into the host
** program, no dlopen; origin names it in listings and messages (e.g. "static") */
int mg_plugin_register(mg_rt *rt, const void *descriptor, const char *origin);
/* the host table a statically linked plugin calls (what an entry point receives) */
const mgp_host *mg_plugin_host(void);
/* scan the directories now if not done yet */
void mg_plugin_discover(mg_rt *rt);

/* script-side mg.load_plugin: allowed by default; an embedding sandbox turns it off */
void mg_plugin_allow_script_load(mg_rt *rt, bool allow);
bool mg_plugin_script_load_allowed(mg_rt *rt);
/* refusal messages also go here (default: stderr, "moongrad: <message>"); fn may be NULL */
void mg_plugin_set_warn(mg_rt *rt, void (*fn)(void *ud, const char *msg), void *ud);

typedef struct {
  const char *name, *kind, *version, *file, *doc; /* kind: "optim" or "loss" */
} mg_plugin_info;
int mg_plugin_count(mg_rt *rt);                        /* after discovery */
int mg_plugin_get(mg_rt *rt, int i, mg_plugin_info *out); /* 0-based, registration order */
int mg_plugin_nrefusals(mg_rt *rt);
const char *mg_plugin_refusal(mg_rt *rt, int i);

/* ---- hyperparameter values given by a script or an embedder -------------- */

typedef enum { MG_HV_NUM, MG_HV_BOOL, MG_HV_TENSOR, MG_HV_STRING, MG_HV_OTHER } mg_hvtype;
typedef struct {
  const char *name;
  mg_hvtype type;
  double num;          /* MG_HV_NUM; MG_HV_BOOL as 0/1 */
  mg_tensor *t;        /* MG_HV_TENSOR (borrowed) */
  const char *str;     /* MG_HV_STRING; MG_HV_OTHER: the type name for messages */
} mg_hpval;

/* ---- optimizers ------------------------------------------------------------ */

typedef struct mg_optim mg_optim;
/* params: contiguous leaf tensors (retained). "optim <name>: ..." errors. */
mg_optim *mg_optim_new(mg_rt *rt, const char *name, int nparams, mg_tensor *const *params,
                       int nopts, const mg_hpval *opts);
void mg_optim_free(mg_optim *o);
const char *mg_optim_name(const mg_optim *o);
int mg_optim_step(mg_optim *o);
/* set_to_none: drop the gradients, else zero them in place */
int mg_optim_zero_grad(mg_optim *o, bool set_to_none);
int mg_optim_nparams(const mg_optim *o);
mg_tensor *mg_optim_param(const mg_optim *o, int i);
/* hyperparameters: declaration order; get by name (-1 if unknown), set validates */
int mg_optim_nhparams(const mg_optim *o);
const mgp_hparam *mg_optim_hparam_decl(const mg_optim *o, int k);
double mg_optim_hparam_value(const mg_optim *o, int k);
int mg_optim_hparam_index(const mg_optim *o, const char *name);
int mg_optim_set_hparam(mg_optim *o, const mg_hpval *v);
/* several at once: all checked (and the plugin's validate run) before any is changed */
int mg_optim_set_hparams(mg_optim *o, int n, const mg_hpval *v);
int mg_optim_state_version(const mg_optim *o);

/* state, for checkpoints. i = -1: the optimizer's own entries. Entries keep
** insertion order; *t is borrowed (NULL for a number). */
int mg_optim_save_prepare(mg_optim *o);                 /* runs the plugin's save hook */
int mg_optim_state_count(const mg_optim *o, int i);
int mg_optim_state_entry(const mg_optim *o, int i, int k, const char **name, mg_tensor **t, double *v);
/* loading: clear, put entries (tensors are copied; shape and dtype are checked
** against parameter i), then finish (runs the plugin's load hook). */
void mg_optim_state_clear(mg_optim *o);
int mg_optim_state_set_tensor(mg_optim *o, int i, const char *name, mg_tensor *t);
int mg_optim_state_set_num(mg_optim *o, int i, const char *name, double v);
int mg_optim_load_finish(mg_optim *o, int saved_version);

/* ---- losses ---------------------------------------------------------------- */

typedef enum { MG_RED_NONE = MGP_RED_NONE, MG_RED_MEAN = MGP_RED_MEAN, MG_RED_SUM = MGP_RED_SUM,
               MG_RED_BATCHMEAN = MGP_RED_BATCHMEAN } mg_reduction;
typedef struct mg_loss mg_loss;
/* opts may include "reduction" (MG_HV_STRING). "loss <name>: ..." errors. */
mg_loss *mg_loss_new(mg_rt *rt, const char *name, int nopts, const mg_hpval *opts);
void mg_loss_free(mg_loss *l);
const char *mg_loss_name(const mg_loss *l);
const char *mg_loss_reduction(const mg_loss *l);
/* the loss of pred against target as one autodiff node (new reference) */
mg_tensor *mg_loss_apply(mg_loss *l, mg_tensor *pred, mg_tensor *target);

#endif
