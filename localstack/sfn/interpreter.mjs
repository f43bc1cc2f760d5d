// What both local ways of executing a state machine share (run-execution.mjs, one execution from the command
// line; server.mjs, the local Step Functions endpoint): definitions read as the stack deploys them, and every Task
// invoking the real function binaries through the Lambda Invoke API at AWS_ENDPOINT_URL_LAMBDA (cargo lambda
// watch), with AWS's error names so that `Retry` and `Catch` see what they would see on AWS.
//
// - `${XxxFunctionArn}` (template.yaml's DefinitionSubstitutions) becomes the function name the local Lambda
//   endpoint serves (`StartRun` -> `start-run`); a Resource that is a Lambda ARN is invoked by its last part.
// - `${XxxStateMachineArn}` becomes what `stateMachineArn(name)` says (`Export`, `Backfill`).
// - A Task with `arn:aws:states:::states:startExecution.sync:2` calls `startNested(parameters)`, which runs the
//   nested execution and returns what Step Functions returns ({Output, Status, Name, ExecutionArn}).
// - A function error comes back from AWS as HTTP 200 with `X-Amz-Function-Error`, and from cargo lambda as HTTP
//   500; both become a task error named by the function's `errorType`, with the Lambda-style JSON cause.
import { StateMachine } from 'aws-local-stepfunctions';

const kebab = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

/** Parses a definition's text, with the stack's substitutions. */
export function parseDefinition(text, stateMachineArn) {
  return JSON.parse(
    text
      .replace(/\$\{(\w+)StateMachineArn\}/g, (_, name) => stateMachineArn(name))
      .replace(/\$\{(\w+)FunctionArn\}/g, (_, name) => kebab(name)),
  );
}

export class TaskError extends Error {
  constructor(name, cause) {
    super(cause);
    this.name = name;
  }
}

/** Invokes a function (a name, or a Lambda ARN) with the Lambda Invoke API of the local stack. */
export async function invoke(resource, payload) {
  const endpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;
  if (!endpoint) throw new TaskError('Lambda.SdkClientException', 'AWS_ENDPOINT_URL_LAMBDA is not set');
  const functionName = resource.includes(':function:') ? resource.split(':function:')[1].split(':')[0] : resource;
  const url = `${endpoint.replace(/\/$/, '')}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`;
  let response;
  try {
    response = await fetch(url, { method: 'POST', body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
  } catch (e) {
    throw new TaskError('Lambda.SdkClientException', `invoking ${functionName}: ${e.message}`);
  }
  const body = await response.text();
  const functionError = response.headers.get('x-amz-function-error');
  if (response.ok && !functionError) {
    return body ? JSON.parse(body) : null;
  }
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = null;
  }
  if (parsed && parsed.errorType) {
    throw new TaskError(parsed.errorType, JSON.stringify({ errorType: parsed.errorType, errorMessage: parsed.errorMessage }));
  }
  throw new TaskError('Lambda.ServiceException', `${functionName}: HTTP ${response.status}: ${body}`);
}

/** Every Task state, in nested Map and Parallel states too, invokes its function or runs a nested execution. */
export function taskHandlers(states, startNested, handlers = {}) {
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Task' && state.Resource.startsWith('arn:aws:states:::states:startExecution')) {
      handlers[name] = (input) => startNested(input);
    } else if (state.Type === 'Task') handlers[name] = (input) => invoke(state.Resource, input);
    const nested = state.ItemProcessor ?? state.Iterator;
    if (nested) taskHandlers(nested.States, startNested, handlers);
    for (const branch of state.Branches ?? []) taskHandlers(branch.States, startNested, handlers);
  }
  return handlers;
}

/** Starts an execution of `definition`; returns the interpreter's execution ({result, abort, eventLogs}). */
export function run(definition, input, { name, arn, startNested }) {
  return new StateMachine(definition, { validationOptions: { checkArn: false } }).run(input, {
    overrides: { taskResourceLocalHandlers: taskHandlers(definition.States, startNested) },
    context: { Execution: { Id: arn, Name: name, StartTime: new Date().toISOString() } },
  });
}

/** The error an execution ended with: its name and cause (the interpreter wraps it in an ExecutionError). */
export function failure(e) {
  const error = e.name === 'ExecutionError' && e.cause instanceof Error ? e.cause : e;
  return { error: error.name, cause: typeof error.cause === 'string' ? error.cause : error.message };
}

/** Runs a nested execution to its end and answers as `states:startExecution.sync:2` does. */
export async function runNestedSync(execution, { name, arn }) {
  try {
    const output = await execution.result;
    return { ExecutionArn: arn, Name: name, Status: 'SUCCEEDED', Output: output };
  } catch (e) {
    const { error, cause } = failure(e);
    console.error(`[${name}] nested execution FAILED: ${error} ${cause}`);
    throw new TaskError('States.TaskFailed', JSON.stringify({ ExecutionArn: arn, Name: name, Status: 'FAILED', Error: error, Cause: cause }));
  }
}
