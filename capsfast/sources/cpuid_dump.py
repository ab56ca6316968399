"""The text of a CPUID dump in ``cpuid -r -1`` form (lines like
``   0x00000007 0x00: eax=0x00000000 ebx=0x... ecx=0x... edx=0x...`` after a
``CPU:`` or ``CPU 0:`` header; only the first CPU counts), read into a walk
table.  The collector writes a recording's ``cpuid.txt`` in that form."""
from capsfast.errors import CapsfastError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    Registers = tuple[int, int, int, int]
    WalkEntry = tuple[int, int, Registers]
    Walk = dict[tuple[int, int], Registers]

MAX_DUMP = 1 << 20  # a dump larger than this is not one


def read_walk(path: str) -> "Walk":
    """The walk table of the dump file at ``path``; CapsfastError where it
    cannot be read or is not a dump."""
    if "\0" in path:
        raise CapsfastError("CPUID dump %r: a path cannot hold a NUL byte" % path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DUMP)
    except OSError as e:
        raise CapsfastError("cannot read CPUID dump %s: %s" % (path, e.strerror), errno=e.errno) from None
    return parse_dump_walk(data.decode("utf-8", "replace"), "CPUID dump %s" % path)


def _dump_lines(text: str, name: str) -> "Iterator[WalkEntry | None]":
    """Each line of a dump in turn: None for a CPU header, else its
    (leaf, subleaf, registers).  Raises CapsfastError naming the first line
    that is neither; lines after the caller stops are never read."""
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if words[0] == "CPU" or (words[0].startswith("CPU") and line.rstrip().endswith(":")):
            yield None
            continue
        try:
            entry = _parse_leaf_line(words)
        except ValueError:
            raise CapsfastError(
                "%s, line %d: not a 'cpuid -r' line: %r" % (name, number, line.strip()[:60])
            ) from None
        yield entry


def parse_dump_walk(text: str, name: str = "CPUID dump") -> "dict[tuple[int, int], Registers]":
    """(leaf, subleaf) -> registers of every line of the first CPU in
    ``cpuid -r -1`` output, in the dump's order (the first line wins).

    Raises CapsfastError as ``parse_dump`` does.  Callers read at most
    1 MiB of a dump."""
    table: dict[tuple[int, int], Registers] = {}
    seen_cpu = False
    for entry in _dump_lines(text, name):
        if entry is None:
            if seen_cpu and table:
                break  # only the first CPU counts
            seen_cpu = True
            continue
        leaf, subleaf, regs = entry
        table.setdefault((leaf, subleaf), regs)
    if (0, 0) not in table:
        raise CapsfastError("%s: no leaf 0x00000000 (is it 'cpuid -r -1' output?)" % name)
    return table


def _parse_leaf_line(words: "Sequence[str]") -> "tuple[int, int, Registers]":
    # "0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fbae3ff edx=0xbfebfbff"
    if len(words) != 6 or not words[1].endswith(":"):
        raise ValueError
    leaf = int(words[0], 16)
    subleaf = int(words[1][:-1], 16)
    names = ("eax=", "ebx=", "ecx=", "edx=")
    eax, ebx, ecx, edx = (_register(word, name) for word, name in zip(words[2:], names))
    if not (0 <= leaf <= 0xFFFFFFFF and 0 <= subleaf <= 0xFFFFFFFF):
        raise ValueError
    return leaf, subleaf, (eax, ebx, ecx, edx)


def _register(word: str, name: str) -> int:
    # "eax=0x000306a9" -> 0x000306a9, a 32-bit value
    if not word.startswith(name):
        raise ValueError
    value = int(word[len(name):], 16)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError
    return value
