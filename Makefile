# Thin wrapper around meson/ninja. Every target first makes sure the Debian
# packages the build needs are installed (scripts/install-deps.sh).
BUILD ?= build
DEPS := scripts/install-deps.sh
PYTEST := /usr/bin/python3 -m pytest

.PHONY: all deps configure check check-unit check-functional demo bench fuzz clean

all: configure
	ninja -C $(BUILD)

deps:
	@sh $(DEPS)

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

configure: deps $(BUILD)/build.ninja

check: all
	@sh scripts/run-checks.sh $(BUILD)

demo: all
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

fuzz: deps
	@sh scripts/build-fuzz.sh

clean:
	rm -rf $(BUILD) build-fuzz
