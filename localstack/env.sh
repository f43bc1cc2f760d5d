# Source this to point the AWS SDK (and the CLI) at the local stack.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
stack_env
