/* embed_sandbox.c — what a sandboxed runtime withholds from scripts, and what
** it still offers (require("moongrad"), text load, os.clock). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tap.h"
#include "moongrad.h"

/* run code; expect status st and, if part is not NULL, the message to contain it */
static void expect(mg_runtime *R, const char *code, mg_status st, const char *part, const char *name) {
  mg_status got = mg_run_string(R, code);
  ok(got == st, "%s", name);
  if (got != st) diag("  status %d, want %d: %s", (int)got, (int)st, mg_last_error(R));
  if (part && got == st) like(mg_last_error(R), part, "  ... message mentions the reason");
}

int main(void) {
  char err[256];
  /* a real Lua module file next to a real plugin path, to be sure they exist */
  char dir[] = "/tmp/mg_sandboxXXXXXX";
  ok(mkdtemp(dir) != NULL, "temp dir");
  char mod[300];
  snprintf(mod, sizeof mod, "%s/evil.lua", dir);
  FILE *f = fopen(mod, "w");
  fputs("pwned = true\nreturn {}\n", f);
  fclose(f);

  mg_config cfg;
  mg_config_init(&cfg);
  cfg.sandbox = true;
  mg_runtime *R = mg_open(&cfg, err, sizeof err);
  ok(R != NULL, "open a sandboxed runtime");
  if (!R) { diag("%s", err); return done_testing(); }
  char code[1024];

  expect(R, "local mg = require('moongrad'); x = mg.ones(3) * 2; assert(x:sum():item() == 6)", MG_OK, NULL,
         "require('moongrad') works and tensors work");
  expect(R, "local mg = require('moongrad'); assert(mg.nn and mg.nn.Linear)", MG_OK, NULL, "compiled-in modules are there");
  expect(R, "assert(io == nil)", MG_OK, NULL, "io is withheld");
  expect(R, "io.open('/etc/passwd')", MG_ERR_RUN, "global 'io'", "io.open fails");
  expect(R, "os.execute('true')", MG_ERR_RUN, "field 'execute'", "os.execute fails");
  expect(R, "assert(os.exit == nil and os.getenv == nil and os.remove == nil)", MG_OK, NULL, "os.exit/getenv/remove withheld");
  expect(R, "assert(type(os.clock()) == 'number' and type(os.time()) == 'number')", MG_OK, NULL, "os.clock and os.time remain");
  expect(R, "assert(package == nil and debug == nil)", MG_OK, NULL, "package and debug are withheld");
  snprintf(code, sizeof code, "package = {path = '%s/?.lua'}; require('evil')", dir);
  expect(R, code, MG_ERR_RUN, "not available in the sandbox", "require of a Lua file fails");
  expect(R, "assert(pwned == nil)", MG_OK, NULL, "the file did not run");
  snprintf(code, sizeof code, "dofile('%s')", mod);
  expect(R, code, MG_ERR_RUN, "global 'dofile'", "dofile is withheld");
  snprintf(code, sizeof code, "loadfile('%s')", mod);
  expect(R, code, MG_ERR_RUN, "global 'loadfile'", "loadfile is withheld");
  expect(R, "local f, e = load(string.dump(function() return 1 end)); assert(f == nil); error(e)", MG_ERR_RUN,
         "binary chunks are not allowed", "load of a binary chunk fails");
  expect(R, "local f, e = load(string.dump(function() return 1 end), 'x', 'b'); assert(f == nil); error(e)",
         MG_ERR_RUN, "binary chunks are not allowed", "even with mode 'b'");
  expect(R, "local parts = {string.dump(function() return 1 end)}; local i = 0\n"
            "local f, e = load(function() i = i + 1; return parts[i] end); assert(f == nil); error(e)",
         MG_ERR_RUN, "binary chunk", "a binary chunk through a reader function fails");
  expect(R, "local f = load('return 1 + 1'); assert(f() == 2)", MG_OK, NULL, "load of source text works");
  expect(R, "local env = {y = 5}; local f = load('return y', 'c', 't', env); assert(f() == 5)", MG_OK, NULL,
         "load with an environment works");
  expect(R, "local mg = require('moongrad'); mg.load_plugin('/tmp/x.so')", MG_ERR_RUN, "disabled by the host",
         "mg.load_plugin fails");
  expect(R, "local mg = require('moongrad'); mg.add_plugin_dir('/tmp')", MG_ERR_RUN, "disabled by the host",
         "mg.add_plugin_dir fails");
  snprintf(code, sizeof code, "local mg = require('moongrad'); mg.save('%s/x.safetensors', {a = mg.ones(2)})", dir);
  expect(R, code, MG_ERR_RUN, "sandbox", "mg.save (file access) fails");
  snprintf(code, sizeof code, "local mg = require('moongrad'); mg.load('%s/x.safetensors')", dir);
  expect(R, code, MG_ERR_RUN, "sandbox", "mg.load (file access) fails");
  snprintf(code, sizeof code, "%s/x.safetensors", dir);
  ok(access(code, F_OK) != 0, "no file was written");
  expect(R, "local mg = require('moongrad'); mg.data.csv('/etc/passwd')", MG_ERR_RUN, "sandbox", "mg.data.csv fails");
  expect(R, "local mg = require('moongrad'); mg.data.idx('/etc/passwd')", MG_ERR_RUN, "sandbox", "mg.data.idx fails");
  expect(R, "local mg = require('moongrad'); mg.util.Logger('/tmp/x.csv')", MG_ERR_RUN, "sandbox", "mg.util.Logger fails");
  expect(R, "local mg = require('moongrad'); assert(mg._idx == nil and mg._csv == nil)", MG_OK, NULL, "no raw readers left");
  expect(R, "local mg = require('moongrad'); local lines, saved = {}, print\n"
            "print = function(...) lines[#lines + 1] = table.concat({...}, '\\t') end\n"
            "local ok, e = pcall(function() local b = mg.util.progress(2, {label = 'sb'}); b:advance(); b:advance() end)\n"
            "print = saved; assert(ok, e)\n"
            "assert(lines[#lines] and lines[#lines]:find('^sb 100%% 2/2'), tostring(lines[#lines]))",
         MG_OK, NULL, "mg.util.progress works without io (its lines go through print)");

  /* a sandboxed run_file accepts source but not precompiled chunks */
  char bin[300];
  snprintf(bin, sizeof bin, "%s/bin.luac", dir);
  mg_runtime *U = mg_open(NULL, err, sizeof err);  /* an unrestricted runtime writes a binary chunk */
  snprintf(code, sizeof code, "local f = io.open('%s', 'wb'); f:write(string.dump(function() pwned = 1 end)); f:close()", bin);
  ok(mg_run_string(U, code) == MG_OK, "an unsandboxed runtime has io");
  ok(mg_run_file(U, bin, 0, NULL) == MG_OK, "and runs a binary chunk file");
  mg_close(U);
  ok(mg_run_file(R, bin, 0, NULL) != MG_OK, "the sandbox refuses a binary chunk file");
  like(mg_last_error(R), "binary", "message");
  ok(mg_run_file(R, mod, 0, NULL) == MG_OK, "the host may still run a source file in the sandbox");

  mg_close(R);

  /* without the sandbox, allow_plugin_load = false still blocks script-side loading */
  mg_config_init(&cfg);
  cfg.allow_plugin_load = false;
  R = mg_open(&cfg, err, sizeof err);
  expect(R, "local mg = require('moongrad'); mg.load_plugin('/tmp/x.so')", MG_ERR_RUN, "disabled by the host",
         "allow_plugin_load = false: mg.load_plugin fails");
  expect(R, "assert(io and os.getenv and package)", MG_OK, NULL, "but io, os and package are there");
  expect(R, "local mg = require('moongrad'); assert(#mg.plugins() > 0)", MG_OK, NULL, "built-in plugins still load");
  mg_close(R);

  unlink(mod);
  unlink(bin);
  rmdir(dir);
  return done_testing();
}
