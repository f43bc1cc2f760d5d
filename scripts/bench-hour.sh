#!/usr/bin/env bash
# A whole hour through the export state machine on the local stack (BENCHMARKS.md §5): release builds of the
# functions, HOUR_EVENTS events (default 10,000,000, plus 1% repeats) of one hour in the lake bucket (moto), an
# export of Parquet + zstd split into files of 100 MB, chunks of HOUR_CHUNK_ROWS rows (default 1,000,000) run
# HOUR_CONCURRENCY at a time (default 2, our cores), through statemachines/export.asl.json in
# aws-local-stepfunctions. Prints the wall time, the planning pass and each chunk's records, seconds and
# events/s, from the functions' logs. Starts the stack and stops what it started.
#   bash scripts/bench-hour.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source localstack/lib.sh
events=${HOUR_EVENTS:-10000000}
export FUNCTION_PROFILE=release SCHEDULER_FROZEN=1
export BATCH_EXPORT_CHUNK_MAX_ROWS=${HOUR_CHUNK_ROWS:-1000000}
export BATCH_EXPORT_CHUNK_CONCURRENCY=${HOUR_CONCURRENCY:-2}
trap stack_down EXIT
stack_install
cargo build --quiet --locked --release --workspace --bins
# A stack left running would serve other binaries and settings: this one starts its own.
if stack_alive || lambda_alive; then
  echo "a local stack is running: stop it first (bash localstack/down.sh)" >&2
  exit 1
fi
stack_up
functions_up
cli="${CARGO_TARGET_DIR:-target}/release/batch-export"
hour=$(date -u -d "2 days ago" +%Y-%m-%dT10:00:00Z)
end=$(date -u -d "$hour + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
$cli make-bucket exports >/dev/null
t0=$(date +%s.%N)
$cli seed-lake --bucket "$BATCH_EXPORT_LAKE_BUCKET" --team-id 1 --start "$hour" --events-per-hour "$events" \
  --objects-per-hour $(((events + 99999) / 100000))
echo "seeded in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
$cli create-export --team-id 1 --id hour-bench --interval hour --config \
  '{"bucket_name": "exports", "prefix": "hour/", "file_format": "Parquet", "compression": "zstd",
    "max_file_size_mb": 100}' >/dev/null
logs="$STACK_STATE/function-export-chunk.log $STACK_STATE/function-plan-run.log"
marks=$(for f in $logs; do wc -l <"$f"; done | paste -sd' ')
scheduled=$(date -u -d "$end + 1 minute" +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s.%N)
result=$(localstack/run-execution.sh --definition statemachines/export.asl.json --name "hour-bench-$(date +%s)" \
  --input "{\"team_id\": 1, \"export_id\": \"hour-bench\", \"scheduled_time\": \"$scheduled\"}")
wall=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
echo "$result" | head -c 600; echo
# The lines this run added to the functions' logs.
new_lines() { local file=$1 mark=$2; tail -n +"$((mark + 1))" "$file"; }
read -r chunk_mark plan_mark <<<"$marks"
python3 - "$wall" "$events" "${BATCH_EXPORT_CHUNK_CONCURRENCY}" \
  <(new_lines "$STACK_STATE/function-plan-run.log" "$plan_mark") \
  <(new_lines "$STACK_STATE/function-export-chunk.log" "$chunk_mark") <<'EOF'
import re, sys
wall, events, concurrency = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
field = lambda line, name: re.search(name + r'=([0-9.]+)', line).group(1)
plans = [l for l in open(sys.argv[4]) if ': planned run ' in l]
chunks = [l for l in open(sys.argv[5]) if 'chunk exported' in l]
plan = float(field(plans[-1], 'seconds'))
rows = sorted((int(field(l, 'chunk')), int(field(l, 'records')), float(field(l, 'seconds'))) for l in chunks)
records = sum(r for _, r, _ in rows)
print(f"\n| hour | events in the lake | records exported | chunks | concurrency | wall time (s) | planning (s) |")
print("|---|---|---|---|---|---|---|")
print(f"| {events:,} events | {events + events // 100:,} | {records:,} | {len(rows)} | {concurrency} | {wall} | {plan:.1f} |")
print("\n| chunk | records | seconds | events/s |")
print("|---|---|---|---|")
for c, r, s in rows:
    print(f"| {c} | {r:,} | {s:.1f} | {r / s / 1000:.0f}k |")
rate = records / sum(s for _, _, s in rows)
slowest = max(s for _, _, s in rows)
print(f"\nper-chunk rate (records / chunk seconds, all chunks): {rate / 1000:.0f}k events/s")
print(f"all chunks at once (Lambda's fan-out): planning {plan:.1f} s + the slowest chunk {slowest:.1f} s "
      f"= {plan + slowest:.1f} s, plus the manifest and the run's bookkeeping")
EOF
