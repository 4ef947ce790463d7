use super::*;

fn parse(text: &str) -> Result<SiteConfig, ConfigError> {
    SiteConfig::parse(text, "site.toml")
}

const BASE: &str = r#"
[site]
name = "paris-1"
gateway = "gw-1"

[[zones]]
name = "room"

[[devices]]
name = "ups"
zone = "room"
transport = "tcp"
address = "127.0.0.1:502"
unit = 1
profile = "generic-ups"
"#;

#[test]
fn example_passes_the_check() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.site.as_str(), "paris-1");
    assert_eq!(c.devices.len(), 4);
    assert_eq!(c.mqtt_sources.len(), 1);
    let acme = c.device("ups-a1").unwrap();
    assert_eq!(acme.profile.name, "acme-ups-9000");
    assert_eq!(acme.profile.registers[1].word_order, WordOrder::LowFirst);
    assert_eq!(
        c.device("pdu-a1").unwrap().poll_interval,
        Duration::from_secs(2)
    );
    assert_eq!(
        c.device("ups-b1").unwrap().timeout,
        Duration::from_millis(500)
    );
    let buses = c.rtu_buses();
    assert_eq!(buses.len(), 1);
    assert_eq!(buses["/dev/ttyUSB0"][0].unit, 7);
    assert_eq!(c.http_bind.to_string(), "127.0.0.1:9186");
}

/// `[signing]` and `[outbox]` for the broker cases.
const DELIVERY: &str = "[signing]\nkey_file = \"k.key\"\n[outbox]\ndir = \"/var/lib/fb\"\n";

#[test]
fn brokers_signing_and_outbox() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.brokers.len(), 2);
    let b = &c.brokers[0];
    assert_eq!(b.url(), "mqtts://broker.site-b.example:8883");
    assert_eq!(
        b.password,
        Some(PasswordSource::File(
            "/etc/firebreak/site-b.password".into()
        ))
    );
    assert!(b.tls.as_ref().is_some_and(|t| t.client.is_some()));
    assert_eq!(c.brokers[1].url(), "mqtt://198.51.100.7:1883");
    assert_eq!(
        c.outbox,
        Some(OutboxConfig {
            dir: "/var/lib/firebreak/outbox".into(),
            capacity: 10_000,
            warn_at: 8000
        })
    );
    let text = format!(
        "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtts://[::1]\"\nca_file = \"ca.pem\"\nusername = \"u\"\npassword_env = \"FB_PW\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.brokers[0].url(), "mqtts://[::1]:8883");
    assert_eq!(
        c.brokers[0].password,
        Some(PasswordSource::Env("FB_PW".into()))
    );
    assert_eq!(c.outbox.unwrap().capacity, DEFAULT_OUTBOX_CAPACITY);
    // Without brokers the gateway publishes nothing, as before.
    assert!(parse(BASE).unwrap().brokers.is_empty());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let c = parse(BASE).unwrap();
    let d = &c.devices[0];
    assert_eq!(d.poll_interval, Duration::from_secs(1));
    assert_eq!(d.timeout, Duration::from_millis(500));
    assert_eq!(d.freshness, Duration::from_secs(3));
    assert_eq!(d.comm_lost_after, 3);
    assert_eq!(d.retries, 1);
    assert_eq!(c.http_bind.to_string(), DEFAULT_HTTP_BIND);
}

#[test]
fn witness_groups_reach_the_policy_topology() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.devices[0].witness, crate::policy::Witness::default());
    assert!(
        crate::policy::Topology::from_config(&c)
            .witnesses
            .is_empty()
    );
    let c = parse(&BASE.replace(
        "unit = 1",
        "unit = 1\nwitness_group = \"harness-a\"\nindependent_channels = true",
    ))
    .unwrap();
    let w = &c.devices[0].witness;
    assert_eq!(w.group.as_deref(), Some("harness-a"));
    assert!(w.independent_channels);
    let topo = crate::policy::Topology::from_config(&c);
    assert_eq!(topo.witnesses.len(), 1);
}

#[test]
fn mqtt_field_is_a_top_level_pointer() {
    let text = format!(
        "{BASE}[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"mqtt://127.0.0.1\"\ntopic = \"b/env\"\n[[mqtt_sources.signals]]\nsignal = \"room-temperature\"\nfield = \"temp/C\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.mqtt_sources[0].signals[0].pointer, "/temp~1C");
    let s = &c.mqtt_sources[0];
    assert_eq!(s.broker.url(), "mqtt://127.0.0.1:1883");
    assert_eq!(
        (s.broker.tls.as_ref(), s.broker.username.as_ref()),
        (None, None)
    );
    assert_eq!(s.max_payload, DEFAULT_MAX_PAYLOAD);
}

/// An `[[mqtt_sources]]` entry with `broker = …`, then `extra` keys, then one signal.
fn source(broker: &str, extra: &str) -> String {
    format!(
        "{BASE}[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"{broker}\"\ntopic = \"b/env\"\n{extra}[[mqtt_sources.signals]]\nsignal = \"room-temperature\"\nfield = \"t\"\n"
    )
}

#[test]
fn mqtt_sources_reach_their_broker_as_brokers_do() {
    let c = parse(&source(
        "mqtts://bms.example",
        "ca_file = \"ca.pem\"\nclient_cert = \"gw.pem\"\nclient_key = \"gw.key\"\nusername = \"gw-1\"\npassword_file = \"bms.password\"\nmax_payload = 2048\n",
    ))
    .unwrap();
    let s = &c.mqtt_sources[0];
    assert_eq!(
        s.broker,
        BrokerConfig {
            name: "bms".into(),
            host: "bms.example".into(),
            port: 8883,
            tls: Some(TlsFiles {
                ca_file: "ca.pem".into(),
                client: Some(("gw.pem".into(), "gw.key".into())),
            }),
            username: Some("gw-1".into()),
            password: Some(PasswordSource::File("bms.password".into())),
        }
    );
    assert_eq!(s.max_payload, 2048);
    let c = parse(&source(
        "mqtt://[::1]:1884",
        "username = \"gw-1\"\npassword_env = \"BMS_PW\"\n",
    ))
    .unwrap();
    let b = &c.mqtt_sources[0].broker;
    assert_eq!(b.url(), "mqtt://[::1]:1884");
    assert_eq!(b.password, Some(PasswordSource::Env("BMS_PW".into())));
    // The commented example shows a source over TLS with a password.
    let c = parse(EXAMPLE).unwrap();
    assert!(c.mqtt_sources[0].broker.tls.is_some());
    assert!(c.mqtt_sources[0].broker.password.is_some());
}

#[test]
fn policy_rules_file_is_read_beside_the_site_file_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!("{BASE}[policy]\nevacuation_budget_s = 600\nrules_file = \"rules.toml\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rules]]\nid = \"smoke\"\nkind = \"state\"\nsignal = \"smoke-alarm\"\nfor_s = 10\nlevel = \"evacuate\"\n",
    )
    .unwrap();
    let c = SiteConfig::load(&site).unwrap();
    assert_eq!(c.policy.evacuation_budget_s, 600);
    assert_eq!(c.policy.rules.rules.len(), 1);
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rules]]\nid = \"smoke\"\nkind = \"state\"\nsignal = \"smoke\"\nlevel = \"evacuate\"\n",
    )
    .unwrap();
    let e = SiteConfig::load(&site).unwrap_err().to_string();
    assert!(
        e.ends_with("rules.toml: rules[0].signal: no signal named \"smoke\""),
        "{e}"
    );
    // Without [policy], the built-in rules and budget.
    let c = parse(BASE).unwrap();
    assert_eq!(c.policy, crate::policy::Policy::default_policy().unwrap());
}

#[test]
fn serial_frame_gap() {
    let line = |baud| SerialLine {
        path: "/dev/x".into(),
        baud,
        parity: Parity::Even,
        stop_bits: 1,
        data_bits: 8,
    };
    // 11 bits a character at 9600 baud: 3.5 characters is 4.01 ms.
    assert_eq!(line(9600).frame_gap(), Duration::from_micros(4010));
    assert_eq!(line(115_200).frame_gap(), Duration::from_micros(1750));
}

/// Each bad configuration and the exact message a technician sees.
#[test]
fn bad_configs_name_file_key_and_problem() {
    let dev = |extra: &str| {
        BASE.replace(
            "profile = \"generic-ups\"",
            &format!("profile = \"generic-ups\"\n{extra}"),
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            dev("baudrate = 9600"),
            "site.toml:16: devices[0].baudrate: unknown field `baudrate`, expected one of `name`, `zone`, `transport`, `address`, `serial`, `baud`, `parity`, `stop_bits`, `data_bits`, `unit`, `profile`, `poll_interval_ms`, `timeout_ms`, `retries`, `comm_lost_after`, `freshness_ms`, `max_gap`, `max_registers`",
        ),
        (
            BASE.replace("gateway = \"gw-1\"\n", ""),
            "site.toml:2: site: missing field `gateway`",
        ),
        (
            BASE.replace("name = \"paris-1\"", "name = \"paris/1\""),
            "site.toml: site.name: \"paris/1\" contains forbidden character '/' at byte 5",
        ),
        (
            BASE.replace("profile = \"generic-ups\"", "profile = \"apc-smt\""),
            "site.toml: devices[0].profile: no profile named \"apc-smt\"",
        ),
        (
            BASE.replace("zone = \"room\"", "zone = \"rooom\""),
            "site.toml: devices[0].zone: no zone named \"rooom\" (zones: room)",
        ),
        (
            BASE.replace("address = \"127.0.0.1:502\"\n", ""),
            "site.toml: devices[0].address: required for transport \"tcp\" (host:port)",
        ),
        (
            BASE.replace("127.0.0.1:502", "127.0.0.1"),
            "site.toml: devices[0].address: \"127.0.0.1\" is not host:port",
        ),
        (
            dev("baud = 9600"),
            "site.toml: devices[0].baud: only for transport \"rtu\"",
        ),
        (
            BASE.replace("transport = \"tcp\"", "transport = \"udp\""),
            "site.toml:12: devices[0].transport: unknown variant `udp`, expected `tcp` or `rtu`",
        ),
        (
            BASE.replace("unit = 1", "unit = 0"),
            "site.toml: devices[0].unit: 0 is not a Modbus unit id (1..=247)",
        ),
        (
            dev("witness_group = \"harness/a\""),
            "site.toml: devices[0].witness_group: \"harness/a\" contains forbidden character '/'",
        ),
        (
            BASE.replace("unit = 1", "unit = 300"),
            "site.toml:14: devices[0].unit: invalid value: integer `300`, expected u8",
        ),
        (
            dev("poll_interval_ms = 1000\ntimeout_ms = 1000"),
            "site.toml: devices[0].timeout_ms: 1000 must be more than 0 and less than poll_interval_ms (1000)",
        ),
        (
            dev("freshness_ms = 500"),
            "site.toml: devices[0].freshness_ms: 500 is less than poll_interval_ms (1000): every value would be stale",
        ),
        (
            format!(
                "{BASE}{}",
                BASE.lines().skip(8).collect::<Vec<_>>().join("\n")
            ),
            "site.toml: devices[1].name: device \"ups\" is defined twice",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"generic-ups\"\n[[profiles.registers]]\nsignal = \"ups-load\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\n"
            ),
            "site.toml: profiles[0].name: \"generic-ups\" is a built-in profile; choose another name",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"x\"\n[[profiles.registers]]\nsignal = \"ups-load\"\ntable = \"coil\"\naddress = 0\ntype = \"u16\"\n"
            ),
            "site.toml: profiles[0].registers[0]: data type U16 cannot be read from the coil table",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"x\"\n[[profiles.registers]]\nsignal = \"ups-runtime\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\n"
            ),
            "site.toml:19: profiles[0].registers[0].signal: unknown variant `ups-runtime`, expected one of `ups-on-battery`",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"x\"\n[[profiles.registers]]\nsignal = \"ups-on-battery\"\ntable = \"input\"\naddress = 0\ntype = \"bit\"\n"
            ),
            "site.toml: profiles[0].registers[0].bit: required for type \"bit\"",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"x\"\n[[profiles.registers]]\nsignal = \"ups-load\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\nword_order = \"low-first\"\n"
            ),
            "site.toml: profiles[0].registers[0].word_order: only for 32-bit types (u32, i32, f32)",
        ),
        (
            format!(
                "{BASE}[[profiles]]\nname = \"x\"\n[[profiles.registers]]\nsignal = \"ups-load\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"\n[[profiles.registers]]\nsignal = \"ups-load\"\ntable = \"input\"\naddress = 1\ntype = \"u16\"\n"
            ),
            "site.toml: profiles[0]: registers[1]: signal ups-load channel 0 is already mapped",
        ),
        (
            format!(
                "{BASE}[[devices]]\nname = \"n1\"\nzone = \"room\"\ntransport = \"rtu\"\nserial = \"/dev/ttyS0\"\nunit = 2\nprofile = \"firebreak-sensor-node\"\n[[devices]]\nname = \"n2\"\nzone = \"room\"\ntransport = \"rtu\"\nserial = \"/dev/ttyS0\"\nbaud = 9600\nunit = 3\nprofile = \"firebreak-sensor-node\"\n"
            ),
            "site.toml: devices[2].serial: /dev/ttyS0 is also used by devices[1] with other settings (rtu:///dev/ttyS0?baud=19200&format=8E1); devices on one line share baud, parity, stop and data bits",
        ),
        (
            format!(
                "{BASE}[[devices]]\nname = \"n1\"\nzone = \"room\"\ntransport = \"rtu\"\nserial = \"/dev/ttyS0\"\nunit = 2\nprofile = \"firebreak-sensor-node\"\n[[devices]]\nname = \"n2\"\nzone = \"room\"\ntransport = \"rtu\"\nserial = \"/dev/ttyS0\"\nunit = 2\nprofile = \"firebreak-sensor-node\"\n"
            ),
            "site.toml: devices[2].unit: unit 2 is already used on /dev/ttyS0 by devices[1]",
        ),
        (
            format!(
                "{BASE}[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"mqtt://127.0.0.1:1883\"\ntopic = \"b/env\"\n[[mqtt_sources.signals]]\nsignal = \"room-temperature\"\npointer = \"temperature\"\n"
            ),
            "site.toml: mqtt_sources[0].signals[0].pointer: \"temperature\" is not a JSON pointer (it starts with '/', as in \"/temperature\"; for a top-level field use field = \"temperature\")",
        ),
        (
            format!(
                "{BASE}[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"http://127.0.0.1\"\ntopic = \"b/env\"\n"
            ),
            "site.toml: mqtt_sources[0].broker: \"http://127.0.0.1\" is not mqtt://host:port or mqtts://host:port",
        ),
        // A source's connection keys follow the rules of [[brokers]], named under the source.
        (
            source("mqtt://gw:secret@10.0.0.1", ""),
            "site.toml: mqtt_sources[0].broker: \"mqtt://gw:secret@10.0.0.1\" is not mqtt://host:port or mqtts://host:port",
        ),
        (
            source("mqtts://bms.example", ""),
            "site.toml: mqtt_sources[0].ca_file: required for mqtts://: the CA certificate (PEM) that signed the broker's certificate",
        ),
        (
            source("mqtt://bms.example", "ca_file = \"ca.pem\"\n"),
            "site.toml: mqtt_sources[0].ca_file: only for mqtts:// brokers (TLS)",
        ),
        (
            source("mqtt://bms.example", "client_key = \"gw.key\"\n"),
            "site.toml: mqtt_sources[0].client_key: only for mqtts:// brokers (TLS)",
        ),
        (
            source(
                "mqtts://bms.example",
                "ca_file = \"ca.pem\"\nclient_key = \"gw.key\"\n",
            ),
            "site.toml: mqtt_sources[0].client_cert: client_cert and client_key go together",
        ),
        (
            source("mqtt://bms.example", "password_file = \"pw\"\n"),
            "site.toml: mqtt_sources[0].username: required with password_file or password_env",
        ),
        (
            source(
                "mqtt://bms.example",
                "username = \"u\"\npassword_file = \"pw\"\npassword_env = \"PW\"\n",
            ),
            "site.toml: mqtt_sources[0]: give password_file or password_env, not both",
        ),
        (
            source(
                "mqtt://bms.example",
                "username = \"u\"\npassword_env = \"A=B\"\n",
            ),
            "site.toml: mqtt_sources[0].password_env: \"A=B\" is not an environment variable name",
        ),
        (
            source("mqtt://bms.example", "username = \"\"\n"),
            "site.toml: mqtt_sources[0].username: is empty",
        ),
        (
            source("mqtt://bms.example", "password = \"hunter2\"\n"),
            "site.toml:21: mqtt_sources[0].password: unknown field `password`",
        ),
        (
            source("mqtt://bms.example", "max_payload = 100\n"),
            "site.toml: mqtt_sources[0].max_payload: 100 bytes is not between 1024 and 1048576",
        ),
        (
            source("mqtt://bms.example", "max_payload = 2000000\n"),
            "site.toml: mqtt_sources[0].max_payload: 2000000 bytes is not between 1024 and 1048576",
        ),
        (
            format!(
                "{BASE}[[mqtt_sources]]\nname = \"bms\"\nzone = \"room\"\nbroker = \"mqtt://127.0.0.1\"\ntopic = \"b/env\"\n[[mqtt_sources.signals]]\nsignal = \"room-temperature\"\n"
            ),
            "site.toml: mqtt_sources[0].signals[0]: give pointer (\"/a/b\") or field (\"a\") for the value",
        ),
        (
            format!("{BASE}[policy]\nevacuation_budget_s = 5\n"),
            "site.toml: policy.evacuation_budget_s: 5 is not between 10 and 86400 seconds",
        ),
        (
            format!("{BASE}[policy]\nrules_file = \"no-such-rules.toml\"\n"),
            "site.toml: policy.rules_file: no-such-rules.toml is not a readable file",
        ),
        (
            format!("{BASE}[policy]\nbudget = 300\n"),
            "site.toml:17: policy.budget: unknown field `budget`",
        ),
        (
            format!("{BASE}[http]\nbind = \"localhost\"\n"),
            "site.toml: http.bind: \"localhost\" is not an address:port such as \"127.0.0.1:9186\"",
        ),
        (
            "[site]\nname = \"s\"\ngateway = \"g\"\n".to_string(),
            "site.toml: devices: the site has no devices, mqtt_sources, nut_sources or snmp_sources: nothing to watch",
        ),
        (
            "[site\nname = 1".to_string(),
            "site.toml:1: unclosed table, expected `]`",
        ),
        (
            format!("{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"tcp://10.0.0.1:1883\"\n"),
            "site.toml: brokers[0].url: \"tcp://10.0.0.1:1883\" is not mqtt://host:port or mqtts://host:port",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://gw:secret@10.0.0.1\"\n"
            ),
            "site.toml: brokers[0].url: \"mqtt://gw:secret@10.0.0.1\" is not mqtt://host:port or mqtts://host:port",
        ),
        (
            format!("{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtts://b.example\"\n"),
            "site.toml: brokers[0].ca_file: required for mqtts://: the CA certificate (PEM) that signed the broker's certificate",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\nca_file = \"ca.pem\"\n"
            ),
            "site.toml: brokers[0].ca_file: only for mqtts:// brokers (TLS)",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtts://b.example\"\nca_file = \"ca.pem\"\nclient_cert = \"c.pem\"\n"
            ),
            "site.toml: brokers[0].client_key: client_cert and client_key go together",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\npassword_env = \"PW\"\n"
            ),
            "site.toml: brokers[0].username: required with password_file or password_env",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\nusername = \"u\"\npassword_env = \"PW\"\npassword_file = \"pw\"\n"
            ),
            "site.toml: brokers[0]: give password_file or password_env, not both",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\npassword = \"hunter2\"\n"
            ),
            "site.toml:23: brokers[0].password: unknown field `password`, expected one of `name`, `url`, `ca_file`, `client_cert`, `client_key`, `username`, `password_file`, `password_env`",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\n[[brokers]]\nname = \"b\"\nurl = \"mqtt://c.example\"\n"
            ),
            "site.toml: brokers[1].name: broker \"b\" is defined twice (brokers[0])",
        ),
        (
            format!(
                "{BASE}{DELIVERY}[[brokers]]\nname = \"b\"\nurl = \"mqtt://B.example\"\n[[brokers]]\nname = \"c\"\nurl = \"mqtt://b.example:1883/\"\n"
            ),
            "site.toml: brokers[1].url: mqtt://b.example:1883 is the same broker as brokers[0] (\"b\"): one entry per broker, or it gets every trigger twice",
        ),
        (
            format!("{BASE}{DELIVERY}[[brokers]]\nname = \"b/1\"\nurl = \"mqtt://b.example\"\n"),
            "site.toml: brokers[0].name: \"b/1\" contains forbidden character '/' at byte 1",
        ),
        (
            format!(
                "{BASE}[outbox]\ndir = \"/var/lib/fb\"\n[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\n"
            ),
            "site.toml: signing: required with [[brokers]]: controllers refuse unsigned triggers (make a key with `firebreak keygen`)",
        ),
        (
            format!(
                "{BASE}[signing]\nkey_file = \"k.key\"\n[[brokers]]\nname = \"b\"\nurl = \"mqtt://b.example\"\n"
            ),
            "site.toml: outbox: required with [[brokers]]: the directory where triggers wait for each broker's acknowledgement",
        ),
        (
            format!("{BASE}[signing]\nkey_file = \"k.key\"\nkey_id = \"k#1\"\n"),
            "site.toml: signing.key_id: \"k#1\" contains forbidden character '#' at byte 1",
        ),
        (
            format!("{BASE}[outbox]\ndir = \"/var/lib/fb\"\ncapacity = 100\nwarn_at = 200\n"),
            "site.toml: outbox.warn_at: 200 must be from 1 to capacity (100)",
        ),
        (
            format!("{BASE}[outbox]\ndir = \"/var/lib/fb\"\ncapacity = 0\n"),
            "site.toml: outbox.capacity: must be at least 1",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (text, expected)) in cases.iter().enumerate() {
        match parse(text) {
            Ok(_) => failures.push(format!("case {i}: accepted, expected {expected:?}")),
            Err(e) if !e.to_string().starts_with(expected) => failures.push(format!(
                "case {i}:\n  got      {:?}\n  expected {expected:?}",
                e.to_string()
            )),
            Err(_) => {}
        }
    }
    assert!(cases.len() >= 15);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nut_sources_are_checked_as_devices_and_brokers_are() {
    let nut = |extra: &str| {
        format!("{BASE}[[nut_sources]]\nname = \"ups-nut\"\nzone = \"room\"\n{extra}\n")
    };
    let c = parse(&nut(
        "url = \"nut://ups-host/ups1\"\npoll_interval_ms = 2000",
    ))
    .unwrap();
    let s = &c.nut_sources[0];
    assert_eq!(
        (s.host.as_str(), s.port, s.ups.as_str(), s.url()),
        (
            "ups-host",
            3493,
            "ups1",
            "nut://ups-host:3493/ups1".to_string()
        )
    );
    assert_eq!(
        (s.poll_interval, s.timeout, s.comm_lost_after, s.freshness),
        (
            Duration::from_secs(2),
            Duration::from_millis(500),
            3,
            Duration::from_secs(6)
        )
    );
    for (extra, key, problem) in [
        (
            "url = \"nut://ups-host\"",
            "nut_sources[0].url",
            "is not nut://host[:port]/ups",
        ),
        (
            "url = \"nut://me:pw@ups-host/ups1\"",
            "nut_sources[0].url",
            "no user@ in the URL",
        ),
        (
            "url = \"nut://h/u\"\npassword_env = \"NUT_PW\"",
            "nut_sources[0].username",
            "required with password_file or password_env",
        ),
        (
            "url = \"nut://h/u\"\npoll_interval_ms = 100\ntimeout_ms = 200",
            "nut_sources[0].timeout_ms",
            "less than poll_interval_ms",
        ),
    ] {
        let e = parse(&nut(extra)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(problem), "{extra}: {e}");
    }
    // [defaults] apply to NUT sources as to devices and SNMP sources.
    let c = parse(&format!(
        "{}[defaults]\npoll_interval_ms = 250\ncomm_lost_after = 5\n",
        nut("url = \"nut://h/u\"")
    ))
    .unwrap();
    let s = &c.nut_sources[0];
    assert_eq!(
        (s.poll_interval, s.timeout, s.comm_lost_after),
        (Duration::from_millis(250), Duration::from_millis(125), 5)
    );
    let twice = format!(
        "{}[[nut_sources]]\nname = \"ups\"\nzone = \"room\"\nurl = \"nut://h/u\"\n",
        nut("url = \"nut://h/u\"")
    );
    let e = parse(&twice).unwrap_err().to_string();
    assert!(
        e.contains("nut_sources[1].name") && e.contains("defined twice"),
        "{e}"
    );
}

#[test]
fn snmp_sources_take_a_version_its_credentials_and_an_snmp_profile() {
    let snmp = |extra: &str| {
        format!("{BASE}[[snmp_sources]]\nname = \"pdu-a1\"\nzone = \"room\"\n{extra}\n")
    };
    let c = parse(&snmp(
        "url = \"snmp://pdu-host\"\nprofile = \"apc-rpdu2\"\ncommunity = \"public\"",
    ))
    .unwrap();
    let s = &c.snmp_sources[0];
    assert_eq!(
        (s.host.as_str(), s.port, s.url(), s.profile.name.as_str()),
        (
            "pdu-host",
            161,
            "snmp://pdu-host:161".to_string(),
            "apc-rpdu2"
        )
    );
    assert_eq!(
        (s.poll_interval, s.timeout, s.retries, s.comm_lost_after),
        (Duration::from_secs(2), Duration::from_secs(1), 1, 3)
    );
    assert_eq!(
        s.auth,
        SnmpAuth::V2c {
            community: Community::Inline("public".into())
        }
    );
    assert!(!format!("{:?}", s.auth).contains("public"), "{:?}", s.auth);
    let c = parse(&snmp(
        "url = \"snmp://[::1]:1161\"\nprofile = \"ups-mib\"\nversion = \"3\"\nusername = \"fb\"\nauth_password_env = \"A\"\npriv_protocol = \"aes256\"\npriv_password_file = \"/etc/firebreak/priv\"",
    ))
    .unwrap();
    assert_eq!(
        c.snmp_sources[0].auth,
        SnmpAuth::V3 {
            username: "fb".into(),
            auth: Some((SnmpAuthProtocol::Sha256, PasswordSource::Env("A".into()))),
            privacy: Some((
                SnmpPrivProtocol::Aes256,
                PasswordSource::File("/etc/firebreak/priv".into())
            )),
        }
    );
    let v2 = "url = \"snmp://h\"\nprofile = \"apc-rpdu\"\n";
    for (extra, key, problem) in [
        (
            "url = \"snmp://public@h\"\nprofile = \"apc-rpdu\"\ncommunity = \"c\"".to_string(),
            "snmp_sources[0].url",
            "no community@ in the URL",
        ),
        (
            v2.to_string(),
            "snmp_sources[0].community",
            "SNMPv2c needs a community",
        ),
        (
            format!("{v2}community = \"c\"\ncommunity_env = \"C\""),
            "snmp_sources[0].community",
            "give one of community, community_file and community_env",
        ),
        (
            format!("{v2}community = \"c\"\nusername = \"u\""),
            "snmp_sources[0].username",
            "only for version = \"3\"",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"generic-pdu\"\ncommunity = \"c\"".to_string(),
            "snmp_sources[0].profile",
            "is a Modbus register map",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"apc-smt\"\ncommunity = \"c\"".to_string(),
            "snmp_sources[0].profile",
            "SNMP profiles: apc-rpdu, apc-rpdu2, apc-ups, ups-mib",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"ups-mib\"\nversion = \"1\"".to_string(),
            "snmp_sources[0].version",
            "\"2c\" or \"3\"",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"ups-mib\"\nversion = \"3\"\nusername = \"u\"\npriv_password_env = \"P\"".to_string(),
            "snmp_sources[0].priv_password_file",
            "privacy needs authentication",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"ups-mib\"\nversion = \"3\"\nusername = \"u\"\nauth_protocol = \"sha3\"\nauth_password_env = \"A\"".to_string(),
            "snmp_sources[0].auth_protocol",
            "is not md5, sha",
        ),
        (
            "url = \"snmp://h\"\nprofile = \"ups-mib\"\nversion = \"3\"".to_string(),
            "snmp_sources[0].username",
            "required for version = \"3\"",
        ),
        (
            format!("{v2}community = \"c\"\npoll_interval_ms = 500\ntimeout_ms = 800"),
            "snmp_sources[0].timeout_ms",
            "less than poll_interval_ms",
        ),
    ] {
        let e = parse(&snmp(&extra)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(problem), "{extra}: {e}");
    }
    // A Modbus device cannot use an SNMP profile.
    let e = parse(&BASE.replace("generic-ups", "ups-mib"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("devices[0].profile") && e.contains("is an SNMP profile"),
        "{e}"
    );
}

#[test]
fn user_snmp_profiles_are_checked_entry_by_entry() {
    let profile = |oids: &str| {
        format!(
            "{BASE}[[profiles]]\nname = \"my-pdu\"\n{oids}\n[[snmp_sources]]\nname = \"pdu\"\nzone = \"room\"\nurl = \"snmp://h\"\nprofile = \"my-pdu\"\ncommunity = \"c\"\n"
        )
    };
    let c = parse(&profile(
        "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \".1.3.6.1.4.1.9.1.5\"\ntable = true\nfirst_index = 0\nscale = 0.1\nsentinels = [-1]\n[[profiles.oids]]\nsignal = \"ups-on-battery\"\noid = \"1.3.6.1.4.1.9.2.0\"\ntype = \"flag\"\non = [2, 3]",
    ))
    .unwrap();
    let p = &c.snmp_sources[0].profile;
    assert_eq!(p.oids[0].oid, "1.3.6.1.4.1.9.1.5");
    assert_eq!(p.oids[0].shape, OidShape::Column { first_index: 0 });
    assert_eq!(p.oids[1].kind, OidKind::Flag);
    assert_eq!(p.oids[1].on, [2, 3]);
    for (oids, key, problem) in [
        (
            "[[profiles.oids]]\nsignal = \"ups-on-battery\"\noid = \"1.3.6.1.4.1.9.2.0\"",
            "profiles[0].oids[0]",
            "use type \"flag\"",
        ),
        (
            "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.x\"",
            "profiles[0].oids[0]",
            "not a dotted OID",
        ),
        (
            "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.6\"\ntable = true\nchannel = 2",
            "profiles[0].oids[0].channel",
            "row indexes less first_index",
        ),
        (
            "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.6\"\non = [1]",
            "profiles[0].oids[0].on",
            "only for type \"flag\"",
        ),
        (
            "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.6\"\ntable = true\n[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.7.0\"",
            "profiles[0]",
            "oids[1]: signal pdu-current is already fed",
        ),
        (
            "[[profiles.oids]]\nsignal = \"pdu-current\"\noid = \"1.3.6.0\"\n[[profiles.registers]]\nsignal = \"pdu-power\"\ntable = \"input\"\naddress = 0\ntype = \"u16\"",
            "profiles[0].oids",
            "not both",
        ),
    ] {
        let e = parse(&profile(oids)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(problem), "{oids}: {e}");
    }
}

#[test]
fn snmp_traps_need_an_address_and_snmp_sources() {
    let source = "[[snmp_sources]]\nname = \"ups-a\"\nzone = \"room\"\nurl = \"snmp://h\"\nprofile = \"ups-mib\"\ncommunity = \"c\"\n";
    let c = parse(&format!(
        "{BASE}{source}[snmp_traps]\nbind = \"0.0.0.0:1162\"\ncommunities = [\"public\"]\n"
    ))
    .unwrap();
    assert_eq!(
        c.snmp_traps,
        Some(SnmpTrapsConfig {
            bind: "0.0.0.0:1162".parse().unwrap(),
            communities: vec!["public".into()],
        })
    );
    for (text, key, problem) in [
        (
            format!("{BASE}{source}[snmp_traps]\nbind = \"1162\"\n"),
            "snmp_traps.bind",
            "is not an address:port",
        ),
        (
            format!("{BASE}[snmp_traps]\nbind = \"0.0.0.0:1162\"\n"),
            "snmp_traps",
            "the site has no snmp_sources",
        ),
        (
            format!("{BASE}{source}[snmp_traps]\nbind = \"0.0.0.0:1162\"\ncommunities = [\"\"]\n"),
            "snmp_traps.communities",
            "an empty community",
        ),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(problem), "{e}");
    }
}

#[test]
fn the_control_socket_is_next_to_the_outbox_unless_configured() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(
        c.control_socket.as_deref(),
        Some(std::path::Path::new(
            "/var/lib/firebreak/outbox/control.sock"
        ))
    );
    assert_eq!(parse(BASE).unwrap().control_socket, None);
    let c = parse(&format!(
        "{BASE}{DELIVERY}[control]\nsocket = \"/run/fb/c.sock\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.control_socket.as_deref(),
        Some(std::path::Path::new("/run/fb/c.sock"))
    );
    let e = parse(&format!("{BASE}[control]\nsocket = \"\"\n")).unwrap_err();
    assert!(e.to_string().contains("control.socket"), "{e}");
}
