#!/usr/bin/env bash
# Benchmark cachebot against the physical baselines of shared/perf-baseline.md.
#
# Usage: scripts/bench.sh
#        scripts/bench.sh follow   the change-stream follower's figures (commit-to-bump lag at
#                                  100 and 1,000 writes/s, CPU per 1,000 changes, precision cost
#                                  of double bumps): cachebot-follow/examples/follow_bench.rs,
#                                  ~30 s, under services.sh as it starts things (no pinning, no
#                                  fsync restart); BENCH_QUICK=1 shortens it
#        scripts/bench.sh precision  issue 15's precision figures (bench/src/precision.rs): a
#                                  seeded read/write replay at 5%, 10% and 20% writes; per query
#                                  shape the crate's hit rate against an ideal cache (misses only
#                                  when the result changed) and a table-level one, every cached
#                                  read checked against the database (a stale read fails the
#                                  run); ~2 min, under services.sh as it starts things (no
#                                  pinning: nothing is timed); BENCH_QUICK=1 ~20 s, BENCH_SEED,
#                                  BENCH_OPS, BENCH_WRITES=0.05,0.1, BENCH_STORE=memcached,
#                                  BENCH_REQUIRE_TARGET=1 (a missed target fails it too)
#        scripts/bench.sh async    the async figures (bench/src/async_main.rs): cached reads on a
#                                  diesel-async connection against the blocking ones and the
#                                  uncached async query, and hits/s of 64 tasks; pinned as below
#   BENCH_QUICK=1   ~30 s smoke run (fewer samples, 100k-entry store instead of 1M)
#   BENCH_CPU=N     the CPU everything is pinned to (default 0)
#   BENCH_FSYNC=0   leave a private PostgreSQL as services.sh starts it (fsync=off,
#                   synchronous_commit=off); by default it is restarted with both on, so that
#                   the write figure commits with fsync like the reference numbers
#   BENCH_PIN_EXTERNAL=1  also pin servers this run did not start (DATABASE_URL /
#                   MEMCACHED_SERVERS given and answering); by default only private ones
#
# Runs under scripts/services.sh (which reuses DATABASE_URL / MEMCACHED_SERVERS when they
# answer, starts private PostgreSQL and memcached otherwise), builds the bench in release,
# pins the servers' processes and the bench to one CPU with taskset (a round trip between
# processes on different vCPUs of these VMs randomly costs ~100 us extra: see
# perf-baseline.md, "Method"), and prints the machine and a Markdown table of medians of
# interleaved runs with their baselines and ratios.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

log() { printf '[bench.sh] %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

cpu="${BENCH_CPU:-0}"
bin="$root/target/release/cachebot-bench"
mode=""
if [[ "${1:-}" == async || "${2:-}" == async ]]; then
  mode=async
  bin="$root/target/release/cachebot-bench-async"
fi

if [[ "${1:-}" == follow ]]; then
  log "building the follower bench (release)"
  cargo build --release -p cachebot-follow --example follow_bench >&2
  exec bash "$root/scripts/services.sh" -- "$root/target/release/examples/follow_bench"
fi

if [[ "${1:-}" == precision ]]; then
  log "building the precision bench (release)"
  cargo build --release -p cachebot-bench --bin cachebot-bench-precision >&2
  services=()
  if [[ "${BENCH_STORE:-}" != memcached ]]; then services=(--no-memcached); fi
  # Printed by the bench in its setup.
  BENCH_RUN_INFO="scripts/bench.sh precision${BENCH_QUICK:+ (BENCH_QUICK=$BENCH_QUICK)}"
  BENCH_RUN_INFO+="; commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  BENCH_RUN_INFO+="$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  BENCH_RUN_INFO+="; $(date -u +%Y-%m-%dT%H:%M:%SZ); nproc $(nproc), load $(cut -d" " -f1-3 /proc/loadavg)"
  export BENCH_RUN_INFO
  exec bash "$root/scripts/services.sh" "${services[@]}" -- "$root/target/release/cachebot-bench-precision"
fi

# -------------------------------------------------------------------------------------------
# Outer half: build, then re-run this script under services.sh.
# -------------------------------------------------------------------------------------------
if [[ "${1:-}" != --inside-services ]]; then
  log "building cachebot-bench (release)"
  cargo build --release -p cachebot-bench --bins >&2
  exec bash "$root/scripts/services.sh" -- bash "$root/scripts/bench.sh" --inside-services $mode
fi

# -------------------------------------------------------------------------------------------
# Inner half: DATABASE_URL and MEMCACHED_SERVERS are set and answer.
# -------------------------------------------------------------------------------------------
pinned=()     # what was pinned, for the report
not_pinned=() # and what was not, with the reason

# The port of a URL like postgres://user@host:port/db.
url_port() { sed -E 's#^[a-z]+://([^@/]*@)?[^:/]*:([0-9]+).*$#\2#' <<<"$1"; }

# PIDs listening on 127.0.0.1:PORT (ss, else /proc/net/tcp + /proc/*/fd).
pids_on_port() {
  local port="$1" out
  if have ss; then
    out="$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -u)"
    if [[ -n "$out" ]]; then
      echo "$out"
      return 0
    fi
  fi
  local hex inode fd
  hex="$(printf '%04X' "$port")"
  awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" {print $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null |
    while read -r inode; do
      for fd in /proc/[0-9]*/fd/*; do
        if [[ "$(readlink "$fd" 2>/dev/null)" == "socket:[$inode]" ]]; then
          fd="${fd#/proc/}"
          echo "${fd%%/*}"
        fi
      done
    done | sort -u
}

# PID and all its descendants.
with_children() {
  local pid="$1" child
  echo "$pid"
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    with_children "$child"
  done
}

pin_tree() {
  local what="$1" pid="$2" p n=0
  for p in $(with_children "$pid"); do
    if taskset -a -p -c "$cpu" "$p" >/dev/null 2>&1; then
      n=$((n + 1))
    fi
  done
  pinned+=("$what: pid $pid and its children ($n processes, all threads) -> CPU $cpu")
}

# The services.sh state directory of the private cluster, if DATABASE_URL is one.
pg_data="$(psql "$DATABASE_URL" -XAtqc 'show data_directory' 2>/dev/null || true)"
pg_private=""
if [[ "$pg_data" =~ ^/tmp/cachebot-services\.[^/]+/pgdata$ && -f "${pg_data%/pgdata}/pg_bin" ]]; then
  pg_private="${pg_data%/pgdata}"
fi
pg_port="$(url_port "$DATABASE_URL")"

# A private cluster runs with fsync=off and synchronous_commit=off (command-line options,
# which ALTER SYSTEM cannot override): restart it with the defaults for the write figure.
if [[ -n "$pg_private" && "${BENCH_FSYNC:-1}" != 0 ]]; then
  as_pg=()
  if [[ "$(id -u)" == 0 ]]; then as_pg=(runuser -u postgres --); fi
  opts="-c listen_addresses=127.0.0.1 -k $pg_private/sock -c fsync=on -c synchronous_commit=on"
  opts+=" -c full_page_writes=on -c max_connections=200 -c shared_buffers=64MB -p $pg_port"
  log "restarting the private PostgreSQL with fsync=on synchronous_commit=on"
  (cd "$pg_private" && "${as_pg[@]}" "$(cat "$pg_private/pg_bin")/pg_ctl" -D "$pg_data" \
    -l "$pg_private/postgres.log" -m fast -w -t 60 -o "$opts" restart >/dev/null)
  for _ in $(seq 1 100); do
    psql "$DATABASE_URL" -XAtqc 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

if have taskset; then
  # PostgreSQL: the postmaster listening on the port, and its children (backends forked
  # later inherit the postmaster's affinity).
  pg_pids="$(pids_on_port "$pg_port" || true)"
  if [[ -z "$pg_pids" ]]; then
    not_pinned+=("PostgreSQL on port $pg_port: listening PID not found")
  elif [[ -z "$pg_private" && "${BENCH_PIN_EXTERNAL:-0}" != 1 ]]; then
    not_pinned+=("PostgreSQL on port $pg_port (pid $pg_pids): not started by this run (BENCH_PIN_EXTERNAL=1 pins it)")
  else
    for pid in $pg_pids; do pin_tree "PostgreSQL :$pg_port" "$pid"; done
  fi
  # memcached: every server of MEMCACHED_SERVERS on this host.
  IFS=',' read -r -a mc_servers <<<"$MEMCACHED_SERVERS"
  for server in "${mc_servers[@]}"; do
    server="${server// /}"
    port="${server##*:}"
    pids="$(pids_on_port "$port" || true)"
    if [[ -z "$pids" ]]; then
      not_pinned+=("memcached $server: listening PID not found")
      continue
    fi
    for pid in $pids; do
      private=0
      if grep -qx "$pid" /tmp/cachebot-services.*/memcached.pids 2>/dev/null; then private=1; fi
      if ((private)) || [[ "${BENCH_PIN_EXTERNAL:-0}" == 1 ]]; then
        pin_tree "memcached $server" "$pid"
      else
        not_pinned+=("memcached $server (pid $pid): not started by this run (BENCH_PIN_EXTERNAL=1 pins it)")
      fi
    done
  done
  pinned+=("the bench process: taskset -c $cpu (figure 8 widens its own threads to every CPU)")
  run=(taskset -c "$cpu" "$bin")
else
  not_pinned+=("everything: taskset is not available")
  run=("$bin")
fi

model="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
if [[ -z "$model" ]] && have lscpu; then
  model="$(lscpu | awk -F': *' '/Model name/ {print $2; exit}')"
fi
echo "# cachebot benchmark"
echo
echo "## Machine"
echo
echo "- nproc: $(nproc); CPU: ${model:-unknown}; kernel: $(uname -r); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- load average before the run: $(cut -d" " -f1-3 /proc/loadavg)"
echo "- command: scripts/bench.sh${mode:+ $mode}${BENCH_QUICK:+ (BENCH_QUICK=$BENCH_QUICK)}; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo "## Pinning"
echo
for p in "${pinned[@]}"; do echo "- pinned: $p"; done
for p in "${not_pinned[@]}"; do echo "- not pinned: $p"; done
echo
"${run[@]}"
