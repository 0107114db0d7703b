# The two commands of the README: `make demo` runs the system, `make test` runs all tests.
PYTHON ?= /usr/bin/python3
export PATH := /usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

.PHONY: all deb test unit system demo bench deps clean

all: deb

deps:
	scripts/dev/install_deps.sh

deb:
	packaging/build-deb.sh

unit:
	$(PYTHON) -m pytest -q tests/unit

system: deb
	$(PYTHON) -m pytest -q tests/system

test: deps unit system

demo: deps deb
	scripts/dev/demo.sh

bench: deps deb
	$(PYTHON) bench/run.py

clean:
	rm -rf dist build .pybuild packaging/debian/.debhelper packaging/debian/unified-system
