#!/usr/bin/env python3
"""Fault suite: bounded webhook loads on loopback while things break.

Each scenario starts a fresh database, the fake WebEngage and one or more bridges,
sends N unique leads (salesforce-flow JSON, default 1000, paced to last ~6 s) from 8 client threads that behave like a
CRM (retry until a 200, for a bounded time), breaks something mid-load, then waits for
delivery and reports:
  acked       leads answered 200 (the bridge promised them)
  delivered   acked leads whose user reached WebEngage (2xx from the fake)
  owed        acked, not delivered yet, but still in the outbox (pending / in_flight)
  lost        acked and neither delivered nor owed: must be 0
  duplicated  leads whose user WebEngage accepted more than once
Run through bench/faults.sh. Restarts the local Postgres cluster in one scenario.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BRIDGE_BIN", os.path.join(ROOT, "target/release/webengage-bridge"))
PG = os.environ.get("FAULT_PG", "postgres://postgres@127.0.0.1:5432")
N = int(os.environ.get("FAULT_LEADS", "1000"))
# Each sender waits this long between leads, so a load lasts ~N / 8 * PACE seconds and
# the fault lands in the middle of it.
PACE = float(os.environ.get("FAULT_PACE_SECONDS", "0.05"))
DRAIN = float(os.environ.get("FAULT_DRAIN_SECONDS", "90"))
LICENSE = "fault~license"
WORK = tempfile.mkdtemp(prefix="bridge-faults-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return None, b""


def psql(db, sql):
    out = subprocess.run(["psql", f"{PG}/{db}", "-tAc", sql], capture_output=True, text=True)
    return out.stdout.strip()


class Fake:
    def __init__(self, name):
        self.port = free_port()
        self.record = os.path.join(WORK, f"{name}-webengage.jsonl")
        open(self.record, "w").close()
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench/fake_webengage.py"), str(self.port), self.record])
        wait_port(self.port)

    def mode(self, status):
        http("POST", f"http://127.0.0.1:{self.port}/_mode", json.dumps({"status": status}).encode())

    def accepted_users(self):
        """userId -> how many times WebEngage accepted it (2xx)."""
        seen = {}
        for line in open(self.record):
            r = json.loads(line)
            if r["status"] >= 300 or not r["path"].endswith(("/users", "/bulk-users")):
                continue
            body = r["body"]
            for user in body.get("users", [body]):
                seen[user["userId"]] = seen.get(user["userId"], 0) + 1
        return seen

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def wait_port(port, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Bridge:
    def __init__(self, name, db, fake, port=None):
        self.name, self.db, self.fake = name, db, fake
        self.port = port or free_port()
        self.start()

    def start(self):
        env = {
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"{PG}/{self.db}",
            "BRIDGE_LISTEN": f"127.0.0.1:{self.port}",
            "BRIDGE_MAPPINGS_DIR": os.path.join(ROOT, "mappings"),
            "WEBENGAGE_LICENSE_CODE": LICENSE,
            "WEBENGAGE_API_KEY": "fault-key",
            "WEBENGAGE_BASE_URL": f"http://127.0.0.1:{self.fake.port}",
            "BRIDGE_RETRY_BASE": "200ms",
            "BRIDGE_RETRY_MAX_DELAY": "2s",
            "BRIDGE_PAUSE_PROBE": "1s",
            "RUST_LOG": "warn",
        }
        log = open(os.path.join(WORK, f"{self.name}.log"), "a")
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.port)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def lead(i, run):
    return json.dumps({
        "attributes": {"type": "Lead"}, "Id": f"00Q{run}{i:07d}", "FirstName": "Fault",
        "LastName": f"Lead{i}", "Email": f"lead{i}.{run}@example.com", "Status": "Open",
        "LastModifiedDate": "2024-01-15T10:30:00.000+0000",
    }).encode()


def load(bridges, run, acked, give_up_after=120):
    """8 CRM-like senders; each lead is retried until a 200 or the time runs out."""
    todo = list(range(N))
    lock = threading.Lock()

    def sender():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            deadline = time.time() + give_up_after
            while time.time() < deadline:
                port = random.choice(bridges).port
                status, _ = http("POST", f"http://127.0.0.1:{port}/webhooks/salesforce-flow", lead(i, run), timeout=10)
                if status == 200:
                    with lock:
                        acked.add(f"lead{i}.{run}@example.com")
                    break
                time.sleep(0.2)
            time.sleep(PACE)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for t in threads:
        t.start()
    return threads


def report(name, db, fake, acked, started):
    deadline = time.time() + DRAIN
    while time.time() < deadline:
        seen = fake.accepted_users()
        if acked <= set(seen):
            break
        time.sleep(1)
    seen = fake.accepted_users()
    owed_rows = psql(db, "SELECT body->>'userId' FROM outbox WHERE kind = 'user' AND status IN ('pending', 'in_flight')")
    owed = set(owed_rows.split()) & (acked - set(seen))
    delivered = acked & set(seen)
    lost = acked - delivered - owed
    dup = sum(1 for u in delivered if seen[u] > 1)
    result = {"scenario": name, "sent": N, "acked": len(acked), "delivered": len(delivered),
              "owed": len(owed), "lost": len(lost), "duplicated": dup,
              "seconds": round(time.time() - started, 1)}
    print(json.dumps(result), flush=True)
    return result


def scenario(name, fault, bridges=1):
    run = f"{random.randrange(16**6):06x}"
    db = f"wb_fault_{name.replace('-', '_')}_{run}"
    fake = Fake(name)
    procs = [Bridge(f"{name}-{k}", db, fake) for k in range(bridges)]
    acked, started = set(), time.time()
    threads = load(procs, run, acked)
    fault(procs, fake)
    for t in threads:
        t.join()
    result = report(name, db, fake, acked, started)
    for p in procs:
        p.stop()
    fake.stop()
    return result


def kill9(procs, fake):
    time.sleep(1.5)
    procs[0].kill9()
    time.sleep(1)
    procs[0].start()


def postgres_restart(procs, fake):
    time.sleep(1.5)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"], check=True)


def webengage_500(procs, fake):
    fake.mode(500)
    time.sleep(6)
    fake.mode(201)


def webengage_401(procs, fake):
    fake.mode(401)
    time.sleep(6)
    fake.mode(201)


def rolling_kill9(procs, fake):
    for p in procs:
        time.sleep(1.5)
        p.kill9()
        time.sleep(0.5)
        p.start()


SCENARIOS = {
    "kill9": (kill9, 1),
    "postgres-restart": (postgres_restart, 1),
    "webengage-500": (webengage_500, 1),
    "webengage-401": (webengage_401, 1),
    "three-bridges-rolling-kill9": (rolling_kill9, 3),
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(SCENARIOS)
    results = [scenario(n, *SCENARIOS[n]) for n in names]
    print(f"logs in {WORK}", file=sys.stderr)
    sys.exit(1 if any(r["lost"] for r in results) else 0)
