"""The documentation site builds without a warning, and README.md stays a
front page."""
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent.parent
checkout = pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")


@checkout
def test_site_builds_strict(tmp_path):
    assert (TOP / "mkdocs.yml").is_file(), "the site's configuration, mkdocs.yml, is missing"
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--config-file", str(TOP / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, done.stdout.decode("utf-8", "replace")


@checkout
def test_readme_is_a_front_page():
    lines = (TOP / "README.md").read_text().splitlines()
    assert len(lines) <= 300, "README.md has %d lines: the rest belongs in docs/" % len(lines)


@checkout
def test_readme_links_into_the_site_resolve():
    """Every docs/ page README.md links to exists (the site checks its own)."""
    import re

    text = (TOP / "README.md").read_text()
    targets = set(re.findall(r"\]\((docs/[^)#]+)", text))
    assert targets
    missing = sorted(t for t in targets if not (TOP / t).is_file())
    assert not missing
