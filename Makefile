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

# pyflakes and mypy over the shipped code: unused imports, undefined names and type errors
# fail the build (what they find is fixed, never silenced). The layers themselves are
# tests/unit/test_layers.py. mypy's configuration is setup.cfg [mypy]: it reads agents/ as
# the package unified_agents through a link in build/mypy, and its messages are printed
# back with agents/ paths.
lint:
	$(PYTHON) -m pyflakes unified_core unified_ctl agents
	@mkdir -p build/mypy && ln -sfn ../../agents build/mypy/unified_agents
	@out=$$($(PYTHON) -m mypy 2>&1); rc=$$?; \
	printf '%s\n' "$$out" | sed 's|^build/mypy/unified_agents/|agents/|'; exit $$rc

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
