"""The mechanics every disk cache shares (capsfast.sources.cache), and the
CPU model cache honouring CAPSFAST_CACHE=off through them."""
import os

import pytest

from capsfast.parts.cpu_model import read as hostcpu
from capsfast.sources import cache

MAGIC = b"capsfast test cache 1"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cache.ENV_CACHE, raising=False)


def test_a_saved_body_loads_only_under_its_magic_and_key(tmp_path):
    path = os.path.join(cache.directory(), "x.bin")
    assert cache.save(path, MAGIC, b"key 1", b"body\nwith lines")
    assert cache.load(path, MAGIC, b"key 1") == b"body\nwith lines"
    assert cache.load(path, MAGIC, b"key 2") is None
    assert cache.load(path, b"capsfast test cache 2", b"key 1") is None
    assert cache.load(path, MAGIC, b"key") is None  # a prefix of the key is another key
    assert [n for n in os.listdir(cache.directory()) if n.endswith(".tmp")] == []


def test_a_file_past_the_limit_is_a_miss(tmp_path):
    path = os.path.join(cache.directory(), "x.bin")
    cache.save(path, MAGIC, b"k", b"x" * 100)
    assert cache.load(path, MAGIC, b"k", limit=200) == b"x" * 100
    assert cache.load(path, MAGIC, b"k", limit=50) is None


def test_an_unwritable_directory_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = os.path.join(cache.directory(), "x.bin")
    assert cache.save(path, MAGIC, b"k", b"body") is False
    assert cache.load(path, MAGIC, b"k") is None


def test_a_key_of_two_lines_is_refused():
    with pytest.raises(ValueError):
        cache.save(os.path.join(cache.directory(), "x.bin"), MAGIC, b"a\nb", b"")


def test_off_turns_the_cpu_model_cache_off_too(tmp_path, monkeypatch):
    from capsfast.model import Tsc

    map_dir = "/usr/share/libvirt/cpu_map"
    if not os.path.isdir(map_dir):
        pytest.skip("no libvirt CPU map on this machine")
    walk = {(0, 0): (0xD, 0x756E6547, 0x6C65746E, 0x49656E69), (1, 0): (0x906EA, 0x800, 0x7FFAFBBF, 0xBFEBFBFF)}
    cpuinfo = "microcode\t: 0xde\n"
    monkeypatch.setenv(cache.ENV_CACHE, "off")
    hostcpu.decode_host(walk, lambda m, t: (None, None if not t else Tsc(1, "no")), map_dir, None, cpuinfo)
    assert not os.path.exists(cache.directory()) or not os.listdir(cache.directory())
    monkeypatch.delenv(cache.ENV_CACHE)
    hostcpu.decode_host(walk, lambda m, t: (None, None), map_dir, None, cpuinfo)
    assert any(n.startswith("cpumodel-") for n in os.listdir(cache.directory()))
