# The compiled module cffi builds from csrc/capsfast.h (see build_ffi.py):
# its ffi, and in lib every function and #define of that header.  C int and
# uint32/uint64 are int; every pointer is a cffi CData (ffi.NULL included).
# Keep in step with csrc/capsfast.h.  The types are cffi's (types-cffi).
from typing import TypeAlias, final

from _cffi_backend import FFI

# What ffi.new(), ffi.cast() and ffi.NULL give, for annotations elsewhere;
# not an attribute of the compiled module.
CData: TypeAlias = FFI.CData

ffi: FFI

@final
class _Lib:
    CAPSFAST_ABI: int
    CAPSFAST_OP_STAT: int
    CAPSFAST_OP_READ: int
    CAPSFAST_OP_READ_BLOCK: int
    CAPSFAST_OP_MSR: int
    CAPSFAST_OP_LIST: int
    CAPSFAST_OP_READ_ONCE: int
    CAPSFAST_WALK_LEAVES: int
    CAPSFAST_WALK_SUBLEAVES: int
    CAPSFAST_WALK_MAX: int
    CAPSFAST_KVM_CPUID_MAX: int

    def capsfast_probe(
        self,
        want_cpu: int,
        cpu: CData,
        kvm_path: CData,
        deep: int,
        kvm: CData,
        files: CData,
        nfiles: int,
        /,
    ) -> int: ...
    def capsfast_has_cpuid(self, /) -> int: ...
    def capsfast_cpuid_executed(self, /) -> int: ...
    # out: a struct capsfast_leaf[] of at least cap entries (or NULL with
    # cap 0); the entries written, or -errno.
    def capsfast_cpuid_walk(self, out: CData, cap: int, /) -> int: ...
    # path: bytes (NUL-free); caps a uint32_t[n], values an int32_t[n];
    # 0 when the device opened, else -errno (every value set to it).
    def capsfast_kvm_caps(self, path: bytes, caps: CData, values: CData, n: int, /) -> int: ...
    # path: bytes (NUL-free); out a struct capsfast_host_cpu *; 0 when the
    # device opened, else -errno.
    def capsfast_kvm_host_cpu(self, path: bytes, want_msr: int, want_tsc: int, out: CData, /) -> int: ...
    # path: bytes (NUL-free); out a struct capsfast_leaf[] of at least cap
    # entries; the entries written, or -errno.
    def capsfast_kvm_supported_cpuid(self, path: bytes, out: CData, cap: int, /) -> int: ...
    # -1 unless the module was built with CAPSFAST_TEST_COUNTERS.
    def capsfast_peak_concurrency(self, reset: int, /) -> int: ...

lib: _Lib
