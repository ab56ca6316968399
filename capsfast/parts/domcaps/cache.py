"""I/O: the QMP transcript and document caches, files of this user's,
apart from ``read`` because they serve the live host alone, not a source.

The transcript cache: one file per emulator in
``$XDG_CACHE_HOME/capsfast`` (default ``~/.cache``), so that a second
``domcapabilities`` runs no emulator.

Keyed as libvirt 9.0 keys its own QEMU capabilities cache
(``virQEMUCapsIsValid``), plus what capsfast adds:

- the binary: path, ctime, size, inode;
- each QEMU module directory's mtime (or its absence);
- the kernel's release and version;
- a digest of KVM_GET_SUPPORTED_CPUID (what KVM offers guests);
- the host CPU's signature and microcode, from ``/proc/cpuinfo``;
- ``/dev/kvm``: usable (read-write) by this user, and its mode and device;
- the KVM ``nested`` parameter, SEV enabled in ``kvm_amd`` and ``/dev/sev``;
- capsfast's version and the CPU map's identity (every file's name, size,
  mtime, ctime and inode).

Any difference is a miss: the emulator is asked again and the file
replaced.  A file that is corrupt, foreign or truncated is a miss too.  A
failed probe is never written.  Files are written atomically (a temporary
file renamed over the old one); a read-only home only means no cache.
``CAPSFAST_CACHE=off`` turns the cache off.

For the live host only: a replay or a remote host has transcripts of its
own.  ``root`` (default ``/``) prefixes every key input but the emulator
itself, so tests can give a fake host.
"""
import os

from capsfast.errors import CapsfastError
from capsfast.parts.domcaps import parse, qmp
from capsfast.sources import cache
# The key is host facts: read on the source side, as every fact is.
from capsfast.sources.qmp_key import key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Converse = Callable[..., parse.Transcript]

CACHE_VERSION = 2  # 2: an i386 emulator's conversation expands its host CPU, as libvirt's does
_MAGIC = b"capsfast qmp transcript cache %d" % CACHE_VERSION
_DOCUMENT_MAGIC = b"capsfast domain capabilities %d" % CACHE_VERSION
ENV_CACHE = cache.ENV_CACHE

# The last transcript of each emulator this process read: its key, its
# cache file and that file's identity then (a file replaced or damaged
# since is read again).
_in_memory: "dict[str, tuple[list[tuple[str, str]], str, tuple[int, int, int], parse.Transcript]]" = {}


def enabled() -> bool:
    return os.environ.get(ENV_CACHE, "").lower() != "off"


def cache_file(emulator: str) -> str:
    """The cache file of ``emulator``: its base name (for people looking)
    and a digest of its whole path (two emulators never share a file)."""
    import hashlib

    digest = hashlib.sha256(emulator.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    base = "".join(c for c in os.path.basename(emulator) if c.isalnum() or c in "-_.")[:64] or "emulator"
    return os.path.join(cache.directory(), "qmp-%d-%s-%s.replies" % (CACHE_VERSION, base, digest))


def _key_line(pairs: "list[tuple[str, str]]") -> bytes:
    import json

    return json.dumps(pairs, ensure_ascii=True).encode("ascii")


# -- the file -----------------------------------------------------------------------

def load(path: str, pairs: "list[tuple[str, str]]") -> "parse.Transcript | None":
    """The transcript kept at ``path`` when its key is ``pairs``; None
    where it is absent, stale, foreign or corrupt."""
    body = cache.load(path, _MAGIC, _key_line(pairs), parse.MAX_BYTES + (1 << 20))
    if body is None:
        return None
    try:
        transcript = parse.transcript(body.decode("utf-8", "replace"))
    except CapsfastError:
        return None
    return transcript if transcript.processes else None


def save(path: str, pairs: "list[tuple[str, str]]", transcript: parse.Transcript) -> None:
    """Keep ``transcript`` at ``path`` under ``pairs``, atomically."""
    cache.save(path, _MAGIC, _key_line(pairs), parse.transcript_text(transcript).encode("utf-8"))


def transcript(emulator: str, *, root: str = "/", cpu_map: "str | None" = None,
               timeout: float = qmp.DEFAULT_TIMEOUT, converse: "Converse | None" = None) -> parse.Transcript:
    """``emulator``'s QMP transcript: from the cache where the key still
    matches, else from a new conversation (``converse``, default
    ``qmp.converse``), then kept.  A failed conversation raises its
    CapsfastError and leaves the cache as it was."""
    talk = converse or qmp.converse
    if not enabled():
        return talk(emulator, timeout=timeout)
    emulator = os.path.abspath(emulator)
    pairs = key(emulator, root=root, cpu_map=cpu_map)
    path = cache_file(emulator)
    last = _in_memory.get(emulator)
    if last is not None and last[0] == pairs and last[1] == path and last[2] == _file_identity(path):
        return last[3]  # read by this process under the same key, its file untouched: not parsed again
    kept = load(path, pairs)
    if kept is not None:
        _remember(emulator, pairs, path, kept)
        return kept
    fresh = talk(emulator, timeout=timeout)
    # Kept only if nothing in the key changed while the emulator talked:
    # a binary replaced meanwhile may have answered for either version.
    if key(emulator, root=root, cpu_map=cpu_map) == pairs:
        save(path, pairs, fresh)
        _remember(emulator, pairs, path, fresh)
    return fresh


def _file_identity(path: str) -> "tuple[int, int, int] | None":
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _remember(emulator: str, pairs: "list[tuple[str, str]]", path: str, transcript: parse.Transcript) -> None:
    identity = _file_identity(path)
    if identity is not None:  # nothing kept on disk (a read-only home): nothing kept here either
        _in_memory[emulator] = (pairs, path, identity, transcript)


# -- rendered documents -------------------------------------------------------------

def document_file(request: str) -> str:
    """The file keeping the last document rendered for ``request`` (its
    arguments, as text)."""
    import hashlib

    digest = hashlib.sha256(request.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(cache.directory(), "domcaps-%d-%s.txt" % (CACHE_VERSION, digest))


def _document_key(inputs_key: str) -> str:
    import hashlib

    from capsfast.constants import __version__

    return "%s %s" % (__version__, hashlib.sha256(inputs_key.encode("utf-8", "surrogateescape")).hexdigest())


def load_document(path: str, inputs_key: str) -> "str | None":
    """The document kept at ``path`` if it was rendered from inputs equal
    to ``inputs_key`` by this capsfast; None otherwise."""
    body = cache.load(path, _DOCUMENT_MAGIC, _document_key(inputs_key).encode("ascii"), parse.MAX_BYTES)
    if body is None:
        return None
    text = body.decode("utf-8", "surrogateescape")
    return text if text.endswith("\n") else None


def save_document(path: str, inputs_key: str, text: str) -> None:
    """Keep ``text`` at ``path`` under ``inputs_key``, atomically; a
    read-only home only means nothing kept."""
    cache.save(path, _DOCUMENT_MAGIC, _document_key(inputs_key).encode("ascii"),
               text.encode("utf-8", "surrogateescape"))
