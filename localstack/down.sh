#!/usr/bin/env bash
# Stops the local AWS stack started by localstack/up.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
STACK_STARTED_HERE=1
stack_down
