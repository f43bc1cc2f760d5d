# Functions to start and stop the local AWS stack (moto server on 127.0.0.1), sourced by the scripts.
# Everything it installs or writes lives in .local/ (a Python venv, the server's pid and log).
# MOTO_PORT picks the port (default 5055). Starting is idempotent: a stack already running is reused, and
# `stack_down` only stops a server that this shell's `stack_up` started.

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_STATE="$STACK_ROOT/.local"
MOTO_PORT=${MOTO_PORT:-5055}
MOTO_VERSION=5.2.5
STACK_STARTED_HERE=0

stack_install() {
  mkdir -p "$STACK_STATE"
  local venv="$STACK_STATE/venv"
  if ! "$venv/bin/python" -c "import moto, flask; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null; then
    echo "installing moto server $MOTO_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

stack_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_EC2_METADATA_DISABLED=true
}

stack_alive() {
  curl -fsS "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" >/dev/null 2>&1
}

stack_up() {
  stack_install
  stack_env
  if stack_alive; then
    echo "local stack already running on 127.0.0.1:$MOTO_PORT" >&2
    return 0
  fi
  "$STACK_STATE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$STACK_STATE/moto.log" 2>&1 &
  echo $! >"$STACK_STATE/moto.pid"
  STACK_STARTED_HERE=1
  for _ in $(seq 1 100); do
    stack_alive && { echo "local stack up on 127.0.0.1:$MOTO_PORT" >&2; return 0; }
    sleep 0.2
  done
  echo "moto server did not start; see $STACK_STATE/moto.log" >&2
  tail -20 "$STACK_STATE/moto.log" >&2
  return 1
}

stack_down() {
  if [ "$STACK_STARTED_HERE" = 1 ] && [ -f "$STACK_STATE/moto.pid" ]; then
    kill "$(cat "$STACK_STATE/moto.pid")" 2>/dev/null || true
    rm -f "$STACK_STATE/moto.pid"
    echo "local stack stopped" >&2
  fi
}
