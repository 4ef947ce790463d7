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
    if rest.contains('@') {
        return None;
    }
    let default_port = if tls { 8883 } else { 1883 };
    if let Some(v6) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return (!v6.is_empty() && !v6.contains(['/', ' ', '[', ']']))
            .then(|| (tls, v6.to_string(), default_port));
    }
    match parse_host_port(rest) {
        Some(Transport::Tcp { host, port }) => Some((tls, host, port)),
        _ if !rest.is_empty() && !rest.contains([':', '/', ' ', '@']) => {
            Some((tls, rest.to_string(), default_port))
        }
        _ => None,
    }
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
    if !ups_ok || address.contains('@') {
        return None;
    }
    if let Some(v6) = address.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return (!v6.is_empty() && !v6.contains(['/', ' ', '[', ']']))
            .then(|| (v6.to_string(), 3493, ups.to_string()));
    }
    match parse_host_port(address) {
        Some(Transport::Tcp { host, port }) => Some((host, port, ups.to_string())),
        _ if !address.is_empty() && !address.contains([':', '/', ' ']) => {
            Some((address.to_string(), 3493, ups.to_string()))
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
}
