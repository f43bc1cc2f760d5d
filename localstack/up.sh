#!/usr/bin/env bash
# Starts the whole local stack and leaves it running: moto server (S3, DynamoDB) on 127.0.0.1:${MOTO_PORT:-5055},
# the buckets and tables, the real Lambda binaries behind cargo lambda on 127.0.0.1:${LAMBDA_PORT:-9055}, and
# the Step Functions endpoint on 127.0.0.1:${SFN_PORT:-9056}, where started executions run by themselves. Then
# `source localstack/env.sh` points the AWS SDK at it. Stop it with localstack/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
cargo build --quiet --locked --workspace --bins
stack_up
functions_up
