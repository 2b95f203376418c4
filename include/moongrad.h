/*
** moongrad.h — embedding moongrad in a host application (C11, no Lua headers).
**
**   mg_runtime *R = mg_open(NULL, NULL, 0);                  default config
**   mg_run_file(R, "model.lua", 0, NULL);                    defines globals
**   mg_value *x;
**   mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){64, 8}, buf, MG_BORROW, NULL, NULL, &x);
**   mg_value *y;
**   if (mg_call(R, "predict", 1, &x, 1, &y) != MG_OK) fprintf(stderr, "%s\n", mg_last_error(R));
**   ... read y with mg_tensor_read ...
**   mg_value_free(y); mg_tensor_detach(x); mg_value_free(x);
**   mg_close(R);
**
** Build:  cc host.c $(pkg-config --cflags --libs moongrad)
**         (static: pkg-config --static --libs moongrad, and link libmoongrad.a)
**
** Threads. A runtime has no process-wide state: several may live in one
** process, each used by one thread at a time (calls on one runtime must not
** overlap); different runtimes may be used from different threads at once.
** The one process-wide setting: creating a runtime sets OpenBLAS to one thread.
**
** Status. Every function that can fail returns an mg_status. On failure the
** runtime keeps a message — for a script error the Lua message and traceback —
** readable with mg_last_error(R) until the next call on that runtime. A script
** error, a memory-limit hit, an exhausted instruction budget or an interrupt
** leave the runtime usable for the next call.
**
** Pointer ownership, once for all: strings and arrays passed in are borrowed for
** the duration of the call (copied if kept), except host buffers given to
** mg_tensor_wrap, whose rule is the mode's (see mg_ownership). mg_value handles
** returned through an out-parameter belong to the caller, who frees each with
** mg_value_free (mg_close frees any left). mg_value handles passed in are
** borrowed. Strings returned (mg_last_error, plugin listings) belong to the
** runtime and stay valid until the next call on it.
*/
#ifndef MOONGRAD_H
#define MOONGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MG_API __attribute__((visibility("default")))
#else
#define MG_API
#endif

#define MOONGRAD_VERSION "0.1.0"
#define MOONGRAD_MAX_DIMS 8        /* a tensor has at most this many dimensions */

typedef struct mg_runtime mg_runtime;  /* a Lua state with moongrad loaded, and its tensors */
typedef struct mg_value mg_value;      /* the host's reference to one tensor of a runtime */

typedef enum {
  MG_OK = 0,
  MG_ERR_RUN,     /* a Lua error while running (message + traceback) */
  MG_ERR_SYNTAX,  /* the chunk did not compile */
  MG_ERR_MEMORY,  /* the memory limit (or the system) refused an allocation */
  MG_ERR_BUDGET,  /* the call exhausted its instruction budget */
  MG_ERR_FILE,    /* a file could not be read */
  MG_ERR_ARG,     /* the host passed something invalid (NULL, unknown global, wrong type) */
  MG_ERR_INTERRUPTED  /* mg_interrupt stopped the script (it did not catch the error) */
} mg_status;

typedef enum { MG_FLOAT32 = 0, MG_FLOAT64 = 1 } mg_type;

/* ---- runtimes ------------------------------------------------------------- */

typedef struct mg_config {
  size_t size;                 /* sizeof(mg_config), set by mg_config_init */
  /* plugin directories scanned after the built-in one and $MOONGRAD_PLUGIN_PATH;
  ** NULL-terminated array, may be NULL */
  const char *const *plugin_dirs;
  bool default_plugin_dirs;    /* scan the built-in directory and $MOONGRAD_PLUGIN_PATH (default true) */
  bool allow_plugin_load;      /* scripts may call mg.load_plugin / mg.add_plugin_dir (default true) */
  /* threads for this runtime's kernels; 0 leaves the default (1). moongrad runs
  ** its own threads and keeps OpenBLAS on one (a process-wide setting, made when
  ** a runtime is created). */
  int threads;
  /* bytes of Lua heap plus tensor storage this runtime may hold; 0: no limit.
  ** A script that passes it gets a Lua error and the call returns MG_ERR_MEMORY. */
  size_t mem_limit;
  /* withhold io, os (except clock/time/date/difftime), debug, package, require of
  ** anything but "moongrad", dofile, loadfile, load of binary chunks, and
  ** everything in mg that touches files or loads plugins (mg.save, mg.load,
  ** mg.load_plugin, mg.add_plugin_dir, mg.data readers) */
  bool sandbox;
  /* Lua VM instructions one call (mg_run_*, mg_call) may execute; 0: no limit.
  ** Counted in steps of up to 1000; time spent inside C kernels is not counted. */
  uint64_t instruction_budget;
} mg_config;

/* defaults: everything off or unlimited, default_plugin_dirs and allow_plugin_load on */
MG_API void mg_config_init(mg_config *cfg);

/* A new runtime (NULL cfg: defaults). Returns NULL on failure with a message in
** err (errlen bytes, may be NULL/0): bad config, limit too small, out of memory. */
MG_API mg_runtime *mg_open(const mg_config *cfg, char *err, size_t errlen);
/* Frees the runtime, every tensor it holds and every mg_value still open on it
** (release callbacks run). NULL is fine. */
MG_API void mg_close(mg_runtime *R);
/* The message of the last failed call (empty after a successful one). */
MG_API const char *mg_last_error(const mg_runtime *R);
MG_API const char *mg_version(void);

/* Change the per-call instruction budget (0: none) or the memory limit (0: none). */
MG_API mg_status mg_set_budget(mg_runtime *R, uint64_t instructions);
MG_API mg_status mg_set_mem_limit(mg_runtime *R, size_t bytes);
/* Seed the runtime's random number generator (mg.manual_seed). */
MG_API mg_status mg_seed(mg_runtime *R, uint64_t seed);
/* Run a full garbage collection, return cached tensor memory to the system. */
MG_API mg_status mg_collect(mg_runtime *R);
/* Bytes held now: Lua heap and tensor storage (either pointer may be NULL). */
MG_API void mg_memory_used(const mg_runtime *R, size_t *lua_bytes, size_t *tensor_bytes);

/* ---- running Lua ------------------------------------------------------------ */

/* Run a chunk of Lua source; name is the chunk name in messages ("=name" is
** shown as is, "@file" as a file); NULL gives "=(string)". */
MG_API mg_status mg_run_string(mg_runtime *R, const char *code);
MG_API mg_status mg_run_buffer(mg_runtime *R, const char *code, size_t len, const char *name);
/* Run a Lua file with argc strings as its `...` (argv may be NULL when argc is 0).
** In a sandbox, only source files are accepted (no precompiled chunks). */
MG_API mg_status mg_run_file(mg_runtime *R, const char *path, int argc, const char *const *argv);

/* Call the global function `fn` with nin tensors (a NULL entry passes nil) and
** take up to nout results into out[0..nout-1]: a tensor result becomes a new
** mg_value; a number (or boolean) becomes a new 0-dim float64 tensor; nil or a
** missing result gives NULL; any other type is an MG_ERR_RUN error. On failure
** every out[i] is NULL. */
MG_API mg_status mg_call(mg_runtime *R, const char *fn, int nin, mg_value *const *in, int nout, mg_value **out);

/* Globals. get: the global must be a tensor (MG_ERR_ARG otherwise); *out is a
** new mg_value. set: v may be NULL (sets nil). */
MG_API mg_status mg_get_global_tensor(mg_runtime *R, const char *name, mg_value **out);
MG_API mg_status mg_set_global_tensor(mg_runtime *R, const char *name, mg_value *v);
MG_API mg_status mg_get_global_number(mg_runtime *R, const char *name, double *out);
MG_API mg_status mg_set_global_number(mg_runtime *R, const char *name, double v);
MG_API mg_status mg_set_global_string(mg_runtime *R, const char *name, const char *s);
/* Set global `name` to a table t with t[first + i] = strs[i] for i in 0..n-1
** (the runner builds `arg` this way, with first = -(script index)). */
MG_API mg_status mg_set_global_strings(mg_runtime *R, const char *name, int n, const char *const *strs, int first);

/* Interrupt the script running on R, as Ctrl-C does in lua.c: it gets the Lua
** error "interrupted" at its next Lua instruction (after the C kernel under way,
** if any; code in a coroutine sees it once control is back in the main one).
** The script may catch it (pcall) and carry on; uncaught, the call returns
** MG_ERR_INTERRUPTED. Safe from a signal handler or from another thread while
** R is open. Returns false, and does nothing, when no mg_run_* or mg_call is
** under way on R: an interrupt is never kept for a later call. */
MG_API bool mg_interrupt(mg_runtime *R);

/* ---- tensors ------------------------------------------------------------------ */

typedef enum {
  /* The runtime uses data in place and never frees it. It stays the host's
  ** memory and must stay valid until the host calls mg_tensor_detach on this
  ** value (or closes the runtime). After detaching, any use of the tensor or a
  ** view of it from Lua raises a Lua error instead of touching the memory. */
  MG_BORROW = 0,
  /* The runtime copies the data into its own storage during the call; the host
  ** keeps data. */
  MG_COPY = 1,
  /* The runtime uses data in place and calls release(data, ud) exactly once,
  ** when the last reference (from Lua or the host) is gone or the runtime
  ** closes — and also when mg_tensor_wrap itself fails. */
  MG_CALLBACK = 2
} mg_ownership;

/* Wrap a contiguous, row-major host buffer of numel(shape) elements of type t
** as a tensor without copying (except MG_COPY). data must be aligned for t. */
MG_API mg_status mg_tensor_wrap(mg_runtime *R, mg_type t, int ndim, const int64_t *shape, void *data,
                                mg_ownership own, void (*release)(void *data, void *ud), void *ud,
                                mg_value **out);
/* A new zero-filled tensor owned by the runtime. */
MG_API mg_status mg_tensor_zeros(mg_runtime *R, mg_type t, int ndim, const int64_t *shape, mg_value **out);
/* Take borrowed memory back (MG_BORROW only; MG_ERR_ARG otherwise): after this
** returns, the runtime never touches the buffer again and the host may free it.
** The value must still be freed with mg_value_free. */
MG_API mg_status mg_tensor_detach(mg_value *v);
/* Drop the host's reference. NULL is fine. */
MG_API void mg_value_free(mg_value *v);

MG_API mg_type mg_tensor_type(const mg_value *v);
MG_API int mg_tensor_ndim(const mg_value *v);
MG_API int64_t mg_tensor_dim(const mg_value *v, int d);   /* size of dim d (0-based); 0 if out of range */
MG_API int64_t mg_tensor_numel(const mg_value *v);
/* Pointer to the first element (the host's own buffer for a wrapped tensor),
** valid while v is held; the layout is row-major only when mg_tensor_is_contiguous.
** NULL for a detached tensor. */
MG_API void *mg_tensor_data(const mg_value *v);
MG_API bool mg_tensor_is_contiguous(const mg_value *v);
/* Copy the elements in row-major order into dst as type t (converting), n
** elements at most: MG_ERR_ARG if n < numel. */
MG_API mg_status mg_tensor_read(mg_value *v, mg_type t, void *dst, size_t n);
/* Copy n elements of type t from src into the tensor (row-major, converting);
** n must equal numel. Visible from Lua at once (Lua sees the same storage). */
MG_API mg_status mg_tensor_write(mg_value *v, mg_type t, const void *src, size_t n);

/* ---- plugins ---------------------------------------------------------------------
** Descriptors are those of moongrad_plugin.h (mgp_optim_desc, mgp_loss_desc). */

struct mgp_host;
/* The host table a statically linked plugin uses for tensor access, state and
** errors (what a dynamic plugin receives in its entry point). Static storage. */
MG_API const struct mgp_host *mg_plugin_host_table(void);
/* Register a descriptor linked into the host program (no dlopen). The descriptor
** and what it points to must outlive the runtime; origin names it in listings
** (NULL: "static"). A bad descriptor is MG_ERR_ARG with the reason. */
MG_API mg_status mg_register_plugin(mg_runtime *R, const void *descriptor, const char *origin);
/* Scan a directory now, or load one plugin file (always allowed from the host). */
MG_API mg_status mg_add_plugin_dir(mg_runtime *R, const char *dir);
MG_API mg_status mg_load_plugin(mg_runtime *R, const char *path);
/* Registered plugins, in registration order: their number, and entry i's fields
** (strings owned by the runtime; file is the origin for static plugins). */
typedef struct mg_plugin_entry { const char *name, *kind, *version, *file, *doc; } mg_plugin_entry;
MG_API int mg_plugin_list_count(mg_runtime *R);
MG_API mg_status mg_plugin_list_get(mg_runtime *R, int i, mg_plugin_entry *out);

#ifdef __cplusplus
}
#endif
#endif
