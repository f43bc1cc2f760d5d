#!/usr/bin/env bash
# The whole test suite: installs and starts the local stack (moto server on 127.0.0.1), runs every unit and
# integration test, and stops the stack it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
stack_up
cargo test --workspace --locked "$@"
