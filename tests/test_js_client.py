"""The JavaScript client's own tests (clients/js/test, `node --test`) as part of `make test`.

They start their own servers (each with its own SQLite database), so they need neither the test
database nor Redis. Node 20+ is required: without it this test fails rather than skips.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "js"


@pytest.mark.timeout(300)
def test_the_javascript_client_suite_passes_against_a_live_server():
    assert shutil.which("node"), "Node.js 20+ is needed for the JavaScript client's tests"
    if not (CLIENT / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, capture_output=True, timeout=300)

    result = subprocess.run(
        ["node", "--test", "clients/js/test/"],
        cwd=ROOT, env=_without_database_settings(), capture_output=True, text=True, timeout=240,
    )

    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def _without_database_settings() -> dict[str, str]:
    """The servers of clients/js/test use their own SQLite file and in-process layer, whatever CI sets."""
    return {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
