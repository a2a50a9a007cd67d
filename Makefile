# embedd build. `make build` -> bin/embedd, `make test` -> C tests (plain and sanitized) + go vet + go test (and -race), `make run`
# -> serve the bundled model on port 7860, `make bench` -> benchmarks.
#
# The native core is compiled once per instruction set: foo_avx2.c, foo_avxvnni.c, foo_avx512.c, foo_avx512vnni.c
# and foo_neon.c get their ISA's flags and are chosen at run time by CPU detection; everything else is
# plain C11 for the baseline of the architecture. Never -march=native.

GO      ?= go
CC      ?= gcc
ARCH    := $(shell uname -m)
BUILD   := native/build
LIB     := $(BUILD)/libembedd.a

CFLAGS_BASE := -std=c11 -O3 -g -Wall -Wextra -Wno-unused-parameter -Wshadow -fPIC -pthread \
               -fno-math-errno -D_GNU_SOURCE
# The ISA flags of foo_<isa>.c: FLAGS_<isa> (isa_flags below). NEON is part of the arm64 baseline.
FLAGS_avx2       := -mavx2 -mfma -mf16c -mbmi2
FLAGS_avx512     := $(FLAGS_avx2) -mavx512f -mavx512bw -mavx512vl -mavx512dq
FLAGS_avx512vnni := $(FLAGS_avx512) -mavx512vnni
FLAGS_avxvnni    := $(FLAGS_avx2) -mavxvnni
FLAGS_neon       :=

NATIVE_SRC := $(wildcard native/*.c)
ifeq ($(ARCH),x86_64)
  NATIVE_SRC := $(filter-out %_neon.c,$(NATIVE_SRC))
else ifeq ($(ARCH),aarch64)
  NATIVE_SRC := $(filter-out %_avx2.c %_avx512.c %_avx512vnni.c %_avxvnni.c,$(NATIVE_SRC))
else
  NATIVE_SRC := $(filter-out %_neon.c %_avx2.c %_avx512.c %_avx512vnni.c %_avxvnni.c,$(NATIVE_SRC))
endif
NATIVE_OBJ := $(patsubst native/%.c,$(BUILD)/%.o,$(NATIVE_SRC))
NATIVE_HDR := $(wildcard native/*.h)
CTEST_SRC  := $(wildcard native/tests/test_*.c)
CTEST_BIN  := $(patsubst native/tests/%.c,$(BUILD)/tests/%,$(CTEST_SRC))

# cgo does not notice a changed static library; a hash of it in CGO_CFLAGS makes go rebuild.
export CGO_ENABLED := 1
GOENV = CGO_CFLAGS="-O2 -DEMBEDD_LIB=$(shell sha1sum $(LIB) 2>/dev/null | cut -c1-16)"

.PHONY: all build lib run test test-deps test-arm64 bench-native test-c test-c-sanitize test-go test-go-race vet fmt-check bench clean
all: build

lib: $(LIB)

# The ISA flags of a source file, looked up by the last `_` part of its name (foo_avx512vnni.c ->
# FLAGS_avx512vnni); no such variable, so none, for the baseline files (encoder.c, gemm.c, ...).
isa_flags = $(FLAGS_$(lastword $(subst _, ,$(basename $(notdir $(1))))))

$(BUILD)/%.o: native/%.c $(NATIVE_HDR) | $(BUILD)
	$(CC) $(CFLAGS_BASE) $(call isa_flags,$<) -c $< -o $@

$(LIB): $(NATIVE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD):
	mkdir -p $(BUILD)/tests

$(BUILD)/tests/%: native/tests/%.c $(LIB) $(NATIVE_HDR)
	$(CC) $(CFLAGS_BASE) -Inative $< $(LIB) -lm -o $@

# Kernel micro-benchmarks (not tests): `make bench-native`.
BENCH_NATIVE := $(patsubst native/bench/%.c,$(BUILD)/bench/%,$(wildcard native/bench/*.c))
$(BUILD)/bench/%: native/bench/%.c $(LIB) $(NATIVE_HDR)
	@mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS_BASE) -Inative $< $(LIB) -lm -o $@
bench-native: $(BENCH_NATIVE)
	$(BUILD)/bench/bench_gemm

test-c: $(CTEST_BIN)
	@set -e; for t in $(CTEST_BIN); do echo "== $$t"; $$t; done

# The same C tests against a copy of the core built with AddressSanitizer and UndefinedBehaviorSanitizer
# (any finding fails the run): out-of-bounds reads and writes, use after free, overflowing signed
# arithmetic and misaligned loads that the plain tests would pass over.
SAN_BUILD  := native/build-san
SAN_FLAGS  := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_OBJ    := $(patsubst native/%.c,$(SAN_BUILD)/%.o,$(NATIVE_SRC))
SAN_TESTS  := $(patsubst native/tests/%.c,$(SAN_BUILD)/tests/%,$(CTEST_SRC))
$(SAN_BUILD)/%.o: native/%.c $(NATIVE_HDR)
	@mkdir -p $(SAN_BUILD)/tests
	$(CC) $(CFLAGS_BASE) $(SAN_FLAGS) $(call isa_flags,$<) -c $< -o $@
$(SAN_BUILD)/libembedd.a: $(SAN_OBJ)
	rm -f $@
	ar rcs $@ $^
$(SAN_BUILD)/tests/%: native/tests/%.c $(SAN_BUILD)/libembedd.a $(NATIVE_HDR)
	$(CC) $(CFLAGS_BASE) $(SAN_FLAGS) -Inative $< $(SAN_BUILD)/libembedd.a -lm -o $@
test-c-sanitize: $(SAN_TESTS)
	@set -e; for t in $(SAN_TESTS); do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

build: $(LIB)
	@mkdir -p bin
	$(GOENV) $(GO) build -o bin/embedd ./cmd/embedd

run: build
	bin/embedd serve --config models.toml

vet: $(LIB)
	$(GOENV) $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-go: $(LIB)
	$(GOENV) $(GO) test -count=1 ./...

# The packages whose goroutines share state (the HTTP handlers, the model registry and its engine,
# the batcher, the metrics) again under the race detector.
test-go-race: $(LIB)
	$(GOENV) $(GO) test -race -count=1 ./httpapi/ ./registry/... ./batcher/ ./metrics/

test-deps:
	scripts/install-test-deps.sh

# The arm64 build (NEON kernels) cross-compiled and its C tests run under qemu-user.
test-arm64:
	scripts/test-arm64.sh

ifeq ($(ARCH),x86_64)
TEST_CROSS := test-arm64
endif
test: test-deps test-c test-c-sanitize $(TEST_CROSS) vet fmt-check test-go test-go-race

bench: build $(BUILD)/bench/bench_host
	scripts/bench.sh

clean:
	rm -rf $(BUILD) $(SAN_BUILD) bin
