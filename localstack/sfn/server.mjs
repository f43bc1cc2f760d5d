// The local Step Functions data plane: an endpoint on 127.0.0.1 that the AWS SDKs reach through
// AWS_ENDPOINT_URL_SFN, serving StartExecution, DescribeExecution, StopExecution, ListExecutions and
// GetExecutionHistory (the AWS JSON 1.0 protocol) by executing the real definitions with aws-local-stepfunctions and
// the real function binaries (interpreter.mjs). Every other operation (the control plane: CreateStateMachine,
// DescribeStateMachine, ...) goes on to moto at AWS_ENDPOINT_URL, where the state machines' definitions live.
//
//   node server.mjs PORT        (prints `listening on 127.0.0.1:PORT`, then serves until killed)
//
// As on AWS: execution names are unique per state machine; a repeated StartExecution with the same name and
// input while that execution runs returns it, and otherwise is `ExecutionAlreadyExists`; a nested
// `startExecution.sync` is an execution of its own (listed, described, stopped with its parent). Unlike AWS:
// executions live in this process only (a restart of the stack forgets them), and the history's events are the
// interpreter's, named as AWS names them where there is one.
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { failure, parseDefinition, run, runNestedSync } from './interpreter.mjs';

const port = Number(process.argv[2] ?? 9056);
const upstream = process.env.AWS_ENDPOINT_URL;
if (!upstream) {
  console.error('AWS_ENDPOINT_URL (moto, the control plane) is not set');
  process.exit(2);
}
// The state machines a definition names (`${ExportStateMachineArn}`), as the stack configures the functions.
const MACHINES = {
  Export: process.env.BATCH_EXPORT_STATE_MACHINE_ARN,
  Backfill: process.env.BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN,
};

class ApiError extends Error {
  constructor(type, message, status = 400) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** Executions by ARN, in start order. */
const executions = new Map();

const executionArn = (machineArn, name) => `${machineArn.replace(':stateMachine:', ':execution:')}:${name}`;
const seconds = (date) => (date ? date.getTime() / 1000 : undefined);

/** Calls the control plane (moto) with an operation of the same protocol. */
async function controlPlane(target, body) {
  const response = await fetch(upstream, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `AWSStepFunctions.${target}`,
      // moto routes a request to a service by the credential scope of its (unchecked) signature.
      authorization: `AWS4-HMAC-SHA256 Credential=local/20260101/${process.env.AWS_REGION ?? 'us-east-1'}/states/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) {
    const parsed = JSON.parse(text || '{}');
    throw new ApiError(String(parsed.__type ?? 'ServiceException').split('#').pop(), parsed.message ?? text, response.status);
  }
  return JSON.parse(text);
}

async function definitionOf(machineArn) {
  const machine = await controlPlane('DescribeStateMachine', { stateMachineArn: machineArn });
  return parseDefinition(machine.definition, (name) => {
    if (!MACHINES[name]) throw new ApiError('InvalidDefinition', `no state machine is configured for \${${name}StateMachineArn}`);
    return MACHINES[name];
  });
}

/** Starts an execution (the API's StartExecution, or a parent's nested one); returns its record. */
async function start(machineArn, name, inputText, parent) {
  const arn = executionArn(machineArn, name);
  const existing = executions.get(arn);
  if (existing) {
    if (existing.status === 'RUNNING' && existing.input === inputText) return existing;
    throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${arn}'`);
  }
  let input;
  try {
    input = JSON.parse(inputText);
  } catch (e) {
    throw new ApiError('InvalidExecutionInput', `the input is not JSON: ${e.message}`);
  }
  const definition = await definitionOf(machineArn);
  const record = {
    arn, name, machineArn, input: inputText, status: 'RUNNING', startDate: new Date(),
    history: [], children: [], parent,
  };
  executions.set(arn, record);
  if (parent) parent.children.push(record);
  const startNested = async (parameters) => {
    const child = await start(
      String(parameters.StateMachineArn),
      parameters.Name ?? randomUUID(),
      typeof parameters.Input === 'string' ? parameters.Input : JSON.stringify(parameters.Input ?? {}),
      record,
    );
    return runNestedSync(child.execution, { name: child.name, arn: child.arn });
  };
  record.execution = run(definition, input, { name, arn, startNested });
  record.events = (async () => {
    for await (const event of record.execution.eventLogs) record.history.push({ ...event, at: new Date() });
  })().catch(() => {});
  record.execution.result.then(
    (output) => finish(record, 'SUCCEEDED', { output: JSON.stringify(output) }),
    (e) => {
      if (record.status === 'RUNNING') finish(record, 'FAILED', failure(e));
    },
  );
  // A nested execution's result is awaited by its parent's task; keep the rejection from being unhandled.
  record.execution.result.catch(() => {});
  return record;
}

function finish(record, status, fields) {
  if (record.status !== 'RUNNING') return;
  Object.assign(record, { status, stopDate: new Date() }, fields);
  console.error(`[${record.name}] ${status}${fields.error ? `: ${fields.error} ${fields.cause ?? ''}` : ''}`);
}

function stop(record, error, cause) {
  if (record.status !== 'RUNNING') return;
  finish(record, 'ABORTED', { error, cause });
  for (const child of record.children) stop(child, error, cause);
  record.execution.abort();
}

function find(arn) {
  const record = executions.get(arn);
  if (!record) throw new ApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
  return record;
}

function summary(r) {
  return { executionArn: r.arn, stateMachineArn: r.machineArn, name: r.name, status: r.status, startDate: seconds(r.startDate), stopDate: seconds(r.stopDate) };
}

/** The interpreter's events, as AWS names and numbers them. */
function history(record) {
  const names = {
    ExecutionStarted: 'ExecutionStarted', ExecutionSucceeded: 'ExecutionSucceeded', ExecutionFailed: 'ExecutionFailed',
    ExecutionAborted: 'ExecutionAborted', ExecutionTerminated: 'ExecutionAborted', MapIterationStarted: 'MapIterationStarted',
    MapIterationSucceeded: 'MapIterationSucceeded', MapIterationFailed: 'MapIterationFailed', StateFailed: 'TaskFailed',
  };
  return record.history.map((event, i) => {
    const state = event.state ?? {};
    const entered = event.type === 'StateEntered';
    const exited = event.type === 'StateExited';
    // A state entered or exited is named by its type, as AWS does (`TaskStateEntered`, `WaitStateExited`).
    const type = entered || exited ? `${state.type}${event.type}` : names[event.type] ?? event.type;
    return {
      id: i + 1,
      previousEventId: i,
      timestamp: seconds(event.at),
      type,
      stateEnteredEventDetails: entered ? { name: state.name, input: JSON.stringify(state.input ?? null) } : undefined,
      stateExitedEventDetails: exited ? { name: state.name, output: JSON.stringify(state.output ?? null) } : undefined,
    };
  });
}

const operations = {
  async StartExecution(body) {
    const record = await start(body.stateMachineArn, body.name ?? randomUUID(), body.input ?? '{}');
    return { executionArn: record.arn, startDate: seconds(record.startDate) };
  },
  DescribeExecution(body) {
    const r = find(body.executionArn);
    return { ...summary(r), input: r.input, output: r.output, error: r.error, cause: r.cause };
  },
  StopExecution(body) {
    const r = find(body.executionArn);
    stop(r, body.error, body.cause);
    return { stopDate: seconds(r.stopDate ?? new Date()) };
  },
  ListExecutions(body) {
    let list = [...executions.values()].filter((r) => r.machineArn === body.stateMachineArn);
    if (body.statusFilter) list = list.filter((r) => r.status === body.statusFilter);
    list.reverse();
    const from = Number(body.nextToken ?? 0);
    const size = body.maxResults || 100;
    const page = list.slice(from, from + size);
    return { executions: page.map(summary), nextToken: from + size < list.length ? String(from + size) : undefined };
  },
  GetExecutionHistory(body) {
    const events = history(find(body.executionArn));
    return { events: body.reverseOrder ? events.reverse() : events };
  },
};

createServer(async (request, response) => {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString();
  const target = String(request.headers['x-amz-target'] ?? '').split('.').pop();
  const reply = (status, body) => {
    response.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
    response.end(JSON.stringify(body));
  };
  try {
    const operation = operations[target];
    if (!operation) {
      // The control plane: moto answers.
      const headers = Object.fromEntries(
        Object.entries(request.headers).filter(([k]) => !['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive'].includes(k)),
      );
      const forwarded = await fetch(upstream, { method: 'POST', headers, body: text });
      response.writeHead(forwarded.status, { 'content-type': forwarded.headers.get('content-type') ?? 'application/x-amz-json-1.0' });
      response.end(await forwarded.text());
      return;
    }
    reply(200, await operation(JSON.parse(text || '{}')));
  } catch (e) {
    if (e instanceof ApiError) reply(e.status, { __type: e.type, message: e.message });
    else reply(500, { __type: 'InternalFailure', message: String(e?.stack ?? e) });
  }
}).listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
