#!/usr/bin/env bash
# The whole test suite: lints the SAM template, installs and starts the local stack (moto server for the AWS
# services, the function binaries behind cargo lambda, aws-local-stepfunctions for the state machines, the
# BigQuery emulator; the PostHog SDKs the capture tests send with), runs every unit and integration test, and
# stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
# Schedules fire only when a test says so (the suite creates many; none may fire on the wall clock mid-test).
export SCHEDULER_FROZEN=1
stack_install
sdk_install
sam_install
echo "sam validate --lint template.yaml" >&2
SAM_CLI_TELEMETRY=0 AWS_REGION=${AWS_REGION:-us-east-1} "$STACK_STATE/sam-venv/bin/sam" validate --lint --template template.yaml
cargo build --locked --workspace --bins
stack_up
functions_up
bq_up
cargo test --workspace --locked "$@"
