"""The local API Gateway HTTP API of capture: turns HTTP requests into the payload-2.0 events API Gateway gives a
Lambda function, as it does on AWS.

    python http_api.py PORT FUNCTION   (prints `listening on 127.0.0.1:PORT`, then serves until killed)

Every request (any method, any path) becomes one invocation of FUNCTION through the Lambda Invoke API
(AWS_ENDPOINT_URL_LAMBDA) with `rawPath`, `rawQueryString`, the headers (lower-cased), `requestContext.http`
and the body base64-encoded (`isBase64Encoded`), as API Gateway passes binary bodies such as the SDKs' gzip; the
function's answer (`statusCode`, `headers`, `body`, `isBase64Encoded`) becomes the response. A function error
is a 500, as API Gateway answers it. It stands in for API Gateway because cargo lambda's function-URL emulation
refuses a body that is not UTF-8 under a text content type (gzip sent as `application/json`).
Not reproduced: API Gateway's 10 MB payload limit (the function's 6 MB invocation limit neither), stages, routes.
"""
import base64
import json
import os
import sys
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, FUNCTION = int(sys.argv[1]), sys.argv[2]
LAMBDA = os.environ["AWS_ENDPOINT_URL_LAMBDA"].rstrip("/")


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        event = {
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": f"127.0.0.1:{PORT}", "stage": "$default",
                "requestId": str(uuid.uuid4()), "routeKey": "$default", "timeEpoch": int(time.time() * 1000),
                "http": {"method": self.command, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": self.client_address[0], "userAgent": self.headers.get("User-Agent", "")},
            },
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
        }
        request = urllib.request.Request(f"{LAMBDA}/2015-03-31/functions/{FUNCTION}/invocations",
                                         data=json.dumps(event).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                failed = response.headers.get("X-Amz-Function-Error")
                answer = json.loads(response.read() or b"{}")
        except Exception as e:  # the function endpoint failed: API Gateway answers 500
            failed, answer = repr(e), {}
        if failed:
            self.reply(500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
            return
        data = answer.get("body") or ""
        data = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
        self.reply(answer.get("statusCode", 200), answer.get("headers") or {}, data)

    def reply(self, status, headers, data):
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


server = ThreadingHTTPServer(("127.0.0.1", PORT), Gateway)
print(f"listening on 127.0.0.1:{PORT}", flush=True)
server.serve_forever()
