from setuptools import setup  # bookworm's pybuild needs this shim; metadata is in setup.cfg
setup()
