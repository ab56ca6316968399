"""The command line with ``--connect``, end to end."""
import io
import json
import os
import subprocess
import sys
import time


from capsfast.recording import remote

from ssh_server import LATEST, TIMEOUT, free_port


# ------------------------------------------------ the command line, end to end

def cli(*args, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run([sys.executable, "-m", "capsfast", *args], timeout=120, **kwargs)


def comparable(doc, cpu_source):
    """The parts of a JSON document a remote answer must equal: all but
    host.cpu.source with a CPUID walk; else (CPU facts from /proc/cpuinfo)
    the KVM facts, the verdict's status and the guests."""
    if cpu_source == "cpuid":
        doc = json.loads(json.dumps(doc))
        doc["host"]["cpu"].pop("source")
        return doc
    return {"kvm": doc["host"]["kvm"], "hvm": doc["host"]["hvm"]["status"], "guests": doc["guests"]}


def remote_cpu_source(sshd):
    with remote.fetch(sshd.uri(), timeout=TIMEOUT) as directory:
        with open(os.path.join(directory, "scenario.json")) as f:
            return json.load(f)["cpu_source"]


def test_cli_connect_equals_the_live_answer(sshd):
    source = remote_cpu_source(sshd)
    live = json.loads(cli("capabilities", "--format", "json").stdout)
    there = cli("capabilities", "--format", "json", "--connect", sshd.uri())
    assert there.returncode == 0, there.stderr
    assert comparable(json.loads(there.stdout), source) == comparable(live, source)
    check_here, check_there = cli("check"), cli("check", "--connect", sshd.uri())
    assert check_there.returncode == check_here.returncode
    kvm_lines = [line for line in check_here.stdout.splitlines() if "/dev/kvm" in line]
    assert kvm_lines and all(line in check_there.stdout for line in kvm_lines), check_there.stdout
    if source == "cpuid":
        assert check_there.stdout == check_here.stdout
        assert cli("capabilities", "--connect", sshd.uri()).stdout == cli("capabilities").stdout


def test_record_over_ssh_pipes_into_a_replay(sshd):
    """ssh host capsfast record - | capsfast check --replay -"""
    key = sshd.keys["good"]
    ssh = ["ssh", "-p", str(sshd.port), "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "%s@127.0.0.1" % sshd.user,
           "%s -m capsfast record -" % sys.executable]
    recorder = subprocess.Popen(ssh, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    replay = subprocess.run([sys.executable, "-m", "capsfast", "check", "--replay", "-"], stdin=recorder.stdout,
                            capture_output=True, text=True, timeout=120)
    recorder.stdout.close()
    assert recorder.wait(timeout=60) == 0, recorder.stderr.read()
    live = cli("check")
    assert (replay.returncode, replay.stdout) == (live.returncode, live.stdout), replay.stderr


def test_record_connect_saves_the_remote_recording(sshd, tmp_path):
    done = cli("record", "--connect", sshd.uri(), str(tmp_path / "rec"))
    assert done.returncode == 0, done.stderr
    scenario = json.loads((tmp_path / "rec" / "scenario.json").read_text())
    source = scenario["cpu_source"]
    # Said as a local recording says it: one writer for both.
    files = sum(1 for _top, _dirs, names in os.walk(tmp_path / "rec" / "root") for _name in names)
    assert done.stdout.startswith("recorded %s: %d files, " % (tmp_path / "rec", files)), done.stdout
    assert done.stdout.rstrip().endswith("arch %s" % scenario["arch"]), done.stdout
    replayed = json.loads(cli("capabilities", "--format", "json", "--replay", str(tmp_path / "rec")).stdout)
    live = json.loads(cli("capabilities", "--format", "json").stdout)
    assert comparable(replayed, source) == comparable(live, source)


def test_record_connect_to_a_stream_holds_what_a_directory_holds(sshd, tmp_path):
    import tarfile

    streamed = subprocess.run([sys.executable, "-m", "capsfast", "record", "--connect", sshd.uri(), "-"],
                              capture_output=True, timeout=120)
    assert streamed.returncode == 0, streamed.stderr
    saved = cli("record", "--connect", sshd.uri(), str(tmp_path / "rec"))
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(fileobj=io.BytesIO(streamed.stdout), mode="r|") as tar:
        members = {m.name: m.type for m in tar}
    on_disk = {}
    for top, dirs, names in os.walk(tmp_path / "rec"):
        relative = os.path.relpath(top, tmp_path / "rec")
        for name in dirs:
            on_disk[os.path.normpath(os.path.join(relative, name))] = tarfile.DIRTYPE
        for name in names:
            on_disk[os.path.normpath(os.path.join(relative, name))] = tarfile.REGTYPE
    # The same names, each directory a member of its own before what it holds.
    assert members == on_disk


def test_many_hosts_one_dead(sshd, tmp_path):
    dead = sshd.uri(port=free_port())
    hosts = tmp_path / "hosts"
    hosts.write_text("# two good, one dead\n%s\n%s  # again\n" % (sshd.uri(), dead))
    started = time.monotonic()
    done = cli("capabilities", "--format", "json", "--connect", sshd.uri(), "--hosts", str(hosts))
    assert time.monotonic() - started < LATEST * 2
    assert done.returncode == 2
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["uri"] for d in docs] == [sshd.uri(), sshd.uri()]
    assert all(d["schema_version"] == 1 and d["host"]["kvm"] for d in docs)
    errors = done.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("capsfast: ") and "127.0.0.1" in errors[0], done.stderr
    xml = cli("capabilities", "--connect", sshd.uri(), "--connect", sshd.uri())
    assert xml.returncode == 0 and xml.stdout.count("<capabilities>") == 2
    assert xml.stdout.count("<!-- capsfast: ssh://") == 2


def test_several_hosts_only_for_capabilities(sshd):
    done = cli("check", "--connect", sshd.uri(), "--connect", sshd.uri())
    assert done.returncode == 2 and "takes several" in done.stderr
