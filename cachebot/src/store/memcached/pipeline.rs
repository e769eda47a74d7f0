//! The memcached store's hot paths: one pipelined batch of meta commands
//! per server, over pooled blocking sockets. Reads (`mg <key> v`) and
//! generation bumps (`ms <key> <len>`) go this way.
//!
//! # Why not the `exp` client, which the store uses for everything else
//!
//! A cached read is one batch of gets, and it is the hot path: on a hit it
//! is all the crate does besides hashing. The `exp` client probes the
//! pooled socket and sets its timeouts on every exchange, and allocates a
//! command, a copy of the key and a response per key. This writes the batch
//! with one `write` and reads the answers in as few `read`s as the kernel
//! allows, parsing them in place; nothing is allocated but the entries'
//! bytes. A bump is the round trip an exact write adds to the database's,
//! so it goes the same way.
//!
//! This is safe because both are idempotent: a pooled socket the server
//! closed meanwhile (a restart) is not probed before use, the batch is
//! sent again once on fresh connections (a bump then writes other fresh
//! values: any new value invalidates). Everything else (entries, creating
//! and repairing generations) stays on the `exp` client, whose care for
//! ambiguous outcomes those need.
//!
//! Keys are routed by the `exp` client's own [`Rendezvous`] over the same
//! server names, so a key is read from the server its writes went to. With
//! several servers the batch is written to every server involved before
//! any answer is read, so their round trips overlap.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use memcache::exp::{Rendezvous, Router};

use super::exchange::{
    io_failure, lock, timed_out, Failure, ANSWER_BUFFER, KEEP_BUFFER, MAX_IDLE_AGE,
};
use super::protocol::{hint, other_answer, parse_answer, push_get, Answer, Bad, Parsed, NAME};
use crate::error::{StoreError, StoreErrorKind};

/// Sockets and routing for the pipelined batches. See the module docs.
pub(super) struct Pipeline {
    names: Box<[String]>,
    pools: Box<[Pool]>,
    router: Rendezvous,
    io_timeout: Duration,
    connect_timeout: Duration,
    max_idle: usize,
    max_connections: Option<usize>,
    /// The largest value accepted: larger ones were not written by this
    /// store, and reading them would take that much memory.
    max_value: usize,
}

/// One server's sockets: the idle ones, and how many are in use (for
/// `max_connections`).
struct Pool {
    addrs: Vec<SocketAddr>,
    idle: Mutex<Vec<(Conn, Instant)>>,
    busy: Mutex<usize>,
    released: Condvar,
    /// Whether `max_connections` is set, so that callers may wait.
    bounded: bool,
}

/// A socket with its request and answer buffers.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    /// Where each key is rendered before its command.
    key: Vec<u8>,
    /// Initialised bytes, filled up to `end`, parsed up to `at`.
    answer: Vec<u8>,
    end: usize,
    at: usize,
}

/// A slot in a pool's `busy` count, freed when dropped.
struct Slot<'a>(&'a Pool);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) -= 1;
        // Nobody waits without a bound, and a notification is a futex
        // syscall whether or not anyone waits: one per read, otherwise.
        if self.0.bounded {
            self.0.released.notify_one();
        }
    }
}

/// A socket taken from a pool. Dropped, it is closed; [`Checkout::put_back`]
/// returns it to the idle stack instead.
struct Checkout<'a> {
    slot: Slot<'a>,
    conn: Conn,
    /// Whether it came from the idle stack (and so may be dead).
    pooled: bool,
}

impl Pipeline {
    pub(super) fn new(
        servers: impl IntoIterator<Item = (String, Vec<SocketAddr>)>,
        io_timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
        max_connections: Option<usize>,
        max_value: usize,
    ) -> Pipeline {
        let (names, pools): (Vec<String>, Vec<Pool>) = servers
            .into_iter()
            .map(|(name, addrs)| {
                let pool = Pool {
                    addrs,
                    idle: Mutex::new(Vec::new()),
                    busy: Mutex::new(0),
                    released: Condvar::new(),
                    bounded: max_connections.is_some(),
                };
                (name, pool)
            })
            .unzip();
        Pipeline {
            names: names.into(),
            pools: pools.into(),
            router: Rendezvous::new(),
            io_timeout,
            connect_timeout,
            max_idle,
            max_connections,
            max_value,
        }
    }

    /// Send `count` commands, command `i` rendered by `command(i, key,
    /// out)` for the key `key(i, out)` renders (the key routes it), and
    /// hand each answer to `found(i, answer)`, in no particular order; the
    /// whole batch may be sent twice (see the module docs), so `found` may
    /// see a command twice. `op` names the batch in errors.
    pub(super) fn run(
        &self,
        op: &'static str,
        count: usize,
        key: impl Fn(usize, &mut Vec<u8>),
        mut command: impl FnMut(usize, &[u8], &mut Vec<u8>),
        mut found: impl FnMut(usize, Answer<'_>),
    ) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        match self.try_run(count, &key, &mut command, &mut found) {
            Err(failure) if failure.retry => {
                tracing::debug!(store = NAME, op, message = %failure.message, "pooled memcached socket was closed; sending the batch again");
                // The server closed a pooled socket (a restart): its other
                // idle sockets are likely dead too, so the retry dials.
                for pool in self.pools.iter() {
                    lock(&pool.idle).clear();
                }
                self.try_run(count, &key, &mut command, &mut found)
            }
            other => other,
        }
        .map_err(|failure| {
            tracing::debug!(store = NAME, op, kind = %failure.kind, message = %failure.message, source = ?failure.source, "memcached operation failed");
            let error = StoreError::new(
                NAME,
                failure.kind,
                format!("{op}: {} ({})", failure.message, hint(failure.kind)),
            );
            match failure.source {
                Some(source) => error.with_source(source),
                None => error,
            }
        })
    }

    /// Get `count` keys, key `i` rendered by `key(i, out)`: `found(i,
    /// value)` gets each value, or `None` for a miss (see [`Pipeline::run`]).
    pub(super) fn get(
        &self,
        count: usize,
        key: impl Fn(usize, &mut Vec<u8>),
        mut found: impl FnMut(usize, Option<&[u8]>),
    ) -> Result<(), StoreError> {
        let mut unexpected = None;
        self.run("fetch", count, key, push_get, |i, answer| match answer {
            Answer::Value(value) => found(i, Some(value)),
            Answer::Miss => found(i, None),
            other => unexpected = Some(other_answer(&other)),
        })?;
        match unexpected {
            Some(message) => Err(StoreError::new(
                NAME,
                StoreErrorKind::Protocol,
                format!("fetch: {message} ({})", hint(StoreErrorKind::Protocol)),
            )),
            None => Ok(()),
        }
    }

    fn try_run(
        &self,
        count: usize,
        key: &impl Fn(usize, &mut Vec<u8>),
        command: &mut impl FnMut(usize, &[u8], &mut Vec<u8>),
        found: &mut impl FnMut(usize, Answer<'_>),
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + self.io_timeout;
        if self.pools.len() == 1 {
            let name = &self.names[0];
            let mut checkout = self.checkout(&self.pools[0], name)?;
            let conn = &mut checkout.conn;
            for i in 0..count {
                conn.key.clear();
                key(i, &mut conn.key);
                command(i, &conn.key, &mut conn.request);
            }
            checkout.send(name, deadline)?;
            for i in 0..count {
                checkout.read_into(i, name, deadline, self.max_value, found)?;
            }
            checkout.put_back(self.max_idle);
            return Ok(());
        }
        // Several servers: route every key, take one socket per server
        // involved (in server order: two batches waiting for each other's
        // last socket under `max_connections` would otherwise stall until
        // the timeout), write each server's batch, then read the answers
        // server by server.
        let mut route = Vec::with_capacity(count);
        let mut rendered = Vec::with_capacity(128);
        for i in 0..count {
            rendered.clear();
            key(i, &mut rendered);
            let s = self
                .router
                .route(&rendered, &self.names)
                .min(self.pools.len() - 1);
            route.push(s);
        }
        let mut checkouts: Vec<Option<Checkout<'_>>> = Vec::with_capacity(self.pools.len());
        for (s, pool) in self.pools.iter().enumerate() {
            let involved = route.contains(&s);
            checkouts.push(if involved {
                Some(self.checkout(pool, &self.names[s])?)
            } else {
                None
            });
        }
        for (i, &s) in route.iter().enumerate() {
            if let Some(checkout) = &mut checkouts[s] {
                let conn = &mut checkout.conn;
                conn.key.clear();
                key(i, &mut conn.key);
                command(i, &conn.key, &mut conn.request);
            }
        }
        for (s, checkout) in checkouts.iter_mut().enumerate() {
            if let Some(checkout) = checkout {
                checkout.send(&self.names[s], deadline)?;
            }
        }
        for (s, checkout) in checkouts.iter_mut().enumerate() {
            if let Some(checkout) = checkout {
                for i in (0..count).filter(|&i| route[i] == s) {
                    checkout.read_into(i, &self.names[s], deadline, self.max_value, found)?;
                }
            }
        }
        for checkout in checkouts.into_iter().flatten() {
            checkout.put_back(self.max_idle);
        }
        Ok(())
    }

    /// A socket to `pool`'s server: an idle one young enough, else a new
    /// one, waiting for a slot while `max_connections` are in use.
    fn checkout<'a>(&self, pool: &'a Pool, name: &str) -> Result<Checkout<'a>, Failure> {
        {
            let mut busy = lock(&pool.busy);
            if let Some(cap) = self.max_connections {
                let deadline = Instant::now() + self.connect_timeout;
                while *busy >= cap {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(Failure {
                            kind: StoreErrorKind::Timeout,
                            message: format!(
                                "{name}: all {cap} connections are busy (raise \
                                 `max_connections`, or lower the load on the store)"
                            ),
                            source: None,
                            retry: false,
                        });
                    }
                    busy = pool
                        .released
                        .wait_timeout(busy, remaining)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            *busy += 1;
        }
        let slot = Slot(pool);
        while let Some((conn, since)) = lock(&pool.idle).pop() {
            if since.elapsed() <= MAX_IDLE_AGE {
                return Ok(Checkout {
                    slot,
                    conn,
                    pooled: true,
                });
            }
        }
        Ok(Checkout {
            conn: self.dial(pool, name)?,
            slot,
            pooled: false,
        })
    }

    /// Connect to the first of the server's addresses that answers, all of
    /// them within the connect timeout.
    fn dial(&self, pool: &Pool, name: &str) -> Result<Conn, Failure> {
        let deadline = Instant::now() + self.connect_timeout;
        let mut last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        for addr in &pool.addrs {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(addr, remaining) {
                Ok(stream) => {
                    let ready = stream
                        .set_nodelay(true)
                        .and_then(|()| stream.set_read_timeout(Some(self.io_timeout)))
                        .and_then(|()| stream.set_write_timeout(Some(self.io_timeout)));
                    return match ready {
                        Ok(()) => Ok(Conn {
                            stream,
                            request: Vec::with_capacity(512),
                            key: Vec::with_capacity(128),
                            answer: vec![0; ANSWER_BUFFER],
                            end: 0,
                            at: 0,
                        }),
                        Err(error) => Err(io_failure(name, "connect", error, false)),
                    };
                }
                Err(error) => last = error,
            }
        }
        Err(io_failure(name, "connect", last, false))
    }
}

impl Checkout<'_> {
    /// Write the batch; the answers are read with [`Checkout::read_into`].
    fn send(&mut self, name: &str, deadline: Instant) -> Result<(), Failure> {
        let conn = &mut self.conn;
        conn.end = 0;
        conn.at = 0;
        if Instant::now() >= deadline {
            return Err(timed_out(name));
        }
        let sent = conn.stream.write_all(&conn.request);
        conn.request.clear();
        sent.map_err(|error| io_failure(name, "write", error, self.pooled))
    }

    /// Read key `i`'s answer and hand it to `found`.
    fn read_into(
        &mut self,
        i: usize,
        name: &str,
        deadline: Instant,
        max_value: usize,
        found: &mut impl FnMut(usize, Answer<'_>),
    ) -> Result<(), Failure> {
        let answer = self
            .conn
            .read_answer(name, deadline, self.pooled, max_value)?;
        found(i, answer);
        Ok(())
    }

    fn put_back(self, max_idle: usize) {
        let Checkout { slot, mut conn, .. } = self;
        // A socket with unread bytes is out of step with its server.
        if conn.at != conn.end {
            return;
        }
        if conn.answer.len() > KEEP_BUFFER {
            conn.answer = vec![0; ANSWER_BUFFER];
        }
        if conn.request.capacity() > KEEP_BUFFER {
            conn.request = Vec::with_capacity(512);
        }
        let mut idle = lock(&slot.0.idle);
        if idle.len() < max_idle {
            idle.push((conn, Instant::now()));
        }
    }
}

impl Conn {
    /// Parse the next answer (`VA <len> ..\r\n<data>\r\n`, `EN`, `HD`,
    /// `NS`), reading from the socket until it is complete. `pooled`: the
    /// socket came from the idle stack, so finding it closed before any
    /// answer arrived is worth a retry.
    fn read_answer(
        &mut self,
        name: &str,
        deadline: Instant,
        pooled: bool,
        max_value: usize,
    ) -> Result<Answer<'_>, Failure> {
        let (start, end) = loop {
            match parse_answer(&self.answer[self.at..self.end], max_value) {
                Ok(Parsed::Need(want)) => self.fill(self.at + want, name, deadline, pooled)?,
                Ok(Parsed::Status(status, used)) => {
                    self.at += used;
                    return Ok(status);
                }
                Ok(Parsed::Value(start, end)) => break (self.at + start, self.at + end),
                Err(bad) => {
                    let (kind, message) = match bad {
                        Bad::Rejected(message) => (StoreErrorKind::Rejected, message),
                        Bad::Protocol(message) => (StoreErrorKind::Protocol, message),
                    };
                    return Err(Failure {
                        kind,
                        message: format!("{name}: {message}"),
                        source: None,
                        retry: false,
                    });
                }
            }
        };
        self.at = end + 2;
        Ok(Answer::Value(&self.answer[start..end]))
    }

    /// Read from the socket until `answer` holds at least `want` bytes.
    /// Only a pooled socket found closed before any byte of the batch's
    /// answers (a server that restarted) is worth sending the batch again.
    fn fill(
        &mut self,
        want: usize,
        name: &str,
        deadline: Instant,
        pooled: bool,
    ) -> Result<(), Failure> {
        if self.answer.len() < want {
            let grown = want.max(2 * self.answer.len());
            self.answer.resize(grown, 0);
        }
        while self.end < want {
            if Instant::now() >= deadline {
                return Err(timed_out(name));
            }
            match self.stream.read(&mut self.answer[self.end..]) {
                Ok(0) => {
                    return Err(Failure {
                        kind: StoreErrorKind::Unavailable,
                        message: format!("{name}: connection closed by the server"),
                        source: None,
                        retry: pooled && self.end == 0,
                    })
                }
                Ok(got) => self.end += got,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_failure(name, "read", error, pooled && self.end == 0)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memcached::protocol::push_set;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection fake server: answers each request line with the
    /// next of `answers` (raw bytes), then holds the socket
    /// open until the client closes it.
    fn fake(answers: Vec<&'static [u8]>) -> (String, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = io::BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut lines = Vec::new();
            for answer in answers {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                lines.push(line.trim_end().to_owned());
                // Byte by byte: the parser must cope with any split.
                for b in answer {
                    writer.write_all(&[*b]).unwrap();
                }
            }
            // Hold the socket open until the client closes it.
            let _ = reader.read_line(&mut String::new());
            lines
        });
        (addr, handle)
    }

    fn reader(addr: &str, timeout: Duration) -> Pipeline {
        let addrs = vec![addr.parse().unwrap()];
        Pipeline::new([(addr.to_owned(), addrs)], timeout, timeout, 4, None, 1000)
    }

    fn get(reader: &Pipeline, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = vec![None; keys.len()];
        reader.get(
            keys.len(),
            |i, buf| buf.extend_from_slice(keys[i].as_bytes()),
            |i, v| out[i] = v.map(<[u8]>::to_vec),
        )?;
        Ok(out)
    }

    #[test]
    fn parses_values_misses_and_flags_split_anywhere() {
        let (addr, server) = fake(vec![
            b"VA 3\r\nabc\r\n",
            b"EN\r\n",
            b"VA 4 f0 t-1\r\na\r\nb\r\n",
            b"VA 0\r\n\r\n",
        ]);
        let r = reader(&addr, Duration::from_secs(5));
        let got = get(&r, &["k1", "k2", "k3", "k4"]).unwrap();
        assert_eq!(
            got,
            vec![
                Some(b"abc".to_vec()),
                None,
                Some(b"a\r\nb".to_vec()),
                Some(Vec::new())
            ]
        );
        drop(r);
        assert_eq!(
            server.join().unwrap(),
            ["mg k1 v", "mg k2 v", "mg k3 v", "mg k4 v"]
        );
    }

    #[test]
    fn server_errors_and_garbage_are_protocol_errors() {
        // (answer, kind, whether the socket is still in step afterwards)
        for (answer, kind, reusable) in [
            (
                &b"SERVER_ERROR out of memory\r\n"[..],
                StoreErrorKind::Protocol,
                false,
            ),
            (
                b"CLIENT_ERROR bad command line format\r\n",
                StoreErrorKind::Rejected,
                false,
            ),
            (b"VA x\r\n", StoreErrorKind::Protocol, false),
            // Larger than the store ever writes: not read into memory.
            (b"VA 1001\r\n", StoreErrorKind::Protocol, false),
            (b"VA 2\r\nabcd\r\n", StoreErrorKind::Protocol, false),
            // A get expects a value or EN; the answer itself was whole.
            (b"HD\r\n", StoreErrorKind::Protocol, true),
        ] {
            let (addr, _server) = fake(vec![answer]);
            let r = reader(&addr, Duration::from_secs(5));
            let error = get(&r, &["k"]).unwrap_err();
            assert_eq!(error.kind(), kind, "{answer:?}: {error:?}");
            assert_eq!(error.store(), "memcached");
            // A socket out of step is never reused.
            assert_eq!(lock(&r.pools[0].idle).len(), usize::from(reusable));
        }
    }

    #[test]
    fn sets_are_pipelined_and_answered_in_order() {
        let (addr, server) = fake(vec![b"HD\r\n", b"NS\r\n"]);
        let r = reader(&addr, Duration::from_secs(5));
        let mut answers = vec![None, None];
        r.run(
            "bump",
            2,
            |i, out| out.extend_from_slice(format!("g{i}").as_bytes()),
            |i, key, out| push_set(key, format!("{}", 10 + i).as_bytes(), out),
            |i, answer| {
                answers[i] = Some(match answer {
                    Answer::Stored => "stored",
                    Answer::NotStored => "not stored",
                    _ => "other",
                })
            },
        )
        .unwrap();
        assert_eq!(answers, [Some("stored"), Some("not stored")]);
        drop(r);
        // The fake reads lines: each set is its command line and its value.
        assert_eq!(server.join().unwrap(), ["ms g0 2", "10"]);
    }

    #[test]
    fn max_connections_bounds_the_sockets_in_use() {
        let (addr, _server) = fake(vec![b"EN\r\n"]);
        let addrs = vec![addr.parse().unwrap()];
        let timeout = Duration::from_millis(100);
        let r = Pipeline::new([(addr.clone(), addrs)], timeout, timeout, 4, Some(1), 1000);
        let held = r.checkout(&r.pools[0], &addr).ok().unwrap();
        let error = get(&r, &["k"]).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error:?}");
        assert!(error.message().contains("busy"), "{error:?}");
        // Released, the slot serves the next read (on the same socket).
        held.put_back(4);
        assert_eq!(get(&r, &["k"]).unwrap(), vec![None]);
    }

    #[test]
    fn several_servers_get_their_own_keys_and_answers_come_back_in_place() {
        let keys: Vec<String> = (0..12).map(|i| format!("key{i}")).collect();
        // Route with the exp client's router on placeholder names first, to
        // know how many answers each fake must give.
        let names = ["a".to_owned(), "b".to_owned()];
        let routes: Vec<usize> = keys
            .iter()
            .map(|k| Rendezvous::new().route(k.as_bytes(), &names))
            .collect();
        assert!(routes.contains(&0) && routes.contains(&1), "{routes:?}");
        let count = |s| routes.iter().filter(|&&r| r == s).count();
        let (a, server_a) = fake(vec![&b"VA 1\r\nA\r\n"[..]; count(0)]);
        let (b, server_b) = fake(vec![&b"VA 1\r\nB\r\n"[..]; count(1)]);
        let timeout = Duration::from_secs(5);
        // The fakes' real addresses, under the names the routes were computed with.
        let r = Pipeline::new(
            [
                ("a".to_owned(), vec![a.parse().unwrap()]),
                ("b".to_owned(), vec![b.parse().unwrap()]),
            ],
            timeout,
            timeout,
            4,
            Some(1),
            1000,
        );
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = get(&r, &key_refs).unwrap();
        for (i, value) in got.iter().enumerate() {
            let want: &[u8] = if routes[i] == 0 { b"A" } else { b"B" };
            assert_eq!(value.as_deref(), Some(want), "key {i}");
        }
        drop(r);
        let sent_a = server_a.join().unwrap();
        let sent_b = server_b.join().unwrap();
        let expect = |s| -> Vec<String> {
            keys.iter()
                .zip(&routes)
                .filter(|(_, &r)| r == s)
                .map(|(k, _)| format!("mg {k} v"))
                .collect()
        };
        assert_eq!(sent_a, expect(0));
        assert_eq!(sent_b, expect(1));
    }

    #[test]
    fn a_silent_server_times_out() {
        let (addr, _server) = fake(vec![b""]);
        let r = reader(&addr, Duration::from_millis(100));
        let started = Instant::now();
        let error = get(&r, &["k"]).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_closed_pooled_socket_is_retried_once_on_a_new_one() {
        // The first connection answers once and is closed; the second
        // answers the retried request.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            for answer in [&b"VA 1\r\na\r\n"[..], b"VA 1\r\nb\r\n"] {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                (&stream).write_all(answer).unwrap();
                // Closing with the next request unread makes a reset likely;
                // either a reset or EOF must lead to the retry.
            }
        });
        let r = reader(&addr, Duration::from_secs(5));
        assert_eq!(get(&r, &["k"]).unwrap(), vec![Some(b"a".to_vec())]);
        assert_eq!(lock(&r.pools[0].idle).len(), 1);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(get(&r, &["k"]).unwrap(), vec![Some(b"b".to_vec())]);
        server.join().unwrap();
    }

    #[test]
    fn a_refused_connection_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let r = reader(&addr, Duration::from_secs(1));
        let error = get(&r, &["k"]).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error:?}");
    }
}
