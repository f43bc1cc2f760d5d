#!/usr/bin/env bash
# Deploys the SAM stack into LocalStack (Docker and LOCALSTACK_AUTH_TOKEN required; not run in CI) and prints
# its outputs. The Docker-free local stack that the tests and the demo use is localstack/up.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source localstack/lib.sh
sam_install
"$STACK_STATE/sam-venv/bin/pip" install --quiet --disable-pip-version-check aws-sam-cli-local
docker compose -f localstack/docker/docker-compose.yml up -d
until curl -fsS http://127.0.0.1:4566/_localstack/health >/dev/null 2>&1; do sleep 1; done
export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
sam="$STACK_STATE/sam-venv/bin"
"$sam/sam" build --beta-features
"$sam/samlocal" deploy --stack-name batch-exports --resolve-s3 --capabilities CAPABILITY_IAM \
  --no-confirm-changeset --no-fail-on-empty-changeset
echo "deployed; stack outputs (state machine ARN, buckets, tables):"
"$STACK_STATE/venv/bin/python" - <<'PY'
import boto3
for o in boto3.client("cloudformation").describe_stacks(StackName="batch-exports")["Stacks"][0]["Outputs"]:
    print(f'{o["OutputKey"]}: {o["OutputValue"]}')
PY
