//! A TCP relay between one gateway and the broker, that the rig can cut: a
//! `gateway-network-cut` as a partition looks, not as a crash.
//!
//! While cut, the relay passes no byte either way and closes nothing: the gateway's MQTT
//! connection stays open on both sides and falls silent, so the gateway keeps running and
//! keeps deciding, its pings go unanswered, and the broker sends its will only when the
//! keep-alive runs out (1.5 × the gateway's 10 s); a connection attempted during the cut is
//! accepted and hears nothing either. At the restore every connection held across the cut is
//! closed (the broker has dropped its end by then) and new ones are relayed again.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::RigError;

/// The relay's state: relaying, or cut (with a count of cuts, so a restore ends the
/// connections of the cut before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    cut: bool,
    epoch: u64,
}

/// A running relay; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct NetProxy {
    port: u16,
    state: watch::Sender<State>,
    task: JoinHandle<()>,
}

impl Drop for NetProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NetProxy {
    /// Listens on a free loopback port and relays each connection to `target` (host, port).
    pub async fn start(target: (String, u16)) -> Result<NetProxy, RigError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| RigError::Setup(format!("network relay: cannot listen: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| RigError::Setup(format!("network relay: {e}")))?
            .port();
        let (state, rx) = watch::channel(State {
            cut: false,
            epoch: 0,
        });
        let target = Arc::new(target);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Finished relays are reaped as new ones come; the set ends with the task.
                while connections.try_join_next().is_some() {}
                connections.spawn(relay(inbound, target.clone(), rx.clone()));
            }
        });
        Ok(NetProxy { port, state, task })
    }

    /// The port gateways connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the network: no byte passes until [`NetProxy::restore`].
    pub fn cut(&self) {
        self.state.send_modify(|s| s.cut = true);
    }

    /// Restores it: the connections held across the cut are closed, new ones relayed.
    pub fn restore(&self) {
        self.state.send_modify(|s| {
            s.cut = false;
            s.epoch += 1;
        });
    }
}

/// Relays one connection while the network is up; holds it silent while it is cut; ends it
/// at the restore that follows a cut.
async fn relay(
    mut inbound: TcpStream,
    target: Arc<(String, u16)>,
    mut state: watch::Receiver<State>,
) {
    let born = state.borrow().epoch;
    // A connection made during a cut hears nothing until the restore ends it.
    if state.borrow().cut {
        let _ = state.wait_for(|s| s.epoch != born).await;
        return;
    }
    let Ok(Ok(mut outbound)) = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect((target.0.as_str(), target.1)),
    )
    .await
    else {
        return;
    };
    let (mut in_rx, mut in_tx) = inbound.split();
    let (mut out_rx, mut out_tx) = outbound.split();
    let (mut up, mut down) = ([0u8; 4096], [0u8; 4096]);
    loop {
        if state.borrow().epoch != born {
            return;
        }
        if state.borrow().cut {
            // Silent both ways; bytes sent meanwhile are lost, as on a dead link.
            let _ = state.changed().await;
            continue;
        }
        tokio::select! {
            r = in_rx.read(&mut up) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if state.borrow().cut {
                        continue;
                    }
                    if out_tx.write_all(up.get(..n).unwrap_or_default()).await.is_err() {
                        return;
                    }
                }
            },
            r = out_rx.read(&mut down) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if state.borrow().cut {
                        continue;
                    }
                    if in_tx.write_all(down.get(..n).unwrap_or_default()).await.is_err() {
                        return;
                    }
                }
            },
            _ = state.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server, the relay in front of it, and a client: bytes pass, stop at the cut
    /// (the connection stays open), and the restore closes the held connection while new
    /// ones pass again.
    #[tokio::test]
    async fn a_cut_silences_without_closing_and_a_restore_ends_the_held_connections() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = NetProxy::start(("127.0.0.1".into(), echo_port))
            .await
            .unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        c.write_all(b"ping").await.unwrap();
        c.read_exact(&mut buf[..4]).await.unwrap();
        assert_eq!(&buf[..4], b"ping");

        proxy.cut();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.write_all(b"lost").await.unwrap();
        let silent = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf)).await;
        assert!(
            silent.is_err(),
            "nothing comes back during the cut, and nothing closes"
        );

        proxy.restore();
        let closed = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        let mut again = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        again.write_all(b"back").await.unwrap();
        again.read_exact(&mut buf[..4]).await.unwrap();
        assert_eq!(&buf[..4], b"back");
    }
}
