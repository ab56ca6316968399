"""Remote URIs: ``ssh://`` and libvirt's ``qemu+ssh://``, and the ssh command line made of them."""

import pytest

from capsfast import CapsfastError
from capsfast.recording import remote


# ------------------------------------------------------------------ URIs


@pytest.mark.parametrize("uri, user, host, port, params", [
    ("ssh://example.org", None, "example.org", None, {}),
    ("ssh://root@example.org:2222", "root", "example.org", 2222, {}),
    ("ssh://alice@10.0.0.1/", "alice", "10.0.0.1", None, {}),
    ("ssh://[::1]:22", None, "::1", 22, {}),
    ("qemu+ssh://root@kvm1.example.org/system", "root", "kvm1.example.org", None, {}),
    ("qemu+ssh://kvm1:2200/system?keyfile=/k/id&no_verify=1", None, "kvm1", 2200,
     {"keyfile": "/k/id", "no_verify": True}),
    ("ssh://h?known_hosts=/k/known&no_verify=0", None, "h", None, {"known_hosts": "/k/known"}),
])
def test_parse_uri(uri, user, host, port, params):
    target = remote.parse_uri(uri)
    assert (target.user, target.host, target.port) == (user, host, port)
    assert target.keyfile == params.get("keyfile")
    assert target.known_hosts == params.get("known_hosts")
    assert target.no_verify == params.get("no_verify", False)


@pytest.mark.parametrize("uri, why", [
    ("", "empty"),
    ("example.org", "not of the form"),
    ("qemu:///system", "scheme qemu"),
    ("qemu+tcp://h/system", "scheme qemu+tcp"),
    ("http://h", "scheme http"),
    ("qemu+ssh://h/session", "only /system"),
    ("qemu+ssh://h", "only /system"),
    ("ssh://h/some/path", "names a host only"),
    ("ssh://", "no host"),
    ("ssh://-oProxyCommand=x", "not a host name"),
    ("ssh://-x@h", "not a user name"),
    ("ssh://u:secret@h", "password"),
    ("ssh://h:0", "port"),
    ("ssh://h:65536", "port"),
    ("ssh://h:22x", "port"),
    ("ssh://h:", "port"),
    ("ssh://h?command=rm", "parameter 'command' is not supported"),
    ("ssh://h?keyfile=", "keyfile is empty"),
    ("ssh://h?keyfile=a&keyfile=b", "twice"),
    ("ssh://h?no_verify=yes", "no_verify"),
    ("ssh://h?keyfile=a%0Ab", "control characters"),
    ("ssh://h#x", "fragment"),
    ("ssh://h x", "spaces"),
    ("ssh://h\n", "control"),
    ("ssh://[zz]:22", "IPv6"),
])
def test_parse_uri_refuses(uri, why):
    with pytest.raises(CapsfastError) as info:
        remote.parse_uri(uri)
    message = str(info.value)
    assert "\n" not in message and message.startswith("bad remote URI")
    assert why in message, message


def test_ssh_command_line():
    target = remote.parse_uri("qemu+ssh://root@kvm1:2200/system?keyfile=/k/id&known_hosts=/k/kh")
    argv = target.ssh_argv(2.5)
    assert argv[0] == "ssh"
    text = " ".join(argv)
    for part in ("-o BatchMode=yes", "-o ConnectTimeout=3", "-p 2200", "-i /k/id", "-o UserKnownHostsFile=/k/kh"):
        assert part in text
    assert "StrictHostKeyChecking" not in text
    # The destination comes after "--": no host can pass for an option.
    assert argv[-3:] == ["--", "root@kvm1", remote.REMOTE_COMMAND]
    loose = remote.parse_uri("ssh://h?no_verify=1").ssh_argv(10)
    assert "StrictHostKeyChecking=no" in loose and "UserKnownHostsFile=/dev/null" in loose
