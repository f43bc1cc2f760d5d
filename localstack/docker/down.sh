#!/usr/bin/env bash
# Stops the LocalStack container started by localstack/docker/deploy.sh.
set -euo pipefail
docker compose -f "$(dirname "$0")/docker-compose.yml" down
