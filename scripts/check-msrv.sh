#!/usr/bin/env bash
# Check that the MSRV (`rust-version` in the workspace Cargo.toml) is true, without an old
# toolchain (only the current stable is installed). Called by scripts/test.sh; runnable alone.
#
#   1. The lockfile: every package the library crates (cachebot, cachebot-derive) build with,
#      all features, declares a `rust-version` at most the MSRV; so does every other package in
#      Cargo.lock (dev-dependencies, tests/, bench/), reported separately. The workspace uses
#      the MSRV-aware resolver (`resolver = "3"`): `cargo update` keeps to the MSRV by itself,
#      except where a dependency needs a newer one without saying so in its own `rust-version`
#      (then pin it: `cargo update -p NAME --precise VERSION`).
#   2. The standard library: clippy's `incompatible_msrv` (APIs stabilized after the MSRV),
#      over every target and every feature.
#   3. The language: features clippy does not see (cfg(true), if-let guards, cfg_select!, ...),
#      by pattern over the workspace's sources; let-chains need edition 2024, which no crate uses.
#   4. The README's "MSRV: Rust 1.xx" line says the same version.
#
# Per crate: the change-stream follower (cachebot-follow) has its own, higher rust-version
# (pgwire-replication needs 1.88); its own dependencies are checked against that, the library
# crates' graph stays at the workspace's MSRV (and free of tokio unless the `async` feature,
# which is about tokio, is on).
#
# Usage: scripts/check-msrv.sh [--no-clippy]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  PATH="$HOME/.cargo/bin:$PATH"
fi

meta="$(mktemp)"
trap 'rm -f "$meta"' EXIT
# --locked: the check is about the committed lockfile, never a fresh resolution.
cargo metadata --format-version 1 --locked --all-features >"$meta"

python3 - "$meta" <<'EOF'
import json, re, subprocess, sys

def ver(v):
    return tuple(int(x) for x in v.split("."))[:3] + (0,) * (3 - len(v.split(".")))

m = json.load(open(sys.argv[1]))
pkgs = {p["id"]: p for p in m["packages"]}
members = [pkgs[i] for i in m["workspace_members"]]
fail = []

msrvs = {p["name"]: p.get("rust_version") for p in members}
lib = next(p for p in members if p["name"] == "cachebot")
msrv = lib["rust_version"]
# Members allowed their own (higher) rust-version, checked against it.
OWN_MSRV = {"cachebot-follow"}
for name, v in sorted(msrvs.items()):
    if name in OWN_MSRV:
        if not v or ver(v) < ver(msrv):
            fail.append(f"{name}: rust-version {v}, below cachebot's {msrv}")
    elif v != msrv:
        fail.append(f"{name}: rust-version {v}, cachebot's is {msrv} (use rust-version.workspace)")
print(f"[check-msrv] MSRV {msrv} (workspace rust-version)"
      + "".join(f"; {n} {msrvs[n]}" for n in sorted(OWN_MSRV) if n in msrvs))

# 1. The resolved graph. Library: cachebot and cachebot-derive through normal and build
# dependencies; everything else in the lockfile separately.
nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
def closure(names):
    ids, todo = set(), [p["id"] for p in members if p["name"] in names]
    while todo:
        i = todo.pop()
        if i in ids:
            continue
        ids.add(i)
        for d in nodes[i]["deps"]:
            if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
                todo.append(d["pkg"])
    return ids

lib_ids = closure(("cachebot", "cachebot-derive"))
# Without the async features, no tokio: the blocking library does not pull a runtime.
sync_tree = subprocess.run(
    ["cargo", "tree", "--locked", "-p", "cachebot", "-e", "normal,build",
     "--features", "memcached,postcard,r2d2", "--prefix", "none"],
    capture_output=True, text=True, check=True).stdout
if any(line.startswith("tokio ") for line in sync_tree.splitlines()):
    fail.append("the library depends on tokio without its `async` feature")

def too_new(ids, bound=msrv):
    return sorted(
        (pkgs[i]["name"], pkgs[i]["version"], pkgs[i]["rust_version"])
        for i in ids
        if pkgs[i]["source"] and pkgs[i].get("rust_version")
        and ver(pkgs[i]["rust_version"]) > ver(bound)
    )

ext = lambda ids: [i for i in ids if pkgs[i]["source"]]
lib_bad = too_new(lib_ids)
own_ids = {}
for name in sorted(OWN_MSRV):
    if name in msrvs:
        ids = closure((name,)) - lib_ids
        own_ids[name] = ids
        print(f"[check-msrv] {name} graph: {len(ext(ids))} packages beyond the library's,"
              f" checked against {msrvs[name]}")
        for n, v, r in too_new(ids, msrvs[name]):
            fail.append(f"{name} dependency {n} {v} needs Rust {r}")
rest = set(pkgs) - lib_ids - set().union(*own_ids.values())
rest_bad = too_new(rest)
unknown = [pkgs[i]["name"] for i in ext(lib_ids) if not pkgs[i].get("rust_version")]
print(f"[check-msrv] library graph: {len(ext(lib_ids))} packages, {len(lib_bad)} above {msrv}"
      f" ({len(unknown)} declare no rust-version)")
print(f"[check-msrv] rest of Cargo.lock (dev-deps, tests, bench): {len(ext(rest))} packages,"
      f" {len(rest_bad)} above {msrv}")
for n, v, r in lib_bad:
    fail.append(f"library dependency {n} {v} needs Rust {r}")
for n, v, r in rest_bad:
    fail.append(f"dev/test/bench dependency {n} {v} needs Rust {r}")

# 3. Language features newer than the MSRV that rustc 1.95 accepts without clippy noticing.
# (version, what, regex); a line may be excused with a trailing `// msrv-ok`.
LANG = [
    ("1.88.0", "cfg(true)/cfg(false)", r"\bcfg(_attr)?\(\s*(true|false)\b"),
    ("1.88.0", "naked functions", r"#\[unsafe\(naked\)\]|\bnaked_asm!"),
    ("1.87.0", "asm goto", r"\basm!\s*\([^)]*\blabel\b"),
    ("1.87.0", "precise capturing (use<..>) in a trait; 1.82 elsewhere", r"\+\s*use<"),
    ("1.89.0", "inferred const argument ([T; _])", r";\s*_\s*\]"),
    ("1.89.0", "repr(u128)/repr(i128)", r"repr\([^)]*\b[ui]128\b"),
    ("1.95.0", "if-let guard on a match arm", r"\bif\s+let\b[^{};]*=>"),
    ("1.95.0", "cfg_select!", r"\bcfg_select!"),
]
files = subprocess.run(["git", "ls-files", "*.rs"], capture_output=True, text=True,
                       check=True).stdout.split()
member_dirs = [p["manifest_path"].rsplit("/", 1)[0] for p in members
               if p["name"] not in OWN_MSRV]
root = m["workspace_root"]
hits = 0
for f in files:
    full = f"{root}/{f}"
    if not any(full.startswith(d + "/") for d in member_dirs):
        continue
    for no, line in enumerate(open(full, encoding="utf-8"), 1):
        if "msrv-ok" in line:
            continue
        for v, what, rx in LANG:
            if ver(v) > ver(msrv) and re.search(rx, line):
                hits += 1
                fail.append(f"{f}:{no}: {what} needs Rust {v}: {line.strip()}")
for p in members:
    if p["edition"] >= "2024" and ver(msrv) < ver("1.85.0"):
        fail.append(f"{p['name']}: edition {p['edition']} needs Rust 1.85")
    if p["edition"] >= "2024" and ver(msrv) < ver("1.88.0"):
        fail.append(f"{p['name']}: edition 2024 allows let-chains (Rust 1.88): "
                    "extend this script to find them before switching")
print(f"[check-msrv] language scan: {len(files)} files, {hits} uses newer than {msrv}")

# 4. README.
readme = open(f"{root}/README.md", encoding="utf-8").read()
said = re.findall(r"^MSRV: Rust (1\.\d+)", readme, re.M)
if [ver(s) for s in said] != [ver(msrv)]:
    fail.append(f"README.md: 'MSRV: Rust ...' line says {said}, Cargo.toml {msrv}")

for f in fail:
    print(f"[check-msrv] FAIL {f}", file=sys.stderr)
sys.exit(1 if fail else 0)
EOF

if [[ "${1:-}" != --no-clippy ]]; then
  # 2. Only this lint: the workspace's regular clippy run (default features) checks the rest.
  echo "[check-msrv] cargo clippy --workspace --all-targets --all-features (incompatible_msrv)" >&2
  cargo clippy --locked --workspace --all-targets --all-features -- \
    -A clippy::all -D clippy::incompatible_msrv
fi
echo "[check-msrv] ok" >&2
