"""cffi out-of-line API build of capsfast._capsfast from csrc/.

The cdef is csrc/capsfast.h itself, so the compiler checks the declarations
Python sees against the C that implements them.
"""
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
# setuptools wants source paths relative to the project directory.
CSRC = "csrc"

ffibuilder = FFI()
ffibuilder.cdef((HERE / CSRC / "capsfast.h").read_text())
ffibuilder.set_source(
    "capsfast._capsfast",
    '#include <stdint.h>\n#include "capsfast.h"\n',
    sources=[CSRC + "/capsfast.c"],
    include_dirs=[CSRC],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
