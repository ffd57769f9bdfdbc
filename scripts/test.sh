#!/usr/bin/env bash
# The whole test suite, every tier (root, net, vm), as CI runs it.
# Run as root on a Debian machine that reaches the Debian archive.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

export KOD_TEST_ROOT=1 KOD_TEST_NET=1 KOD_TEST_VM=1
# A gated test that would skip with its switch on fails instead.
export KOD_TEST_NO_SKIP=1
export CARGO_TERM_COLOR=never
# A one-off build gains nothing from incremental state, which costs gigabytes.
export CARGO_INCREMENTAL=0

# Disk space is the first thing a full build runs out of: say what there is.
df -h . | tail -n 1 | sed 's/^/disk: /'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --profile ci --locked
cargo test --workspace --doc --locked
