//! The addresses a configuration names: `host:port` for Modbus TCP, `mqtt://` and `mqtts://`
//! for brokers and MQTT sources.

use super::Transport;

/// Parses `host:port` (`[::1]:502` for IPv6).
pub fn parse_host_port(s: &str) -> Option<Transport> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    Some(Transport::Tcp {
        host: host.to_string(),
        port: port.parse().ok().filter(|p| *p != 0)?,
    })
}

/// Parses `mqtt://host:port` or `mqtts://host:port` (ports 1883 and 8883 when absent):
/// whether it is TLS, the host and the port.
pub fn parse_broker_url(s: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = match s.strip_prefix("mqtts://") {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix("mqtt://")?),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    // No user:password@ in a URL: secrets would end up in logs.
    let (host, port) = host_with_default_port(rest, if tls { 8883 } else { 1883 })?;
    Some((tls, host, port))
}

/// Parses `nut://host[:port]/ups` (port 3493 when absent): the host, the port and the UPS name
/// (letters, digits, `_ - .`, as NUT's `ups.conf` sections).
pub fn parse_nut_url(s: &str) -> Option<(String, u16, String)> {
    let rest = s.strip_prefix("nut://")?;
    let (address, ups) = rest.split_once('/')?;
    let ups_ok = !ups.is_empty()
        && ups.len() <= 64
        && ups
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ups_ok {
        return None;
    }
    let (host, port) = host_with_default_port(address, 3493)?;
    Some((host, port, ups.to_string()))
}

/// Parses `snmp://host[:port]` (port 161 when absent): the agent's host and UDP port.
pub fn parse_snmp_url(s: &str) -> Option<(String, u16)> {
    host_with_default_port(s.strip_prefix("snmp://")?, 161)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, without a user name (secrets would end up in
/// logs) or a path.
fn host_with_default_port(address: &str, default_port: u16) -> Option<(String, u16)> {
    if address.contains('@') {
        return None;
    }
    if let Some(v6) = address.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return (!v6.is_empty() && !v6.contains(['/', ' ', '[', ']']))
            .then(|| (v6.to_string(), default_port));
    }
    match parse_host_port(address) {
        Some(Transport::Tcp { host, port }) => Some((host, port)),
        _ if !address.is_empty() && !address.contains([':', '/', ' ']) => {
            Some((address.to_string(), default_port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nut_urls() {
        assert_eq!(
            parse_nut_url("nut://127.0.0.1:34930/ups1"),
            Some(("127.0.0.1".into(), 34930, "ups1".into()))
        );
        assert_eq!(
            parse_nut_url("nut://ups-host/ups_a.1"),
            Some(("ups-host".into(), 3493, "ups_a.1".into()))
        );
        assert_eq!(
            parse_nut_url("nut://[::1]/ups"),
            Some(("::1".into(), 3493, "ups".into()))
        );
        for bad in [
            "nut://host",
            "nut://host/",
            "nut://user:pw@host/ups",
            "nut://host/u p",
            "tcp://host/ups",
            "nut://:3493/ups",
            "nut://host:0/ups",
        ] {
            assert_eq!(parse_nut_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn snmp_urls() {
        assert_eq!(
            parse_snmp_url("snmp://127.0.0.1:16100"),
            Some(("127.0.0.1".into(), 16100))
        );
        assert_eq!(
            parse_snmp_url("snmp://pdu-a1"),
            Some(("pdu-a1".into(), 161))
        );
        assert_eq!(parse_snmp_url("snmp://[::1]"), Some(("::1".into(), 161)));
        for bad in [
            "snmp://",
            "snmp://public@host",
            "snmp://host/1.3.6",
            "udp://host",
            "snmp://host:0",
            "snmp://host:x",
        ] {
            assert_eq!(parse_snmp_url(bad), None, "{bad}");
        }
    }
}
