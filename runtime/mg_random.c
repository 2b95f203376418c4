/*
** mg_random.c — one random stream per runtime: xoshiro256** seeded through
** splitmix64. Tensors are filled sequentially in row-major order, so the same
** seed gives the same numbers whatever the thread count.
*/
#include <math.h>
#include "mg_core.h"
#include "mg_iter.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void mg_manual_seed(mg_rt *rt, uint64_t seed) {
  for (int i = 0; i < 4; i++) rt->rng[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mg_rand_u64(mg_rt *rt) {
  uint64_t *s = rt->rng;
  uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
  s[2] ^= t; s[3] = rotl(s[3], 45);
  return r;
}

double mg_rand_uniform(mg_rt *rt) { return (double)(mg_rand_u64(rt) >> 11) * 0x1.0p-53; }

double mg_rand_normal(mg_rt *rt) {  /* Box-Muller; one draw per call keeps streams simple */
  double u1 = mg_rand_uniform(rt), u2 = mg_rand_uniform(rt);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

/* fill t (any strides) with draws from gen, in row-major order */
static int fill_random(mg_tensor *t, const char *op, double a, double b, int normal) {
  if (mg_check_alive(t, op) || mg_check_inplace(op, t, NULL)) return -1;
  mg_rt *rt = t->rt;
  for (int64_t i = 0; i < t->numel; i++) {
    double v = normal ? a + b * mg_rand_normal(rt) : a + (b - a) * mg_rand_uniform(rt);
    int64_t off = 0, r = i;
    for (int d = t->ndim - 1; d >= 0; d--) { off += (r % t->shape[d]) * t->stride[d]; r /= t->shape[d]; }
    if (t->dtype == MG_F32) {
      float f = (float)v;
      if (!normal && f >= (float)b && b > a) f = nextafterf((float)b, (float)a);  /* keep [a, b) */
      mg_f32(t)[off] = f;
    } else mg_f64(t)[off] = v;
  }
  mg_bump_version(t);
  return 0;
}

int mg_uniform_(mg_tensor *t, double a, double b) { return fill_random(t, "uniform_", a, b, 0); }
int mg_normal_(mg_tensor *t, double mean, double std) { return fill_random(t, "normal_", mean, std, 1); }
