#!/usr/bin/env bash
# The main job on the local stack, through the state machine: starts moto server (S3, DynamoDB) and the real
# function binaries behind cargo lambda, writes an hour of sample events into the lake bucket, creates an
# export record (Parquet + zstd, split at 2 MiB), executes statemachines/export.asl.json for that hour with
# aws-local-stepfunctions, prints the execution result, the run record and the keys written, and stops the
# stack it started.
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
$cli create-export --team-id 1 --id demo-export --interval hour --config '{
  "bucket_name": "exports",
  "prefix": "{year}-{month}-{day}_{table}/",
  "file_format": "Parquet",
  "compression": "zstd",
  "max_file_size_mb": 2
}'
execution="demo-export-$(date -u -d "$end" +%Y%m%dT%H%M)-$(date +%s)"
input="{\"team_id\": 1, \"export_id\": \"demo-export\", \"scheduled_time\": \"$(date -u -d "$end + 1 minute" +%Y-%m-%dT%H:%M:%SZ)\"}"
echo "executing statemachines/export.asl.json as $execution with input $input"
localstack/run-execution.sh --definition statemachines/export.asl.json --name "$execution" --input "$input" \
  | python3 -m json.tool
echo "the run record:"
$cli show-run --export-id demo-export --end "$end"
echo "the destination bucket now holds:"
$cli list exports
