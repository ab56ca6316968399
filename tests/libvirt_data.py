"""Where libvirt's own test data is, for the tests whose expected answers
are libvirt's (a plain module, not a conftest: test folders have
conftests of their own, and a name imported from "conftest" would be
whichever was loaded first)."""
import os


def libvirt_source():
    """libvirt's own source tree (``apt-get source libvirt``, which .ci/run
    fetches) named by CAPSFAST_LIBVIRT_SRC, for the tests whose expected
    answers are libvirt's own test data; None where it is not there."""
    path = os.environ.get("CAPSFAST_LIBVIRT_SRC")
    if path and os.path.isdir(os.path.join(path, "tests", "domaincapsdata")):
        return path
    return None
