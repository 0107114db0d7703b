# The two commands of the README: `make demo` runs the system, `make test` runs all tests.
PYTHON ?= /usr/bin/python3
export PATH := /usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

.PHONY: all deb test unit system demo bench deps check-deps clean

all: deb

# Every host tool comes from scripts/dev/host-tools: `deps` installs what is missing (root),
# `check-deps` then fails in one line naming any tool still missing and its package.
deps:
	scripts/dev/install_deps.sh

check-deps: deps
	scripts/dev/install_deps.sh --check

deb:
	packaging/build-deb.sh

unit:
	$(PYTHON) -m pytest -q tests/unit

system: deb
	$(PYTHON) -m pytest -q tests/system

test: check-deps unit system

demo: check-deps deb
	scripts/dev/demo.sh

bench: check-deps deb
	$(PYTHON) bench/run.py

clean:
	rm -rf dist build .pybuild packaging/debian/.debhelper packaging/debian/unified-system
