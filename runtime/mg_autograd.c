/*
** mg_autograd.c — the reverse-mode engine. Each op output that needs a
** gradient owns a node; a node holds edges to its inputs' nodes (or to leaf
** tensors, whose .grad it accumulates into), the tensors its backward needs,
** and a little context. backward() orders the reachable nodes topologically
** (iteratively: an RNN graph can be deep), runs each node's backward once its
** gradient is complete, and frees saved tensors as it goes unless asked to
** retain the graph.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"

bool mg_any_requires_grad(mg_rt *rt, int nin, mg_tensor *const *in) {
  if (!rt->grad_enabled) return false;
  for (int k = 0; k < nin; k++)
    if (in[k] && in[k]->requires_grad) return true;
  return false;
}

/* ---- node memory: nodes of up to NODE_MAX_IN inputs are recycled per runtime -- */

#define NODE_MAX_IN 3
#define MAX_FREE_NODES 1024
typedef struct freenode { struct freenode *next; } freenode;

static size_t node_size(int nin) { return sizeof(mg_node) + (size_t)nin * sizeof(mg_edge); }

/* a zeroed node with room for nin edges */
static mg_node *node_alloc(mg_rt *rt, int nin) {
  freenode *f = rt->free_nodes;
  if (nin > NODE_MAX_IN) return mg_xcalloc(1, node_size(nin));
  if (!f) return mg_xcalloc(1, node_size(NODE_MAX_IN));
  rt->free_nodes = f->next;
  rt->nfree_nodes--;
  memset(f, 0, node_size(nin));
  return (mg_node *)f;
}

static void node_free(mg_node *n) {
  mg_rt *rt = n->rt;
  if (n->nin > NODE_MAX_IN || rt->nfree_nodes >= MAX_FREE_NODES) { free(n); return; }
  freenode *f = (freenode *)n;
  f->next = rt->free_nodes;
  rt->free_nodes = f;
  rt->nfree_nodes++;
}

void mg_nodes_trim(mg_rt *rt);
void mg_nodes_trim(mg_rt *rt) {
  for (freenode *f = rt->free_nodes, *nx; f; f = nx) { nx = f->next; free(f); }
  rt->free_nodes = NULL;
  rt->nfree_nodes = 0;
}

mg_node *mg_record(mg_tensor *out, const char *op, mg_backward_fn bw, int nin, mg_tensor *const *in) {
  if (!mg_any_requires_grad(out->rt, nin, in)) return NULL;
  mg_node *n = node_alloc(out->rt, nin);
  n->rt = out->rt;
  n->op = op;
  n->backward = bw;
  n->refcount = 1;  /* held by out */
  n->nin = nin;
  for (int k = 0; k < nin; k++) {
    mg_tensor *x = in[k];
    mg_edge *e = &n->in[k];
    if (!x) continue;
    e->dtype = x->dtype;
    e->ndim = x->ndim;
    memcpy(e->shape, x->shape, sizeof e->shape);
    if (!x->requires_grad) continue;
    if (x->grad_fn) { e->node = x->grad_fn; e->node->refcount++; }
    else e->leaf = mg_retain(x);
  }
  if (out->grad_fn) mg_node_release(out->grad_fn);
  out->grad_fn = n;
  out->requires_grad = true;
  return n;
}

void mg_save(mg_node *n, mg_tensor *t) {
  if (n->nsaved >= MG_MAX_SAVED) abort();  /* a kernel bug, not user input */
  mg_tensor *s;
  if (t->grad_fn == n) {  /* the node's own output: alias without history */
    s = mg_view_header(t);
    s->ndim = t->ndim;
    s->numel = t->numel;
    memcpy(s->shape, t->shape, sizeof s->shape);
    memcpy(s->stride, t->stride, sizeof s->stride);
  } else s = mg_retain(t);
  n->saved_version[n->nsaved] = t->st->version;
  n->saved[n->nsaved++] = s;
}

mg_tensor *mg_saved(mg_node *n, int k) {
  mg_tensor *t = n->saved[k];
  if (!t) {
    mg_seterr(n->rt, "backward: trying to backward through the graph of '%s' a second time "
              "(its saved tensors were freed; pass retain_graph = true to the first backward)", n->op);
    return NULL;
  }
  if (t->st->version != n->saved_version[k]) {
    char b[128];
    mg_seterr(n->rt, "backward: a tensor of shape %s saved by '%s' was modified by an in-place "
              "operation (version %u, now %u)", mg_shape_str(t, b, sizeof b), n->op,
              n->saved_version[k], t->st->version);
    return NULL;
  }
  return t;
}

static void free_saved(mg_node *n) {
  for (int k = 0; k < n->nsaved; k++) { mg_release(n->saved[k]); n->saved[k] = NULL; }
  if (n->ctx_free) n->ctx_free(n);
  n->ctx_free = NULL;
  n->ctx = NULL;
  n->released = true;
}

int mg_grad_out(mg_node *n, int k, mg_tensor *g, mg_tensor **gin) {
  if (!g) return -1;
  gin[k] = mg_to(g, n->in[k].dtype);
  mg_release(g);
  return gin[k] ? 0 : -1;
}

void mg_ctx_free(mg_node *n) { free(n->ctx); }

/* ---- node stacks: on the C stack while small, on the heap when they grow ------ */

typedef struct { mg_node **v; size_t n, cap; mg_node *small[32]; } nodevec;

static void nv_init(nodevec *s) { s->v = s->small; s->n = 0; s->cap = sizeof s->small / sizeof *s->small; }
static void nv_free(nodevec *s) { if (s->v != s->small) free(s->v); }
static void push(nodevec *s, mg_node *n) {
  if (s->n == s->cap) {
    mg_node **v = s->v == s->small ? malloc(2 * s->cap * sizeof *v) : realloc(s->v, 2 * s->cap * sizeof *v);
    if (!v) abort();
    if (s->v == s->small) memcpy(v, s->small, sizeof s->small);
    s->v = v;
    s->cap *= 2;
  }
  s->v[s->n++] = n;
}

/* Release a node; iteratively, so a long chain does not overflow the C stack. */
void mg_node_release(mg_node *n) {
  nodevec stack;
  nv_init(&stack);
  while (n || stack.n) {
    if (!n) n = stack.v[--stack.n];
    if (--n->refcount > 0) { n = NULL; continue; }
    free_saved(n);
    mg_release(n->gacc);
    for (int k = 0; k < n->nin; k++) {
      mg_release(n->in[k].leaf);
      if (n->in[k].node) push(&stack, n->in[k].node);
    }
    node_free(n);
    n = NULL;
  }
  nv_free(&stack);
}

/* ---- gradient accumulation ---------------------------------------------------- */

/* acc += g (same shape), both contiguous; acc is owned by the engine or a leaf */
static void add_into(mg_tensor *acc, mg_tensor *g) {
  int64_t n = acc->numel;
  if (acc->dtype == MG_F32 && g->dtype == MG_F32) {
    float *y = mg_f32(acc); const float *x = mg_f32(g);
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
  } else if (acc->dtype == MG_F64 && g->dtype == MG_F64) {
    double *y = mg_f64(acc); const double *x = mg_f64(g);
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
  } else {
    for (int64_t i = 0; i < n; i++) {
      double v = mg_get_flat(g, i);
      if (acc->dtype == MG_F32) mg_f32(acc)[i] += (float)v; else mg_f64(acc)[i] += v;
    }
  }
}

/* the gradient made contiguous, in dtype dt, owned by the caller (maybe g itself) */
static mg_tensor *own_grad(mg_tensor *g, mg_dtype dt) {
  if (g->dtype == dt && mg_is_contiguous(g) && g->refcount == 1 && !g->grad_fn) return mg_retain(g);
  return mg_copy_as(g, dt);
}

int mg_accumulate_grad(mg_tensor *leaf, mg_tensor *g) {
  if (!leaf->grad) {
    leaf->grad = own_grad(g, leaf->dtype);
    return leaf->grad ? 0 : -1;
  }
  if (mg_is_contiguous(leaf->grad) && mg_is_contiguous(g)) add_into(leaf->grad, g);
  else {
    mg_tensor *c = mg_copy_as(g, leaf->dtype);
    if (!c) return -1;
    mg_tensor *lg = mg_copy_as(leaf->grad, leaf->dtype);
    if (!lg) { mg_release(c); return -1; }
    add_into(lg, c);
    mg_release(c);
    mg_release(leaf->grad);
    leaf->grad = lg;
  }
  mg_bump_version(leaf->grad);
  return 0;
}

static int accumulate_node(mg_node *n, mg_tensor *g) {
  if (!n->gacc) { n->gacc = own_grad(g, g->dtype); return n->gacc ? 0 : -1; }
  if (!mg_is_contiguous(n->gacc)) {
    mg_tensor *c = mg_copy_as(n->gacc, n->gacc->dtype);
    if (!c) return -1;
    mg_release(n->gacc);
    n->gacc = c;
  }
  if (mg_is_contiguous(g)) add_into(n->gacc, g);
  else {
    mg_tensor *c = mg_copy_as(g, g->dtype);
    if (!c) return -1;
    add_into(n->gacc, c);
    mg_release(c);
  }
  return 0;
}

/* ---- the backward pass ----------------------------------------------------------- */

static int check_finite(mg_node *n, mg_tensor *g, int k) {
  for (int64_t i = 0; i < g->numel; i++) {
    double v = mg_get_flat(g, i);
    if (!isfinite(v))
      return mg_seterr(n->rt, "anomaly: backward of '%s' produced %s in the gradient of its input %d",
                       n->op, isnan(v) ? "NaN" : "Inf", k + 1);
  }
  return 0;
}

int mg_backward(mg_tensor *root, mg_tensor *grad, bool retain_graph) {
  mg_rt *rt = root->rt;
  if (!root->requires_grad)
    return mg_seterr(rt, "backward: the tensor does not require grad and has no grad_fn");
  mg_tensor *g0;
  if (grad) {
    if (!mg_same_shape(grad, root)) {
      char s1[128], s2[128];
      return mg_seterr(rt, "backward: gradient of shape %s does not match the tensor's shape %s",
                       mg_shape_str(grad, s1, sizeof s1), mg_shape_str(root, s2, sizeof s2));
    }
    g0 = mg_retain(grad);
  } else {
    if (root->numel != 1) {
      char s[128];
      return mg_seterr(rt, "backward: grad can be implicitly created only for one-element outputs "
                       "(this tensor has shape %s); pass a gradient tensor", mg_shape_str(root, s, sizeof s));
    }
    g0 = mg_full(rt, root->dtype, root->ndim, root->shape, 1.0);
    if (!g0) return -1;
  }
  if (!root->grad_fn) {  /* a leaf: its gradient is the seed */
    int r = mg_accumulate_grad(root, g0);
    mg_release(g0);
    return r;
  }
  /* count, for each reachable node, how many edges lead into it */
  nodevec all, stack, ready;
  nv_init(&all);
  nv_init(&stack);
  nv_init(&ready);
  push(&stack, root->grad_fn);
  root->grad_fn->deps = 0;
  push(&all, root->grad_fn);
  while (stack.n) {
    mg_node *n = stack.v[--stack.n];
    for (int k = 0; k < n->nin; k++) {
      mg_node *m = n->in[k].node;
      if (!m) continue;
      if (m->deps++ == 0) {  /* first visit */
        push(&stack, m);
        push(&all, m);
      }
    }
  }
  bool prev = rt->grad_enabled;
  rt->grad_enabled = false;
  rt->backward_depth++;
  int status = 0;
  mg_node *rn = root->grad_fn;
  rn->gacc = g0;
  push(&ready, rn);
  while (ready.n && status == 0) {
    mg_node *n = ready.v[--ready.n];
    mg_tensor *g = n->gacc;
    n->gacc = NULL;
    mg_tensor *gin[n->nin ? n->nin : 1];
    memset(gin, 0, sizeof gin);
    if (!g) ;  /* no gradient reached this node: nothing flows through it */
    else if (n->released && n->nsaved)
      status = mg_seterr(rt, "backward: trying to backward through the graph of '%s' a second time "
                         "(its saved tensors were freed; pass retain_graph = true to the first backward)", n->op);
    else status = n->backward(n, g, gin);
    mg_release(g);
    for (int k = 0; k < n->nin && status == 0; k++) {
      mg_edge *e = &n->in[k];
      if (!e->node && !e->leaf) continue;
      if (!gin[k]) continue;  /* no gradient flows to this input */
      if (gin[k]->ndim != e->ndim || memcmp(gin[k]->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
        char s1[128], s2[128];
        status = mg_seterr(rt, "backward: '%s' produced a gradient of shape %s for an input of shape %s (internal error)",
                           n->op, mg_shape_str(gin[k], s1, sizeof s1), mg_dims_str(e->ndim, e->shape, s2, sizeof s2));
        break;
      }
      if (rt->anomaly && check_finite(n, gin[k], k)) { status = -1; break; }
      if (e->leaf) status = mg_accumulate_grad(e->leaf, gin[k]);
      else status = accumulate_node(e->node, gin[k]);
    }
    for (int k = 0; k < n->nin; k++) mg_release(gin[k]);
    if (status) break;
    if (!retain_graph) free_saved(n);
    /* inputs whose every consumer has run are ready */
    for (int k = 0; k < n->nin; k++) {
      mg_node *m = n->in[k].node;
      if (m && --m->deps == 0) push(&ready, m);
    }
  }
  /* on error, or for nodes never reached, clear scratch */
  for (size_t i = 0; i < all.n; i++) {
    all.v[i]->deps = 0;
    if (all.v[i]->gacc) { mg_release(all.v[i]->gacc); all.v[i]->gacc = NULL; }
  }
  rt->backward_depth--;
  rt->grad_enabled = prev;
  nv_free(&all); nv_free(&stack); nv_free(&ready);
  return status;
}

int mg_check_inplace(const char *op, mg_tensor *t, mg_tensor *other) {
  if (!t->rt->grad_enabled) return 0;
  if (t->requires_grad)
    return mg_seterr(t->rt, "%s: in-place operation on a tensor that requires grad "
                     "(use the out-of-place form, or run it inside mg.no_grad)", op);
  if (other && other->requires_grad)
    return mg_seterr(t->rt, "%s: in-place operations are not recorded for autodiff, but the "
                     "argument requires grad (use the out-of-place form, or detach it)", op);
  return 0;
}
