/*
** mg_core.h — moongrad's core: runtime context, storage, tensors, autodiff.
** No Lua in this layer. Dimensions are 0-based. Every function that can fail
** returns NULL (or -1) and leaves a message in the runtime: mg_errmsg(rt).
** Messages speak to script writers: they name the operation and the shapes or
** values involved ("matmul: shapes {2,3} and {4,5} do not match (3 ~= 4)").
**
** Ownership: a function returning mg_tensor* hands the caller one reference;
** drop it with mg_release. Arguments are borrowed unless a comment says so.
*/
#ifndef MG_CORE_H
#define MG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MG_MAX_DIMS 8
#define MG_MAX_SAVED 4
#define MG_ERRLEN 1024

typedef enum { MG_F32 = 0, MG_F64 = 1 } mg_dtype;

typedef struct mg_rt mg_rt;
typedef struct mg_storage mg_storage;
typedef struct mg_tensor mg_tensor;
typedef struct mg_node mg_node;
typedef struct mg_cache mg_cache;

/* ---- runtime context ---------------------------------------------------- */

struct mg_rt {
  char err[MG_ERRLEN];
  bool grad_enabled;          /* recording of autodiff nodes */
  bool anomaly;               /* mg.detect_anomaly: check op outputs for NaN/Inf */
  int nthreads;
  uint64_t rng[4];            /* xoshiro256** state; mg_manual_seed */
  /* tensor memory accounting (storage bytes) */
  size_t live_bytes, peak_bytes, mem_limit;  /* mem_limit 0: none */
  size_t since_gc;            /* bytes allocated since the host last collected */
  size_t since_step;          /* bytes (plus a header cost per tensor) since the last GC step */
  /* called when an allocation would pass mem_limit: the host frees what it can
  ** (the Lua bindings run a full GC cycle); the allocation is retried once. */
  void (*pressure)(mg_rt *rt, void *ud);
  void *pressure_ud;
  mg_cache *cache;            /* size-class cache of freed blocks (mg_mem.c) */
  void *free_tensors, *free_storages;  /* recycled headers: no malloc per tiny op */
  int nfree_tensors, nfree_storages;
  void *free_nodes;           /* recycled autodiff nodes (mg_autograd.c) */
  int nfree_nodes;
  void *plugins;              /* plugin registry, owned by mg_plugin.c */
  void *host;                 /* the embedding layer's per-runtime state */
  int backward_depth;         /* >0 while the engine runs */
};

mg_rt *mg_rt_new(void);
void mg_rt_free(mg_rt *rt);
int mg_seterr(mg_rt *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* returns -1 */
const char *mg_errmsg(const mg_rt *rt);
/* small allocations (headers, nodes): abort with a message if the C heap is exhausted */
void *mg_xmalloc(size_t n);
void *mg_xcalloc(size_t n, size_t sz);

/* ---- storage ------------------------------------------------------------ */

typedef enum {
  MG_ST_OWN,      /* allocated by the runtime */
  MG_ST_BORROW,   /* host memory, valid until the host detaches it */
  MG_ST_CALLBACK  /* host memory, released through release(data, ud) exactly once */
} mg_st_kind;

struct mg_storage {
  mg_rt *rt;
  void *data;
  size_t nbytes;
  int refcount;
  uint32_t version;           /* bumped by every in-place write, shared by all views */
  mg_st_kind kind;
  bool detached;              /* borrowed memory taken back by the host: access is an error */
  bool embedded;              /* lives in its first tensor's header block (mg_tensor.c) */
  void (*release)(void *data, void *ud);
  void *ud;
  _Alignas(16) unsigned char small[32];  /* data of an own storage of at most 32 bytes (not counted in live_bytes) */
};

/* uninitialised; 64-byte aligned, except that up to 32 bytes live in st->small (16-byte aligned) */
mg_storage *mg_storage_new(mg_rt *rt, size_t nbytes);
void mg_storage_release(mg_storage *s);
/* memory (mg_mem.c): the cached, accounted allocator behind storages */
void *mg_mem_alloc(mg_rt *rt, size_t nbytes);
void mg_mem_free(mg_rt *rt, void *p, size_t nbytes);
void mg_mem_trim(mg_rt *rt);  /* return cached blocks to the system */

/* ---- tensors ------------------------------------------------------------ */

struct mg_tensor {
  mg_rt *rt;
  mg_storage *st;
  int refcount;
  mg_dtype dtype;
  int ndim;                   /* 0 for a scalar */
  int64_t numel;
  int64_t offset;             /* in elements */
  int64_t shape[MG_MAX_DIMS];
  int64_t stride[MG_MAX_DIMS];  /* in elements */
  /* autodiff */
  bool requires_grad;
  mg_tensor *grad;            /* owned; NULL until a backward reaches this leaf */
  mg_node *grad_fn;           /* owned reference; NULL for leaves */
};

static inline size_t mg_dtype_size(mg_dtype dt) { return dt == MG_F64 ? 8 : 4; }
static inline const char *mg_dtype_name(mg_dtype dt) { return dt == MG_F64 ? "float64" : "float32"; }
static inline void *mg_data(const mg_tensor *t) {
  return (char *)t->st->data + (size_t)t->offset * mg_dtype_size(t->dtype);
}
static inline float *mg_f32(const mg_tensor *t) { return (float *)mg_data(t); }
static inline double *mg_f64(const mg_tensor *t) { return (double *)mg_data(t); }
static inline bool mg_is_leaf(const mg_tensor *t) { return t->grad_fn == NULL; }
static inline mg_dtype mg_promote(mg_dtype a, mg_dtype b) { return a == MG_F64 || b == MG_F64 ? MG_F64 : MG_F32; }

mg_tensor *mg_retain(mg_tensor *t);
void mg_release(mg_tensor *t);          /* NULL is fine */
bool mg_is_contiguous(const mg_tensor *t);
bool mg_same_shape(const mg_tensor *a, const mg_tensor *b);
/* "{2,3}" into buf (Lua-style), returns buf */
char *mg_shape_str(const mg_tensor *t, char *buf, size_t n);
char *mg_dims_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* -1 and an error if the storage is detached host memory (checked before data access) */
int mg_check_alive(const mg_tensor *t, const char *op);
void mg_bump_version(mg_tensor *t);    /* after writing into t in place */
double mg_get_flat(const mg_tensor *t, int64_t i);  /* i-th element in row-major order */

/* creation (mg_tensor.c) */
mg_tensor *mg_empty(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape);
mg_tensor *mg_full(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, double v);
mg_tensor *mg_empty_like(const mg_tensor *t);          /* contiguous, same dtype and shape */
mg_tensor *mg_zeros_like(const mg_tensor *t);
mg_tensor *mg_scalar(mg_rt *rt, mg_dtype dt, double v);  /* 0-dim */
mg_tensor *mg_from_data(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, const double *vals);
/* wrap host memory without copying (kind MG_ST_BORROW or MG_ST_CALLBACK). For
** MG_ST_CALLBACK, release runs exactly once, also when this call fails. */
mg_tensor *mg_wrap(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, void *data,
                   mg_st_kind kind, void (*release)(void *, void *), void *ud);

/* views: share storage; differentiable (mg_view.c) */
mg_tensor *mg_view(mg_tensor *t, int ndim, const int64_t *shape);    /* one size may be -1 */
mg_tensor *mg_reshape(mg_tensor *t, int ndim, const int64_t *shape); /* view if possible, else copy */
mg_tensor *mg_transpose(mg_tensor *t, int d0, int d1);
mg_tensor *mg_permute(mg_tensor *t, const int *perm);
mg_tensor *mg_narrow(mg_tensor *t, int dim, int64_t start, int64_t len);
mg_tensor *mg_select(mg_tensor *t, int dim, int64_t i);
mg_tensor *mg_unsqueeze(mg_tensor *t, int dim);
mg_tensor *mg_squeeze(mg_tensor *t, int dim);           /* dim < 0: every size-1 dim */
mg_tensor *mg_expand(mg_tensor *t, int ndim, const int64_t *shape); /* -1 keeps a size */
mg_tensor *mg_flatten(mg_tensor *t, int start, int stop);
mg_tensor *mg_contiguous(mg_tensor *t);   /* t itself (retained) when already contiguous */
mg_tensor *mg_clone(mg_tensor *t);
mg_tensor *mg_to(mg_tensor *t, mg_dtype dt); /* t itself (retained) when already dt */
mg_tensor *mg_detach(mg_tensor *t);        /* shares storage, no history */
/* copy src into dst in place (broadcasting src); not recorded */
int mg_copy_(mg_tensor *dst, mg_tensor *src);
/* reduce a broadcast gradient back to a shape (sum over broadcast dims) */
mg_tensor *mg_sum_to(mg_tensor *g, int ndim, const int64_t *shape);
/* the broadcast shape of a and b into out (ndim into *ondim); -1 and an error naming op */
int mg_broadcast_shape(const char *op, const mg_tensor *a, const mg_tensor *b, int *ondim, int64_t *out);

/* ---- helpers for kernels ------------------------------------------------- */
mg_tensor *mg_view_header(mg_tensor *src);        /* a header over src's storage; caller sets shape */
mg_tensor *mg_copy_as(mg_tensor *t, mg_dtype dt); /* a contiguous copy in dtype dt, no history */
mg_tensor *mg_dense(mg_tensor *t, mg_dtype dt);   /* t itself (retained) if contiguous in dt, else mg_copy_as */

/* ---- autodiff (mg_autograd.c) ------------------------------------------- */

/* Computes gradients for a node's inputs from the gradient of its output.
** gin[k] is needed only where mg_node_needs(n, k); leave the others NULL.
** Runs with recording off. Returns 0, or -1 with an error in the runtime. */
typedef int (*mg_backward_fn)(mg_node *n, mg_tensor *gout, mg_tensor **gin);

typedef struct {
  mg_node *node;             /* the input's grad_fn (non-leaf input), or NULL */
  mg_tensor *leaf;           /* a leaf input that requires grad (referenced), or NULL */
  mg_dtype dtype;            /* input's dtype, ndim and shape, to check gradients */
  int ndim;
  int64_t shape[MG_MAX_DIMS];
} mg_edge;

struct mg_node {
  mg_rt *rt;
  const char *op;            /* op name for error messages and anomaly reports */
  mg_backward_fn backward;
  int refcount;
  bool released;             /* saved tensors freed by a backward */
  int nsaved;
  mg_tensor *saved[MG_MAX_SAVED];
  uint32_t saved_version[MG_MAX_SAVED];
  double f[4];               /* small per-op context: numbers ... */
  int64_t i[MG_MAX_DIMS * 2]; /* ... dims, sizes */
  void *ctx;                 /* larger context, freed with ctx_free */
  void (*ctx_free)(mg_node *n);
  /* engine scratch */
  int deps;
  mg_tensor *gacc;
  int nin;
  mg_edge in[];              /* one per input */
};

static inline bool mg_node_needs(const mg_node *n, int k) { return n->in[k].node || n->in[k].leaf; }

/* True when recording is on and an input requires grad. */
bool mg_any_requires_grad(mg_rt *rt, int nin, mg_tensor *const *in);
/* If recording is on and an input requires grad: make `out` the output of a
** new node with edges to the inputs and return it (for saving tensors and
** context); otherwise return NULL. NULL inputs are allowed (no edge). */
mg_node *mg_record(mg_tensor *out, const char *op, mg_backward_fn bw, int nin, mg_tensor *const *in);
/* Save a tensor for backward (with its storage version, checked at backward).
** Saving the node's own output stores an alias without history (no cycle). */
void mg_save(mg_node *n, mg_tensor *t);
/* A saved tensor, or NULL with an error if it was modified in place since saved. */
mg_tensor *mg_saved(mg_node *n, int k);
void mg_node_release(mg_node *n);
/* gin[k] = g converted to input k's dtype; takes g (NULL g: -1, the error is set) */
int mg_grad_out(mg_node *n, int k, mg_tensor *g, mg_tensor **gin);
void mg_ctx_free(mg_node *n);  /* a ctx_free for a ctx from malloc */
/* Reverse-mode pass from root; grad may be NULL for a one-element root. */
int mg_backward(mg_tensor *root, mg_tensor *grad, bool retain_graph);
/* leaf.grad += g (allocating it on first use) */
int mg_accumulate_grad(mg_tensor *leaf, mg_tensor *g);
/* An in-place op may not write into a tensor the autodiff graph needs:
** -1 with an error naming op when recording is on and t or other requires grad. */
int mg_check_inplace(const char *op, mg_tensor *t, mg_tensor *other);

/* ---- random numbers (mg_random.c): one stream per runtime ---------------- */
void mg_manual_seed(mg_rt *rt, uint64_t seed);
uint64_t mg_rand_u64(mg_rt *rt);
double mg_rand_uniform(mg_rt *rt);   /* [0,1) */
double mg_rand_normal(mg_rt *rt);    /* N(0,1) */
int mg_uniform_(mg_tensor *t, double a, double b);
int mg_normal_(mg_tensor *t, double mean, double std);

/* ---- ops ----------------------------------------------------------------
** Implemented in k_*.c, forward and backward side by side. All differentiable
** unless noted. Binary ops broadcast; a float32/float64 mix computes in float64. */

/* k_binary.c */
typedef enum { MG_ADD, MG_SUB, MG_MUL, MG_DIV, MG_POW, MG_MAXIMUM, MG_MINIMUM } mg_binop;
typedef enum { MG_EQ, MG_NE, MG_LT, MG_LE, MG_GT, MG_GE } mg_cmpop;
mg_tensor *mg_binary(mg_binop op, mg_tensor *a, mg_tensor *b);
mg_tensor *mg_compare(mg_cmpop op, mg_tensor *a, mg_tensor *b);   /* 0/1, not differentiable */
mg_tensor *mg_where(mg_tensor *cond, mg_tensor *a, mg_tensor *b);
/* t = t op (alpha * o) in place, o broadcast to t's shape (add_: MG_ADD, sub_, mul_, div_) */
int mg_binary_(mg_binop op, mg_tensor *t, mg_tensor *o, double alpha);

/* k_unary.c */
typedef enum {
  MG_NEG, MG_EXP, MG_LOG, MG_SQRT, MG_RSQRT, MG_ABS, MG_SIGN, MG_SIN, MG_COS, MG_TANH,
  MG_SIGMOID, MG_RELU, MG_LEAKY_RELU, MG_GELU, MG_SOFTPLUS, MG_CLAMP, MG_POWS /* x^a */
} mg_unop;
/* a, b: leaky_relu slope; clamp lo, hi (-inf, inf: no bound; a NaN bound makes every
** element NaN, as PyTorch); pows exponent */
mg_tensor *mg_unary(mg_unop op, mg_tensor *x, double a, double b);
int mg_unary_(mg_unop op, mg_tensor *x, double a, double b);     /* in place, not recorded */
int mg_fill_(mg_tensor *t, double v);

/* k_reduce.c: dim < 0 means all dims (result 0-dim unless keepdim) */
mg_tensor *mg_sum(mg_tensor *x, int dim, bool keepdim);
mg_tensor *mg_mean(mg_tensor *x, int dim, bool keepdim);
mg_tensor *mg_prod(mg_tensor *x, int dim, bool keepdim);
mg_tensor *mg_var(mg_tensor *x, int dim, bool keepdim, bool unbiased);
mg_tensor *mg_std(mg_tensor *x, int dim, bool keepdim, bool unbiased);
mg_tensor *mg_norm(mg_tensor *x, double p);
mg_tensor *mg_norm_dim(mg_tensor *x, double p, int dim, bool keepdim); /* dim < 0: whole tensor */
mg_tensor *mg_logsumexp(mg_tensor *x, int dim, bool keepdim);
/* values and 0-based indices (indices as the input's dtype, not differentiable);
** dim < 0: whole tensor, *idx may be NULL */
int mg_maxmin(mg_tensor *x, int dim, bool keepdim, bool is_max, mg_tensor **val, mg_tensor **idx);
mg_tensor *mg_argmaxmin(mg_tensor *x, int dim, bool keepdim, bool is_max); /* 0-based */

/* k_linalg.c (OpenBLAS) */
mg_tensor *mg_matmul(mg_tensor *a, mg_tensor *b);
mg_tensor *mg_dot(mg_tensor *a, mg_tensor *b);
mg_tensor *mg_outer(mg_tensor *a, mg_tensor *b);
mg_tensor *mg_linear(mg_tensor *x, mg_tensor *w, mg_tensor *b);  /* b may be NULL */

/* k_conv.c (NCHW) */
typedef struct { int stride[2], padding[2], dilation[2], groups; } mg_conv_opts;
mg_tensor *mg_conv2d(mg_tensor *x, mg_tensor *w, mg_tensor *b, const mg_conv_opts *o);
mg_tensor *mg_max_pool2d(mg_tensor *x, const int k[2], const int stride[2], const int pad[2]);
mg_tensor *mg_avg_pool2d(mg_tensor *x, const int k[2], const int stride[2], const int pad[2]);

/* k_norm.c */
mg_tensor *mg_softmax(mg_tensor *x, int dim);
mg_tensor *mg_log_softmax(mg_tensor *x, int dim);
mg_tensor *mg_dropout(mg_tensor *x, double p, bool training);
/* running stats updated in place when training (may be NULL) */
mg_tensor *mg_batch_norm(mg_tensor *x, mg_tensor *rmean, mg_tensor *rvar, mg_tensor *w, mg_tensor *b,
                         bool training, double momentum, double eps);
mg_tensor *mg_layer_norm(mg_tensor *x, int nnorm, const int64_t *nshape, mg_tensor *w, mg_tensor *b, double eps);

/* k_index.c; index tensors hold 0-based integers in a float dtype */
mg_tensor *mg_cat(int n, mg_tensor *const *ts, int dim);
mg_tensor *mg_stack(int n, mg_tensor *const *ts, int dim);
mg_tensor *mg_index_select(mg_tensor *x, int dim, mg_tensor *idx);
mg_tensor *mg_gather(mg_tensor *x, int dim, mg_tensor *idx);
mg_tensor *mg_masked_fill(mg_tensor *x, mg_tensor *mask, double v);
mg_tensor *mg_embedding(mg_tensor *idx, mg_tensor *weight);

#endif
