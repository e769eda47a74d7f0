#!/usr/bin/env bash
# Lint and test the whole workspace against real PostgreSQL and memcached.
#
# Usage: scripts/test.sh [CARGO TEST ARGS...]
#   CACHEBOT_SKIP_LINT=1 skips `cargo fmt --check`, `cargo clippy` and the packaging checks
#     (MSRV, `cargo package`, `cargo doc`) (fast local loops).
#   CACHEBOT_FUZZ_SECONDS=N runs each fuzz target N seconds (default 30; 0 skips them).
# Services come from scripts/services.sh (reuses DATABASE_URL / MEMCACHED_SERVERS when they
# answer, starts private ones otherwise).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ "${CACHEBOT_SKIP_LINT:-0}" != 1 ]]; then
  fmt_args=(--check)
  if [[ -n "${CI:-}" || ! -t 1 ]]; then
    fmt_args+=(--color never)
  fi
  step "cargo fmt --all -- --check"
  cargo fmt --all -- "${fmt_args[@]}"
  step "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  step "cargo clippy -p cachebot: default features, and async without the pool features"
  cargo clippy -p cachebot --lib -- -D warnings
  cargo clippy -p cachebot --lib --features async -- -D warnings

  step "scripts/check-msrv.sh (lockfile, APIs and language features within rust-version)"
  bash "$root/scripts/check-msrv.sh"
  # Both crates, built from their .crate files; cachebot finds the unpublished cachebot-derive
  # in cargo's local overlay of the packages just made (target/package/tmp-registry).
  # --allow-dirty: nothing is published, and a local run may have uncommitted edits.
  step "cargo package -p cachebot-derive -p cachebot (packaged and verified)"
  cargo package --locked --allow-dirty -p cachebot-derive -p cachebot
  step "cargo doc --no-deps --all-features -p cachebot -p cachebot-derive (RUSTDOCFLAGS=-D warnings)"
  RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --all-features -p cachebot -p cachebot-derive
else
  step "skipping fmt, clippy and the packaging checks (CACHEBOT_SKIP_LINT=1)"
fi

step "cargo test -p cachebot --features postcard --lib codec fuzzing (the optional codec)"
cargo test -p cachebot --features postcard --lib -- codec fuzzing

step "scripts/fuzz.sh (each fuzz target for \${CACHEBOT_FUZZ_SECONDS:-30}s; skipped if cargo-fuzz can't run)"
bash "$root/scripts/fuzz.sh"

step "cargo test --workspace $*, then the axum example (cachebot/examples/axum.rs checks itself)"
exec bash "$root/scripts/services.sh" -- bash -c \
  'cargo test --workspace "$@" && cargo run -q -p cachebot --features deadpool --example axum' \
  _ "$@"
