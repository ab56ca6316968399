"""A recording as a Source: its ``root/`` for files, its ``cpuid.txt`` for
CPUID, and what no file can hold (the KVM device's steps and
capabilities, MSR values, device access, the TSC) as ``scenario.json``
kept it.  A remote host is the replay of the recording fetched from it.
``capsfast.recording.format`` reads a recording into one of these."""
from capsfast.constants import MSR_DEVICE
from capsfast.sources.base import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from capsfast._native import FileResult, KvmDevice, Results
    from capsfast.model import Tsc
    from capsfast.sources.base import T, Entry


class Replay(Source):
    """The host a recording in ``directory`` captured, as it answered then.

    ``kvm``: the KVM device's observed steps (None: ask its placeholder);
    ``caps``: KVM_CHECK_EXTENSION answers by name (None: the device did
    not open), where ``caps_recorded``; ``captured``: the parts whose facts
    the recording holds; ``access``: read-write access of device nodes;
    ``msr``: MSR values read; ``cpu_msr``/``cpu_tsc``: what the device told
    the CPU decode."""

    kind = "replay"

    def __init__(self, directory: str, root: str, dump: "str | None", arch: "str | None", path: str,
                 deep: bool, msr: "dict[int, int]", kvm: "KvmDevice | None", caps_recorded: bool = False,
                 caps: "Mapping[str, int | None] | None" = None, captured: "frozenset[str]" = frozenset(),
                 access: "dict[str, bool | None] | None" = None, cpu_msr: "int | None" = None,
                 cpu_tsc: "Tsc | None" = None) -> None:
        super().__init__(root, arch or "", dump, None, path)
        self.directory = directory
        self.recorded_arch = arch
        self.path = path
        self.deep = deep
        self.msr = msr
        self.kvm = kvm
        self.caps_recorded = caps_recorded
        self.caps = caps
        self.captured_parts = captured
        self.access_facts = access or {}
        self.cpu_msr = cpu_msr
        self.cpu_tsc = cpu_tsc
        self.kvm_group: "str | None" = None  # the KVM node's group, where recorded

    def device_group(self, path: str) -> "str | None":
        # The recorded host's name for the group, where the recording
        # kept it; a hand-made root's placeholder is asked as a root's.
        return self.kvm_group if self.kvm is not None else super().device_group(path)

    def files(self, plan: "Sequence[Entry]", depends: "Mapping[str, str]" = {}) -> "list[FileResult]":
        # The msr driver's answers are the recorded values, not the files.
        from capsfast import _native

        results = super().files(plan, depends)
        for i, (_key, path, op, number, _size) in enumerate(plan):
            if op == _native.MSR and path == MSR_DEVICE:
                value = self.msr.get(number)
                results[i] = (_native.FileResult(_native.OK, 0, None, False, value) if value is not None
                              else _native.FileResult(_native.Outcome("absent", "not recorded"), 0, None, False,
                                                      None))
        return results

    def cross(self, plan: "tuple[Entry, ...]", depends: "Mapping[str, str]", want_cpu: bool,
              deep: bool) -> "Results":
        # The device as it was observed (a hand-made tree: its placeholder).
        results = super().cross(plan, depends, want_cpu, deep)
        if self.kvm is not None:
            results.kvm = self.kvm
        return results

    def kvm_caps(self, caps: "Sequence[tuple[str, int]]") -> "list[int | None] | None":
        if not self.caps_recorded:
            return super().kvm_caps(caps)  # an older recording: its placeholder never opens
        if self.caps is None:
            return None
        return [self.caps.get(name) for name, _number in caps]

    def cpu_device(self, want_msr: bool, want_tsc: bool) -> "tuple[int | None, Tsc | None]":
        return (self.cpu_msr if want_msr else None), (self.cpu_tsc if want_tsc else None)

    def access(self, path: str) -> "bool | None":
        return self.access_facts.get(path)

    def recorded_msr(self) -> "dict[int, int] | None":
        return self.msr

    def captured(self, part: str) -> bool:
        return part in self.captured_parts


    def qmp_transcript(self, emulator: str, converse: "Callable[[str], T]", parse: "Callable[[str], T]") -> "T":
        # Never run: the transcript the recording kept, or one clear line.
        import os

        from capsfast.sources.base import QEMU_DIR, replies_name

        return parse(self._recorded_text(os.path.join(self.directory, QEMU_DIR, replies_name(emulator)),
                                         "the recording %s" % self.directory, emulator))

    def swtpm_capabilities(self) -> "bytes | None":
        import os

        from capsfast.sources.base import SWTPM_CAPABILITIES, _read_optional

        return _read_optional(os.path.join(self.directory, SWTPM_CAPABILITIES))
