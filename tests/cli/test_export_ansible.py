"""capsfast export ansible: the facts.d JSON, and an installed fact that
Ansible's own setup module runs."""
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import capsfast
from capsfast.cli import main
from capsfast.render import ansible
from test_export_nfd import sample_host

HOSTS = Path(__file__).resolve().parent.parent / "hosts"


def capsfast_json(*args, env=None):
    run = subprocess.run([sys.executable, "-m", "capsfast", "capabilities", "--format", "json"] + list(args),
                         capture_output=True, check=True, env=env)
    return json.loads(run.stdout)


def test_json_is_the_capabilities_document():
    host = sample_host()
    assert ansible.render(host) == capsfast.capabilities(host, format="json")
    doc = json.loads(ansible.render(host))
    assert doc["host"]["kvm"]["usable"] is True
    assert [g["arch"] for g in doc["guests"]] == ["x86_64", "i686"]


def test_cli_prints_the_json(capsys):
    assert main(["export", "ansible"]) == 0
    assert json.loads(capsys.readouterr().out) == capsfast_json()


def test_fact_script_quotes_any_interpreter_path():
    script = ansible.fact_script("/opt/it's here/bin/python3", "/opt/it's \"there\"/site", ["--root", "/a b"])
    assert script.startswith("#!/bin/sh\n")
    exec_line = [line for line in script.splitlines() if line.startswith("exec ")][0]
    words = shlex.split(exec_line)[1:]
    assert words[:3] == ["/opt/it's here/bin/python3", "-I", "-c"]
    assert words[4:] == ["export", "ansible", "--root", "/a b"]
    assert "sys.path.insert(0, %r)" % "/opt/it's \"there\"/site" in words[3]


# A capsfast source tree without its compiled module, as a checkout is
# before it is built: importing it fails.
DECOY = "raise SystemExit('the capsfast of the working directory or PYTHONPATH was imported')\n"


def test_the_installed_fact_runs_the_installed_package_from_any_directory_and_environment(tmp_path, capsys):
    facts = tmp_path / "facts.d"
    assert main(["export", "ansible", "--install", "--dir", str(facts)]) == 0
    capsys.readouterr()
    decoy = tmp_path / "checkout"
    (decoy / "capsfast").mkdir(parents=True)
    (decoy / "capsfast" / "__init__.py").write_text(DECOY)
    (decoy / "capsfast" / "__main__.py").write_text(DECOY)
    # The sanitizer run's own needs (an ASan build wants its runtime first), not the caller's.
    plain = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    plain.update({k: v for k, v in os.environ.items() if k in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")})
    env = dict(plain, PYTHONPATH=str(decoy), PYTHONSTARTUP=str(decoy / "x"))
    run = subprocess.run([str(facts / "capsfast.fact")], capture_output=True, env=env, cwd=decoy)
    assert run.returncode == 0, run.stderr
    assert run.stderr == b""
    assert json.loads(run.stdout) == capsfast_json(env=plain)


def test_install_writes_an_executable_fact_that_names_this_interpreter(tmp_path, capsys):
    assert main(["export", "ansible", "--install", "--dir", str(tmp_path)]) == 0
    fact = tmp_path / "capsfast.fact"
    assert capsys.readouterr().out == "installed %s\n" % fact
    assert stat.S_IMODE(fact.stat().st_mode) == 0o755
    assert os.path.isabs(sys.executable) and repr(sys.executable)[1:-1] in fact.read_text()
    # A PATH without this interpreter's directory, as Ansible's may be
    # (emulators are looked up on PATH, so both runs get the same one).
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    run = subprocess.run([str(fact)], capture_output=True, env=env, check=True)
    assert json.loads(run.stdout) == capsfast_json(env=env)


def test_install_creates_a_missing_facts_directory_with_mode_0755(tmp_path, capsys):
    # /etc/ansible/facts.d does not exist on a host Ansible never set up.
    facts = tmp_path / "a" / "b"
    old = os.umask(0o077)
    try:
        assert main(["export", "ansible", "--install", "--dir", str(facts)]) == 0
    finally:
        os.umask(old)
    assert capsys.readouterr().out == "installed %s\n" % (facts / "capsfast.fact")
    assert stat.S_IMODE((facts / "capsfast.fact").stat().st_mode) == 0o755
    for directory in (tmp_path / "a", facts):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755


def test_install_where_no_directory_can_be_made_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["export", "ansible", "--install", "--dir", str(tmp_path / "file" / "facts.d")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("capsfast: cannot create directory %s: " % (tmp_path / "file"))


def ansible_local(fact_dir, tmp_path):
    """ansible_local as Ansible's setup module gathers it from ``fact_dir``."""
    tool = shutil.which("ansible")
    if tool is None:
        pytest.skip("ansible is not installed (pip install ansible-core)")
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [tool, "localhost", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
         "-m", "ansible.builtin.setup", "-a", "fact_path=%s filter=ansible_local" % fact_dir],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # "localhost | SUCCESS => {...}"
    head, _sep, body = run.stdout.partition(" => ")
    assert "SUCCESS" in head, run.stdout
    return json.loads(body)["ansible_facts"]["ansible_local"]


def test_ansible_setup_sees_capsfast_json_for_this_host(tmp_path):
    facts = tmp_path / "facts.d"
    facts.mkdir()
    assert main(["export", "ansible", "--install", "--dir", str(facts)]) == 0
    assert ansible_local(facts, tmp_path)["capsfast"] == capsfast_json()


def test_ansible_setup_sees_a_scenario_through_the_installed_flags(tmp_path):
    facts = tmp_path / "facts.d"
    facts.mkdir()
    scenario = HOSTS / "xen-dom0-hvm"
    args = ["--root", str(scenario / "root")]
    if (scenario / "cpuid.txt").exists():
        args += ["--cpuid-dump", str(scenario / "cpuid.txt")]
    assert main(["export", "ansible", "--install", "--dir", str(facts)] + args) == 0
    got = ansible_local(facts, tmp_path)["capsfast"]
    assert got == capsfast_json(*args)
    assert got["host"]["xen"]["role"] == "dom0"
