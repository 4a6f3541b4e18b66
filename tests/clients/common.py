"""What both client suites share: the server they talk to, waiting, and a tiny runner."""

import os
import sys
import time
import traceback

URL = os.environ["KILN_URL"]
TOKEN = os.environ["KILN_TOKEN"]
PROJECT = os.environ.get("KILN_PROJECT", "group/app")


def wait_for(what, check, timeout=60):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run(tests):
    """Runs each test in order; prints a line per test; exits 1 if any failed."""
    failed = 0
    for test in tests:
        try:
            test()
            print(f"ok   {test.__name__}")
        except Exception:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            print(f"FAIL {test.__name__}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
