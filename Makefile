# tether build. `make run` and `make test` are the two commands a newcomer needs (see README).
# Plugins are the directories under plugins/; each defines `const struct plugin <dir>_plugin`.

BUILD    ?= build
CC       ?= gcc
PKGS      = libevent libevent_openssl libssl libcrypto libcurl jansson libpq hiredis yaml-0.1 libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -Wno-missing-field-initializers -Wstrict-prototypes -Wformat=2 -fno-strict-aliasing \
            -I daemon -I $(BUILD) $(PKG_CFLAGS)
LDFLAGS  ?=
ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# A directory under plugins/ is a plugin once one of its files defines `const struct plugin <dir>_plugin`.
PLUGIN_DIRS := $(sort $(foreach d,$(patsubst plugins/%/,%,$(wildcard plugins/*/)),\
                 $(if $(shell grep -ls 'const struct plugin $(d)_plugin' plugins/$(d)/*.c 2>/dev/null),$(d))))
DAEMON_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
PLUGIN_SRC  := $(wildcard plugins/*/*.c)
LIB_OBJ     := $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRC) $(PLUGIN_SRC)) $(BUILD)/obj/plugins.o
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
PYTEST      := /usr/bin/python3 -m pytest

.PHONY: all deps run stop test unit integration asan asan-test clean format format-check \
        check-reference reference systemd-verify

all: $(BUILD)/tetherd

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The static plugin table, regenerated when the set of plugin directories changes.
$(BUILD)/plugins.c: scripts/gen-plugins.sh FORCE | $(BUILD)
	@scripts/gen-plugins.sh $(PLUGIN_DIRS) > $@.tmp && (cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@)
FORCE:
# The version string (git describe), rewritten only when it changes, so that --version, the
# ready log line and the User-Agent follow the tree without rebuilding more than its users.
$(BUILD)/version.h: FORCE | $(BUILD)
	@printf '#define TETHER_VERSION "%s"\n' '$(VERSION)' > $@.tmp && (cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@)
$(LIB_OBJ) $(BUILD)/obj/daemon/main.o: | $(BUILD)/version.h
$(BUILD)/obj/plugins.o: $(BUILD)/plugins.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(BUILD):
	@mkdir -p $@

$(BUILD)/libtether.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tetherd: $(BUILD)/obj/daemon/main.o $(BUILD)/libtether.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(wildcard tests/unit/*.h) $(BUILD)/libtether.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I tests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libtether.a $(PKG_LIBS)

unit: $(UNIT_BIN)
	@tests/unit/run.sh $(UNIT_BIN)

integration: $(BUILD)/tetherd
	TETHERD=$(abspath $(BUILD)/tetherd) $(PYTEST) -q tests/integration $(PYTEST_ARGS)

# Everything, from a fresh machine: install, build, unit tests, checks, integration tests.
test: deps
	$(MAKE) all unit
	$(MAKE) check-reference systemd-verify
	$(MAKE) integration

# AddressSanitizer + UBSan build; the integration suite runs against it.
asan: deps
	$(MAKE) BUILD=build-asan SAN=1 all unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) BUILD=build-asan SAN=1 integration

# config/tether.yaml is generated from the config tables; the check keeps it true.
reference: $(BUILD)/tetherd
	$(BUILD)/tetherd --print-reference-config > config/tether.yaml
check-reference: $(BUILD)/tetherd
	@$(BUILD)/tetherd --print-reference-config | diff -u config/tether.yaml - \
	  || { echo "config/tether.yaml is out of date: run 'make reference'"; exit 1; }

systemd-verify:
	@scripts/systemd-verify.sh

# Local dev stack (PostgreSQL, Redis, Pub/Sub emulator, fakes) under .dev/, tetherd in front.
run: deps all
	scripts/devstack.sh start
	TETHER_DEV_DIR=$(abspath .dev) exec $(BUILD)/tetherd -c config/dev.yaml

stop:
	scripts/devstack.sh stop

# clang-format (.clang-format) on the C lines changed since BASE (default HEAD: the uncommitted
# ones), not on whole files: the tree was formatted by hand before the config existed, and
# clang-format 14 lays out some of its tables worse than they are. `make format-check
# BASE=<commit>` checks a branch's changes.
BASE ?= HEAD
format:
	@git clang-format --force --quiet --extensions c,h $(BASE) >/dev/null || true
	@git clang-format --diff --extensions c,h $(BASE) | grep -q '^diff --git' \
	  && { echo "format: clang-format failed on some lines" >&2; exit 1; } || true
format-check:
	@out=$$(git clang-format --diff --extensions c,h $(BASE)); \
	if printf '%s\n' "$$out" | grep -q '^diff --git'; then \
	  printf '%s\n' "$$out"; echo "format-check: the lines above differ from .clang-format (make format BASE=$(BASE))"; exit 1; \
	fi; echo "format-check: the C lines changed since $(BASE) follow .clang-format"

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
