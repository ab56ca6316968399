import os
import sys

import pytest

# Test helpers (scenarios.py) import as plain modules from this directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenarios import all_scenarios  # noqa: E402
from libvirt_data import libvirt_source  # noqa: E402

# A CPU map named in the caller's environment would change every expected
# host <cpu>: tests name theirs (--cpu-map, a root's own copy).
os.environ.pop("CAPSFAST_CPU_MAP", None)


@pytest.fixture
def fresh_process_state():
    """The live caches emptied, as in a new process; emptied again after."""
    from capsfast import host as probing

    probing.forget_live()
    yield
    probing.forget_live()


def pytest_generate_tests(metafunc):
    if "scenario" in metafunc.fixturenames:
        scenarios = all_scenarios()
        metafunc.parametrize("scenario", scenarios, ids=[s.name for s in scenarios])


@pytest.fixture
def libvirt_src():
    path = libvirt_source()
    if path is None:
        pytest.skip("libvirt's source tree is not here: set CAPSFAST_LIBVIRT_SRC to an "
                    "'apt-get source libvirt' tree (.ci/run does)")
    return path
