"""32 keep-alive clients for N seconds; prints completions, errors (by kind),
non-2xx and the longest time without any response.

Usage: python3 bench/restart_gaps.py PORT PATH SECONDS, while something
restarts the server (e.g. kill -USR1 on Apache's parent).
"""
import http.client, sys, threading, time
port, path, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
stamps, errors, bad = [], {}, [0]
lock = threading.Lock()
end = time.monotonic() + secs
def client():
    conn = None
    mine = []
    while time.monotonic() < end:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse(); r.read()
            if r.status >= 300: bad[0] += 1
            mine.append(time.monotonic())
            if r.getheader("Connection", "").lower() == "close":
                conn.close(); conn = None
        except Exception as e:
            with lock: errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            try: conn.close()
            except Exception: pass
            conn = None
    with lock: stamps.extend(mine)
ts = [threading.Thread(target=client) for _ in range(32)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
stamps.sort()
gap = max((b - a for a, b in zip(stamps, stamps[1:])), default=0)
print(f"{len(stamps)} responses, non-2xx {bad[0]}, errors {errors}, longest gap {gap*1000:.0f} ms")
