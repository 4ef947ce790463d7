//! Modbus TCP servers for simulated devices: one listener per port, one or many devices on
//! it told apart by unit id, one task per port plus one per open connection.
//!
//! Built on `tokio_modbus::server::tcp::Server` with a [`Service`] per connection. A
//! `drop` fault closes the connection: the service marks the connection's stream, whose
//! next read then reports end of stream to the server loop, which closes the socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};
use tracing::{debug, warn};

use super::device::{Answer, SimDevice};
use crate::clock::ScenarioClock;
use crate::scenario::{DeviceKind, Window};

/// Unit id many Modbus TCP devices accept as "this device" (the unit id is for gateways).
pub const ANY_UNIT: u8 = 0xFF;

/// The devices served on one port, by unit id.
#[derive(Debug)]
struct Units {
    devices: Vec<(u8, Arc<SimDevice>)>,
}

impl Units {
    fn get(&self, unit: u8) -> Option<&Arc<SimDevice>> {
        match self.devices.as_slice() {
            // A port with one device also answers to 255, as most TCP devices do.
            [(u, d)] if *u == unit || unit == ANY_UNIT => Some(d),
            many => many.iter().find(|(u, _)| *u == unit).map(|(_, d)| d),
        }
    }
}

/// A TCP stream that reports end of stream once its connection is to be dropped.
#[derive(Debug)]
struct Link {
    stream: TcpStream,
    closing: Arc<AtomicBool>,
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The Modbus service of one connection.
#[derive(Debug)]
struct Connection {
    units: Arc<Units>,
    clock: ScenarioClock,
    closing: Arc<AtomicBool>,
    /// When this port's bus to the sensor nodes is cut (they do not answer on it).
    bus_cuts: Arc<Vec<Window>>,
}

type Reply = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl Service for Connection {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Reply;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Some(device) = self.units.get(req.slave) else {
            // 0x0B: gateway target device failed to respond, as a Modbus gateway answers for
            // a unit it does not have.
            return Box::pin(async { Err(ExceptionCode::GatewayTargetDevice) });
        };
        let now = self.clock.now();
        if device.kind() == Some(DeviceKind::Node) && self.bus_cuts.iter().any(|w| w.contains(now))
        {
            // The bus is cut: the node never hears the request.
            return Box::pin(async { Ok(None) });
        }
        let (answer, delay) = device.answer(now, &req.request);
        let closing = Arc::clone(&self.closing);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match answer {
                Answer::Respond(r) => Ok(Some(r)),
                Answer::Exception(code) => Err(code),
                Answer::Silent => Ok(None),
                Answer::Drop => {
                    closing.store(true, Ordering::Release);
                    Ok(None)
                }
            }
        })
    }
}

/// A listening Modbus TCP server; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct ModbusServer {
    addr: SocketAddr,
    units: Vec<u8>,
    task: JoinHandle<()>,
}

impl ModbusServer {
    /// Listens on `bind` (port 0: a free port) and serves `devices`, each under its unit id.
    pub async fn start(
        bind: SocketAddr,
        devices: Vec<(u8, Arc<SimDevice>)>,
        clock: ScenarioClock,
    ) -> io::Result<ModbusServer> {
        ModbusServer::start_on_bus(bind, devices, clock, Vec::new()).await
    }

    /// [`ModbusServer::start`] as one gateway's bus to the sensor nodes: during `bus_cuts`
    /// the nodes among `devices` do not answer on this port (a gateway's RS-485 bus cut,
    /// as the stand-in plays it; other devices answer).
    pub async fn start_on_bus(
        bind: SocketAddr,
        devices: Vec<(u8, Arc<SimDevice>)>,
        clock: ScenarioClock,
        bus_cuts: Vec<Window>,
    ) -> io::Result<ModbusServer> {
        let bus_cuts = Arc::new(bus_cuts);
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let units_list = devices.iter().map(|(u, _)| *u).collect();
        let units = Arc::new(Units { devices });
        let server = Server::new(listener);
        let task = tokio::spawn(async move {
            let on_connected = |stream: TcpStream, peer: SocketAddr| {
                debug!(%addr, %peer, "connection");
                let closing = Arc::new(AtomicBool::new(false));
                let service = Connection {
                    units: Arc::clone(&units),
                    clock: clock.clone(),
                    closing: Arc::clone(&closing),
                    bus_cuts: Arc::clone(&bus_cuts),
                };
                async move { Ok(Some((service, Link { stream, closing }))) }
            };
            let on_error = move |e: io::Error| debug!(%addr, error = %e, "connection ended");
            if let Err(e) = server.serve(&on_connected, on_error).await {
                warn!(%addr, error = %e, "Modbus server stopped accepting connections");
            }
        });
        Ok(ModbusServer {
            addr,
            units: units_list,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The unit ids it serves.
    pub fn units(&self) -> &[u8] {
        &self.units
    }
}

impl Drop for ModbusServer {
    fn drop(&mut self) {
        // Dropping the serve future cancels the connection tasks it spawned.
        self.task.abort();
    }
}
