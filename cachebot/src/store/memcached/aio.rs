//! The memcached store without blocking (feature `async`): the four
//! [`AsyncStore`] operations over tokio sockets.
//!
//! # Why
//!
//! The blocking store parks the calling thread for a whole round trip, up
//! to the I/O timeout when a server hangs: on an async runtime that thread
//! runs other tasks, which would stall with it. Here every wait (dialing,
//! writing, reading, waiting for a connection slot) is a tokio future, so a
//! slow or paused server delays only the operations that talk to it.
//!
//! # Same wire, same keys
//!
//! Every operation is the blocking store's, byte for byte on the wire: one
//! pipelined batch of meta commands per server, written to every server
//! involved before any answer is read (one round trip per server), keys
//! rendered by the same `write_key` and routed by the same [`Rendezvous`]
//! over the same server names. The commands and the answer parser are the
//! ones of `protocol` (the parser that never reads past its input nor
//! allocates by a length it is told: a hostile server costs an error, not
//! memory). So a value written by either half is read by the other, from
//! the same server. Generations are created with the same `ma ... D0 N1
//! J<fresh> T0` read-or-create and repaired the same way (garbage read
//! back and overwritten, vanished ones created again).
//!
//! The async half has its own socket pool, with the blocking store's
//! limits (`max_idle`, `max_connections` per server, the idle-age limit).
//! An idle socket stays registered with the runtime that used it last, and
//! is used as it is by an operation on that same runtime (no system call
//! to take or put it back: the hot path). An operation on another runtime
//! moves it to its own first: a socket left registered with a runtime that
//! stopped, or that nobody drives any more (another test's `block_on`),
//! would fail or hang an operation run elsewhere.
//!
//! The futures must run within a tokio runtime with I/O and time enabled
//! (the ones diesel-async needs): outside any runtime an operation fails
//! with [`StoreErrorKind::Unavailable`] rather than dialing.
//!
//! # Cancellation
//!
//! A future may be dropped at any await point (a `select!`, a timeout, a
//! task aborted). A socket then holds a request the server has not
//! answered, or answers nobody read: reused, it would hand those answers to
//! the next batch, as if they were its own. So a socket is taken as a
//! [`Checkout`] guard, whose `Drop` closes it; only
//! [`Checkout::put_back`], called once every answer of the batch has been
//! read, returns it to the pool. A future dropped mid-exchange never
//! reaches that call: its sockets are closed, by construction. memcached
//! stores a value only once its last byte and the line end after it
//! arrived, so a set cut short by a closed socket stores nothing: no
//! half-written value can be read.
//!
//! # Retries
//!
//! Every batch here can be sent twice without harm (reads; sets of the
//! same bytes; read-or-create; fresh random values), so a batch whose
//! pooled socket turns out closed before any answer arrived (a server that
//! restarted meanwhile) is sent once more, on fresh sockets, as the
//! blocking store's pipeline does.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memcache::exp::{Rendezvous, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::{timeout, timeout_at, Instant as Deadline};

use super::exchange::{
    io_failure, lock, timed_out, Failure, ANSWER_BUFFER, KEEP_BUFFER, MAX_IDLE_AGE,
};
use super::protocol::{
    hint, line_len, parse_answer, push_decimal, push_get, push_set, push_set_ttl, push_vivify,
    Answer, Bad, Parsed, NAME,
};
use super::{entry_ttl_secs, parse_generation, write_key};
use crate::error::{StoreError, StoreErrorKind};
use crate::store::{fresh_generation, AsyncStore, FetchedMany, Generation, Key, StoreFuture};

/// The async half of a `MemcachedStore`: its servers, key prefix, timeouts
/// and limits, and its own sockets. See the module docs.
pub(super) struct AsyncMemcached {
    names: Box<[String]>,
    pools: Box<[Pool]>,
    router: Rendezvous,
    prefix: Arc<str>,
    io_timeout: Duration,
    connect_timeout: Duration,
    max_idle: usize,
    /// The largest value written, and read: larger answers are refused
    /// before they are read.
    max_value: usize,
}

/// An idle socket and the runtime it is registered with.
struct Idle {
    stream: TcpStream,
    runtime: tokio::runtime::Id,
}

/// One server's sockets.
struct Pool {
    addrs: Vec<SocketAddr>,
    /// Idle sockets, with the runtime each is registered with, their
    /// buffers and when they were put back.
    idle: Mutex<Vec<(Idle, Buffers, Instant)>>,
    /// One permit per socket in use, when `max_connections` is set.
    permits: Option<Semaphore>,
    /// `max_connections`, for the error message.
    cap: usize,
}

/// A socket's request and answer buffers, kept with it.
struct Buffers {
    request: Vec<u8>,
    answer: Vec<u8>,
}

/// A socket in use, registered with the current runtime.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    /// Initialised bytes, filled up to `end`, parsed up to `at`.
    answer: Vec<u8>,
    end: usize,
    at: usize,
}

/// A socket taken from a pool for one batch. Dropped, it is closed: only
/// [`Checkout::put_back`], once the whole exchange is done, pools it (see
/// the module docs, "Cancellation").
struct Checkout<'a> {
    pool: &'a Pool,
    /// `None` once put back.
    conn: Option<Conn>,
    /// Held while the socket is in use (`max_connections`).
    _permit: Option<SemaphorePermit<'a>>,
    /// Whether it came from the idle stack (and so may be dead).
    pooled: bool,
}

/// One answer as a batch's caller sees it.
enum Reply<'a> {
    /// A status or a value.
    Answer(Answer<'a>),
    /// `CLIENT_ERROR`: the server refused this command (a `ma` on a value
    /// that is not a number); the answers after it are still read.
    Rejected(String),
}

/// What the read-back of a doubtful generation found.
enum ReadBack {
    Miss,
    Value(Option<Generation>),
    Other(String),
}

/// A repair write: create a vanished generation, or overwrite garbage.
#[derive(Clone, Copy)]
enum Repair {
    Vivify(Generation),
    Overwrite(Generation),
}

impl AsyncMemcached {
    /// The async half over these servers (name as configured, addresses).
    /// Dials nothing and needs no runtime: sockets are made when a future
    /// runs.
    pub(super) fn new(
        servers: impl IntoIterator<Item = (String, Vec<SocketAddr>)>,
        prefix: Arc<str>,
        io_timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
        max_connections: Option<usize>,
        max_value: usize,
    ) -> AsyncMemcached {
        let (names, pools): (Vec<String>, Vec<Pool>) = servers
            .into_iter()
            .map(|(name, addrs)| {
                let pool = Pool {
                    addrs,
                    idle: Mutex::new(Vec::new()),
                    permits: max_connections
                        .map(|cap| Semaphore::new(cap.min(Semaphore::MAX_PERMITS))),
                    cap: max_connections.unwrap_or(0),
                };
                (name, pool)
            })
            .unzip();
        AsyncMemcached {
            names: names.into(),
            pools: pools.into(),
            router: Rendezvous::new(),
            prefix,
            io_timeout,
            connect_timeout,
            max_idle,
            max_value,
        }
    }

    /// [`AsyncStore::fetch_many`]: one batch of `mg <key> v`.
    async fn fetch_many_now(
        &self,
        entries: &[Key],
        generations: &[Key],
    ) -> Result<FetchedMany, StoreError> {
        const OP: &str = "fetch";
        let mut found = vec![None; entries.len()];
        let mut values = vec![None; generations.len()];
        let split = entries.len();
        let mut odd = None;
        self.run(
            OP,
            split + generations.len(),
            |i, out| match entries.get(i) {
                Some(&key) => write_key(&self.prefix, key, out),
                None => write_key(&self.prefix, generations[i - split], out),
            },
            push_get,
            |i, reply| {
                let value = match reply {
                    Reply::Answer(Answer::Value(value)) => Some(value),
                    Reply::Answer(Answer::Miss) => None,
                    other => {
                        odd = Some(unexpected_reply(OP, other));
                        return;
                    }
                };
                match found.get_mut(i) {
                    Some(slot) => *slot = value.map(<[u8]>::to_vec),
                    None => values[i - split] = value.and_then(parse_generation),
                }
            },
        )
        .await?;
        if let Some(error) = odd {
            return Err(error);
        }
        Ok(FetchedMany {
            entries: found,
            generations: values,
        })
    }

    /// [`AsyncStore::ensure_generations`]: one batch of read-or-create
    /// `ma`, then the repair of whatever it could not read.
    async fn ensure_generations_now(&self, keys: &[Key]) -> Result<Vec<Generation>, StoreError> {
        const OP: &str = "ensure_generations";
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = vec![0; keys.len()];
        let mut doubtful = vec![false; keys.len()];
        let mut odd = None;
        self.run(
            OP,
            keys.len(),
            |i, out| write_key(&self.prefix, keys[i], out),
            |_, key, out| push_vivify(key, fresh_generation(), out),
            |i, reply| match reply {
                Reply::Answer(Answer::Value(value)) => match parse_generation(value) {
                    Some(value) => {
                        values[i] = value;
                        doubtful[i] = false;
                    }
                    // A stored "0": garbage, overwrite it.
                    None => doubtful[i] = true,
                },
                // A value that is not a number: the server refuses `ma`.
                Reply::Rejected(_) => doubtful[i] = true,
                Reply::Answer(other) => odd = Some((i, other_status(&other))),
            },
        )
        .await?;
        if let Some((i, status)) = odd {
            return Err(unexpected(
                OP,
                format!("generation {} not created: {status}", self.render(keys[i])),
            ));
        }
        let doubtful: Vec<usize> = (0..keys.len()).filter(|&i| doubtful[i]).collect();
        if !doubtful.is_empty() {
            self.repair_generations(keys, &doubtful, &mut values)
                .await?;
        }
        Ok(values)
    }

    /// The blocking store's repair, as batches of this half: read the
    /// doubtful generations back in one batch, keep the valid ones,
    /// overwrite garbage with a fresh value and create the vanished ones
    /// again in one more batch.
    async fn repair_generations(
        &self,
        keys: &[Key],
        doubtful: &[usize],
        values: &mut [Generation],
    ) -> Result<(), StoreError> {
        const OP: &str = "ensure_generations";
        // A key listed twice is repaired once, so both slots agree.
        let mut first_of: HashMap<Key, usize> = HashMap::new();
        let mut unique = Vec::with_capacity(doubtful.len());
        let mut duplicates = Vec::new();
        for &index in doubtful {
            match first_of.entry(keys[index]) {
                Entry::Occupied(first) => duplicates.push((index, *first.get())),
                Entry::Vacant(slot) => {
                    slot.insert(index);
                    unique.push(index);
                }
            }
        }
        let mut reads: Vec<Option<ReadBack>> = (0..unique.len()).map(|_| None).collect();
        self.run(
            OP,
            unique.len(),
            |j, out| write_key(&self.prefix, keys[unique[j]], out),
            push_get,
            |j, reply| {
                reads[j] = Some(match reply {
                    Reply::Answer(Answer::Miss) => ReadBack::Miss,
                    Reply::Answer(Answer::Value(value)) => ReadBack::Value(parse_generation(value)),
                    Reply::Answer(other) => ReadBack::Other(other_status(&other)),
                    Reply::Rejected(message) => ReadBack::Other(message),
                });
            },
        )
        .await?;
        let mut writes: Vec<(usize, Repair)> = Vec::new();
        for (&index, read) in unique.iter().zip(reads) {
            match read {
                Some(ReadBack::Value(Some(current))) => values[index] = current,
                Some(ReadBack::Miss) => writes.push((index, Repair::Vivify(fresh_generation()))),
                Some(ReadBack::Value(None)) => {
                    tracing::warn!(
                        store = NAME,
                        key = %self.render(keys[index]),
                        "overwriting an unreadable generation with a fresh value"
                    );
                    writes.push((index, Repair::Overwrite(fresh_generation())));
                }
                Some(ReadBack::Other(what)) => {
                    return Err(unexpected(
                        OP,
                        format!("generation {} unreadable: {what}", self.render(keys[index])),
                    ))
                }
                None => {
                    return Err(unexpected(
                        OP,
                        format!("no answer for generation {}", self.render(keys[index])),
                    ))
                }
            }
        }
        if !writes.is_empty() {
            self.write_repairs(keys, &writes, values).await?;
        }
        for (duplicate, first) in duplicates {
            values[duplicate] = values[first];
        }
        Ok(())
    }

    /// The writes planned by [`repair_generations`](Self::repair_generations),
    /// in one batch.
    async fn write_repairs(
        &self,
        keys: &[Key],
        writes: &[(usize, Repair)],
        values: &mut [Generation],
    ) -> Result<(), StoreError> {
        const OP: &str = "ensure_generations";
        let mut results: Vec<Result<Generation, String>> =
            vec![Err("no answer".to_owned()); writes.len()];
        let mut decimal = Vec::with_capacity(20);
        self.run(
            OP,
            writes.len(),
            |j, out| write_key(&self.prefix, keys[writes[j].0], out),
            |j, key, out| match writes[j].1 {
                Repair::Vivify(fresh) => push_vivify(key, fresh, out),
                Repair::Overwrite(fresh) => {
                    decimal.clear();
                    push_decimal(fresh, &mut decimal);
                    push_set(key, &decimal, out);
                }
            },
            |j, reply| {
                results[j] = match (writes[j].1, reply) {
                    (Repair::Overwrite(fresh), Reply::Answer(Answer::Stored)) => Ok(fresh),
                    (Repair::Vivify(_), Reply::Answer(Answer::Value(value))) => {
                        parse_generation(value).ok_or_else(|| {
                            format!("not created: {:?}", String::from_utf8_lossy(value))
                        })
                    }
                    (Repair::Vivify(_), Reply::Answer(other)) => {
                        Err(format!("not created: {}", other_status(&other)))
                    }
                    (Repair::Overwrite(_), Reply::Answer(other)) => {
                        Err(format!("not repaired: {}", other_status(&other)))
                    }
                    (_, Reply::Rejected(message)) => Err(format!("not repaired: {message}")),
                };
            },
        )
        .await?;
        for ((index, _), result) in writes.iter().zip(results) {
            match result {
                Ok(value) => values[*index] = value,
                Err(what) => {
                    return Err(unexpected(
                        OP,
                        format!("generation {} {what}", self.render(keys[*index])),
                    ))
                }
            }
        }
        Ok(())
    }

    /// [`AsyncStore::put_entry`]: one `ms` with the entry's TTL.
    async fn put_entry_now(&self, key: Key, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        const OP: &str = "put_entry";
        if value.len() > self.max_value {
            return Err(StoreError::new(
                NAME,
                StoreErrorKind::Rejected,
                format!(
                    "{OP}: value of {} bytes exceeds the limit of {} bytes",
                    value.len(),
                    self.max_value
                ),
            ));
        }
        let ttl = entry_ttl_secs(ttl);
        let mut outcome = Err("no answer".to_owned());
        self.run(
            OP,
            1,
            |_, out| write_key(&self.prefix, key, out),
            |_, key, out| push_set_ttl(key, value, ttl, out),
            |_, reply| {
                outcome = match reply {
                    Reply::Answer(Answer::Stored) => Ok(None),
                    Reply::Answer(other) => Err(other_status(&other)),
                    Reply::Rejected(message) => Ok(Some(message)),
                }
            },
        )
        .await?;
        match outcome {
            Ok(None) => Ok(()),
            // The server refused the item (`CLIENT_ERROR`).
            Ok(Some(refusal)) => Err(StoreError::new(
                NAME,
                StoreErrorKind::Rejected,
                format!("{OP}: {refusal} ({})", hint(StoreErrorKind::Rejected)),
            )),
            Err(status) => Err(unexpected(OP, format!("item not stored: {status}"))),
        }
    }

    /// [`AsyncStore::bump`]: one batch of `ms` with fresh values.
    async fn bump_now(&self, keys: &[Key]) -> Result<(), StoreError> {
        const OP: &str = "bump";
        if keys.is_empty() {
            return Ok(());
        }
        // No TTL: the protocol default never expires.
        let mut stored = vec![false; keys.len()];
        let mut rejected = None;
        let mut value = Vec::with_capacity(20);
        self.run(
            OP,
            keys.len(),
            |i, out| write_key(&self.prefix, keys[i], out),
            |_, key, out| {
                value.clear();
                push_decimal(fresh_generation(), &mut value);
                push_set(key, &value, out);
            },
            |i, reply| {
                stored[i] = matches!(reply, Reply::Answer(Answer::Stored));
                if let Reply::Rejected(message) = reply {
                    rejected = Some(message);
                }
            },
        )
        .await
        .inspect_err(|error| {
            tracing::warn!(store = NAME, op = OP, kind = %error.kind(), message = %error.message(), "memcached bump failed");
        })?;
        let not_stored = stored.iter().filter(|&&stored| !stored).count();
        if not_stored > 0 {
            let error = match rejected {
                Some(message) => StoreError::new(
                    NAME,
                    StoreErrorKind::Rejected,
                    format!("{OP}: {message} ({})", hint(StoreErrorKind::Rejected)),
                ),
                None => unexpected(OP, format!("{not_stored} generations not stored")),
            };
            tracing::warn!(store = NAME, op = OP, message = %error.message(), "memcached bump failed");
            return Err(error);
        }
        Ok(())
    }

    /// A key's rendering, for messages.
    fn render(&self, key: Key) -> String {
        let mut out = Vec::with_capacity(self.prefix.len() + 33);
        write_key(&self.prefix, key, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Send `count` commands, command `i` rendered by `command(i, key, out)`
    /// for the key `key(i, out)` renders (the key routes it), and hand each
    /// answer to `found(i, reply)`. The whole batch may be sent twice (see
    /// the module docs), so `found` may see a command twice. `op` names the
    /// batch in errors.
    async fn run(
        &self,
        op: &'static str,
        count: usize,
        key: impl Fn(usize, &mut Vec<u8>),
        mut command: impl FnMut(usize, &[u8], &mut Vec<u8>),
        mut found: impl FnMut(usize, Reply<'_>),
    ) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::new(
                NAME,
                StoreErrorKind::Unavailable,
                format!("{op}: the async memcached store runs only within a tokio runtime"),
            ));
        }
        let result = match self
            .try_run(count, &key, &mut command, &mut found, false)
            .await
        {
            Err(failure) if failure.retry => {
                tracing::debug!(store = NAME, op, message = %failure.message, "pooled memcached socket was closed; sending the batch again");
                self.try_run(count, &key, &mut command, &mut found, true)
                    .await
            }
            other => other,
        };
        result.map_err(|failure| {
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

    /// One attempt at a batch: route, take one socket per server involved
    /// (`fresh`: newly dialed ones, for the retry: the other idle sockets
    /// of a server that restarted are dead too), write every server's
    /// commands, then read every answer, and only then put the sockets
    /// back.
    async fn try_run(
        &self,
        count: usize,
        key: &impl Fn(usize, &mut Vec<u8>),
        command: &mut impl FnMut(usize, &[u8], &mut Vec<u8>),
        found: &mut impl FnMut(usize, Reply<'_>),
        fresh: bool,
    ) -> Result<(), Failure> {
        let deadline = Deadline::now() + self.io_timeout;
        let mut rendered = Vec::with_capacity(128);
        // With one server, every key goes to it: no routing.
        let route: Vec<usize> = if self.pools.len() == 1 {
            Vec::new()
        } else {
            (0..count)
                .map(|i| {
                    rendered.clear();
                    key(i, &mut rendered);
                    self.router
                        .route(&rendered, &self.names)
                        .min(self.pools.len() - 1)
                })
                .collect()
        };
        let server_of = |i: usize| route.get(i).copied().unwrap_or(0);
        // In server order: two batches waiting for each other's last
        // socket under `max_connections` would otherwise stall.
        let mut checkouts: Vec<Option<Checkout<'_>>> = Vec::with_capacity(self.pools.len());
        for (s, pool) in self.pools.iter().enumerate() {
            let involved = route.is_empty() || route.contains(&s);
            checkouts.push(if involved {
                Some(self.checkout(pool, &self.names[s], fresh).await?)
            } else {
                None
            });
        }
        for i in 0..count {
            if let Some(conn) = checkouts[server_of(i)].as_mut().and_then(Checkout::conn) {
                rendered.clear();
                key(i, &mut rendered);
                command(i, &rendered, &mut conn.request);
            }
        }
        for (s, checkout) in checkouts.iter_mut().enumerate() {
            if let Some(checkout) = checkout {
                checkout.send(&self.names[s], deadline).await?;
            }
        }
        for (s, checkout) in checkouts.iter_mut().enumerate() {
            if let Some(checkout) = checkout {
                for i in (0..count).filter(|&i| server_of(i) == s) {
                    let answer = checkout
                        .read_answer(&self.names[s], deadline, self.max_value)
                        .await?;
                    found(i, answer);
                }
            }
        }
        // Every answer read: the sockets are in step with their servers.
        for checkout in checkouts.into_iter().flatten() {
            checkout.put_back(self.max_idle);
        }
        Ok(())
    }

    /// A socket to `pool`'s server: an idle one young enough (unless
    /// `fresh`), else a new one, waiting up to the connect timeout for a
    /// slot while `max_connections` are in use.
    async fn checkout<'a>(
        &self,
        pool: &'a Pool,
        name: &str,
        fresh: bool,
    ) -> Result<Checkout<'a>, Failure> {
        let permit = match &pool.permits {
            None => None,
            Some(permits) => match timeout(self.connect_timeout, permits.acquire()).await {
                Ok(Ok(permit)) => Some(permit),
                // Never closed; a busy pool is the only way here.
                Ok(Err(_)) | Err(_) => {
                    return Err(Failure {
                        kind: StoreErrorKind::Timeout,
                        message: format!(
                            "{name}: all {} connections are busy (raise `max_connections`, or \
                             lower the load on the store)",
                            pool.cap
                        ),
                        source: None,
                        retry: false,
                    })
                }
            },
        };
        let idle = if fresh { None } else { pool.take_idle() };
        if let Some(conn) = idle {
            return Ok(Checkout {
                pool,
                conn: Some(conn),
                _permit: permit,
                pooled: true,
            });
        }
        let conn = self.dial(pool, name).await?;
        Ok(Checkout {
            pool,
            conn: Some(conn),
            _permit: permit,
            pooled: false,
        })
    }

    /// Connect to the first of the server's addresses that answers, all of
    /// them within the connect timeout.
    async fn dial(&self, pool: &Pool, name: &str) -> Result<Conn, Failure> {
        let deadline = Deadline::now() + self.connect_timeout;
        let mut last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
        for addr in &pool.addrs {
            match timeout_at(deadline, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    return match stream.set_nodelay(true) {
                        Ok(()) => Ok(Conn {
                            stream,
                            request: Vec::with_capacity(512),
                            answer: vec![0; ANSWER_BUFFER],
                            end: 0,
                            at: 0,
                        }),
                        Err(error) => Err(io_failure(name, "connect", error, false)),
                    }
                }
                Ok(Err(error)) => last = error,
                Err(_) => {
                    last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    break;
                }
            }
        }
        Err(io_failure(name, "connect", last, false))
    }
}

impl Pool {
    /// The most recently used idle socket young enough, registered with
    /// this operation's runtime (moved to it if another runtime used it
    /// last; a socket that cannot be moved is closed).
    fn take_idle(&self) -> Option<Conn> {
        let here = tokio::runtime::Handle::try_current().ok()?.id();
        loop {
            let (idle, buffers, since) = lock(&self.idle).pop()?;
            if since.elapsed() > MAX_IDLE_AGE {
                continue;
            }
            let stream = if idle.runtime == here {
                idle.stream
            } else {
                match idle.stream.into_std().and_then(TcpStream::from_std) {
                    Ok(stream) => stream,
                    Err(_) => continue,
                }
            };
            return Some(Conn {
                stream,
                request: buffers.request,
                answer: buffers.answer,
                end: 0,
                at: 0,
            });
        }
    }
}

impl Checkout<'_> {
    /// The socket, until put back.
    fn conn(&mut self) -> Option<&mut Conn> {
        self.conn.as_mut()
    }

    /// Write the batch; the answers are read with [`Checkout::read_answer`].
    async fn send(&mut self, name: &str, deadline: Deadline) -> Result<(), Failure> {
        let pooled = self.pooled;
        let Some(conn) = self.conn.as_mut() else {
            return Err(gone(name));
        };
        conn.end = 0;
        conn.at = 0;
        let sent = timeout_at(deadline, conn.stream.write_all(&conn.request)).await;
        conn.request.clear();
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(io_failure(name, "write", error, pooled)),
            Err(_) => Err(timed_out(name)),
        }
    }

    /// Read the next answer.
    async fn read_answer(
        &mut self,
        name: &str,
        deadline: Deadline,
        max_value: usize,
    ) -> Result<Reply<'_>, Failure> {
        let pooled = self.pooled;
        let Some(conn) = self.conn.as_mut() else {
            return Err(gone(name));
        };
        conn.read_answer(name, deadline, pooled, max_value).await
    }

    /// Return the socket to the idle stack: call only once its whole
    /// exchange is done (every answer read). A socket with unread bytes is
    /// closed instead.
    fn put_back(mut self, max_idle: usize) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn.at != conn.end {
            return;
        }
        // The runtime this operation runs on, which the socket is registered with.
        let Ok(runtime) = tokio::runtime::Handle::try_current().map(|h| h.id()) else {
            return;
        };
        let stream = Idle {
            stream: conn.stream,
            runtime,
        };
        let mut buffers = Buffers {
            request: conn.request,
            answer: conn.answer,
        };
        if buffers.answer.len() > KEEP_BUFFER {
            buffers.answer = vec![0; ANSWER_BUFFER];
        }
        if buffers.request.capacity() > KEEP_BUFFER {
            buffers.request = Vec::with_capacity(512);
        }
        let mut idle = lock(&self.pool.idle);
        if idle.len() < max_idle {
            idle.push((stream, buffers, Instant::now()));
        }
    }
}

impl Drop for Checkout<'_> {
    /// Close the socket unless [`Checkout::put_back`] took it: its
    /// exchange did not complete (an error, or the future was dropped), so
    /// it may hold a request or answers in flight.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn);
        }
    }
}

impl Conn {
    /// Parse the next answer, reading from the socket until it is
    /// complete. `pooled`: the socket came from the idle stack, so finding
    /// it closed before any answer arrived is worth a retry.
    async fn read_answer(
        &mut self,
        name: &str,
        deadline: Deadline,
        pooled: bool,
        max_value: usize,
    ) -> Result<Reply<'_>, Failure> {
        let (start, end) = loop {
            match parse_answer(&self.answer[self.at..self.end], max_value) {
                Ok(Parsed::Need(want)) => self.fill(self.at + want, name, deadline, pooled).await?,
                Ok(Parsed::Status(status, used)) => {
                    self.at += used;
                    return Ok(Reply::Answer(status));
                }
                Ok(Parsed::Value(start, end)) => break (self.at + start, self.at + end),
                Err(Bad::Rejected(message)) => {
                    // One line: step over it to the next command's answer.
                    return match line_len(&self.answer[self.at..self.end]) {
                        Some(used) => {
                            self.at += used;
                            Ok(Reply::Rejected(message))
                        }
                        None => Err(protocol(name, StoreErrorKind::Rejected, message)),
                    };
                }
                Err(Bad::Protocol(message)) => {
                    // As the blocking store: a server refusing an item as
                    // too large is a refusal, not a broken server.
                    let kind = if message.contains("too large") {
                        StoreErrorKind::Rejected
                    } else {
                        StoreErrorKind::Protocol
                    };
                    return Err(protocol(name, kind, message));
                }
            }
        };
        self.at = end + 2;
        Ok(Reply::Answer(Answer::Value(&self.answer[start..end])))
    }

    /// Read from the socket until `answer` holds at least `want` bytes.
    async fn fill(
        &mut self,
        want: usize,
        name: &str,
        deadline: Deadline,
        pooled: bool,
    ) -> Result<(), Failure> {
        if self.answer.len() < want {
            let grown = want.max(2 * self.answer.len());
            self.answer.resize(grown, 0);
        }
        while self.end < want {
            let read = timeout_at(deadline, self.stream.read(&mut self.answer[self.end..])).await;
            match read {
                Err(_) => return Err(timed_out(name)),
                Ok(Ok(0)) => {
                    return Err(Failure {
                        kind: StoreErrorKind::Unavailable,
                        message: format!("{name}: connection closed by the server"),
                        source: None,
                        retry: pooled && self.end == 0,
                    })
                }
                Ok(Ok(got)) => self.end += got,
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => {
                    return Err(io_failure(name, "read", error, pooled && self.end == 0))
                }
            }
        }
        Ok(())
    }
}

impl AsyncStore for AsyncMemcached {
    fn fetch_many<'a>(
        &'a self,
        entries: &'a [Key],
        generations: &'a [Key],
    ) -> StoreFuture<'a, FetchedMany> {
        Box::pin(self.fetch_many_now(entries, generations))
    }

    fn ensure_generations<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, Vec<Generation>> {
        Box::pin(self.ensure_generations_now(keys))
    }

    fn put_entry<'a>(&'a self, key: Key, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(self.put_entry_now(key, value, ttl))
    }

    fn bump<'a>(&'a self, keys: &'a [Key]) -> StoreFuture<'a, ()> {
        Box::pin(self.bump_now(keys))
    }
}

/// A status a command did not expect, for messages.
fn other_status(answer: &Answer<'_>) -> String {
    match answer {
        Answer::Value(value) => format!("a value of {} bytes", value.len()),
        Answer::Miss => "EN".to_owned(),
        Answer::Stored => "HD".to_owned(),
        Answer::NotStored => "NS".to_owned(),
    }
}

/// The error for a reply a read did not expect.
fn unexpected_reply(op: &'static str, reply: Reply<'_>) -> StoreError {
    match reply {
        Reply::Rejected(message) => StoreError::new(
            NAME,
            StoreErrorKind::Rejected,
            format!("{op}: {message} ({})", hint(StoreErrorKind::Rejected)),
        ),
        Reply::Answer(answer) => {
            unexpected(op, format!("unexpected answer {}", other_status(&answer)))
        }
    }
}

/// A [`StoreErrorKind::Protocol`] error for an answer the store did not
/// expect, traced like the blocking store's.
fn unexpected(op: &'static str, message: String) -> StoreError {
    tracing::debug!(store = NAME, op, kind = %StoreErrorKind::Protocol, %message, "memcached operation failed");
    let hint = hint(StoreErrorKind::Protocol);
    StoreError::new(
        NAME,
        StoreErrorKind::Protocol,
        format!("{op}: {message} ({hint})"),
    )
}

/// A failure for an answer refused by the parser (the socket is then
/// out of step and closed).
fn protocol(name: &str, kind: StoreErrorKind, message: String) -> Failure {
    Failure {
        kind,
        message: format!("{name}: {message}"),
        source: None,
        retry: false,
    }
}

/// A failure for a checkout used after it was put back (cannot happen:
/// `put_back` consumes it).
fn gone(name: &str) -> Failure {
    protocol(
        name,
        StoreErrorKind::Unavailable,
        "the socket was already returned".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memcached::vivify_op;
    use memcache::exp::{Operation, Set, Ttl};
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection fake server: for each `(lines, answer)`, reads
    /// `lines` request lines, then writes `answer` byte by byte (the parser
    /// must cope with any split). Returns the lines read, once the client
    /// closed the socket.
    fn fake(script: Vec<(usize, &'static [u8])>) -> (String, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut lines = Vec::new();
            for (count, answer) in script {
                for _ in 0..count {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return lines;
                    }
                    lines.push(line.trim_end().to_owned());
                }
                for b in answer {
                    if writer.write_all(&[*b]).is_err() {
                        return lines;
                    }
                }
            }
            // Until the client closes the socket.
            let _ = reader.read_line(&mut String::new());
            lines
        });
        (addr, handle)
    }

    fn store(addr: &str, timeout: Duration) -> AsyncMemcached {
        AsyncMemcached::new(
            [(addr.to_owned(), vec![addr.parse().unwrap()])],
            "cb:".into(),
            timeout,
            timeout,
            4,
            None,
            1000,
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn idle(store: &AsyncMemcached) -> usize {
        lock(&store.pools[0].idle).len()
    }

    #[test]
    fn commands_are_the_exp_clients() {
        let mut out = Vec::new();
        push_vivify(b"cb:gk", 42, &mut out);
        let exp = Operation::prepare(&vivify_op("cb:gk", 42)).unwrap();
        assert_eq!(out, exp.encode().unwrap());
        out.clear();
        push_set_ttl(b"cb:ek", b"rows", 60, &mut out);
        let exp = Operation::prepare(&Set::new("cb:ek", b"rows").ttl(Ttl::secs(60))).unwrap();
        assert_eq!(out, exp.encode().unwrap());
    }

    #[test]
    fn a_batch_is_one_write_and_its_socket_is_pooled() {
        let (addr, server) = fake(vec![(2, b"VA 1\r\nx\r\nEN\r\n")]);
        let store = store(&addr, Duration::from_secs(5));
        let keys = [Key::entry(1), Key::generation(2)];
        let fetched = runtime()
            .block_on(store.fetch_many(&keys[..1], &keys[1..]))
            .unwrap();
        assert_eq!(fetched.entries, vec![Some(b"x".to_vec())]);
        assert_eq!(fetched.generations, vec![None]);
        assert_eq!(idle(&store), 1);
        drop(store);
        assert_eq!(
            server.join().unwrap(),
            [
                "mg cb:e00000000000000000000000000000001 v",
                "mg cb:g00000000000000000000000000000002 v"
            ]
        );
    }

    #[test]
    fn hostile_answers_are_errors_and_their_sockets_closed() {
        let endless: &'static [u8] = Box::leak(vec![b'9'; 4096].into_boxed_slice());
        for (answer, kind) in [
            (
                &b"SERVER_ERROR out of memory\r\n"[..],
                StoreErrorKind::Protocol,
            ),
            (b"VA x\r\n", StoreErrorKind::Protocol),
            // Larger than the store ever writes: not read into memory.
            (b"VA 1001\r\n", StoreErrorKind::Protocol),
            (b"VA 4000000000\r\n", StoreErrorKind::Protocol),
            (b"VA 2\r\nabcd\r\n", StoreErrorKind::Protocol),
            (endless, StoreErrorKind::Protocol),
            (
                b"CLIENT_ERROR bad command line format\r\n",
                StoreErrorKind::Rejected,
            ),
        ] {
            let (addr, _server) = fake(vec![(1, answer)]);
            let store = store(&addr, Duration::from_secs(5));
            let error = runtime()
                .block_on(store.fetch_many(&[Key::entry(1)], &[]))
                .unwrap_err();
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(error.store(), "memcached");
            if kind == StoreErrorKind::Protocol {
                assert_eq!(idle(&store), 0, "{error}");
            }
        }
    }

    #[test]
    fn a_refused_vivify_is_repaired_and_the_rest_of_the_batch_kept() {
        let (addr, server) = fake(vec![
            (
                3,
                b"VA 2\r\n17\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nVA 2\r\n18\r\n",
            ),
            // The read-back: garbage.
            (1, b"VA 3\r\nabc\r\n"),
            // The overwrite: a set, command line and value.
            (2, b"HD\r\n"),
        ]);
        let store = store(&addr, Duration::from_secs(5));
        let keys = [Key::generation(1), Key::generation(2), Key::generation(3)];
        let values = runtime().block_on(store.ensure_generations(&keys)).unwrap();
        assert_eq!(values[0], 17);
        assert_eq!(values[2], 18);
        assert_ne!(values[1], 0);
        drop(store);
        let lines = server.join().unwrap();
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert!(lines[1].starts_with("ma cb:g00000000000000000000000000000002 v D0 N1 J"));
        assert_eq!(lines[3], "mg cb:g00000000000000000000000000000002 v");
        let fresh = values[1].to_string();
        assert_eq!(
            lines[4],
            format!("ms cb:g00000000000000000000000000000002 {}", fresh.len())
        );
        assert_eq!(lines[5], fresh);
    }

    #[test]
    fn a_silent_server_times_out_and_a_dropped_exchange_closes_its_socket() {
        let (addr, server) = fake(vec![(1, b"")]);
        let store = store(&addr, Duration::from_millis(100));
        let rt = runtime();
        let started = Instant::now();
        let error = rt
            .block_on(store.fetch_many(&[Key::entry(1)], &[]))
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(idle(&store), 0);
        // The fake saw its socket closed.
        assert_eq!(server.join().unwrap().len(), 1);

        let (addr, server) = fake(vec![(1, b"")]);
        let store = self::store(&addr, Duration::from_secs(5));
        let cut = rt.block_on(async {
            timeout(
                Duration::from_millis(50),
                store.fetch_many(&[Key::entry(1)], &[]),
            )
            .await
        });
        assert!(cut.is_err());
        assert_eq!(idle(&store), 0);
        assert_eq!(server.join().unwrap().len(), 1);
    }

    #[test]
    fn max_connections_bounds_the_sockets_in_use() {
        let (addr, _server) = fake(vec![(1, b"EN\r\n")]);
        let timeout = Duration::from_millis(100);
        let store = AsyncMemcached::new(
            [(addr.clone(), vec![addr.parse().unwrap()])],
            "cb:".into(),
            timeout,
            timeout,
            4,
            Some(1),
            1000,
        );
        runtime().block_on(async {
            let held = store
                .checkout(&store.pools[0], &addr, false)
                .await
                .ok()
                .unwrap();
            let started = Instant::now();
            let error = store.fetch_many(&[Key::entry(1)], &[]).await.unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
            assert!(error.message().contains("busy"), "{error}");
            assert!(started.elapsed() < Duration::from_secs(2));
            // Released, the slot serves the next read (on the same socket).
            held.put_back(4);
            let fetched = store.fetch_many(&[Key::entry(1)], &[]).await.unwrap();
            assert_eq!(fetched.entries, vec![None]);
        });
    }

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let store = store("127.0.0.1:9", Duration::from_millis(100));
        let keys = [Key::generation(1)];
        let mut future = store.bump(&keys);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(Err(error)) => {
                assert_eq!(error.kind(), StoreErrorKind::Unavailable)
            }
            other => panic!("{other:?}"),
        }
    }
}
