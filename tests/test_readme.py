"""README.md's commands are the ones CI runs."""
import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent


def readme_command(heading):
    text = (TOP / "README.md").read_text()
    match = re.search(r"## %s\n\n```sh\n(.+?)\n```" % re.escape(heading), text)
    assert match, "README.md has no '%s' command block" % heading
    return match.group(1)


@pytest.mark.skipif(not (TOP / ".ci" / "run").exists(), reason="not a source checkout")
def test_ci_runs_the_readme_test_command():
    command = readme_command("Install and test")
    lines = (TOP / ".ci" / "run").read_text().splitlines()
    assert command in lines


@pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")
def test_readme_run_command_uses_the_cli():
    assert readme_command("Install and run") == "pip install . && capsfast check"
