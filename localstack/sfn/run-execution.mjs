// Executes a state machine definition locally with aws-local-stepfunctions, as Step Functions would on AWS.
//
//   node run-execution.mjs --definition statemachines/export.asl.json --name NAME --input '{"team_id": 1, ...}'
//                          [--history FILE]   (writes every event of the execution, as JSON, to FILE)
//
// `${XxxFunctionArn}` substitutions (template.yaml's DefinitionSubstitutions) become the function names the
// local Lambda endpoint serves (`StartRun` -> `start-run`); `${XxxStateMachineArn}` names the definition
// `xxx.asl.json` next to this one (`Export` -> `export.asl.json`). A Task with the
// `arn:aws:states:::states:startExecution.sync:2` resource runs that definition here, as a nested execution, and
// returns what Step Functions returns ({Output, Status, Name, ExecutionArn}); a failed nested execution fails the
// task with `States.TaskFailed`, as on AWS. Every other Task invokes its function through the Lambda Invoke API at AWS_ENDPOINT_URL_LAMBDA (cargo lambda watch serving the real binaries). A function error comes
// back from AWS as HTTP 200 with `X-Amz-Function-Error`, and from cargo lambda as HTTP 500; both become a
// task error named by the function's `errorType`, with the Lambda-style JSON cause, so `Retry` and `Catch`
// see what they would see on AWS.
//
// Prints one JSON line: {"status": "SUCCEEDED" | "FAILED", "output", "error", "cause", "retries": [...]}.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { StateMachine } from 'aws-local-stepfunctions';

const { values: args } = parseArgs({
  options: {
    definition: { type: 'string' },
    name: { type: 'string' },
    input: { type: 'string', default: '{}' },
    history: { type: 'string' },
  },
});
if (!args.definition || !args.name) {
  console.error('usage: run-execution.mjs --definition FILE --name EXECUTION_NAME [--input JSON]');
  process.exit(2);
}

const endpoint = process.env.AWS_ENDPOINT_URL_LAMBDA;
if (!endpoint) {
  console.error('AWS_ENDPOINT_URL_LAMBDA is not set (the local stack sets it)');
  process.exit(2);
}

const kebab = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
const STATE_MACHINE = 'local:stateMachine:';
function load(path) {
  const text = readFileSync(path, 'utf8')
    .replace(/\$\{(\w+)StateMachineArn\}/g, (_, name) => `${STATE_MACHINE}${join(dirname(path), `${kebab(name)}.asl.json`)}`)
    .replace(/\$\{(\w+)FunctionArn\}/g, (_, name) => kebab(name));
  return JSON.parse(text);
}
const definition = load(args.definition);

class TaskError extends Error {
  constructor(name, cause) {
    super(cause);
    this.name = name;
  }
}

async function invoke(functionName, payload) {
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

// Runs a nested execution (`states:startExecution.sync:2`) of a local definition and waits for it.
async function startExecutionSync(parameters) {
  const path = String(parameters.StateMachineArn).replace(STATE_MACHINE, '');
  const nested = load(path);
  const name = parameters.Name ?? `nested-${Date.now()}`;
  const input = typeof parameters.Input === 'string' ? JSON.parse(parameters.Input) : parameters.Input ?? {};
  const execution = new StateMachine(nested, { validationOptions: { checkArn: false } }).run(input, {
    overrides: { taskResourceLocalHandlers: taskHandlers(nested.States) },
    context: { Execution: { Id: `local:${name}`, Name: name } },
  });
  const ExecutionArn = `arn:aws:states:local:000000000000:execution:${name}`;
  try {
    const output = await execution.result;
    return { ExecutionArn, Name: name, Status: 'SUCCEEDED', Output: output };
  } catch (e) {
    const error = e.name === 'ExecutionError' && e.cause instanceof Error ? e.cause : e;
    const cause = typeof error.cause === 'string' ? error.cause : error.message;
    console.error(`[${name}] nested execution FAILED: ${error.name} ${cause}`);
    throw new TaskError('States.TaskFailed', JSON.stringify({ ExecutionArn, Name: name, Status: 'FAILED', Error: error.name, Cause: cause }));
  }
}

// Every Task state, in nested Map and Parallel states too, invokes its Resource as a function name, or runs
// a nested execution.
function taskHandlers(states, handlers = {}) {
  for (const [name, state] of Object.entries(states)) {
    if (state.Type === 'Task' && state.Resource.startsWith('arn:aws:states:::states:startExecution')) {
      handlers[name] = (input) => startExecutionSync(input);
    } else if (state.Type === 'Task') handlers[name] = (input) => invoke(state.Resource, input);
    const nested = state.ItemProcessor ?? state.Iterator;
    if (nested) taskHandlers(nested.States, handlers);
    for (const branch of state.Branches ?? []) taskHandlers(branch.States, handlers);
  }
  return handlers;
}

const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
const execution = machine.run(JSON.parse(args.input), {
  overrides: { taskResourceLocalHandlers: taskHandlers(definition.States) },
  context: { Execution: { Id: `local:${args.name}`, Name: args.name } },
});

const retries = [];
const history = [];
const logs = (async () => {
  for await (const event of execution.eventLogs) {
    history.push(event);
    if (event.type === 'StateRetried') retries.push({ state: event.state?.name, index: event.index ?? null });
    if (event.type === 'MapIterationFailed' || event.type === 'StateFailed') {
      console.error(`[${args.name}] ${event.type} ${event.state?.name ?? ''}: ${event.Error ?? ''} ${event.Cause ?? ''}`);
    }
  }
})();

let result;
try {
  const output = await execution.result;
  result = { status: 'SUCCEEDED', output };
} catch (e) {
  // The interpreter wraps the execution's error in an ExecutionError whose `cause` is the error itself.
  const error = e.name === 'ExecutionError' && e.cause instanceof Error ? e.cause : e;
  const cause = typeof error.cause === 'string' ? error.cause : error.message;
  result = { status: 'FAILED', error: error.name, cause };
}
await logs.catch(() => {});
result.retries = retries;
if (args.history) writeFileSync(args.history, JSON.stringify(history, null, 1));
console.log(JSON.stringify(result));
