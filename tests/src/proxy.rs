//! A TCP forwarder on loopback that a test can switch to swallowing traffic.
//!
//! [`Proxy::start`] listens on an ephemeral port and forwards every
//! connection to `upstream`. [`Proxy::swallow`] models a partition: every
//! connection open at that moment, and every one accepted while it lasts,
//! is read and discarded, never forwarded and never answered (the peer sees
//! timeouts, not a refused or closed connection). [`Proxy::heal`] makes new
//! connections forward again; connections that saw the partition stay dead,
//! as they would after a real one (their requests were lost mid-stream).
//!
//! ```no_run
//! use cachebot_tests::{MemcachedProcess, Proxy};
//!
//! let mc = MemcachedProcess::spawn();
//! let proxy = Proxy::start(&mc.addr());
//! // connect clients to proxy.addr() ...
//! proxy.swallow();
//! proxy.heal();
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How often the forwarding threads look at the proxy's state.
const TICK: Duration = Duration::from_millis(20);

#[derive(Default)]
struct State {
    /// While set, new connections are swallowed.
    swallowing: AtomicBool,
    /// Bumped by every `swallow`: a connection accepted under an older
    /// epoch dies.
    epoch: AtomicU64,
    stop: AtomicBool,
}

/// See the module docs. Dropping it stops every thread it started (within
/// a few tens of milliseconds) and closes its connections.
pub struct Proxy {
    addr: String,
    state: Arc<State>,
}

impl Proxy {
    /// Listen on `127.0.0.1:0` and forward to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let addr = listener.local_addr().expect("proxy: address").to_string();
        let state = Arc::new(State::default());
        let upstream = upstream.to_owned();
        let s = state.clone();
        thread::Builder::new()
            .name("test-proxy-accept".into())
            .spawn(move || accept(listener, &upstream, s))
            .expect("proxy: accept thread");
        Proxy { addr, state }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Stop forwarding: open connections die, new ones are accepted and
    /// swallowed.
    pub fn swallow(&self) {
        self.state.swallowing.store(true, Ordering::SeqCst);
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forward new connections again.
    pub fn heal(&self) {
        self.state.swallowing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn accept(listener: TcpListener, upstream: &str, state: Arc<State>) {
    for client in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let epoch = state.epoch.load(Ordering::SeqCst);
        let server = if state.swallowing.load(Ordering::SeqCst) {
            None
        } else {
            TcpStream::connect(upstream).ok()
        };
        let Some(server) = server else {
            let s = state.clone();
            thread::spawn(move || pump(client, None, &s, epoch));
            continue;
        };
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        let s = state.clone();
        thread::spawn(move || pump(client, Some(server), &s, epoch));
        let s = state.clone();
        thread::spawn(move || pump(s2, Some(c2), &s, epoch));
    }
}

/// Copy `from` to `to` while the connection's epoch is current; read and
/// discard once it is not (or with nowhere to go).
fn pump(mut from: TcpStream, mut to: Option<TcpStream>, state: &State, epoch: u64) {
    let _ = from.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 16 << 10];
    loop {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Looked at after the read: what arrives once the partition
                // started is lost.
                if state.epoch.load(Ordering::SeqCst) != epoch {
                    to = None;
                }
                if let Some(out) = to.as_mut() {
                    if out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    if let Some(out) = to {
        let _ = out.shutdown(Shutdown::Both);
    }
}
