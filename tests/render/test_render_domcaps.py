"""Domain capabilities rendered: libvirt's XML (values escaped as libvirt
escapes them) and JSON with the same facts, valid against the shipped
schema, for every document of libvirt's corpus and hand-made ones."""
import json
import os
import sys
import xml.etree.ElementTree as ET
from importlib.resources import files

import pytest
from jsonschema import Draft202012Validator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "parts", "domcaps"))

from test_domcaps_corpus import EMULATOR, VARIANTS, corpus_env, corpus_versions, transcript_of  # noqa: E402
from test_domcaps_decide import ENV, SEV, exchange, hv_expansion, transcript  # noqa: E402

from capsfast.parts.domcaps import decide  # noqa: E402
from capsfast.render import domcaps_json, domcaps_libvirt  # noqa: E402


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((files("capsfast") / "schemas" / "domcapabilities.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def same_facts(caps):
    """The JSON and the XML of ``caps`` say the same things."""
    doc = json.loads(domcaps_json.render(caps))
    xml = ET.fromstring(domcaps_libvirt.render(caps))
    assert doc["path"] == xml.findtext("path") and doc["domain"] == xml.findtext("domain")
    assert doc["machine"] == xml.findtext("machine") and doc["arch"] == xml.findtext("arch")
    vcpu = xml.find("vcpu")
    assert doc["vcpu_max"] == (None if vcpu is None else int(vcpu.get("max")))
    assert doc["iothreads"] == (xml.find("iothreads").get("supported") == "yes")

    def check(data, element):
        assert data["supported"] == (element.get("supported") == "yes"), element.tag
        assert data["enums"] == {e.get("name"): [v.text for v in e.findall("value")]
                                 for e in element.findall("enum")}, element.tag

    check(doc["memory_backing"], xml.find("memoryBacking"))
    assert list(doc["devices"]) == [d.tag for d in xml.find("devices")]
    for device in xml.find("devices"):
        check(doc["devices"][device.tag], device)
    features = xml.find("features")
    check(doc["features"]["gic"], features.find("gic"))
    for key, tag in (("vmcoreinfo", "vmcoreinfo"), ("genid", "genid"),
                     ("backing_store_input", "backingStoreInput"), ("backup", "backup")):
        assert doc["features"][key] == (features.find(tag).get("supported") == "yes")
    sev = features.find("sev")
    if doc["features"]["sev"] is None:
        assert sev.get("supported") == "no"
    else:
        assert [doc["features"]["sev"][k] for k in ("cbitpos", "reduced_phys_bits", "max_guests", "max_es_guests")] \
            == [int(sev.findtext(t)) for t in ("cbitpos", "reducedPhysBits", "maxGuests", "maxESGuests")]
    sgx = features.find("sgx")
    if doc["features"]["sgx"] is None:
        assert sgx.get("supported") == "no"
    else:
        assert doc["features"]["sgx"]["section_size_kib"] == int(sgx.findtext("section_size"))
        assert [(s["node"], s["size_kib"]) for s in doc["features"]["sgx"]["sections"]] == \
            [(int(s.get("node")), int(s.get("size"))) for s in sgx.iter("section")]
    if doc["features"]["hyperv"] is None:
        assert features.find("hyperv") is None
    else:
        check(doc["features"]["hyperv"], features.find("hyperv"))
    return doc


@pytest.mark.parametrize("version", corpus_versions())
def test_corpus_json_validates_and_matches_the_xml(libvirt_src, version, validator):
    t = transcript_of(libvirt_src, version)
    for _, machine, virttype in VARIANTS:
        caps = decide.domain_caps_core(t, corpus_env(version), arch="x86_64", machine=machine, virttype=virttype,
                                       emulator=EMULATOR)
        errors = [e.message for e in validator.iter_errors(same_facts(caps))]
        assert not errors, (version, machine, virttype, errors)


def test_hand_made_json_validates_and_matches_the_xml(validator):
    sgx = {"flc": True, "sgx1": True, "sgx2": False, "sections": [{"node": 0, "size": 1 << 20}]}
    t = transcript(types=["sev-guest", "sgx-epc", "usb-redir"], tpm_models=["tpm-crb"],
                   extra=[exchange("query-sev-capabilities", dict(SEV, **{"cpu0-id": "abc"})),
                          exchange("query-sgx-capabilities", sgx), hv_expansion({"hv-ipi": True})])
    caps = decide.domain_caps_core(t, ENV, arch="x86_64", machine="q35", virttype=None, emulator=EMULATOR)
    doc = same_facts(caps)
    assert not list(validator.iter_errors(doc))
    assert doc["features"]["sev"]["cpu0_id"] == "abc"
    assert "<cpu0Id>abc</cpu0Id>" in domcaps_libvirt.render(caps)
    assert doc["os"] is None and doc["cpu"] is None  # the other parts' records, not given here
    bare = decide.domain_caps_core(transcript(kvm=False, machines=[{"name": "x"}]), ENV, arch="x86_64",
                                   machine=None, virttype=None, emulator=EMULATOR)
    doc = same_facts(bare)
    assert doc["vcpu_max"] is None and "<vcpu" not in domcaps_libvirt.render(bare)
    assert not list(validator.iter_errors(doc))


def test_path_escaped_as_libvirt_escapes_it():
    caps = decide.domain_caps_core(transcript(), ENV, arch="x86_64", machine=None, virttype=None,
                                   emulator="/opt/q&a/'x\"<y>\x01z")
    assert "<path>/opt/q&amp;a/&apos;x&quot;&lt;y&gt;z</path>" in domcaps_libvirt.render(caps)
    assert ET.fromstring(domcaps_libvirt.render(caps)).findtext("path") == "/opt/q&a/'x\"<y>z"
