"""Runs the scim2-tester conformance checks against a running rosterd.

    python tests/scim/conformance.py BASE_URL TOKEN

BASE_URL is the SCIM root (http://127.0.0.1:PORT/scim/v2). Prints one line per check and exits
non-zero if any check failed: ERROR, CRITICAL, DEVIATION and SKIPPED all count, unless the
check is listed in ACCEPTED with its reason (the README lists them too).
"""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Results other than SUCCESS, COMPLIANT and ACCEPTABLE that are accepted, by (check title,
# attribute URN), with the reason. Every other DEVIATION, ERROR, CRITICAL or SKIPPED result is a
# failure. Keep in step with the README's SCIM section.
ACCEPTED: dict[tuple[str, str], str] = {}

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    failed = 0
    for r in results:
        title = getattr(r, "title", "?")
        status = r.status
        reason = getattr(r, "reason", "") or ""
        data = getattr(r, "data", None) or {}
        urn = data.get("urn", "") if isinstance(data, dict) else ""
        if status in PASSING:
            print(f"{status.name:10} {title} [{urn}]")
            continue
        if (title, urn) in ACCEPTED:
            print(f"ACCEPTED {status.name} {title} [{urn}]: {ACCEPTED[(title, urn)]}")
            continue
        failed += 1
        print(f"FAIL {status.name} {title} [{urn}]: {reason}")
        if data:
            print(f"      data: {str(data)[:600]}")
            err = data.get("error") if isinstance(data, dict) else None
            for note in getattr(err, "__notes__", []) or []:
                print("      note: " + note.replace("\n", " | ")[:800])
    print(f"{len(results)} checks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
