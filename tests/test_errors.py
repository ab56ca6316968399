"""CapsfastError: one printable line, and the errno of the OS error behind it."""
import errno
import os
import pickle

import pytest

from capsfast.errors import CapsfastError, printable


def test_a_plain_error_is_its_message_and_has_no_errno():
    error = CapsfastError("root /x: not a directory")
    assert str(error) == "root /x: not a directory"
    assert error.args == ("root /x: not a directory",)
    assert error.errno is None and error.strerror is None
    assert isinstance(error, OSError)


def test_an_errno_rides_along_without_changing_the_message():
    error = CapsfastError("cannot write /x/f: Permission denied", errno=errno.EACCES)
    # Not OSError's "[Errno 13] ...": the text stays fit to print after "capsfast: ".
    assert str(error) == "cannot write /x/f: Permission denied"
    assert error.errno == errno.EACCES
    assert error.strerror == os.strerror(errno.EACCES)


def test_built_from_a_caught_os_error():
    try:
        os.stat("/nonexistent/capsfast")
    except OSError as e:
        error = CapsfastError("cannot read /nonexistent/capsfast: %s" % e.strerror, errno=e.errno)
    assert error.errno == errno.ENOENT and error.strerror == os.strerror(errno.ENOENT)
    assert str(error) == "cannot read /nonexistent/capsfast: No such file or directory"


def test_errno_is_keyword_only():
    # OSError's own order is (errno, strerror): a positional errno would be
    # easy to pass the wrong way round.
    with pytest.raises(TypeError):
        CapsfastError("message", errno.EACCES)


def test_pickling_keeps_message_and_errno():
    for error in (CapsfastError("plain"), CapsfastError("denied", errno=errno.EACCES)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is CapsfastError
        assert (str(copy), copy.errno, copy.strerror) == (str(error), error.errno, error.strerror)


def test_printable_escapes_control_characters():
    assert printable("plain text") == "plain text"
    assert printable("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
