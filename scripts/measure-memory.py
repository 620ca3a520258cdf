#!/usr/bin/env python3
"""RSS of `flashgate serve` (one shard, HTTP only, a fresh data dir) under
place + cancel churn on SKUs of one unit, or per live (reserved) order.

    scripts/measure-memory.py BINARY churn CYCLES [THREADS=8]
    scripts/measure-memory.py BINARY live ORDERS [THREADS=8]

churn: THREADS clients, each on its own SKU of 1 unit, place then cancel;
2,000 warm-up cycles, then VmRSS (/proc/<pid>/status) after each quarter.
live: 1,000 warm-up orders, then ORDERS reserved orders of distinct customers.
FLASHGATE_* variables in the environment reach the node (e.g.
FLASHGATE_STORAGE_CACHE_BYTES_MAX); finished orders leave memory at once
(FLASHGATE_FINISHED_ORDER_RETENTION_SECS=0) unless set otherwise."""
import http.client, json, os, socket, subprocess, sys, tempfile, threading, time

binary, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
threads_n = int(sys.argv[4]) if len(sys.argv) > 4 else 8
TOKEN = "integration-test-admin-token"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

data = tempfile.mkdtemp(prefix="fg-measure-")
port = free_port()
env = dict(os.environ, FLASHGATE_ADMIN_TOKEN=TOKEN)
env.setdefault("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--http-addr", f"127.0.0.1:{port}",
                         "--no-quic", "--shards", "1"], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def rss_kib():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def call(c, method, path, body=None):
    # The admin token may act for any customer: buyers' calls carry it too.
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")

deadline = time.time() + 30
while True:
    try:
        c = conn(); c.request("GET", "/healthz"); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.1)

try:
    if mode == "churn":
        for t in range(threads_n):
            assert call(c, "PUT", f"/v1/skus/churn-{t}", {"stock": 1})[0] in (200, 201)
        refused = [0]
        def churn(t, cycles):
            k = conn()
            for _ in range(cycles):
                s, o = call(k, "POST", "/v1/orders", {"sku": f"churn-{t}", "quantity": 1, "customer_id": f"buyer-{t}"})
                if s != 201:
                    refused[0] += 1; continue
                s, _ = call(k, "POST", f"/v1/orders/{o['order_id']}/cancel", {})
        def run(total):
            ts = [threading.Thread(target=churn, args=(t, total // threads_n)) for t in range(threads_n)]
            started = time.time()
            [x.start() for x in ts]; [x.join() for x in ts]
            return time.time() - started
        run(2000)  # warm-up
        time.sleep(1)
        base = rss_kib(); done = 0
        print(f"after 2,000 warm-up cycles: RSS {base} KiB")
        step = count // 4
        for _ in range(4):
            took = run(step); done += step
            time.sleep(1)
            r = rss_kib()
            print(f"{done:>7} cycles ({step / took:,.0f}/s): RSS {r} KiB, +{r - base} KiB, {1024 * (r - base) / done:.0f} B/cycle, refused {refused[0]}")
    else:
        assert call(c, "PUT", "/v1/skus/live", {"stock": count * 2, "max_quantity_per_order": 1})[0] in (200, 201)
        def place(t, n):
            k = conn()
            for i in range(n):
                s, o = call(k, "POST", "/v1/orders", {"sku": "live", "quantity": 1, "customer_id": f"c-{t}-{i}"})
                assert s == 201, o
        ts = [threading.Thread(target=place, args=(t, 1000 // threads_n)) for t in range(threads_n)]
        [x.start() for x in ts]; [x.join() for x in ts]
        time.sleep(1)
        base = rss_kib()
        ts = [threading.Thread(target=place, args=(t, count // threads_n)) for t in range(threads_n)]
        started = time.time()
        [x.start() for x in ts]; [x.join() for x in ts]
        took = time.time() - started
        time.sleep(1)
        r = rss_kib()
        print(f"{count} live orders ({count / took:,.0f}/s): RSS {base} -> {r} KiB, {1024 * (r - base) / count:.0f} B/order")
finally:
    proc.terminate(); proc.wait(timeout=60)
    subprocess.run(["rm", "-rf", data])
