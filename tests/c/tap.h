/*
** tap.h — a minimal TAP producer for C tests.
**   plan(n) or done_testing() at the end;
**   ok(cond, fmt, ...), is_num(got, want, tol, name), is_str(got, want, name), diag(fmt, ...);
**   tap_capture(cmd, out, outlen) runs a shell command for tests of programs.
** Exit status is the number of failures (capped at 254), as prove expects.
*/
#ifndef TAP_H
#define TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_fail;

static inline void diag(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("# ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
}

static inline int ok(int cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
  if (!cond) tap_fail++;
  fflush(stdout);
  return cond;
}

static inline int is_num(double got, double want, double tol, const char *name) {
  int c = fabs(got - want) <= tol || (isnan(got) && isnan(want));
  ok(c, "%s", name);
  if (!c) diag("  got %.10g, want %.10g (tol %g)", got, want, tol);
  return c;
}

static inline int is_str(const char *got, const char *want, const char *name) {
  int c = got && want && !strcmp(got, want);
  ok(c, "%s", name);
  if (!c) diag("  got '%s', want '%s'", got ? got : "(null)", want ? want : "(null)");
  return c;
}

/* substring match, for error messages */
static inline int like(const char *got, const char *part, const char *name) {
  int c = got && strstr(got, part) != NULL;
  ok(c, "%s", name);
  if (!c) diag("  '%s' does not contain '%s'", got ? got : "(null)", part);
  return c;
}

/* run cmd through the shell, its standard output into out (NUL-terminated);
** returns the wait status (WIFEXITED, WEXITSTATUS, ...), or -1 */
static inline int tap_capture(const char *cmd, char *out, size_t outlen) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = fread(out, 1, outlen - 1, p);
  out[n] = 0;
  return pclose(p);
}

static inline int done_testing(void) {
  printf("1..%d\n", tap_n);
  return tap_fail > 254 ? 254 : tap_fail;
}
#endif
