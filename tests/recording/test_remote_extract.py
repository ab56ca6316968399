"""Extracting a fetched recording: a tar stream from another host is hostile until proven
otherwise."""
import io
import os
import tarfile

import pytest

from capsfast import CapsfastError
from capsfast.recording import remote

from ssh_server import recording_tar


# ------------------------------------------------------------------ extraction


def tar_of(*members):
    """A tar stream of (TarInfo, data or None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name, data=b"", kind=tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


SCENARIO = member("scenario.json", b'{"format": 1}')


def everything_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def extract_into(tmp_path, data):
    """Extract ``data`` into tmp_path/box/dest; the error and what exists
    under tmp_path/box afterwards."""
    box = tmp_path / "box"
    dest = box / "dest"
    dest.mkdir(parents=True)
    try:
        remote.extract(io.BytesIO(data) if isinstance(data, bytes) else data, str(dest), "test")
        error = None
    except CapsfastError as e:
        error = str(e)
    return error, everything_under(box)


def test_extracts_a_real_recording(tmp_path):
    error, files = extract_into(tmp_path, recording_tar())
    assert error is None
    assert "dest/scenario.json" in files and "dest/root/proc/cpuinfo" in files
    for name in files:
        path = tmp_path / "box" / name
        assert not path.is_symlink()
        if "qemu-system-" in name:
            assert path.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("members, why", [
    ([member("../escaped", b"evil"), SCENARIO], "climbs out"),
    ([member("root/../../escaped", b"evil"), SCENARIO], "climbs out"),
    ([member("PLACEHOLDER_ABSOLUTE", b"evil"), SCENARIO], "absolute path"),
    ([member("root/link", kind=tarfile.SYMTYPE, linkname="../.."), member("root/link/escaped", b"evil")], "a link"),
    ([member("root/link", kind=tarfile.SYMTYPE, linkname="/etc")], "a link"),
    ([member("root/hard", kind=tarfile.LNKTYPE, linkname="scenario.json")], "a link"),
    ([member("root/dev/kvm", kind=tarfile.CHRTYPE, devmajor=10, devminor=232)], "a device node"),
    ([member("root/dev/sda", kind=tarfile.BLKTYPE, devmajor=8, devminor=0)], "a device node"),
    ([member("root/fifo", kind=tarfile.FIFOTYPE)], "not a regular file"),
    ([member("evil.sh", b"#!/bin/sh\n")], "no place in a recording"),
    ([member("cpuid.txt/x", b"")], "no place"),
    ([member("root/proc/cpuinfo", b"x" * (remote.MAX_ROOT_FILE + 1))], "more than"),
    ([member("root/a", b"1"), member("root/a", b"2")], "twice"),
    ([member("root/a", b"1"), member("root/a/b", b"2")], "where a directory belongs"),
    ([member("root/./a", b"1")], "refused"),
    ([member("root//a", b"1")], "refused"),
    ([member("root/a\x1b[2J", b"1")], "refused"),
    ([member("root/a")], "no scenario.json"),
    ([member("scenario.json", b"[1, 2]")], "names no recording format"),
    ([member("scenario.json", b"{not json")], "not JSON"),
])
def test_hostile_tars_write_nothing_outside(tmp_path, members, why):
    members = [member(str(tmp_path / "escaped"), b"evil") if info.name == "PLACEHOLDER_ABSOLUTE" else (info, data)
               for info, data in members]
    error, files = extract_into(tmp_path, tar_of(*members))
    assert error is not None and why in error, error
    assert "\n" not in error
    assert all(name == "dest" or name.startswith("dest/") for name in files), files
    assert not (tmp_path / "escaped").exists()
    assert not any(os.path.islink(tmp_path / "box" / name) for name in files)
    if "escaped" in why or why == "climbs out":
        assert not (tmp_path / "box" / "escaped").exists()


def test_existing_symlink_in_the_way_is_not_followed(tmp_path):
    box = tmp_path / "box"
    (box / "dest").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", box / "dest" / "root")
    with pytest.raises(CapsfastError, match="a file or a link where a directory belongs"):
        remote.extract(io.BytesIO(tar_of(member("root/x", b"1"), SCENARIO)), str(box / "dest"), "test")
    assert everything_under(tmp_path / "outside") == []


class Endless(io.RawIOBase):
    """A stream that never ends: ``chunk`` forever (with ``first`` before)."""

    def __init__(self, chunk, first=b""):
        self.chunk = chunk
        self.pending = first
        self.served = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.pending:
            self.pending = self.chunk
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.served += n
        return n


def endless_members():
    """Endless distinct small members, as a generator of tar blocks."""
    class Members(io.RawIOBase):
        def __init__(self):
            self.i = 0
            self.pending = b""
            self.served = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if not self.pending:
                self.i += 1
                info = tarfile.TarInfo("root/f%d" % self.i)
                self.pending = info.tobuf(tarfile.GNU_FORMAT)
            n = min(len(buffer), len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            self.served += n
            return n

    return Members()


@pytest.mark.parametrize("make, why", [
    (lambda: Endless(b"\0" * 4096), "larger than"),                       # end-of-archive, then more forever
    (lambda: Endless(b"A" * 4096), "not a recording"),                    # garbage forever
    (lambda: Endless(b"x" * 4096, first=member("root/big", b"")[0].tobuf(tarfile.GNU_FORMAT)), "larger than"),
    (endless_members, "more than %d members" % remote.MAX_MEMBERS),
])
def test_endless_streams_stop_at_the_bounds(tmp_path, make, why):
    stream = make()
    if why == "larger than" and not isinstance(stream, Endless):
        pytest.fail("bad parameters")
    error, files = extract_into(tmp_path, io.BufferedReader(stream))
    assert error is not None and why in error, error
    assert stream.served <= remote.MAX_REPLY + 2 * 65536
    assert all(name == "dest" or name.startswith("dest/") for name in files)


def test_huge_declared_member_is_refused_before_reading(tmp_path):
    info = tarfile.TarInfo("cpuid.txt")
    info.size = 1 << 40
    stream = Endless(b"x" * 4096, first=info.tobuf(tarfile.GNU_FORMAT))
    error, _files = extract_into(tmp_path, io.BufferedReader(stream))
    assert "more than" in error
    assert stream.served < 1 << 20


def test_every_truncation_is_an_error(tmp_path):
    tar = recording_tar()
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r|") as t:
        for _member in t:
            pass
        end = t.offset + 1024  # after the two end-of-archive blocks: only padding follows
    cuts = sorted(set(range(0, end, 512)) | {1, 100, 511, 513, end - 1} | set(range(7, end, 1531)))
    for i, cut in enumerate(cuts):
        dest = tmp_path / str(i)
        dest.mkdir()
        with pytest.raises(CapsfastError) as info:
            remote.extract(io.BytesIO(tar[:cut]), str(dest), "test")
        message = str(info.value)
        assert any(word in message for word in ("truncated", "empty", "no scenario.json", "not a recording")), \
            (cut, message)


def test_read_stream_removes_its_directory_on_error(own_tmp):
    with pytest.raises(CapsfastError):
        remote.read_stream(io.BytesIO(tar_of(member("../x", b"1"))), "test")
    assert list(own_tmp.iterdir()) == []
    with remote.read_stream(io.BytesIO(recording_tar()), "test") as directory:
        assert os.path.isfile(os.path.join(directory, "scenario.json"))
        assert os.path.dirname(directory) == str(own_tmp)
    assert list(own_tmp.iterdir()) == []
