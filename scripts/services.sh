#!/usr/bin/env bash
# Bring up the services cachebot's tests need, run a command with them, then clean up.
#
# Usage: scripts/services.sh [--no-memcached] [--] COMMAND [ARGS...]
#
# PostgreSQL: uses $DATABASE_URL when it is set and answers; otherwise starts a private,
#   throwaway cluster (initdb into a temp dir, loopback only, a free port, trust auth) with a
#   database `cachebot_test`, and exports DATABASE_URL=postgres://postgres@127.0.0.1:PORT/cachebot_test.
# memcached (unless --no-memcached): uses $MEMCACHED_SERVERS (comma-separated host:port) when
#   every server answers `version`; otherwise starts two private memcached processes on free
#   loopback ports and exports MEMCACHED_SERVERS=127.0.0.1:P1,127.0.0.1:P2.
# MEMCACHED_BIN is always exported (absolute path; some tests spawn their own memcached).
# Logical replication (the change-stream follower's tests): exports LOGICAL_DATABASE_URL, a
#   database on a server with wal_level=logical: $LOGICAL_DATABASE_URL when it answers and is
#   logical, else DATABASE_URL when its server is logical (a cluster this script starts is),
#   else a second private cluster (wal_level=logical, free port, stopped on exit). The
#   server behind a given DATABASE_URL is never reconfigured.
#
# Missing PostgreSQL / memcached binaries are installed with apt-get (Debian), as root or
# through sudo. As root, initdb/pg_ctl run as the `postgres` OS user and memcached with
# `-u memcache` (or nobody). Everything this script started is stopped on exit (Ctrl-C
# included; a TERM sent to this script alone takes effect once COMMAND returns); services it
# did not start are never touched. State lives in /tmp/cachebot-services.*; a later run cleans
# up after a run that was SIGKILLed. CACHEBOT_READY_TIMEOUT (seconds, default 30) bounds each
# wait for readiness. Exits with COMMAND's exit status (2 on a usage error).
set -euo pipefail

readonly PREFIX="cachebot-services"
# Always /tmp (not $TMPDIR): the postgres user must be able to reach it, and the unix socket
# path must stay short.
readonly BASE_DIR=/tmp
readonly READY_TIMEOUT_SECS="${CACHEBOT_READY_TIMEOUT:-30}"

log() { printf '[services] %s\n' "$*" >&2; }
die() {
  printf '[services] error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat >&2 <<'EOF'
usage: scripts/services.sh [--no-memcached] [--] COMMAND [ARGS...]

Starts (or reuses) PostgreSQL and memcached for cachebot's tests, runs COMMAND with
DATABASE_URL, MEMCACHED_SERVERS and MEMCACHED_BIN exported, then stops what it started.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
want_memcached=1
while (($# > 0)); do
  case "$1" in
    --no-memcached)
      want_memcached=0
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    -*)
      usage
      printf '[services] error: unknown option: %s\n' "$1" >&2
      exit 2
      ;;
    *) break ;;
  esac
done
if (($# == 0)); then
  usage
  printf '[services] error: no command given\n' >&2
  exit 2
fi

# ---------------------------------------------------------------------------------------------
# State and cleanup
# ---------------------------------------------------------------------------------------------
is_root=0
if [[ "$(id -u)" == 0 ]]; then
  is_root=1
fi

workdir=""         # temp dir holding everything this run started
pg_bin=""          # directory of the PostgreSQL server binaries
pg_started=0       # 1 when this run started a cluster
pg_data=""         # its data directory
pg_extra_data=()   # data directories of further clusters this run started (logical)
memcached_pids=()  # memcached processes this run started
policy_rc_created=0

# Run a command as the PostgreSQL OS user when we are root (initdb/postgres refuse root).
as_pg() {
  if ((is_root)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# shellcheck disable=SC2329 # invoked through the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  if ((${#memcached_pids[@]} > 0)); then
    # memcached keeps nothing worth flushing: SIGKILL and reap.
    local pid
    for pid in "${memcached_pids[@]}"; do
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    done
  fi
  local extra
  for extra in "${pg_extra_data[@]}"; do
    (cd "$workdir" && as_pg "$pg_bin/pg_ctl" -D "$extra" -m fast -w -t 20 stop >/dev/null 2>&1) ||
      (cd "$workdir" && as_pg "$pg_bin/pg_ctl" -D "$extra" -m immediate -w -t 10 stop >/dev/null 2>&1)
  done
  if ((pg_started)) && [[ -n "$pg_data" ]]; then
    (cd "$workdir" && as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 20 stop >/dev/null 2>&1) ||
      (cd "$workdir" && as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w -t 10 stop >/dev/null 2>&1)
  fi
  if ((policy_rc_created)); then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [[ -n "$workdir" && -d "$workdir" ]]; then
    rm -rf "$workdir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A previous run that was SIGKILLed could not clean up; stop what it left behind (only
# processes recorded in its own state files, and only when that run is gone).
# Is PID a live (not zombie) run of this script?
owner_alive() {
  local pid="$1" state
  if [[ -r "/proc/$pid/stat" ]]; then
    state="$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]] || return 1
    grep -qa services.sh "/proc/$pid/cmdline" 2>/dev/null
  else
    kill -0 "$pid" 2>/dev/null
  fi
}

reap_stale_runs() {
  local dir owner pid
  for dir in "$BASE_DIR/$PREFIX".*; do
    [[ -d "$dir" && -f "$dir/owner.pid" ]] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [[ -n "$owner" ]] && owner_alive "$owner"; then
      continue
    fi
    log "cleaning up after an interrupted earlier run: $dir"
    if [[ -f "$dir/memcached.pids" ]]; then
      while read -r pid; do
        if [[ -n "$pid" ]] && grep -q memcached "/proc/$pid/cmdline" 2>/dev/null; then
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done <"$dir/memcached.pids"
    fi
    local d
    for d in pgdata pglogical; do
      if [[ -f "$dir/pg_bin" && -f "$dir/$d/postmaster.pid" ]]; then
        (cd "$dir" && as_pg "$(cat "$dir/pg_bin")/pg_ctl" -D "$dir/$d" -m immediate -w -t 10 stop \
          >/dev/null 2>&1) || true
      fi
    done
    rm -rf "$dir" || true
  done
}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }

# A connection URL with its password (if any) masked, for logging.
redact() { sed -E 's#^([a-z]+://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

apt_updated=0
apt_install() {
  local sudo=()
  if ((!is_root)); then
    have sudo || die "need to install $* but not root and no sudo; install them by hand"
    sudo=(sudo -n)
  fi
  have apt-get || die "need to install $* but apt-get is not available; install them by hand"
  if ((is_root)) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
    # Keep the packages' maintainer scripts from starting system-wide services we would
    # then leave running; this script starts its own private instances.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_rc_created=1
  fi
  log "installing $* with apt-get"
  if ((!apt_updated)); then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2
    apt_updated=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" </dev/null >&2
  if ((policy_rc_created)); then
    rm -f /usr/sbin/policy-rc.d
    policy_rc_created=0
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now (avoids 5432 and 11211-11212).
free_port() {
  local port
  if have python3; then
    port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null || true)"
    if [[ "$port" =~ ^[0-9]+$ ]] && ((port != 5432 && port != 11211 && port != 11212)); then
      echo "$port"
      return 0
    fi
  fi
  local _
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 30000))
    # A refused connection means the port is free.
    # shellcheck disable=SC2016 # expanded by the inner bash
    if ! timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "could not find a free TCP port"
}

# Does the memcached at HOST:PORT answer `version`?
memcached_answers() {
  local host="${1%:*}" port="${1##*:}"
  [[ -n "$host" && "$port" =~ ^[0-9]+$ ]] || return 1
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "version\r\n" >&3
    IFS= read -r line <&3 || exit 1
    [[ "$line" == VERSION* ]]' "$host" "$port" 2>/dev/null
}

make_workdir() {
  if [[ -z "$workdir" ]]; then
    workdir="$(mktemp -d "$BASE_DIR/$PREFIX.XXXXXX")"
    chmod 755 "$workdir"
    echo "$$" >"$workdir/owner.pid"
  fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
find_pg_bin() {
  local dir best=""
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
    if [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -n 1)" == "$dir" ]]; then
      best="$dir"
    fi
  done
  echo "$best"
}

database_url_answers() {
  local url="$1"
  if ! have psql; then
    apt_install postgresql-client
  fi
  PGCONNECT_TIMEOUT=3 timeout 5 psql "$url" -XAtq -c 'select 1' </dev/null >/dev/null 2>&1
}

# start_postgres [DIR_NAME [VARIABLE]]: a private cluster in $workdir/DIR_NAME (default pgdata),
# its URL exported as VARIABLE (default DATABASE_URL). Always wal_level=logical (cheap; the
# follower's tests need it).
start_postgres() {
  local dir_name="${1:-pgdata}" var="${2:-DATABASE_URL}"
  pg_bin="$(find_pg_bin)"
  if [[ -z "$pg_bin" ]]; then
    apt_install postgresql postgresql-client
    pg_bin="$(find_pg_bin)"
    [[ -n "$pg_bin" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
  fi
  if ((is_root)) && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  make_workdir
  echo "$pg_bin" >"$workdir/pg_bin"
  local data="$workdir/$dir_name"
  local sock="$workdir/sock-$dir_name" pglog="$workdir/postgres-$dir_name.log"
  mkdir -p "$sock"
  if ((is_root)); then
    chown postgres: "$sock"
    touch "$pglog"
    chown postgres: "$pglog"
  fi
  local started_at=$SECONDS
  if ((is_root)); then
    install -d -o postgres -m 700 "$data"
  else
    install -d -m 700 "$data"
  fi
  (cd "$workdir" && as_pg "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
    --locale=C --no-sync >"$workdir/initdb.log" 2>&1) || {
    cat "$workdir/initdb.log" >&2
    die "initdb failed"
  }

  # pg_ctl hands these to a shell: keep them on one line, without spaces in values.
  local pg_opts="-c listen_addresses=127.0.0.1 -k $sock -c fsync=off -c synchronous_commit=off"
  pg_opts+=" -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
  pg_opts+=" -c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=32"
  local attempt port ok=0
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    if (cd "$workdir" && as_pg "$pg_bin/pg_ctl" -D "$data" -l "$pglog" -w -t "$READY_TIMEOUT_SECS" \
      -o "$pg_opts -p $port" \
      start >>"$workdir/pg_ctl.log" 2>&1); then
      ok=1
    fi
    # Started, or still starting (timeout) rather than dead: stop it on exit either way.
    if ((ok)) || [[ -f "$data/postmaster.pid" ]]; then
      if [[ "$dir_name" == pgdata ]]; then
        pg_started=1
        pg_data="$data"
      else
        pg_extra_data+=("$data")
      fi
      break
    fi
    if grep -qiE 'could not (bind|create listen socket)|address already in use' "$pglog"; then
      log "port $port was taken, retrying (attempt $attempt)"
      continue
    fi
    break
  done
  if ((ok)); then
    ok=0
    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    while ((SECONDS < deadline)); do
      if "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 2; then
        ok=1
        break
      fi
      sleep 0.2
    done
  fi
  if ((!ok)); then
    log "PostgreSQL did not become ready within ${READY_TIMEOUT_SECS}s; server log follows:"
    cat "$pglog" "$workdir/pg_ctl.log" >&2 2>/dev/null || true
    die "could not start PostgreSQL"
  fi
  "$pg_bin/psql" -XAtq -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'CREATE DATABASE cachebot_test' </dev/null >/dev/null
  export "$var=postgres://postgres@127.0.0.1:$port/cachebot_test"
  log "postgres: started private PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($((SECONDS - started_at))s): $var=${!var}"
}

setup_postgres() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    if database_url_answers "$DATABASE_URL"; then
      export DATABASE_URL
      log "postgres: using DATABASE_URL=$(redact "$DATABASE_URL") (not started here)"
      return 0
    fi
    log "postgres: DATABASE_URL=$(redact "$DATABASE_URL") does not answer; starting a private cluster instead"
  fi
  start_postgres
}

# Is the server behind URL running with wal_level=logical?
is_logical() {
  [[ "$(PGCONNECT_TIMEOUT=3 timeout 5 "${pg_bin:+$pg_bin/}psql" "$1" -XAtq -c 'show wal_level' </dev/null 2>/dev/null)" == logical ]]
}

setup_logical_postgres() {
  if [[ -n "${LOGICAL_DATABASE_URL:-}" ]] && is_logical "$LOGICAL_DATABASE_URL"; then
    export LOGICAL_DATABASE_URL
    log "postgres (logical): using LOGICAL_DATABASE_URL=$(redact "$LOGICAL_DATABASE_URL") (not started here)"
  elif is_logical "$DATABASE_URL"; then
    export LOGICAL_DATABASE_URL="$DATABASE_URL"
    log "postgres (logical): DATABASE_URL's server has wal_level=logical; LOGICAL_DATABASE_URL=$(redact "$DATABASE_URL")"
  else
    log "postgres (logical): DATABASE_URL's server is not logical; starting a private logical cluster"
    start_postgres pglogical LOGICAL_DATABASE_URL
  fi
}

# ---------------------------------------------------------------------------------------------
# memcached
# ---------------------------------------------------------------------------------------------
find_memcached_bin() {
  local bin
  if [[ -n "${MEMCACHED_BIN:-}" && -x "${MEMCACHED_BIN}" ]]; then
    bin="$MEMCACHED_BIN"
  elif have memcached; then
    bin="$(command -v memcached)"
  elif [[ -x /usr/bin/memcached ]]; then
    bin=/usr/bin/memcached
  else
    apt_install memcached
    have memcached || die "memcached is still missing after apt-get install"
    bin="$(command -v memcached)"
  fi
  # Absolute path, as tests spawn it directly.
  readlink -f "$bin"
}

# Start one memcached on a free port; prints host:port.
start_one_memcached() {
  local bin="$1" attempt port pid
  local user_args=()
  if ((is_root)); then
    # memcached refuses to run as root without -u.
    if id memcache >/dev/null 2>&1; then user_args=(-u memcache); else user_args=(-u nobody); fi
  fi
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    "$bin" -l 127.0.0.1 -p "$port" -U 0 -m 64 "${user_args[@]}" \
      >>"$workdir/memcached-$port.log" 2>&1 </dev/null &
    pid=$!
    memcached_pids+=("$pid")
    echo "$pid" >>"$workdir/memcached.pids"
    local deadline=$((SECONDS + READY_TIMEOUT_SECS))
    while ((SECONDS < deadline)); do
      if memcached_answers "127.0.0.1:$port"; then
        echo "127.0.0.1:$port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "memcached on port $port did not answer within ${READY_TIMEOUT_SECS}s; log follows:"
      cat "$workdir/memcached-$port.log" >&2 || true
      die "could not start memcached"
    fi
    wait "$pid" 2>/dev/null || true
    log "memcached on port $port exited (attempt $attempt): $(tail -n 3 "$workdir/memcached-$port.log" 2>/dev/null)"
  done
  die "could not start memcached"
}

setup_memcached() {
  MEMCACHED_BIN="$(find_memcached_bin)"
  export MEMCACHED_BIN
  ((want_memcached)) || return 0

  if [[ -n "${MEMCACHED_SERVERS:-}" ]]; then
    local all=1 server servers=()
    IFS=',' read -r -a servers <<<"$MEMCACHED_SERVERS"
    for server in "${servers[@]}"; do
      server="${server// /}"
      [[ -n "$server" ]] || continue
      if ! memcached_answers "$server"; then
        all=0
        log "memcached: $server does not answer"
      fi
    done
    if ((all)); then
      export MEMCACHED_SERVERS
      log "memcached: using MEMCACHED_SERVERS=$MEMCACHED_SERVERS (not started here; MEMCACHED_BIN=$MEMCACHED_BIN)"
      return 0
    fi
    log "memcached: not every server in MEMCACHED_SERVERS answers; starting private ones instead"
  fi
  make_workdir
  local started_at=$SECONDS a b
  # Not in $(...): the PIDs must be recorded in this shell for cleanup.
  start_one_memcached "$MEMCACHED_BIN" >"$workdir/mc1.addr"
  a="$(cat "$workdir/mc1.addr")"
  start_one_memcached "$MEMCACHED_BIN" >"$workdir/mc2.addr"
  b="$(cat "$workdir/mc2.addr")"
  export MEMCACHED_SERVERS="$a,$b"
  log "memcached: started 2 private memcached ($("$MEMCACHED_BIN" -V | awk '{print $NF}')) ($((SECONDS - started_at))s): MEMCACHED_SERVERS=$MEMCACHED_SERVERS"
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
reap_stale_runs
setup_postgres
setup_logical_postgres
setup_memcached

set +e
"$@"
status=$?
set -e
exit "$status"
