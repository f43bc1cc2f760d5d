// Executes a state machine definition locally with aws-local-stepfunctions, as Step Functions would on AWS, and
// waits for it (the local Step Functions endpoint, server.mjs, runs the executions the stack starts; this runs one
// by hand, for tests that look at a single execution's events).
//
//   node run-execution.mjs --definition statemachines/export.asl.json --name NAME --input '{"team_id": 1, ...}'
//                          [--history FILE]   (writes every event of the execution, as JSON, to FILE)
//
// How definitions and Tasks are executed: interpreter.mjs.
// A nested state machine (`${XxxStateMachineArn}`) is the definition `xxx.asl.json` next to this one.
//
// Prints one JSON line: {"status": "SUCCEEDED" | "FAILED", "output", "error", "cause", "retries": [...]}.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { failure, parseDefinition, run, runNestedSync } from './interpreter.mjs';

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

// A nested state machine is the definition `xxx.asl.json` next to this one, named by its path.
const STATE_MACHINE = 'local:stateMachine:';
const kebab = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
const load = (path) =>
  parseDefinition(readFileSync(path, 'utf8'), (name) => `${STATE_MACHINE}${join(dirname(path), `${kebab(name)}.asl.json`)}`);

function startNested(parameters) {
  const nested = load(String(parameters.StateMachineArn).replace(STATE_MACHINE, ''));
  const name = parameters.Name ?? `nested-${Date.now()}`;
  const arn = `arn:aws:states:local:000000000000:execution:${name}`;
  const input = typeof parameters.Input === 'string' ? JSON.parse(parameters.Input) : parameters.Input ?? {};
  return runNestedSync(run(nested, input, { name, arn, startNested }), { name, arn });
}

const execution = run(load(args.definition), JSON.parse(args.input), {
  name: args.name,
  arn: `local:${args.name}`,
  startNested,
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
  result = { status: 'SUCCEEDED', output: await execution.result };
} catch (e) {
  result = { status: 'FAILED', ...failure(e) };
}
await logs.catch(() => {});
result.retries = retries;
if (args.history) writeFileSync(args.history, JSON.stringify(history, null, 1));
// Exit now: a Task that timed out may leave its invocation pending (a crashed function never answers), and
// that must not keep this process alive after the execution ended.
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
