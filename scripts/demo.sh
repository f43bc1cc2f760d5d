#!/usr/bin/env bash
# The main job on the local stack, through the HTTP API and the state machines: starts moto server (S3,
# DynamoDB, KMS, Scheduler, Step Functions) and the real function binaries behind cargo lambda, writes an hour of
# sample events into the lake bucket, creates an export over the API (Parquet + zstd, split at 2 MiB) and a
# backfill of that hour, waits for the backfill's execution (statemachines/backfill.asl.json, which runs
# export.asl.json for the hour), which the local Step Functions endpoint runs by itself, prints it, the backfill,
# the run and the keys written, and stops the stack it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
stack_install
cargo build --quiet --locked --workspace --bins
stack_up
functions_up
cli=target/debug/batch-export
# Yesterday 10:00 UTC unless DEMO_HOUR says otherwise: a run's interval must have ended.
hour=${DEMO_HOUR:-$(date -u -d yesterday +%Y-%m-%dT10:00:00Z)}
end=$(date -u -d "$hour + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
$cli make-bucket exports
$cli seed-lake --bucket "$BATCH_EXPORT_LAKE_BUCKET" --team-id 1 --start "$hour" \
  --events-per-hour "${DEMO_EVENTS:-120000}" --objects-per-hour 6
# Through the HTTP API, as a user would: an API key for project 1, an hourly export (Parquet + zstd, split at
# 2 MiB), and a backfill of the seeded hour.
key=$($cli create-api-key --team-id 1 --label demo)
api="$BATCH_EXPORT_API_URL/api/projects/1/batch_exports"
call() { curl -sS -H "Authorization: Bearer $key" -H "Content-Type: application/json" "$@"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
# Step Functions' JSON API at the local endpoint (the SDKs' AWS_ENDPOINT_URL_SFN).
aws_sfn() { curl -sS -H "Content-Type: application/x-amz-json-1.0" -H "X-Amz-Target: AWSStepFunctions.$1" \
  "$AWS_ENDPOINT_URL_SFN" -d "$2"; }
export_id=$(call -X POST "$api/" -d '{
  "name": "demo export", "interval": "hour",
  "destination": {"type": "S3", "config": {"bucket_name": "exports", "prefix": "{year}-{month}-{day}_{table}/",
    "file_format": "Parquet", "compression": "zstd", "max_file_size_mb": 2}}}' | field id)
echo "created export $export_id (POST $api/)"
backfill_id=$(call -X POST "$api/$export_id/backfills/" -d "{\"start_at\": \"$hour\", \"end_at\": \"$end\"}" | field id)
# The API started the backfill state machine; on the local stack its execution runs by itself (the local Step
# Functions endpoint), and it starts the export state machine for the hour. Wait for it as a user would.
execution="${BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN/:stateMachine:/:execution:}:$backfill_id"
echo "the API started $execution; waiting for it"
for _ in $(seq 1 300); do
  status=$(aws_sfn DescribeExecution "{\"executionArn\": \"$execution\"}" | field status)
  [ "$status" != RUNNING ] && break
  sleep 1
done
echo "execution $status:"
aws_sfn DescribeExecution "{\"executionArn\": \"$execution\"}" | python3 -m json.tool
echo "the backfill (GET $api/$export_id/backfills/$backfill_id/):"
call "$api/$export_id/backfills/$backfill_id/" | python3 -m json.tool
echo "the run (GET $api/$export_id/runs/):"
call "$api/$export_id/runs/" | python3 -m json.tool
echo "the destination bucket now holds:"
$cli list exports
