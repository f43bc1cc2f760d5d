#!/usr/bin/env bash
# Executes a state machine on the local stack with aws-local-stepfunctions, invoking the functions that
# localstack/up.sh (or the test and demo scripts) serve. Prints the execution's result as one JSON line.
#   localstack/run-execution.sh --definition statemachines/export.asl.json --name NAME --input '{...}'
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
stack_env
exec "$here/sfn/node_modules/.bin/node" "$here/sfn/run-execution.mjs" "$@"
