"""The full CPUID walk: the C module's (``_native.cpuid_walk``) against the
``cpuid`` tool on this machine, the Python walk (the collector's, ``collector.walk``) rule
by rule over recorded dumps, hostile CPUs, and the dump it is written to.

The walk is libvirt's x86 host CPU probe's (cpuidSet() in
src/cpu/cpu_x86.c), plus the hypervisor leaves; csrc/capsfast.h lists the
rules and the bounds.  The C walk on a hostile CPU runs in the sanitizer
driver (tests/c/sanitize_driver.c, ``ci/sanitize.sh c``), with the same
numbers as the Python cases below.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capsfast import _native
from capsfast.sources import cpuid_dump
from capsfast.recording import collector
from capsfast.parts.core import parse
from capsfast._capsfast import lib
from capsfast.errors import CapsfastError

HERE = Path(__file__).resolve().parent.parent  # tests/
X86 = os.uname().machine in ("x86_64", "i686", "i586", "i386")
HAVE_TOOL = shutil.which("cpuid") is not None
EAX, EBX, ECX, EDX = range(4)
ZERO = parse.ZERO
ONES = (0xFFFFFFFF,) * 4
HV, EXT = 0x40000000, 0x80000000

live = pytest.mark.skipif(not X86, reason="CPUID exists on x86 only")
tool = pytest.mark.skipif(not HAVE_TOOL, reason="the Debian package 'cpuid' is not installed")

# Registers that name the logical processor which ran CPUID: they differ
# from one CPU to the next (checked below), and nothing else does.
PER_CPU = {
    (0x1, EBX): 0xFF000000,         # initial APIC id (EBX[31:24])
    (0xB, EDX): 0xFFFFFFFF,         # x2APIC id, every subleaf
    (0x1F, EDX): 0xFFFFFFFF,        # x2APIC id, V2 extended topology
    (0x8000001E, EAX): 0xFFFFFFFF,  # AMD extended APIC id
    (0x8000001E, EBX): 0x000000FF,  # AMD core (compute unit) id; [15:8], threads per core, is shared
    (0x8000001E, ECX): 0x000000FF,  # AMD node id; [10:8], nodes per package, is shared
}
# Leaf 4 EAX[31:26] (cores per package - 1) and EAX[25:14] (threads sharing
# the cache) describe the package, not the CPU: equal on every CPU, kept.


def masked(entries):
    """The walk with the per-CPU bits cleared."""
    return [(leaf, sub, tuple(r & ~PER_CPU.get((leaf, i), 0) for i, r in enumerate(regs)))
            for leaf, sub, regs in entries]


def dropped(entries):
    """CPUIDs a walk runs and does not keep (csrc/capsfast.h): the end of
    0xb (a level type of 0), the end of 0x12 (an EPC type of 0) or, without
    SGX, its subleaf 0, and 0x17 below EAX 3; none where a list ran to the
    subleaf bound."""
    count = {}
    for leaf, _sub, _regs in entries:
        count[leaf] = count.get(leaf, 0) + 1
    top = min(entries[0][2][EAX], parse.WALK_LEAVES - 1)
    return ((top >= 0xB and count.get(0xB, 0) < parse.WALK_SUBLEAVES)
            + (top >= 0x12 and count.get(0x12, 0) < parse.WALK_SUBLEAVES)
            + (top >= 0x17 and 0x17 not in count))


class Reader:
    """``read(leaf, subleaf)`` over a table, zeros where it has nothing;
    ``calls`` lists every read, as the C walk's CPUIDs would be."""

    def __init__(self, table, default=ZERO):
        self.table = table
        self.default = default
        self.calls = []

    def __call__(self, leaf, subleaf):
        self.calls.append((leaf, subleaf))
        regs = self.table.get((leaf, subleaf))
        if regs is None:
            regs = self.default(leaf, subleaf) if callable(self.default) else self.default
        return regs


def keys(entries):
    return [(leaf, sub) for leaf, sub, _regs in entries]


def cpu(**leaves):
    """A table from keyword arguments: l_4=regs is leaf 4 subleaf 0,
    l_4_2 subleaf 2, l_80000000 an extended leaf (hex after the l_)."""
    table = {}
    for name, regs in leaves.items():
        parts = name.split("_")[1:]
        table[(int(parts[0], 16), int(parts[1], 16) if len(parts) > 1 else 0)] = regs
    return table


# -- recorded dumps --------------------------------------------------------------

# Constructed for these tests, not captured: a client Intel with SGX (after
# a Coffee Lake's dump) whose maximum leaf is raised to 0x17 so that the
# SoC vendor leaf is there, leaf 7 with a subleaf 1, leaf 0xd subleaf 8
# named by subleaf 1's ECX only, and a 0x40000000 line (no hypervisor bit:
# never read).
INTEL_SGX = """\
CPU:
   0x00000000 0x00: eax=0x00000017 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000906ea ebx=0x00100800 ecx=0x7ffafbff edx=0xbfebfbff
   0x00000002 0x00: eax=0x76036301 ebx=0x00f0b5ff ecx=0x00000000 edx=0x00c30000
   0x00000003 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000004 0x00: eax=0x1c004121 ebx=0x01c0003f ecx=0x0000003f edx=0x00000000
   0x00000004 0x01: eax=0x1c004122 ebx=0x01c0003f ecx=0x0000003f edx=0x00000000
   0x00000004 0x02: eax=0x1c004143 ebx=0x00c0003f ecx=0x000003ff edx=0x00000000
   0x00000004 0x03: eax=0x1c03c163 ebx=0x03c0003f ecx=0x00002fff edx=0x00000006
   0x00000004 0x04: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000005 0x00: eax=0x00000040 ebx=0x00000040 ecx=0x00000003 edx=0x00142120
   0x00000006 0x00: eax=0x000027f7 ebx=0x00000002 ecx=0x00000009 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x029c6fbf ecx=0x40000000 edx=0xbc002e00
   0x00000007 0x01: eax=0x00000010 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000008 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000009 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000a 0x00: eax=0x07300404 ebx=0x00000000 ecx=0x00000000 edx=0x00000603
   0x0000000b 0x00: eax=0x00000001 ebx=0x00000002 ecx=0x00000100 edx=0x00000000
   0x0000000b 0x01: eax=0x00000004 ebx=0x0000000c ecx=0x00000201 edx=0x00000000
   0x0000000b 0x02: eax=0x00000000 ebx=0x00000000 ecx=0x00000002 edx=0x00000000
   0x0000000c 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x00: eax=0x0000001f ebx=0x00000440 ecx=0x00000440 edx=0x00000000
   0x0000000d 0x01: eax=0x0000000f ebx=0x00000440 ecx=0x00000100 edx=0x00000000
   0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x03: eax=0x00000040 ebx=0x000003c0 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x04: eax=0x00000040 ebx=0x00000400 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x08: eax=0x00000080 ebx=0x00000000 ecx=0x00000001 edx=0x00000000
   0x0000000e 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000f 0x00: eax=0x00000000 ebx=0x0000000b ecx=0x00000000 edx=0x00000002
   0x0000000f 0x01: eax=0x00000000 ebx=0x00000000 ecx=0x0000000b edx=0x00000007
   0x00000010 0x00: eax=0x00000000 ebx=0x00000002 ecx=0x00000000 edx=0x00000000
   0x00000010 0x01: eax=0x0000000a ebx=0x00000000 ecx=0x00000004 edx=0x0000000f
   0x00000011 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000012 0x00: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x0000241f
   0x00000012 0x01: eax=0x00000036 ebx=0x00000000 ecx=0x0000001f edx=0x00000000
   0x00000012 0x02: eax=0x70200001 ebx=0x00000000 ecx=0x05d80001 edx=0x00000000
   0x00000012 0x03: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000013 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000014 0x00: eax=0x00000001 ebx=0x0000000f ecx=0x00000007 edx=0x00000000
   0x00000014 0x01: eax=0x02490002 ebx=0x003f3fff ecx=0x00000000 edx=0x00000000
   0x00000015 0x00: eax=0x00000002 ebx=0x0000013c ecx=0x00000000 edx=0x00000000
   0x00000016 0x00: eax=0x00000bb8 ebx=0x00001194 ecx=0x00000064 edx=0x00000000
   0x00000017 0x00: eax=0x00000003 ebx=0x00000001 ecx=0x00000002 edx=0x00000003
   0x00000017 0x01: eax=0x736e6f43 ebx=0x63757274 ecx=0x20646574 edx=0x00436f53
   0x00000017 0x02: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000017 0x03: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x40000000 0x00: eax=0x00000bb8 ebx=0x00001194 ecx=0x00000064 edx=0x00000000
   0x80000000 0x00: eax=0x80000008 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000001 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000121 edx=0x2c100800
   0x80000002 0x00: eax=0x65746e49 ebx=0x2952286c ecx=0x726f4320 edx=0x4d542865
   0x80000003 0x00: eax=0x37692029 ebx=0x3037382d ecx=0x50432030 edx=0x20402055
   0x80000004 0x00: eax=0x30322e33 ebx=0x007a4847 ecx=0x00000000 edx=0x00000000
   0x80000005 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000006 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x01006040 edx=0x00000000
   0x80000007 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000100
   0x80000008 0x00: eax=0x00003027 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
"""
INTEL_SGX_KEYS = (
    [(0, 0), (1, 0), (2, 0), (3, 0)] + [(4, s) for s in range(5)] + [(5, 0), (6, 0), (7, 0), (7, 1)]
    + [(8, 0), (9, 0), (0xA, 0), (0xB, 0), (0xB, 1), (0xC, 0)]
    + [(0xD, s) for s in (0, 1, 2, 3, 4, 8)] + [(0xE, 0), (0xF, 0), (0xF, 1), (0x10, 0), (0x10, 1), (0x11, 0)]
    + [(0x12, 0), (0x12, 1), (0x12, 2), (0x13, 0), (0x14, 0), (0x14, 1), (0x15, 0), (0x16, 0)]
    + [(0x17, s) for s in range(4)]
    + [(EXT + n, 0) for n in range(9)]
)

# Constructed for these tests, not captured: a bare-metal AMD EPYC (after
# a Milan's dump) with L3 monitoring and allocation (0xf, 0x10), CET state
# in leaf 0xd named by subleaf 1's ECX, and the extended range to
# 0x80000023; the cache subleaves of 0x8000001d and 0x80000020 subleaf 1
# are in the dump, as the tool prints them, and outside libvirt's walk.
EPYC = """\
CPU 0:
   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65
   0x00000001 0x00: eax=0x00a00f11 ebx=0x00800800 ecx=0x7ef8320b edx=0x178bfbff
   0x00000002 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000003 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000004 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000005 0x00: eax=0x00000040 ebx=0x00000040 ecx=0x00000003 edx=0x00000011
   0x00000006 0x00: eax=0x00000004 ebx=0x00000000 ecx=0x00000001 edx=0x00000000
   0x00000007 0x00: eax=0x00000000 ebx=0x219c97a9 ecx=0x0040069c edx=0x00000010
   0x00000008 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000009 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000a 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000b 0x00: eax=0x00000001 ebx=0x00000002 ecx=0x00000100 edx=0x00000000
   0x0000000b 0x01: eax=0x00000007 ebx=0x00000080 ecx=0x00000201 edx=0x00000000
   0x0000000b 0x02: eax=0x00000000 ebx=0x00000000 ecx=0x00000002 edx=0x00000000
   0x0000000c 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x00: eax=0x00000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000
   0x0000000d 0x01: eax=0x0000000f ebx=0x00000348 ecx=0x00001800 edx=0x00000000
   0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x09: eax=0x00000008 ebx=0x00000980 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x0b: eax=0x00000010 ebx=0x00000000 ecx=0x00000001 edx=0x00000000
   0x0000000d 0x0c: eax=0x00000018 ebx=0x00000000 ecx=0x00000001 edx=0x00000000
   0x0000000e 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000f 0x00: eax=0x00000000 ebx=0x000000ff ecx=0x00000000 edx=0x00000002
   0x0000000f 0x01: eax=0x00000000 ebx=0x00000040 ecx=0x000000ff edx=0x00000007
   0x00000010 0x00: eax=0x00000000 ebx=0x00000002 ecx=0x00000000 edx=0x00000000
   0x00000010 0x01: eax=0x0000000f ebx=0x00000000 ecx=0x00000004 edx=0x0000000f
   0x20000000 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x40000000 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000000 0x00: eax=0x80000023 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65
   0x80000001 0x00: eax=0x00a00f11 ebx=0x40000000 ecx=0x75c237ff edx=0x2fd3fbff
   0x80000002 0x00: eax=0x20444d41 ebx=0x43595045 ecx=0x36373720 edx=0x34362033
   0x80000003 0x00: eax=0x726f432d ebx=0x72502065 ecx=0x7365636f edx=0x00726f73
   0x80000004 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000005 0x00: eax=0xff40ff40 ebx=0xff40ff40 ecx=0x20080140 edx=0x20080140
   0x80000006 0x00: eax=0x48002200 ebx=0x68004200 ecx=0x02006140 edx=0x08009140
   0x80000007 0x00: eax=0x00000000 ebx=0x0000003b ecx=0x00000000 edx=0x00006799
   0x80000008 0x00: eax=0x00003030 ebx=0x111ef657 ecx=0x0000707f edx=0x00010000
   0x80000009 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000000a 0x00: eax=0x00000001 ebx=0x00008000 ecx=0x00000000 edx=0x119b3cff
   0x8000000b 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000000c 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000000d 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000000e 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000000f 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000010 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000011 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000012 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000013 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000014 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000015 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000016 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000017 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000018 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000019 0x00: eax=0xf040f040 ebx=0xf0400000 ecx=0x00000000 edx=0x00000000
   0x8000001a 0x00: eax=0x00000006 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000001b 0x00: eax=0x000003ff ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000001c 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000001d 0x00: eax=0x00004121 ebx=0x01c0003f ecx=0x0000003f edx=0x00000000
   0x8000001d 0x01: eax=0x00004122 ebx=0x01c0003f ecx=0x0000003f edx=0x00000000
   0x8000001d 0x02: eax=0x00004143 ebx=0x01c0003f ecx=0x000003ff edx=0x00000002
   0x8000001d 0x03: eax=0x0001c163 ebx=0x03c0003f ecx=0x00007fff edx=0x00000001
   0x8000001d 0x04: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x8000001e 0x00: eax=0x00000000 ebx=0x00000100 ecx=0x00000000 edx=0x00000000
   0x8000001f 0x00: eax=0x0101fd3f ebx=0x00004173 ecx=0x000001fd edx=0x00000001
   0x80000020 0x00: eax=0x00000000 ebx=0x00000002 ecx=0x00000000 edx=0x00000000
   0x80000020 0x01: eax=0x00000000 ebx=0x0000000b ecx=0x00000000 edx=0x00000000
   0x80000021 0x00: eax=0x00000045 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000022 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x80000023 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
CPU 1:
   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65
   0x00000001 0x00: eax=0x00a00f11 ebx=0x01800800 ecx=0x7ef8320b edx=0x178bfbff
"""
EPYC_KEYS = (
    [(leaf, 0) for leaf in range(0xB)] + [(0xB, 0), (0xB, 1), (0xC, 0)]
    + [(0xD, s) for s in (0, 1, 2, 9, 0xB, 0xC)] + [(0xE, 0), (0xF, 0), (0xF, 1), (0x10, 0), (0x10, 1)]
    + [(EXT + n, 0) for n in range(0x24)]
)

HOST_DUMPS = sorted(HERE.glob("hosts/*/cpuid.txt"))


def walk_dump(text, name="dump"):
    table = cpuid_dump.parse_dump_walk(text, name)
    read = Reader(table)
    return collector.walk(read), table, read


@pytest.mark.parametrize("text, expected", [(INTEL_SGX, INTEL_SGX_KEYS), (EPYC, EPYC_KEYS)], ids=["intel-sgx", "epyc"])
def test_recorded_dumps(text, expected):
    entries, table, read = walk_dump(text)
    assert keys(entries) == expected
    # Every entry is the dump's line; every read is a line of the dump, or
    # a subleaf past the tool's end of a list.
    assert all(table[(leaf, sub)] == regs for leaf, sub, regs in entries)
    assert len(read.calls) == len(entries) + dropped(entries)


def test_recorded_dumps_drop_what_libvirt_drops():
    _entries, _table, read = walk_dump(INTEL_SGX)
    # 0xb's level type 0 at subleaf 2, 0x12's EPC type 0 at subleaf 3: read, not kept.
    assert (0xB, 2) in read.calls and (0x12, 3) in read.calls
    assert HV not in [leaf for leaf, _sub in read.calls]  # no hypervisor bit: never read
    _entries, _table, read = walk_dump(EPYC)
    assert not [c for c in read.calls if c[0] in (0x12, 0x14, 0x17)]  # above the maximum leaf
    assert (0x8000001D, 1) not in read.calls and (0x80000020, 1) not in read.calls


@pytest.mark.parametrize("path", HOST_DUMPS, ids=[p.parent.name for p in HOST_DUMPS])
def test_host_dumps(path):
    """The dumps of tests/hosts: leaf 0 first, basic then extended then
    hypervisor leaves, each within its bounds, every kept subleaf from the
    dump where the dump has it, and the reads the entries and the drops."""
    entries, table, read = walk_dump(path.read_text(), str(path))
    order = [0 if leaf < HV else 2 if leaf < EXT else 1 for leaf, _sub, _regs in entries]
    assert entries[0][:2] == (0, 0) and order == sorted(order)
    assert len(set(keys(entries))) == len(entries) <= parse.WALK_MAX
    for leaf, sub, regs in entries:
        assert regs == table.get((leaf, sub), ZERO)
    top = min(table[(0, 0)][EAX], 0xFF)
    assert [leaf for leaf, sub in keys(entries) if leaf < HV and sub == 0] == [
        leaf for leaf in range(top + 1) if leaf not in (0xB, 0x12, 0x17) or (leaf, 0) in keys(entries)]
    assert (EXT, 0) in keys(entries)
    hypervisor = top >= 1 and table.get((1, 0), ZERO)[ECX] >> 31 & 1
    assert any(leaf == HV for leaf, _s in keys(entries)) == bool(hypervisor)
    assert len(read.calls) == len(entries) + dropped(entries)


# -- the rules, one by one -------------------------------------------------------

def basic_ones(leaf, _subleaf):
    """All ones in every basic leaf but leaf 1 (no hypervisor bit), zeros
    elsewhere: a subleaf read past a rule's end would show."""
    return ONES if leaf < HV and leaf != 1 else ZERO


def walk_of(table, default=ZERO):
    read = Reader(table, default)
    return collector.walk(read), read


def test_basic_then_extended_then_hypervisor():
    entries, _read = walk_of(cpu(l_0=(2, 0, 0, 0), l_1=(0, 0, 1 << 31, 0), l_80000000=(EXT + 1, 0, 0, 0),
                                 l_40000000=(HV + 2, 0, 0, 0)))
    assert keys(entries) == [(0, 0), (1, 0), (2, 0), (EXT, 0), (EXT + 1, 0), (HV, 0), (HV + 1, 0), (HV + 2, 0)]


def test_leaves_above_the_maximum_are_not_read():
    entries, read = walk_of(cpu(l_0=(3, 0, 0, 0)), default=basic_ones)
    assert keys(entries) == [(0, 0), (1, 0), (2, 0), (3, 0), (EXT, 0)]
    assert read.calls == keys(entries)


def test_leaf_4_until_the_cache_type_is_0_that_one_kept():
    types = {0: 1, 1: 2, 2: 3, 3: 0}
    table = {(4, s): (t | 0x100, s, 0, 0) for s, t in types.items()}
    table[(0, 0)] = (4, 0, 0, 0)
    entries, _read = walk_of(table, default=basic_ones)
    assert [sub for leaf, sub in keys(entries) if leaf == 4] == [0, 1, 2, 3]
    # Type 0 at subleaf 0: that subleaf alone.
    entries, _read = walk_of(cpu(l_0=(4, 0, 0, 0), l_4=(0x100, 0, 0, 0)), default=basic_ones)
    assert [sub for leaf, sub in keys(entries) if leaf == 4] == [0]


def test_leaf_7_subleaves_0_to_eax():
    entries, _read = walk_of(cpu(l_0=(7, 0, 0, 0), l_7=(2, 0, 0, 0)))
    assert [sub for leaf, sub in keys(entries) if leaf == 7] == [0, 1, 2]


def test_leaf_b_while_the_level_type_is_not_0():
    table = cpu(l_0=(0xB, 0, 0, 0), l_b=(1, 2, 0x100, 7), l_b_1=(4, 8, 0x201, 7), l_b_2=(0, 0, 2, 7))
    entries, read = walk_of(table, default=basic_ones)
    assert [sub for leaf, sub in keys(entries) if leaf == 0xB] == [0, 1]
    assert (0xB, 2) in read.calls and (0xB, 3) not in read.calls  # read, dropped, the end
    # Level type 0 at subleaf 0: no entry at all (libvirt keeps none).
    entries, read = walk_of(cpu(l_0=(0xB, 0, 0, 0), l_b=(0, 0, 0, 0)), default=basic_ones)
    assert 0xB not in [leaf for leaf, _s in keys(entries)] and (0xB, 0) in read.calls


def test_leaf_d_subleaves_0_1_and_each_bit_of_both_masks():
    table = cpu(l_0=(0xD, 0, 0, 0), l_d=(0x207, 0, 0, 1 << 1), l_d_1=(0xF, 0, 1 << 8 | 1 << 11, 1 << 3))
    entries, _read = walk_of(table)
    # Bits 0 and 1 of subleaf 0's EAX are subleaves 0 and 1 already.
    assert [sub for leaf, sub in keys(entries) if leaf == 0xD] == [0, 1, 2, 8, 9, 11, 33, 35]


def test_leaves_f_and_10_by_their_resource_bitmaps():
    table = cpu(l_0=(0x10, 0, 0, 0), l_f=(0, 0xFF, 0, 1 << 1 | 1 << 3 | 1),
                l_10=(0, 1 << 1 | 1 << 2 | 1 << 31, 0, 0xFFFF))
    entries, _read = walk_of(table)
    # Bit 0 names no subleaf; 0xf's EBX and 0x10's EDX are not bitmaps.
    assert [sub for leaf, sub in keys(entries) if leaf == 0xF] == [0, 1, 3]
    assert [sub for leaf, sub in keys(entries) if leaf == 0x10] == [0, 1, 2, 31]


def test_leaf_12_only_with_sgx():
    epc = {(0x12, s): (1, 0, 0, 0) for s in range(2, 5)}
    without = {**cpu(l_0=(0x12, 0, 0, 0), l_7=(0, 0, 0, 0), l_12=(1, 0, 0, 0x241F)), **epc}
    entries, read = walk_of(without)
    assert 0x12 not in [leaf for leaf, _s in keys(entries)]
    assert [c for c in read.calls if c[0] == 0x12] == [(0x12, 0)]  # read, dropped
    with_sgx = {**without, **cpu(l_7=(0, 1 << 2, 0, 0))}
    entries, read = walk_of(with_sgx)
    # Subleaves 0 and 1, then 2, 3, 4 while EAX[3:0] is not 0; 5 ends them.
    assert [sub for leaf, sub in keys(entries) if leaf == 0x12] == [0, 1, 2, 3, 4]
    assert (0x12, 5) in read.calls and (0x12, 6) not in read.calls


def test_leaf_14_subleaves_0_to_eax():
    entries, _read = walk_of(cpu(l_0=(0x14, 0, 0, 0), l_14=(1, 0, 0, 0)), default=basic_ones)
    assert [sub for leaf, sub in keys(entries) if leaf == 0x14] == [0, 1]


def test_leaf_17_only_from_eax_3():
    entries, read = walk_of(cpu(l_0=(0x17, 0, 0, 0), l_17=(2, 0, 0, 0)), default=basic_ones)
    assert 0x17 not in [leaf for leaf, _s in keys(entries)] and (0x17, 0) in read.calls
    entries, _read = walk_of(cpu(l_0=(0x17, 0, 0, 0), l_17=(3, 0, 0, 0)), default=basic_ones)
    assert [sub for leaf, sub in keys(entries) if leaf == 0x17] == [0, 1, 2, 3]


def test_extended_range():
    entries, _read = walk_of(cpu(l_80000000=(EXT + 3, 0, 0, 0)))
    assert [leaf for leaf, _s in keys(entries) if leaf >= EXT] == [EXT, EXT + 1, EXT + 2, EXT + 3]
    # A maximum below the range (an old CPU echoing a basic leaf): 0x80000000 alone.
    entries, read = walk_of(cpu(l_80000000=(0x0D, 0, 0, 0)), default=basic_ones)
    assert [leaf for leaf, _s in keys(entries) if leaf >= EXT] == [EXT]
    assert (EXT + 1, 0) not in read.calls


def test_hypervisor_leaves_only_with_the_hypervisor_bit():
    table = cpu(l_0=(1, 0, 0, 0), l_40000000=(HV + 1, 0, 0, 0))
    entries, read = walk_of(table)
    assert not [c for c in read.calls if HV <= c[0] < EXT]
    table[(1, 0)] = (0, 0, 1 << 31, 0)
    entries, _read = walk_of(table)
    assert [leaf for leaf, _s in keys(entries) if HV <= leaf < EXT] == [HV, HV + 1]
    # EAX below the range (KVM before 2.6.37 answered 0): 0x40000000 alone.
    table[(HV, 0)] = ZERO
    entries, _read = walk_of(table, default=ONES)
    assert [leaf for leaf, _s in keys(entries) if HV <= leaf < EXT] == [HV]


# -- hostile CPUs: the numbers of tests/c/sanitize_driver.c's fake CPUs ----------

def hostile(name):
    """read() of the fake CPUs of the sanitizer driver, by name."""
    def read(leaf, sub):
        if name == "all_ones":
            return ONES
        if name == "huge_max":
            return (0xFFFFFFFF, 0, 0, 0) if leaf == 0 else ZERO
        if name == "leaf7_huge":
            return {(0, 0): (7, 0, 0, 0), (7, 0): (0xFFFFFFFF, 0, 0, 0)}.get((leaf, sub), ZERO)
        if name == "xsave_all":
            return {(0, 0): (0xD, 0, 0, 0), (0xD, 0): (0xFFFFFFFF, 0, 0, 0xFFFFFFFF),
                    (0xD, 1): (0, 0, 0xFFFFFFFF, 0xFFFFFFFF)}.get((leaf, sub), ZERO)
        if name in ("hv_huge", "hv_low"):
            return {(0, 0): (1, 0, 0, 0), (1, 0): (0, 0, 1 << 31, 0),
                    (HV, 0): (0xFFFFFFFF if name == "hv_huge" else 0, 0, 0, 0)}.get((leaf, sub), ZERO)
        assert name == "sgx"
        if leaf == 0x12 and 2 <= sub < 6:
            return (1, 0, 0, 0)
        return {(0, 0): (0x17, 0, 0, 0), (7, 0): (0, 1 << 2, 0, 0), (0x17, 0): (3, 0, 0, 0)}.get((leaf, sub), ZERO)
    return read


@pytest.mark.parametrize("name, entries, reads, last", [
    # Every bound at once: 3 x 256 leaves, 64 subleaves for 0x4, 0x7, 0xb,
    # 0xd, 0x12, 0x14 and 0x17, 32 for 0xf and 0x10; nothing dropped.
    ("all_ones", parse.WALK_MAX, parse.WALK_MAX, (HV + 0xFF, 0)),
    # A maximum leaf of 0xffffffff: leaves 0..0xff (0xb, 0x12, 0x17
    # dropped, 0xd subleaf 1 added), then 0x80000000 alone.
    ("huge_max", 256 - 3 + 1 + 1, 256 + 1 + 1, (EXT, 0)),
    ("leaf7_huge", 7 + 64 + 1, 7 + 64 + 1, (EXT, 0)),
    ("xsave_all", 12 + 64 + 1, 12 + 64 + 1 + 1, (EXT, 0)),
    ("hv_huge", 2 + 1 + 256, 2 + 1 + 256, (HV + 0xFF, 0)),
    ("hv_low", 2 + 1 + 1, 2 + 1 + 1, (HV, 0)),
    ("sgx", 24 - 1 + 1 + 5 + 3 + 1, 24 - 1 + 1 + 5 + 3 + 1 + 2, (EXT, 0)),
])
def test_hostile_cpus_stay_bounded(name, entries, reads, last):
    read = Reader({}, hostile(name))
    walked = collector.walk(read)
    assert (len(walked), len(read.calls)) == (entries, reads)
    assert keys(walked)[-1] == last
    assert len(read.calls) == len(walked) + dropped(walked)
    for leaf, sub, _regs in walked:
        assert leaf & 0x3FFFFFFF < parse.WALK_LEAVES and sub < parse.WALK_SUBLEAVES


def test_bounds_are_the_headers():
    assert (parse.WALK_LEAVES, parse.WALK_SUBLEAVES, parse.WALK_MAX) == (
        lib.CAPSFAST_WALK_LEAVES, lib.CAPSFAST_WALK_SUBLEAVES, lib.CAPSFAST_WALK_MAX)


# -- the dump ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [INTEL_SGX, EPYC] + [p.read_text() for p in HOST_DUMPS])
def test_format_dump_parses_back(text):
    entries, _table, _read = walk_dump(text)
    written = collector.format_walk(entries)
    assert cpuid_dump.parse_dump_walk(written, "written") == {(leaf, sub): regs for leaf, sub, regs in entries}
    # The probe's view of it: subleaf 0 of each leaf.
    assert parse.parse_dump(written, "written") == {leaf: regs for leaf, sub, regs in entries if sub == 0}


def test_format_dump_is_the_tools_layout():
    entries, _table, _read = walk_dump(INTEL_SGX)
    lines = collector.format_walk(entries).splitlines()
    assert lines[0] == "CPU:"
    assert lines[1] == "   0x00000000 0x00: eax=0x00000017 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69"
    # Ascending (leaf, subleaf), as the tool prints: 0x4000.. before 0x8000..
    assert lines[1:] == sorted(lines[1:])
    assert set(lines[1:]) <= set(INTEL_SGX.splitlines())


def test_parse_dump_walk_takes_the_first_cpu_and_the_first_line():
    table = cpuid_dump.parse_dump_walk(EPYC, "epyc")
    assert table[(1, 0)][EBX] == 0x00800800  # CPU 0's, not CPU 1's
    assert table[(0x8000001D, 3)] == (0x0001C163, 0x03C0003F, 0x00007FFF, 1)
    twice = "CPU:\n" + EPYC.splitlines()[1] + "\n   0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n"
    assert cpuid_dump.parse_dump_walk(twice)[(0, 0)][EAX] == 0x10


@pytest.mark.parametrize("text, says", [
    ("CPU:\n   0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3\n", "line 2"),
    ("CPU:\n   0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x100000000\n", "line 2"),
    ("CPU:\n   0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n   zz 0x01: eax=0x1\n", "line 3"),
    ("CPU:\n   0x00000001 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n", "no leaf 0x00000000"),
    ("CPU:\n   0x00000000 0x01: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n", "no leaf 0x00000000"),
    ("", "no leaf 0x00000000"),
])
def test_parse_dump_walk_errors_are_one_line(text, says):
    for parser in (parse.parse_dump, cpuid_dump.parse_dump_walk):
        with pytest.raises(CapsfastError) as e:
            parser(text, "the dump")
        assert says in str(e.value) and "the dump" in str(e.value) and "\n" not in str(e.value)


# -- this machine: the C walk against the cpuid tool --------------------------------

def tool_text(*args):
    return subprocess.run(["cpuid", "-1", "-r"] + list(args), capture_output=True, text=True, check=True,
                          timeout=60).stdout


def tool_reader(table):
    """read() answered by the cpuid tool: its dump, else the tool asked for
    that one subleaf (a dump may leave out a subleaf a walk reads and drops)."""
    def ask(leaf, sub):
        out = tool_text("-l", "0x%x" % leaf, "-s", "0x%x" % sub)
        m = re.search(r"eax=(0x[0-9a-f]+) ebx=(0x[0-9a-f]+) ecx=(0x[0-9a-f]+) edx=(0x[0-9a-f]+)", out)
        assert m, out
        return tuple(int(x, 16) for x in m.groups())
    return Reader(table, ask)


@pytest.fixture
def one_cpu():
    """This process (and the tool, its child) on one CPU meanwhile: the
    APIC ids are those of the CPU that runs CPUID."""
    before = os.sched_getaffinity(0)
    here = min(before)
    os.sched_setaffinity(0, {here})
    try:
        yield here
    finally:
        os.sched_setaffinity(0, before)


def c_walk():
    before = _native.cpuid_executed()
    entries = _native.cpuid_walk()
    return entries, _native.cpuid_executed() - before


@live
@tool
def test_c_walk_equals_the_tool_and_the_python_walk(one_cpu):
    entries, executed = c_walk()
    dump = tool_text()
    table = cpuid_dump.parse_dump_walk(dump, "cpuid -1 -r")
    # Every (leaf, subleaf) the C walk keeps is in the tool's dump, equal.
    missing = [(hex(leaf), sub) for leaf, sub in keys(entries) if (leaf, sub) not in table]
    assert not missing
    assert [(leaf, sub, table[(leaf, sub)]) for leaf, sub, _regs in entries] == entries
    # The reference walk over the same CPU: the same entries, and one read
    # where C ran one CPUID.
    read = tool_reader(table)
    assert collector.walk(read) == entries
    assert executed == len(read.calls) == len(entries) + dropped(entries)
    # What the recording writes is the tool's own lines.
    written = collector.format_walk(entries).splitlines()
    assert written[0] == dump.splitlines()[0]
    assert set(written[1:]) <= set(dump.splitlines())


@live
def test_c_walk_shape():
    entries, executed = c_walk()
    assert entries and entries[0][:2] == (0, 0)
    assert (EXT, 0) in keys(entries)
    regs = dict(((leaf, sub), r) for leaf, sub, r in entries)
    if regs[(1, 0)][ECX] >> 31 & 1:
        hv_max = regs[(HV, 0)][EAX]
        last = HV if hv_max < HV else min(hv_max, HV + 0xFF)
        assert [leaf for leaf, _s in keys(entries) if HV <= leaf < EXT] == list(range(HV, last + 1))
    else:
        assert not [leaf for leaf, _s in keys(entries) if HV <= leaf < EXT]
    # The CPUIDs: one per entry, and those dropped (see dropped()).
    assert executed == len(entries) + dropped(entries)
    assert len(entries) <= lib.CAPSFAST_WALK_MAX


@live
@tool
def test_c_walk_against_the_tool_on_any_cpu():
    """Unpinned, the walk and the tool may run on different CPUs: equal
    but for the registers in PER_CPU."""
    entries, _executed = c_walk()
    table = cpuid_dump.parse_dump_walk(tool_text(), "cpuid -1 -r")
    assert masked(entries) == masked([(leaf, sub, table[(leaf, sub)]) for leaf, sub, _r in entries])


@live
def test_only_the_per_cpu_registers_differ_between_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to compare")
    before = set(cpus)
    walks = []
    try:
        for here in cpus[:2]:
            os.sched_setaffinity(0, {here})
            walks.append(_native.cpuid_walk())
    finally:
        os.sched_setaffinity(0, before)
    first = dict(((leaf, sub), r) for leaf, sub, r in walks[0])
    if first[(0, 0)][EAX] >= 7 and first[(7, 0)][EDX] >> 15 & 1:
        pytest.skip("a hybrid CPU: core types differ in more than their ids (leaves 4, 0x1a)")
    assert keys(walks[0]) == keys(walks[1])
    differ = {(leaf, i) for (leaf, sub, a), (_l, _s, b) in zip(*walks) for i in range(4) if a[i] != b[i]}
    assert differ <= set(PER_CPU), differ
    assert masked(walks[0]) == masked(walks[1])


@live
def test_a_probe_never_runs_the_walk():
    """A first probe in a fresh process runs its five leaves at most, and
    never calls the walk."""
    code = (
        "from capsfast import _native\n"
        "def refuse(): raise AssertionError('probe ran the CPUID walk')\n"
        "_native.cpuid_walk = refuse\n"
        "import capsfast\n"
        "n = _native.cpuid_executed()\n"
        "capsfast.probe()\n"
        "print(_native.cpuid_executed() - n, _native.cpuid_per_crossing())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, per_crossing = map(int, done.stdout.split())
    assert first <= per_crossing <= 5
    entries, executed = c_walk()
    assert executed > first or len(entries) <= 5
