#!/usr/bin/env bash
# Run the quickstart example against a private (or $DATABASE_URL) PostgreSQL.
#
# Usage: scripts/quickstart.sh [EXAMPLE ARGS...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

exec bash "$root/scripts/services.sh" --no-memcached -- \
  cargo run -p cachebot --example quickstart -- "$@"
