#!/usr/bin/env python3
"""A stand-in for WebEngage for the fault suite (loopback only).

Answers every POST with the status set through `POST /_mode {"status": N}` (default
201) and appends one JSON line per request to the record file: path, x-request-id,
status answered, body. Usage: fake_webengage.py PORT RECORD_FILE
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"status": 201}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/_mode":
            STATE.update(json.loads(body))
            return self.answer(200, {"mode": STATE})
        status = STATE["status"]
        with LOCK, open(RECORD, "a") as f:
            f.write(json.dumps({
                "path": self.path,
                "request_id": self.headers.get("x-request-id"),
                "status": status,
                "body": json.loads(body or b"null"),
            }) + "\n")
        reply = {"response": {"status": "queued"}} if status < 300 else {"response": {"status": "error", "message": f"fake {status}"}}
        self.answer(status, reply)

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    RECORD = sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
