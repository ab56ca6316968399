"""``capsfast record --redact``: no ids, no kernel arguments capsfast does
not read, no PATH entries without an emulator; the replay still answers."""
import ast
import json
import os
import subprocess
import sys

from capsfast.recording import redact


def cli(*args, **kwargs):
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "capsfast", *args], timeout=120, **kwargs)


def test_redacted_recording_replays_without_private_data(tmp_path):
    plain, redacted = tmp_path / "plain", tmp_path / "redacted"
    assert cli("record", str(plain)).returncode == 0
    done = cli("record", "--redact", str(redacted))
    assert done.returncode == 0, done.stderr
    assert not (redacted / "root" / "etc" / "machine-id").exists()
    cmdline = (redacted / "root" / "proc" / "cmdline").read_bytes().split()
    assert all(arg.partition(b"=")[0].decode() in redact.KEPT_ARGS for arg in cmdline)
    kept = [arg for arg in (plain / "root" / "proc" / "cmdline").read_bytes().split()
            if arg.partition(b"=")[0].decode() in redact.KEPT_ARGS]
    assert cmdline == kept
    scenario = json.loads((redacted / "scenario.json").read_text())
    assert "/proc/cmdline" in scenario["redacted"]
    path = scenario["path"].split(":") if scenario["path"] else []
    assert set(path) <= set(json.loads((plain / "scenario.json").read_text())["path"].split(":"))
    assert all(any(name.startswith("qemu") for name in os.listdir(redacted / "root" / entry.strip("/")))
               for entry in path)
    docs = [json.loads(cli("capabilities", "--format", "json", "--replay", str(d)).stdout) for d in (plain, redacted)]
    assert docs[1]["host"].pop("uuid") is None
    docs[0]["host"].pop("uuid")
    assert docs[0] == docs[1]
    stream = cli("record", "--redact", "-").stdout
    assert cli("check", "--replay", "-", input=stream).stdout == cli("check", "--replay", str(plain)).stdout


def test_kept_args_are_those_the_platform_part_reads():
    source = os.path.join(os.path.dirname(redact.__file__), "..", "parts", "platform", "decide.py")
    tree = ast.parse(open(source).read())
    read = {node.args[1].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "cmdline_value"
            and isinstance(node.args[1], ast.Constant)}
    iommu = {node.value.elts[i].value for node in ast.walk(tree)
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_IOMMU_ARGS"
             for i in range(len(node.value.elts))}
    assert read and iommu and read | iommu <= redact.KEPT_ARGS


def test_kept_cmdline_and_path():
    assert redact.kept_cmdline(b"ro root=/dev/sda1 token=secret intel_iommu=on nosgx\n") == b"intel_iommu=on nosgx\n"
    files = {"root/usr/bin/qemu-system-x86_64": (b"", 0o755), "root/opt/x/qemu-system-aarch64": (b"", 0o755),
             "root/home/me/bin/tool": (b"", 0o755)}
    assert redact.kept_path("/home/me/bin:/usr/bin:/opt/x:/usr/bin:/sbin", files) == "/usr/bin:/opt/x"
