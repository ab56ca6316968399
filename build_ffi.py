"""cffi out-of-line API build of capsfast._capsfast from csrc/.

The cdef is csrc/capsfast.h itself, so the compiler checks the declarations
Python sees against the C that implements them.

``make_ffibuilder`` is the one build configuration: setup.py uses
``ffibuilder`` (the shipped module), and the tests that need the
CAPSFAST_TEST_COUNTERS build compile their own copy with the same options.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
# setuptools wants source paths relative to the project directory.
CSRC = "csrc"
MODULE = "capsfast._capsfast"


def make_ffibuilder(module=MODULE, define_macros=(), absolute=False):
    """An FFI builder for csrc/: ``module`` is the extension's dotted name,
    ``define_macros`` extra ``(name, value)`` pairs (a test build passes
    ``[("CAPSFAST_TEST_COUNTERS", "1")]``).  ``absolute`` names the sources by
    absolute path, for a build outside the project directory
    (``compile(tmpdir=...)`` runs the compiler from tmpdir)."""
    csrc = str(HERE / CSRC) if absolute else CSRC
    builder = FFI()
    builder.cdef((HERE / CSRC / "capsfast.h").read_text())
    builder.set_source(
        module,
        '#include <stdint.h>\n#include "capsfast.h"\n',
        sources=[csrc + "/capsfast.c"],
        include_dirs=[csrc],
        define_macros=list(define_macros),
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
        py_limited_api=True,
    )
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
