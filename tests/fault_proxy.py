"""A fault-injecting HTTP proxy for the tests, standing between a client and the local AWS endpoint (moto).

    python3 fault_proxy.py UPSTREAM_PORT METHOD PATH_SUBSTRING COUNT [DELAY_SECONDS]

Forwards every request to 127.0.0.1:UPSTREAM_PORT unchanged, except that the first COUNT requests with METHOD
whose path contains PATH_SUBSTRING get `503 SlowDown`, as an S3 endpoint refusing requests for a moment does;
with DELAY_SECONDS, those requests are forwarded after that delay instead (a slow endpoint).
Prints the port it listens on (on 127.0.0.1), then serves until killed.
"""
import http.client
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM_PORT, METHOD, SUBSTRING, COUNT = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
DELAY = float(sys.argv[5]) if len(sys.argv) > 5 else None
lock = threading.Lock()
refused = 0

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


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

    def refuse(self):
        global refused
        with lock:
            if self.command == METHOD and SUBSTRING in self.path and refused < COUNT:
                refused += 1
                return True
        return False

    def slow_down(self):
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(SLOW_DOWN)))
        self.end_headers()
        self.wfile.write(SLOW_DOWN)

    def handle_any(self):
        body = self.body()
        if self.refuse():
            if DELAY is not None:
                time.sleep(DELAY)
            else:
                self.slow_down()
                return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
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

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print(server.server_address[1], flush=True)
server.serve_forever()
