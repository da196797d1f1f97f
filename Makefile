# The two commands of the README: 'make demo' and 'make test'. Both do all set-up first
# (Debian packages, a free-threaded python), quickly when it is already done.
BUILD ?= build
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local

.PHONY: all setup build demo test install bench clean

all: build

# scripts/setup.sh prints the free-threaded python it found or built; the build remembers it.
setup:
	@mkdir -p $(BUILD)
	@scripts/setup.sh > $(BUILD)/.python.new
	@tail -1 $(BUILD)/.python.new > $(BUILD)/.python.tmp && rm -f $(BUILD)/.python.new
	@cmp -s $(BUILD)/.python.tmp $(BUILD)/python-path || cp $(BUILD)/.python.tmp $(BUILD)/python-path
	@rm -f $(BUILD)/.python.tmp

build: setup
	@if [ ! -f $(BUILD)/CMakeCache.txt ] || ! grep -qx "FTSAN_PYTHON:FILEPATH=$$(cat $(BUILD)/python-path)" $(BUILD)/CMakeCache.txt; then \
	  cmake -S . -B $(BUILD) -DFTSAN_PYTHON="$$(cat $(BUILD)/python-path)" >/dev/null || exit 1; \
	fi
	@env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build $(BUILD) -j$(JOBS) > $(BUILD)/build.log 2>&1 \
	  || { cat $(BUILD)/build.log; echo "ftsan: build failed (log: $(BUILD)/build.log)" >&2; exit 1; }
	@test -x $(BUILD)/bin/ftsan && test -f $(BUILD)/lib/ftsan/libftsan-rt.so

demo: build
	@scripts/demo.sh $(BUILD) "$$(cat $(BUILD)/python-path)"

# The 3.14 frame-layout test runs a real CPython 3.14 fetched (unpacked, not installed) into
# the cache by scripts/fetch-python314.sh.
test: build
	@dir=$$(scripts/fetch-python314.sh | tail -1) && test -f "$$dir/ready" && echo "$$dir" > $(BUILD)/python314-dir
	@cd $(BUILD) && ctest --output-on-failure -j2

bench: build
	@tests/bench/run.sh $(BUILD) "$$(cat $(BUILD)/python-path)"

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
