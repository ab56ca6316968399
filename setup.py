# setuptools learns about the cffi extension only through setup(); all other metadata is in pyproject.toml.
from setuptools import setup

# cffi builds a limited-API module, so one cp39-abi3 wheel serves CPython 3.9 and every later version.
setup(cffi_modules=["build_ffi.py:ffibuilder"], options={"bdist_wheel": {"py_limited_api": "cp39"}})
