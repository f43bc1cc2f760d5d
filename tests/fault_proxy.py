"""A fault-injecting HTTP proxy for the tests, standing between a client and the local AWS endpoint (moto).

    python3 fault_proxy.py UPSTREAM_PORT RULES_JSON

Forwards every request to 127.0.0.1:UPSTREAM_PORT unchanged, except those a rule matches. RULES_JSON is a list of
rules, each with:
  method   the request method (PUT, GET, POST, ...); "" matches any
  path     a substring of the request path and query (S3 keys, `partNumber=2`); "" matches any
  target   a substring of the `X-Amz-Target` header (`DynamoDB_20120810.UpdateItem`); optional
  body     a substring of the request body (`written_files`); optional
  skip     how many matching requests pass before the rule injects its fault (default 0)
  count    how many matching requests then get the fault (default: all of them)
  fault    what they get:
             slowdown  503 SlowDown, as S3 refusing requests for a moment answers
             throttle  400 ThrottlingException, as DynamoDB throttling answers
             denied    403 AccessDenied, as S3 answers a caller its policy refuses
             reset     the connection reset (RST) half-way through the request body: a connection lost mid-upload
             delay     forwarded after `seconds` (a slow endpoint)
             lost      forwarded, then answered 500 as if it failed: the request took effect, its answer was lost
The first rule that matches a request decides it. `GET /__proxy__/faults` answers how many faults each rule
injected so far (`{"injected": [n, ...]}`), so a test can wait for a fault to be under way; `POST /__proxy__/faults`
with a new list of rules replaces them (`[]`: the endpoint is healthy again).
Prints the port it listens on (on 127.0.0.1), then serves until killed.
"""
import http.client
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM_PORT = int(sys.argv[1])
RULES = json.loads(sys.argv[2])
lock = threading.Lock()
seen = [0] * len(RULES)
injected = [0] * len(RULES)

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
ANSWERS = {
    "slowdown": (503, "application/xml", b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>'),
    "denied": (403, "application/xml", b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
               b'<Message>Access Denied</Message></Error>'),
    "lost": (500, "application/x-amz-json-1.0",
             b'{"__type":"InternalFailure","message":"The request processing has failed because of an unknown error."}'),
    "throttle": (400, "application/x-amz-json-1.0",
                 b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
                 b'"message":"Rate of requests exceeds the allowed throughput."}'),
}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def matches(self, rule, body):
        return (rule["method"] in ("", self.command) and rule.get("path", "") in self.path
                and rule.get("target", "") in self.headers.get("X-Amz-Target", "")
                and ("body" not in rule or (body is not None and rule["body"].encode() in body)))

    def fault(self, body):
        """The fault the first matching rule injects into this request, or None."""
        with lock:
            for i, rule in enumerate(RULES):
                if self.matches(rule, body):
                    seen[i] += 1
                    count = rule.get("count")
                    if seen[i] > rule.get("skip", 0) and (count is None or injected[i] < count):
                        injected[i] += 1
                        return rule
                    return None
        return None

    def answer(self, status, content_type, data):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reset(self, mid_body):
        """Resets the connection (RST, not a clean close): half-way through the body when `mid_body`."""
        if mid_body:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length // 2 if length else 1024)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def control(self):
        global RULES, seen, injected
        with lock:
            if self.command == "POST":
                RULES = json.loads(self.body())
                seen, injected = [0] * len(RULES), [0] * len(RULES)
            answer = json.dumps({"injected": injected}).encode()
        self.answer(200, "application/json", answer)

    def handle_any(self):
        if self.path == "/__proxy__/faults":
            self.control()
            return
        with lock:
            rules = list(RULES)
        needs_body = any("body" in rule for rule in rules)
        rule = None if needs_body else self.fault(None)
        body = None
        if rule is None or rule["fault"] != "reset":
            body = self.body()
            if needs_body:
                rule = self.fault(body)
        if rule is not None:
            if rule["fault"] == "reset":
                self.reset(mid_body=body is None)
                return
            if rule["fault"] not in ("delay", "lost"):
                self.answer(*ANSWERS[rule["fault"]])
                return
            if rule["fault"] == "delay":
                time.sleep(rule["seconds"])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        if rule is not None and rule["fault"] == "lost":
            self.forward_and_lose(headers, body)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=60)
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    def forward_and_lose(self, headers, body):
        """Forwards the request, then answers 500 whatever the upstream said."""
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM_PORT, timeout=60)
        upstream.request(self.command, self.path, body=body, headers=headers)
        upstream.getresponse().read()
        upstream.close()
        self.answer(*ANSWERS["lost"])

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(server.server_address[1], flush=True)
server.serve_forever()
