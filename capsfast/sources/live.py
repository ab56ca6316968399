"""The running host as a Source: files under "/", the CPU through the C
module, the KVM device asked for what only it tells."""
import os

from capsfast import _native
from capsfast.constants import KVM_DEVICE, MSR_DEVICE
from capsfast.sources.base import ARCH_CAPABILITIES_MSR, Source, specs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from capsfast._native import Batch
    from capsfast.model import Tsc
    from capsfast.sources.base import T, Entry, Walk

HAS_CPUID = _native.HAS_CPUID


def batch(plan: "Sequence[Entry]", depends: "Mapping[str, str]", device: bool = True) -> "Batch":
    """A Batch of its own for ``plan`` under "/" (and the KVM device): the
    live probe keeps its own, crossing with cross() and reading results()
    only when the snapshot changed."""
    return _native.Batch(KVM_DEVICE if device else None, specs("/", plan, depends))


def live_group(path: str) -> "str | None":
    """The name of the group of this machine's device node ``path`` (the
    number where the group database has none); None where it cannot be
    looked at.  Asked only on the way to a hint, never on a probe that
    succeeds."""
    import os

    try:
        gid = os.stat(path).st_gid
    except OSError:
        return None
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


class Live(Source):
    """The host this process runs on (``arch``: its architecture, or the
    one the caller forces)."""

    kind = "live"
    has_cpu = HAS_CPUID

    def __init__(self, arch: str, cpu_map: "str | None" = None, path_env: "str | None" = None) -> None:
        super().__init__("/", arch, None, cpu_map, path_env)

    def device_group(self, path: str) -> "str | None":
        return live_group(path)

    def _read_walk(self) -> "Walk | None":
        if not _native.HAS_CPUID:
            return None
        return {(leaf, sub): regs for leaf, sub, regs in _native.cpuid_walk()} or None

    def cpu_device(self, want_msr: bool, want_tsc: bool) -> "tuple[int | None, Tsc | None]":
        from capsfast.model import Tsc

        msr = None
        if want_msr:
            # libvirt's virHostCPUGetMSR: the msr driver first, when it opens.
            spec = (MSR_DEVICE, _native.MSR, ARCH_CAPABILITIES_MSR, 0, None)
            result = _native.Batch(None, [spec]).run().files[0]
            if result.outcome.ok:
                msr = result.value
                want_msr = False
        if not (want_msr or want_tsc):
            return msr, None
        got = _native.kvm_host_cpu(KVM_DEVICE, ARCH_CAPABILITIES_MSR if want_msr else None, want_tsc)
        if want_msr and got.msr_value is not None:
            msr = got.msr_value
        tsc = None
        if got.tsc_khz is not None and got.tsc_scaling is not None:
            tsc = Tsc(got.tsc_khz * 1000, "yes" if got.tsc_scaling else "no")
        return msr, tsc

    def qmp_transcript(self, emulator: str, converse: "Callable[[str], T]", parse: "Callable[[str], T]") -> "T":
        # The one place an emulator is run for its transcript: here, live.
        return converse(emulator)

    def swtpm_capabilities(self) -> "bytes | None":
        return swtpm_setup_capabilities([self.find_program(name) for name in SWTPM_PROGRAMS])


SWTPM_TIMEOUT = 10.0  # seconds swtpm_setup may take to print what it can
SWTPM_PROGRAMS = ("swtpm", "swtpm_setup", "swtpm_ioctl")  # libvirt wants all three


def swtpm_setup_capabilities(found: "list[str | None]") -> "bytes | None":
    """libvirt's swtpm check (virTPMEmulatorInit): swtpm, swtpm_setup and
    swtpm_ioctl all ``found`` in the PATH; then what ``swtpm_setup
    --print-capabilities`` prints (b"" where it fails or hangs)."""
    if not all(found):
        return None
    import subprocess
    try:
        done = subprocess.run([str(found[1]), "--print-capabilities"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=SWTPM_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return b""
    return done.stdout[:1 << 20] if done.returncode == 0 else b""
