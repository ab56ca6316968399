"""Every scenario host under tests/hosts: the hand-written expectations of
its scenario.json, and its JSON golden file."""
import json

from scenarios import check_golden, lookup

import capsfast

# The CPU features capsfast decodes; scenario expectations list these.
NAMED = {"hypervisor", "lm", "nx", "pae", "svm", "vmx"}


def test_scenario_expectations(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    doc = json.loads(capsfast.capabilities(host, format="json"))
    assert scenario.expect, "%s has no hand-written expectations" % scenario.name
    for key, want in scenario.expect.items():
        got = lookup(doc, key)
        if key == "host.cpu.features":
            got = sorted(NAMED.intersection(got))
            want = sorted(want)
        assert got == want, "%s: %s is %r, expected %r" % (scenario.name, key, got, want)


def test_scenario_json_golden(scenario, tmp_path):
    host = scenario.probe(tmp_path)
    check_golden(scenario.dir / "expected.json", capsfast.capabilities(host, format="json"))


def test_scenarios_cover_the_required_hosts(tmp_path):
    from scenarios import all_scenarios

    verdicts = set()
    evidence = set()
    for s in all_scenarios():
        hvm = s.probe(tmp_path / s.name).hvm
        verdicts.add(hvm.status)
        evidence.update(hvm.evidence)
    assert {"enabled", "disabled_by_firmware", "not_exposed", "unknown"} <= verdicts
    # Firmware-disabled Intel proven both ways, AMD's SVMDIS, and the seed's Xen rule.
    assert {
        "msr.feature-control-locked-off", "cpuinfo.vmx-missing", "msr.vm-cr-svmdis",
        "xen.no-hvm-caps", "xen.hvm-caps",
    } <= evidence
