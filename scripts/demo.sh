#!/usr/bin/env bash
# The main job on the local stack, through the HTTP API and the state machines: starts moto server (S3,
# DynamoDB, KMS, Scheduler, Step Functions) and the real function binaries behind cargo lambda, writes an hour of
# two hours of sample events into the lake bucket, creates an export over the API (Parquet + zstd, split at
# 2 MiB), lets its schedule fire on the local scheduler's clock (the export state machine then runs the later hour
# by itself), creates a backfill of the earlier hour (which also runs by itself), prints the backfill, the runs
# and the keys written. Then events in: posthog-python sends events to capture, the lake writer writes them into
# this hour's partition, and the engine exports the hour so far. Stops the stack it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
stack_install
sdk_install
cargo build --quiet --locked --workspace --bins
stack_up
functions_up
cli="${CARGO_TARGET_DIR:-target}/debug/batch-export"
# Yesterday 10:00 UTC unless DEMO_HOUR says otherwise: a run's interval must have ended. The hour before it is
# seeded too, for the backfill.
hour=${DEMO_HOUR:-$(date -u -d yesterday +%Y-%m-%dT10:00:00Z)}
end=$(date -u -d "$hour + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
before=$(date -u -d "$hour - 1 hour" +%Y-%m-%dT%H:%M:%SZ)
$cli make-bucket exports
$cli seed-lake --bucket "$BATCH_EXPORT_LAKE_BUCKET" --team-id 1 --start "$before" --hours 2 \
  --events-per-hour "${DEMO_EVENTS:-120000}" --objects-per-hour 6
# Through the HTTP API, as a user would: an API key for project 1 and an hourly export (Parquet + zstd, split at
# 2 MiB), which its schedule runs; then a backfill of the hour before.
key=$($cli create-api-key --team-id 1 --label demo)
api="$BATCH_EXPORT_API_URL/api/projects/1/batch_exports"
call() { curl -sS -H "Authorization: Bearer $key" -H "Content-Type: application/json" "$@"; }
field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
# Step Functions' JSON API at the local endpoint (the SDKs' AWS_ENDPOINT_URL_SFN).
aws_sfn() { curl -sS -H "Content-Type: application/x-amz-json-1.0" -H "X-Amz-Target: AWSStepFunctions.$1" \
  "$AWS_ENDPOINT_URL_SFN" -d "$2"; }
wait_for() { # wait_for EXECUTION_ARN: until it ends; prints its status
  local status
  for _ in $(seq 1 300); do
    status=$(aws_sfn DescribeExecution "{\"executionArn\": \"$1\"}" | field status)
    [ "$status" != RUNNING ] && break
    sleep 1
  done
  echo "$status"
}
export_id=$(call -X POST "$api/" -d '{
  "name": "demo export", "interval": "hour",
  "destination": {"type": "S3", "config": {"bucket_name": "exports", "prefix": "{year}-{month}-{day}_{table}/",
    "file_format": "Parquet", "compression": "zstd", "max_file_size_mb": 2}}}' | field id)
echo "created export $export_id (POST $api/) and its schedule batch-export-$export_id (cron(1 * * * ? *))"
# The local scheduler fires the schedule on its clock: set it to two seconds before the firing for $hour
# (a minute after the hour ends), and the schedule fires as EventBridge Scheduler's would.
fire_at=$(date -u -d "$end + 1 minute" +%Y-%m-%dT%H:%M:%SZ)
clock=$(date -u -d "$fire_at - 2 seconds" +%Y-%m-%dT%H:%M:%SZ)
curl -sS -X POST "$LOCAL_SCHEDULER_URL/clock" -d "{\"now\": \"$clock\"}" >/dev/null
echo "the scheduler's clock is now $clock; waiting for the firing at $fire_at"
execution="${BATCH_EXPORT_STATE_MACHINE_ARN/:stateMachine:/:execution:}:$export_id-$(date -u -d "$end" +%Y%m%dT%H%M%SZ)"
for _ in $(seq 1 60); do
  aws_sfn DescribeExecution "{\"executionArn\": \"$execution\"}" | grep -q '"status"' && break
  sleep 1
done
echo "the schedule fired: $execution $(wait_for "$execution")"
backfill_id=$(call -X POST "$api/$export_id/backfills/" -d "{\"start_at\": \"$before\", \"end_at\": \"$hour\"}" | field id)
# The API started the backfill state machine; its execution runs by itself too, and it starts the export state
# machine for the hour before.
execution="${BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN/:stateMachine:/:execution:}:$backfill_id"
echo "the API started the backfill $execution: $(wait_for "$execution")"
echo "the backfill (GET $api/$export_id/backfills/$backfill_id/):"
call "$api/$export_id/backfills/$backfill_id/" | python3 -m json.tool
echo "the runs (GET $api/$export_id/runs/):"
call "$api/$export_id/runs/" | python3 -m json.tool
echo "the destination bucket now holds:"
$cli list exports
# Events in: the official posthog-python SDK sends events to capture with project 2's token; the lake writer
# (fed by the queue) writes them, and the person changes of the identified users, into this hour's partitions.
token=$($cli create-project-token --team-id 2)
echo "capture ($BATCH_EXPORT_CAPTURE_URL): posthog-python sends 500 events and identifies 10 users of project 2"
"$STACK_STATE/sdk-venv/bin/python" tests/sdk/send_python.py "$BATCH_EXPORT_CAPTURE_URL" "$token" 500 >/dev/null
for _ in $(seq 1 60); do
  $cli list "$BATCH_EXPORT_LAKE_BUCKET" | grep -q "persons/team_id=2/" && break
  sleep 1
done
echo "the lake writer wrote:"
$cli list "$BATCH_EXPORT_LAKE_BUCKET" | grep "team_id=2/"
now_hour=$(date -u +%Y-%m-%dT%H:00:00Z)
echo "the hour so far, exported from the lake by the engine the runs use:"
$cli export --lake-bucket "$BATCH_EXPORT_LAKE_BUCKET" --team-id 2 --start "$now_hour" \
  --end "$(date -u -d "$now_hour + 1 hour" +%Y-%m-%dT%H:%M:%SZ)" --config '{"bucket_name": "exports", "prefix": "captured/"}'
