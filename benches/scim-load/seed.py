#!/usr/bin/env python3
"""Seeds a SCIM service provider with users and writes their ids for the wrk phases.

    seed.py BASE_URL TOKEN COUNT IDS_FILE [THREADS]

Creates COUNT users with POST /Users (THREADS keep-alive connections, stdlib only, so the same
script fills rosterd and the reference server), then reads every user back with paged GETs and
writes "id<TAB>userName" lines to IDS_FILE. Any non-2xx answer stops it with the body.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60), u.path.rstrip("/")


def call(c, method, path, token, body=None):
    headers = {"Accept": "application/scim+json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/scim+json"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    text = r.read()
    if not 200 <= r.status < 300:
        sys.exit(f"{method} {path}: {r.status} {text[:500]!r}")
    return json.loads(text) if text else None


def main():
    base, token, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    run = str(int(time.time()))
    started = time.monotonic()

    def worker(t):
        c, prefix = conn(base)
        for i in range(t, count, threads):
            name = f"seed-{run}-{i}@bench.example"
            call(c, "POST", prefix + "/Users", token, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name,
                "name": {"givenName": "Seed", "familyName": f"User {i}"},
                "active": True,
                "emails": [{"value": name, "type": "work", "primary": True}],
            })

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seeded = time.monotonic() - started
    c, prefix = conn(base)
    rows, start = [], 1
    while True:
        page = call(c, "GET", f"{prefix}/Users?startIndex={start}&count=1000&attributes=userName", token)
        res = page.get("Resources", [])
        rows += [(r["id"], r["userName"]) for r in res]
        if not res or start + len(res) > page.get("totalResults", 0):
            break
        start += len(res)
    with open(out, "w") as f:
        for i, n in rows:
            f.write(f"{i}\t{n}\n")
    print(f"seeded {count} users in {seeded:.1f}s ({count / seeded:.0f} req/s); {len(rows)} ids written")


if __name__ == "__main__":
    main()
