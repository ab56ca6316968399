"""Every sample in README.md and docs/ is the output of the command it shows.

A sample is a fenced block with ``$ `` command lines, each followed by the
output it prints.  The commands run as written (through bash, so pipes,
``echo $?`` and ``${PIPESTATUS[0]}`` work) on scenario hosts of
``tests/hosts/``, in a scratch directory where ``tests`` leads to this
checkout's tests, so the output cannot depend on the machine.  A line that
is only ``...`` stands for any number of lines the sample leaves out.

A block whose output comes from a particular live machine (a recording of
it, a remote host over SSH, timings) is marked ``<!-- sample: live -->`` on
the line before it, says so in its text, and is not run; a ``$ capsfast``
block that is neither marked nor on a scenario host fails here.

``pycon`` blocks (``>>>`` examples) run as doctests in the same scratch
directory.
"""
import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent.parent
LIVE_MARK = "<!-- sample: live -->"
GAP = "..."
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def pages():
    found = [TOP / "README.md"] + sorted((TOP / "docs").rglob("*.md"))
    return [page for page in found if page.is_file()]


class Block:
    def __init__(self, page, line, info, text, live):
        self.page, self.line, self.info, self.text, self.live = page, line, info, text, live

    @property
    def name(self):
        return "%s:%d" % (self.page.relative_to(TOP), self.line)


def blocks(page):
    text = page.read_text()
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        yield Block(page, line, match.group(1), match.group(2), before.strip() == LIVE_MARK)


def steps(text):
    """[(command, expected output lines)]: a ``$ `` line starts a command; a
    command line ending in a backslash continues on the next line."""
    result = []
    lines = text.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            assert result, "a sample must start with a '$ ' command line, not %r" % line
            result[-1][1].append(line.rstrip())
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        result.append((command, []))
        i += 1
    return result


def is_sample(block):
    return any(line.startswith("$ ") for line in block.text.split("\n"))


def shell_samples():
    return [b for page in pages() for b in blocks(page) if is_sample(b) and not b.live]


def pycon_samples():
    return [b for page in pages() for b in blocks(page) if b.info == "pycon" and not b.live]


def matches(expected, actual):
    """Whether ``actual`` lines are ``expected`` lines, a ``...`` line in
    ``expected`` standing for any run of lines (none included)."""
    if not expected:
        return not actual
    if expected[0] == GAP:
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and matches(expected[1:], actual[1:])


@pytest.fixture
def scratch(tmp_path):
    """A working directory where ``tests/hosts/...`` names this checkout's
    scenarios and anything a sample writes stays out of the checkout; caches
    in it too, so a sample neither reads nor fills the user's."""
    (tmp_path / "tests").symlink_to(TOP / "tests")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), env.get("PATH", "")))
    env["XDG_CACHE_HOME"] = str(tmp_path / ".cache")
    env["HOME"] = str(tmp_path)
    env.pop("CAPSFAST_CPU_MAP", None)
    env["LC_ALL"] = "C.UTF-8"
    return tmp_path, env


def run_block(block, cwd, env):
    """Each command's output (stdout and stderr as a terminal shows them), in
    one bash session so ``$?`` and ``PIPESTATUS`` are those of the command
    before."""
    separator = "@@capsfast-sample-%d@@" % os.getpid()
    commands = steps(block.text)
    # Printing the separator would reset $? and PIPESTATUS: they are kept
    # first, and $? handed back by a subshell exiting with it.
    keep = 'saved_status=("${PIPESTATUS[@]}"); echo \'%s\'; (exit "${saved_status[-1]}")\n' % separator
    script = "true\n" + "".join(keep + command.replace("PIPESTATUS", "saved_status") + "\n" for command, _ in commands)
    done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=str(cwd), env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120)
    outputs = done.stdout.decode("utf-8", "replace").split(separator + "\n")[1:]
    assert len(outputs) == len(commands), "the sample's commands did not all run:\n" + done.stdout.decode()
    return [(command, expected, output.rstrip("\n").split("\n") if output else [])
            for (command, expected), output in zip(commands, outputs)]


def machine_independent(command, expected):
    """A capsfast command on a scenario host, or one refused before it probes
    anything (its whole output is ``capsfast: ...`` lines)."""
    if "capsfast" not in command:
        return True
    if "tests/hosts/" in command:
        return True
    return bool(expected) and all(line.startswith("capsfast: ") for line in expected)


@pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")
@pytest.mark.parametrize("block", shell_samples(), ids=lambda b: b.name)
def test_sample_is_the_output_of_its_command(block, scratch):
    cwd, env = scratch
    for command, expected in steps(block.text):
        assert machine_independent(command, expected), (
            "%s: '$ %s' does not run on a scenario host of tests/hosts/: its output would depend on "
            "the machine (mark a genuinely live sample '%s' and say so in the text)" % (block.name, command, LIVE_MARK))
    for command, expected, actual in run_block(block, cwd, env):
        assert matches(expected, [line.rstrip() for line in actual]), (
            "%s: '$ %s' prints\n%s\n\nwhere the sample shows\n%s" % (
                block.name, command, "\n".join(actual), "\n".join(expected)))


@pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")
@pytest.mark.parametrize("block", pycon_samples(), ids=lambda b: b.name)
def test_python_sample_runs_as_shown(block, scratch, monkeypatch):
    cwd, env = scratch
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.text, {}, block.name, str(block.page), block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_the_checker_reads_gaps_and_continuations():
    """The rules above, on made-up samples: a gap matches any run of lines,
    nothing else is loose, a backslash continues a command."""
    assert matches(["a", GAP, "d"], ["a", "b", "c", "d"])
    assert matches(["a", GAP], ["a"])
    assert not matches(["a", "d"], ["a", "b", "d"])
    assert not matches(["a", GAP, "d"], ["a", "b", "c"])
    assert steps("$ capsfast check \\\n    --json\n{}\n$ echo $?\n0\n") == [
        ("capsfast check \\\n    --json", ["{}"]), ("echo $?", ["0"])]


def test_the_checker_keeps_exit_statuses(tmp_path):
    """``echo $?`` and ``${PIPESTATUS[0]}`` in a sample see the command
    before, not the checker's own separator."""
    block = Block(TOP / "README.md", 1, "console",
                  "$ false\n$ echo $?\n1\n$ false | true\n$ echo ${PIPESTATUS[0]} $?\n1 0\n", False)
    results = run_block(block, tmp_path, dict(os.environ))
    assert [actual for _, _, actual in results] == [[], ["1"], [], ["1 0"]]


def all_blocks():
    return [b for page in pages() for b in blocks(page)]


@pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")
def test_live_samples_say_so_in_their_text():
    """A sample left unchecked tells the reader: the paragraph before it says
    it is a live sample, so no unchecked output passes for a checked one."""
    quiet = []
    for block in all_blocks():
        if not block.live:
            continue
        text = block.page.read_text()
        start = text.index(LIVE_MARK, sum(len(l) + 1 for l in text.split("\n")[:block.line - 2]))
        before = text[max(0, start - 600):start]
        paragraph = before.rstrip().rsplit("\n\n", 1)[-1]
        if "live sample" not in paragraph.replace("\n", " "):
            quiet.append(block.name)
    assert not quiet, "live samples without 'live sample' in the paragraph before them: %s" % quiet


@pytest.mark.skipif(not (TOP / "README.md").exists(), reason="not a source checkout")
def test_console_blocks_show_their_command():
    """An output sample begins with the command that printed it."""
    headless = [b.name for b in all_blocks() if b.info == "console" and not b.text.startswith("$ ")]
    assert not headless
