#!/usr/bin/env bash
# Starts the local AWS stack (moto server on 127.0.0.1:${MOTO_PORT:-5055}) and leaves it running;
# `source localstack/env.sh` then points the AWS SDK at it. Stop it with localstack/down.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stack_up
