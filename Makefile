# Top-level build. `make` builds everything into build/; `make test` runs the
# whole suite (plain, ASan+UBSan, TSan); `make demo` runs the demo.
# See README.md for all targets.

VERSION		:= $(shell cat VERSION)
B		?= build
SAN		?=
CC		?= cc
OPT		?= -O2
CFLAGS_BASE	:= -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror \
		   -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
		   -DMUX_VERSION='"$(VERSION)"'
INC		:= -I$(B)/gen -Iproto -Ivmci_shim -Imux -Itools/common
PKGS		:= libevent libevent_openssl libevent_pthreads libprotobuf-c openssl inih
PKG_CFLAGS	= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ifeq ($(STATIC),1)
# Fully static binaries (ESXi, the QEMU guest): nothing loaded at run time.
PKG_LIBS	= -Wl,--start-group $(shell pkg-config --static --libs $(PKGS) 2>/dev/null) -Wl,--end-group
LDFLAGS		+= -static
else
PKG_LIBS	= $(shell pkg-config --libs $(PKGS) 2>/dev/null)
endif
CFLAGS		:= $(CFLAGS_BASE) $(SAN) $(INC) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS		+= $(SAN)
LIBS		= $(PKG_LIBS) -lpthread -lm
TEST_LIBS	= $(LIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

PROTO_SRC	:= proto/frame.c proto/frame_ev.c proto/wire.c
SHIM_SRC	:= $(wildcard vmci_shim/*.c)
MUX_SRC		:= $(filter-out mux/main.c,$(wildcard mux/*.c))
TOOLS		:= muxctl mux-loadgen mux-svm mux-vibcheck
# Per-tool libraries (packaging): the VIB verifier gunzips with zlib.
mux-vibcheck_LIBS = $(shell pkg-config $(if $(filter 1,$(STATIC)),--static) --libs zlib 2>/dev/null)
TOOL_COMMON	:= $(wildcard tools/common/*.c)

GEN_C		:= $(B)/gen/mux.pb-c.c
GEN_H		:= $(B)/gen/mux.pb-c.h
obj		= $(patsubst %.c,$(B)/obj/%.o,$(1))
# `make V=1` shows the full commands.
ifeq ($(V),1)
Q		:=
say		= @true
else
Q		:= @
say		= @printf '  %-6s %s\n'
endif

PROTO_OBJ	:= $(call obj,$(PROTO_SRC)) $(B)/obj/gen/mux.pb-c.o
SHIM_OBJ	:= $(call obj,$(SHIM_SRC))
MUX_OBJ		:= $(call obj,$(MUX_SRC))
COMMON_OBJ	:= $(call obj,$(TOOL_COMMON))

UNIT_SRC	:= $(wildcard tests/unit/test_*.c)
UNIT_BIN	:= $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
E2E_SRC		:= $(wildcard tests/e2e/test_*.c)
E2E_BIN		:= $(patsubst tests/e2e/%.c,$(B)/e2e/%,$(E2E_SRC))

.SECONDARY:
.PHONY: all deps test test-unit test-e2e test-asan test-tsan demo clean vib \
	soak bench fuzz static bundle install test-vib test-vsock bench-vsock mutants
all: $(B)/bin/muxd $(addprefix $(B)/bin/,$(TOOLS)) $(UNIT_BIN) $(E2E_BIN)

deps:
	@sh tools/deps.sh

$(GEN_C) $(GEN_H): proto/mux.proto
	@mkdir -p $(B)/gen
	$(say) PROTOC $<
	$(Q)protoc-c --proto_path=proto --c_out=$(B)/gen proto/mux.proto

$(B)/obj/gen/mux.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(B)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# libmuxwire: what both ends share (schemas, framing, transports).
$(B)/lib/libmuxwire.a: $(PROTO_OBJ) $(SHIM_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcD $@ $^

# libmuxd: the daemon's subsystems, linked by muxd and its unit tests.
$(B)/lib/libmuxd.a: $(MUX_OBJ)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcD $@ $^

$(B)/bin/muxd: $(B)/obj/mux/main.o $(B)/lib/libmuxd.a $(B)/lib/libmuxwire.a
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

define tool_rule
$(B)/bin/$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/$(1)/*.c)) $(B)/lib/libmuxwire.a
	@mkdir -p $$(dir $$@)
	$$(say) LD $$@
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LIBS) $$($(1)_LIBS)
endef
$(foreach t,$(TOOLS),$(eval $(call tool_rule,$(t))))

$(B)/tests/%: tests/unit/%.c $(B)/lib/libmuxd.a $(B)/lib/libmuxwire.a
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

$(B)/e2e/%: tests/e2e/%.c $(B)/obj/tests/e2e/harness.o $(B)/lib/libmuxwire.a
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) -Itests/e2e $(LDFLAGS) -o $@ $^ $(TEST_LIBS)

test-unit: all
	@sh tests/run-unit.sh $(B)

test-e2e: all
	@sh tests/e2e/run.sh $(B)

test-asan:
	$(MAKE) --no-print-directory B=build/asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  sh tests/run-unit.sh build/asan && MUX_SANITIZED=1 sh tests/e2e/run.sh build/asan

test-tsan:
	$(MAKE) --no-print-directory B=build/tsan OPT=-O1 SAN="-fsanitize=thread" all
	@TSAN_OPTIONS=halt_on_error=1 sh tests/run-unit.sh build/tsan test_ring test_mbox
	@# The daemon's three threads under load, ThreadSanitizer watching.
	@MUX_SANITIZED=1 sh tests/e2e/run.sh build/tsan test_fanout test_verdicts

test: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-e2e
	$(MAKE) --no-print-directory test-vib
	$(MAKE) --no-print-directory test-vsock
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan
	@echo "make test: all suites passed"

# Static muxd, muxctl and tools in build/static/bin (for the VIB and the
# vsock guest). Warnings about getaddrinfo in static glibc are expected:
# muxd resolves only numeric SVM addresses there.
static:
	$(MAKE) --no-print-directory B=build/static STATIC=1 build/static/bin/muxd \
	    $(addprefix build/static/bin/,$(TOOLS))

# Long run, outside `make test`: each mutant must be caught by its test.
mutants:
	@sh tests/mutants.sh

# Events/s through muxd to one SVM, everything on this machine.
bench-throughput: all
	@sh tools/bench-throughput.sh $(B)

# muxd's CPU instructions per event under callgrind (repeatable figure).
bench-cost: all
	@sh tools/bench-cost.sh $(B)

# Calm VMs' verdict latency with and without one VM flooding (docs/return-path.md).
bench-flood: all
	@sh tools/bench-flood.sh $(B)

# Real AF_VSOCK: a QEMU guest with vsock_loopback runs the e2e tests listed
# in tests/vsock/guest-tests over the vsock backend (docs/vsock.md). The
# kernel comes from Debian's cloud kernel package, cached in build/vsock.
test-vsock: all static
	@B=$(B) sh tests/vsock/run.sh test

# vsock against unix throughput inside the guest; not part of `make test`.
bench-vsock: static
	@B=$(B) sh tests/vsock/run.sh bench

# --- Packaging (vib/, tests/vib/, docs/install.md) ---------------------------
# make vib: build/muxd-VERSION-BUILD.HASH.vib from the static binaries
# (VIB_KEY=key.pem VIB_CERT=cert.pem signs descriptor.xml); make bundle: the
# offline bundle beside it; make install: muxd, the tools, the systemd unit
# and the example configuration under DESTDIR and PREFIX; make test-vib:
# the packaging tests.
PREFIX		?= /usr/local
vib: static
	@VIB_KEY="$(VIB_KEY)" VIB_CERT="$(VIB_CERT)" sh vib/mkvib.sh build/static/bin build >build/vib.last
	@echo "  VIB    $$(cat build/vib.last)"

bundle: vib
	@sh vib/mkbundle.sh "$$(cat build/vib.last)" build >build/bundle.last
	@echo "  BUNDLE $$(cat build/bundle.last)"

install: all
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" sh vib/install-linux.sh $(B)/bin

test-vib: all static
	@sh tests/vib/run.sh $(B) build/static/bin
# --- end of packaging ---------------------------------------------------------

demo: deps all
	@sh tools/demo.sh $(B)

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
