"""deploy/: the Kubernetes manifest, the systemd units and the Ansible
playbook, each checked by the tool that will read it."""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capsfast.cli.options import parse
from capsfast.cli.export import options
from capsfast.render import nfd

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFEST = DEPLOY / "kubernetes" / "capsfast-nfd.yaml"
SERVICE = DEPLOY / "systemd" / "capsfast-prometheus.service"
TIMER = DEPLOY / "systemd" / "capsfast-prometheus.timer"
PLAYBOOK = DEPLOY / "ansible" / "capsfast.yml"


def export_args_ok(argv):
    """``argv`` is a capsfast export command our own parser accepts."""
    assert argv[:2] == ["capsfast", "export"], argv
    values = parse(options(argv[2]), (), argv[3:])
    return values


def manifest_docs():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return list(yaml.safe_load_all(MANIFEST.read_text()))


def test_kubernetes_validate_accepts_the_manifest():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (pip install kubernetes-validate)")
    for doc in manifest_docs():
        kv.validate(doc, kv.latest_version(), strict=True)


def test_kubernetes_validate_would_refuse_a_broken_daemonset():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    daemonset = [d for d in manifest_docs() if d["kind"] == "DaemonSet"][0]
    daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = "yes"
    with pytest.raises(kv.ValidationError):
        kv.validate(daemonset, kv.latest_version(), strict=True)


def test_daemonset_runs_the_nfd_exporter_beside_nfd():
    daemonset = [d for d in manifest_docs() if d["kind"] == "DaemonSet"][0]
    pod = daemonset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    values = export_args_ok(container["command"])
    assert container["command"][2] == "nfd"
    assert float(values["every"]) == 60
    assert values["dir"] == nfd.DEFAULT_DIR
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    features = mounts[nfd.DEFAULT_DIR]
    assert volumes[features["name"]]["hostPath"]["path"] == nfd.DEFAULT_DIR
    assert not features.get("readOnly")
    sys_mount = mounts["/sys"]
    assert sys_mount["readOnly"] is True and volumes[sys_mount["name"]]["hostPath"]["path"] == "/sys"
    assert {"operator": "Exists"} in pod["tolerations"]


def test_systemd_units_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    exec_line = [l for l in SERVICE.read_text().splitlines() if l.startswith("ExecStart=")][0]
    argv = shlex.split(exec_line[len("ExecStart="):])
    assert argv[0] == "/usr/local/bin/capsfast"
    values = export_args_ok(["capsfast"] + argv[1:])
    assert values["file"].endswith(".prom")
    # systemd-analyze checks that ExecStart exists: point it at this
    # interpreter's capsfast (the unit's path is where pip puts it).
    units = tmp_path / "units"
    units.mkdir()
    real = shutil.which("capsfast") or pytest.skip("no capsfast on PATH")
    (units / SERVICE.name).write_text(SERVICE.read_text().replace("/usr/local/bin/capsfast", real))
    shutil.copy(TIMER, units / TIMER.name)
    run = subprocess.run([tool, "verify", str(units / SERVICE.name), str(units / TIMER.name)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "capsfast-prometheus" not in run.stderr, run.stderr


def test_ansible_playbook_runs_on_this_host(tmp_path):
    tool = shutil.which("ansible-playbook")
    if tool is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible-core)")
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), ANSIBLE_NOCOLOR="1")
    facts = tmp_path / "facts.d"
    base = [tool, "-i", "localhost,", "-c", "local", str(PLAYBOOK),
            "-e", "ansible_python_interpreter=" + sys.executable, "-e", "ansible_become=false",
            "-e", "capsfast_install=false", "-e", "capsfast_fact_dir=%s" % facts]
    check = subprocess.run(base + ["--syntax-check"], capture_output=True, text=True, env=env, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(base, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "failed=0" in run.stdout
    assert (facts / "capsfast.fact").exists()
    import capsfast

    if capsfast.probe().kvm.usable:
        assert "localhost: KVM API 12, guests" in run.stdout
    else:
        assert "no hosts matched" in run.stdout
