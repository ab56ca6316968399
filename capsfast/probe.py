"""Probing: gathers the facts for one root in one crossing into C, decides
the verdict, and caches the live host.

The live host (root "/", the running CPU) is cached per process: CPUID and
the facts in ``devices.CPU_FILES`` cannot change while the system runs, so
``refresh=True`` re-reads only the devices and files.  The cache is guarded
by a lock and dropped in a forked child; each thread takes its own C
buffers, so concurrent probes never share them.
"""
import errno
import os
import _thread

from capsfast import _native, cpuid, devices, emulators, verdict
from capsfast.errors import CapsfastError
from capsfast.model import Cpu, Host, Hypervisor, Lazy

X86 = ("x86_64", "i686")

# Kernel and uname spellings -> libvirt's architecture names.
_ARCH_ALIASES = {
    "i386": "i686", "i486": "i686", "i586": "i686", "i686": "i686", "x86": "i686",
    "amd64": "x86_64", "x86_64": "x86_64",
    "arm64": "aarch64", "aarch64": "aarch64",
    "armv6l": "armv6l", "armv7l": "armv7l", "armv7": "armv7l", "arm": "armv7l",
    "ppc64": "ppc64", "ppc64le": "ppc64le", "ppc": "ppc",
    "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64", "ia64": "ia64",
}


def normalize_arch(name):
    """libvirt's name for an architecture; CapsfastError for nonsense."""
    key = name.strip().lower()
    if key in _ARCH_ALIASES:
        return _ARCH_ALIASES[key]
    if key and len(key) <= 32 and key.replace("_", "").isalnum() and key.isascii():
        return key
    raise CapsfastError("unrecognised architecture %r" % name.strip()[:40])


class _CpuFacts:
    """What the CPU is: cached for the live host, gathered per call otherwise."""

    __slots__ = ("cpu", "hypervisor", "kernel_flags", "msr", "leaves", "msr_items")

    def __init__(self, cpu, hypervisor, kernel_flags, msr, leaves):
        self.cpu = cpu
        self.hypervisor = hypervisor
        self.kernel_flags = kernel_flags
        self.msr = msr
        self.leaves = leaves
        self.msr_items = tuple(sorted(msr.items()))  # Host.msr, made once


_NO_HYPERVISOR = Hypervisor(None, None)
_NO_CPU = Cpu(None, None, None, None, (), "none", None, None)
_lock = _thread.allocate_lock()
_live = None          # the cached live Host
_live_cpu = None      # the cached live _CpuFacts
_live_arch = None
_pools = {}           # (root, with_cpu_files, with_arch) -> [free Batch]
_live_memo = None     # (snapshot, device facts, Host) of the last live crossing
_LIVE_PLAN = ("/", False, False)
_GUESTS = Host._fields.index("guests")


def _after_fork_in_child():
    global _lock
    # A thread of the parent may have held the lock at fork time; it does
    # not exist here, so the lock would never be released.
    _lock = _thread.allocate_lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _plan(root, with_cpu_files, with_arch):
    files = devices.DEVICE_FILES
    if with_cpu_files:
        files = files + devices.CPU_FILES
    if with_arch:
        files = files + (devices.ARCH_FILE,)
    return files


def _take(root, with_cpu_files, with_arch):
    """A free Batch for this plan (each thread takes its own) and its key."""
    key = (root, with_cpu_files, with_arch)
    pool = _pools.get(key)
    if pool:
        try:
            return pool.pop(), key
        except IndexError:  # another thread took the last one meanwhile
            pass
    if len(_pools) > 64:  # many fake roots: drop the old pools
        _pools.clear()
    plan = _plan(root, with_cpu_files, with_arch)
    batch = _native.Batch(devices.under(root, devices.KVM_DEVICE), devices.batch_specs(root, plan))
    return batch, key


def _give(key, batch):
    _pools.setdefault(key, []).append(batch)


# The live plan's structs and buffers, made while importing (about 25 us of
# cffi field writes) so that the first probe pays only for the probing.
_give(_LIVE_PLAN, _take(*_LIVE_PLAN)[0])


def _keyed(plan, results):
    return {entry[0]: (entry[1], r) for entry, r in zip(plan, results)}


def _run(root, with_cpu_files, with_arch, want_cpu, deep):
    """One crossing into C; results keyed by the plan's keys."""
    batch, key = _take(root, with_cpu_files, with_arch)
    try:
        cpu_raw, kvm_raw, results = batch.run(want_cpu, deep)
    finally:
        _give(key, batch)
    return cpu_raw, kvm_raw, _keyed(_plan(root, with_cpu_files, with_arch), results)


def _read_dump(path):
    if "\0" in path:
        raise CapsfastError("CPUID dump %r: a path cannot hold a NUL byte" % path)
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as e:
        raise CapsfastError("cannot read CPUID dump %s: %s" % (path, e.strerror)) from None
    text = data.decode("utf-8", "replace")
    return cpuid.leaves_from_dump(text, "CPUID dump %s" % path)


def _cpu_facts(root, arch, leaves, source, files):
    """CPU, hypervisor, kernel flags and MSRs from CPUID leaves (or, with
    none, the root's /proc/cpuinfo) and the CPU_FILES results."""
    path, result = files["cpuinfo"]
    # Only the first block is read: a cut-off rest is expected, not an error.
    block = devices.cpuinfo_first_block(devices.data(root, path, result))
    flags = devices.kernel_flags(block)
    msr = {}
    for key, number in (("msr.feature_control", devices.MSR_FEATURE_CONTROL), ("msr.vm_cr", devices.MSR_VM_CR)):
        if key in files:
            value = devices.msr_value(files[key][1])
            if value is not None:
                msr[number] = value
    if arch not in X86:
        return _CpuFacts(None, _NO_HYPERVISOR, flags, msr, None)
    if leaves is not None:
        cpu = cpuid.decode(leaves, source)
        signature = cpuid.hypervisor_signature(leaves)
        hypervisor = Hypervisor(cpuid.hypervisor_vendor(signature), signature)
        return _CpuFacts(cpu, hypervisor, flags, msr, leaves)
    if flags is None:
        return _CpuFacts(None, _NO_HYPERVISOR, flags, msr, None)
    cpu = _cpu_from_cpuinfo(block, flags)
    # /proc/cpuinfo has the hypervisor bit but not the signature.
    hypervisor = Hypervisor("unknown", None) if "hypervisor" in flags else _NO_HYPERVISOR
    return _CpuFacts(cpu, hypervisor, flags, msr, None)


def _cpu_from_cpuinfo(block, flags):
    def number(key):
        try:
            return int(block.get(key, ""))
        except ValueError:
            return None

    features = tuple(sorted(cpuid.FEATURE_NAMES.intersection(flags)))
    return Cpu(block.get("vendor_id") or None, number("cpu family"), number("model"),
               number("stepping"), features, "cpuinfo", None, None)


def _device_facts(facts, kvm_raw, files, deep, root):
    """(kvm, kqemu, xen, hvm): what the device and file results mean."""
    def is_present(key):
        path, result = files[key]
        return devices.present(root, path, result)

    def read(key):
        path, result = files[key]
        return devices.text(root, path, result)

    modules = [is_present("module." + m) for m in devices.KVM_MODULES]
    nested = [read("nested.kvm_intel"), read("nested.kvm_amd")]
    kvm = devices.kvm_facts(kvm_raw, nested, modules, deep)
    xen = devices.xen_facts(is_present("proc_xen"), read("xen_caps"), read("hv_type"), read("hv_caps"))
    kqemu = devices.kqemu_facts(is_present("kqemu"))
    hvm = verdict.decide(facts.cpu, kvm, xen, facts.kernel_flags, facts.msr)
    return kvm, kqemu, xen, hvm


def _host(arch, facts, kvm_raw, files, deep, root, device_facts=None):
    """The Host; ``device_facts`` saves decoding when the live probe's
    results did not change since it last decoded them."""
    kvm, kqemu, xen, hvm = device_facts or _device_facts(facts, kvm_raw, files, deep, root)
    return Host(
        arch=arch,
        cpu=facts.cpu or _NO_CPU,
        hypervisor=facts.hypervisor,
        kvm=kvm,
        kqemu=kqemu,
        xen=xen,
        hvm=hvm,
        guests=Lazy(lambda: emulators.host_guests(root, arch, kvm, kqemu, xen)),
        kernel_flags=facts.kernel_flags,
        msr=facts.msr_items,
    )


def _check_root(root):
    if "\0" in root:
        raise CapsfastError("root %r: a path cannot hold a NUL byte" % root)
    try:
        st = os.stat(root)
    except OSError as e:
        raise CapsfastError("root %s: %s" % (root, e.strerror)) from None
    if not (st.st_mode & 0o170000 == 0o040000):
        raise CapsfastError("root %s: not a directory" % root)


def _live_cpu_facts(cpu_raw):
    """CPU facts of the running host from its first crossing's CPUID."""
    leaves = cpu_raw
    # Kernel flags and MSRs matter only where CPUID shows vmx or svm (rules 1
    # and 4); elsewhere the second crossing is saved.
    if leaves is not None and not (
        leaves[cpuid.BASIC1][cpuid.ECX] >> 5 & 1 or leaves[cpuid.EXT1][cpuid.ECX] >> 2 & 1
    ):
        cpu_files = {"cpuinfo": ("/proc/cpuinfo", (-errno.ENOENT, 0, None, False, 0))}
    else:
        cpu_files = _run_cpu_files("/")
    return _cpu_facts("/", _live_arch, leaves, "cpuid", cpu_files)


def _probe_live(deep):
    """The running host; its CPU facts are gathered once per process.

    Every call crosses into C once and re-reads the devices and files; when
    the results are byte for byte those of the last call, so is their
    meaning, and the decoded device facts are reused."""
    facts = _live_cpu
    if facts is None:
        with _lock:
            if _live_cpu is None:
                return _first_live(deep)
            facts = _live_cpu
    try:
        batch = _pools[_LIVE_PLAN].pop()
    except (KeyError, IndexError):
        batch = _take(*_LIVE_PLAN)[0]
    try:
        snapshot = batch.cross(False, deep)
        memo = _live_memo
        unchanged = not deep and memo is not None and memo[0] == snapshot
        if not unchanged:
            _cpu, kvm_raw, results = batch.results()
    finally:
        _give(_LIVE_PLAN, batch)
    if not unchanged:
        return _remember(snapshot, facts, _decode_live(facts, kvm_raw, results, deep), deep)
    # Nothing changed: the last Host serves again while its guests are still
    # to be found (once found, they may have gone stale).
    if tuple.__getitem__(memo[2], _GUESTS).pending:
        return memo[2]
    return _remember(snapshot, facts, memo[1], deep)


def _decode_live(facts, kvm_raw, results, deep):
    return _device_facts(facts, kvm_raw, _keyed(devices.DEVICE_FILES, results), deep, "/")


def _remember(snapshot, facts, device_facts, deep):
    """The live Host from its device facts, kept with the crossing's
    snapshot for the next refresh to compare with."""
    global _live_memo
    host = _host(_live_arch, facts, None, None, deep, "/", device_facts)
    if not deep:
        _live_memo = (snapshot, device_facts, host)
    return host


def _first_live(deep):
    """The first live probe of the process (the caller holds the lock):
    CPUID and the devices in one crossing."""
    global _live_cpu, _live_arch
    _live_arch = normalize_arch(os.uname().machine)
    want_cpu = _native.HAS_CPUID and _live_arch in X86
    batch, key = _take(*_LIVE_PLAN)
    try:
        snapshot = batch.cross(want_cpu, deep)
        cpu_raw, kvm_raw, results = batch.results()
    finally:
        _give(key, batch)
    facts = _live_cpu = _live_cpu_facts(cpu_raw)
    return _remember(snapshot, facts, _decode_live(facts, kvm_raw, results, deep), deep)


def _run_cpu_files(root):
    plan = devices.CPU_FILES
    batch = _native.Batch(None, devices.batch_specs(root, plan))
    _cpu, _kvm, results = batch.run(False, False)
    return _keyed(plan, results)


def _probe_other(root, dump, arch, deep):
    """A fake root, a dump or a forced arch: nothing cached, nothing live
    unless root is "/" and no dump is given."""
    if root != "/":
        _check_root(root)
    leaves = _read_dump(os.fspath(dump)) if dump is not None else None
    cpu_raw, kvm_raw, files = _run(root, True, arch is None and root != "/", False, deep)
    if arch is None:
        if root == "/":
            arch = normalize_arch(os.uname().machine)
        else:
            path, result = files["arch"]
            text = devices.text(root, path, result)
            arch = normalize_arch(text) if text else normalize_arch(os.uname().machine)
    else:
        arch = normalize_arch(arch)
    source = "dump"
    if leaves is None and root == "/" and _native.HAS_CPUID and arch in X86:
        if _live_cpu is not None:
            leaves = _live_cpu.leaves
        else:
            leaves, _kvm, _files = _native.Batch(None, []).run(True, False)
        source = "cpuid"
    facts = _cpu_facts(root, arch, leaves, source, files)
    return _host(arch, facts, kvm_raw, files, deep, root)


def probe(root="/", cpuid=None, arch=None, deep=False, refresh=False, machines=False):
    """What this host (or the one under ``root``) offers for virtualization.

    ``cpuid``: path to a ``cpuid -r -1`` dump to use instead of the live CPU.
    ``arch``: force the host architecture.  ``deep``: also try
    ``KVM_CREATE_VM``.  The plain live call is cached; ``refresh=True``
    re-reads the devices and files (not the CPU, which cannot change).
    ``machines``: also list each emulator's machine types (runs each
    emulator once, then answers from an on-disk cache)."""
    global _live
    if machines:
        from capsfast import machines as machine_types

        host = probe(root, cpuid, arch, deep, refresh)
        return host._replace(guests=machine_types.attach(host.guests, os.fspath(root)))
    if root == "/" and cpuid is None and arch is None:
        if deep:
            return _probe_live(True)
        host = _live
        if host is None or refresh:
            host = _live = _probe_live(False)
        return host
    return _probe_other(os.fspath(root), cpuid, arch, deep)


def kvm_usable():
    """True if this process can run KVM guests now (cached live probe)."""
    host = _live
    if host is None:
        host = probe()
    return host.kvm.usable


def _forget_live():
    """Drop the live caches (tests use it to start as a new process would)."""
    global _live, _live_cpu, _live_arch, _live_memo
    with _lock:
        _live = _live_cpu = _live_arch = _live_memo = None
