"""I/O: domain capabilities' inputs read from a Source: the emulator
libvirt would pick, its QMP transcript (the source runs it, or answers
from a recording), and the host facts libvirt reads on every call (KVM's
vCPU limit, SEV's ASIDs, VFIO, swtpm, the firmware descriptor files and
which loader images exist).  ``parse`` turns what was read into values,
then ``decide`` and the CPU map make the document's record."""
import os

from capsfast.errors import CapsfastError, printable
from capsfast.parts.domcaps import decide
from capsfast.parts.domcaps.model import DomainCaps, Environment
from capsfast.sources.base import LIST, STAT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsfast.cpu_map.x86_map import CpuMap
    from capsfast.cpu_map.x86_decode import GuestCpu
    from capsfast.parts.domcaps.firmware import Descriptor
    from capsfast.parts.domcaps.parse import Transcript
    from capsfast.sources.base import Entry, Source

# KVM_CHECK_EXTENSION numbers (named as Host.kvm_caps names them, so a
# recording's answers serve too).
KVM_VCPU_CAPS = (("MAX_VCPUS", 66), ("NR_VCPUS", 9))
KVM_DEFAULT_VCPUS = 4  # libvirt's answer where KVM names no limit
VFIO_DEVICE = "/dev/vfio/vfio"
IOMMU_GROUPS = "/sys/kernel/iommu_groups"
VFIO_ENTRIES: "tuple[Entry, ...]" = (
    ("vfio", VFIO_DEVICE, STAT, 0, 0),
    ("iommu_groups", IOMMU_GROUPS, LIST, 0, 4096),
)
# Where libvirt looks for QEMU that is not in the PATH (RHEL's build).
QEMU_KVM = "/usr/libexec/qemu-kvm"
# virQEMUCapsArchToString: QEMU's name for a guest arch.
_QEMU_ARCH = {"i686": "i386"}
# A bound on one firmware descriptor directory's listing, so a hostile tree
# cannot make the search read without end; real trees hold a dozen files.
MAX_DESCRIPTOR_FILES = 4096


def default_emulator(source: "Source", host_arch: str, arch: str) -> str:
    """libvirt's virQEMUCapsGetDefaultEmulator: ``qemu-system-<arch>``, else
    the host's own (an i686 guest on an x86_64 host), else RHEL's
    qemu-kvm for a native guest; CapsfastError where none is found."""
    names = ["qemu-system-" + _QEMU_ARCH.get(arch, arch)]
    if arch == "i686" and host_arch == "x86_64":
        names.append("qemu-system-x86_64")
    if arch == host_arch or (arch == "i686" and host_arch == "x86_64"):
        names.append(QEMU_KVM)
    for name in names:
        found = source.find_program(name)
        if found is not None:
            return found
    raise CapsfastError("unable to find any emulator to serve '%s' architecture" % printable(arch))


def _check_emulator(source: "Source", emulator: str) -> str:
    if not emulator.startswith("/"):
        emulator = os.path.abspath(emulator)
    # An absolute name is looked up as it is: the PATH lookup's own check.
    if source.find_program(emulator) is None:
        raise CapsfastError("emulator %s: not an executable file" % printable(emulator))
    return emulator


def transcript(source: "Source", emulator: str) -> "Transcript":
    """``emulator``'s transcript: live, the QMP conversation (or the disk
    cache that saves it); from a recording or a root, what it kept."""
    from capsfast.parts.domcaps import cache, parse

    def converse(path: str) -> "Transcript":
        return cache.transcript(path, cpu_map=source.cpu_map)

    return source.qmp_transcript(emulator, converse, parse.transcript)


def _kvm_max_vcpus(source: "Source") -> "int | None":
    """virHostCPUGetKVMMaxVCPUs: KVM_CAP_MAX_VCPUS, else KVM_CAP_NR_VCPUS,
    else 4; None where /dev/kvm does not open."""
    answers = source.kvm_caps(KVM_VCPU_CAPS)
    if answers is None:
        return None
    for value in answers:
        if value:
            return value
    return KVM_DEFAULT_VCPUS


def _sev_asids(source: "Source") -> "tuple[int, int]":
    walk = source.walk()
    regs = walk.get((0x8000001F, 0)) if walk else None
    return (regs[2], regs[3]) if regs else (0, 0)


def _vfio(source: "Source") -> bool:
    """qemuHostdevHostSupportsPassthroughVFIO: an IOMMU group listed, and
    /dev/vfio/vfio there."""
    vfio, groups = source.files(VFIO_ENTRIES)
    return bool(vfio.outcome.ok and groups.outcome.ok and groups.data)


def privileged(source: "Source") -> bool:
    """Whose view: live, libvirt's system daemon where this process is
    root, else the user's session daemon; a recording or a root is read
    as the system daemon reads it (no user's configuration)."""
    return source.kind != "live" or os.geteuid() == 0


def environment(source: "Source") -> Environment:
    """The host facts libvirt reads on every call."""
    from capsfast.parts.domcaps import parse

    printed = source.swtpm_capabilities()
    return Environment(kvm_max_vcpus=_kvm_max_vcpus(source), sev_asids=_sev_asids(source),
                       vfio=_vfio(source), swtpm=printed is not None,
                       swtpm_versions=parse.tpm_versions(printed or b""), privileged=privileged(source))


def descriptors(source: "Source", is_privileged: bool) -> "list[Descriptor]":
    """The firmware descriptors that count, parsed (CapsfastError naming
    the first one libvirt would refuse)."""
    from capsfast.parts.domcaps import parse

    xdg = os.environ.get("XDG_CONFIG_HOME") if source.kind == "live" else None
    return parse.descriptors(search_descriptors(source.root, privileged=is_privileged,
                                                xdg_config_home=xdg or None))


# -- the firmware descriptor files, in libvirt's order ----------------------

def descriptor_dirs(*, privileged: bool, xdg_config_home: "str | None",
                    home: "str | None" = None) -> "list[str]":
    """The descriptor directories, lowest priority first, as seen on the
    host: a system daemon (``privileged``) reads no user's configuration."""
    from capsfast.parts.domcaps.firmware import CONF_DIR, DATA_DIR

    dirs = [DATA_DIR, CONF_DIR]
    if not privileged:
        if xdg_config_home is None:
            xdg_config_home = (home if home is not None else _user_home()) + "/.config"
        dirs.append(xdg_config_home + "/qemu/firmware")
    return dirs


def _user_home() -> str:
    # libvirt asks the password database, not $HOME.
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def search_descriptors(root: str, *, privileged: bool, xdg_config_home: "str | None",
                       home: "str | None" = None) -> "list[tuple[str, bytes]]":
    """(path on the host, contents) of each descriptor that counts, in the
    order libvirt reads them: a file in a later directory replaces the
    same-named one of an earlier directory, an empty one masks it (and is
    dropped), hidden files and non-regular files are skipped, then name
    order.  Paths are looked up under ``root``; CapsfastError where one
    cannot be read."""
    from capsfast.sources.base import under  # links followed inside the root

    def place(path: str) -> str:
        return path if root in ("", "/") else under(root, path)

    chosen: "dict[bytes, str]" = {}
    for directory in descriptor_dirs(privileged=privileged, xdg_config_home=xdg_config_home, home=home):
        try:
            names = os.listdir(place(directory))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise CapsfastError("cannot list firmware descriptors in %s: %s"
                                % (printable(directory), e.strerror), errno=e.errno) from None
        if len(names) > MAX_DESCRIPTOR_FILES:
            raise CapsfastError("more than %d files in %s" % (MAX_DESCRIPTOR_FILES, printable(directory)))
        for name in names:
            if name.startswith("."):
                continue
            path = directory + "/" + name
            try:
                info = os.stat(place(path))  # follows a symlink, as libvirt does
            except OSError as e:
                raise CapsfastError("cannot access firmware descriptor %s: %s"
                                    % (printable(path), e.strerror), errno=e.errno) from None
            if (info.st_mode & 0o170000) != 0o100000:
                continue
            chosen[os.fsencode(name)] = path
    found = []
    for key in sorted(chosen):  # strcmp order of the names
        path = chosen[key]
        data = _read_bounded(place(path), path)
        if data:  # an empty file only masks
            found.append((path, data))
    return found


def _read_bounded(real_path: str, path: str) -> bytes:
    from capsfast.parts.domcaps.firmware import MAX_BYTES

    try:
        with open(real_path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise CapsfastError("cannot read firmware descriptor %s: %s"
                            % (printable(path), e.strerror), errno=e.errno) from None
    if len(data) > MAX_BYTES:
        raise CapsfastError("firmware descriptor %s is larger than %d bytes"
                            % (printable(path), MAX_BYTES))
    return data


def cpu_map(source: "Source") -> "CpuMap":
    from capsfast.cpu_map import x86_map
    from capsfast.sources.base import map_directory

    directory = map_directory(source.root, source.cpu_map)
    try:
        return x86_map.load(directory)
    except OSError as e:
        raise CapsfastError("CPU map %s: %s" % (printable(directory), e.strerror), errno=e.errno) from None


class Request:
    """What a caller asked, with virsh's defaults filled in (``arch``: the
    host's; ``emulator``: the one libvirt picks for it)."""

    __slots__ = ("emulator", "arch", "machine", "virttype")

    def __init__(self, emulator: str, arch: str, machine: "str | None", virttype: "str | None") -> None:
        self.emulator = emulator
        self.arch = arch
        self.machine = machine
        self.virttype = virttype

    def key(self) -> "tuple[str, str, str | None, str | None]":
        return (self.emulator, self.arch, self.machine, self.virttype)


def request(source: "Source", host_arch: str, *, emulator: "str | None", arch: "str | None",
            machine: "str | None", virttype: "str | None") -> Request:
    """The request checked before anything runs: a foreign arch or an
    unknown virt type is one clear line, never a document."""
    arch = arch or host_arch
    if arch not in decide.ARCHES:
        raise CapsfastError("domain capabilities for %s guests are not yet supported (only %s)"
                            % (printable(arch), ", ".join(decide.ARCHES)))
    if virttype is not None and virttype not in decide.VIRTTYPES:
        raise CapsfastError("unknown virttype: %s (%s)" % (printable(virttype), " or ".join(decide.VIRTTYPES)))
    if virttype == "kvm" and not (arch == host_arch or (arch == "i686" and host_arch == "x86_64")):
        raise CapsfastError("KVM cannot run %s guests on this %s host" % (printable(arch), printable(host_arch)))
    found = (default_emulator(source, host_arch, arch) if emulator is None
             else _check_emulator(source, emulator))
    return Request(found, arch, machine, virttype)


class Inputs:
    """Everything a document is decided from, for one request: the host
    facts read now, and ``key``, equal while the document would be (the
    facts, the transcript's cache key or identity, the CPU map's files).
    The transcript and the CPU map themselves are loaded when first used:
    a caller holding the document for ``key`` needs neither."""

    __slots__ = ("source", "asked", "env", "descriptors", "present", "key", "persistent", "_transcript")

    def __init__(self, source: "Source", asked: Request, env: Environment, descriptors: "list[Descriptor]",
                 present: "dict[str, bool]") -> None:
        from capsfast.sources.base import map_directory
        from capsfast.sources.qmp_key import directory_identity

        self.source = source
        self.asked = asked
        self.env = env
        self.descriptors = descriptors
        self.present = present
        self._transcript: "Transcript | None" = None
        # Live, the transcript cache's own key stands for the transcript (no
        # file parsed to know it is the same); a recording's or a root's
        # transcript is read, and stands for itself.
        said: object
        self.persistent = source.kind == "live" and _cache_on()
        if self.persistent:
            from capsfast.sources.qmp_key import key

            # it holds the CPU map's files' identity too
            said = tuple(key(asked.emulator, cpu_map=source.cpu_map))
        else:  # not kept by callers (see capsfast.domain_capabilities): read now
            said = (id(self.transcript), directory_identity(map_directory(source.root, source.cpu_map)))
        self.key = (env, tuple(descriptors), tuple(sorted(present.items())), said)

    @property
    def transcript(self) -> "Transcript":
        if self._transcript is None:
            self._transcript = transcript(self.source, self.asked.emulator)
        return self._transcript

    @property
    def cpu_map(self) -> "CpuMap":
        return _cpu_map_kept(self.source)


def _cache_on() -> bool:
    from capsfast.parts.domcaps.cache import enabled

    return enabled()


_last_map: "list[tuple[str, tuple[str, ...], CpuMap]]" = []  # (directory, its files' identity, map)


def _cpu_map_kept(source: "Source") -> "CpuMap":
    """The CPU map, loaded again only when a file of it changed."""
    from capsfast.sources.base import map_directory
    from capsfast.sources.qmp_key import directory_identity

    directory = map_directory(source.root, source.cpu_map)
    identity = directory_identity(directory)
    if _last_map and _last_map[0][0] == directory and _last_map[0][1] == identity:
        return _last_map[0][2]
    loaded = cpu_map(source)
    _last_map[:] = [(directory, identity, loaded)]
    return loaded


def gather(source: "Source", asked: Request) -> Inputs:
    """What ``asked`` is decided from, read now through ``source``."""
    from capsfast.parts.domcaps.firmware import BUILTIN_LOADERS

    env = environment(source)
    found = descriptors(source, env.privileged)
    if asked.virttype == "kvm" and env.kvm_max_vcpus is None:
        raise CapsfastError("KVM cannot be used here: /dev/kvm does not open")
    images = [loader[0] for loader in (d.loader() for d in found) if loader is not None]
    images += [image for image, _nvram in BUILTIN_LOADERS]
    present = {image: os.path.exists(source.under(image)) for image in images}
    return Inputs(source, asked, env, found, present)


def domain_caps(inputs: Inputs, asked: Request, *, expand: bool = False
                ) -> "tuple[DomainCaps, GuestCpu | None]":
    """The record ``virsh domcapabilities`` prints for ``asked``, and with
    ``expand`` the host-model CPU's features spelled out (pure)."""
    from capsfast.parts.domcaps.cpu import expand_features

    present = inputs.present
    caps = decide.domain_caps(inputs.transcript, inputs.env, arch=asked.arch, machine=asked.machine,
                              virttype=asked.virttype, emulator=asked.emulator, cpu_map=inputs.cpu_map,
                              descriptors=inputs.descriptors, exists=lambda path: present.get(path, False))
    expanded = expand_features(caps.cpu, inputs.cpu_map) if expand else None
    return caps, expanded


# -- what ``capsfast record`` keeps beyond the plan (it runs programs) ------

# The emulators whose transcripts a recording keeps: those of the arches
# served (another arch's document is "not yet" anyway).
RECORDED_EMULATORS = ("qemu-system-x86_64", "qemu-system-i386", "qemu-kvm")


def recorded_extras(source: "Source", descriptor_files: "dict[str, bytes]") -> "dict[str, bytes]":
    """{path in the recording: bytes}: each served emulator's transcript in
    the source's PATH as ``qemu/<basename>.replies`` (libvirt's format), what
    ``swtpm_setup --print-capabilities`` printed, and a placeholder for
    each loader image or NVRAM template the recorded descriptors
    (``descriptor_files``: host path -> contents) name that exists."""
    from capsfast.parts.domcaps import parse
    from capsfast.sources.base import SWTPM_CAPABILITIES

    extras: "dict[str, bytes]" = {}
    found = {name: source.find_program(name) for name in RECORDED_EMULATORS}
    for emulator in found.values():
        if emulator is not None:
            _keep_transcript(source, emulator, extras)
    if found["qemu-kvm"] is None and os.path.isfile(QEMU_KVM):
        _keep_transcript(source, QEMU_KVM, extras)
    printed = source.swtpm_capabilities()
    if printed is not None:
        extras[SWTPM_CAPABILITIES] = printed
    for path, data in sorted(descriptor_files.items()):
        try:
            descriptor = parse.descriptor(path, data)
        except CapsfastError:
            continue  # recorded as it is: the replay refuses it as libvirt would
        for image in (descriptor.executable, descriptor.nvram_template, descriptor.filename):
            if image and image.startswith("/") and os.path.isfile(image):
                extras["root" + image] = b""
    return extras


def _keep_transcript(source: "Source", emulator: str, extras: "dict[str, bytes]") -> None:
    from capsfast.parts.domcaps import parse
    from capsfast.sources.base import QEMU_DIR, replies_name

    try:
        said = transcript(source, emulator)
    except CapsfastError:
        return  # an emulator that does not answer: its replay says the recording holds nothing of it
    extras[QEMU_DIR + "/" + replies_name(emulator)] = parse.transcript_text(said).encode("utf-8")


def fields(source: "Source", host: object) -> "dict[str, object]":
    """The part protocol's reader: domain capabilities fill no Host field
    (they are asked per emulator, arch, machine and virt type)."""
    return {}
