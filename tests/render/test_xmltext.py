"""The one escaping helper of the XML renderers: any str gives well-formed
XML 1.0 that parses back to the same text (characters XML forbids turned
into U+FFFD), escaped as lxml escapes it; and hosts whose facts hold such
text still render valid libvirt and draft XML."""
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import capsfast
from capsfast import libvirt_xml
from capsfast.model import Guest, Machine
from capsfast.render import draft as draft_renderer
from capsfast.render import xmltext

HOSTS = Path(__file__).resolve().parent.parent / "hosts"
LIBVIRT_SCHEMA = "/usr/share/libvirt/schemas/capability.rng"


def xml_char(ch):
    """XML 1.0's Char production, written out as the spec gives it."""
    return (ch in "\t\n\r" or "\x20" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"
            or "\U00010000" <= ch <= "\U0010ffff")


def cleaned(s):
    return "".join(ch if xml_char(ch) else "\ufffd" for ch in s)


def parse(text):
    return etree.fromstring(text.encode("utf-8"))


# Any code point, surrogates included, with the edge cases made common.
any_text = st.text(st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from("\x00\x08\t\n\x0b\x0c\r\x1f\x7f\x85\ud800\udbff\udc00\udfff\ufffd\ufffe\uffff"
                    "\U00010000\U0010ffff&<>\"' ]]>é中😀"),
))


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_any_text_gives_well_formed_xml_that_reads_back(s):
    doc = parse('<a b="%s">%s</a>' % (xmltext.attr(s), xmltext.text(s)))
    assert (doc.text or "") == cleaned(s)
    assert doc.get("b") == cleaned(s)


@settings(max_examples=500, deadline=None)
@given(any_text)
def test_escapes_are_lxmls_where_lxml_accepts_the_text(s):
    """The same bytes lxml wrote when it built the documents."""
    s = cleaned(s)
    element = etree.Element("a")
    element.set("b", s)
    element.text = s
    assert etree.tostring(element, encoding="unicode") == '<a b="%s">%s</a>' % (xmltext.attr(s), xmltext.text(s))


@given(any_text)
def test_element_names_are_valid_or_refused(s):
    try:
        tag = xmltext.name(s)
    except ValueError:
        return
    assert parse("<%s/>" % tag).tag == s


def test_forbidden_characters_become_the_replacement_character():
    assert xmltext.text("a\x00b\x1fc\ud800d\ufffee\uffff") == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffd"
    assert xmltext.text("\t\n") == "\t\n"
    assert xmltext.text("\r") == "&#13;"
    assert xmltext.attr("\t\n\r") == "&#9;&#10;&#13;"
    assert xmltext.text("&<>\"'") == "&amp;&lt;&gt;\"'"
    assert xmltext.attr("&<>\"'") == "&amp;&lt;&gt;&quot;'"
    assert xmltext.text("é中😀\x7f") == "é中😀\x7f"


# ---------------------------------------------------- whole documents

# The absFilePath of libvirt's schema is "/.+" where "." is any character
# but newline and CR: those go only where the schema takes any text.
PATH = "/opt/q &amp; <x> \"y\" 'z' é中😀 \x00\x01\x1f \ud800\udfff \ufffe\uffff\t/qemu"
NAME = "pc &<>\"' é中😀\t\n\r\x00\x0b\ud800\uffff end"


@pytest.fixture
def nasty_host():
    host = capsfast.probe(root=str(HOSTS / "intel-enabled" / "root"),
                          cpuid=str(HOSTS / "intel-enabled" / "cpuid.txt"))
    machines = (Machine(NAME, NAME, True), Machine("pc-i440fx-7.2", None, False))
    return host._replace(guests=(
        Guest("hvm", "x86_64", 64, PATH, ("qemu", "kvm"), ("acpi", "apic"), PATH, machines),
        Guest("hvm", "i686", 32, PATH, ("qemu",), ("pae", "nonpae"), None, None),
    ))


def test_libvirt_xml_holds_any_text(nasty_host):
    doc = parse(capsfast.capabilities(nasty_host, format="libvirt"))
    first, second = doc.findall("guest")
    assert first.findtext("arch/emulator") == cleaned(PATH)
    assert first.findtext("arch/loader") == cleaned(PATH)
    assert second.findtext("arch/emulator") == cleaned(PATH)
    machine = first.find("arch/machine")
    assert (machine.text, machine.get("canonical"), machine.get("deprecated")) == (cleaned(NAME), cleaned(NAME), "yes")


def test_libvirt_xml_of_any_text_reads_back_as_the_cleaned_guests(nasty_host):
    def clean(guest):
        return guest._replace(
            emulator=cleaned(guest.emulator), loader=guest.loader and cleaned(guest.loader),
            machines=guest.machines and tuple(
                m._replace(name=cleaned(m.name), canonical=m.canonical and cleaned(m.canonical))
                for m in guest.machines))

    caps = libvirt_xml.read(capsfast.capabilities(nasty_host, format="libvirt"))
    assert caps.guests == tuple(clean(g) for g in nasty_host.guests)


def test_libvirt_xml_of_any_text_is_valid(nasty_host):
    if not os.path.exists(LIBVIRT_SCHEMA):
        pytest.skip("%s missing: install Debian's libvirt0 to validate against libvirt's schema" % LIBVIRT_SCHEMA)
    schema = etree.RelaxNG(etree.parse(LIBVIRT_SCHEMA))
    assert schema.validate(parse(capsfast.capabilities(nasty_host, format="libvirt"))), str(schema.error_log)


def test_draft_xml_of_any_text_is_valid_and_reads_back(nasty_host):
    schema = etree.RelaxNG(etree.parse(draft_renderer.SCHEMA))
    doc = parse(capsfast.capabilities(nasty_host, format="draft"))
    assert schema.validate(doc), str(schema.error_log)
    # The schema takes only libvirt's words; other text still reads back.
    odd = nasty_host._replace(guests=(nasty_host.guests[0]._replace(arch=NAME, domains=(NAME, "kvm")),))
    doc = parse(capsfast.capabilities(odd, format="draft"))
    assert [e.text for e in doc.findall("domain_type")] == [cleaned(NAME), "kvm"]
    assert doc.findtext("guest_architectures/guest_architecture/model") == cleaned(NAME)


def test_a_feature_name_that_cannot_be_an_element_is_refused(nasty_host):
    odd = nasty_host._replace(guests=(nasty_host.guests[0]._replace(features=("acpi", "a<b")),))
    with pytest.raises(ValueError, match="element name"):
        capsfast.capabilities(odd, format="libvirt")
