// Sends events to capture with the official posthog-node SDK, as an app would.
//
//     node send_node.mjs HOST TOKEN COUNT
//
// Captures COUNT events over ten users (the SDK batches them to /batch/, gzipped), each with a uuid of its own,
// identifies every user with person properties, and prints the uuids of the captured events (one JSON list)
// once the SDK has flushed everything.
import { randomUUID } from 'node:crypto'
import { PostHog } from 'posthog-node'

const [host, token, count] = [process.argv[2], process.argv[3], Number(process.argv[4])]
const errors = []
const client = new PostHog(token, { host, flushAt: 100, flushInterval: 500, fetchRetryCount: 3 })
client.on('error', (error) => errors.push(String(error)))
const sent = []
for (let i = 0; i < count; i++) {
  const uuid = randomUUID()
  client.capture({ distinctId: `node-user-${i % 10}`, event: 'sdk event', uuid, properties: { n: i, plan: i % 3 ? 'pro' : 'free' } })
  sent.push(uuid)
}
for (let user = 0; user < 10; user++) {
  client.identify({ distinctId: `node-user-${user}`, properties: { email: `node-user-${user}@example.com`, tier: user } })
}
await client.shutdown()
if (errors.length > 0) {
  console.error(`the SDK reported errors: ${errors.join('; ')}`)
  process.exit(1)
}
console.log(JSON.stringify(sent))
