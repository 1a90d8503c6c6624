"""The arrays of an iSCSI mirror share their iSCSI global settings (SPEC §2 "Channel").

Each array keeps its VLAN, listening port, jumbo frames and Ethernet priority; a group
is created over iSCSI only between arrays that agree on all four, and the Guru says
when one side changed them later, with fixes that set them alike.
"""
from __future__ import annotations

import pytest

from core.errors import MirrorError
from test_rest_support import rest, rest_of  # noqa: F401  (fixture)


def test_the_settings_over_rest_default_change_and_refuse_what_is_not_a_setting(client, rest):  # noqa: F811
    assert rest.ok("GET", "iscsi/mirroring-settings") == {
        "vlanId": None, "tcpListenPort": 3260, "jumboFrames": False, "ethernetPriority": None,
        "maximumFramePayload": 1500}
    changed = rest.ok("POST", "iscsi/mirroring-settings", {"vlanId": 12, "jumboFrames": True, "ethernetPriority": 5})
    assert changed == {"vlanId": 12, "tcpListenPort": 3260, "jumboFrames": True, "ethernetPriority": 5,
                       "maximumFramePayload": 9000}
    for body, code, words in (({"vlanId": 4095}, "invalidIscsiSetting", "give 1 to 4094"),
                              ({"tcpListenPort": 8080}, "invalidIscsiSetting", "3260 or a port from 49152"),
                              ({"ethernetPriority": 8}, "invalidIscsiSetting", "give 0 to 7"),
                              ({"tcpListenPort": None}, "invalidIscsiSetting", "cannot be null"),
                              ({"jumboFrames": "yes"}, "invalidInput", "true or false"),
                              ({"mtu": 9000}, "unknownField", "accepts: vlanId")):
        r = rest.post("iscsi/mirroring-settings", body)
        assert r.status == 422 and r.error["retcode"] == code and words in r.error["errorMessage"], (body, r.body)
    assert rest.ok("GET", "iscsi/mirroring-settings")["vlanId"] == 12  # a refused change stores nothing
    assert rest.ok("POST", "iscsi/mirroring-settings", {"vlanId": None})["vlanId"] is None  # null: no VLAN
    events = [e for e in client.events() if e.code == "iscsiSettingsChanged"]
    assert events and "VLAN 12 -> none" in events[-1].message


def test_a_group_over_iscsi_needs_both_arrays_alike_and_fc_does_not(client):
    client.set_iscsi_settings("SiteA", vlan=10, jumbo_frames=True)
    with pytest.raises(MirrorError) as refused:
        client.create_group("G1", "SiteA", "SiteB", channel="iscsi")
    assert refused.value.code == "arvmIscsiSettingsMismatch"
    assert "VLAN: SiteA 10, SiteB none; jumbo frames: SiteA on, SiteB off" in refused.value.message
    (db_dr,) = [c for c in client.candidates("SiteA/db", "SiteB", channel="iscsi") if c.volume.name == "db_dr"]
    assert not db_dr.eligible and any("iSCSI global settings differ" in r for r in db_dr.reasons)
    assert client.create_group("G2", "SiteA", "SiteB", channel="fc").channel == "fc"  # FC does not use them
    client.set_iscsi_settings("SiteB", vlan=10, jumbo_frames=True)
    assert client.create_group("G1", "SiteA", "SiteB", channel="iscsi").channel == "iscsi"


def test_the_guru_says_when_an_iscsi_groups_arrays_drift_apart_and_sets_them_alike(client):
    client.create_group("G1", "SiteA", "SiteB", channel="iscsi")
    assert not [p for p in client.guru() if p.id.startswith("iscsi-settings:")]
    client.set_iscsi_settings("SiteB", listen_port=50000, ethernet_priority=3)
    (problem,) = [p for p in client.guru() if p.id.startswith("iscsi-settings:")]
    assert problem.id == "iscsi-settings:SiteA:SiteB" and problem.severity == "warning"
    assert "G1 mirrors over iSCSI" in problem.cause
    assert "listening port: SiteA 3260, SiteB 50000; Ethernet priority: SiteA not set, SiteB 3" in problem.cause
    assert [a.id for a in problem.actions] == ["use-settings-of-SiteA", "use-settings-of-SiteB"]
    client.guru_fix(problem.id, "use-settings-of-SiteB")
    assert client.iscsi_settings("SiteA") == client.iscsi_settings("SiteB")
    assert client.iscsi_settings("SiteA").listen_port == 50000
    assert not [p for p in client.guru() if p.id.startswith("iscsi-settings:")]
    with pytest.raises(MirrorError) as gone:
        client.guru_fix(problem.id, "use-settings-of-SiteA")
    assert gone.value.code == "guruProblemNotFound"
