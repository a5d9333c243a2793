#!/bin/sh
# Ports cranelift-jit's own public programs to jitcache-cranelift by changing only their
# `use` line and their Cargo dependency, outside the repository, and runs each twice in
# new processes (cold, then warm) with the drop-in's counters on stderr.
#
#   cranelift/port/port.sh [work-dir]
#
# The programs come from the cranelift-jit crate in Cargo's registry (`cargo fetch` puts
# it there): examples/jit-minimal.rs, and tests/basic.rs (run as a test binary). Nothing
# of them is copied into this repository.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cranelift-jit-0.135.8 | head -n 1)
[ -d "$src" ] || { echo "cranelift-jit 0.135.8 is not in the registry: run cargo fetch" >&2; exit 2; }
mkdir -p "$work/port/examples" "$work/port/tests" "$work/port/src"
cd "$work/port"
# The Cargo dependency: cranelift-jit's dependencies, with jitcache-cranelift in place of
# cranelift-jit.
cat > Cargo.toml <<TOML
[package]
name = "cranelift-jit-port"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
jitcache-cranelift = { path = "$repo/cranelift" }
cranelift = "0.135"
cranelift-codegen = "0.135"
cranelift-entity = "0.135"
cranelift-frontend = "0.135"
cranelift-module = "0.135"
cranelift-native = "0.135"
target-lexicon = "0.13"
TOML
: > src/lib.rs
# The use lines.
sed 's/^use cranelift_jit::{JITBuilder, JITModule};$/use jitcache_cranelift::{JITBuilder, JITModule};/' \
    "$src/examples/jit-minimal.rs" > examples/jit-minimal.rs
sed 's/^use cranelift_jit::\*;$/use jitcache_cranelift::*;/' "$src/tests/basic.rs" > tests/basic.rs
for f in examples/jit-minimal.rs tests/basic.rs; do
    echo "--- diff of $f"
    diff -u "$src/$f" "$f" || true
done
cp "$repo/Cargo.lock" Cargo.lock
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/port}"
cargo build -q --example jit-minimal --tests
cache="$work/cache"
rm -rf "$cache"
for run in cold warm; do
    echo "--- jit-minimal, $run"
    JITCACHE_DIR="$cache" JITCACHE_CRANELIFT_STATS=1 cargo run -q --example jit-minimal
    echo "exit status $?"
done
for run in cold warm; do
    echo "--- tests/basic.rs, $run"
    JITCACHE_DIR="$cache" JITCACHE_CRANELIFT_STATS=1 cargo test -q --test basic -- --test-threads 1 --nocapture 2>&1 | grep -E "jitcache-cranelift|test result"
done
