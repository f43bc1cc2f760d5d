#!/usr/bin/env bash
# Stops the local stack started by localstack/up.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stack_stop_all
