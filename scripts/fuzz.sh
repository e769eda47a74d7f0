#!/usr/bin/env bash
# Run the fuzz targets of fuzz/ briefly: the entry decoder per codec, the memcached answer
# parser and the SQL analysis. Called by scripts/test.sh (CI); runnable alone.
#
# Usage: scripts/fuzz.sh [TARGET...]      (default: every target)
#   CACHEBOT_FUZZ_SECONDS=N   seconds per target (default 30; 0 skips the whole step)
#
# cargo-fuzz needs nightly compiler flags; the machine has only a stable toolchain, so the
# targets are built with RUSTC_BOOTSTRAP=1 and without a sanitizer (`-s none`: libFuzzer's
# coverage guidance still works; `-rss_limit_mb` turns an allocation bomb into a finding).
# That is the fragile part, so it is contained: when cargo-fuzz cannot be installed or the
# targets cannot be built, the step is skipped with a warning (the same entry points run on
# seeded random inputs in every `cargo test`, cachebot/src/fuzzing.rs). A target that
# crashes, aborts or exceeds the memory limit fails the step, and its input is kept in
# fuzz/artifacts/<target>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

seconds="${CACHEBOT_FUZZ_SECONDS:-30}"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(entry_bincode entry_postcard answers analyze)
fi
log() { printf '[fuzz.sh] %s\n' "$*" >&2; }

if [[ "$seconds" == 0 ]]; then
  log "CACHEBOT_FUZZ_SECONDS=0: skipped"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked >&2; then
    log "WARNING: cargo-fuzz could not be installed; fuzzing skipped"
    exit 0
  fi
fi
export RUSTC_BOOTSTRAP=1
log "building ${targets[*]} (release, no sanitizer)"
for target in "${targets[@]}"; do
  if ! cargo fuzz build -s none "$target" >&2; then
    log "WARNING: the fuzz targets do not build with this toolchain; fuzzing skipped"
    exit 0
  fi
done
for target in "${targets[@]}"; do
  seeds="corpus/$target"
  case "$target" in entry_*) seeds=corpus/entry ;; esac
  work="corpus-work/$target"
  mkdir -p "$work"
  extra=()
  [[ "$target" == analyze ]] && extra=(-dict=analyze.dict)
  log "$target: ${seconds}s"
  out="$work.log"
  status=0
  cargo fuzz run -s none "$target" "$work" "$seeds" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=1 "${extra[@]}" \
    >"$out" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|Done)' "$out" >&2 || true
  if [[ "$status" != 0 ]]; then
    tail -n 40 "$out" >&2
    log "FAILED: $target (exit $status); the input is in fuzz/artifacts/$target/"
    exit 1
  fi
done
log "no crash"
