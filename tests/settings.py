"""The settings of the test suite (pytest.ini) and of the servers it starts (tests/live.py): the
project's own, retrochat/settings.py, read from the same environment, after one change to that
environment, and with a fast password hasher.

Under pytest-xdist (`make test` runs the suite on several workers) each worker gets Redis of its
own, so that workers running at once never see each other's events, presence or throttle counts:
- the database of REDIS_URL minus the worker's number (gw0 the URL's own, gw1 the one below, …):
  the suite clears its cache database (`cache.clear()` is FLUSHDB);
- RETROCHAT_REDIS_PREFIX with the worker's id appended: pub/sub channels are shared by all databases.
It is made in the environment, before the project's settings read it, so that every server and
command a test starts inherits it. Processes started with these settings (`manage.py shell` from a
test) find it made already.
"""
import os
from urllib.parse import urlsplit, urlunsplit

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_MARK = "RETROCHAT_TEST_REDIS_WORKER"  # the worker the environment was changed for


def _own_redis(worker: str) -> None:
    number = int(worker.removeprefix("gw"))
    url = urlsplit(os.environ["REDIS_URL"])
    database = int(url.path.lstrip("/") or 0) - number
    if database < 0:
        raise RuntimeError(f"REDIS_URL={urlunsplit(url)} leaves no Redis database for worker {worker}: use a higher database number")
    os.environ["REDIS_URL"] = urlunsplit(url._replace(path=f"/{database}"))
    os.environ["RETROCHAT_REDIS_PREFIX"] = f"{os.environ.get('RETROCHAT_REDIS_PREFIX', 'retrochat')}-{worker}"


if _WORKER and os.environ.get("REDIS_URL") and os.environ.get(_MARK) != _WORKER:
    _own_redis(_WORKER)
    os.environ[_MARK] = _WORKER

from retrochat.settings import *  # noqa: E402,F403

# Django's advice for tests: the default (PBKDF2, a million rounds) took a third of a second per
# password set or checked, most of the CPU of the tests that sign in or run `demo`. How a password
# is hashed is Django's; the suite tests who may sign in and what a password change ends.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
