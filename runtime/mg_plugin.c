/*
** mg_plugin.c — plugin loader and registry: dlopen, descriptor validation, the
** host table, hyperparameter validation, optimizer instances and their state,
** loss instances and the autodiff node a loss plugin becomes.
**
** Notes on the design:
** - Registry (rt->plugins): entries are zero-extended copies of the plugins'
**   descriptors (so a plugin built against an older, smaller ABI minor reads as
**   NULL callbacks), each pointing at its library. Libraries (mg_lib) are
**   reference-counted: the registry holds one reference each, and so does every
**   optimizer, loss and loss autodiff node made from them, because their
**   callbacks, names and hparam tables live in the library's memory. The last
**   release dlcloses; the registry releases in reverse load order.
** - The entry point registers straight into the registry; if it then fails,
**   everything it registered is dropped (entries are appended, so that is a
**   truncation) and the library is closed.
** - Discovery is lazy (first lookup/listing/load) so that the runner's -P and an
**   embedder's config can add directories after the runtime exists, and so that
**   a runtime that never uses plugins never dlopens anything.
** - Optimizer state lives here, not in plugins: per parameter a list of named
**   tensors and numbers (plus one list for the optimizer itself). That makes
**   state_dict/load_state_dict generic and checkpoints plugin-independent; a
**   plugin only sees put/get calls. Hyperparameters are a double array in the
**   plugin's declaration order, validated here before any plugin code runs.
** - A loss plugin's forward runs on detached contiguous copies; the runtime
**   reduces, and records one node whose backward scales the saved local gradient
**   by the incoming gradient (broadcast over the class dim for per-sample losses).
** - The host table is one static const struct shared by all runtimes; every
**   per-runtime thing reaches plugins through the mgp_ctx argument.
*/
#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mg_plugin.h"

#ifndef MG_PLUGIN_DIR
#define MG_PLUGIN_DIR "/usr/local/lib/moongrad/plugins"
#endif
#ifndef MG_VERSION
#define MG_VERSION "0"
#endif

#define MAX_HPARAMS 64
#define STATE_NAME 48

/* ---- libraries and registry ------------------------------------------------ */

typedef struct mg_lib {
  int refcount;
  void *handle;               /* NULL: linked into the host program */
  char *file;                 /* real path, or the origin given at registration */
} mg_lib;

typedef struct {
  int kind;                   /* MGP_OPTIM, MGP_LOSS */
  mg_lib *lib;                /* not referenced: the registry holds the library */
  union { mgp_head head; mgp_optim_desc o; mgp_loss_desc l; } d;  /* zero-extended copy */
} mg_entry;

typedef struct {
  mg_rt *rt;
  mg_entry *e; int n, cap;
  mg_lib **libs; int nlibs;   /* one reference each, closed in reverse order */
  char **dirs; int ndirs;     /* queued by mg_plugin_add_dir before discovery */
  char **seen; int nseen;     /* directories scanned (real paths) */
  char **refused; int nrefused;
  bool discovered, defaults, allow_script, discovering;
  void (*warn)(void *ud, const char *msg);
  void *warn_ud;
} mg_registry;

/* the context handed to plugin callbacks */
struct mgp_ctx {
  mg_rt *rt;
  mg_registry *reg;           /* entry point: registration target */
  mg_lib *lib;
  struct mg_optim *opt;       /* optimizer callbacks */
  const char *who;            /* "optim adam", for log lines */
  bool failed;
  char err[512];
};

static mg_lib *lib_retain(mg_lib *l) { l->refcount++; return l; }
static void lib_release(mg_lib *l) {
  if (!l || --l->refcount > 0) return;
  if (l->handle) dlclose(l->handle);
  free(l->file);
  free(l);
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(mg_xmalloc(n), s, n);
}
static void push_str(char ***arr, int *n, const char *s) {
  *arr = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
  if (!*arr) { fprintf(stderr, "moongrad: out of memory\n"); abort(); }
  (*arr)[(*n)++] = xstrdup(s);
}

static mg_registry *REG(mg_rt *rt) { return rt->plugins; }

static void default_warn(void *ud, const char *msg) { (void)ud; fprintf(stderr, "moongrad: %s\n", msg); }

int mg_plugins_init(mg_rt *rt) {
  mg_registry *r = mg_xcalloc(1, sizeof *r);
  r->rt = rt;
  r->defaults = true;
  r->allow_script = true;
  r->warn = default_warn;
  rt->plugins = r;
  return 0;
}

void mg_plugins_free(mg_rt *rt) {
  mg_registry *r = REG(rt);
  if (!r) return;
  free(r->e);
  for (int i = r->nlibs - 1; i >= 0; i--) lib_release(r->libs[i]);
  for (int i = 0; i < r->ndirs; i++) free(r->dirs[i]);
  for (int i = 0; i < r->nseen; i++) free(r->seen[i]);
  for (int i = 0; i < r->nrefused; i++) free(r->refused[i]);
  free(r->libs); free(r->dirs); free(r->seen); free(r->refused);
  free(r);
  rt->plugins = NULL;
}

void mg_plugin_allow_script_load(mg_rt *rt, bool allow) { REG(rt)->allow_script = allow; }
bool mg_plugin_script_load_allowed(mg_rt *rt) { return REG(rt)->allow_script; }
void mg_plugin_default_dirs(mg_rt *rt, bool on) { REG(rt)->defaults = on; }
void mg_plugin_set_warn(mg_rt *rt, void (*fn)(void *, const char *), void *ud) {
  REG(rt)->warn = fn;
  REG(rt)->warn_ud = ud;
}
int mg_plugin_nrefusals(mg_rt *rt) { return REG(rt)->nrefused; }
const char *mg_plugin_refusal(mg_rt *rt, int i) {
  mg_registry *r = REG(rt);
  return i >= 0 && i < r->nrefused ? r->refused[i] : NULL;
}

static const char *kind_name(int kind) { return kind == MGP_OPTIM ? "optim" : kind == MGP_LOSS ? "loss" : "?"; }

static mg_entry *find(mg_registry *r, int kind, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (r->e[i].kind == kind && strcmp(r->e[i].d.head.name, name) == 0) return &r->e[i];
  return NULL;
}

/* ---- descriptor validation ------------------------------------------------- */

static int ctx_err(mgp_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ctx_err(mgp_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  c->failed = true;
  return -1;
}

static bool valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 63) return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
  return true;
}

static int check_hparams(mgp_ctx *c, const char *name, int kind, const mgp_hparam *hp, int n) {
  if (n < 0 || n > MAX_HPARAMS || (n > 0 && !hp))
    return ctx_err(c, "plugin '%s': bad hyperparameter table (%d entries, at most %d)", name, n, MAX_HPARAMS);
  for (int k = 0; k < n; k++) {
    const mgp_hparam *h = &hp[k];
    if (!valid_name(h->name))
      return ctx_err(c, "plugin '%s': hyperparameter %d has an invalid name (lower-case letters, digits, _)", name, k + 1);
    if (h->type < MGP_NUM || h->type > MGP_TENSOR || (h->type == MGP_TENSOR && kind != MGP_LOSS))
      return ctx_err(c, "plugin '%s': hyperparameter '%s' has an invalid type %d", name, h->name, h->type);
    if (kind == MGP_LOSS && strcmp(h->name, "reduction") == 0)
      return ctx_err(c, "plugin '%s': 'reduction' is the runtime's option and cannot be declared", name);
    for (int j = 0; j < k; j++)
      if (strcmp(hp[j].name, h->name) == 0)
        return ctx_err(c, "plugin '%s': hyperparameter '%s' declared twice", name, h->name);
    if (h->type != MGP_TENSOR && !(h->flags & MGP_HP_REQUIRED) && h->type != MGP_BOOL &&
        (isnan(h->def) || h->def < h->min || h->def > h->max))
      return ctx_err(c, "plugin '%s': default %g of '%s' is outside its range [%g, %g]", name, h->def, h->name,
                     h->min, h->max);
  }
  return 0;
}

/* validate and copy a descriptor into the registry */
static int do_register(mgp_ctx *c, const void *desc) {
  mg_registry *r = c->reg;
  const mgp_head *h = desc;
  if (!r) return ctx_err(c, "register_plugin may only be called from the entry point");
  if (!h) return ctx_err(c, "NULL descriptor");
  if (h->size < sizeof(mgp_head))
    return ctx_err(c, "descriptor too small (%zu bytes; its head alone has %zu)", h->size, sizeof(mgp_head));
  const char *nm = valid_name(h->name) ? h->name : "?";
  if (h->abi_major != MGP_ABI_MAJOR)
    return ctx_err(c, "plugin '%s': ABI major version mismatch (plugin built for ABI %d.%d, runtime has ABI %d.%d)",
                   nm, h->abi_major, h->abi_minor, MGP_ABI_MAJOR, MGP_ABI_MINOR);
  if (h->abi_minor > MGP_ABI_MINOR)
    return ctx_err(c, "plugin '%s': built for ABI %d.%d, newer than the runtime's ABI %d.%d",
                   nm, h->abi_major, h->abi_minor, MGP_ABI_MAJOR, MGP_ABI_MINOR);
  if (h->fingerprint != MGP_FINGERPRINT)
    return ctx_err(c, "plugin '%s': type fingerprint 0x%08x does not match the runtime's 0x%08x "
                   "(built with other sizes of float/index/pointer types)", nm, (unsigned)h->fingerprint,
                   (unsigned)MGP_FINGERPRINT);
  if (h->kind != MGP_OPTIM && h->kind != MGP_LOSS)
    return ctx_err(c, "plugin '%s': unknown kind %d (expected MGP_OPTIM or MGP_LOSS)", nm, h->kind);
  /* every field up to the end of the ABI-1.0 descriptor must be present */
  size_t need = h->kind == MGP_OPTIM ? sizeof(mgp_optim_desc) : sizeof(mgp_loss_desc);
  if (h->size < need)
    return ctx_err(c, "plugin '%s': descriptor too small (%zu bytes; an ABI %d.%d %s descriptor has %zu)", nm,
                   h->size, h->abi_major, h->abi_minor, kind_name(h->kind), need);
  if (!valid_name(h->name))
    return ctx_err(c, "invalid plugin name (1 to 63 lower-case letters, digits or _)");
  mg_entry e = {0};
  e.kind = h->kind;
  e.lib = c->lib;
  memcpy(&e.d, desc, h->kind == MGP_OPTIM ? sizeof(mgp_optim_desc) : sizeof(mgp_loss_desc));
  if (e.kind == MGP_OPTIM) {
    if (!e.d.o.step) return ctx_err(c, "plugin '%s': missing required callback 'step'", nm);
    if (check_hparams(c, nm, e.kind, e.d.o.hparams, e.d.o.nhparams)) return -1;
  } else {
    if (!e.d.l.forward) return ctx_err(c, "plugin '%s': missing required callback 'forward'", nm);
    if (check_hparams(c, nm, e.kind, e.d.l.hparams, e.d.l.nhparams)) return -1;
    if (e.d.l.shape != MGP_ELEMENTWISE && e.d.l.shape != MGP_PER_CLASS_SAMPLE)
      return ctx_err(c, "plugin '%s': invalid loss shape kind %d", nm, e.d.l.shape);
    if (e.d.l.target < MGP_TARGET_SAME || e.d.l.target > MGP_TARGET_LABELS_OR_SAME ||
        (e.d.l.target != MGP_TARGET_SAME && e.d.l.shape != MGP_PER_CLASS_SAMPLE))
      return ctx_err(c, "plugin '%s': invalid target kind %d for this loss shape", nm, e.d.l.target);
    if (e.d.l.reductions == 0) e.d.l.reductions = MGP_RED_NONE | MGP_RED_MEAN | MGP_RED_SUM;
    if (e.d.l.reductions & ~15u) return ctx_err(c, "plugin '%s': invalid reductions mask 0x%x", nm, e.d.l.reductions);
  }
  if (!e.d.head.version) e.d.head.version = "?";
  mg_entry *dup = find(r, e.kind, h->name);
  if (dup)
    return ctx_err(c, "plugin '%s': duplicate name (%s named '%s' is already registered from %s)", nm,
                   e.kind == MGP_OPTIM ? "an optimizer" : "a loss", nm, dup->lib->file);
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->e = realloc(r->e, (size_t)r->cap * sizeof *r->e);
    if (!r->e) { fprintf(stderr, "moongrad: out of memory\n"); abort(); }
  }
  r->e[r->n++] = e;
  return 0;
}

/* ---- the host table ---------------------------------------------------------- */

static int h_register(mgp_ctx *c, const void *desc) { return do_register(c, desc); }

static int h_error(mgp_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  c->failed = true;
  return -1;
}

static void h_log(mgp_ctx *c, int level, const char *fmt, ...) {
  if (level < MGP_LOG_INFO && !getenv("MOONGRAD_PLUGIN_DEBUG")) return;
  char msg[600], line[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "%s: %s", c->who ? c->who : "plugin", msg);
  mg_registry *r = REG(c->rt);
  if (r && r->warn) r->warn(r->warn_ud, line);
}

static void *h_data(const mgp_tensor *t) { return mg_data((const mg_tensor *)t); }
static int h_dtype(const mgp_tensor *t) { return ((const mg_tensor *)t)->dtype == MG_F64 ? MGP_F64 : MGP_F32; }
static int h_ndim(const mgp_tensor *t) { return ((const mg_tensor *)t)->ndim; }
static int64_t h_dim(const mgp_tensor *t, int d) {
  const mg_tensor *x = (const mg_tensor *)t;
  return d >= 0 && d < x->ndim ? x->shape[d] : 1;
}
static int64_t h_numel(const mgp_tensor *t) { return ((const mg_tensor *)t)->numel; }
static void *h_alloc(mgp_ctx *c, size_t n) {
  void *p = calloc(1, n ? n : 1);
  if (!p) h_error(c, "out of memory allocating %zu bytes", n);
  return p;
}
static void h_free(mgp_ctx *c, void *p) { (void)c; free(p); }

/* optimizer access, defined with the optimizers below */
static int h_nparams(mgp_ctx *c);
static mgp_tensor *h_param(mgp_ctx *c, int i);
static const mgp_tensor *h_grad(mgp_ctx *c, int i);
static mgp_tensor *h_state_tensor(mgp_ctx *c, int i, const char *name);
static bool h_state_has(mgp_ctx *c, int i, const char *name);
static double h_state_get(mgp_ctx *c, int i, const char *name, double def);
static int h_state_put(mgp_ctx *c, int i, const char *name, double v);
static double h_hparam(mgp_ctx *c, const char *name);

static const mgp_host HOST = {
  .size = sizeof(mgp_host),
  .abi_major = MGP_ABI_MAJOR,
  .abi_minor = MGP_ABI_MINOR,
  .fingerprint = MGP_FINGERPRINT,
  .runtime_version = MG_VERSION,
  .register_plugin = h_register,
  .error = h_error,
  .log = h_log,
  .data = h_data,
  .dtype = h_dtype,
  .ndim = h_ndim,
  .dim = h_dim,
  .numel = h_numel,
  .alloc = h_alloc,
  .free = h_free,
  .nparams = h_nparams,
  .param = h_param,
  .grad = h_grad,
  .state_tensor = h_state_tensor,
  .state_has = h_state_has,
  .state_get = h_state_get,
  .state_put = h_state_put,
  .hparam = h_hparam,
};

/* the host table, for plugins linked into the host program (mg_plugin_register) */
const mgp_host *mg_plugin_host(void) { return &HOST; }

/* ---- loading ------------------------------------------------------------------ */

static void refuse(mg_registry *r, const char *msg, bool warn) {
  push_str(&r->refused, &r->nrefused, msg);
  if (warn && r->warn) r->warn(r->warn_ud, msg);
}

/* Runtimes in different threads may load the same file at once; dlopen gives both
** the same copy, so its entry point (which typically stores the host table in a
** static) would run twice concurrently. The lock orders those calls. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* load one file; on failure -1 with "<path>: <reason>" in the runtime's error */
static int load_file(mg_rt *rt, const char *path) {
  mg_registry *r = REG(rt);
  char real[PATH_MAX];
  if (!realpath(path, real))
    return mg_seterr(rt, "%s: %s", path, errno == ENOENT ? "no such file" : strerror(errno));
  for (int i = 0; i < r->nlibs; i++)
    if (r->libs[i]->handle && strcmp(r->libs[i]->file, real) == 0) return 0;  /* already loaded */
  dlerror();
  void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    return mg_seterr(rt, "%s: cannot load: %s", real, e ? e : "dlopen failed");
  }
  void *sym = dlsym(h, MGP_ENTRY_NAME);
  if (!sym) {
    dlclose(h);
    return mg_seterr(rt, "%s: missing entry point '%s' (not a moongrad plugin?)", real, MGP_ENTRY_NAME);
  }
  mg_lib *lib = mg_xcalloc(1, sizeof *lib);
  lib->refcount = 1;
  lib->handle = h;
  lib->file = xstrdup(real);
  mgp_ctx c = {.rt = rt, .reg = r, .lib = lib, .who = real};
  int before = r->n;
  mgp_entry_fn init;
  *(void **)&init = sym;
  pthread_mutex_lock(&init_lock);  /* entry points run one at a time in the process */
  int rc = init(&HOST, &c);
  pthread_mutex_unlock(&init_lock);
  c.reg = NULL;
  if (rc != 0 || r->n == before) {
    r->n = before;  /* drop what it registered */
    if (rc != 0)
      mg_seterr(rt, "%s: %s%s", real, c.failed ? "" : "entry point failed",
                c.failed ? c.err : " (returned nonzero without a reason; does the plugin accept this runtime's ABI?)");
    else
      mg_seterr(rt, "%s: %s", real, c.failed ? c.err : "entry point registered no optimizer or loss");
    lib_release(lib);
    return -1;
  }
  r->libs = realloc(r->libs, (size_t)(r->nlibs + 1) * sizeof *r->libs);
  if (!r->libs) { fprintf(stderr, "moongrad: out of memory\n"); abort(); }
  r->libs[r->nlibs++] = lib;
  if (c.failed) return mg_seterr(rt, "%s: %s", real, c.err);  /* some registered, one refused */
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void scan_dir(mg_rt *rt, const char *dir) {
  mg_registry *r = REG(rt);
  char real[PATH_MAX];
  if (!realpath(dir, real)) return;  /* a missing directory is not an error */
  for (int i = 0; i < r->nseen; i++)
    if (strcmp(r->seen[i], real) == 0) return;
  push_str(&r->seen, &r->nseen, real);
  DIR *d = opendir(real);
  if (!d) return;
  char **names = NULL;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len > 3 && strcmp(de->d_name + len - 3, ".so") == 0) push_str(&names, &n, de->d_name);
  }
  closedir(d);
  if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n; i++) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", real, names[i]) >= (int)sizeof path) { free(names[i]); continue; }
    if (load_file(rt, path)) {
      char msg[MG_ERRLEN + 32];
      snprintf(msg, sizeof msg, "plugin refused: %s", mg_errmsg(rt));
      refuse(r, msg, true);
    }
    free(names[i]);
  }
  free(names);
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* <dir of f>/plugins or <dir of f>/../plugins, whichever exists first */
static bool near(const char *f, char *out, size_t n) {
  char buf[PATH_MAX];
  if (!f || !realpath(f, buf)) return false;
  char *slash = strrchr(buf, '/');
  if (!slash) return false;
  *slash = 0;
  if (snprintf(out, n, "%s/plugins", buf) < (int)n && is_dir(out)) return true;
  return snprintf(out, n, "%s/../plugins", buf) < (int)n && is_dir(out);
}

/* an installed tree, wherever it was installed or moved to: f is lib/libmoongrad.so,
** bin/<program> or lib/lua/5.4/moongrad.so; the plugins are in lib/moongrad/plugins */
static bool installed(const char *f, char *out, size_t n) {
  static const char *const rel[] = {"moongrad/plugins", "../lib/moongrad/plugins", "../../moongrad/plugins"};
  char buf[PATH_MAX];
  if (!f || !realpath(f, buf)) return false;
  char *slash = strrchr(buf, '/');
  if (!slash) return false;
  *slash = 0;
  for (int i = 0; i < 3; i++)
    if (snprintf(out, n, "%s/%s", buf, rel[i]) < (int)n && is_dir(out)) return true;
  return false;
}

static void builtin_dir(char *out, size_t n) {
  Dl_info info;
  const char *lib = dladdr((void *)&mg_plugins_init, &info) ? info.dli_fname : NULL;
  if (near(lib, out, n) || installed(lib, out, n)) return;
  if (near("/proc/self/exe", out, n) || installed("/proc/self/exe", out, n)) return;
  snprintf(out, n, "%s", MG_PLUGIN_DIR);
}

void mg_plugin_discover(mg_rt *rt) {
  mg_registry *r = REG(rt);
  if (r->discovered || r->discovering) return;
  r->discovering = true;
  char errsave[MG_ERRLEN];
  memcpy(errsave, rt->err, sizeof errsave);
  if (r->defaults) {
    char dir[PATH_MAX];
    builtin_dir(dir, sizeof dir);
    scan_dir(rt, dir);
    const char *env = getenv("MOONGRAD_PLUGIN_PATH");
    if (env) {
      char *copy = xstrdup(env), *save = NULL;
      for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) scan_dir(rt, p);
      free(copy);
    }
  }
  for (int i = 0; i < r->ndirs; i++) scan_dir(rt, r->dirs[i]);
  memcpy(rt->err, errsave, sizeof errsave);
  r->discovering = false;
  r->discovered = true;
}

int mg_plugin_add_dir(mg_rt *rt, const char *dir) {
  mg_registry *r = REG(rt);
  if (!dir || !*dir) return mg_seterr(rt, "plugin directory: empty path");
  if (!r->discovered) { push_str(&r->dirs, &r->ndirs, dir); return 0; }
  scan_dir(rt, dir);
  return 0;
}

int mg_plugin_load(mg_rt *rt, const char *path) {
  mg_plugin_discover(rt);
  if (!path || !*path) return mg_seterr(rt, "load_plugin: empty path");
  if (load_file(rt, path)) {
    char msg[MG_ERRLEN];
    snprintf(msg, sizeof msg, "load_plugin: %s", mg_errmsg(rt));
    refuse(REG(rt), msg, false);
    return mg_seterr(rt, "%s", msg);
  }
  return 0;
}

int mg_plugin_register(mg_rt *rt, const void *desc, const char *origin) {
  mg_registry *r = REG(rt);
  mg_plugin_discover(rt);
  mg_lib *lib = mg_xcalloc(1, sizeof *lib);
  lib->refcount = 1;
  lib->file = xstrdup(origin ? origin : "static");
  mgp_ctx c = {.rt = rt, .reg = r, .lib = lib, .who = lib->file};
  if (do_register(&c, desc)) {
    mg_seterr(rt, "register_plugin: %s: %s", lib->file, c.err);
    lib_release(lib);
    return -1;
  }
  r->libs = realloc(r->libs, (size_t)(r->nlibs + 1) * sizeof *r->libs);
  if (!r->libs) { fprintf(stderr, "moongrad: out of memory\n"); abort(); }
  r->libs[r->nlibs++] = lib;
  return 0;
}

int mg_plugin_count(mg_rt *rt) {
  mg_plugin_discover(rt);
  return REG(rt)->n;
}

int mg_plugin_get(mg_rt *rt, int i, mg_plugin_info *out) {
  mg_registry *r = REG(rt);
  mg_plugin_discover(rt);
  if (i < 0 || i >= r->n) return -1;
  mg_entry *e = &r->e[i];
  out->name = e->d.head.name;
  out->kind = kind_name(e->kind);
  out->version = e->d.head.version;
  out->file = e->lib->file;
  out->doc = e->d.head.doc ? e->d.head.doc : "";
  return 0;
}

/* "adagrad, adam, ..." of one kind into buf */
static void names_of(mg_registry *r, int kind, char *buf, size_t n) {
  buf[0] = 0;
  size_t len = 0;
  for (int i = 0; i < r->n; i++) {
    if (r->e[i].kind != kind) continue;
    int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", r->e[i].d.head.name);
    if (w < 0 || (size_t)w >= n - len) break;
    len += (size_t)w;
  }
  if (!len) snprintf(buf, n, "none; is the plugin directory installed?");
}

static mg_entry *lookup(mg_rt *rt, int kind, const char *name) {
  mg_registry *r = REG(rt);
  mg_plugin_discover(rt);
  mg_entry *e = name ? find(r, kind, name) : NULL;
  if (!e) {
    char list[600];
    names_of(r, kind, list, sizeof list);
    mg_seterr(rt, "%s: no %s named '%s' (available: %s)", kind_name(kind),
              kind == MGP_OPTIM ? "optimizer" : "loss", name ? name : "(nil)", list);
  }
  return e;
}

/* ---- hyperparameters ------------------------------------------------------------ */

static void accepted(const mgp_hparam *decl, int n, const char *extra, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = 0;
  for (int k = 0; k < n; k++) {
    int w = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", decl[k].name);
    if (w < 0 || (size_t)w >= size - len) return;
    len += (size_t)w;
  }
  if (extra) snprintf(buf + len, size - len, "%s%s", len ? ", " : "", extra);
  if (!buf[0]) snprintf(buf, size, "none");
}

static const char *hv_typename(const mg_hpval *v) {
  switch (v->type) {
    case MG_HV_NUM: return "number";
    case MG_HV_BOOL: return "boolean";
    case MG_HV_TENSOR: return "tensor";
    case MG_HV_STRING: return "string";
    default: return v->str ? v->str : "value";
  }
}

static const char *type_word(int t) {
  return t == MGP_NUM ? "a number" : t == MGP_INT ? "an integer" : t == MGP_BOOL ? "a boolean" : "a tensor";
}

static int range_err(mg_rt *rt, const char *who, const mgp_hparam *h, double v) {
  char lo[40], hi[40];
  snprintf(lo, sizeof lo, "%g", h->min);
  snprintf(hi, sizeof hi, "%g", h->max);
  if (h->max == HUGE_VAL)
    return mg_seterr(rt, "%s: option '%s' must be %s %s, got %g", who, h->name,
                     h->flags & MGP_HP_MIN_OPEN ? ">" : ">=", lo, v);
  if (h->min == -HUGE_VAL)
    return mg_seterr(rt, "%s: option '%s' must be %s %s, got %g", who, h->name,
                     h->flags & MGP_HP_MAX_OPEN ? "<" : "<=", hi, v);
  return mg_seterr(rt, "%s: option '%s' must be in %s%s, %s%s, got %g", who, h->name,
                   h->flags & MGP_HP_MIN_OPEN ? "(" : "[", lo, hi, h->flags & MGP_HP_MAX_OPEN ? ")" : "]", v);
}

/* check one value against its declaration; the number to store in *out */
static int hp_check(mg_rt *rt, const char *who, const mgp_hparam *h, const mg_hpval *v, double *out) {
  bool want_num = h->type == MGP_NUM || h->type == MGP_INT;
  if ((want_num && v->type != MG_HV_NUM) || (h->type == MGP_BOOL && v->type != MG_HV_BOOL) ||
      (h->type == MGP_TENSOR && v->type != MG_HV_TENSOR))
    return mg_seterr(rt, "%s: option '%s' expects %s, got %s", who, h->name, type_word(h->type), hv_typename(v));
  if (h->type == MGP_TENSOR) { *out = 1; return 0; }
  double x = v->type == MG_HV_BOOL ? (v->num != 0) : v->num;
  if (isnan(x)) return mg_seterr(rt, "%s: option '%s' is NaN", who, h->name);
  if (h->type == MGP_INT && (x != floor(x) || isinf(x)))
    return mg_seterr(rt, "%s: option '%s' expects an integer, got %g", who, h->name, x);
  if (h->type != MGP_BOOL) {
    bool lo_ok = h->flags & MGP_HP_MIN_OPEN ? x > h->min : x >= h->min;
    bool hi_ok = h->flags & MGP_HP_MAX_OPEN ? x < h->max : x <= h->max;
    if (!lo_ok || !hi_ok) return range_err(rt, who, h, x);
  }
  *out = x;
  return 0;
}

/* fill hp[] (and tensors[], may be NULL) from defaults and opts; `extra` names an
** option the caller handles itself (skipped here, listed as accepted) */
static int hp_parse(mg_rt *rt, const char *who, const mgp_hparam *decl, int n, int nopts, const mg_hpval *opts,
                    double *hp, mg_tensor **tensors, const char *extra) {
  bool given[MAX_HPARAMS] = {0};
  for (int k = 0; k < n; k++) {
    hp[k] = decl[k].type == MGP_TENSOR ? 0 : decl[k].def;
    if (tensors) tensors[k] = NULL;
  }
  for (int j = 0; j < nopts; j++) {
    const mg_hpval *v = &opts[j];
    if (extra && strcmp(v->name, extra) == 0) continue;
    int k = 0;
    while (k < n && strcmp(decl[k].name, v->name) != 0) k++;
    if (k == n) {
      char list[600];
      accepted(decl, n, extra, list, sizeof list);
      return mg_seterr(rt, "%s: unknown option '%s' (accepted: %s)", who, v->name, list);
    }
    if (hp_check(rt, who, &decl[k], v, &hp[k])) return -1;
    if (tensors && decl[k].type == MGP_TENSOR) tensors[k] = v->t;
    given[k] = true;
  }
  for (int k = 0; k < n; k++)
    if ((decl[k].flags & MGP_HP_REQUIRED) && !given[k]) {
      char list[600];
      accepted(decl, n, extra, list, sizeof list);
      return mg_seterr(rt, "%s: option '%s' is required (accepted: %s)", who, decl[k].name, list);
    }
  return 0;
}

/* ---- optimizers --------------------------------------------------------------- */

typedef struct { char name[STATE_NAME]; mg_tensor *t; double v; } st_entry;
typedef struct { st_entry *e; int n, cap; } st_list;

struct mg_optim {
  mg_rt *rt;
  mg_lib *lib;                /* referenced: the plugin code stays loaded */
  mgp_optim_desc d;
  char who[96];               /* "optim adam" */
  int np;
  mg_tensor **params;         /* referenced */
  mg_tensor **grads;          /* during step: the gradient handed to the plugin (or NULL) */
  st_list *state;             /* np + 1 lists; state[0]: the optimizer's own (i = -1) */
  double hp[MAX_HPARAMS];
  void *user;
  mgp_ctx ctx;
};

static void st_clear(st_list *l) {
  for (int k = 0; k < l->n; k++) mg_release(l->e[k].t);
  l->n = 0;
}
static st_entry *st_find(st_list *l, const char *name) {
  for (int k = 0; k < l->n; k++)
    if (strcmp(l->e[k].name, name) == 0) return &l->e[k];
  return NULL;
}
static st_entry *st_add(st_list *l, const char *name) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 4;
    l->e = realloc(l->e, (size_t)l->cap * sizeof *l->e);
    if (!l->e) { fprintf(stderr, "moongrad: out of memory\n"); abort(); }
  }
  st_entry *e = &l->e[l->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  return e;
}

/* the state list of parameter i (-1: the optimizer's own), or NULL + ctx error */
static st_list *st_of(mgp_ctx *c, int i, const char *name) {
  struct mg_optim *o = c->opt;
  if (!o) { h_error(c, "optimizer state is only available inside optimizer callbacks"); return NULL; }
  if (i < -1 || i >= o->np) { h_error(c, "state: parameter index %d out of range (%d parameters)", i, o->np); return NULL; }
  if (!name || !*name || strlen(name) >= STATE_NAME) {
    h_error(c, "state: invalid state name (1 to %d characters)", STATE_NAME - 1);
    return NULL;
  }
  return &o->state[i + 1];
}

static int h_nparams(mgp_ctx *c) { return c->opt ? c->opt->np : 0; }
static mgp_tensor *h_param(mgp_ctx *c, int i) {
  return c->opt && i >= 0 && i < c->opt->np ? (mgp_tensor *)c->opt->params[i] : NULL;
}
static const mgp_tensor *h_grad(mgp_ctx *c, int i) {
  return c->opt && c->opt->grads && i >= 0 && i < c->opt->np ? (const mgp_tensor *)c->opt->grads[i] : NULL;
}
static mgp_tensor *h_state_tensor(mgp_ctx *c, int i, const char *name) {
  st_list *l = st_of(c, i, name);
  if (!l) return NULL;
  if (i < 0) { h_error(c, "state_tensor: tensors belong to a parameter (index 0..%d), got -1", c->opt->np - 1); return NULL; }
  st_entry *e = st_find(l, name);
  if (e && e->t) return (mgp_tensor *)e->t;
  if (e) { h_error(c, "state '%s' of parameter %d is a number, not a tensor", name, i); return NULL; }
  mg_tensor *p = c->opt->params[i];
  mg_tensor *t = mg_full(c->rt, p->dtype, p->ndim, p->shape, 0);
  if (!t) { h_error(c, "%s", mg_errmsg(c->rt)); return NULL; }
  e = st_add(l, name);
  e->t = t;
  return (mgp_tensor *)t;
}
static bool h_state_has(mgp_ctx *c, int i, const char *name) {
  if (!c->opt || i < -1 || i >= c->opt->np || !name) return false;
  return st_find(&c->opt->state[i + 1], name) != NULL;
}
static double h_state_get(mgp_ctx *c, int i, const char *name, double def) {
  st_list *l = st_of(c, i, name);
  st_entry *e = l ? st_find(l, name) : NULL;
  return e && !e->t ? e->v : def;
}
static int h_state_put(mgp_ctx *c, int i, const char *name, double v) {
  st_list *l = st_of(c, i, name);
  if (!l) return -1;
  st_entry *e = st_find(l, name);
  if (e && e->t) return h_error(c, "state '%s' of parameter %d is a tensor, not a number", name, i);
  if (!e) e = st_add(l, name);
  e->v = v;
  return 0;
}
static double h_hparam(mgp_ctx *c, const char *name) {
  struct mg_optim *o = c->opt;
  if (o && name)
    for (int k = 0; k < o->d.nhparams; k++)
      if (strcmp(o->d.hparams[k].name, name) == 0) return o->hp[k];
  return NAN;
}

static void ctx_reset(mg_optim *o) { o->ctx.failed = false; o->ctx.err[0] = 0; }
/* the plugin's error as the runtime's, prefixed "optim <name>: <what>: " */
static int plugin_fail(mg_optim *o, const char *what) {
  return mg_seterr(o->rt, "%s: %s: %s", o->who, what, o->ctx.failed ? o->ctx.err : "failed without a message");
}

mg_optim *mg_optim_new(mg_rt *rt, const char *name, int np, mg_tensor *const *params, int nopts,
                       const mg_hpval *opts) {
  mg_entry *e = lookup(rt, MGP_OPTIM, name);
  if (!e) return NULL;
  char who[96];
  snprintf(who, sizeof who, "optim %s", name);
  if (np <= 0) return mg_seterr(rt, "%s: got an empty parameter list", who), NULL;
  for (int i = 0; i < np; i++) {
    mg_tensor *p = params[i];
    char sh[64];
    if (!p) return mg_seterr(rt, "%s: parameter %d is not a tensor", who, i + 1), NULL;
    if (!mg_is_leaf(p))
      return mg_seterr(rt, "%s: parameter %d is not a leaf tensor (it was computed by an op; use a tensor "
                       "created with requires_grad, or :detach())", who, i + 1), NULL;
    if (!mg_is_contiguous(p))
      return mg_seterr(rt, "%s: parameter %d (shape %s) is not contiguous", who, i + 1,
                       mg_shape_str(p, sh, sizeof sh)), NULL;
    for (int j = 0; j < i; j++)
      if (params[j] == p || (params[j]->st == p->st && params[j]->offset == p->offset))
        return mg_seterr(rt, "%s: parameter %d is the same tensor as parameter %d", who, i + 1, j + 1), NULL;
  }
  double hp[MAX_HPARAMS];
  if (hp_parse(rt, who, e->d.o.hparams, e->d.o.nhparams, nopts, opts, hp, NULL, NULL)) return NULL;
  mg_optim *o = mg_xcalloc(1, sizeof *o);
  o->rt = rt;
  o->lib = lib_retain(e->lib);
  o->d = e->d.o;
  memcpy(o->who, who, sizeof who);
  memcpy(o->hp, hp, sizeof hp);
  o->ctx = (mgp_ctx){.rt = rt, .opt = o, .lib = o->lib, .who = o->who};
  o->np = np;
  o->params = mg_xcalloc((size_t)np, sizeof *o->params);
  o->state = mg_xcalloc((size_t)np + 1, sizeof *o->state);
  for (int i = 0; i < np; i++) o->params[i] = mg_retain(params[i]);
  if (o->d.validate && o->d.validate(&o->ctx, o->hp)) {
    plugin_fail(o, "invalid options");
    mg_optim_free(o);
    return NULL;
  }
  ctx_reset(o);
  if (o->d.create && o->d.create(&o->ctx, o->hp, &o->user)) {
    plugin_fail(o, "create");
    o->d.destroy = NULL;  /* create failed: nothing to destroy */
    mg_optim_free(o);
    return NULL;
  }
  return o;
}

void mg_optim_free(mg_optim *o) {
  if (!o) return;
  if (o->d.destroy) o->d.destroy(&o->ctx, o->user);
  for (int i = 0; i <= o->np; i++) { st_clear(&o->state[i]); free(o->state[i].e); }
  for (int i = 0; i < o->np; i++) mg_release(o->params[i]);
  free(o->state);
  free(o->params);
  lib_release(o->lib);
  free(o);
}

const char *mg_optim_name(const mg_optim *o) { return o->d.head.name; }
int mg_optim_nparams(const mg_optim *o) { return o->np; }
mg_tensor *mg_optim_param(const mg_optim *o, int i) { return i >= 0 && i < o->np ? o->params[i] : NULL; }
int mg_optim_nhparams(const mg_optim *o) { return o->d.nhparams; }
const mgp_hparam *mg_optim_hparam_decl(const mg_optim *o, int k) {
  return k >= 0 && k < o->d.nhparams ? &o->d.hparams[k] : NULL;
}
double mg_optim_hparam_value(const mg_optim *o, int k) { return k >= 0 && k < o->d.nhparams ? o->hp[k] : NAN; }
int mg_optim_hparam_index(const mg_optim *o, const char *name) {
  for (int k = 0; k < o->d.nhparams; k++)
    if (strcmp(o->d.hparams[k].name, name) == 0) return k;
  return -1;
}
int mg_optim_state_version(const mg_optim *o) { return o->d.state_version; }

int mg_optim_set_hparams(mg_optim *o, int n, const mg_hpval *v) {
  double hp[MAX_HPARAMS], saved[MAX_HPARAMS];
  memcpy(hp, o->hp, sizeof hp);
  for (int j = 0; j < n; j++) {
    int k = mg_optim_hparam_index(o, v[j].name);
    if (k < 0) {
      char list[600];
      accepted(o->d.hparams, o->d.nhparams, NULL, list, sizeof list);
      return mg_seterr(o->rt, "%s: unknown option '%s' (accepted: %s)", o->who, v[j].name, list);
    }
    if (hp_check(o->rt, o->who, &o->d.hparams[k], &v[j], &hp[k])) return -1;
  }
  memcpy(saved, o->hp, sizeof saved);
  memcpy(o->hp, hp, sizeof hp);  /* validate sees them through host->hparam too */
  ctx_reset(o);
  if (o->d.validate && o->d.validate(&o->ctx, o->hp)) {
    memcpy(o->hp, saved, sizeof saved);
    return plugin_fail(o, "invalid options");
  }
  return 0;
}

int mg_optim_set_hparam(mg_optim *o, const mg_hpval *v) { return mg_optim_set_hparams(o, 1, v); }

int mg_optim_step(mg_optim *o) {
  mg_rt *rt = o->rt;
  mg_tensor *tmp[64], **grads = o->np <= 64 ? tmp : mg_xcalloc((size_t)o->np, sizeof *grads);
  int rc = 0, n = 0;
  for (; n < o->np; n++) {
    mg_tensor *p = o->params[n], *g = p->grad;
    grads[n] = NULL;
    if (!g) continue;
    char a[64], b[64];
    if (mg_check_alive(p, o->who) || mg_check_alive(g, o->who)) { rc = -1; break; }
    if (!mg_same_shape(p, g)) {
      rc = mg_seterr(rt, "%s: gradient of parameter %d has shape %s, the parameter %s", o->who, n + 1,
                     mg_shape_str(g, a, sizeof a), mg_shape_str(p, b, sizeof b));
      break;
    }
    mg_tensor *g1 = mg_to(g, p->dtype), *g2 = g1 ? mg_contiguous(g1) : NULL;
    mg_release(g1);
    if (!g2) { rc = -1; break; }
    grads[n] = g2;
  }
  if (rc == 0) {
    o->grads = grads;
    ctx_reset(o);
    if (o->d.step(&o->ctx, o->hp, o->user)) rc = plugin_fail(o, "step");
    o->grads = NULL;
    for (int i = 0; i < o->np; i++)
      if (grads[i]) mg_bump_version(o->params[i]);
  }
  for (int i = 0; i < n && i < o->np; i++) mg_release(grads[i]);
  if (grads != tmp) free(grads);
  return rc;
}

int mg_optim_zero_grad(mg_optim *o, bool set_to_none) {
  for (int i = 0; i < o->np; i++) {
    mg_tensor *p = o->params[i];
    if (!p->grad) continue;
    if (set_to_none) { mg_release(p->grad); p->grad = NULL; }
    else if (mg_fill_(p->grad, 0)) return -1;
  }
  return 0;
}

int mg_optim_save_prepare(mg_optim *o) {
  ctx_reset(o);
  if (o->d.save && o->d.save(&o->ctx, o->hp, o->user)) return plugin_fail(o, "save");
  return 0;
}
int mg_optim_state_count(const mg_optim *o, int i) { return i >= -1 && i < o->np ? o->state[i + 1].n : 0; }
int mg_optim_state_entry(const mg_optim *o, int i, int k, const char **name, mg_tensor **t, double *v) {
  if (i < -1 || i >= o->np || k < 0 || k >= o->state[i + 1].n) return -1;
  st_entry *e = &o->state[i + 1].e[k];
  *name = e->name;
  *t = e->t;
  *v = e->v;
  return 0;
}
void mg_optim_state_clear(mg_optim *o) {
  for (int i = 0; i <= o->np; i++) st_clear(&o->state[i]);
}
static int st_check(mg_optim *o, int i, const char *name) {
  if (i < -1 || i >= o->np)
    return mg_seterr(o->rt, "%s: load_state_dict: state for parameter %d, but the optimizer has %d parameters",
                     o->who, i + 1, o->np);
  if (!name || !*name || strlen(name) >= STATE_NAME)
    return mg_seterr(o->rt, "%s: load_state_dict: invalid state name", o->who);
  if (st_find(&o->state[i + 1], name))
    return mg_seterr(o->rt, "%s: load_state_dict: state '%s' of parameter %d given twice", o->who, name, i + 1);
  return 0;
}
int mg_optim_state_set_tensor(mg_optim *o, int i, const char *name, mg_tensor *t) {
  if (st_check(o, i, name)) return -1;
  if (i < 0) return mg_seterr(o->rt, "%s: load_state_dict: optimizer-level state '%s' must be a number", o->who, name);
  mg_tensor *p = o->params[i];
  char a[64], b[64];
  if (!mg_same_shape(p, t))
    return mg_seterr(o->rt, "%s: load_state_dict: state '%s' of parameter %d has shape %s, the parameter has %s",
                     o->who, name, i + 1, mg_shape_str(t, a, sizeof a), mg_shape_str(p, b, sizeof b));
  if (mg_check_alive(t, "load_state_dict")) return -1;
  mg_tensor *c = mg_empty(o->rt, p->dtype, p->ndim, p->shape);
  if (!c) return -1;
  if (mg_copy_(c, t)) { mg_release(c); return -1; }
  st_add(&o->state[i + 1], name)->t = c;
  return 0;
}
int mg_optim_state_set_num(mg_optim *o, int i, const char *name, double v) {
  if (st_check(o, i, name)) return -1;
  st_add(&o->state[i + 1], name)->v = v;
  return 0;
}
int mg_optim_load_finish(mg_optim *o, int saved_version) {
  ctx_reset(o);
  if (o->d.load) {
    if (o->d.load(&o->ctx, o->hp, o->user, saved_version)) {
      mg_optim_state_clear(o);
      return plugin_fail(o, "load_state_dict");
    }
  } else if (saved_version != o->d.state_version) {
    mg_optim_state_clear(o);
    return mg_seterr(o->rt, "%s: load_state_dict: the checkpoint has state_version %d, this plugin (version %s) "
                     "reads state_version %d", o->who, saved_version, o->d.head.version, o->d.state_version);
  }
  return 0;
}

/* ---- losses ---------------------------------------------------------------------- */

struct mg_loss {
  mg_rt *rt;
  mg_lib *lib;
  mgp_loss_desc d;
  char who[96];
  int reduction;
  double hp[MAX_HPARAMS];
  mg_tensor *tens[MAX_HPARAMS]; /* referenced */
};

static const char *red_name(int r) {
  return r == MGP_RED_NONE ? "none" : r == MGP_RED_SUM ? "sum" : r == MGP_RED_BATCHMEAN ? "batchmean" : "mean";
}

mg_loss *mg_loss_new(mg_rt *rt, const char *name, int nopts, const mg_hpval *opts) {
  mg_entry *e = lookup(rt, MGP_LOSS, name);
  if (!e) return NULL;
  char who[96];
  snprintf(who, sizeof who, "loss %s", name);
  int red = MGP_RED_MEAN;
  for (int j = 0; j < nopts; j++) {
    if (strcmp(opts[j].name, "reduction") != 0) continue;
    char ok[64] = "";
    for (int r = 1; r <= 8; r <<= 1)
      if (e->d.l.reductions & (unsigned)r) snprintf(ok + strlen(ok), sizeof ok - strlen(ok), "%s%s", ok[0] ? ", " : "", red_name(r));
    if (opts[j].type != MG_HV_STRING)
      return mg_seterr(rt, "%s: option 'reduction' expects a string (%s), got %s", who, ok, hv_typename(&opts[j])), NULL;
    red = 0;
    for (int r = 1; r <= 8; r <<= 1)
      if ((e->d.l.reductions & (unsigned)r) && strcmp(opts[j].str, red_name(r)) == 0) red = r;
    if (!red) return mg_seterr(rt, "%s: reduction must be one of %s, got '%s'", who, ok, opts[j].str), NULL;
  }
  double hp[MAX_HPARAMS];
  mg_tensor *tens[MAX_HPARAMS];
  if (hp_parse(rt, who, e->d.l.hparams, e->d.l.nhparams, nopts, opts, hp, tens, "reduction")) return NULL;
  mg_loss *l = mg_xcalloc(1, sizeof *l);
  l->rt = rt;
  l->lib = lib_retain(e->lib);
  l->d = e->d.l;
  l->reduction = red;
  memcpy(l->who, who, sizeof who);
  memcpy(l->hp, hp, sizeof hp);
  for (int k = 0; k < l->d.nhparams; k++) l->tens[k] = tens[k] ? mg_detach(tens[k]) : NULL;
  if (l->d.validate) {
    mgp_ctx c = {.rt = rt, .lib = l->lib, .who = l->who};
    if (l->d.validate(&c, l->hp)) {
      mg_seterr(rt, "%s: invalid options: %s", who, c.failed ? c.err : "rejected without a message");
      mg_loss_free(l);
      return NULL;
    }
  }
  return l;
}

void mg_loss_free(mg_loss *l) {
  if (!l) return;
  for (int k = 0; k < l->d.nhparams; k++) mg_release(l->tens[k]);
  lib_release(l->lib);
  free(l);
}
const char *mg_loss_name(const mg_loss *l) { return l->d.head.name; }
const char *mg_loss_reduction(const mg_loss *l) { return red_name(l->reduction); }

/* node context: i[0] reduction, i[1..3] outer/classes/inner, i[4] per-class; f[0] scale */
static void loss_ctx_free(mg_node *n) { lib_release(n->ctx); }

static int loss_backward(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  mg_tensor *G = mg_saved(n, 0);
  if (!G) return -1;
  mg_tensor *r = mg_empty_like(G);
  if (!r) return -1;
  int64_t N = G->numel;
  if (n->i[0] != MGP_RED_NONE) {
    double s = mg_get_flat(gout, 0) * n->f[0];
    for (int64_t k = 0; k < N; k++) {
      if (G->dtype == MG_F64) mg_f64(r)[k] = s * mg_f64(G)[k];
      else mg_f32(r)[k] = (float)(s * mg_f32(G)[k]);
    }
  } else {
    mg_tensor *go1 = mg_to(gout, G->dtype), *go = go1 ? mg_contiguous(go1) : NULL;
    mg_release(go1);
    if (!go) { mg_release(r); return -1; }
    int64_t C = n->i[4] ? n->i[2] : 1, I = n->i[4] ? n->i[3] : 1;
    for (int64_t k = 0; k < N; k++) {
      int64_t j = n->i[4] ? (k / (C * I)) * I + k % I : k;  /* the loss value element k feeds */
      if (G->dtype == MG_F64) mg_f64(r)[k] = mg_f64(go)[j] * mg_f64(G)[k];
      else mg_f32(r)[k] = (float)((double)mg_f32(go)[j] * mg_f32(G)[k]);
    }
    mg_release(go);
  }
  gin[0] = r;
  return 0;
}

/* a detached, contiguous copy (or alias) of t in dtype dt */
static mg_tensor *plain(mg_tensor *t, mg_dtype dt) {
  mg_tensor *d = mg_detach(t), *c = d ? mg_to(d, dt) : NULL, *r = c ? mg_contiguous(c) : NULL;
  mg_release(d);
  mg_release(c);
  return r;
}

/* labels must be integers in 1..C, except the value of a declared `ignore_index` option */
static int check_labels(mg_loss *l, mg_tensor *y, int64_t C) {
  double ignore = NAN;
  for (int k = 0; k < l->d.nhparams; k++)
    if (!strcmp(l->d.hparams[k].name, "ignore_index") && l->d.hparams[k].type != MGP_TENSOR) ignore = l->hp[k];
  for (int64_t k = 0; k < y->numel; k++) {
    double v = y->dtype == MG_F64 ? mg_f64(y)[k] : mg_f32(y)[k];
    if (v == ignore) continue;
    if (v != floor(v))
      return mg_seterr(l->rt, "%s: target label %g at position %lld is not an integer class label",
                       l->who, v, (long long)k + 1);
    if (v < 1 || v > (double)C)
      return mg_seterr(l->rt, "%s: target label %g at position %lld is out of range (%lld classes; labels are 1-based)",
                       l->who, v, (long long)k + 1, (long long)C);
  }
  return 0;
}

mg_tensor *mg_loss_apply(mg_loss *l, mg_tensor *pred, mg_tensor *target) {
  mg_rt *rt = l->rt;
  char a[64], b[64], c2[64];
  if (mg_check_alive(pred, l->who) || mg_check_alive(target, l->who)) return NULL;
  if (target->requires_grad && rt->grad_enabled)
    return mg_seterr(rt, "%s: the target requires grad; losses differentiate only with respect to the "
                     "prediction (pass target:detach())", l->who), NULL;
  int lnd = 0;
  int64_t lshape[MG_MAX_DIMS], outer = pred->numel, classes = 1, inner = 1;
  bool labels = false;
  if (l->d.shape == MGP_ELEMENTWISE) {
    if (!mg_same_shape(pred, target))
      return mg_seterr(rt, "%s: input %s and target %s have different shapes", l->who,
                       mg_shape_str(pred, a, sizeof a), mg_shape_str(target, b, sizeof b)), NULL;
    lnd = pred->ndim;
    memcpy(lshape, pred->shape, sizeof lshape);
  } else {
    if (pred->ndim < 1)
      return mg_seterr(rt, "%s: input must have a class dimension ({C}, {N,C} or {N,C,d1,...}), got a 0-dim tensor",
                       l->who), NULL;
    int cd = pred->ndim == 1 ? 0 : 1;
    classes = pred->shape[cd];
    outer = cd ? pred->shape[0] : 1;
    inner = 1;
    for (int d = 0; d < pred->ndim; d++)
      if (d != cd) lshape[lnd++] = pred->shape[d];
    for (int d = 2; d < pred->ndim; d++) inner *= pred->shape[d];
    if (classes < 1) return mg_seterr(rt, "%s: input %s has no classes", l->who, mg_shape_str(pred, a, sizeof a)), NULL;
    bool same = mg_same_shape(pred, target);
    bool lab = target->ndim == lnd && memcmp(target->shape, lshape, (size_t)lnd * sizeof *lshape) == 0;
    if (l->d.target == MGP_TARGET_LABELS_OR_SAME && same) labels = false;
    else if (lab && l->d.target != MGP_TARGET_SAME) labels = true;
    else if (l->d.target == MGP_TARGET_SAME && same) labels = false;
    else {
      mg_dims_str(lnd, lshape, c2, sizeof c2);
      if (l->d.target == MGP_TARGET_LABELS_OR_SAME)
        return mg_seterr(rt, "%s: target must have shape %s (1-based class labels) or %s (class probabilities) "
                         "for input %s, got %s", l->who, c2, mg_shape_str(pred, a, sizeof a),
                         mg_shape_str(pred, a, sizeof a), mg_shape_str(target, b, sizeof b)), NULL;
      return mg_seterr(rt, "%s: target must have shape %s (1-based class labels) for input %s, got %s", l->who, c2,
                       mg_shape_str(pred, a, sizeof a), mg_shape_str(target, b, sizeof b)), NULL;
    }
  }
  mg_tensor *x = plain(pred, pred->dtype), *y = x ? plain(target, pred->dtype) : NULL;
  mg_tensor *tens[MAX_HPARAMS] = {0}, *loss = NULL, *grad = NULL, *out = NULL;
  if (!y) goto fail;
  if (labels && check_labels(l, y, classes)) goto fail;
  for (int k = 0; k < l->d.nhparams; k++) {
    if (!l->tens[k]) continue;
    mg_tensor *t = l->tens[k], *e = NULL;
    if (l->d.hparams[k].flags & MGP_HP_BCAST) {
      int nd;
      int64_t bs[MG_MAX_DIMS];
      if (mg_broadcast_shape(l->who, t, pred, &nd, bs) || nd != pred->ndim ||
          memcmp(bs, pred->shape, (size_t)nd * sizeof *bs) != 0) {
        mg_seterr(rt, "%s: option '%s' of shape %s does not broadcast to the input's shape %s", l->who,
                  l->d.hparams[k].name, mg_shape_str(t, a, sizeof a), mg_shape_str(pred, b, sizeof b));
        goto fail;
      }
      e = mg_expand(t, pred->ndim, pred->shape);
      if (!e) goto fail;
      t = e;
    }
    tens[k] = plain(t, pred->dtype);
    mg_release(e);
    if (!tens[k]) goto fail;
  }
  if (!(loss = mg_empty(rt, pred->dtype, lnd, lshape))) goto fail;
  if (mg_any_requires_grad(rt, 1, &pred) && !(grad = mg_empty_like(x))) goto fail;
  mgp_loss_io io = {
    .input = (const mgp_tensor *)x, .target = (const mgp_tensor *)y,
    .tensors = (const mgp_tensor *const *)tens, .loss = (mgp_tensor *)loss, .grad = (mgp_tensor *)grad,
    .outer = outer, .classes = classes, .inner = inner, .target_is_labels = labels,
    .mean_divisor = (double)loss->numel,
  };
  mgp_ctx ctx = {.rt = rt, .lib = l->lib, .who = l->who};
  if (l->d.forward(&ctx, l->hp, &io)) {
    mg_seterr(rt, "%s: %s", l->who, ctx.failed ? ctx.err : "forward failed without a message");
    goto fail;
  }
  double scale = 1;
  if (l->reduction == MGP_RED_NONE) {
    out = mg_retain(loss);
  } else {
    double s = 0;
    for (int64_t k = 0; k < loss->numel; k++) s += loss->dtype == MG_F64 ? mg_f64(loss)[k] : mg_f32(loss)[k];
    if (l->reduction == MGP_RED_MEAN) scale = 1 / io.mean_divisor;
    else if (l->reduction == MGP_RED_BATCHMEAN) scale = 1.0 / (double)(pred->ndim ? pred->shape[0] : 1);
    if (!(out = mg_scalar(rt, pred->dtype, l->reduction == MGP_RED_MEAN ? s / io.mean_divisor : s * scale))) goto fail;
  }
  if (grad) {
    mg_node *n = mg_record(out, l->d.head.name, loss_backward, 1, &pred);
    if (n) {
      mg_save(n, grad);
      n->i[0] = l->reduction;
      n->i[1] = outer;
      n->i[2] = classes;
      n->i[3] = inner;
      n->i[4] = l->d.shape == MGP_PER_CLASS_SAMPLE;
      n->f[0] = scale;
      n->ctx = lib_retain(l->lib);
      n->ctx_free = loss_ctx_free;
    }
  }
  mg_release(x); mg_release(y); mg_release(loss); mg_release(grad);
  for (int k = 0; k < l->d.nhparams; k++) mg_release(tens[k]);
  return out;
fail:
  mg_release(x); mg_release(y); mg_release(loss); mg_release(grad); mg_release(out);
  for (int k = 0; k < l->d.nhparams; k++) mg_release(tens[k]);
  return NULL;
}
