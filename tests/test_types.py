"""The types a user's checker sees: one declaration of the model, which
mypy reads and checks, and a user's script type-checked against the
installed package sees real types, not Any."""
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import capsfast
from capsfast import model

PACKAGE = Path(capsfast.__file__).resolve().parent


def test_one_declaration_of_each_type():
    """No stub hides a module of the package from the checker: the only
    ``.pyi`` is the compiled module's, and it has no ``.py`` beside it."""
    stubs = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.pyi"))
    assert stubs == ["_capsfast.pyi"], stubs
    assert not (PACKAGE / "_capsfast.py").exists()
    assert (PACKAGE / "py.typed").is_file()


def test_records_are_tuples_with_their_declared_fields():
    """What the checker reads (the annotations) is what runs: each record's
    fields are its annotated names, in order, on a light tuple."""

    declared = {}
    for node in ast.parse((PACKAGE / "model.py").read_text()).body:
        if isinstance(node, ast.ClassDef) and [getattr(b, "id", None) for b in node.bases] == ["Record"]:
            declared[node.name] = tuple(n.target.id for n in node.body if isinstance(n, ast.AnnAssign))
    runtime = {name: getattr(model, name)._fields for name in dir(model)
               if isinstance(getattr(model, name), type) and hasattr(getattr(model, name), "_fields")}
    assert declared == runtime and "Host" in declared
    cpu = model.Cpu(*range(8))
    assert isinstance(cpu, tuple) and cpu.max_ext_leaf == 7 and not hasattr(cpu, "__dict__")
    assert cpu._replace(vendor="x") == ("x",) + tuple(range(1, 8))


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the package's annotations are Python 3.10 syntax to a "
                    "checker (X | Y): mypy --strict checks the package under CI's newer Python")
def test_a_type_error_in_the_model_fails_the_check(tmp_path):
    """mypy reads model.py itself: a type error put into it fails the
    strict check of a copy of the package (and the untouched copy passes)."""
    shutil.copytree(PACKAGE, tmp_path / "capsfast", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    clean = run_mypy(tmp_path, ["capsfast"])
    assert clean.returncode == 0, clean.stdout
    model_py = tmp_path / "capsfast" / "model.py"
    model_py.write_text(model_py.read_text() + '\n\ndef _broken(host: Host) -> int:\n    return host.arch\n')
    broken = run_mypy(tmp_path, ["capsfast"])
    assert broken.returncode == 1, broken.stdout
    assert 'model.py:' in broken.stdout and 'Incompatible return value type (got "str", expected "int")' \
        in broken.stdout, broken.stdout


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
capsfast.capabilities(format="yaml")
capsfast.ready("bochs")
if capsfast.probe().hvm.status == "enabeld":
    pass
'''


def run_mypy(cwd, args):
    if subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (pip install mypy)")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the package as installed (or the copy in cwd), as a user has it
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull] + list(args),
        cwd=cwd, capture_output=True, text=True, env=env, timeout=300,
    )


def mypy(tmp_path, text):
    script = tmp_path / "user.py"
    script.write_text(text)
    return run_mypy(tmp_path, [str(script)])


def test_a_users_checker_sees_the_types(tmp_path):
    done = mypy(tmp_path, USER_SCRIPT)
    # Older mypy spells builtins out ("builtins.bool"), newer does not.
    revealed = [line.split('Revealed type is "', 1)[1].rstrip('"').replace("builtins.", "")
                for line in done.stdout.splitlines() if "Revealed type is" in line]
    # Older mypy prints a union of literals, newer one Literal[...].
    status = revealed[1].replace("] | Literal[", ", ")
    if status.startswith("Union[Literal["):  # mypy on Python 3.9: Union[Literal['a'], Literal['b']]
        status = "Literal[%s]" % ", ".join(re.findall(r"Literal\[('[^']*')\]", status))
    assert status == "Literal['enabled', 'disabled_by_firmware', 'not_exposed', 'unsupported', 'unknown']", revealed
    assert revealed[:1] + revealed[2:] == ["bool", "tuple[str, ...]", "str", "dict[str, Any]", "bool"], done.stdout
    assert "error" not in done.stdout, done.stdout


def test_a_users_checker_catches_mistakes(tmp_path):
    done = mypy(tmp_path, USER_MISTAKE)
    assert done.returncode == 1
    assert 'Argument 1 to "capabilities" has incompatible type "str"' in done.stdout, done.stdout
    assert '"Kvm" has no attribute "usabel"' in done.stdout, done.stdout
    assert 'Module has no attribute "kvm_usabel"' in done.stdout, done.stdout
    assert 'Argument "format" to "capabilities" has incompatible type "Literal[\'yaml\']"' in done.stdout, done.stdout
    assert 'Argument 1 to "ready" has incompatible type "Literal[\'bochs\']"' in done.stdout, done.stdout
    assert 'Non-overlapping equality check' in done.stdout and "enabeld" in done.stdout, done.stdout
