"""The types a user's checker sees: the model's stub agrees with the model,
and a user's script type-checked against the installed package sees real
types, not Any."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import capsfast
from capsfast import model

STUB = Path(model.__file__).with_suffix(".pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "NamedTuple" for b in node.bases):
            classes[node.name] = tuple(
                item.target.id for item in node.body if isinstance(item, ast.AnnAssign)
            )
    return classes


def test_stub_is_shipped_beside_the_model():
    assert STUB.is_file()
    assert (Path(capsfast.__file__).parent / "py.typed").is_file()
    assert (Path(capsfast.__file__).parent / "_capsfast.pyi").is_file()


def test_stub_records_equal_the_runtime_records():
    classes = stub_classes()
    runtime = {name: getattr(model, name)._fields for name in dir(model)
               if isinstance(getattr(model, name), type) and hasattr(getattr(model, name), "_fields")}
    assert classes == runtime


USER_SCRIPT = '''
import capsfast

h = capsfast.probe()
reveal_type(h.kvm.usable)
reveal_type(h.hvm.status)
reveal_type(h.guests[0].domains)
reveal_type(capsfast.capabilities(format="json"))
reveal_type(h.as_dict())
reveal_type(capsfast.kvm_usable())
'''

USER_MISTAKE = '''
import capsfast

capsfast.capabilities("json")
capsfast.probe().kvm.usabel
capsfast.kvm_usabel()
'''


def mypy(tmp_path, text):
    if shutil.which("mypy") is None and subprocess.run(
            [sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (pip install mypy)")
    script = tmp_path / "user.py"
    script.write_text(text)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the package as installed, as a user has it
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull, str(script)],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )


def test_a_users_checker_sees_the_types(tmp_path):
    done = mypy(tmp_path, USER_SCRIPT)
    # Older mypy spells builtins out ("builtins.bool"), newer does not.
    revealed = [line.split('Revealed type is "', 1)[1].rstrip('"').replace("builtins.", "")
                for line in done.stdout.splitlines() if "Revealed type is" in line]
    assert revealed == ["bool", "str", "tuple[str, ...]", "str", "dict[str, Any]", "bool"], done.stdout
    assert "error" not in done.stdout, done.stdout


def test_a_users_checker_catches_mistakes(tmp_path):
    done = mypy(tmp_path, USER_MISTAKE)
    assert done.returncode == 1
    assert 'Argument 1 to "capabilities" has incompatible type "str"' in done.stdout, done.stdout
    assert '"Kvm" has no attribute "usabel"' in done.stdout, done.stdout
    assert 'Module has no attribute "kvm_usabel"' in done.stdout, done.stdout
