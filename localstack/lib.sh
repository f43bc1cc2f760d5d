# Functions to start and stop the local AWS stack, sourced by the scripts. No Docker: everything runs as local
# processes on 127.0.0.1.
#
# - moto server (S3, DynamoDB, KMS; Scheduler and Step Functions control planes) on MOTO_PORT (default 5055), in a Python venv in .local/venv;
# - the Lambda functions: `cargo lambda watch --only-lambda-apis` serves the Lambda Invoke and Runtime APIs on
#   LAMBDA_PORT (default 9055) and the real function binaries from target/debug (target/$FUNCTION_PROFILE:
#   `release` for scripts/bench-hour.sh) poll it (FUNCTION_INSTANCES instances each, default 2);
# - the BigQuery emulator (bqemulator, FastAPI + DuckDB, from PyPI) on BQ_PORT (default 9050), in .local/bq-venv
#   (`bq_install`, `bq_up`; the tests use it, the demo does not);
# - the Step Functions data plane: localstack/sfn/server.mjs on SFN_PORT (default 9056), which the SDKs reach
#   through AWS_ENDPOINT_URL_SFN: the executions the functions and the API start run there by themselves, in
#   aws-local-stepfunctions (Node 22, both from npm, in localstack/sfn/node_modules), against those functions;
#   the control plane (state machine definitions) stays on moto. `localstack/run-execution.sh` runs one
#   execution by hand.
# - the EventBridge Scheduler that fires: localstack/scheduler.py on SCHEDULER_PORT (default 9057) fires the
#   schedules stored in moto by invoking their target functions, on a clock that tests and the demo can set
#   (`SCHEDULER_FROZEN=1`: the clock stands still and only explicit calls fire; the test suite runs it so).
# - Lambda's SQS event source: localstack/sqs_poller.py (health on SQS_POLLER_PORT, default 9058) feeds capture's
#   queue (in moto) to the lake-writer function in batches, deleting what it wrote.
# - API Gateway's HTTP API in front of capture: localstack/http_api.py on CAPTURE_PORT (default 9059), where
#   PostHog's SDKs send events (BATCH_EXPORT_CAPTURE_URL).
#
# Starting is idempotent: a stack already running is reused, and `stack_down` only stops what this shell
# started. Every process started is also listed in .local/stack.pids, which `stack_stop_all` (down.sh) stops.
# Logs go to .local/*.log.

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_STATE="$STACK_ROOT/.local"
MOTO_PORT=${MOTO_PORT:-5055}
LAMBDA_PORT=${LAMBDA_PORT:-9055}
SFN_PORT=${SFN_PORT:-9056}
SCHEDULER_PORT=${SCHEDULER_PORT:-9057}
SQS_POLLER_PORT=${SQS_POLLER_PORT:-9058}
CAPTURE_PORT=${CAPTURE_PORT:-9059}
CRONITER_VERSION=6.0.0
FUNCTION_INSTANCES=${FUNCTION_INSTANCES:-2}
MOTO_VERSION=5.2.5
CARGO_LAMBDA_VERSION=1.9.2
STACK_FUNCTIONS="start-run plan-run export-chunk write-manifest finish-run trigger-run advance-backfill api bigquery-load bigquery-merge capture lake-writer"
STACK_PIDS=()

started() { # records a process this shell started
  STACK_PIDS+=("$1")
  echo "$1" >>"$STACK_STATE/stack.pids"
}

stack_install() {
  mkdir -p "$STACK_STATE"
  local venv="$STACK_STATE/venv"
  if ! "$venv/bin/python" -c "import moto, flask, croniter; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null \
    || ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
    echo "installing moto server $MOTO_VERSION and cargo-lambda $CARGO_LAMBDA_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      "cargo-lambda==$CARGO_LAMBDA_VERSION" "croniter==$CRONITER_VERSION"
  fi
  if ! [ -x "$STACK_ROOT/localstack/sfn/node_modules/.bin/node" ] \
    || ! [ -d "$STACK_ROOT/localstack/sfn/node_modules/aws-local-stepfunctions" ]; then
    echo "installing aws-local-stepfunctions and Node 22 into localstack/sfn/node_modules" >&2
    (cd "$STACK_ROOT/localstack/sfn" && npm ci --no-audit --no-fund --silent)
  fi
}

# The BigQuery emulator, in its own venv, with the DuckDB extension it needs installed offline (see
# ../shared/notes/local-stack.md: pinned duckdb, spatial extension copied into the emulator's HOME).
BQ_PORT=${BQ_PORT:-9050}
BQEMULATOR_VERSION=1.4.0
DUCKDB_VERSION=1.5.5
bq_install() {
  local venv="$STACK_STATE/bq-venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m, jwt; assert m.version('bqemulator') == '$BQEMULATOR_VERSION'" 2>/dev/null; then
    echo "installing bqemulator $BQEMULATOR_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "bqemulator==$BQEMULATOR_VERSION" \
      "duckdb==$DUCKDB_VERSION" "duckdb-extension-spatial==$DUCKDB_VERSION" numpy PyJWT cryptography
  fi
  local home="$STACK_STATE/bq-home" extension
  extension=$("$venv/bin/python" -c "import duckdb_extension_spatial, os; print(os.path.dirname(duckdb_extension_spatial.__file__))")/extensions/v$DUCKDB_VERSION/spatial.duckdb_extension
  mkdir -p "$home/.duckdb/extensions/v$DUCKDB_VERSION/linux_amd64" "$STACK_STATE/bq-uploads" "$STACK_STATE/bq-gcs"
  cp -u "$extension" "$home/.duckdb/extensions/v$DUCKDB_VERSION/linux_amd64/"
}

bq_alive() {
  curl -fsS "http://127.0.0.1:$BQ_PORT/bigquery/v2/projects/test-proj/datasets" >/dev/null 2>&1
}

# Starts the BigQuery emulator (project `test-proj`) unless one is running.
bq_up() {
  bq_install
  export BATCH_EXPORT_BIGQUERY_EMULATOR="http://127.0.0.1:$BQ_PORT"
  export BATCH_EXPORT_BQ_PYTHON="$STACK_STATE/bq-venv/bin/python"
  if bq_alive; then
    echo "BigQuery emulator already running on 127.0.0.1:$BQ_PORT" >&2
    return 0
  fi
  HOME="$STACK_STATE/bq-home" BQEMU_UPLOAD_STAGING_DIR="$STACK_STATE/bq-uploads" BQEMU_GCS_LOCAL_ROOT="$STACK_STATE/bq-gcs" \
    "$STACK_STATE/bq-venv/bin/bqemulator" start --rest-host 127.0.0.1 --rest-port "$BQ_PORT" --grpc-host 127.0.0.1 \
    --grpc-port $((BQ_PORT + 10)) --project test-proj --log-level warning >"$STACK_STATE/bq.log" 2>&1 &
  started $!
  wait_for bq_alive "the BigQuery emulator" "$STACK_STATE/bq.log"
  echo "BigQuery emulator up on 127.0.0.1:$BQ_PORT" >&2
}

# The official PostHog SDKs the tests send events with: posthog-python in .local/sdk-venv, posthog-node in
# tests/sdk/node_modules (run with the Node 22 of localstack/sfn).
POSTHOG_PYTHON_VERSION=7.91.1
sdk_install() {
  local venv="$STACK_STATE/sdk-venv"
  if ! "$venv/bin/python" -c "import posthog; assert posthog.VERSION == '$POSTHOG_PYTHON_VERSION'" 2>/dev/null; then
    echo "installing posthog-python $POSTHOG_PYTHON_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "posthog==$POSTHOG_PYTHON_VERSION"
  fi
  if ! [ -d "$STACK_ROOT/tests/sdk/node_modules/posthog-node" ]; then
    echo "installing posthog-node into tests/sdk/node_modules" >&2
    (cd "$STACK_ROOT/tests/sdk" && npm ci --no-audit --no-fund --silent)
  fi
}

# The SAM CLI (for `sam validate --lint` in the tests, and `sam build`/`sam deploy`), in its own venv.
SAM_VERSION=1.170.0
sam_install() {
  local venv="$STACK_STATE/sam-venv"
  if ! "$venv/bin/sam" --version 2>/dev/null | grep -q "$SAM_VERSION"; then
    echo "installing aws-sam-cli $SAM_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION"
  fi
}

stack_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$LAMBDA_PORT"
  export AWS_ENDPOINT_URL_SFN="http://127.0.0.1:$SFN_PORT"
  # The local scheduler's clock and firings (localstack/scheduler.py), for the tests and the demo.
  export LOCAL_SCHEDULER_URL="http://127.0.0.1:$SCHEDULER_PORT"
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_EC2_METADATA_DISABLED=true
  # What the functions are configured with on the local stack (template.yaml sets the same on AWS).
  export BATCH_EXPORT_LAKE_BUCKET=${BATCH_EXPORT_LAKE_BUCKET:-batch-exports-lake}
  export BATCH_EXPORT_WORK_BUCKET=${BATCH_EXPORT_WORK_BUCKET:-batch-exports-work}
  export BATCH_EXPORT_EXPORTS_TABLE=${BATCH_EXPORT_EXPORTS_TABLE:-batch-exports}
  export BATCH_EXPORT_RUNS_TABLE=${BATCH_EXPORT_RUNS_TABLE:-batch-export-runs}
  export BATCH_EXPORT_KMS_KEY_ID=${BATCH_EXPORT_KMS_KEY_ID:-alias/batch-exports}
  export BATCH_EXPORT_BACKFILLS_TABLE=${BATCH_EXPORT_BACKFILLS_TABLE:-batch-export-backfills}
  export BATCH_EXPORT_API_KEYS_TABLE=${BATCH_EXPORT_API_KEYS_TABLE:-batch-export-api-keys}
  export BATCH_EXPORT_PERSONS_TABLE=${BATCH_EXPORT_PERSONS_TABLE:-batch-export-persons}
  export BATCH_EXPORT_SCHEDULE_GROUP=${BATCH_EXPORT_SCHEDULE_GROUP:-batch-exports}
  # The emulator's account and region: the API creates schedules targeting trigger-run and starts the backfill
  # state machine there (moto records both; the local interpreter runs state machines).
  local account=123456789012
  export BATCH_EXPORT_SCHEDULE_TARGET_ARN=${BATCH_EXPORT_SCHEDULE_TARGET_ARN:-arn:aws:lambda:$AWS_REGION:$account:function:trigger-run}
  export BATCH_EXPORT_SCHEDULER_ROLE_ARN=${BATCH_EXPORT_SCHEDULER_ROLE_ARN:-arn:aws:iam::$account:role/batch-exports-scheduler}
  export BATCH_EXPORT_STATE_MACHINE_ARN=${BATCH_EXPORT_STATE_MACHINE_ARN:-arn:aws:states:$AWS_REGION:$account:stateMachine:batch-export}
  export BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN=${BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN:-arn:aws:states:$AWS_REGION:$account:stateMachine:batch-export-backfill}
  # BigQuery runs call the emulator (which ignores auth; the token exchange still happens at each export's
  # token_uri).
  export BATCH_EXPORT_BIGQUERY_ENDPOINT=${BATCH_EXPORT_BIGQUERY_ENDPOINT:-http://127.0.0.1:${BQ_PORT:-9050}}
  # The API function's HTTP endpoint (cargo lambda's function-URL emulation).
  export BATCH_EXPORT_API_URL="http://127.0.0.1:$LAMBDA_PORT/lambda-url/api"
  # Capture: where PostHog's SDKs send events (the SDKs' `host`), and the queue it feeds the lake writer from.
  export BATCH_EXPORT_CAPTURE_URL="http://127.0.0.1:$CAPTURE_PORT"
  export BATCH_EXPORT_CAPTURE_QUEUE_URL=${BATCH_EXPORT_CAPTURE_QUEUE_URL:-http://127.0.0.1:$MOTO_PORT/123456789012/batch-export-capture}
  # The local stack's endpoints (moto, the token stub) are on 127.0.0.1: allow private endpoints here only.
  export BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS=${BATCH_EXPORT_ALLOW_PRIVATE_ENDPOINTS:-true}
  # Small chunks, so that sample intervals go through the Map state in several chunks.
  export BATCH_EXPORT_CHUNK_MAX_ROWS=${BATCH_EXPORT_CHUNK_MAX_ROWS:-50000}
  export BATCH_EXPORT_CHUNK_CONCURRENCY=${BATCH_EXPORT_CHUNK_CONCURRENCY:-$FUNCTION_INSTANCES}
}

stack_alive() {
  curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" >/dev/null 2>&1
}

scheduler_alive() {
  (exec 3<>"/dev/tcp/127.0.0.1/$SCHEDULER_PORT") 2>/dev/null
}

sfn_alive() {
  (exec 3<>"/dev/tcp/127.0.0.1/$SFN_PORT") 2>/dev/null
}

lambda_alive() {
  # A TCP connect: an HTTP request to cargo lambda would be taken as an invocation and wait for a function.
  (exec 3<>"/dev/tcp/127.0.0.1/$LAMBDA_PORT") 2>/dev/null
}

wait_for() { # wait_for CHECK NAME LOG
  for _ in $(seq 1 150); do
    "$1" && return 0
    sleep 0.2
  done
  echo "$2 did not start; see $3" >&2
  tail -20 "$3" >&2
  return 1
}

# Starts moto server (S3, DynamoDB) and creates the lake and work buckets and the tables.
stack_up() {
  stack_install
  stack_env
  if stack_alive; then
    echo "moto server already running on 127.0.0.1:$MOTO_PORT" >&2
  else
    "$STACK_STATE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$STACK_STATE/moto.log" 2>&1 &
    started $!
    wait_for stack_alive "moto server" "$STACK_STATE/moto.log"
    echo "moto server up on 127.0.0.1:$MOTO_PORT" >&2
  fi
  if sfn_alive; then
    echo "Step Functions endpoint already running on 127.0.0.1:$SFN_PORT" >&2
  else
    "$STACK_ROOT/localstack/sfn/node_modules/.bin/node" "$STACK_ROOT/localstack/sfn/server.mjs" "$SFN_PORT" \
      >"$STACK_STATE/sfn.log" 2>&1 &
    started $!
    wait_for sfn_alive "the Step Functions endpoint" "$STACK_STATE/sfn.log"
    echo "Step Functions endpoint up on 127.0.0.1:$SFN_PORT (executions run by themselves)" >&2
  fi
}

# Serves the function binaries (build them first: cargo build --workspace --bins) behind the Lambda APIs.
functions_up() {
  local bin="${CARGO_TARGET_DIR:-$STACK_ROOT/target}/${FUNCTION_PROFILE:-debug}"
  "$bin/batch-export" setup-local --statemachines "$STACK_ROOT/statemachines" >&2
  if lambda_alive; then
    echo "Lambda endpoint already running on 127.0.0.1:$LAMBDA_PORT" >&2
    return 0
  fi
  (cd "$STACK_ROOT" && exec "$STACK_STATE/venv/bin/cargo-lambda" lambda watch --only-lambda-apis --ignore-changes \
    -A 127.0.0.1 -P "$LAMBDA_PORT") >"$STACK_STATE/lambda.log" 2>&1 &
  started $!
  wait_for lambda_alive "cargo lambda watch" "$STACK_STATE/lambda.log"
  local f i
  for f in $STACK_FUNCTIONS; do
    for i in $(seq 1 "$FUNCTION_INSTANCES"); do
      AWS_LAMBDA_FUNCTION_NAME=$f AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1769 \
        AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$LAMBDA_PORT/.rt/$f" NO_COLOR=1 \
        "$bin/$f" >>"$STACK_STATE/function-$f.log" 2>&1 &
      started $!
    done
  done
  echo "functions up behind http://127.0.0.1:$LAMBDA_PORT ($STACK_FUNCTIONS; $FUNCTION_INSTANCES instances each)" >&2
  scheduler_up
  sqs_poller_up
  capture_api_up
}

capture_api_alive() {
  (exec 3<>"/dev/tcp/127.0.0.1/$CAPTURE_PORT") 2>/dev/null
}

# API Gateway's HTTP API in front of the capture function.
capture_api_up() {
  if capture_api_alive; then
    echo "capture's HTTP API already running on 127.0.0.1:$CAPTURE_PORT" >&2
    return 0
  fi
  "$STACK_STATE/venv/bin/python" "$STACK_ROOT/localstack/http_api.py" "$CAPTURE_PORT" capture \
    >"$STACK_STATE/capture-api.log" 2>&1 &
  started $!
  wait_for capture_api_alive "capture's HTTP API" "$STACK_STATE/capture-api.log"
  echo "capture up on $BATCH_EXPORT_CAPTURE_URL (/batch/, /e/, ...)" >&2
}

sqs_poller_alive() {
  curl -fsS "http://127.0.0.1:$SQS_POLLER_PORT/health" >/dev/null 2>&1
}

# Lambda's SQS event source for the lake writer (after the functions it invokes).
sqs_poller_up() {
  if sqs_poller_alive; then
    echo "SQS poller already running on 127.0.0.1:$SQS_POLLER_PORT" >&2
    return 0
  fi
  "$STACK_STATE/venv/bin/python" "$STACK_ROOT/localstack/sqs_poller.py" "$SQS_POLLER_PORT" \
    "$BATCH_EXPORT_CAPTURE_QUEUE_URL" lake-writer >"$STACK_STATE/sqs-poller.log" 2>&1 &
  started $!
  wait_for sqs_poller_alive "the SQS poller" "$STACK_STATE/sqs-poller.log"
  echo "SQS poller up: $BATCH_EXPORT_CAPTURE_QUEUE_URL → lake-writer" >&2
}

# The scheduler that fires the schedules (after the functions it invokes).
scheduler_up() {
  if scheduler_alive; then
    echo "scheduler already running on 127.0.0.1:$SCHEDULER_PORT" >&2
    return 0
  fi
  local frozen=()
  [ "${SCHEDULER_FROZEN:-}" = 1 ] && frozen=(--frozen)
  "$STACK_STATE/venv/bin/python" "$STACK_ROOT/localstack/scheduler.py" "$SCHEDULER_PORT" "${frozen[@]}" \
    >"$STACK_STATE/scheduler.log" 2>&1 &
  started $!
  wait_for scheduler_alive "the scheduler" "$STACK_STATE/scheduler.log"
  echo "scheduler up on 127.0.0.1:$SCHEDULER_PORT (${frozen[*]:-wall clock})" >&2
}

stack_down() {
  if [ "${#STACK_PIDS[@]}" -gt 0 ]; then
    kill "${STACK_PIDS[@]}" 2>/dev/null || true
    wait "${STACK_PIDS[@]}" 2>/dev/null || true
    local pid
    for pid in "${STACK_PIDS[@]}"; do
      sed -i "/^$pid\$/d" "$STACK_STATE/stack.pids" 2>/dev/null || true
    done
    STACK_PIDS=()
    echo "local stack stopped" >&2
  fi
}

# Stops every process of the local stack that up.sh (or any script) started and left running.
stack_stop_all() {
  if [ -f "$STACK_STATE/stack.pids" ]; then
    xargs -r kill <"$STACK_STATE/stack.pids" 2>/dev/null || true
    rm -f "$STACK_STATE/stack.pids"
    echo "local stack stopped" >&2
  fi
}
