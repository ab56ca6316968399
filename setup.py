# setuptools learns about the cffi extension only through setup(); all other metadata is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
