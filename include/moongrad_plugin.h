/*
** moongrad_plugin.h — the moongrad plugin SDK. The only header a plugin needs.
**
** A plugin is one shared library exporting one function, the entry point
**
**     MGP_ENTRY(host, ctx) { ... host->register_plugin(ctx, &my_descriptor); ... }
**
** (that expands to `int mg_plugin_init(const mgp_host *host, mgp_ctx *ctx)`).
** The runtime calls it once after dlopen(RTLD_NOW|RTLD_LOCAL); the plugin
** registers one or more descriptors (optimizers, losses) and returns 0, or
** returns -1 after host->error(ctx, ...). Plugins never link against the
** runtime: everything they may call is in the host table `mgp_host`.
**
** Build:  cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -o myopt.so myopt.c
**
** ABI rules
** - MGP_ABI_MAJOR changes break compatibility: the runtime refuses other majors.
** - MGP_ABI_MINOR changes only append: new host functions at the end of mgp_host,
**   new fields at the end of descriptors. A runtime accepts descriptors of its own
**   or an older minor and refuses newer ones.
** - Every descriptor starts with an mgp_head whose `size` is sizeof the whole
**   descriptor, and a fingerprint of the C types that cross the boundary
**   (MGP_FINGERPRINT). Use MGP_HEAD(...) to fill it in.
** - The host table starts with its size and ABI version; check it with
**   mgp_host_ok(host) before using it.
**
** Conventions: shapes and indices are 0-based here (Lua users see 1-based).
** Tensors handed to a plugin are contiguous, row-major, float32 or float64.
** Class labels handed to a loss plugin are validated 1-based integers stored
** in the prediction's dtype (subtract 1 to index).
*/
#ifndef MOONGRAD_PLUGIN_H
#define MOONGRAD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MGP_ABI_MAJOR 1
#define MGP_ABI_MINOR 0

/* The C types that cross the plugin boundary, packed in 4-bit fields. A plugin
** built with other sizes (another ABI of the compiler) is refused. */
#define MGP_FINGERPRINT                                                          \
  ((uint32_t)(sizeof(float) | sizeof(double) << 4 | sizeof(int64_t) << 8 |      \
              sizeof(void *) << 12 | sizeof(size_t) << 16 | sizeof(int) << 20 | \
              sizeof(bool) << 24 | 0x10000000u))

/* Opaque handles owned by the runtime. */
typedef struct mgp_ctx mgp_ctx;       /* the calling context: errors, state, params */
typedef struct mgp_tensor mgp_tensor; /* a runtime tensor (contiguous when handed out) */

typedef enum { MGP_F32 = 0, MGP_F64 = 1 } mgp_dtype;
typedef enum { MGP_OPTIM = 1, MGP_LOSS = 2 } mgp_kind;
typedef enum { MGP_LOG_DEBUG = 0, MGP_LOG_INFO = 1, MGP_LOG_WARN = 2 } mgp_loglevel;

/* ---- descriptors: common head ----------------------------------------------- */

typedef struct mgp_head {
  size_t size;          /* sizeof the whole descriptor (mgp_optim_desc / mgp_loss_desc) */
  int abi_major;        /* MGP_ABI_MAJOR the plugin was built with */
  int abi_minor;        /* MGP_ABI_MINOR the plugin was built with */
  uint32_t fingerprint; /* MGP_FINGERPRINT the plugin was built with */
  int kind;             /* MGP_OPTIM or MGP_LOSS */
  const char *name;     /* [a-z0-9_]+, unique per kind: what scripts pass to mg.optim / mg.loss */
  const char *version;  /* the plugin's own version, e.g. "1.0.0" */
  const char *doc;      /* one line for `moongrad --plugins`, may be NULL */
} mgp_head;

#define MGP_HEAD(kind, desc_type, name, version, doc) \
  { sizeof(desc_type), MGP_ABI_MAJOR, MGP_ABI_MINOR, MGP_FINGERPRINT, (kind), (name), (version), (doc) }

/* ---- hyperparameters ------------------------------------------------------------
** Declared by the plugin, validated by the runtime before the plugin sees them:
** unknown names, wrong types, NaN and out-of-range values are errors that list
** the accepted names. The plugin receives the values as `const double *hp`,
** in declaration order (booleans as 0/1, integers as integral doubles).      */

typedef enum {
  MGP_NUM = 1,   /* a finite or infinite number, never NaN */
  MGP_INT = 2,   /* an integral number */
  MGP_BOOL = 3,  /* true/false, 0/1 in hp[] */
  MGP_TENSOR = 4 /* losses only: an optional tensor (e.g. class weights); hp[] holds 1 if given */
} mgp_hptype;

enum {
  MGP_HP_MIN_OPEN = 1, /* value must be > min (default: >= min) */
  MGP_HP_MAX_OPEN = 2, /* value must be < max (default: <= max) */
  MGP_HP_REQUIRED = 4, /* no default: the script must give it */
  MGP_HP_BCAST = 8     /* MGP_TENSOR: broadcast to the prediction's shape before forward */
};

typedef struct mgp_hparam {
  const char *name;
  int type;            /* mgp_hptype */
  double def;          /* default value */
  double min, max;     /* accepted range (use -HUGE_VAL / HUGE_VAL for none) */
  int flags;           /* MGP_HP_* */
  const char *doc;     /* one line, may be NULL */
} mgp_hparam;

/* ---- optimizers -------------------------------------------------------------------
** The runtime owns the parameter list and all state. State lives in the
** runtime so that opt:state_dict() / opt:load_state_dict() round-trip it:
**   host->state_tensor(ctx, i, "exp_avg")  a per-parameter buffer, same shape and
**                                           dtype as parameter i, zero on creation
**   host->state_get / state_put(ctx, i, "step", v)  per-parameter numbers
**                                           (i = -1: numbers of the optimizer itself)
** step() walks the parameters, skipping those whose gradient is NULL, and
** updates them in place.                                                          */

typedef struct mgp_optim_desc {
  mgp_head head;                  /* MGP_HEAD(MGP_OPTIM, mgp_optim_desc, ...) */
  const mgp_hparam *hparams;      /* must include "lr" (opt.lr is writable) */
  int nhparams;
  int state_version;              /* bump when the meaning of saved state changes */
  /* optional: cross-field checks after per-field validation (0, or -1 + host->error) */
  int (*validate)(mgp_ctx *ctx, const double *hp);
  /* optional: private data; *user starts NULL, freed by destroy */
  int (*create)(mgp_ctx *ctx, const double *hp, void **user);
  void (*destroy)(mgp_ctx *ctx, void *user);
  /* required: one optimisation step over every parameter (0, or -1 + host->error) */
  int (*step)(mgp_ctx *ctx, const double *hp, void *user);
  /* optional: before state is read for a checkpoint, put private state with state_put */
  int (*save)(mgp_ctx *ctx, const double *hp, void *user);
  /* optional: after state was loaded from a checkpoint written with saved_version;
  ** migrate or reject it. Without this hook a version mismatch is refused. */
  int (*load)(mgp_ctx *ctx, const double *hp, void *user, int saved_version);
} mgp_optim_desc;

/* ---- losses ----------------------------------------------------------------------
** forward() writes one loss value per element (MGP_ELEMENTWISE) or per sample
** (MGP_PER_CLASS_SAMPLE: the class dimension, dim 1 — or dim 0 of a 1-D
** prediction — is summed away) and, when io->grad is not NULL, the local
** gradient d loss[j] / d input[k] for the one loss value j each input element k
** contributes to. The runtime applies the reduction (mean, sum, none, batchmean)
** and the chain rule as one autodiff node.                                        */

typedef enum { MGP_ELEMENTWISE = 0, MGP_PER_CLASS_SAMPLE = 1 } mgp_loss_shape;
typedef enum {
  MGP_TARGET_SAME = 0,          /* target has the prediction's shape */
  MGP_TARGET_LABELS = 1,        /* 1-based class labels, shape of the loss values */
  MGP_TARGET_LABELS_OR_SAME = 2 /* either (e.g. class probabilities) */
} mgp_target_kind;
enum { MGP_RED_NONE = 1, MGP_RED_MEAN = 2, MGP_RED_SUM = 4, MGP_RED_BATCHMEAN = 8 };

typedef struct mgp_loss_io {
  const mgp_tensor *input;   /* prediction, contiguous */
  const mgp_tensor *target;  /* contiguous, the prediction's dtype */
  /* MGP_TENSOR hyperparameters in declaration order of hparams (NULL where not a
  ** tensor or not given), contiguous, the prediction's dtype */
  const mgp_tensor *const *tensors;
  mgp_tensor *loss;          /* out: loss values */
  mgp_tensor *grad;          /* out: local gradient, input's shape; NULL when not needed */
  /* the prediction seen as [outer, classes, inner] (MGP_PER_CLASS_SAMPLE), else [numel, 1, 1] */
  int64_t outer, classes, inner;
  bool target_is_labels;     /* MGP_TARGET_LABELS_OR_SAME: which one was given */
  /* out: what 'mean' divides the sum by; the runtime sets it to the number of
  ** loss values before forward; a plugin may change it (e.g. to the sum of the
  ** class weights of the targets, as PyTorch's weighted nll does) */
  double mean_divisor;
} mgp_loss_io;

typedef struct mgp_loss_desc {
  mgp_head head;                /* MGP_HEAD(MGP_LOSS, mgp_loss_desc, ...) */
  const mgp_hparam *hparams;    /* `reduction` is the runtime's, do not declare it */
  int nhparams;
  int (*validate)(mgp_ctx *ctx, const double *hp);  /* optional */
  int shape;                    /* mgp_loss_shape */
  int target;                   /* mgp_target_kind */
  unsigned reductions;          /* MGP_RED_* accepted; 0 means none|mean|sum */
  /* required: 0, or -1 + host->error */
  int (*forward)(mgp_ctx *ctx, const double *hp, mgp_loss_io *io);
} mgp_loss_desc;

/* ---- the host table -------------------------------------------------------------- */

typedef struct mgp_host {
  size_t size;                 /* sizeof(mgp_host) of the runtime: append-only */
  int abi_major, abi_minor;
  uint32_t fingerprint;
  const char *runtime_version; /* e.g. "0.1.0" */

  /* entry point only: register a descriptor (mgp_optim_desc or mgp_loss_desc);
  ** the runtime copies it, the strings and arrays it points to must stay valid
  ** while the library is loaded (static storage). 0, or -1 with the reason set. */
  int (*register_plugin)(mgp_ctx *ctx, const void *descriptor);

  /* errors and logging; error() always returns -1 so `return host->error(...)` works */
  int (*error)(mgp_ctx *ctx, const char *fmt, ...);
  void (*log)(mgp_ctx *ctx, int level, const char *fmt, ...);

  /* tensors */
  void *(*data)(const mgp_tensor *t);         /* float* or double* per dtype */
  int (*dtype)(const mgp_tensor *t);          /* mgp_dtype */
  int (*ndim)(const mgp_tensor *t);
  int64_t (*dim)(const mgp_tensor *t, int d); /* size of dim d (0-based) */
  int64_t (*numel)(const mgp_tensor *t);

  /* memory: zeroed, NULL after an error on failure */
  void *(*alloc)(mgp_ctx *ctx, size_t nbytes);
  void (*free)(mgp_ctx *ctx, void *p);

  /* optimizers (inside create/step/save/load/destroy) */
  int (*nparams)(mgp_ctx *ctx);
  mgp_tensor *(*param)(mgp_ctx *ctx, int i);        /* parameter i, update in place */
  const mgp_tensor *(*grad)(mgp_ctx *ctx, int i);   /* its gradient, NULL: skip it */
  mgp_tensor *(*state_tensor)(mgp_ctx *ctx, int i, const char *name); /* NULL + error on failure */
  bool (*state_has)(mgp_ctx *ctx, int i, const char *name);
  double (*state_get)(mgp_ctx *ctx, int i, const char *name, double def);
  int (*state_put)(mgp_ctx *ctx, int i, const char *name, double v);
  double (*hparam)(mgp_ctx *ctx, const char *name); /* by name; NaN if unknown */
} mgp_host;

/* true when the runtime's host table serves this header's ABI */
static inline bool mgp_host_ok(const mgp_host *h) {
  return h && h->abi_major == MGP_ABI_MAJOR && h->abi_minor >= MGP_ABI_MINOR &&
         h->fingerprint == MGP_FINGERPRINT && h->size >= sizeof(mgp_host);
}

/* element access independent of dtype (for code where speed does not matter) */
static inline double mgp_get(const void *p, int dtype, int64_t i) {
  return dtype == MGP_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}
static inline void mgp_set(void *p, int dtype, int64_t i, double v) {
  if (dtype == MGP_F64) ((double *)p)[i] = v; else ((float *)p)[i] = (float)v;
}

#define MGP_COUNTOF(a) ((int)(sizeof(a) / sizeof((a)[0])))

#if defined(__GNUC__)
#define MGP_EXPORT __attribute__((visibility("default")))
#else
#define MGP_EXPORT
#endif

/* The entry point. Name it exactly this; the runtime looks up "mg_plugin_init". */
#define MGP_ENTRY_NAME "mg_plugin_init"
typedef int (*mgp_entry_fn)(const mgp_host *host, mgp_ctx *ctx);
#define MGP_ENTRY(host, ctx) MGP_EXPORT int mg_plugin_init(const mgp_host *host, mgp_ctx *ctx)

#ifdef __cplusplus
}
#endif
#endif
