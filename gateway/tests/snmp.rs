//! SNMP sources against real agents nobody here wrote: snmpsim serving recordings of real
//! APC rack PDUs and UPSes (PyPI's snmpsim-data), and Debian's snmpd over SNMPv3 authPriv.
//!
//! - `firebreak probe snmp://…` reads each recording a built-in profile claims, and every
//!   value it prints is the recording's, scaled as the vendor's MIB says (the scales are
//!   written here from the MIBs, not taken from the profiles);
//! - the gateway polls SNMP sources into its signal table and turns a source whose agent
//!   stops answering (or does not serve its community) `comm-lost`, with the reason;
//! - SNMPv3 authPriv (SHA-256 + AES-128) reads APC PowerNet UPS objects from snmpd, and wrong
//!   credentials are refused with an error naming what failed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::snmp::*;
use common::*;

/// One probe output line: `(signal, channel) → (value, quality)`.
type Read = BTreeMap<(String, u64), (f64, String)>;

/// Runs `firebreak probe` with `args`; its stdout and whether it succeeded.
fn probe(args: &[String], env: &[(&str, &str)]) -> (String, String, bool) {
    let out = Command::new(firebreak_bin())
        .arg("probe")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        out.status.success(),
    )
}

/// The samples a probe printed after `-- as Firebreak reads it:`.
fn samples(output: &str) -> Read {
    let mut read = Read::new();
    let Some((_, tail)) = output.split_once("-- as Firebreak reads it:") else {
        return read;
    };
    for line in tail.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5
            && let Some(ch) = f[1].strip_prefix("ch")
        {
            read.insert(
                (f[0].to_string(), ch.parse().unwrap()),
                (f[2].parse().unwrap(), f[4].to_string()),
            );
        }
    }
    read
}

/// What a profile must make of one object: the signal, the OID (a column is walked: its row
/// `n` is channel `n − 1`), and how the MIB's raw value becomes the signal's value.
#[derive(Clone, Copy)]
struct Expect {
    signal: &'static str,
    oid: &'static str,
    column: bool,
    value: Raw,
}

/// How a raw value becomes a signal's value.
#[derive(Clone, Copy)]
enum Raw {
    /// Multiplied by this.
    Scale(f64),
    /// 1 when one of these, else 0.
    Flag(&'static [i64]),
}

impl Raw {
    fn apply(self, raw: i64) -> f64 {
        match self {
            Raw::Scale(f) => raw as f64 * f,
            Raw::Flag(on) => f64::from(u8::from(on.contains(&raw))),
        }
    }
}

const fn scalar(signal: &'static str, oid: &'static str, value: Raw) -> Expect {
    Expect {
        signal,
        oid,
        column: false,
        value,
    }
}

const fn column(signal: &'static str, oid: &'static str, value: Raw) -> Expect {
    Expect {
        signal,
        oid,
        column: true,
        value,
    }
}

/// Checks a probe's samples against a recording: every static value the profile claims is
/// printed, scaled; −1 ("no reading") gives no sample; nothing else is printed. Returns how
/// many values were compared.
fn check_against_recording(read: &Read, rec: &Recording, expects: &[Expect]) -> usize {
    let mut compared = 0;
    let mut claimed = 0;
    for e in expects {
        let rows: Vec<(u64, RecValue)> = if e.column {
            rec.walk(e.oid)
                .into_iter()
                .filter_map(|(oid, v)| {
                    let rest = oid.strip_prefix(e.oid)?.strip_prefix('.')?;
                    (!rest.contains('.')).then(|| (rest.parse::<u64>().unwrap() - 1, v))
                })
                .collect()
        } else {
            rec.value(e.oid).map(|v| (0, v)).into_iter().collect()
        };
        for (channel, v) in rows {
            let key = (e.signal.to_string(), channel);
            match v {
                RecValue::Integer(-1) => assert!(
                    !read.contains_key(&key),
                    "{}: {} ch{channel} is -1 (no reading) but was read as {:?}",
                    rec.name,
                    e.signal,
                    read.get(&key)
                ),
                RecValue::Integer(raw) => {
                    let want = e.value.apply(raw);
                    let (got, quality) = read.get(&key).unwrap_or_else(|| {
                        panic!("{}: {} ch{channel} (raw {raw}) missing", rec.name, e.signal)
                    });
                    assert!(
                        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "{}: {} ch{channel}: read {got}, the recording says {raw} → {want}",
                        rec.name,
                        e.signal
                    );
                    assert_eq!(quality, "good", "{}: {} ch{channel}", rec.name, e.signal);
                    compared += 1;
                    claimed += 1;
                }
                RecValue::Dynamic { .. } => {
                    assert!(
                        read.contains_key(&key),
                        "{}: {} ch{channel}",
                        rec.name,
                        e.signal
                    );
                    claimed += 1;
                }
                other => panic!("{}: {}: unexpected {other:?}", rec.name, e.oid),
            }
        }
    }
    assert_eq!(
        read.len(),
        claimed,
        "{}: the probe printed values the profile's objects do not account for: {read:?}",
        rec.name
    );
    compared
}

/// The APC PowerNet MIB's rPDU2 objects and their units.
const RPDU2: [Expect; 5] = [
    // rPDU2PhaseStatusVoltage: volts.
    column(
        "pdu-input-voltage",
        "1.3.6.1.4.1.318.1.1.26.6.3.1.6",
        Raw::Scale(1.0),
    ),
    // rPDU2PhaseStatusCurrent: tenths of amperes.
    column(
        "pdu-current",
        "1.3.6.1.4.1.318.1.1.26.6.3.1.5",
        Raw::Scale(0.1),
    ),
    // rPDU2DeviceStatusPower: hundredths of kilowatts.
    column(
        "pdu-power",
        "1.3.6.1.4.1.318.1.1.26.4.3.1.5",
        Raw::Scale(10.0),
    ),
    // rPDU2OutletMeteredStatusCurrent: tenths of amperes.
    column(
        "pdu-outlet-current",
        "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6",
        Raw::Scale(0.1),
    ),
    // rPDU2OutletMeteredStatusPower: watts.
    column(
        "pdu-outlet-power",
        "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7",
        Raw::Scale(1.0),
    ),
];

/// The APC PowerNet MIB's older rPDU objects.
const RPDU: [Expect; 4] = [
    // rPDUIdentDeviceLinetoLineVoltage: volts.
    scalar(
        "pdu-input-voltage",
        "1.3.6.1.4.1.318.1.1.12.1.15.0",
        Raw::Scale(1.0),
    ),
    // rPDULoadStatusLoad: tenths of amperes.
    column(
        "pdu-current",
        "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2",
        Raw::Scale(0.1),
    ),
    // rPDUIdentDevicePowerWatts: watts.
    scalar(
        "pdu-power",
        "1.3.6.1.4.1.318.1.1.12.1.16.0",
        Raw::Scale(1.0),
    ),
    // rPDUOutletStatusLoad: tenths of amperes.
    column(
        "pdu-outlet-current",
        "1.3.6.1.4.1.318.1.1.12.3.5.1.1.7",
        Raw::Scale(0.1),
    ),
];

/// RFC 1628 UPS-MIB, with the voltages' factor of the card.
const fn ups_mib(volts: f64) -> [Expect; 8] {
    [
        // upsOutputSource: battery(5).
        scalar("ups-on-battery", "1.3.6.1.2.1.33.1.4.1.0", Raw::Flag(&[5])),
        // upsBatteryStatus: batteryLow(3), batteryDepleted(4).
        scalar(
            "ups-low-battery",
            "1.3.6.1.2.1.33.1.2.1.0",
            Raw::Flag(&[3, 4]),
        ),
        // upsEstimatedMinutesRemaining: minutes.
        scalar(
            "ups-runtime-remaining",
            "1.3.6.1.2.1.33.1.2.3.0",
            Raw::Scale(60.0),
        ),
        // upsEstimatedChargeRemaining: percent.
        scalar(
            "ups-battery-charge",
            "1.3.6.1.2.1.33.1.2.4.0",
            Raw::Scale(1.0),
        ),
        // upsBatteryTemperature: °C.
        scalar(
            "ups-battery-temperature",
            "1.3.6.1.2.1.33.1.2.7.0",
            Raw::Scale(1.0),
        ),
        // upsInputVoltage, upsOutputVoltage: volts (RFC 1628; Huawei sends tenths).
        column(
            "ups-input-voltage",
            "1.3.6.1.2.1.33.1.3.3.1.3",
            Raw::Scale(volts),
        ),
        column(
            "ups-output-voltage",
            "1.3.6.1.2.1.33.1.4.4.1.2",
            Raw::Scale(volts),
        ),
        // upsOutputPercentLoad: percent.
        column("ups-load", "1.3.6.1.2.1.33.1.4.4.1.5", Raw::Scale(1.0)),
    ]
}

#[test]
fn probe_reads_every_recording_a_builtin_profile_claims() {
    let recordings = [
        "UPS/apc-7902b",
        "UPS/apc-8641",
        "UPS/apc-8932",
        "UPS/eaton-93e-80",
        "UPS/huawei-gse200m",
    ];
    let Some(sim) = Snmpsim::start(&recordings) else {
        return;
    };
    let (eaton, huawei) = (ups_mib(1.0), ups_mib(0.1));
    let cases: [(&str, &str, &[Expect]); 8] = [
        ("UPS/apc-7902b", "apc-rpdu", &RPDU),
        ("UPS/apc-8641", "apc-rpdu", &RPDU),
        ("UPS/apc-8932", "apc-rpdu", &RPDU),
        ("UPS/apc-7902b", "apc-rpdu2", &RPDU2),
        ("UPS/apc-8641", "apc-rpdu2", &RPDU2),
        ("UPS/apc-8932", "apc-rpdu2", &RPDU2),
        ("UPS/eaton-93e-80", "ups-mib", &eaton),
        ("UPS/huawei-gse200m", "ups-mib-decivolts", &huawei),
    ];
    let (mut outlets, mut total) = (0, 0);
    for (recording, profile, expects) in cases {
        let (out, err, ok) = probe(
            &[
                format!("snmp://{}", sim.address()),
                "--community".into(),
                sim.community(recording),
                "--profile".into(),
                profile.into(),
            ],
            &[],
        );
        assert!(ok, "{recording} {profile}: {err}\n{}", sim.log_text());
        let read = samples(&out);
        let rec = Recording::load(recording);
        let compared = check_against_recording(&read, &rec, expects);
        // A switched 7902B meters its phase current only in rPDU2.
        assert!(compared >= 1, "{recording} {profile}: no values\n{out}");
        total += compared;
        if profile == "apc-rpdu" {
            // The issue's "done when": the recorded PDU's outlet loads.
            let n = read.keys().filter(|k| k.0 == "pdu-outlet-current").count();
            assert!(n >= 8, "{recording}: {n} outlets\n{out}");
            outlets += n;
        }
        // What the agent says it cannot measure is shown, not hidden.
        if out.contains(" -1\n") || out.ends_with(" -1") {
            assert!(out.contains("no reading:"), "{recording} {profile}\n{out}");
        }
    }
    assert!(outlets >= 24, "{outlets}");
    assert!(total >= 100, "{total} values compared");
}

#[test]
fn a_wrong_community_or_profile_is_a_clear_error() {
    let Some(sim) = Snmpsim::start(&["UPS/apc-8641"]) else {
        return;
    };
    let target = format!("snmp://{}", sim.address());
    let (_, err, ok) = probe(
        &[
            target.clone(),
            "--community".into(),
            "not-a-community".into(),
            "--profile".into(),
            "apc-rpdu".into(),
            "--timeout-ms".into(),
            "300".into(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains(&target) && err.contains("no answer within 300 ms after 1 retries"),
        "{err}"
    );
    let (_, err, ok) = probe(
        &[
            target.clone(),
            "--community".into(),
            "apc-8641".into(),
            "--profile".into(),
            "generic-pdu".into(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("--profile") && err.contains("is a Modbus register map"),
        "{err}"
    );
    let (_, err, ok) = probe(&[target, "--community".into(), "apc-8641".into()], &[]);
    assert!(!ok && err.contains("give --profile"), "{err}");
}

#[test]
fn the_gateway_polls_snmp_sources_and_loses_a_silent_agent() {
    let Some(mut sim) = Snmpsim::start(&["UPS/apc-8641", "UPS/eaton-93e-80"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let addr = sim.address();
    let config = format!(
        r#"
[site]
name = "paris-1"
gateway = "gw-1"

[http]
bind = "{{HTTP}}"

[[zones]]
name = "hall"

[[snmp_sources]]
name = "pdu-a1"
zone = "hall"
url = "snmp://{addr}"
profile = "apc-rpdu2"
community = "apc-8641"
poll_interval_ms = 500
comm_lost_after = 2

[[snmp_sources]]
name = "ups-a"
zone = "hall"
url = "snmp://{addr}"
profile = "ups-mib"
community_env = "UPS_COMMUNITY"
poll_interval_ms = 500
comm_lost_after = 2

[[snmp_sources]]
name = "pdu-wrong"
zone = "hall"
url = "snmp://{addr}"
profile = "apc-rpdu"
community = "nobody-answers-this"
poll_interval_ms = 500
timeout_ms = 200
retries = 0
comm_lost_after = 2
"#
    );
    let log = dir.path().join("gateway.log");
    let gw = Gateway::start_with_env(
        dir.path(),
        &config,
        Some(&log),
        &[("UPS_COMMUNITY", "eaton-93e-80")],
    );
    let read = |device: &str, signal: &str, channel: u64| gw.signal(device, signal, channel);
    let got = wait_until(Duration::from_secs(15), || {
        read("pdu-a1", "pdu-outlet-current", 0).is_some()
            && read("ups-a", "ups-input-voltage", 2).is_some()
    });
    assert!(
        got.is_some(),
        "{}\n{}",
        gw.get("/status").unwrap_or_default(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let near = |got: Option<(String, Option<f64>)>, want: f64| {
        let (quality, value) = got.unwrap();
        quality == "good" && (value.unwrap() - want).abs() < 1e-3
    };
    // The recordings' values: outlet 1 at 0.9 A and 163 W, 6.5 A on the phase, 1.21 kW;
    // the Eaton's third input line at 233 V, 1092 minutes of runtime.
    assert!(near(read("pdu-a1", "pdu-outlet-current", 0), 0.9));
    assert!(near(read("pdu-a1", "pdu-outlet-power", 0), 163.0));
    assert!(near(read("pdu-a1", "pdu-current", 0), 6.5));
    assert!(near(read("pdu-a1", "pdu-power", 0), 1210.0));
    assert!(near(read("ups-a", "ups-input-voltage", 2), 233.0));
    assert!(near(
        read("ups-a", "ups-runtime-remaining", 0),
        1092.0 * 60.0
    ));
    assert!(near(read("ups-a", "ups-on-battery", 0), 0.0));
    assert_eq!(
        gw.device("pdu-a1")["source"],
        "snmp",
        "{}",
        gw.device("pdu-a1")
    );
    assert_eq!(gw.device("pdu-a1")["comm_lost"], false);

    // A community the agent does not serve: no answer, comm-lost, with the reason.
    let lost = wait_until(Duration::from_secs(10), || {
        gw.device("pdu-wrong")["comm_lost"] == true
    });
    assert!(lost.is_some(), "{}", gw.device("pdu-wrong"));
    let err = gw.device("pdu-wrong")["last_error"].to_string();
    assert!(err.contains("no answer within 200 ms"), "{err}");

    // The agent stops: both good sources comm-lost, their values no longer good.
    sim.stop();
    let lost = wait_until(Duration::from_secs(15), || {
        gw.device("pdu-a1")["comm_lost"] == true && gw.device("ups-a")["comm_lost"] == true
    });
    assert!(lost.is_some(), "{}", gw.get("/status").unwrap_or_default());
    let (quality, _) = read("pdu-a1", "pdu-outlet-current", 0).unwrap();
    assert_eq!(quality, "comm-lost");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("pdu-a1") && text.contains("not answering"),
        "the loss is logged: {text}"
    );
}

/// APC PowerNet UPS objects as an AP96xx card serves them, values from the MIB's definitions:
/// on battery (upsBasicOutputStatus onBattery(3)), battery normal (2), replace indicator set
/// (batteryNeedsReplacing(2)), 9 min 20 s of runtime (56000 ticks), 71 % charge, 31 °C,
/// 0 V in, 229 V out, 42 % load.
const APC_UPS_OVERRIDES: &str = "\
override .1.3.6.1.4.1.318.1.1.1.4.1.1.0 integer 3
override .1.3.6.1.4.1.318.1.1.1.2.1.1.0 integer 2
override .1.3.6.1.4.1.318.1.1.1.2.2.4.0 integer 2
override .1.3.6.1.4.1.318.1.1.1.2.2.3.0 timeticks 56000
override .1.3.6.1.4.1.318.1.1.1.2.2.1.0 unsigned 71
override .1.3.6.1.4.1.318.1.1.1.2.2.2.0 unsigned 31
override .1.3.6.1.4.1.318.1.1.1.3.2.1.0 unsigned 0
override .1.3.6.1.4.1.318.1.1.1.4.2.1.0 unsigned 229
override .1.3.6.1.4.1.318.1.1.1.4.2.3.0 unsigned 42
";

#[test]
fn snmpv3_auth_priv_reads_an_apc_ups_and_wrong_credentials_are_refused() {
    let Some(agent) = Snmpd::start_v3_with(
        "firebreak",
        "auth-pass-1234",
        "priv-pass-5678",
        APC_UPS_OVERRIDES,
    ) else {
        return;
    };
    let v3 = |auth: &str, privacy: &str, extra: &[&str]| {
        let mut args = vec![
            format!("snmp://{}", agent.address()),
            "--profile".into(),
            "apc-ups".into(),
            "--snmp-version".into(),
            "3".into(),
            "--snmp-user".into(),
            "firebreak".into(),
            "--auth-password-env".into(),
            "FB_AUTH".into(),
            "--priv-password-env".into(),
            "FB_PRIV".into(),
            "--timeout-ms".into(),
            "500".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        probe(&args, &[("FB_AUTH", auth), ("FB_PRIV", privacy)])
    };
    let (out, err, ok) = v3("auth-pass-1234", "priv-pass-5678", &[]);
    assert!(ok, "{err}\n{}", agent.log_text());
    let read = samples(&out);
    let value = |s: &str| read.get(&(s.to_string(), 0)).map(|v| v.0);
    assert_eq!(value("ups-on-battery"), Some(1.0), "{out}");
    assert_eq!(value("ups-low-battery"), Some(0.0));
    assert_eq!(value("ups-replace-battery"), Some(1.0));
    assert_eq!(value("ups-runtime-remaining"), Some(560.0));
    assert_eq!(value("ups-battery-charge"), Some(71.0));
    assert_eq!(value("ups-battery-temperature"), Some(31.0));
    assert_eq!(value("ups-input-voltage"), Some(0.0));
    assert_eq!(value("ups-output-voltage"), Some(229.0));
    assert_eq!(value("ups-load"), Some(42.0));
    assert_eq!(read.len(), 9, "{out}");

    // A wrong authentication password: snmpd's report of it is unauthenticated, which the
    // client ignores (anyone could forge one); a wrong privacy password: snmpd cannot decrypt
    // the request and stays silent. Either is no answer, and the error says why it may be.
    for (auth, privacy) in [
        ("wrong-pass-0000", "priv-pass-5678"),
        ("auth-pass-1234", "wrong-pass-0000"),
    ] {
        let (out, err, ok) = v3(auth, privacy, &[]);
        assert!(!ok, "{out}");
        assert!(
            err.contains("no answer within 500 ms")
                && err.contains("a wrong user, auth or priv password looks the same"),
            "{err}"
        );
    }
    // A password the environment lacks names the variable, never a value.
    let (_, err, ok) = v3("auth-pass-1234", "", &[]);
    assert!(!ok);
    assert!(err.contains("FB_PRIV") && err.contains("is empty"), "{err}");
}

/// `snmptrap -v 2c` of UPS-MIB's upsTrapOnBattery to `port`, with `community`.
fn send_trap(port: u16, community: &str) {
    let out = Command::new("snmptrap")
        .args(["-v", "2c", "-c", community])
        .arg(format!("127.0.0.1:{port}"))
        .args(["", "1.3.6.1.2.1.33.2.1"])
        .env("MIBS", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "snmptrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_trap_from_a_sources_agent_polls_it_at_once() {
    if !require_peer("snmptrap") {
        return;
    }
    let Some(sim) = Snmpsim::start(&["UPS/eaton-93e-80"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trap_port = free_udp_port();
    // Polled once a minute: without a trap, the second poll is a minute away.
    let config = format!(
        r#"
[site]
name = "paris-1"
gateway = "gw-1"

[http]
bind = "{{HTTP}}"

[[zones]]
name = "battery-room"

[[snmp_sources]]
name = "ups-a"
zone = "battery-room"
url = "snmp://{}"
profile = "ups-mib"
community = "eaton-93e-80"
poll_interval_ms = 60000

[snmp_traps]
bind = "127.0.0.1:{trap_port}"
communities = ["traps-only"]
"#,
        sim.address()
    );
    let log = dir.path().join("gateway.log");
    let gw = Gateway::start_logging(dir.path(), &config, Some(&log));
    let polls = || gw.device("ups-a")["polls"].as_u64().unwrap_or(0);
    assert!(
        wait_until(Duration::from_secs(10), || polls() == 1).is_some(),
        "{}",
        gw.device("ups-a")
    );
    // A community the listener does not accept: dropped, no poll.
    send_trap(trap_port, "not-this-one");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(polls(), 1, "a trap of another community polled the source");
    // The UPS's on-battery trap: the source is polled within a second, not in a minute.
    send_trap(trap_port, "traps-only");
    let took = wait_until(Duration::from_secs(5), || polls() == 2);
    assert!(took.is_some(), "{}", gw.device("ups-a"));
    // A burst of traps: at most one poll per 500 ms, never a storm.
    for _ in 0..20 {
        send_trap(trap_port, "traps-only");
    }
    std::thread::sleep(Duration::from_millis(1200));
    let after_burst = polls();
    assert!(
        (3..=5).contains(&after_burst),
        "20 traps in a burst gave {} polls",
        after_burst - 2
    );
    assert_eq!(gw.device("ups-a")["comm_lost"], false);
}

#[test]
fn a_trap_port_in_use_stops_the_start_with_its_name() {
    let Some(_sim) = Snmpsim::start(&["UPS/eaton-93e-80"]) else {
        return;
    };
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nname = \"p\"\ngateway = \"g\"\n[http]\nbind = \"127.0.0.1:{}\"\n[[zones]]\nname = \"z\"\n\
             [[snmp_sources]]\nname = \"u\"\nzone = \"z\"\nurl = \"snmp://127.0.0.1:9\"\nprofile = \"ups-mib\"\ncommunity = \"c\"\n\
             [snmp_traps]\nbind = \"127.0.0.1:{port}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(firebreak_bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("snmp_traps.bind 127.0.0.1:{port}")),
        "{err}"
    );
}
