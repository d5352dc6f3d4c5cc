#!/usr/bin/env python3
"""A rota worker in Python: `rota worker --queue sync --exec 'python3 docs/workers/sync.py'`.

The payload arrives on stdin as JSON; the job in ROTA_* environment
variables. Exit 0 succeeds (stdout is the result), exit 75 asks for a
retry (a last stderr line "retry-after: <seconds>" sets the delay), any
other exit fails the job for good with the tail of stderr as the reason.
"""
import json
import os
import sys

EX_TEMPFAIL = 75

job = json.load(sys.stdin)
tenant = os.environ["ROTA_TENANT"]
attempt = int(os.environ["ROTA_ATTEMPT"])

if job.get("fail_first") and attempt == 1:
    print("the upstream API answered 503", file=sys.stderr)
    print("retry-after: 0.2", file=sys.stderr)
    sys.exit(EX_TEMPFAIL)

if "records" not in job:
    print("the payload has no 'records'", file=sys.stderr)
    sys.exit(1)

json.dump(
    {
        "tenant": tenant,
        "synced": len(job["records"]),
        "attempt": attempt,
        "schedule": os.environ.get("ROTA_SCHEDULE"),
    },
    sys.stdout,
)
