#!/usr/bin/env bash
# The whole test suite: installs and starts the local stack (moto server for S3 and DynamoDB, the function
# binaries behind cargo lambda, aws-local-stepfunctions for the state machine), checks the SAM template, runs
# every unit and integration test, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
stack_install
cargo build --locked --workspace --bins
stack_up
functions_up
cargo test --workspace --locked "$@"
