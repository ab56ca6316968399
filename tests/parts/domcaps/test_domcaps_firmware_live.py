"""The <os> of domain capabilities from this machine's firmware descriptors
(Debian's ovmf installs them in /usr/share/qemu/firmware), against the real
``virsh domcapabilities`` of libvirt 9.0 here, byte for byte.

Starts libvirtd for qemu:///system as tests/test_libvirt_live.py does (same
needs: root, libvirt-daemon-system, libvirt-clients, qemu-system-x86; skips
without them, fails in CI).  The machine's canonical name is taken from
libvirt's answer: choosing it is not this part's business."""
import os
import re

import pytest

from capsfast.parts.domcaps import firmware, parse, read
from capsfast.render.domcaps_os import os_lines

# q35 and pc have descriptors here; isapc has none, so libvirt falls back to
# its built-in loader list
MACHINES = ("q35", "pc", "isapc")


@pytest.fixture(scope="module")
def libvirt_answers(tmp_path_factory):
    from test_libvirt_live import need_libvirtd, running_daemon, start_daemon, stop_daemon, virsh

    need_libvirtd()
    ours_pid = None
    # a daemon already serving qemu:///system (whoever started it) is used as it is
    if running_daemon() is None and virsh("uri", timeout=30).returncode != 0:
        ours_pid = start_daemon(str(tmp_path_factory.mktemp("libvirtd")))
    try:
        answers = {}
        for machine in MACHINES:
            done = virsh("domcapabilities", "--machine", machine, "--virttype", "qemu")
            assert done.returncode == 0, done.stderr
            answers[machine] = done.stdout
        return answers
    finally:
        if ours_pid is not None:
            stop_daemon(ours_pid)


@pytest.mark.parametrize("machine", MACHINES)
def test_os_equals_virsh_domcapabilities_here(libvirt_answers, machine):
    text = libvirt_answers[machine]
    canonical = re.search(r"^  <machine>(.*)</machine>$", text, re.M).group(1)
    expected = re.search(r"^  <os supported='yes'>\n(.*\n)*?  </os>\n", text, re.M).group(0)
    # the system daemon is privileged: no user's configuration is read
    descriptors = parse.descriptors(read.search_descriptors("/", privileged=True, xdg_config_home=None))
    caps = firmware.os_caps(descriptors, arch="x86_64", machine=canonical, exists=os.path.exists)
    assert "\n".join(os_lines(caps)) + "\n" == expected
