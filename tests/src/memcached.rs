//! The shared memcached servers, and private memcached processes that a test controls.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::RUN_THROUGH_SCRIPTS;

/// How long a started memcached gets to answer `version`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

static LOG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The shared servers from `MEMCACHED_SERVERS` (comma-separated `host:port`).
///
/// Panics with instructions when the variable is unset or empty. These servers are shared by
/// every test in the run: use unique key prefixes/namespaces, never `flush_all` them.
pub fn memcached_servers() -> Vec<String> {
    let servers: Vec<String> = std::env::var("MEMCACHED_SERVERS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        panic!("MEMCACHED_SERVERS is not set: {RUN_THROUGH_SCRIPTS}");
    }
    servers
}

/// The memcached binary: `MEMCACHED_BIN`, else `memcached` found on `PATH`.
fn memcached_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MEMCACHED_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("memcached"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "memcached not found: MEMCACHED_BIN is not set and there is no memcached on \
                 PATH: {RUN_THROUGH_SCRIPTS}"
            )
        })
}

/// A free TCP port on 127.0.0.1 (free right now; the caller retries if it gets taken).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// Sends one text-protocol command and reads until the reply ends with `end`.
fn text_command(
    addr: &str,
    command: &str,
    end: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(command.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.ends_with(end.as_bytes()) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("memcached at {addr} closed the connection"),
            ));
        }
        reply.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Options for a [`MemcachedProcess`]; start one with [`MemcachedBuilder::spawn`].
#[derive(Debug, Clone)]
pub struct MemcachedBuilder {
    memory_mb: u32,
    args: Vec<String>,
}

impl Default for MemcachedBuilder {
    fn default() -> Self {
        MemcachedBuilder {
            memory_mb: 64,
            args: Vec::new(),
        }
    }
}

impl MemcachedBuilder {
    /// Memory limit in megabytes (`-m`; default 64).
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// An extra command-line argument (e.g. `-I`, `2m` for a larger item size limit).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts memcached on a free loopback port and waits until it answers `version`.
    pub fn spawn(self) -> MemcachedProcess {
        let log = std::env::temp_dir().join(format!(
            "cachebot-memcached-{}-{}.log",
            std::process::id(),
            LOG_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut process = MemcachedProcess {
            bin: memcached_bin(),
            memory_mb: self.memory_mb,
            args: self.args,
            port: 0,
            child: None,
            log,
        };
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port();
            match process.start_on(port) {
                Ok(()) => return process,
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start memcached: {last_error}");
    }
}

/// A private memcached process on a loopback port, for tests that kill, restart, pause or fill
/// their server. Killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct MemcachedProcess {
    bin: PathBuf,
    memory_mb: u32,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl MemcachedProcess {
    /// Options for a new process.
    pub fn builder() -> MemcachedBuilder {
        MemcachedBuilder::default()
    }

    /// Starts memcached with 64 MB on a free loopback port (see [`MemcachedBuilder::spawn`]).
    pub fn spawn() -> MemcachedProcess {
        MemcachedBuilder::default().spawn()
    }

    /// Starts memcached with `mb` megabytes of memory (`-m`).
    pub fn spawn_with_memory(mb: u32) -> MemcachedProcess {
        MemcachedBuilder::default().memory_mb(mb).spawn()
    }

    /// `127.0.0.1:<port>`; stays the same across [`restart`](Self::restart).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process (SIGKILL) and waits for it. Its port stays reserved for `restart`
    /// only by convention. Does nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process if running, then starts a new, empty one on the same port and waits
    /// until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.start_on(self.port) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("cannot restart memcached on {}: {e}", self.addr())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the kernel but nothing is
    /// answered, so clients time out.
    ///
    /// Returns once every thread of the process is stopped: `kill` only queues the signal,
    /// and until a thread of a busy machine's memcached takes it, its other threads keep
    /// answering requests.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
        let pid = self.pid().unwrap_or_default();
        let deadline = Instant::now() + READY_TIMEOUT;
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "memcached pid {pid} did not stop after SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }

    /// Sends `flush_all` (invalidates every item). Panics if the server does not reply `OK`.
    pub fn flush_all(&self) {
        let reply = text_command(
            &self.addr(),
            "flush_all\r\n",
            "\r\n",
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("flush_all on {} failed: {e}", self.addr()));
        assert_eq!(reply, "OK\r\n", "flush_all on {}", self.addr());
    }

    /// The remaining time to live, in seconds, that the server reports for `key` (the meta
    /// protocol's `mg <key> t`): `Some(-1)` when the item never expires, `None` when it is
    /// absent. Panics when the server does not answer, or answers anything else.
    pub fn ttl(&self, key: &str) -> Option<i64> {
        let command = format!("mg {key} t\r\n");
        let reply = text_command(&self.addr(), &command, "\r\n", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("mg {key} t on {} failed: {e}", self.addr()));
        let line = reply.trim_end();
        if line == "EN" {
            return None;
        }
        let ttl = line
            .strip_prefix("HD ")
            .and_then(|flags| flags.split(' ').find_map(|flag| flag.strip_prefix('t')))
            .and_then(|ttl| ttl.parse().ok());
        match ttl {
            Some(ttl) => Some(ttl),
            None => panic!("mg {key} t on {}: unexpected answer {line:?}", self.addr()),
        }
    }

    /// The `stats` of the server (`curr_items`, `evictions`, `get_hits`, `limit_maxbytes`, ...).
    pub fn stats(&self) -> HashMap<String, String> {
        self.stats_group("stats")
    }

    /// The `stats settings` of the server (`maxbytes`, `item_size_max`, ...).
    pub fn stats_settings(&self) -> HashMap<String, String> {
        self.stats_group("stats settings")
    }

    fn stats_group(&self, command: &str) -> HashMap<String, String> {
        let reply = text_command(
            &self.addr(),
            &format!("{command}\r\n"),
            "END\r\n",
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("{command} on {} failed: {e}", self.addr()));
        reply
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("STAT"), Some(k), Some(v)) => Some((k.to_owned(), v.to_owned())),
                    _ => None,
                }
            })
            .collect()
    }

    fn signal(&mut self, sig: libc::c_int, name: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("memcached on {} is not running", self.addr()));
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child, not
        // yet reaped (we hold its `Child`), so it cannot have been reused.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(
            rc,
            0,
            "{name} to memcached pid {pid} failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Starts the process on `port` and waits until it answers `version`.
    fn start_on(&mut self, port: u16) -> Result<(), String> {
        let log = std::fs::File::create(&self.log)
            .map_err(|e| format!("cannot create {}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-l", "127.0.0.1", "-U", "0"])
            .args(["-p", &port.to_string()])
            .args(["-m", &self.memory_mb.to_string()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: geteuid(2) cannot fail and has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // memcached refuses to run as root without -u.
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.port = port;
        self.child = Some(child);

        let addr = self.addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    return Err(format!("memcached on {addr} exited with {status}: {log}"));
                }
            }
            match text_command(&addr, "version\r\n", "\r\n", Duration::from_millis(500)) {
                Ok(reply) if reply.starts_with("VERSION") => return Ok(()),
                _ if Instant::now() >= deadline => {
                    self.kill();
                    return Err(format!(
                        "memcached on {addr} did not answer within {READY_TIMEOUT:?}"
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for MemcachedProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ...`: the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if state != Some('T') {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(addr: &str) -> std::io::Result<String> {
        text_command(addr, "version\r\n", "\r\n", Duration::from_millis(500))
    }

    fn set(addr: &str, key: &str, value: &str) {
        let cmd = format!("set {key} 0 0 {}\r\n{value}\r\n", value.len());
        let reply = text_command(addr, &cmd, "\r\n", Duration::from_secs(2)).unwrap();
        assert_eq!(reply, "STORED\r\n");
    }

    fn get(addr: &str, key: &str) -> Option<String> {
        let reply = text_command(
            addr,
            &format!("get {key}\r\n"),
            "END\r\n",
            Duration::from_secs(2),
        )
        .unwrap();
        reply
            .lines()
            .nth(1)
            .filter(|_| reply.starts_with("VALUE"))
            .map(str::to_owned)
    }

    #[test]
    fn spawn_kill_restart() {
        let mut mc = MemcachedProcess::spawn_with_memory(8);
        let addr = mc.addr();
        assert!(mc.is_running());
        assert!(version(&addr).unwrap().starts_with("VERSION "));
        assert_eq!(
            mc.stats().get("limit_maxbytes").map(String::as_str),
            Some("8388608")
        );

        set(&addr, "k", "v");
        assert_eq!(get(&addr, "k").as_deref(), Some("v"));
        assert_eq!(mc.stats()["curr_items"], "1");

        mc.kill();
        assert!(!mc.is_running());
        assert!(mc.pid().is_none());
        assert!(version(&addr).is_err());

        mc.restart();
        assert_eq!(mc.addr(), addr);
        assert!(mc.is_running());
        assert_eq!(get(&addr, "k"), None, "a restarted memcached is empty");

        // restart while running also gives an empty server on the same port.
        set(&addr, "k2", "v2");
        mc.restart();
        assert_eq!(mc.addr(), addr);
        assert_eq!(get(&addr, "k2"), None);
    }

    #[test]
    fn pause_resume_and_flush() {
        let mut mc = MemcachedProcess::builder().memory_mb(16).spawn();
        let addr = mc.addr();
        set(&addr, "k", "v");
        mc.pause();
        assert!(mc.is_running());
        let err = version(&addr).expect_err("a paused memcached must not answer");
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        mc.resume();
        assert!(version(&addr).unwrap().starts_with("VERSION "));
        assert_eq!(get(&addr, "k").as_deref(), Some("v"));
        mc.flush_all();
        assert_eq!(get(&addr, "k"), None);
    }

    #[test]
    fn ttl_of_items() {
        let mc = MemcachedProcess::spawn();
        let addr = mc.addr();
        set(&addr, "forever", "v");
        assert_eq!(mc.ttl("forever"), Some(-1));
        let reply = text_command(
            &addr,
            "set soon 0 100 1\r\nv\r\n",
            "\r\n",
            Duration::from_secs(2),
        );
        assert_eq!(reply.unwrap(), "STORED\r\n");
        assert!(matches!(mc.ttl("soon"), Some(99..=100)));
        assert_eq!(mc.ttl("absent"), None);
    }

    #[test]
    fn paused_process_is_killed_on_drop() {
        let mut mc = MemcachedProcess::spawn();
        let pid = mc.pid().unwrap();
        mc.pause();
        drop(mc);
        // The child was reaped: its /proc entry is gone.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn two_processes_get_distinct_ports() {
        let a = MemcachedProcess::spawn();
        let b = MemcachedProcess::builder().arg("-I").arg("2m").spawn();
        assert_ne!(a.addr(), b.addr());
        assert_eq!(b.stats_settings()["item_size_max"], "2097152");
    }

    #[test]
    fn shared_servers_answer() {
        for server in memcached_servers() {
            assert!(
                version(&server).unwrap().starts_with("VERSION "),
                "{server}"
            );
        }
    }
}
