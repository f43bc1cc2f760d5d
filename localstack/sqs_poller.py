"""The local Lambda SQS event source: feeds capture's queue (in moto) to the lake-writer function, as Lambda's
SQS event source mapping does on AWS.

    python sqs_poller.py PORT QUEUE_URL FUNCTION   (prints `listening on 127.0.0.1:PORT`, then serves until killed)

It long-polls the queue (AWS_ENDPOINT_URL), gathers up to BATCH_SIZE messages or for at most WINDOW seconds (the
mapping's `BatchSize` and `MaximumBatchingWindowInSeconds`), and invokes FUNCTION through the Lambda Invoke API
(AWS_ENDPOINT_URL_LAMBDA) with the SQS event (`Records` with `messageId`, `receiptHandle`, `body`,
`attributes`, `messageAttributes`, `eventSource`). With `ReportBatchItemFailures`: the messages the function
answers as `batchItemFailures` stay in the queue, the others are deleted; a function error keeps them all. A
message not deleted comes back after the queue's visibility timeout, and after its `maxReceiveCount` SQS moves it
to the dead-letter queue (moto does this part).
    GET /health    {"polls": n, "invocations": n}
Not reproduced: scaling out to several concurrent batches (one batch at a time here).
"""
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

PORT, QUEUE_URL, FUNCTION = int(sys.argv[1]), sys.argv[2], sys.argv[3]
BATCH_SIZE = int(os.environ.get("SQS_BATCH_SIZE", "100"))
WINDOW = float(os.environ.get("SQS_BATCHING_WINDOW", "1"))
LAMBDA = os.environ["AWS_ENDPOINT_URL_LAMBDA"].rstrip("/")
REGION = os.environ.get("AWS_REGION", "us-east-1")
sqs = boto3.client("sqs", region_name=REGION)
stats = {"polls": 0, "invocations": 0}


def record(message):
    attributes = {
        name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType"),
               "stringListValues": [], "binaryListValues": []}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message.get("Attributes", {}), "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody"), "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE_URL.rsplit('/', 1)[-1]}",
        "awsRegion": REGION,
    }


def gather():
    """Up to BATCH_SIZE messages, gathered for at most WINDOW seconds once the first arrived."""
    batch, deadline = [], None
    while len(batch) < BATCH_SIZE and (deadline is None or time.time() < deadline):
        got = sqs.receive_message(QueueUrl=QUEUE_URL, MaxNumberOfMessages=min(10, BATCH_SIZE - len(batch)),
                                  WaitTimeSeconds=1 if deadline is None else 0, AttributeNames=["All"],
                                  MessageAttributeNames=["All"])
        stats["polls"] += 1
        messages = got.get("Messages", [])
        if messages:
            batch.extend(messages)
            deadline = deadline or time.time() + WINDOW
        elif deadline is not None:
            time.sleep(0.05)
    return batch


def invoke(batch):
    event = {"Records": [record(m) for m in batch]}
    request = urllib.request.Request(f"{LAMBDA}/2015-03-31/functions/{FUNCTION}/invocations",
                                     data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=900) as response:
        failed = response.headers.get("X-Amz-Function-Error")
        answer = response.read().decode()
    stats["invocations"] += 1
    if failed:
        print(f"{FUNCTION} failed, {len(batch)} messages stay: {answer}", flush=True)
        return
    failures = {f["itemIdentifier"] for f in (json.loads(answer) or {}).get("batchItemFailures", [])}
    done = [m for m in batch if m["MessageId"] not in failures]
    for start in range(0, len(done), 10):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])]
        sqs.delete_message_batch(QueueUrl=QUEUE_URL, Entries=entries)
    if failures:
        print(f"{len(failures)} of {len(batch)} messages stay for another delivery", flush=True)


def poll():
    while True:
        try:
            batch = gather()
            if batch:
                invoke(batch)
        except Exception as e:  # the stack keeps running: log, wait, poll again
            print(f"poll failed: {e!r}", flush=True)
            time.sleep(1)


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps(stats).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


threading.Thread(target=poll, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", PORT), Health)
print(f"listening on 127.0.0.1:{PORT}", flush=True)
server.serve_forever()
