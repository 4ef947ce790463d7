//! The SNMP peers the gateway's SNMP sources are tested against (issue #15), proved on their
//! own: snmpsim serves recordings of real devices (APC rack PDUs, UPSes speaking RFC 1628)
//! exactly as the `.snmprec` files say, as net-snmp's `snmpwalk` reads them; Debian's snmpd
//! answers an SNMPv3 user over authPriv (SHA-256, AES-128) and refuses wrong credentials. And
//! the `.snmprec` parser the other tests take their expected values from, on lines of the real
//! files.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use common::snmp::*;

/// Every recording issue #15 names.
const RECORDINGS: [&str; 7] = [
    "UPS/apc-7902b",
    "UPS/apc-8641",
    "UPS/apc-8932",
    "UPS/eaton-93e-80",
    "UPS/huawei-gse200m",
    "UPS/vertiv-power",
    "network/appliance/tripplite-poweralert",
];

/// rPDU2OutletMeteredStatusCurrent (tenths of an ampere), per outlet.
const RPDU2_OUTLET_CURRENT: &str = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6";
/// upsBattery (RFC 1628 UPS-MIB).
const UPS_BATTERY: &str = "1.3.6.1.2.1.33.1.2";

/// Asserts that a walk's answer is the recording's subtree: the same OIDs in the same order,
/// static values equal, dynamic ones (variation modules) present.
fn assert_walk_is_recording(
    got: &[(String, String)],
    want: &[(String, RecValue)],
    what: &str,
    log: impl Fn() -> String,
) {
    let got_oids: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
    let want_oids: Vec<&str> = want.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(got_oids, want_oids, "{what}: OIDs walked; log:\n{}", log());
    for ((oid, value), (_, recorded)) in got.iter().zip(want) {
        if recorded.is_dynamic() {
            continue;
        }
        let expected = recorded
            .net_snmp()
            .unwrap_or_else(|| panic!("{what}: {oid}: unexpected recorded value {recorded:?}"));
        assert_eq!(value, &expected, "{what}: {oid} ({recorded:?})");
    }
}

/// Lines of the real recordings: apc-8641 (system group, an outlet's current, an IP address,
/// an empty and a hex string, a Counter64, values a variation module makes) and eaton-93e-80's
/// comment line.
const REAL_LINES: &str = "#EATON 93E 80
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.318.1.3.4.6
1.3.6.1.2.1.1.3.0|67|165528150
1.3.6.1.2.1.1.5.0|4x|7077722d646330312d7064752d7261636b312d3031
1.3.6.1.2.1.1.7.0|2|72
1.3.6.1.2.1.2.2.1.2.1|4|LOOPBACK
1.3.6.1.2.1.2.2.1.6.1|4|
1.3.6.1.2.1.2.2.1.6.2|4x|2829862f042c
1.3.6.1.2.1.4.20.1.1.192.168.0.56|64x|c0a80038
1.3.6.1.2.1.4.24.7.1.13.1.4.0.0.0.0.0.1.0.1.4.192.168.0.1|2|-1
1.3.6.1.2.1.4.31.1.1.4.1|70|0
1.3.6.1.4.1.318.1.1.4.4.2.1.4.1|4:writecache|value=Server 1 PS 1
1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.1|2:numeric|min=1,max=2,initial=2,wrap=1
1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.10|2|0
1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.2|2|5
1.3.6.1.4.1.318.1.1.26.9.4.3.1.6.1|2|9
";

#[test]
fn recording_parser_reads_real_lines() {
    let rec = Recording::parse("lines", REAL_LINES);
    assert_eq!(rec.len(), 15, "the comment is no entry");
    assert_eq!(
        rec.value("1.3.6.1.2.1.1.2.0"),
        Some(RecValue::Oid("1.3.6.1.4.1.318.1.3.4.6".into()))
    );
    assert_eq!(
        rec.value(".1.3.6.1.2.1.1.3.0"),
        Some(RecValue::Integer(165_528_150))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.1.5.0"),
        Some(RecValue::OctetString(b"pwr-dc01-pdu-rack1-01".to_vec()))
    );
    assert_eq!(rec.value("1.3.6.1.2.1.1.7.0"), Some(RecValue::Integer(72)));
    assert_eq!(
        rec.value("1.3.6.1.2.1.2.2.1.2.1"),
        Some(RecValue::OctetString(b"LOOPBACK".to_vec()))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.2.2.1.6.1"),
        Some(RecValue::OctetString(Vec::new()))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.2.2.1.6.2"),
        Some(RecValue::OctetString(vec![
            0x28, 0x29, 0x86, 0x2f, 0x04, 0x2c
        ]))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.4.20.1.1.192.168.0.56"),
        Some(RecValue::IpAddress([192, 168, 0, 56]))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.4.24.7.1.13.1.4.0.0.0.0.0.1.0.1.4.192.168.0.1"),
        Some(RecValue::Integer(-1))
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.4.31.1.1.4.1"),
        Some(RecValue::Integer(0))
    );
    assert!(
        rec.value("1.3.6.1.4.1.318.1.1.4.4.2.1.4.1")
            .unwrap()
            .is_dynamic()
    );
    assert_eq!(
        rec.value("1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.1"),
        Some(RecValue::Dynamic {
            tag: "2:numeric".into(),
            value: "min=1,max=2,initial=2,wrap=1".into()
        })
    );
    assert_eq!(rec.value("1.3.6.1.2.1.1.1.0"), None);

    // A walk is in numeric OID order (.2 before .10), strictly under the prefix.
    let walked = rec.walk(RPDU2_OUTLET_CURRENT);
    assert_eq!(
        walked,
        vec![
            (format!("{RPDU2_OUTLET_CURRENT}.1"), RecValue::Integer(9)),
            (format!("{RPDU2_OUTLET_CURRENT}.2"), RecValue::Integer(5)),
            (format!("{RPDU2_OUTLET_CURRENT}.10"), RecValue::Integer(0)),
        ]
    );
    assert_eq!(rec.walk("1.3.6.1.2.1.1.5.0"), Vec::new());
    let system: Vec<String> = rec
        .walk("1.3.6.1.2.1.1")
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        system,
        [
            "1.3.6.1.2.1.1.2.0",
            "1.3.6.1.2.1.1.3.0",
            "1.3.6.1.2.1.1.5.0",
            "1.3.6.1.2.1.1.7.0"
        ]
    );

    // How net-snmp's tools print them with net_snmp()'s options.
    let shown = |oid: &str| rec.value(oid).unwrap().net_snmp();
    assert_eq!(
        shown("1.3.6.1.2.1.1.2.0").as_deref(),
        Some(".1.3.6.1.4.1.318.1.3.4.6")
    );
    assert_eq!(shown("1.3.6.1.2.1.2.2.1.6.1").as_deref(), Some("\"\""));
    assert_eq!(
        shown("1.3.6.1.2.1.2.2.1.6.2").as_deref(),
        Some("\"28 29 86 2F 04 2C \"")
    );
    assert_eq!(
        shown("1.3.6.1.2.1.4.20.1.1.192.168.0.56").as_deref(),
        Some("192.168.0.56")
    );
    assert_eq!(shown("1.3.6.1.4.1.318.1.1.26.9.2.3.1.5.1"), None);
}

#[test]
fn recording_parser_keeps_odd_values_apart() {
    // A value may contain the separator; bad hex and unknown tags are not guessed at.
    let rec = Recording::parse(
        "odd",
        "1.3.6.1.2.1.1.6.0|4|a|b\r\n\n1.3.6.1.2.1.1.4.0|4x|4a6\n1.3.6.1.2.1.1.8.0|129|\n\
         1.3.6.1.2.1.31.1.1.1.6.1|70|18446744073709551615\n",
    );
    assert_eq!(
        rec.value("1.3.6.1.2.1.1.6.0"),
        Some(RecValue::OctetString(b"a|b".to_vec()))
    );
    for oid in [
        "1.3.6.1.2.1.1.4.0",
        "1.3.6.1.2.1.1.8.0",
        "1.3.6.1.2.1.31.1.1.1.6.1",
    ] {
        assert!(
            matches!(rec.value(oid), Some(RecValue::Other { .. })),
            "{oid}: {:?}",
            rec.value(oid)
        );
    }
}

#[test]
fn net_snmp_output_joins_wrapped_hex_strings() {
    let text = ".1.3.6.1.2.1.1.5.0 \"70 77 72 2D 64 63 30 31 2D 70 64 75 2D 72 61 63 \n\
                6B 31 2D 30 31 \"\n.1.3.6.1.2.1.1.7.0 72\n";
    assert_eq!(
        parse_net_snmp(text),
        vec![
            (
                "1.3.6.1.2.1.1.5.0".to_string(),
                "\"70 77 72 2D 64 63 30 31 2D 70 64 75 2D 72 61 63 6B 31 2D 30 31 \"".to_string()
            ),
            ("1.3.6.1.2.1.1.7.0".to_string(), "72".to_string()),
        ]
    );
}

#[test]
fn snmpsim_serves_the_apc_8641_outlet_currents_as_recorded() {
    let Some(sim) = Snmpsim::start(&["UPS/apc-8641"]) else {
        return;
    };
    let rec = Recording::load("UPS/apc-8641");
    assert_eq!(sim.community("UPS/apc-8641"), "apc-8641");

    // The column of the 24 outlets' currents: static values.
    let want = rec.walk(RPDU2_OUTLET_CURRENT);
    assert_eq!(want.len(), 24, "apc-8641 meters 24 outlets");
    assert!(want.iter().all(|(_, v)| matches!(v, RecValue::Integer(_))));
    let got = snmpwalk(
        &[
            &sim.v2c_args("UPS/apc-8641")[..],
            &[RPDU2_OUTLET_CURRENT.into()],
        ]
        .concat(),
    );
    assert_walk_is_recording(&got, &want, "apc-8641 outlet currents", || sim.log_text());

    // sysName, as a GET.
    let got = snmpget(&[&sim.v2c_args("apc-8641")[..], &["1.3.6.1.2.1.1.5.0".into()]].concat());
    assert_eq!(
        got,
        vec![(
            "1.3.6.1.2.1.1.5.0".to_string(),
            rec.value("1.3.6.1.2.1.1.5.0").unwrap().net_snmp().unwrap()
        )]
    );

    // The whole rPDU2 subtree, static and dynamic values (bulk requests: 1,474 OIDs).
    let rpdu2 = "1.3.6.1.4.1.318.1.1.26";
    let want = rec.walk(rpdu2);
    assert!(want.iter().any(|(_, v)| v.is_dynamic()));
    let got = parse_net_snmp(
        &net_snmp(
            "snmpbulkwalk",
            &[&sim.v2c_args("apc-8641")[..], &[rpdu2.into()]].concat(),
        )
        .unwrap(),
    );
    assert_walk_is_recording(&got, &want, "apc-8641 rPDU2", || sim.log_text());

    // Another community is no recording: no answer.
    let other = net_snmp(
        "snmpget",
        &[
            "-r",
            "0",
            "-v2c",
            "-c",
            "public",
            &sim.address(),
            "1.3.6.1.2.1.1.5.0",
        ],
    );
    assert!(other.is_err(), "community public answered: {other:?}");
}

#[test]
fn snmpsim_serves_ups_mib_recordings_each_under_its_community() {
    // Two compressed recordings of RFC 1628 UPSes at once.
    let Some(sim) = Snmpsim::start(&["UPS/eaton-93e-80", "UPS/huawei-gse200m"]) else {
        return;
    };
    for name in ["UPS/eaton-93e-80", "UPS/huawei-gse200m"] {
        let rec = Recording::load(name);
        let want = rec.walk(UPS_BATTERY);
        assert_eq!(want.len(), 7, "{name}: upsBattery's seven scalars");
        let got = snmpwalk(&[&sim.v2c_args(name)[..], &[UPS_BATTERY.into()]].concat());
        assert_walk_is_recording(&got, &want, name, || sim.log_text());
    }
    // The two differ: each community is its own device.
    let minutes = |name: &str| {
        snmpget(&[&sim.v2c_args(name)[..], &["1.3.6.1.2.1.33.1.2.3.0".into()]].concat())
    };
    assert_eq!(
        minutes("eaton-93e-80")[0].1,
        "1092",
        "upsEstimatedMinutesRemaining"
    );
    assert_eq!(minutes("huawei-gse200m")[0].1, "-1");
}

#[test]
fn snmpsim_serves_every_recording_issue_15_names() {
    let Some(sim) = Snmpsim::start(&RECORDINGS) else {
        return;
    };
    for name in RECORDINGS {
        let rec = Recording::load(name);
        assert!(rec.len() > 100, "{name}: {} OIDs", rec.len());
        // sysObjectID (static in every one of them) and the first OID after the top.
        let oid = "1.3.6.1.2.1.1.2.0";
        let got = snmpget(&[&sim.v2c_args(name)[..], &[oid.into()]].concat());
        assert_eq!(
            got[0].1,
            rec.value(oid).unwrap().net_snmp().unwrap(),
            "{name}"
        );
        let first = rec.walk("1.3.6").into_iter().next().unwrap();
        let got = parse_net_snmp(
            &net_snmp(
                "snmpgetnext",
                &[&sim.v2c_args(name)[..], &["1.3.6".into()]].concat(),
            )
            .unwrap(),
        );
        assert_eq!(got[0].0, first.0, "{name}");
    }
}

#[test]
fn snmpd_answers_v3_auth_priv_and_refuses_wrong_credentials() {
    const USER: &str = "fb-reader";
    const AUTH: &str = "auth-pass-1234";
    const PRIVACY: &str = "priv-pass-5678";
    // Extra values: a UPS-MIB battery (upsEstimatedChargeRemaining, upsBatteryStatus) served
    // with `override`, as a v3 UPS would.
    let Some(snmpd) = Snmpd::start_v3_with(
        USER,
        AUTH,
        PRIVACY,
        "override .1.3.6.1.2.1.33.1.2.4.0 integer 87\n\
         override .1.3.6.1.2.1.33.1.2.1.0 integer 2\n",
    ) else {
        return;
    };
    assert_eq!(
        snmpwalk(&[&snmpd.v3_args()[..], &[UPS_BATTERY.into()]].concat()),
        vec![
            ("1.3.6.1.2.1.33.1.2.1.0".to_string(), "2".to_string()),
            ("1.3.6.1.2.1.33.1.2.4.0".to_string(), "87".to_string()),
        ]
    );
    let sys_name = "1.3.6.1.2.1.1.5.0";
    let hex = |s: &str| {
        RecValue::OctetString(s.as_bytes().to_vec())
            .net_snmp()
            .unwrap()
    };
    let got = snmpget(
        &[
            &snmpd.v3_args()[..],
            &[sys_name.into(), "1.3.6.1.2.1.1.6.0".into()],
        ]
        .concat(),
    );
    assert_eq!(
        got,
        vec![
            (sys_name.to_string(), hex(SNMPD_SYS_NAME)),
            ("1.3.6.1.2.1.1.6.0".to_string(), hex(SNMPD_SYS_LOCATION)),
        ]
    );
    // A walk of the system group, over the same session settings.
    let system = snmpwalk(&[&snmpd.v3_args()[..], &["1.3.6.1.2.1.1".into()]].concat());
    assert!(system.len() >= 7, "{system:?}");

    let address = snmpd.address();
    // snmpget that must fail, with `args` before the agent and OID: its error output.
    let refused = |args: &[&str], why: &str| {
        let args = [&["-r", "0"][..], args, &[address.as_str(), sys_name]].concat();
        let answer = net_snmp("snmpget", &args);
        assert!(
            answer.is_err(),
            "{why}: answered {answer:?}; log:\n{}",
            snmpd.log_text()
        );
        answer.unwrap_err()
    };
    let v3 = |who: &'static str, level: &'static str, a: &'static str, x: &'static str| {
        [
            "-v3", "-l", level, "-u", who, "-a", "SHA-256", "-A", a, "-x", "AES", "-X", x,
        ]
    };
    // Wrong privacy password: the agent cannot decrypt the request and drops it.
    let e = refused(
        &v3(USER, "authPriv", AUTH, "wrong-priv-pass"),
        "wrong privacy password",
    );
    assert!(e.contains("Timeout"), "{e}");
    // Wrong authentication password: a report of the failure.
    let e = refused(
        &v3(USER, "authPriv", "wrong-auth-pass", PRIVACY),
        "wrong auth password",
    );
    assert!(e.contains("Authentication failure"), "{e}");
    // The right user without privacy: `rouser … priv` refuses it.
    let e = refused(&v3(USER, "authNoPriv", AUTH, PRIVACY), "authNoPriv");
    assert!(e.contains("authorizationError"), "{e}");
    // An unknown user, and v2c with any community: no access.
    let e = refused(
        &v3("nobody-here", "authPriv", AUTH, PRIVACY),
        "unknown user",
    );
    assert!(e.contains("Unknown user"), "{e}");
    refused(&["-v2c", "-c", "public"], "v2c community public");
}
