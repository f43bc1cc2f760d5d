"""Sends events to capture with the official posthog-python SDK, as an app would.

    python send_python.py HOST TOKEN COUNT

Captures COUNT events (single `capture` calls, flushed in the SDK's batches, gzipped) over ten users, each
with a uuid of its own, and identifies every user with person properties; prints the uuids of the captured
events (one JSON list) once the SDK has flushed everything.
"""
import json
import sys
import uuid

from posthog import Posthog

host, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []
client = Posthog(token, host=host, gzip=True, flush_at=100, flush_interval=0.5, max_retries=3,
                 on_error=lambda error, batch: errors.append(repr(error)))
sent = []
for i in range(count):
    event_uuid = str(uuid.uuid4())
    client.capture("sdk event", distinct_id=f"py-user-{i % 10}", uuid=event_uuid,
                   properties={"n": i, "plan": "pro" if i % 3 else "free"})
    sent.append(event_uuid)
for user in range(10):
    client.set(distinct_id=f"py-user-{user}", properties={"email": f"py-user-{user}@example.com", "tier": user})
client.shutdown()
if errors:
    sys.exit(f"the SDK reported errors: {errors}")
print(json.dumps(sent))
