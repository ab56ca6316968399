"""The JSON Schema shipped in the package (capsfast/schemas/
capabilities.schema.json), checked with a real validator (jsonschema,
draft 2020-12): every scenario's JSON, the committed goldens, this machine's
output and the ``host`` inside ``capsfast check --json`` validate; documents
that break it are rejected; and the schema describes exactly the keys the
renderer writes, so the two cannot drift apart silently.

Also here: ``json.dumps(host.as_dict())`` works for every scenario Host.
"""
import copy
import json
import subprocess
import sys
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator

from scenarios import HOSTS, Scenario, all_scenarios

import capsfast
from capsfast.render import check as report
from capsfast.model import Guest, Host, Lazy

GOLDENS = sorted(HOSTS.glob("*/expected.json"))
# The scenario the negative tests start from: it has guests with machines.
BASE = "xen-dom0-hvm"
# The stable codes of host.kvm.failure (besides null).
KVM_FAILURES = {
    "missing", "stat_failed", "not_char_device", "not_kvm_device", "not_accessible",
    "open_failed", "api_version_failed", "api_version_mismatch", "create_vm_failed",
}


def schema_resource():
    """The schema as the installed package holds it."""
    return files("capsfast") / "schemas" / "capabilities.schema.json"


def load_schema():
    return json.loads(schema_resource().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema():
    return load_schema()


@pytest.fixture(scope="module")
def validator(schema):
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def host_validator(schema):
    """The ``host`` object alone (as ``capsfast check --json`` embeds it)."""
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/host"})


def problems(validator, doc):
    """Every validation error as ``path: message``, sorted."""
    return sorted(
        "%s: %s" % ("/".join(str(p) for p in error.absolute_path) or "(top)", error.message)
        for error in validator.iter_errors(doc)
    )


def assert_valid(validator, doc, what):
    errors = problems(validator, doc)
    assert not errors, "%s does not validate:\n  %s" % (what, "\n  ".join(errors))


def scenario_doc(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    return json.loads(capsfast.capabilities(host, format="json"))


# (3) The schema is shipped, and is a valid draft 2020-12 schema.

def test_schema_is_shipped_and_valid(schema):
    assert schema_resource().is_file(), "the schema is not in the installed package"
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    # No network identifier: nothing should try to fetch it.
    assert "$id" not in schema or not schema["$id"].startswith(("http:", "https:"))


def test_schema_version_matches_renderer(schema):
    from capsfast.render.json import SCHEMA_VERSION

    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION == 1


# (1) Every scenario's JSON, and every committed golden, validates.

def test_scenario_json_validates(scenario, tmp_path, validator, host_validator):
    host = scenario.probe(tmp_path)
    doc = json.loads(capsfast.capabilities(host, format="json"))
    assert_valid(validator, doc, scenario.name)
    checked = json.loads(report.as_json(host))
    assert_valid(host_validator, checked["host"], "%s, check --json's host" % scenario.name)


@pytest.mark.parametrize("golden", GOLDENS, ids=[p.parent.name for p in GOLDENS])
def test_golden_validates(golden, validator):
    assert_valid(validator, json.loads(golden.read_text()), golden.parent.name + "/expected.json")


def test_every_scenario_has_a_golden():
    assert GOLDENS and len(GOLDENS) == len(all_scenarios())


# (2) This machine, through the command as a process.

def run_capsfast(*argv):
    return subprocess.run([sys.executable, "-m", "capsfast", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("flags", [(), ("--machines",), ("--deep",)], ids=["plain", "machines", "deep"])
def test_live_capabilities_validates(flags, validator):
    done = run_capsfast("capabilities", "--format", "json", *flags)
    assert done.returncode == 0, done.stderr
    assert_valid(validator, json.loads(done.stdout), "this machine's capabilities %s" % " ".join(flags))


def test_live_check_host_validates(host_validator):
    done = run_capsfast("check", "--json")
    assert done.returncode in (0, 1), done.stderr  # 1: KVM not usable here
    doc = json.loads(done.stdout)
    assert doc["kvm_usable"] == (done.returncode == 0)
    assert_valid(host_validator, doc["host"], "the host of this machine's check --json")


# (4) The schema bites: each broken document is rejected, at the right place.

def _set(path, value):
    def change(doc):
        *parents, last = path
        for key in parents:
            doc = doc[key]
        doc[last] = value
    return change


def _delete(path):
    def change(doc):
        *parents, last = path
        for key in parents:
            doc = doc[key]
        del doc[last]
    return change


BROKEN = {
    # unknown status words
    "hvm-status-unknown-word": (_set(("host", "hvm", "status"), "maybe"), ("host", "hvm", "status"), "enum"),
    "hvm-confidence-unknown-word": (_set(("host", "hvm", "confidence"), "sure"), ("host", "hvm", "confidence"), "enum"),
    "hvm-type-unknown-word": (_set(("host", "hvm", "type"), "vt-x"), ("host", "hvm", "type"), "enum"),
    "cpu-source-unknown-word": (_set(("host", "cpu", "source"), "guess"), ("host", "cpu", "source"), "enum"),
    "xen-role-unknown-word": (_set(("host", "xen", "role"), "dom1"), ("host", "xen", "role"), "enum"),
    "kvm-failure-unknown-code": (_set(("host", "kvm", "failure"), "broken"), ("host", "kvm", "failure"), "enum"),
    "guest-os-type-unknown-word": (_set(("guests", 0, "os_type"), "exe"), ("guests", 0, "os_type"), "enum"),
    "guest-domain-unknown-word": (_set(("guests", 0, "domains"), ["lxc"]), ("guests", 0, "domains", 0), "enum"),
    # missing required keys
    "kvm-error-missing": (_delete(("host", "kvm", "error")), ("host", "kvm"), "required"),
    "kvm-failure-missing": (_delete(("host", "kvm", "failure")), ("host", "kvm"), "required"),
    "guests-missing": (_delete(("guests",)), (), "required"),
    "machine-deprecated-missing": (_delete(("guests", 0, "machines", 0, "deprecated")), ("guests", 0, "machines", 0), "required"),
    # extra keys
    "kvm-extra-key": (_set(("host", "kvm", "bogus"), 1), ("host", "kvm"), "additionalProperties"),
    "top-extra-key": (_set(("extra",), {}), (), "additionalProperties"),
    # wrong types
    "kvm-api-version-string": (_set(("host", "kvm", "api_version"), "12"), ("host", "kvm", "api_version"), "type"),
    "kvm-usable-null": (_set(("host", "kvm", "usable"), None), ("host", "kvm", "usable"), "type"),
    "cpu-family-float": (_set(("host", "cpu", "family"), 6.5), ("host", "cpu", "family"), "type"),
    "guest-wordsize-16": (_set(("guests", 0, "wordsize"), 16), ("guests", 0, "wordsize"), "enum"),
    "schema-version-2": (_set(("schema_version",), 2), ("schema_version",), "const"),
    "msr-key-decimal": (_set(("host", "msr", "58"), "0x1"), ("host", "msr"), "pattern"),
    # usable and a failure at once
    "kvm-usable-with-failure": (_set(("host", "kvm", "usable"), True), ("host", "kvm", "failure"), "const"),
}


@pytest.fixture(scope="module")
def base_doc(tmp_path_factory, validator):
    doc = scenario_doc(Scenario(HOSTS / BASE), tmp_path_factory.mktemp(BASE))
    assert_valid(validator, doc, BASE)  # else the rejections below prove nothing
    assert not doc["host"]["kvm"]["usable"] and doc["guests"][0]["machines"]
    return doc


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_schema_rejects(name, base_doc, validator):
    change, where, keyword = BROKEN[name]
    doc = copy.deepcopy(base_doc)
    change(doc)
    found = {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(doc)}
    assert found, "%s was accepted" % name
    assert (tuple(where), keyword) in found, "%s: rejected, but not for %s at %s: %r" % (name, keyword, where, found)


# (5) The schema describes exactly the keys the renderer writes.

def _resolve(schema, node):
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/$defs/"), ref
    return _resolve(schema, schema["$defs"][ref[len("#/$defs/"):]])


def _join(path, key):
    return path + "." + key if path else key


def schema_paths(schema):
    """(described, required, maps): every key path the schema describes
    (``a.b``, ``list[].key``; ``*`` for the keys of a map such as host.msr),
    those it requires, and the paths of maps."""
    described, required, maps = set(), set(), set()

    def walk(node, path):
        node = _resolve(schema, node)
        for key, sub in node.get("properties", {}).items():
            described.add(_join(path, key))
            walk(sub, _join(path, key))
        required.update(_join(path, key) for key in node.get("required", ()))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            maps.add(path)
            described.add(_join(path, "*"))
            walk(extra, _join(path, "*"))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + "[]")

    walk(schema, "")
    return described, required, maps


def doc_paths(doc, maps):
    present = set()

    def walk(value, path):
        if isinstance(value, dict):
            for key, sub in value.items():
                sub_path = _join(path, "*" if path in maps else key)
                present.add(sub_path)
                walk(sub, sub_path)
        elif isinstance(value, list):
            for item in value:
                walk(item, path + "[]")

    walk(doc, "")
    return present


def test_schema_and_renderer_have_the_same_keys(schema, tmp_path):
    described, required, maps = schema_paths(schema)
    present = set()
    for s in all_scenarios():
        present |= doc_paths(scenario_doc(s, tmp_path / s.name), maps)
    present |= doc_paths(json.loads(capsfast.capabilities(format="json")), maps)
    assert sorted(present - described) == [], "keys the renderer writes that the schema does not describe"
    assert sorted(required - present) == [], "keys the schema requires that no scenario's JSON has"
    assert sorted(described - present) == [], "keys the schema describes that no scenario's JSON has"


def test_fixed_objects_are_closed_and_fully_required(schema):
    """Every object with fixed keys: all of them required, no others allowed."""
    def objects(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                yield path, node
            for key, sub in node.items():
                yield from objects(sub, path + "/" + key)
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                yield from objects(sub, "%s/%d" % (path, i))

    checked = 0
    for path, node in objects(schema, "#"):
        if path.endswith(("/then", "/else", "/if")):
            continue  # conditions on an object described elsewhere
        assert node.get("additionalProperties") is False, path
        assert sorted(node.get("required", ())) == sorted(node["properties"]), path
        assert node.get("description") or path == "#", path
        checked += 1
    assert checked >= 10


def test_enumerations_match_the_code(schema):
    from capsfast.parts.core import parse
    from capsfast.parts.guests import decide as guests

    defs = schema["$defs"]
    assert set(defs["cpu"]["properties"]["features"]["items"]["enum"]) == set(parse.FEATURE_NAMES)
    assert defs["guest"]["properties"]["features"]["items"]["enum"] == list(guests.FEATURE_ORDER)
    failure = defs["kvm"]["properties"]["failure"]["enum"]
    assert None in failure and set(failure) - {None} == KVM_FAILURES


def test_kvm_failure_codes_are_the_codes_of_the_verdict():
    from capsfast.parts.core import decide as verdict

    codes = getattr(verdict, "KVM_FAILURES", None)
    assert codes is not None, "capsfast.parts.core.decide.KVM_FAILURES does not exist yet"
    assert set(codes) == KVM_FAILURES


# as_dict(): plain data for every scenario Host, lazy guests resolved.

def test_host_as_dict_is_json(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    for lazy in ("guests", "kvm_caps"):
        pending = tuple.__getitem__(host, Host._fields.index(lazy))
        if isinstance(pending, Lazy):
            assert pending.pending  # the conversion, not this test, resolves it
    back = json.loads(json.dumps(host.as_dict()))
    assert list(back) == list(Host._fields)
    assert [list(g) for g in back["guests"]] == [list(Guest._fields)] * len(host.guests)
    # The parts the JSON output shares with the records agree with it.
    doc = json.loads(capsfast.capabilities(host, format="json"))
    assert back["guests"] == doc["guests"]
    for part in ("hypervisor", "kqemu", "xen", "hvm"):
        assert back[part] == doc["host"][part], part
    for key, value in doc["host"]["kvm"].items():
        if key == "caps":  # Host.kvm_caps: (name, answer) pairs
            assert (None if back["kvm_caps"] is None else dict(back["kvm_caps"])) == value
            continue
        assert back["kvm"][key] == value, "kvm." + key
    assert back["arch"] == doc["host"]["arch"]
    assert (back["kernel_flags"] is not None) == doc["host"]["kernel_flags_read"]
