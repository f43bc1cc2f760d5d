#!/usr/bin/env bash
# The main job on the local stack: starts moto server, writes an hour of sample events into the lake bucket,
# exports that hour to a destination bucket as zstd Parquet split at 2 MiB (keys, records and bytes are
# printed as JSON), lists what the destination holds, and stops the stack it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
trap stack_down EXIT
stack_up
cargo build --quiet --locked --bin batch-export
cli=target/debug/batch-export
hour=${DEMO_HOUR:-2026-11-21T10:00:00Z}
end=$(python3 -c "import datetime as d,sys; print((d.datetime.fromisoformat(sys.argv[1].replace('Z','+00:00'))+d.timedelta(hours=1)).isoformat())" "$hour")
$cli make-bucket lake
$cli make-bucket exports
$cli seed-lake --bucket lake --team-id 1 --start "$hour" --events-per-hour "${DEMO_EVENTS:-50000}"
echo "exporting [$hour, $end) of team 1:"
$cli export --lake-bucket lake --team-id 1 --start "$hour" --end "$end" --config '{
  "bucket_name": "exports",
  "prefix": "{year}-{month}-{day}_{table}/",
  "file_format": "Parquet",
  "compression": "zstd",
  "max_file_size_mb": 2
}'
echo "the destination bucket now holds:"
$cli list exports
