#!/usr/bin/env python3
"""The service and the client recorded for `shadowtap demo`'s bundled capture.

  demo_service.py serve PORT     a small JSON API (HTTP/1.1, keep-alive) on 127.0.0.1:PORT
  demo_service.py drive PORT N   N requests from 4 keep-alive clients, a realistic route mix

Routes: GET /api/users/{id}, GET /api/orders/{id}, GET /api/cart, GET /api/search?q=...,
POST /api/cart/items (JSON body), HEAD /health, GET /static/app.js.
"""
import http.client
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json", head=False):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def do_HEAD(self):
        self.reply(200, "", "text/plain", head=True)

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "users"] and len(parts) == 3:
            time.sleep(0.002)
            self.reply(200, json.dumps({"id": parts[2], "name": f"user {parts[2]}"}))
        elif parts[:2] == ["api", "orders"] and len(parts) == 3:
            time.sleep(0.004 + random.random() * 0.004)
            self.reply(200, json.dumps({"order": parts[2], "items": [1, 2, 3], "total": 42.5}))
        elif path == "/api/cart":
            self.reply(200, json.dumps({"items": [], "total": 0}))
        elif path == "/api/search":
            time.sleep(0.006)
            self.reply(200, json.dumps({"results": ["a", "b"]}))
        elif path == "/static/app.js":
            self.reply(200, "console.log('app');\n" * 50, "application/javascript")
        else:
            self.reply(404, json.dumps({"error": "not found"}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.reply(201, json.dumps({"ok": True}))


def serve(port):
    ThreadingHTTPServer(("127.0.0.1", port), Api).serve_forever()


def drive(port, n):
    def client(seed, count):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(count):
            r = rnd.random()
            if r < 0.35:
                method, url, body = "GET", f"/api/users/{rnd.randint(1, 500)}", None
            elif r < 0.60:
                method, url, body = "GET", f"/api/orders/{rnd.randint(1000, 9999)}", None
            elif r < 0.75:
                method, url, body = "GET", "/api/cart", None
            elif r < 0.85:
                method, url, body = "GET", f"/api/search?q={rnd.choice(['shoes', 'hats', 'socks'])}", None
            elif r < 0.90:
                method, url, body = "POST", "/api/cart/items", json.dumps({"sku": rnd.randint(1, 99)})
            elif r < 0.95:
                method, url, body = "HEAD", "/health", None
            else:
                method, url, body = "GET", "/static/app.js", None
            headers = {"User-Agent": "demo-client/1.0", "Accept": "application/json"}
            if body:
                headers["Content-Type"] = "application/json"
            conn.request(method, url, body=body, headers=headers)
            conn.getresponse().read()
            time.sleep(rnd.random() * 0.003)
        conn.close()

    threads = [threading.Thread(target=client, args=(i, n // 4)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        drive(int(sys.argv[2]), int(sys.argv[3]))
