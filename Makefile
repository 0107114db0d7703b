# The two commands of the README: `make demo` runs the system, `make test` runs all tests.
PYTHON ?= /usr/bin/python3
export PATH := /usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

.PHONY: all deb test lint unit system demo bench deps check-deps clean

all: deb

# Every host tool comes from scripts/dev/host-tools: `deps` installs what is missing (root),
# `check-deps` then fails in one line naming any tool still missing and its package.
deps:
	scripts/dev/install_deps.sh

check-deps: deps
	scripts/dev/install_deps.sh --check

deb:
	packaging/build-deb.sh

# pyflakes over the shipped code: unused imports and undefined names fail the build (what it
# finds is fixed, never silenced). The layers themselves are tests/unit/test_layers.py.
lint:
	$(PYTHON) -m pyflakes unified_core unified_ctl agents

unit:
	$(PYTHON) -m pytest -q tests/unit

system: deb
	$(PYTHON) -m pytest -q tests/system

test: check-deps lint unit system

demo: check-deps deb
	scripts/dev/demo.sh

bench: check-deps deb
	$(PYTHON) bench/run.py

clean:
	rm -rf dist build .pybuild packaging/debian/.debhelper packaging/debian/unified-system
