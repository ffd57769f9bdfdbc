#!/usr/bin/env bash
# kod's main job on its built-in default. Today: plan the Debian example
# (installing it onto a disk image and boot-checking it comes with the
# install issue, and will replace this).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cargo build --release --locked -p kod
./target/release/kod -c examples/debian-vm plan "$@"
