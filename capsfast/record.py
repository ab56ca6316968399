"""``capsfast record DIR``: this host as a replayable scenario.

Writes ``DIR/cpuid.txt`` (the leaves the probe reads, in ``cpuid -r -1``
form), ``DIR/root/`` (every file the probe read, as read; an empty regular
file for each device node, which replays as "exists, not a character
device"; directories as directories) and ``DIR/scenario.json`` (the MSR
values, which cannot be stored as a file).  The layout is the one of
``tests/hosts/<scenario>/``.
"""
import os
import stat
import time

from capsfast import _native, cpuid, facts
from capsfast.constants import KVM_DEVICE
from capsfast.errors import CapsfastError
from capsfast.render.json import dumps


def record(directory: str) -> list[str]:
    """Capture the live host into ``directory``; returns lines to print."""
    if not directory:
        raise CapsfastError("record: the directory name is empty")
    if "\0" in directory:
        raise CapsfastError("record: %r: a path cannot hold a NUL byte" % directory)
    if os.path.exists(os.path.join(directory, "root")):
        raise CapsfastError("%s already holds a recording (root/ exists)" % directory)
    entries = facts.DEVICE_FILES + facts.CPU_FILES + (facts.ARCH_FILE,)
    results = _native.Batch(KVM_DEVICE, facts.specs("/", entries)).run(_native.HAS_CPUID, False)
    root = os.path.join(directory, "root")
    written = []
    try:
        os.makedirs(root)
        kvm = results.kvm
        if kvm is not None and kvm.stat.ok:
            written.append(_placeholder(root, KVM_DEVICE, kvm.mode))
        msr = {}
        for (_key, path, op, number, _size), result in zip(entries, results.files):
            if not result.outcome.ok:
                continue
            if op == _native.MSR and result.value is not None:
                msr["0x%x" % number] = "0x%x" % result.value
            elif op == _native.STAT:
                written.append(_placeholder(root, path, result.mode))
            elif result.data is not None:
                written.append(_write(root, path, result.data))
        leaves = results.cpu
        if leaves is not None:
            with open(os.path.join(directory, "cpuid.txt"), "w") as f:
                f.write(cpuid.format_dump(leaves))
            written.append("cpuid.txt")
        scenario = {
            "description": "recorded by capsfast record on %s" % time.strftime("%Y-%m-%d"),
            "msr": msr,
        }
        with open(os.path.join(directory, "scenario.json"), "w") as f:
            f.write(dumps(scenario) + "\n")
    except OSError as e:
        raise CapsfastError("cannot write %s: %s" % (e.filename or directory, e.strerror)) from None
    from capsfast.probing import probe

    host = probe()
    return ["recorded %d files into %s (arch %s, hvm %s, kvm usable: %s)" % (
        len(written) + 1, directory, host.arch, host.hvm.status, host.kvm.usable)]


def _target(root: str, path: str) -> str:
    target = root + path
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return target


def _placeholder(root: str, path: str, mode: int) -> str:
    target = _target(root, path)
    if stat.S_ISDIR(mode):
        os.makedirs(target, exist_ok=True)
        # Git keeps no empty directory; a marker keeps the recording portable.
        open(os.path.join(target, ".present"), "w").close()
    else:
        open(target, "w").close()
    return path


def _write(root: str, path: str, data: bytes) -> str:
    with open(_target(root, path), "wb") as f:
        f.write(data)
    return path
