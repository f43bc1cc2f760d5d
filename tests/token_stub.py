"""A local Google OAuth 2.0 token endpoint and an authenticating front for the BigQuery emulator, for tests.

    python token_stub.py PUBLIC_KEY_PEM UPSTREAM_URL

POST /token takes the JWT-bearer grant (RFC 7523) as Google's endpoint does: `grant_type` must be
`urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion` a JWT signed RS256 by the key whose public half is
PUBLIC_KEY_PEM, with `aud` this endpoint's URL, the BigQuery scope, and `iat`/`exp` around now; it answers
`{"access_token", "expires_in", "token_type"}`, or 400 `invalid_grant`. Every other request is forwarded to
UPSTREAM_URL (bqemulator, which ignores auth) only with a token this stub issued (else 401). Tokens issued to a
service account whose e-mail starts with `denied` get BigQuery's 403 `accessDenied` for creating tables, as a
service account lacking `bigquery.tables.create` does.
Prints the port it listens on (on 127.0.0.1), then serves until killed.
"""
import json
import secrets
import sys
import urllib.parse
import urllib.request
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

PUBLIC_KEY = open(sys.argv[1]).read()
UPSTREAM = sys.argv[2].rstrip("/")
SCOPE = "https://www.googleapis.com/auth/bigquery"
tokens = {}  # access token -> service account e-mail


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def token(self, body):
        form = urllib.parse.parse_qs(body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return self.reply(400, {"error": "unsupported_grant_type"})
        audience = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        try:
            claims = jwt.decode(form.get("assertion", [""])[0], PUBLIC_KEY, algorithms=["RS256"], audience=audience,
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]})
        except jwt.PyJWTError as e:
            return self.reply(400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature: {e}"})
        if SCOPE not in claims["scope"].split():
            return self.reply(400, {"error": "invalid_scope", "error_description": claims["scope"]})
        token = "ya29." + secrets.token_urlsafe(24)
        tokens[token] = claims["iss"]
        self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def handle_any(self):
        body = self.body()
        if self.command == "POST" and self.path == "/token":
            return self.token(body)
        auth = self.headers.get("Authorization", "")
        email = tokens.get(auth.removeprefix("Bearer "))
        if email is None:
            return self.reply(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                              "errors": [{"reason": "authError", "message": "Invalid Credentials"}]}})
        if email.startswith("denied") and self.command == "POST" and self.path.endswith("/tables"):
            dataset = self.path.split("/datasets/")[1].split("/")[0]
            message = f"Access Denied: Dataset {dataset}: Permission bigquery.tables.create denied on dataset {dataset} (or it may not exist)."
            return self.reply(403, {"error": {"code": 403, "message": message,
                                              "errors": [{"reason": "accessDenied", "message": message}]}})
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "content-length")}
        request = urllib.request.Request(UPSTREAM + self.path, data=body if body else None, method=self.command,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                self.reply(response.status, response.read(), response.headers.get("Content-Type", "application/json"))
        except urllib.error.HTTPError as e:
            self.reply(e.code, e.read(), e.headers.get("Content-Type", "application/json"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
print(server.server_address[1], flush=True)
server.serve_forever()
