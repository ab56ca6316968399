"""The only module that touches cffi's ``ffi`` and ``lib``.

C structs go in, plain Python tuples and ints come out.  A ``Batch`` holds
the structs and buffers of one probe plan, allocated once and reused, so a
probe allocates nothing in C and little in Python.

Results are read in bulk: one copy of the struct array as bytes, viewed as
32- and 64-bit integers at offsets taken from cffi, instead of one cffi
attribute access (about 0.1 us each) per field.  The same bytes are the
batch's snapshot: equal snapshots mean equal results, which lets the live
probe skip decoding when nothing changed.
"""
from capsfast._capsfast import ffi, lib

# Must equal CAPSFAST_ABI in csrc/capsfast.h.
ABI = 2
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

_probe = lib.capsfast_probe
_buffer = ffi.buffer
_unpack = ffi.unpack
_NULL = ffi.NULL
# Read buffers need no zeroing: C reports how many bytes it wrote, and pages
# never written are never touched (no page faults for absent files).
_new_raw = ffi.new_allocator(should_clear_after_alloc=False)

# Layout of struct capsfast_file, in units of the integer views below.
_FILE_SIZE = ffi.sizeof("struct capsfast_file")
_ERR = ffi.offsetof("struct capsfast_file", "err") // 4
_MODE = ffi.offsetof("struct capsfast_file", "mode") // 4
_LEN = ffi.offsetof("struct capsfast_file", "len") // 4
_TRUNCATED = ffi.offsetof("struct capsfast_file", "truncated") // 4
_VALUE = ffi.offsetof("struct capsfast_file", "value") // 8
# struct capsfast_cpu: ``available`` then five leaves of four registers.
_CPU_REGS = ffi.offsetof("struct capsfast_cpu", "basic0") // 4
_KVM_FIELDS = ("stat_err", "mode", "access_err", "open_err", "api_version", "create_vm")
_KVM_INDEX = tuple(ffi.offsetof("struct capsfast_kvm", f) // 4 for f in _KVM_FIELDS)


def cpuid_executed():
    """CPUID instructions this process has executed through capsfast."""
    return lib.capsfast_cpuid_executed()


def crossing(want_cpu=False):
    """One call into C that does no I/O (and, with ``want_cpu``, runs only
    CPUID): the floor the benchmark measures against.  Returns the number
    of CPUID instructions it executed."""
    before = lib.capsfast_cpuid_executed()
    _probe(1 if want_cpu else 0, _floor_cpu, _NULL, 0, _NULL, _NULL, 0)
    return lib.capsfast_cpuid_executed() - before


_floor_cpu = ffi.new("struct capsfast_cpu *")


class Batch:
    """One probe plan: the KVM device path and a list of file operations.

    ``files`` is a sequence of ``(path, op, msr, cap)`` or ``(path, op,
    msr, cap, after)``: ``cap`` is the read buffer size for the read
    operations; ``after``, the index of an earlier entry whose file must
    exist for this one to be tried (C answers ENOENT without a system call
    otherwise).  Not thread-safe: give each thread its own (see
    ``probe.py``)."""

    __slots__ = (
        "_keep", "_files", "_n", "_kvm_path", "_kvm", "_cpu",
        "_files_buf", "_kvm_buf", "_cpu_buf", "_table", "_reads", "_want_cpu",
    )

    def __init__(self, kvm_path, files):
        self._n = n = len(files)
        self._files = ffi.new("struct capsfast_file[]", max(n, 1))
        # All paths in one allocation, NUL-separated; all read buffers in another.
        encoded = [spec[0].encode("utf-8", "surrogateescape") + b"\0" for spec in files]
        paths = ffi.new("char[]", b"".join(encoded) or b"\0")
        total = sum(spec[3] for spec in files if spec[1] in (OP_READ, OP_READ_BLOCK))
        bufs = _new_raw("char[]", max(total, 1))
        self._keep = (paths, bufs)
        table = []
        reads = []
        at = used = 0
        step = _FILE_SIZE // 4
        for i, spec in enumerate(files):
            _path, op, msr, cap = spec[:4]
            f = self._files[i]
            f.path = paths + at
            at += len(encoded[i])
            f.op = op
            f.msr = msr
            if len(spec) > 4 and spec[4] is not None:
                f.after = spec[4] + 1
            buf = None
            if op in (OP_READ, OP_READ_BLOCK):
                buf = bufs + used
                f.buf = buf
                f.cap = cap
                used += cap
                reads.append((i * step + _ERR, i * step + _LEN, buf))
            table.append((op, i * step, i * (_FILE_SIZE // 8) + _VALUE, buf))
        self._table = tuple(table)
        self._reads = tuple(reads)
        if kvm_path is None:
            self._kvm_path = _NULL
        else:
            self._kvm_path = ffi.new("char[]", kvm_path.encode("utf-8", "surrogateescape"))
        self._kvm = ffi.new("struct capsfast_kvm *")
        self._cpu = ffi.new("struct capsfast_cpu *")
        # Buffer objects made once: each snapshot is then one bytes copy.
        self._files_buf = _buffer(self._files, n * _FILE_SIZE)
        self._kvm_buf = _buffer(self._kvm)
        self._cpu_buf = _buffer(self._cpu)
        self._want_cpu = False

    def cross(self, want_cpu=False, deep=False):
        """Cross into C once (the GIL is released meanwhile); returns the
        snapshot: bytes that are equal for two crossings exactly when their
        results are (the CPU leaves excepted: see ``results``)."""
        rc = _probe(
            1 if want_cpu else 0, self._cpu, self._kvm_path, 1 if deep else 0,
            self._kvm, self._files, self._n,
        )
        if rc != 0:  # pragma: no cover - the arguments are built above
            raise OSError(-rc, "capsfast_probe rejected its arguments")
        self._want_cpu = want_cpu
        files = self._files_buf[:]
        snapshot = files + self._kvm_buf[:]
        ints = memoryview(files).cast("i")
        for err, length, buf in self._reads:
            if ints[err] == 0 and ints[length]:
                snapshot += _unpack(buf, ints[length])
        return snapshot

    def bare(self, want_cpu=False):
        """The crossing alone, results left unread: what the hardware and
        the kernel cost, plus one cffi call (the benchmark's floor)."""
        _probe(1 if want_cpu else 0, self._cpu, self._kvm_path, 0, self._kvm, self._files, self._n)

    def results(self):
        """The last crossing's results, as ``run`` returns them."""
        cpu = None
        if self._want_cpu:
            regs = memoryview(self._cpu_buf[:]).cast("I")
            if regs[0]:
                r = _CPU_REGS
                cpu = tuple(tuple(regs[r + 4 * i:r + 4 * i + 4]) for i in range(5))
        kvm = None
        if self._kvm_path != _NULL:
            k = memoryview(self._kvm_buf[:]).cast("i")
            kvm = tuple([k[i] for i in _KVM_INDEX])
            kvm = kvm[:1] + (kvm[1] & 0xFFFFFFFF,) + kvm[2:]  # mode is unsigned
        raw = self._files_buf[:]
        ints = memoryview(raw).cast("i")
        uints = memoryview(raw).cast("I")
        values = memoryview(raw).cast("Q")
        out = []
        for op, at, value_at, buf in self._table:
            err = ints[at + _ERR]
            if op == OP_STAT:
                out.append((err, uints[at + _MODE], None, False, 0))
            elif op == OP_MSR:
                out.append((err, uints[at + _MODE], None, False, values[value_at]))
            else:
                data = _unpack(buf, uints[at + _LEN]) if err == 0 else None
                out.append((err, uints[at + _MODE], data, ints[at + _TRUNCATED] != 0, 0))
        return cpu, kvm, out

    def run(self, want_cpu=False, deep=False):
        """Cross into C once.

        Returns ``(cpu, kvm, files)``: ``cpu`` is None (not asked or not
        available) or five register tuples (leaves 0, 1, 0x80000000,
        0x80000001, 0x40000000); ``kvm`` is None or ``(stat_err, mode,
        access_err, open_err, api_version, create_vm)``; ``files`` has one
        ``(err, mode, data, truncated, value)`` per file, ``data`` the bytes
        read (None for stat and MSR operations)."""
        self.cross(want_cpu, deep)
        return self.results()
