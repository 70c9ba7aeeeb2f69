# Thin wrapper around meson/ninja. Every target first makes sure the Debian
# packages the build needs are installed (scripts/install-deps.sh).
BUILD ?= build
DEPS := scripts/install-deps.sh
PYTEST := /usr/bin/python3 -m pytest

.PHONY: all deps configure check check-unit check-functional demo demo-tools bench fuzz check-asan clean soak crash-test

all: configure
	ninja -C $(BUILD)

deps:
	@sh $(DEPS)

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

configure: deps $(BUILD)/build.ninja

check: all
	@sh scripts/run-checks.sh $(BUILD)

# A real Linux guest boots from qblk while it streams and commits
# (scripts/demo.py; --remote http serves the base through nginx).
# demo-tools: the older qblk-img/qblk-io tour.
demo: all
	@/usr/bin/python3 scripts/demo.py --build $(BUILD)

demo-tools: all
	@sh scripts/demo.sh $(BUILD)

# bench/run.py (qblk-img/qblk-io, then bench/nbd.py), bench/stream.py
# and bench/commit.py (block-stream, block-commit against
# qemu-storage-daemon; QBLK_BENCH_SIZE=256M for quick job runs) and
# bench/qmp.py (QMP round trips against qemu-storage-daemon).
bench: all
	@/usr/bin/python3 bench/run.py --build $(BUILD)
	@/usr/bin/python3 bench/stream.py --build $(BUILD)
	@/usr/bin/python3 bench/commit.py --build $(BUILD)
	@/usr/bin/python3 bench/qmp.py --build $(BUILD)
	@/usr/bin/python3 bench/remote.py --build $(BUILD)

# Crash-consistency replay campaigns (tests/crash/scenarios.py): every
# scenario QBLK_CRASH_ROUNDS times (default 10) with up to
# QBLK_CRASH_STATES crash states each (default 400); QBLK_CRASH_SEED
# repeats a run. Prints a summary: scenario runs, states checked, failures.
crash-test: all
	@QBLK_BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/crash/scenarios.py

# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="nbd keyval"]: build every
# libFuzzer target (build-fuzz/, clang) and fuzz each for FUZZ_SECONDS.
fuzz: deps
	@sh scripts/run-fuzz.sh $(FUZZ_TARGETS)

# The whole suite (unit + functional) under ASan/UBSan/LSan in build-asan/.
check-asan: deps
	@sh scripts/check-asan.sh build-asan

# tests/soak/soak.py: 64 verified NBD connections x depth 16 on a 512 MiB
# chain while block-stream then block-commit run (docs/soak.rst);
# SOAK_SECONDS=N changes the duration (default 60).
soak: all
	@/usr/bin/python3 tests/soak/soak.py --build $(BUILD) \
	    --seconds $${SOAK_SECONDS:-60}

clean:
	rm -rf $(BUILD) build-fuzz build-asan
