"""Runs the scim2-tester conformance checks against a running rosterd.

    python tests/scim/conformance.py BASE_URL TOKEN

BASE_URL is the SCIM root (http://127.0.0.1:PORT/scim/v2). Prints one line per check and exits
non-zero if any check failed. Checks listed in SKIPPED are not run; the README says why.
"""

import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Checks that are wrong about the RFC or about what this server may legitimately do, by
# (check title, attribute). Keep in step with the README's SCIM section.
SKIPPED: dict[tuple[str, str], str] = {
    ("check_remove_attribute", "active"): (
        "RFC 7643 §4.1.1 leaves the meaning of `active` to the service provider; in rosterd it "
        "is the member's access state, always present. Removing it changes nothing, so the "
        "check's expectation (the attribute disappears) cannot hold."
    ),
}


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
        if (title, urn) in SKIPPED:
            print(f"SKIP  {title} [{urn}]: {SKIPPED[(title, urn)]}")
            continue
        if status in (Status.ERROR, getattr(Status, "CRITICAL", Status.ERROR)):
            failed += 1
            print(f"FAIL  {title}: {reason}")
            if data:
                print(f"      data: {str(data)[:600]}")
                err = data.get("error") if isinstance(data, dict) else None
                for note in getattr(err, "__notes__", []) or []:
                    print("      note: " + note.replace("\n", " | ")[:800])
        else:
            print(f"{status.name:5} {title}")
    print(f"{len(results)} checks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
