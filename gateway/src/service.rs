//! Running under systemd: the `sd_notify` protocol (`Type=notify`, `WatchdogSec=`).
//!
//! systemd passes a Unix datagram socket in `NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace) and, with `WatchdogSec=`, the period in `WATCHDOG_USEC`. The gateway
//! sends `READY=1` once it is up (configuration loaded, tasks started, HTTP listening),
//! `WATCHDOG=1` every half period **only while [`Health::check`] — what `/healthz` answers —
//! says healthy**, a one-line `STATUS=`, `RELOADING=1` … `READY=1` around a reload and
//! `STOPPING=1` at the end. Without `NOTIFY_SOCKET` every call is a no-op.
//!
//! The protocol is one datagram of `KEY=value` lines; it is written here rather than taken
//! from a crate: a dozen lines over `std`'s `UnixDatagram`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::acquire::mono_ms;
use crate::acquire::table::SignalTable;
use crate::deliver::Delivery;
use crate::health::Health;
use crate::policy::view::LevelsView;

/// A connection to the service manager, or nothing (not started by systemd).
#[derive(Debug, Default)]
pub struct Notifier {
    #[cfg(unix)]
    socket: Option<(
        std::os::unix::net::UnixDatagram,
        std::os::unix::net::SocketAddr,
    )>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    /// `WATCHDOG_PID` (when set, the watchdog is ours only if it names this process).
    pub fn from_env() -> Notifier {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var("WATCHDOG_USEC").ok(),
            std::env::var("WATCHDOG_PID").ok(),
        )
    }

    /// From those variables' values; a value that cannot be used is logged and ignored.
    pub fn from_vars(
        notify_socket: Option<std::ffi::OsString>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
    ) -> Notifier {
        let mut n = Notifier::default();
        let Some(path) = notify_socket.filter(|p| !p.is_empty()) else {
            return n;
        };
        #[cfg(unix)]
        match connect(&path) {
            Ok(s) => n.socket = Some(s),
            Err(e) => {
                warn!(notify_socket = %path.to_string_lossy(), error = %e, "NOTIFY_SOCKET cannot be used: systemd will not hear from the gateway");
                return n;
            }
        }
        let ours = watchdog_pid
            .as_deref()
            .is_none_or(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()));
        n.watchdog = match watchdog_usec.as_deref().map(|u| u.trim().parse::<u64>()) {
            Some(Ok(usec)) if usec > 0 && ours => Some(Duration::from_micros(usec)),
            Some(Err(_)) => {
                warn!(
                    watchdog_usec = watchdog_usec.as_deref().unwrap_or(""),
                    "WATCHDOG_USEC is not a number of microseconds: watchdog not fed"
                );
                None
            }
            _ => None,
        };
        n
    }

    /// Whether there is a service manager to tell.
    pub fn enabled(&self) -> bool {
        #[cfg(unix)]
        {
            self.socket.is_some()
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when systemd asks for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| (w / 2).max(Duration::from_millis(1)))
    }

    /// Sends `state` (`KEY=value` lines); a failure is logged at debug level only.
    pub fn notify(&self, state: &str) {
        #[cfg(unix)]
        if let Some((socket, addr)) = &self.socket
            && let Err(e) = socket.send_to_addr(state.as_bytes(), addr)
        {
            debug!(error = %e, "sd_notify failed");
        }
        #[cfg(not(unix))]
        let _ = state;
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1`.
    pub fn reloading(&self) {
        self.notify("RELOADING=1\nSTATUS=reloading the configuration");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
    }
}

/// `STATUS=` is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(unix)]
fn connect(
    path: &std::ffi::OsStr,
) -> std::io::Result<(
    std::os::unix::net::UnixDatagram,
    std::os::unix::net::SocketAddr,
)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(name) => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        _ => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    // A full socket must never stall the gateway: the message is dropped instead.
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

/// A short human line for `STATUS=`: the site's level, the devices up, the brokers connected
/// and, when unhealthy, the first reason.
pub fn status_line(
    health: &Health,
    delivery: Option<&Delivery>,
    table: &Mutex<SignalTable>,
    levels: &Mutex<LevelsView>,
) -> (bool, Vec<String>, String) {
    // Whether to feed the watchdog: `alive`, not `healthy` (see HealthReport::alive).
    let report = health.check(delivery, mono_ms());
    let level = levels
        .lock()
        .map(|l| l.site.to_string())
        .unwrap_or_else(|_| "?".into());
    let (up, total) = table
        .lock()
        .map(|t| {
            let d = t.devices();
            (d.values().filter(|h| !h.comm_lost).count(), d.len())
        })
        .unwrap_or_default();
    let mut line = format!("level {level}; {up} of {total} devices up");
    if report.brokers_total > 0 {
        line.push_str(&format!(
            "; {} of {} brokers connected",
            report.brokers_connected, report.brokers_total
        ));
    }
    match report.reasons.first() {
        None => line.push_str("; healthy"),
        Some(r) => line.push_str(&format!("; UNHEALTHY: {r}")),
    }
    (report.alive, report.reasons, line)
}

/// Feeds systemd's watchdog every [`Notifier::watchdog_interval`] while the gateway's own
/// machinery works ([`crate::health::HealthReport::alive`]: healthy, or unhealthy only for
/// want of a broker), and keeps `STATUS=` current; returns at once without a watchdog. A
/// gateway whose tasks died, whose engine stalled or whose outbox cannot be written for
/// `WatchdogSec` is stopped and restarted by systemd: the log says why the watchdog was not
/// fed.
pub async fn watchdog(
    notifier: Arc<Notifier>,
    health: Arc<Health>,
    delivery: Option<Delivery>,
    table: Arc<Mutex<SignalTable>>,
    levels: Arc<Mutex<LevelsView>>,
) {
    let Some(every) = notifier.watchdog_interval() else {
        return;
    };
    info!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog: fed while the gateway's own checks pass (brokers aside)"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fed = true;
    loop {
        tick.tick().await;
        let (healthy, reasons, line) = status_line(&health, delivery.as_ref(), &table, &levels);
        if healthy {
            notifier.notify(&format!("WATCHDOG=1\nSTATUS={}", one_line(&line)));
            if !fed {
                info!("healthy again: systemd watchdog fed");
            }
        } else {
            notifier.notify(&format!("STATUS={}", one_line(&line)));
            if fed {
                warn!(reasons = %reasons.join("; "), "unhealthy: systemd watchdog NOT fed; systemd restarts the gateway if this lasts WatchdogSec");
            }
        }
        fed = healthy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_notify_socket_nothing_is_sent_and_no_watchdog() {
        let n = Notifier::from_vars(None, Some("30000000".into()), None);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready("x");
        n.stopping();
    }

    #[cfg(unix)]
    #[test]
    fn datagrams_reach_the_socket_and_the_watchdog_is_half_the_period() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let n = Notifier::from_vars(
            Some(path.clone().into_os_string()),
            Some("2000000".into()),
            Some(std::process::id().to_string()),
        );
        assert!(n.enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        n.ready("level normal\n2 devices");
        let mut buf = [0u8; 256];
        let len = sock.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::str::from_utf8(&buf[..len]).ok(),
            Some("READY=1\nSTATUS=level normal 2 devices")
        );
        // Another process's watchdog is not ours.
        let other = Notifier::from_vars(
            Some(path.into_os_string()),
            Some("2000000".into()),
            Some("1".into()),
        );
        assert_eq!(other.watchdog_interval(), None);
        let bad = Notifier::from_vars(
            Some(dir.path().join("nothing").into_os_string()),
            Some("soon".into()),
            None,
        );
        assert_eq!(bad.watchdog_interval(), None);
        bad.stopping();
    }
}
