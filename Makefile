# moongrad — build, test, install.
#   make            build the runtime, runner, Lua module and plugins into $(BUILD)/
#   make test       build and run every TAP test with prove
#   make demo       train the Fashion-MNIST MLP (installs its dependencies first)
#   make bench      benchmarks, side by side with PyTorch when python3-torch is installed
#   make install PREFIX=/usr/local
# Several builds can share the tree: `make BUILD=build-asan ...` keeps objects apart.

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= cc
OPT     ?= -O2 -g -ftree-vectorize
PKGS    := lua5.4 openblas libcjson zlib
VERSION := 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
OTHER_LIBS := $(filter-out $(LUA_LIBS),$(PKG_LIBS))

CFLAGS   ?=
CFLAGS   += -std=c11 $(OPT) -Wall -Wextra -fPIC -fvisibility=hidden $(XCFLAGS)
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Iruntime -I$(BUILD) $(PKG_CFLAGS) \
            -DMG_VERSION=\"$(VERSION)\" -DMG_PLUGIN_DIR=\"$(PREFIX)/lib/moongrad/plugins\"
LDFLAGS  += $(XLDFLAGS)
LIBS     := $(PKG_LIBS) -lm -ldl -lpthread

# Plugins are built exactly as a third party would build one: the SDK header and nothing else.
PLUGIN_CFLAGS := -std=c11 -O3 -Wall -Wextra -fPIC -shared -Iinclude $(XCFLAGS)

RT_SRC   := $(filter-out runtime/main.c,$(wildcard runtime/*.c))
RT_OBJ   := $(RT_SRC:runtime/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/modules_blob.o
PLUGINS  := $(patsubst plugins/%.c,$(BUILD)/plugins/%.so,$(wildcard plugins/*.c))
CTESTS   := $(patsubst tests/c/%.c,$(BUILD)/tests/%.t,$(wildcard tests/c/*.c))
MODULES  := $(wildcard modules/*.lua)

all: $(BUILD)/libmoongrad.a $(BUILD)/libmoongrad.so $(BUILD)/moongrad \
     $(BUILD)/lua/moongrad.so $(PLUGINS)

$(BUILD)/obj/%.o: runtime/%.c $(wildcard runtime/*.h) $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The Lua modules are compiled into the library, so `require("moongrad")` needs no search path.
$(BUILD)/modules_blob.c: $(MODULES) tools/embed.lua | $(BUILD)/obj
	lua5.4 tools/embed.lua $@ $(MODULES)
$(BUILD)/obj/modules_blob.o: $(BUILD)/modules_blob.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libmoongrad.a: $(RT_OBJ)
	rm -f $@; ar rcs $@ $^
$(BUILD)/libmoongrad.so: $(RT_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libmoongrad.so.0 -o $@ $^ $(LIBS)
# The runner: a thin main() over the static library.
$(BUILD)/moongrad: runtime/main.c $(BUILD)/libmoongrad.a
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmoongrad.a $(LIBS)
# The module for a stock lua5.4 interpreter (Lua symbols come from the interpreter).
$(BUILD)/lua/moongrad.so: $(RT_OBJ) | $(BUILD)/lua
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(OTHER_LIBS) -lm -ldl -lpthread

$(BUILD)/plugins/%.so: plugins/%.c include/moongrad_plugin.h Makefile | $(BUILD)/plugins
	$(CC) $(PLUGIN_CFLAGS) -o $@ $<

$(BUILD)/tests/%.t: tests/c/%.c tests/c/tap.h $(BUILD)/libmoongrad.a | $(BUILD)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/c $(LDFLAGS) -o $@ $< $(BUILD)/libmoongrad.a $(LIBS)

$(BUILD)/obj $(BUILD)/lua $(BUILD)/plugins $(BUILD)/tests:
	mkdir -p $@

# ---- tests -------------------------------------------------------------------
deps:
	@sh tools/deps.sh build

test: deps all $(CTESTS)
	MG_BUILD=$(BUILD) prove --exec tools/run-test $(PROVE_FLAGS) $(CTESTS) tests/lua/*.lua

# The whole suite under AddressSanitizer + UBSan, plus float-cast-overflow (a NaN or huge double
# converted to an integer size or index), every report fatal (own build dir: ASAN_BUILD).
ASAN_BUILD ?= build-asan
# The flags go through the environment so makes started by tests (embed_install) inherit them.
check-asan:
	ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 OPT="-O1 -g" \
	  XCFLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  XLDFLAGS="-fsanitize=address,undefined,float-cast-overflow" $(MAKE) BUILD=$(ASAN_BUILD) test

# The threaded tests under ThreadSanitizer (the worker pool, conv2d and pooling chunks, two
# runtimes training in two threads, plugin loading from both), every report fatal.
TSAN_BUILD ?= build-tsan
TSAN_TESTS ?= $(TSAN_BUILD)/tests/embed_threads.t tests/lua/threads_kernels.lua
check-tsan:
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 OPT="-O1 -g" XCFLAGS="-fsanitize=thread" XLDFLAGS="-fsanitize=thread" \
	  $(MAKE) BUILD=$(TSAN_BUILD) deps all $(TSAN_BUILD)/tests/embed_threads.t
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 MG_BUILD=$(TSAN_BUILD) prove --exec tools/run-test $(PROVE_FLAGS) $(TSAN_TESTS)
.PHONY: check-tsan

# The C tests under valgrind: no memory errors and no definite leaks. VG_PROGS may name more
# programs to run the same way (e.g. an embedding example), VG_LUA Lua tests under the runner
# (by default the misuse corpus: error paths are where leaks hide).
VG_LUA ?= $(wildcard tests/lua/misuse*.lua)
VALGRIND ?= valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --show-leak-kinds=definite
check-valgrind: deps all $(CTESTS) $(VG_PROGS)
	@command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
	$(if $(CTESTS)$(VG_PROGS),OPENBLAS_NUM_THREADS=1 MG_BUILD=$(BUILD) prove --exec '$(VALGRIND)' $(PROVE_FLAGS) $(CTESTS) $(VG_PROGS))
	$(if $(VG_LUA),OPENBLAS_NUM_THREADS=1 MG_BUILD=$(BUILD) prove --exec '$(VALGRIND) $(BUILD)/moongrad' $(PROVE_FLAGS) $(VG_LUA))

demo: deps all
	@sh tools/deps.sh data
	$(BUILD)/moongrad scripts/fashion_mnist.lua

# Benchmarks, side by side with PyTorch (bench/run.lua; table also in bench/results.md).
bench: deps all
	@sh tools/deps.sh bench
	@sh tools/deps.sh data
	lua5.4 bench/run.lua $(BUILD)

clean:
	rm -rf build build-*

.PHONY: all deps test check-asan demo bench clean

# ---- fuzzing the file readers with libFuzzer (tests/fuzz/); needs clang -------
# Seeds and regression inputs: tests/fuzz/corpus/<target>/ (replayed by tests/c/io_fuzz_replay.c).
FUZZ_TIME ?= 60
FUZZ_CC   ?= clang
fuzz:
	@mkdir -p $(BUILD)/fuzz
	@set -e; for t in safetensors idx csv; do \
	  $(FUZZ_CC) -std=c11 -g -O1 -D_GNU_SOURCE -Iruntime $$(pkg-config --cflags libcjson zlib) \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $(BUILD)/fuzz/fuzz_$$t \
	    tests/fuzz/fuzz_$$t.c runtime/mg_safetensors.c runtime/mg_data.c $$(pkg-config --libs libcjson zlib); \
	  mkdir -p $(BUILD)/fuzz/$$t; \
	  $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -max_len=8192 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/$$t- $(BUILD)/fuzz/$$t tests/fuzz/corpus/$$t; \
	done
.PHONY: fuzz

# ---- install, pkg-config, the embedding example ----------------------------------
# make install PREFIX=/opt/moongrad [DESTDIR=/tmp/stage]
#   bin/moongrad, lib/libmoongrad.{so,a}, lib/pkgconfig/moongrad.pc, include/moongrad*.h,
#   lib/moongrad/plugins/*.so, lib/lua/5.4/moongrad.so (for a stock lua5.4),
#   share/lua/5.4/moongrad/*.lua (the compiled-in modules, for reading), share/doc/moongrad/.
# An installed runtime also finds <prefix>/lib/moongrad/plugins when the tree was moved or
# installed to another PREFIX than the one it was built with (builtin_dir in runtime/mg_plugin.c).
DESTDIR ?=
INST     = $(DESTDIR)$(PREFIX)
$(BUILD)/moongrad.pc: FORCE | $(BUILD)/obj
	@printf '%s\n' 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' 'plugindir=$${libdir}/moongrad/plugins' '' \
	  'Name: moongrad' 'Description: train neural networks from Lua 5.4 scripts; embedding API' \
	  'Version: $(VERSION)' 'Requires.private: $(PKGS)' 'Libs: -L$${libdir} -lmoongrad' \
	  'Libs.private: -lm -ldl -lpthread' 'Cflags: -I$${includedir}' > $@
install: all $(BUILD)/moongrad.pc
	install -d $(INST)/bin $(INST)/include $(INST)/lib/pkgconfig $(INST)/lib/moongrad/plugins \
	  $(INST)/lib/lua/5.4 $(INST)/share/lua/5.4/moongrad $(INST)/share/doc/moongrad/examples/embed
	install -m 755 $(BUILD)/moongrad $(INST)/bin/moongrad
	install -m 755 $(BUILD)/libmoongrad.so $(INST)/lib/libmoongrad.so.$(VERSION)
	ln -sf libmoongrad.so.$(VERSION) $(INST)/lib/libmoongrad.so.0
	ln -sf libmoongrad.so.0 $(INST)/lib/libmoongrad.so
	install -m 644 $(BUILD)/libmoongrad.a $(INST)/lib/libmoongrad.a
	install -m 644 $(BUILD)/moongrad.pc $(INST)/lib/pkgconfig/moongrad.pc
	install -m 644 include/moongrad.h include/moongrad_plugin.h $(INST)/include/
	install -m 755 $(PLUGINS) $(INST)/lib/moongrad/plugins/
	install -m 755 $(BUILD)/lua/moongrad.so $(INST)/lib/lua/5.4/moongrad.so
	install -m 644 $(MODULES) $(INST)/share/lua/5.4/moongrad/
	install -m 644 $(wildcard docs/*.md README.md) $(INST)/share/doc/moongrad/
	install -m 644 $(wildcard examples/embed/*) $(INST)/share/doc/moongrad/examples/embed/

# The embedding example, built exactly as docs/embedding.md says: against an installed tree
# ($(BUILD)/embed-install), with pkg-config. `make embed-example` builds and runs it;
# `make check-valgrind` also runs it under valgrind (no errors, no leaks).
EMBED_PREFIX := $(abspath $(BUILD))/embed-install
EMBED_PC     := PKG_CONFIG_PATH=$(EMBED_PREFIX)/lib/pkgconfig
EMBED_VALGRIND ?= valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
                  --show-leak-kinds=definite,indirect
$(BUILD)/embed-host: examples/embed/host.c all FORCE
	@$(MAKE) --no-print-directory -s BUILD=$(BUILD) PREFIX=$(EMBED_PREFIX) DESTDIR= install >/dev/null
	$(EMBED_PC) sh -c 'cc -std=c11 -O2 -Wall -Wextra -o $@ examples/embed/host.c $$(pkg-config --cflags --libs moongrad) -lm \
	  -Wl,-rpath,$$(pkg-config --variable=libdir moongrad)'
embed-example: $(BUILD)/embed-host
	$(BUILD)/embed-host
check-valgrind-embed: $(BUILD)/embed-host $(filter $(BUILD)/tests/embed_%,$(CTESTS))
	@command -v valgrind >/dev/null || { echo "check-valgrind: valgrind is not installed (apt-get install valgrind)"; exit 1; }
	OPENBLAS_NUM_THREADS=1 $(EMBED_VALGRIND) $(BUILD)/embed-host
	@set -e; for t in basic wrap sandbox limits; do echo "valgrind $(BUILD)/tests/embed_$$t.t"; \
	  OPENBLAS_NUM_THREADS=1 MG_BUILD=$(BUILD) $(EMBED_VALGRIND) $(BUILD)/tests/embed_$$t.t >/dev/null; done
check-valgrind: check-valgrind-embed
FORCE:
.PHONY: install embed-example check-valgrind-embed check-valgrind FORCE
