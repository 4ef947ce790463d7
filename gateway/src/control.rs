//! The local control channel of a running gateway: a Unix domain socket, one JSON request and
//! one JSON answer per connection. `firebreak drill` and `firebreak maintenance` use it.
//!
//! - **Where**: `[control] socket` in the site configuration, by default `control.sock` in
//!   the outbox directory (`{outbox.dir}/control.sock`). Only a gateway with brokers has one.
//! - **Who**: the socket is made mode `0600` (bound under a temporary name, restricted, then
//!   renamed into place, so it is never reachable with wider rights): filesystem permission
//!   is the authentication — the gateway's user (and root) may use it, nobody else.
//! - **Protocol**: the client connects, writes one JSON object (at most [`MAX_REQUEST`]
//!   bytes, ended by a newline or by closing its write side) within [`READ_TIMEOUT`], and
//!   reads one JSON object (at most [`MAX_ANSWER`] bytes, ended by a newline); then the
//!   gateway closes the connection. A request is `{"request":"drill","zone":"battery-room",
//!   "level":"evacuate","timeout_s":10}` (`zone`, `level` — default `evacuate` — and
//!   `timeout_s` optional); `{"request":"maintenance-start","device":"node-1","channel":2,
//!   "for_s":2700,"reason":"swap the off-gas probe","by":"alice"}` (`channel`, `by` and
//!   `force` optional), `{"request":"maintenance-end","device":"node-1"}` and
//!   `{"request":"maintenance-list"}` ([`crate::maintenance`]). An answer is
//!   `{"ok":true,"drill":{…}}`, `{"ok":true,"maintenance":{…}}` or
//!   `{"ok":false,"error":"…"}`. The gateway logs the Unix user of every request's process
//!   (the socket's peer credentials). At most [`MAX_CONNECTIONS`] are served at once; more are
//!   answered `busy`.
//! - **Lifetime**: a socket file left by a gateway that died is replaced at start; one that
//!   a running gateway answers on is not (the second gateway runs without a control
//!   socket, and logs why). The file is removed at a clean stop.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use firebreak_protocols::{Level, ZoneId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::deliver::{DRILL_TIMEOUT, Delivery, DrillReport};

/// The socket's file name in the outbox directory when `[control] socket` is not set.
pub const DEFAULT_SOCKET_NAME: &str = "control.sock";
/// The longest request, in bytes.
pub const MAX_REQUEST: usize = 4 * 1024;
/// The longest answer, in bytes.
pub const MAX_ANSWER: usize = 256 * 1024;
/// How long the gateway waits for a request once connected.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// The longest drill timeout a request may ask for, in seconds.
pub const MAX_DRILL_TIMEOUT_S: f64 = 60.0;

/// A request to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Issue a drill through every broker and time its round trip on each.
    Drill {
        /// The zone it rehearses; absent for the site.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        /// The level it rehearses: `watch`, `prepare` or `evacuate` (the default).
        #[serde(default = "evacuate")]
        level: Level,
        /// How long to wait for every broker to send it back, in seconds (10 by default, at
        /// most 60).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
    },
    /// Put a device, or one channel of it, under maintenance (or renew it).
    MaintenanceStart(crate::maintenance::StartRequest),
    /// End maintenance of a device or channel.
    MaintenanceEnd(crate::maintenance::EndRequest),
    /// List what is under maintenance.
    MaintenanceList {},
}

/// A maintenance request on its way to the gateway's main loop (which owns the policy
/// engine), with the Unix user that asked and where the answer goes.
#[derive(Debug)]
pub struct MaintenanceJob {
    /// The request: [`Request::MaintenanceStart`], [`Request::MaintenanceEnd`] or
    /// [`Request::MaintenanceList`].
    pub request: Request,
    /// The asking process's Unix user, as the kernel says.
    pub uid: Option<u32>,
    /// The answer.
    pub reply: tokio::sync::oneshot::Sender<Answer>,
}

fn evacuate() -> Level {
    Level::Evacuate
}

/// The gateway's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the request was carried out (a drill that failed on a broker is still `ok`:
    /// its report says where).
    pub ok: bool,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A drill's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillReport>,
    /// A maintenance request's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::Report>,
}

impl Answer {
    /// A refusal.
    pub fn error(why: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            error: Some(why.into()),
            drill: None,
            maintenance: None,
        }
    }
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another gateway answers on it.
    #[error("control socket {0}: another gateway answers on it")]
    InUse(PathBuf),
    /// Something else than a socket is at its path.
    #[error("control socket {0}: exists and is not a socket; not replaced")]
    NotASocket(PathBuf),
    /// Nothing listens there.
    #[error(
        "control socket {path}: {problem} (is `firebreak run` running with this configuration? the socket is [control] socket, by default control.sock in the outbox directory)"
    )]
    NoGateway {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        problem: String,
    },
    /// The socket is there but not ours to use.
    #[error(
        "control socket {0}: permission denied: it is mode 0600, for the gateway's user (run as that user, or with sudo -u)"
    )]
    Denied(PathBuf),
    /// An I/O error.
    #[error("control socket {path}: {error}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What.
        error: std::io::Error,
    },
    /// The answer was not one.
    #[error("control socket {path}: the gateway's answer is not understood: {problem}")]
    BadAnswer {
        /// The socket.
        path: PathBuf,
        /// What.
        problem: String,
    },
}

/// What the gateway answers requests with.
#[derive(Debug, Clone)]
pub struct Handler {
    /// Delivery: drills go through it.
    pub delivery: Delivery,
    /// The site's zones, as the running configuration has them (a reload updates them): a
    /// drill names one of them, or none.
    pub zones: Arc<std::sync::Mutex<Vec<ZoneId>>>,
    /// The gateway's main loop, for maintenance requests.
    pub maintenance: tokio::sync::mpsc::Sender<MaintenanceJob>,
}

impl Handler {
    /// Carries out one request from the process of Unix user `uid`.
    pub async fn answer(&self, request: Request, uid: Option<u32>) -> Answer {
        match request {
            Request::MaintenanceStart(_)
            | Request::MaintenanceEnd(_)
            | Request::MaintenanceList {} => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let job = MaintenanceJob {
                    request,
                    uid,
                    reply,
                };
                if self.maintenance.send(job).await.is_err() {
                    return Answer::error("the gateway is stopping");
                }
                answer
                    .await
                    .unwrap_or_else(|_| Answer::error("the gateway is stopping"))
            }
            Request::Drill {
                zone,
                level,
                timeout_s,
            } => {
                let zone = match zone {
                    None => None,
                    Some(z) => {
                        let zones = self.zones.lock().map(|z| z.clone()).unwrap_or_default();
                        match zones.iter().find(|c| c.as_str() == z) {
                            Some(z) => Some(z.clone()),
                            None => {
                                let known: Vec<&str> = zones.iter().map(ZoneId::as_str).collect();
                                return Answer::error(format!(
                                    "zone {z:?} is not a zone of this site (zones: {})",
                                    if known.is_empty() {
                                        "none".to_string()
                                    } else {
                                        known.join(", ")
                                    }
                                ));
                            }
                        }
                    }
                };
                let timeout = match timeout_s {
                    None => DRILL_TIMEOUT,
                    Some(t) if t.is_finite() && t > 0.0 && t <= MAX_DRILL_TIMEOUT_S => {
                        Duration::from_secs_f64(t)
                    }
                    Some(t) => {
                        return Answer::error(format!(
                            "timeout_s {t} must be above 0 and at most {MAX_DRILL_TIMEOUT_S}"
                        ));
                    }
                };
                match self.delivery.drill(zone, level, timeout).await {
                    Ok(report) => Answer {
                        ok: true,
                        error: None,
                        drill: Some(report),
                        maintenance: None,
                    },
                    Err(e) => Answer::error(e.to_string()),
                }
            }
        }
    }
}

/// The gateway's end of the control socket. Dropping it removes the socket file.
#[derive(Debug)]
pub struct ControlSocket {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds the socket at `path`, mode 0600, replacing a socket file nobody answers on.
    /// Call inside a tokio runtime.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        let io = |error: std::io::Error| ControlError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ControlError::NotASocket(path.to_path_buf()));
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ControlError::InUse(path.to_path_buf())),
                Err(e) => {
                    debug!(path = %path.display(), error = %e, "a stale control socket is replaced");
                    std::fs::remove_file(path).map_err(io)?;
                }
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_SOCKET_NAME.into());
        let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let listener = std::os::unix::net::UnixListener::bind(&temporary).map_err(io)?;
        let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&temporary);
            return Err(io(e));
        }
        listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::UnixListener::from_std(listener).map_err(io)?;
        info!(path = %path.display(), "control socket listening (mode 0600)");
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until dropped.
    pub async fn serve(self, handler: Handler) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handler = handler.clone();
            let slot = slots.clone().try_acquire_owned();
            tokio::spawn(async move {
                let answer = match slot {
                    Ok(_slot) => serve_one(stream, &handler).await,
                    Err(_) => {
                        reply(
                            stream,
                            &Answer::error("busy: too many control requests at once"),
                        )
                        .await
                    }
                };
                if let Err(e) = answer {
                    debug!(error = %e, "control connection ended badly");
                }
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_one(mut stream: tokio::net::UnixStream, handler: &Handler) -> std::io::Result<()> {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let mut buf = Vec::new();
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if buf.len() > MAX_REQUEST || buf.contains(&b'\n') {
                return Ok(());
            }
        }
    })
    .await;
    let answer = match read {
        Err(_) => Answer::error(format!("no request within {} s", READ_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) if buf.len() > MAX_REQUEST => {
            Answer::error(format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(())) => {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            match serde_json::from_slice::<Request>(line) {
                Ok(request) => {
                    info!(?request, uid, "control request");
                    handler.answer(request, uid).await
                }
                Err(e) => Answer::error(format!("not a request: {e}")),
            }
        }
    };
    reply(stream, &answer).await
}

async fn reply(mut stream: tokio::net::UnixStream, answer: &Answer) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(answer).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    bytes.push(b'\n');
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

/// The socket a command asks: `socket` when given, else the one the configuration at `config`
/// names; `None` when neither gives one (a configuration without brokers has none).
pub fn socket_for(
    socket: Option<&Path>,
    config: Option<&Path>,
) -> Result<Option<PathBuf>, crate::config::ConfigError> {
    match (socket, config) {
        (Some(s), _) => Ok(Some(s.to_path_buf())),
        (None, Some(c)) => Ok(crate::config::SiteConfig::load(c)?.control_socket),
        (None, None) => Ok(None),
    }
}

/// Sends `request` to the gateway at `path` and waits up to `timeout` for its answer (a
/// blocking call, for the command line).
pub fn request(path: &Path, request: &Request, timeout: Duration) -> Result<Answer, ControlError> {
    let io = |error: std::io::Error| ControlError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ControlError::Denied(path.to_path_buf()),
        _ => ControlError::NoGateway {
            path: path.to_path_buf(),
            problem: e.to_string(),
        },
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut bytes = serde_json::to_vec(request).map_err(|e| io(std::io::Error::other(e)))?;
    bytes.push(b'\n');
    stream.write_all(&bytes).map_err(io)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER as u64 + 1)
        .read_to_end(&mut answer)
        .map_err(io)?;
    if answer.len() > MAX_ANSWER {
        return Err(ControlError::BadAnswer {
            path: path.to_path_buf(),
            problem: format!("longer than {MAX_ANSWER} bytes"),
        });
    }
    serde_json::from_slice(&answer).map_err(|e| ControlError::BadAnswer {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_strict_json() {
        let r: Request = serde_json::from_str(r#"{"request":"drill"}"#).unwrap();
        assert_eq!(
            r,
            Request::Drill {
                zone: None,
                level: Level::Evacuate,
                timeout_s: None
            }
        );
        let r: Request =
            serde_json::from_str(r#"{"request":"drill","zone":"b1","level":"prepare"}"#).unwrap();
        assert!(matches!(
            r,
            Request::Drill {
                level: Level::Prepare,
                ..
            }
        ));
        assert!(serde_json::from_str::<Request>(r#"{"request":"drill","lvl":"x"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"request":"evacuate"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"request":"drill","level":"fire"}"#).is_err());
        let r: Request = serde_json::from_str(
            r#"{"request":"maintenance-start","device":"n1","channel":2,"for_s":60,"reason":"swap"}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::MaintenanceStart(crate::maintenance::StartRequest {
                channel: Some(2),
                force: false,
                ..
            })
        ));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"request":"maintenance-start","device":"n1","channel":2,"for_s":60.0,"reason":"swap"}"#
        );
        assert!(
            serde_json::from_str::<Request>(
                r#"{"request":"maintenance-start","device":"n1","for_s":60,"reason":"x","forse":true}"#
            )
            .is_err()
        );
        let r: Request = serde_json::from_str(r#"{"request":"maintenance-list"}"#).unwrap();
        assert_eq!(r, Request::MaintenanceList {});
    }

    #[tokio::test]
    async fn the_socket_is_0600_and_a_stale_one_is_replaced_but_not_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(matches!(
            ControlSocket::bind(&dir.path().join("file")),
            Err(ControlError::NotASocket(_))
        ));
        // A socket nobody answers on (left by a killed gateway).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let socket = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(ControlError::InUse(_))
        ));
        drop(socket);
        assert!(!path.exists());
        let e = request(
            &path,
            &Request::Drill {
                zone: None,
                level: Level::Evacuate,
                timeout_s: None,
            },
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, ControlError::NoGateway { .. }), "{e}");
    }
}
