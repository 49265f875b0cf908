#!/usr/bin/env python3
"""Hostile edge: issue 15's attacks replayed against the release binary on its defaults
(plus a spool folder), with timings and the bridge's RSS. Loopback only; one fresh
database (`wb_hostile_<run>`, dropped at the end) on the local Postgres.

  bench/hostile.py            # after `cargo build --release`
  BRIDGE_BIN=... bench/hostile.py

Prints one line per measurement and a JSON summary. The numbers in BENCHMARKS.md
("Hostile edge") come from here.
"""
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BRIDGE_BIN", os.path.join(ROOT, "target/release/webengage-bridge"))
PG = os.environ.get("HOSTILE_PG", "postgres://postgres@127.0.0.1:5432")
RUN = f"{random.randrange(16**6):06x}"
DB = f"wb_hostile_{RUN}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, content_type="application/json", timeout=120):
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def psql(sql, db=DB):
    out = subprocess.run(["psql", f"{PG}/{db}", "-tAc", sql], capture_output=True, text=True)
    return out.stdout.strip()


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms(seconds):
    return round(seconds * 1000, 1)


def lsq_lead(i, email=None):
    lead = json.load(open(os.path.join(ROOT, "mappings/tests/fixtures/lsq_lead_create.json")))
    lead["ProspectID"] = f"hostile-{RUN}-{i}"
    lead["EmailAddress"] = email or f"h{i}.{RUN}@example.com"
    return json.dumps(lead).encode()


class Bridge:
    def __init__(self, spool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"{PG}/{DB}",
            "BRIDGE_LISTEN": f"127.0.0.1:{self.port}",
            "BRIDGE_MAPPINGS_DIR": os.path.join(ROOT, "mappings"),
            "BRIDGE_SPOOL_DIR": spool,
            # WebEngage unreachable: delivery is not measured here.
            "WEBENGAGE_LICENSE_CODE": "hostile~license",
            "WEBENGAGE_API_KEY": "hostile-key",
            "WEBENGAGE_BASE_URL": "http://127.0.0.1:9",
            "RUST_LOG": "error",
        }
        self.log = open(os.path.join(os.path.dirname(spool), "bridge.log"), "a")
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if http("GET", f"{self.url}/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the bridge did not become ready")

    def post(self, source, body, content_type="application/json"):
        started = time.perf_counter()
        status, answer = http("POST", f"{self.url}/webhooks/{source}", body, content_type)
        return status, answer, time.perf_counter() - started

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def normal_latency(bridge, n, start):
    took = []
    for i in range(n):
        status, _, t = bridge.post("leadsquared", lsq_lead(start + i))
        assert status == 200, status
        took.append(t)
    return ms(statistics.median(took))


def attribute_bomb(bridge):
    bomb = ['<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications ']
    bomb += [f'a{i}="" ' for i in range(160_000)]
    bomb.append("/></soapenv:Body></soapenv:Envelope>")
    body = "".join(bomb).encode()
    result = {}

    def send_bomb():
        status, _, t = bridge.post("salesforce", body, "text/xml")
        result["bomb"] = (status, t)

    thread = threading.Thread(target=send_bomb)
    thread.start()
    time.sleep(0.02)
    status, _, t = bridge.post("leadsquared", lsq_lead(10_000))
    result["normal"] = (status, t)
    thread.join()
    return {
        "bomb_bytes": len(body),
        "bomb_status": result["bomb"][0],
        "bomb_ms": ms(result["bomb"][1]),
        "concurrent_normal_status": result["normal"][0],
        "concurrent_normal_ms": ms(result["normal"][1]),
    }


def headers_only(bridge, n=1000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 256)), hard))
    before = rss_mib(bridge.proc.pid)
    head = (
        "POST /webhooks/leadsquared HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        "Content-Length: 5242880\r\n\r\n"
    ).encode()
    sockets = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", bridge.port))
        s.sendall(head)
        sockets.append(s)
    time.sleep(2)
    held = rss_mib(bridge.proc.pid)
    latency = normal_latency(bridge, 5, 20_000)
    for s in sockets:
        s.close()
    time.sleep(1)
    return {
        "connections": n,
        "rss_before_mib": round(before, 1),
        "rss_with_connections_mib": round(held, 1),
        "rss_after_close_mib": round(rss_mib(bridge.proc.pid), 1),
        "normal_webhook_during_ms": latency,
    }


def slow_body(bridge):
    s = socket.create_connection(("127.0.0.1", bridge.port))
    s.sendall(b"POST /webhooks/leadsquared HTTP/1.1\r\nHost: bridge\r\nContent-Length: 1000\r\n\r\n{")
    started = time.perf_counter()
    s.settimeout(30)
    answer = s.recv(4096).decode(errors="replace")
    s.close()
    return {"slow_body_status": answer.split(" ")[1] if " " in answer else answer, "cut_after_ms": ms(time.perf_counter() - started)}


def many_records(bridge):
    body = ("[" + "{}," * 1_699_999 + "{}]").encode()
    out = {"records": 1_700_000, "bytes": len(body)}
    for source in ["salesforce-flow", "leadsquared"]:
        status, answer, t = bridge.post(source, body)
        out[f"{source}_status"] = status
        out[f"{source}_ms"] = ms(t)
    out["rss_after_mib"] = round(rss_mib(bridge.proc.pid), 1)
    return out


def nul_key(bridge):
    activity = json.load(open(os.path.join(ROOT, "mappings/tests/fixtures/lsq_activity.json")))
    activity["ProspectActivityId"] = f"act\u0000{RUN}"
    status, answer, t_nul = bridge.post("leadsquared", json.dumps(activity).encode())
    started = time.perf_counter()
    status_next, answer_next, _ = bridge.post("leadsquared", lsq_lead(30_000))
    prospect = f"hostile-{RUN}-30000"
    while psql(f"SELECT count(*) FROM inbound_records WHERE payload->>'ProspectID' = '{prospect}'") != "1":
        if time.perf_counter() - started > 30:
            break
        time.sleep(0.01)
    return {
        "nul_status": status,
        "nul_answer": json.loads(answer).get("StatusReason"),
        "next_answer": json.loads(answer_next).get("StatusReason"),
        "next_in_postgres_ms": ms(time.perf_counter() - started),
    }


def crafted_rule_names(bridge):
    def series():
        _, text = http("GET", f"{bridge.url}/metrics")
        return sum(1 for line in text.decode().splitlines() if line.startswith("bridge_mapping_failures_total{"))

    before = series()
    lead = json.load(open(os.path.join(ROOT, "mappings/tests/fixtures/sf_flow_lead.json")))
    for i in range(300):
        lead["Id"] = f"00Q{RUN}{i:07d}"
        lead["Email"] = f'rule `evil-{i}`: rule="evil-{i}"'
        bridge.post("salesforce-flow", json.dumps(lead).encode())
    return {"posts": 300, "series_before": before, "series_after": series()}


def absurd_config():
    out = {}
    for variable, value in [("BRIDGE_RETRY_BASE", "20000y"), ("BRIDGE_MAX_BODY", "18446744073709551615")]:
        env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"{PG}/{DB}", "BRIDGE_MAPPINGS_DIR": os.path.join(ROOT, "mappings"), variable: value}
        proc = subprocess.run([BIN, "serve"], env=env, capture_output=True, timeout=60)
        out[variable] = proc.returncode
    return out


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release first")
    work = tempfile.mkdtemp(prefix="bridge-hostile-")
    spool = os.path.join(work, "spool")
    bridge = Bridge(spool)
    results = {}
    try:
        results["baseline_normal_ms"] = normal_latency(bridge, 20, 0)
        results["rss_start_mib"] = round(rss_mib(bridge.proc.pid), 1)
        for name, step in [
            ("attribute_bomb", attribute_bomb),
            ("headers_only", headers_only),
            ("slow_body", slow_body),
            ("many_records", many_records),
            ("nul_key_with_spool", nul_key),
            ("crafted_rule_names", crafted_rule_names),
        ]:
            results[name] = step(bridge)
            print(name, json.dumps(results[name]), flush=True)
        results["absurd_config_exit"] = absurd_config()
        print("absurd_config_exit", json.dumps(results["absurd_config_exit"]), flush=True)
    finally:
        bridge.stop()
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
        subprocess.run(["rm", "-rf", work])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
