"""The crossing into C: the only module that touches cffi's ``ffi`` and
``lib``, and the only one that sees a C result code.

Every result leaves here as named values: an ``Outcome`` per system call
(``ok``, ``absent``, ``denied``, ... with the system's reason), the KVM
device's steps as a ``KvmDevice``, each file as a ``FileResult``.  A
``Batch`` holds the structs and buffers of one probe plan, allocated once
and reused, so a probe allocates nothing in C and little in Python.
"""
import errno as _errno
import os

from capsfast._capsfast import ffi, lib
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    # cffi's structs are typed by the header, not by Python: their fields
    # are read here only, as Any.
    CData = Any

    # One CPUID leaf's (eax, ebx, ecx, edx), and the five leaves a probe
    # reads: 0, 1, 0x80000000, 0x80000001, 0x40000000.
    Registers = tuple[int, int, int, int]
    Leaves = tuple[Registers, Registers, Registers, Registers, Registers]
    # (path, op, msr, buffer size, index of the entry it depends on or None)
    FileSpec = tuple[str, str, int, int, "int | None"]

# Must equal CAPSFAST_ABI in csrc/capsfast.h.
ABI = 8
if lib.CAPSFAST_ABI != ABI:  # pragma: no cover - only a stale build gets here
    raise ImportError(
        "capsfast's compiled module is ABI %d, the Python code wants %d: "
        "rebuild it with 'pip install -e .'" % (lib.CAPSFAST_ABI, ABI)
    )

HAS_CPUID = bool(lib.capsfast_has_cpuid())

# What a file entry asks C for, by name.
STAT = "stat"              # stat() only: does it exist
READ = "read"              # a small regular file, up to its buffer size, read to its end; looked at
                           # first (stat): for files often absent, a failed stat costs less
READ_ONCE = "read_once"    # a file a listing named: open, read, close, a short read being the end (a
                           # sysfs attribute, a file in a directory tree; not a procfs file of records)
READ_BLOCK = "read_block"  # read until the first blank line (one /proc/cpuinfo block)
MSR = "msr"                # 8 bytes at the MSR's offset, as the msr driver serves them
LIST = "list"              # a directory's entry names, each ended by a NUL byte
_OPS = {
    STAT: lib.CAPSFAST_OP_STAT,
    READ: lib.CAPSFAST_OP_READ,
    READ_ONCE: lib.CAPSFAST_OP_READ_ONCE,
    READ_BLOCK: lib.CAPSFAST_OP_READ_BLOCK,
    MSR: lib.CAPSFAST_OP_MSR,
    LIST: lib.CAPSFAST_OP_LIST,
}
# The ops that fill a buffer of their own.
_BUFFERED = (READ, READ_ONCE, READ_BLOCK, LIST)


class Outcome:
    """What one step's system call came to.

    ``code`` is one of ``ok``, ``absent`` (no such file), ``denied``
    (permission), ``not_a_file`` (a directory, FIFO or device where a file
    belongs: never opened), ``not_kvm_device`` (a character device other
    than KVM's: never opened), ``too_short`` (fewer bytes than an MSR
    holds), ``not_tried`` or ``failed``; ``reason`` is the system's words
    for it (None for ``ok`` and ``not_tried``)."""

    __slots__ = ("code", "reason", "_errno")

    def __init__(self, code: str, reason: "str | None", err: int = 0) -> None:
        self.code = code
        self.reason = reason
        self._errno = err

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    def error(self, message: str) -> CapsfastError:
        """A CapsfastError saying ``message: reason``, carrying the errno."""
        reason = self.reason or self.code
        if self._errno:
            return CapsfastError("%s: %s" % (message, reason), errno=self._errno)
        return CapsfastError("%s: %s" % (message, reason))

    def __repr__(self) -> str:
        return "Outcome(%r, %r)" % (self.code, self.reason)


OK = Outcome("ok", None)
NOT_TRIED = Outcome("not_tried", None)
_CODES = {
    _errno.ENOENT: "absent",
    _errno.EACCES: "denied",
    _errno.EPERM: "denied",
    _errno.EISDIR: "not_a_file",
    _errno.EINVAL: "not_a_file",
    _errno.ENODATA: "too_short",
    _errno.ENODEV: "not_kvm_device",  # C's answer for a character device other than 10:232
}
_REASONS = {_errno.EISDIR: "not a regular file (a directory)", _errno.EINVAL: "not a regular file"}
_outcomes = {0: OK}  # C result -> Outcome, made once per value seen


def _outcome(result: int) -> "Outcome":
    """The Outcome of a C result (0 or -errno)."""
    known = _outcomes.get(result)
    if known is None:
        err = -result
        code = _CODES.get(err, "failed")
        known = _outcomes[result] = Outcome(code, _REASONS.get(err) or os.strerror(err), err)
    return known


class FileResult:
    """One file entry's result (read-only: absent entries share one): ``outcome``; ``mode`` (st_mode, 0 when
    unknown); ``data``, the bytes read (READ ops; LIST: the names, each ended by a NUL; None otherwise or on
    failure); ``truncated``, the file held more than its buffer; ``value``,
    the MSR's value (MSR op, None otherwise or on failure)."""

    __slots__ = ("outcome", "mode", "data", "truncated", "value")

    def __init__(self, outcome: "Outcome", mode: int, data: "bytes | None", truncated: bool,
                 value: "int | None") -> None:
        self.outcome = outcome
        self.mode = mode
        self.data = data
        self.truncated = truncated
        self.value = value


class KvmDevice:
    """The KVM device node's steps, each an Outcome: ``stat``; ``access``
    (read-write for this process); ``open`` (``not_kvm_device`` for another
    character device, ``not_tried`` for anything not a character device);
    ``api_call`` (KVM_GET_API_VERSION) and its ``api_version``;
    ``create_vm`` (KVM_CREATE_VM, tried only when deep).  ``mode`` is the
    node's st_mode (0 when stat failed)."""

    __slots__ = ("stat", "mode", "access", "open", "api_call", "api_version", "create_vm")

    def __init__(self, stat: "Outcome", mode: int, access: "Outcome", open: "Outcome", api_call: "Outcome",
                 api_version: "int | None", create_vm: "Outcome") -> None:
        self.stat = stat
        self.mode = mode
        self.access = access
        self.open = open
        self.api_call = api_call
        self.api_version = api_version
        self.create_vm = create_vm


class Results:
    """One crossing's results: ``cpu`` (the five CPUID leaves, or None when
    not asked or not available), ``kvm`` (None when no device was asked
    for) and ``files`` (one FileResult per entry, in order)."""

    __slots__ = ("cpu", "kvm", "files")

    def __init__(self, cpu: "Leaves | None", kvm: "KvmDevice | None", files: "list[FileResult]") -> None:
        self.cpu = cpu
        self.kvm = kvm
        self.files = files


_probe = lib.capsfast_probe
_buffer = ffi.buffer
if TYPE_CHECKING:
    # ffi.unpack gives bytes for a char buffer, a list of ints for integers.
    def _unpack(cdata: CData, length: int) -> bytes: ...
    def _unpack_words(cdata: CData, length: int) -> list[int]: ...
else:
    _unpack = _unpack_words = ffi.unpack
_NULL = ffi.NULL
# Read buffers need no zeroing: C reports how many bytes it wrote, and pages
# never written are never touched (no page faults for absent files).
_new_raw = ffi.new_allocator(should_clear_after_alloc=False)
_NOT_TRIED_RESULT = 1   # access_err and open_err when C did not try
_API_NOT_TRIED = -1000  # api_version when C did not try
_ABSENT_RESULT = -_errno.ENOENT
# Absent files all look alike: one shared, never-modified result serves them.
_ABSENT_FILE = FileResult(_outcome(_ABSENT_RESULT), 0, None, False, None)


def cpuid_executed() -> int:
    """CPUID instructions this process has executed through capsfast."""
    return int(lib.capsfast_cpuid_executed())


def crossing(want_cpu: bool = False) -> None:
    """One call into C that does no I/O (and, with ``want_cpu``, runs only
    the probe's CPUID leaves): the floor the benchmark measures against."""
    _probe(1 if want_cpu else 0, _floor_cpu, _NULL, 0, _NULL, _NULL, 0)


def cpuid_per_crossing() -> int:
    """How many CPUID instructions ``crossing(True)`` executes here."""
    before = lib.capsfast_cpuid_executed()
    crossing(True)
    return int(lib.capsfast_cpuid_executed() - before)


def cpuid_walk() -> "list[tuple[int, int, Registers]]":
    """The full CPUID walk (capsfast.h), in one crossing: (leaf, subleaf,
    (eax, ebx, ecx, edx)) in walk order, [] without CPUID.  For
    recordings only: a probe never runs it."""
    out = _new_raw("struct capsfast_leaf[]", lib.CAPSFAST_WALK_MAX)  # C writes what it reports
    n = lib.capsfast_cpuid_walk(out, lib.CAPSFAST_WALK_MAX)
    if n < 0:  # pragma: no cover - the array holds the longest walk
        raise _outcome(n).error("capsfast_cpuid_walk")
    # struct capsfast_leaf is 6 uint32: one read for the whole walk.
    words = iter(_unpack_words(ffi.cast("uint32_t *", out), 6 * n))
    return [(leaf, sub, (a, b, c, d)) for leaf, sub, a, b, c, d in zip(words, words, words, words, words, words)]


_floor_cpu = ffi.new("struct capsfast_cpu *")
# A module global, so that a test can put a tripwire in its place.
_kvm_caps = lib.capsfast_kvm_caps


def kvm_caps(path: str, numbers: "Sequence[int]") -> "tuple[Outcome, list[int | None]]":
    """KVM_CHECK_EXTENSION of each of ``numbers`` on the KVM device at
    ``path``, in one crossing: the Outcome of opening it (``not_kvm_device``
    for anything but KVM's character device, never opened) and, when it
    opened, each answer (None where the check itself failed); [] otherwise.
    Never part of a probe: ``Host.kvm_caps`` calls it when first read."""
    n = len(numbers)
    caps = ffi.new("uint32_t[]", list(numbers) or [0])
    values = ffi.new("int32_t[]", max(n, 1))
    rc = _kvm_caps(path.encode("utf-8", "surrogateescape"), caps, values, n)
    if rc != 0:
        return _outcome(rc), []
    return OK, [v if v >= 0 else None for v in _unpack_words(values, n)]


_kvm_host_cpu = lib.capsfast_kvm_host_cpu
_TSC_STEPS = {1: "KVM_CREATE_VM", 2: "KVM_CREATE_VCPU", 3: "KVM_GET_TSC_KHZ", 4: "KVM_CHECK_EXTENSION(KVM_CAP_TSC_CONTROL)"}


class KvmHostCpu:
    """What the KVM device told of the host CPU beyond CPUID: ``opened``
    (the Outcome of opening it); ``msr`` (the Outcome of KVM_GET_MSRS,
    ``too_short`` when KVM served no value) and ``msr_value``; ``tsc``
    (the Outcome of the TSC steps), ``tsc_step`` (the ioctl that failed, or
    None), ``tsc_khz`` and ``tsc_scaling`` (KVM_CAP_TSC_CONTROL's answer)."""

    __slots__ = ("opened", "msr", "msr_value", "tsc", "tsc_step", "tsc_khz", "tsc_scaling")

    def __init__(self, opened: "Outcome", msr: "Outcome", msr_value: "int | None", tsc: "Outcome",
                 tsc_step: "str | None", tsc_khz: "int | None", tsc_scaling: "int | None") -> None:
        self.opened = opened
        self.msr = msr
        self.msr_value = msr_value
        self.tsc = tsc
        self.tsc_step = tsc_step
        self.tsc_khz = tsc_khz
        self.tsc_scaling = tsc_scaling


def kvm_host_cpu(path: str, msr_index: "int | None", want_tsc: bool) -> "KvmHostCpu":
    """The feature MSR ``msr_index`` (None: not asked) through KVM_GET_MSRS
    on the system fd, and (``want_tsc``) the TSC frequency of a vCPU and
    whether KVM scales it, from the KVM device at ``path``, in one crossing
    (capsfast.h).  Never part of a probe: ``Host.cpu_model`` asks it."""
    out: CData = ffi.new("struct capsfast_host_cpu *")
    out.msr_index = msr_index or 0
    rc = _kvm_host_cpu(path.encode("utf-8", "surrogateescape"), 0 if msr_index is None else 1,
                       1 if want_tsc else 0, out)
    if rc != 0:
        failed = _outcome(rc)
        return KvmHostCpu(failed, NOT_TRIED, None, NOT_TRIED, None, None, None)
    msr = _step(out.msr_err)
    tsc = _step(out.tsc_err)
    return KvmHostCpu(OK, msr, int(out.msr_value) if msr.ok else None, tsc,
                      _TSC_STEPS.get(out.tsc_step), int(out.tsc_khz) if tsc.ok else None,
                      int(out.tsc_scaling) if tsc.ok else None)


def read_files(files: "Sequence[tuple[str, str, int]]") -> "list[tuple[Outcome, bytes | None, bool]]":
    """Each ``(path, op, size)`` (READ, READ_ONCE or LIST) in one crossing, for a
    caller that reads many files once (capsfast.parts.topology.read): the Outcome, the
    bytes (None unless ok) and whether they were truncated.  Leaner than a
    Batch: no device or CPU structs, no FileResult objects; thousands of
    entries are packed and unpacked in bulk."""
    n = len(files)
    if n == 0:
        return []
    encoded = [path.encode("utf-8", "surrogateescape") + b"\0" for path, _op, _size in files]
    paths = ffi.new("char[]", b"".join(encoded))
    starts = []
    total = 0
    for _path, _op, size in files:
        starts.append(total)
        total += size
    bufs = _new_raw("char[]", max(total, 1))
    if n < _BULK:
        array: CData = ffi.new("struct capsfast_file[]", n)
        at = 0
        for f, name, (_path, op, size), start in zip(array, encoded, files, starts):
            f.path = paths + at
            at += len(name)
            f.op = _OPS[op]
            f.buf = bufs + start
            f.cap = size
        _cross_files(array, n)
        return [(OK, _unpack(bufs + start, f.len), f.truncated != 0) if f.err == 0 else (_outcome(f.err), None, False)
                for f, start in zip(array, starts)]
    return _read_in_bulk(files, encoded, paths, bufs, starts, total)


# From this many entries on, packing them with the struct module beats
# cffi's field by field access (whose first use costs nothing to import).
_BULK = 256
_FILE_LAYOUT: "tuple[str, int, int, int, int] | None" = None


def _cross_files(array: "CData", n: int) -> None:
    rc = _probe(0, _NULL, _NULL, 0, _NULL, array, n)
    if rc != 0:  # pragma: no cover - the arguments are built above
        raise _outcome(rc).error("capsfast_probe rejected its arguments")


def _file_layout() -> "tuple[str, int, int, int, int]":
    """struct capsfast_file as a struct-module format for its inputs (path,
    op, msr, buf, cap, from offset 0), its size in int32 words, and the
    word indices of err, len and truncated."""
    pointer = "Q" if ffi.sizeof("char *") == 8 else "I"
    fmt, at = "=", 0
    for name, code in (("path", pointer), ("op", "i"), ("msr", "I"), ("buf", pointer), ("cap", "I")):
        offset = ffi.offsetof("struct capsfast_file", name)
        fmt += "x" * (offset - at) + code
        at = offset + (8 if code == "Q" else 4)
    return (fmt, ffi.sizeof("struct capsfast_file") // 4, ffi.offsetof("struct capsfast_file", "err") // 4,
            ffi.offsetof("struct capsfast_file", "len") // 4, ffi.offsetof("struct capsfast_file", "truncated") // 4)


def _read_in_bulk(files: "Sequence[tuple[str, str, int]]", encoded: "list[bytes]", paths: "CData", bufs: "CData",
                  starts: "list[int]", total: int) -> "list[tuple[Outcome, bytes | None, bool]]":
    """read_files for many entries: one pack per entry into one bytearray,
    one copy into C, one copy of the results and of the data back."""
    from _struct import Struct

    global _FILE_LAYOUT
    if _FILE_LAYOUT is None:
        _FILE_LAYOUT = _file_layout()
    fmt, words, err_at, len_at, truncated_at = _FILE_LAYOUT
    n = len(files)
    path_at = int(ffi.cast("uintptr_t", paths))
    buf_at = int(ffi.cast("uintptr_t", bufs))
    record = words * 4
    packed = bytearray(n * record)  # zero: the outputs, and after = 0
    pack = Struct(fmt).pack_into
    ops = _OPS
    at = 0
    for i, name, (_path, op, size), start in zip(range(0, n * record, record), encoded, files, starts):
        pack(packed, i, path_at + at, ops[op], 0, buf_at + start, size)
        at += len(name)
    array: CData = _new_raw("struct capsfast_file[]", n)
    ffi.memmove(array, packed, n * record)
    _cross_files(array, n)
    ints = memoryview(_buffer(array, n * record)[:]).cast("i")
    data = _buffer(bufs, total)[:]
    return [(OK, data[start:start + length], truncated != 0) if err == 0 else (_outcome(err), None, False)
            for err, length, truncated, start in zip(ints[err_at::words], ints[len_at::words],
                                                     ints[truncated_at::words], starts)]


def _created(result: int) -> "Outcome":
    # C: 1 created, 0 not tried, -errno failed.
    return OK if result == 1 else NOT_TRIED if result == 0 else _outcome(result)


def _step(result: int) -> "Outcome":
    return NOT_TRIED if result == _NOT_TRIED_RESULT else _outcome(result)


class Batch:
    """One probe plan: the KVM device path (or None) and the file entries.

    Each entry of ``files`` is ``(path, op, msr, size, after)``: ``op`` one
    of STAT, READ, READ_ONCE, READ_BLOCK, MSR, LIST; ``msr`` the MSR number for MSR; ``size``
    the read buffer for the READ and LIST ops; ``after`` None, or the index of an
    earlier entry whose file must exist for this one to be tried (C answers
    "absent" without a system call otherwise).  Not thread-safe: give each
    thread its own."""

    __slots__ = ("_keep", "_n", "_kvm_path", "_kvm", "_cpu", "_entries", "_reads",
                 "_files_buf", "_kvm_buf", "_want_cpu", "_cpu_words")

    def __init__(self, kvm_path: "str | None", files: "Sequence[FileSpec]") -> None:
        self._n = n = len(files)
        array: CData = ffi.new("struct capsfast_file[]", max(n, 1))
        # All paths in one allocation, NUL-separated; all read buffers in another.
        encoded = [spec[0].encode("utf-8", "surrogateescape") + b"\0" for spec in files]
        paths = ffi.new("char[]", b"".join(encoded) or b"\0")
        total = sum(spec[3] for spec in files if spec[1] in _BUFFERED)
        bufs = _new_raw("char[]", max(total, 1))
        entries: list[tuple[CData, str, CData | None]] = []
        reads: list[tuple[CData, CData]] = []
        at = used = 0
        for i, (_path, op, msr, size, after) in enumerate(files):
            f = array[i]
            f.path = paths + at
            at += len(encoded[i])
            f.op = _OPS[op]
            f.msr = msr
            if after is not None:
                f.after = after + 1
            buf = None
            if op in _BUFFERED:
                buf = bufs + used
                f.buf = buf
                f.cap = size
                used += size
                reads.append((f, buf))
            entries.append((f, op, buf))
        self._keep = (array, paths, bufs)
        self._entries = tuple(entries)
        self._reads = tuple(reads)
        self._kvm_path = _NULL if kvm_path is None else ffi.new(
            "char[]", kvm_path.encode("utf-8", "surrogateescape"))
        self._kvm: CData = ffi.new("struct capsfast_kvm *")
        self._cpu: CData = ffi.new("struct capsfast_cpu *")
        self._cpu_words = ffi.cast("uint32_t *", self._cpu)
        # Buffer objects made once: each snapshot is then one bytes copy.
        self._files_buf = _buffer(array, n * ffi.sizeof("struct capsfast_file"))
        self._kvm_buf = _buffer(self._kvm)
        self._want_cpu = False

    def _cross(self, want_cpu: bool, deep: bool) -> None:
        rc = _probe(
            1 if want_cpu else 0, self._cpu, self._kvm_path, 1 if deep else 0,
            self._kvm, self._keep[0], self._n,
        )
        if rc != 0:  # pragma: no cover - the arguments are built above
            raise _outcome(rc).error("capsfast_probe rejected its arguments")
        self._want_cpu = want_cpu

    def cross(self, want_cpu: bool = False, deep: bool = False) -> bytes:
        """Cross into C once (the GIL is released meanwhile); returns the
        snapshot: bytes that are equal for two crossings exactly when their
        device and file results are."""
        self._cross(want_cpu, deep)
        snapshot: bytes = self._files_buf[:] + self._kvm_buf[:]
        for f, buf in self._reads:
            if f.err == 0 and f.len:
                snapshot += _unpack(buf, f.len)
        return snapshot

    def bare(self, want_cpu: bool = False) -> None:
        """The crossing alone, results left unread: what the hardware and
        the kernel cost, plus one cffi call (the benchmark's floor)."""
        _probe(1 if want_cpu else 0, self._cpu, self._kvm_path, 0, self._kvm, self._keep[0], self._n)

    def results(self) -> "Results":
        """The last crossing's results, named."""
        cpu = None
        if self._want_cpu:
            # struct capsfast_cpu is 21 uint32: ``available``, then five
            # leaves of four registers; one read instead of 21.
            w = _unpack_words(self._cpu_words, 21)
            if w[0]:
                cpu = ((w[1], w[2], w[3], w[4]), (w[5], w[6], w[7], w[8]), (w[9], w[10], w[11], w[12]),
                       (w[13], w[14], w[15], w[16]), (w[17], w[18], w[19], w[20]))
        kvm = None
        if self._kvm_path != _NULL:
            k = self._kvm
            api = k.api_version
            kvm = KvmDevice(
                stat=_outcome(k.stat_err),
                mode=k.mode,
                access=_step(k.access_err),
                open=_step(k.open_err),
                api_call=NOT_TRIED if api == _API_NOT_TRIED else _outcome(min(api, 0)),
                api_version=api if api >= 0 else None,
                create_vm=_created(k.create_vm),
            )
        files = []
        for f, op, buf in self._entries:
            err = f.err
            if err == _ABSENT_RESULT:  # most entries, on most hosts
                files.append(_ABSENT_FILE)
                continue
            outcome = _outcome(err)
            ok = outcome is OK
            if op == MSR:
                files.append(FileResult(outcome, f.mode, None, False, f.value if ok else None))
            elif op == STAT:
                files.append(FileResult(outcome, f.mode, None, False, None))
            else:
                data = _unpack(buf, f.len) if ok and buf is not None else None
                files.append(FileResult(outcome, f.mode, data, f.truncated != 0, None))
        return Results(cpu, kvm, files)

    def run(self, want_cpu: bool = False, deep: bool = False) -> "Results":
        """Cross into C once and name the results (no snapshot made: with
        thousands of files, its bytes would cost more than the reads)."""
        self._cross(want_cpu, deep)
        return self.results()


def kvm_supported_cpuid(path: str) -> "tuple[Outcome, list[tuple[int, int, Registers]]]":
    """KVM_GET_SUPPORTED_CPUID on the KVM device at ``path``, in one
    crossing: the Outcome of opening it and asking (``not_kvm_device`` for
    anything but KVM's character device, never opened) and, when it
    answered, each (function, index, (eax, ebx, ecx, edx)) in KVM's order.
    Never part of a probe: the domain capabilities cache key reads it."""
    cap = lib.CAPSFAST_KVM_CPUID_MAX
    out = _new_raw("struct capsfast_leaf[]", cap)  # C writes what it reports
    n = lib.capsfast_kvm_supported_cpuid(path.encode("utf-8", "surrogateescape"), out, cap)
    if n < 0:
        outcome = _outcome(n)
        if n == -_errno.E2BIG:  # pragma: no cover - cap is KVM's own bound
            raise outcome.error("KVM_GET_SUPPORTED_CPUID on %s" % path)
        return outcome, []
    words = iter(_unpack_words(ffi.cast("uint32_t *", out), 6 * n))
    return OK, [(leaf, sub, (a, b, c, d)) for leaf, sub, a, b, c, d in zip(words, words, words, words, words, words)]
