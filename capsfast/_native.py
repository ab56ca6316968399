"""The only module that touches cffi's ``ffi`` and ``lib``.

C structs go in, plain Python tuples and ints come out.  A ``Batch`` holds
the structs and buffers of one probe plan, allocated once and reused, so a
probe allocates nothing in C and little in Python.
"""
from capsfast._capsfast import ffi, lib

# Must equal CAPSFAST_ABI in csrc/capsfast.h.
ABI = 1
if lib.CAPSFAST_ABI != ABI:  # pragma: no cover - only a stale build gets here
    raise ImportError(
        "capsfast's compiled module is ABI %d, the Python code wants %d: "
        "rebuild it with 'pip install -e .'" % (lib.CAPSFAST_ABI, ABI)
    )

HAS_CPUID = bool(lib.capsfast_has_cpuid())
OP_STAT = lib.CAPSFAST_OP_STAT
OP_READ = lib.CAPSFAST_OP_READ
OP_READ_BLOCK = lib.CAPSFAST_OP_READ_BLOCK
OP_MSR = lib.CAPSFAST_OP_MSR
API_VERSION_NOT_TRIED = -1000


def cpuid_executed():
    """CPUID instructions this process has executed through capsfast."""
    return lib.capsfast_cpuid_executed()


def _regs(r):
    return (r.eax, r.ebx, r.ecx, r.edx)


class Batch:
    """One probe plan: the KVM device path and a list of file operations.

    ``files`` is a sequence of ``(path, op, msr, cap)``; ``cap`` is the read
    buffer size for the read operations.  Not thread-safe: give each thread
    its own (see ``probe.py``)."""

    __slots__ = ("_keep", "_files", "_n", "_ops", "_kvm_path", "_kvm", "_cpu")

    def __init__(self, kvm_path, files):
        self._keep = []
        self._n = n = len(files)
        self._files = ffi.new("struct capsfast_file[]", max(n, 1))
        self._ops = tuple(op for _path, op, _msr, _cap in files)
        for i, (path, op, msr, cap) in enumerate(files):
            f = self._files[i]
            c_path = ffi.new("char[]", path.encode("utf-8", "surrogateescape"))
            self._keep.append(c_path)
            f.path = c_path
            f.op = op
            f.msr = msr
            if cap:
                buf = ffi.new("char[]", cap)
                self._keep.append(buf)
                f.buf = buf
                f.cap = cap
        if kvm_path is None:
            self._kvm_path = ffi.NULL
        else:
            self._kvm_path = ffi.new("char[]", kvm_path.encode("utf-8", "surrogateescape"))
        self._kvm = ffi.new("struct capsfast_kvm *")
        self._cpu = ffi.new("struct capsfast_cpu *")

    def run(self, want_cpu=False, deep=False):
        """Cross into C once.

        Returns ``(cpu, kvm, files)``: ``cpu`` is None (not asked or not
        available) or five register tuples (leaves 0, 1, 0x80000000,
        0x80000001, 0x40000000); ``kvm`` is None or ``(stat_err, mode,
        access_err, open_err, api_version, create_vm)``; ``files`` has one
        ``(err, mode, data, truncated, value)`` per file, ``data`` the bytes
        read (None for stat and MSR operations)."""
        rc = lib.capsfast_probe(
            1 if want_cpu else 0, self._cpu, self._kvm_path, 1 if deep else 0,
            self._kvm, self._files, self._n,
        )
        if rc != 0:  # pragma: no cover - the arguments are built above
            raise OSError(-rc, "capsfast_probe rejected its arguments")
        cpu = None
        if want_cpu:
            c = self._cpu
            if c.available:
                cpu = (_regs(c.basic0), _regs(c.basic1), _regs(c.ext0), _regs(c.ext1), _regs(c.hv0))
        kvm = None
        if self._kvm_path != ffi.NULL:
            k = self._kvm
            kvm = (k.stat_err, k.mode, k.access_err, k.open_err, k.api_version, k.create_vm)
        out = []
        files = self._files
        for i, op in enumerate(self._ops):
            f = files[i]
            err = f.err
            if op == OP_STAT:
                out.append((err, f.mode, None, False, 0))
            elif op == OP_MSR:
                out.append((err, f.mode, None, False, f.value))
            else:
                data = ffi.unpack(f.buf, f.len) if err == 0 else None
                out.append((err, f.mode, data, bool(f.truncated), 0))
        return cpu, kvm, out
