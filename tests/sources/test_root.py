"""Paths inside a root, looked up as a chroot would: links followed
inside it, '..' stopping at it, a loop read as absent."""
import os

from capsfast.sources.base import UNRESOLVABLE, inside, under


def tree(tmp_path):
    root = tmp_path / "root"
    (root / "data/sub").mkdir(parents=True)
    (root / "data/file").write_text("inside")
    os.symlink("/data", root / "absolute")              # absolute: from the root
    os.symlink("data/sub/../file", root / "relative")   # relative: from its directory
    os.symlink("/../../../../data/file", root / "climbing")  # '..' stops at the root
    os.symlink("/loop", root / "loop")                  # itself
    os.symlink("/etc/passwd", root / "passwd")          # this machine's file: not inside
    return root


def test_links_resolve_inside_the_root(tmp_path):
    root = tree(tmp_path)
    base = str(root)
    assert inside(base, "/absolute/file") == base + "/data/file"
    assert inside(base, "/relative") == base + "/data/file"
    assert inside(base, "/climbing") == base + "/data/file"
    assert inside(base, "/absolute/../data/file") == base + "/data/file"
    assert inside(base, "/../../data/file") == base + "/data/file"
    assert inside(base, "/passwd") == base + "/etc/passwd"  # absent in the root, as in a chroot
    assert not os.path.exists(inside(base, "/passwd"))
    assert inside(base, "/loop") == UNRESOLVABLE and not os.path.exists(inside(base, "/loop/x"))
    assert open(inside(base, "/absolute/file")).read() == "inside"


def test_a_missing_component_keeps_the_rest_as_given(tmp_path):
    root = tree(tmp_path)
    assert inside(str(root), "/missing/../absolute") == str(root) + "/missing/../absolute"
    assert not os.path.exists(inside(str(root), "/missing/../absolute"))


def test_the_live_root_is_left_alone():
    assert inside("/", "/proc/cpuinfo") == "/proc/cpuinfo"
    assert under("/", "/dev/kvm") == "/dev/kvm"


def test_under_resolves_for_a_root(tmp_path):
    root = tree(tmp_path)
    assert under(str(root) + "/", "/absolute/file") == str(root) + "/data/file"
