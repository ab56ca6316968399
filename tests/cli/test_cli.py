"""The command line: outputs, exit statuses, and bad input as one line."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

from forked import in_child
from scenarios import HOSTS

from capsfast.cli import main

INTEL = HOSTS / "intel-enabled"


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *words):
    assert status == 2
    assert err.startswith("capsfast: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


@pytest.fixture
def garbage(tmp_path):
    def write(text):
        path = tmp_path / "dump.txt"
        path.write_text(text)
        return str(path)

    return write


def test_garbage_dump(capsys, garbage):
    status, out, err = run(capsys, "check", "--cpuid-dump", garbage("hello world\n\x00\x01"))
    assert_one_line_error(status, err, "line 1", "not a 'cpuid -r' line")
    assert out == ""


def test_truncated_dump(capsys, garbage):
    dump = garbage("CPU:\n   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n"
                   "   0x00000001 0x00: eax=0x000306a9 ebx=0x0010")
    status, _out, err = run(capsys, "capabilities", "--format", "json", "--cpuid-dump", dump)
    assert_one_line_error(status, err, "line 3")


def test_dump_without_leaf_0(capsys, garbage):
    dump = garbage("CPU:\n   0x00000001 0x00: eax=0x000306a9 ebx=0x00100800 ecx=0x7fbae3ff edx=0xbfebfbff\n")
    status, _out, err = run(capsys, "check", "--cpuid-dump", dump)
    assert_one_line_error(status, err, "no leaf 0x00000000")


def test_empty_dump(capsys, garbage):
    status, _out, err = run(capsys, "check", "--cpuid-dump", garbage(""))
    assert_one_line_error(status, err, "no leaf 0x00000000")


def test_missing_dump(capsys, tmp_path):
    status, _out, err = run(capsys, "check", "--cpuid-dump", str(tmp_path / "nope"))
    assert_one_line_error(status, err, "No such file")


def test_root_that_does_not_exist(capsys, tmp_path):
    status, _out, err = run(capsys, "capabilities", "--root", str(tmp_path / "nowhere"))
    assert_one_line_error(status, err, "No such file or directory")


def test_root_that_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    status, _out, err = run(capsys, "check", "--root", str(tmp_path / "f"))
    assert_one_line_error(status, err, "not a directory")


def test_file_where_a_directory_is_expected(capsys, tmp_path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "sys").write_text("a file, not the sysfs directory\n")
    status, _out, err = run(capsys, "check", "--root", str(root))
    assert_one_line_error(status, err, "Not a directory", "sys/")


def test_directory_where_a_file_is_expected(capsys, tmp_path):
    root = tmp_path / "root"
    (root / "proc" / "xen" / "capabilities").mkdir(parents=True)
    status, _out, err = run(capsys, "check", "--root", str(root))
    assert_one_line_error(status, err, "not a regular file", "capabilities")


def test_unknown_format(capsys):
    status, out, err = run(capsys, "capabilities", "--format", "yaml")
    assert_one_line_error(status, err, "'yaml'", "libvirt, draft, json")
    assert out == ""


@pytest.mark.parametrize("argv, words", [
    (["frobnicate"], ["unknown command"]),
    (["check", "--nope"], ["unrecognised option '--nope'"]),
    (["check", "--root"], ["needs a value"]),
    (["check", "--json=yes"], ["takes no value"]),
    (["check", "extra"], ["unexpected argument 'extra'"]),
    (["record"], ["missing argument DIR"]),
    (["capabilities", "--arch", "not an arch!"], ["unrecognised architecture"]),
])
def test_usage_errors(capsys, argv, words):
    status, _out, err = run(capsys, *argv)
    assert_one_line_error(status, err, *words)


def test_help_and_version(capsys):
    status, out, _err = run(capsys, "--help")
    assert status == 0 and "capabilities" in out and "check" in out
    status, out, _err = run(capsys, "check", "--help")
    assert status == 0 and "--cpuid-dump FILE" in out and "Exit status" in out
    from capsfast import __version__

    status, out, _err = run(capsys, "--version")
    assert status == 0 and out == "capsfast %s\n" % __version__


def test_no_arguments_is_a_usage_error(capsys):
    status, out, err = run(capsys)
    assert status == 2 and out == "" and err.startswith("usage: capsfast")


def _world_readable_copy(src):
    """A copy of a fake root that an unprivileged user can traverse."""
    top = tempfile.mkdtemp(prefix="capsfast-perm-")
    os.chmod(top, 0o755)
    root = os.path.join(top, "root")
    shutil.copytree(src, root)
    return top, root


def _main_capturing_stderr(argv):
    """``main(argv)`` with stderr captured: (status, stderr text)."""
    import io

    sys.stderr = io.StringIO()
    status = main(argv)
    return status, sys.stderr.getvalue()


def test_unreadable_file_inside_the_root():
    top, root = _world_readable_copy(INTEL / "root")
    try:
        dump = shutil.copy(INTEL / "cpuid.txt", top)
        target = os.path.join(root, "sys", "module", "kvm_intel", "parameters", "nested")
        os.chmod(target, 0)
        # As an unprivileged user: root reads anything.
        user = (65534, 65534) if os.geteuid() == 0 else None
        outcome = in_child(lambda: _main_capturing_stderr(["check", "--root", root, "--cpuid-dump", dump]), user=user)
    finally:
        shutil.rmtree(top)
    assert outcome[0] == "ok", outcome
    status, err = outcome[1]
    assert status == 2, err
    assert err.startswith("capsfast: cannot read ") and "Permission denied" in err and err.count("\n") == 1


def test_check_report_on_a_firmware_disabled_host(capsys):
    host = HOSTS / "intel-bios-off-cpuinfo"
    status, out, _err = run(capsys, "check", "--root", str(host / "root"), "--cpuid-dump", str(host / "cpuid.txt"))
    assert status == 1
    assert "disabled by the firmware" in out
    assert "hint: enable Intel VT-x" in out
    # One hint among the KVM steps; the platform rows (vhost-net, IOMMU, ...) follow.
    kvm_part = out.split("/dev/vhost-net exists")[0]
    assert kvm_part.count("hint:") == 1
    assert out.rstrip().splitlines()[-2:] == ["KVM acceleration can NOT be used: /dev/kvm missing",
                                              "QEMU can NOT run here: kvm, 9 more unknown"]


def test_check_json(capsys):
    status, out, _err = run(capsys, "check", "--json", "--root", str(INTEL / "root"), "--cpuid-dump", str(INTEL / "cpuid.txt"))
    doc = json.loads(out)
    assert status == 1 and doc["kvm_usable"] is False
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["/dev/kvm exists"]["ok"] is True
    assert steps["/dev/kvm is a character device"]["ok"] is False
    assert steps["/dev/kvm is readable and writable"]["detail"] == "skipped"
    assert doc["host"]["hvm"]["status"] == "enabled"


def test_capabilities_json_has_the_fixed_keys(capsys):
    status, out, _err = run(capsys, "capabilities", "--format", "json")
    doc = json.loads(out)
    assert status == 0 and doc["schema_version"] == 1
    host = doc["host"]
    for key in ("arch",):
        assert key in host
    assert set(host["cpu"]) >= {"vendor", "features", "source"}
    assert set(host["hypervisor"]) >= {"vendor", "signature"}
    assert set(host["kvm"]) >= {"exists", "accessible", "usable", "api_version"}
    assert set(host["xen"]) >= {"present", "role", "capabilities"}
    assert set(host["hvm"]) >= {"type", "status", "confidence", "bios_setting", "evidence"}
    assert isinstance(doc["guests"], list)


def test_record_then_replay(tmp_path, capsys):
    import capsfast

    status, out, _err = run(capsys, "record", str(tmp_path / "rec"))
    assert status == 0 and "recorded" in out
    rec = tmp_path / "rec"
    live = capsfast.probe(refresh=True)
    replay = capsfast.probe(replay=str(rec))
    assert replay.cpu._replace(source=None) == live.cpu._replace(source=None)
    # The replay decodes with the map the recording carries.
    live_map, replay_map = live.cpu_model.cpu_map, replay.cpu_model.cpu_map
    if live_map is not None:
        assert replay_map == str(rec / "root") + live_map
    assert replay.cpu_model._replace(cpu_map=None) == live.cpu_model._replace(cpu_map=None)
    assert replay._replace(cpu=None, cpu_model=None) == live._replace(cpu=None, cpu_model=None)
    # A hand-made tree keeps its placeholder's meaning: not a usable KVM.
    hand_made = capsfast.probe(root=str(rec / "root"), arch=live.arch)
    assert hand_made.kvm.usable is False
    status, _out, err = run(capsys, "record", str(rec))
    assert_one_line_error(status, err, "not empty")


def test_python_dash_m_and_broken_pipe():
    done = subprocess.run(
        "%s -m capsfast capabilities --format json | head -c 10 >/dev/null" % sys.executable,
        shell=True, capture_output=True, text=True,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr


@pytest.mark.parametrize("shell", ["record - | head -c 100 > /dev/null", "record - > /dev/full"])
def test_record_to_a_stream_that_fails_is_one_line(shell, tmp_path):
    """A tar stream cut short (its reader left, the disk is full) is an
    incomplete recording: one line and exit status 2, never a traceback."""
    command = "%s -m capsfast %s; echo status=${PIPESTATUS[0]} >&2" % (shlex.quote(sys.executable), shell)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = done.stderr.splitlines()
    assert lines[-1] == "status=2", done.stderr
    assert len(lines) == 2 and lines[0].startswith("capsfast: cannot write to standard output: "), done.stderr


# -- one rule per oddity, said in one line and in the help ---------------------

def capsfast_run(*argv, stdin=None):
    return subprocess.run([sys.executable, "-m", "capsfast", *argv], capture_output=True, text=True, timeout=120,
                          stdin=stdin)


@pytest.mark.parametrize("argv,words", [
    (["check", "--json", "--format", "text"], ["--json and --format say the same thing"]),
    (["check", "--format", "json", "--json"], ["--format and --json say the same thing"]),
    (["check", "--for", "kata", "--for", "qemu"], ["--for given twice"]),
    (["check", "--connect", "ssh://a", "--connect", "ssh://b"], ["--connect given twice", "takes several"]),
    (["check", "--replay", str(INTEL), "--root", "/"], ["--replay", "takes no --root"]),
    (["capabilities", "--replay", str(INTEL), "--cpuid-dump", str(INTEL / "cpuid.txt")],
     ["--replay", "takes no --cpuid-dump"]),
    (["capabilities", "--replay", str(INTEL), "--connect", "ssh://a"], ["not both"]),
    (["capabilities", "--parallel", "2"], ["--parallel applies to several hosts"]),
    (["export", "prometheus", "--every", "1e9", "--file", "x.prom"], ["less than 1e9, not '1e9'"]),
    (["watch", "--replay", str(INTEL)], ["unrecognised option '--replay'"]),
    (["watch", "--connect", "ssh://a"], ["unrecognised option '--connect'"]),
    (["record", "--cpu-map", str(HOSTS), "out"], ["record takes no --cpu-map", "--replay DIR --cpu-map MAP"]),
])
def test_each_conflict_or_misfit_is_one_line_exit_2(argv, words):
    done = capsfast_run(*argv)
    assert done.stdout == ""
    assert_one_line_error(done.returncode, done.stderr, *words)


@pytest.mark.parametrize("argv,line", [
    (["bench", "--quick", "--quick"], "capsfast: --quick given twice: give it once\n"),
    (["check", "--root", "/", "--root", "/"], "capsfast: --root given twice: give it once\n"),
])
def test_an_option_given_twice_is_said_whole(argv, line):
    """An option with nothing more to say about itself says no more (the
    message once ended in 'None')."""
    done = capsfast_run(*argv)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line)


def test_a_hosts_file_that_names_no_host_is_bad_input(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("# nothing yet\n\n")
    done = capsfast_run("capabilities", "--hosts", str(hosts))
    assert done.stdout == ""
    assert_one_line_error(done.returncode, done.stderr, "names no host")


@pytest.mark.parametrize("command", [["check"], ["capabilities"], ["watch"], ["export", "prometheus"]])
def test_the_help_states_the_rules(command):
    done = capsfast_run(*command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Each option is given once" in text
    if command != ["watch"]:
        assert "neither takes --root, --cpuid-dump or --arch" in text
    else:
        assert "--replay" not in text and "--connect" not in text and "--cpu-map" not in text


def test_capabilities_help_states_the_output_shape_and_bounds():
    text = " ".join(capsfast_run("capabilities", "--help").stdout.split())
    assert "One --connect prints that host's document" in text
    assert "--hosts FILE (even of one line)" in text and "tagged with its URI" in text
    assert "with several hosts only" in text


def test_record_help_says_which_input_flags_it_takes():
    text = " ".join(capsfast_run("record", "--help").stdout.split())
    assert "record takes --deep and --connect only" in text and "--cpu-map" in text


# -- every input is read once ---------------------------------------------------

@pytest.mark.parametrize("command", [["check"], ["check", "--json"], ["capabilities"], ["capabilities", "--json"],
                                     ["export", "prometheus"], ["export", "nfd", "--stdout"]])
def test_a_dump_on_a_pipe_is_read_once(command):
    """``--cpuid-dump <(cpuid -r -1)`` and ``--cpuid-dump /dev/stdin``: a
    pipe gives its text once, so every part must share one reading; the
    answer is the one a regular file gives."""
    root, dump = INTEL / "root", INTEL / "cpuid.txt"
    expected = capsfast_run(*command, "--cpuid-dump", str(dump), "--root", str(root))
    assert expected.returncode in (0, 1) and expected.stderr == ""
    substituted = subprocess.run(
        ["bash", "-c", 'exec "$0" -m capsfast "$@" --cpuid-dump <(cat "$DUMP") --root "$ROOT"', sys.executable,
         *command], capture_output=True, text=True, timeout=120, env=dict(os.environ, DUMP=str(dump), ROOT=str(root)))
    assert (substituted.returncode, substituted.stderr) == (expected.returncode, "")
    with open(dump, "rb") as source:
        piped = subprocess.run(["bash", "-c", 'cat | "$0" -m capsfast "$@" --cpuid-dump /dev/stdin --root "$ROOT"',
                                sys.executable, *command], stdin=source, capture_output=True, text=True,
                               timeout=120, env=dict(os.environ, ROOT=str(root)))
    assert (piped.returncode, piped.stderr) == (expected.returncode, "")
    if "prometheus" not in command:  # its probe duration differs from run to run
        assert substituted.stdout == piped.stdout == expected.stdout
