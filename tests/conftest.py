"""Fixtures shared by the whole suite.

With REDIS_URL and DATABASE_URL set (as .ci/run does), the same tests run against Redis and
PostgreSQL. A configured service that does not answer fails the run at once: it never skips.
"""
import os
import tempfile
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections
from tests import factories
from tests.live import LiveServer
from tests.openapi import SchemaCheckedClient
from tests.support import capture_events


def pytest_sessionstart(session: pytest.Session) -> None:
    # .ci/run names the services a phase must use; a phase that would quietly run without them
    # (an unset variable, a Makefile that drops it) fails instead of skipping their tests.
    required = {name for name in os.environ.get("RETROCHAT_TEST_SERVICES", "").split(",") if name}
    if "redis" in required and not settings.REDIS_URL:
        pytest.exit("RETROCHAT_TEST_SERVICES names redis but REDIS_URL is not set", returncode=3)
    if "postgres" in required and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit("RETROCHAT_TEST_SERVICES names postgres but DATABASE_URL is not PostgreSQL", returncode=3)
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            pytest.exit(f"REDIS_URL={redis_url} is set but Redis does not answer: {exc}", returncode=3)


@pytest.hookimpl(trylast=True)  # after pytest-django's and pytest's own orderings
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each file's tests together, the files marked slow first. pytest-xdist hands out whole files
    in this order (pytest.ini), so the long ones start at once and the many short files fill in
    around them, rather than one of them starting last while a worker idles."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    first: dict[Path, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.path, index)
    items.sort(key=lambda item: (item.path not in slow, first[item.path]))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """SQLite: a test database in a file (in memory when /dev/shm exists), so live server processes
    share it. At the end, after pytest-django has removed the file, its write-ahead log and index go
    too: they stay when a server process was stopped with a connection open (4 MB a worker)."""
    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith("sqlite3"):
        yield
        return
    folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    name = folder / f"retrochat-test-{os.getpid()}.sqlite3"
    database.setdefault("TEST", {})["NAME"] = str(name)
    yield
    for leftover in (f"{name}-wal", f"{name}-shm"):
        Path(leftover).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's, plus: the realtime layer's database thread keeps its connections between
    calls (realtime/db.py); they are closed before the test database is dropped, which PostgreSQL
    refuses while a connection to it is open."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


# Derived from the models alone (migrate makes them, post_migrate's only two receivers), changed by
# no test, and referenced by no row a test makes except in tables that are emptied.
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


@pytest.fixture(scope="session", autouse=True)
def _flush_keeps_content_types_and_permissions():
    """After each transactional test Django empties every table (`flush`) and then emits post_migrate,
    whose receivers make the content types and permissions again: 30 of the 32 ms of such a test's
    teardown, for 469 tests. Those two tables are left as they are instead, which is what
    post_migrate would make of them, and it is not emitted; every other table is emptied as before."""
    from django.core.management.commands import flush

    def sql_flush(style, connection, reset_sequences=True, allow_cascade=False):  # django.core.management.sql's, less KEPT_BY_FLUSH
        tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
        emptied = [table for table in tables if table not in KEPT_BY_FLUSH]
        if connection.vendor == "postgresql" and not reset_sequences and not allow_cascade:
            # DELETE, in one transaction, with PostgreSQL's checks of Django's foreign keys deferred
            # to its commit: TRUNCATE makes every table anew, 100 ms for these few rows.
            return ["SET CONSTRAINTS ALL DEFERRED"] + [f"DELETE FROM {connection.ops.quote_name(table)}" for table in emptied]
        return connection.ops.sql_flush(style, emptied, reset_sequences=reset_sequences, allow_cascade=allow_cascade)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush, "sql_flush", sql_flush)
        patch.setattr(flush, "emit_post_migrate_signal", lambda *args, **kwargs: None)
        yield


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker):
    """One real server process for the session's live tests (tests needing a fresh one start their own)."""
    with LiveServer(RETROCHAT_WRITE_THROTTLE="off") as live:
        yield live


@pytest.fixture(autouse=True)
def _no_write_throttle_by_default(settings):
    """Throttling has its own tests; elsewhere it would only make unrelated tests order-dependent."""
    settings.RETROCHAT_WRITE_THROTTLE = None


@pytest.fixture
def user(db):
    return factories.make_user("ada")


@pytest.fixture
def other_user(db):
    return factories.make_user("bob")


@pytest.fixture
def third_user(db):
    return factories.make_user("cy")


@pytest.fixture
def client_for():
    """`client_for(user)`: an APIClient authenticated with a fresh API key of that user. Like `anon`,
    it checks every response against the OpenAPI document (tests/openapi.py)."""

    def make(user):
        client = SchemaCheckedClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.make_key(user)}")
        return client

    return make


@pytest.fixture
def api(client_for, user):
    return client_for(user)


@pytest.fixture
def capture(db, monkeypatch, django_capture_on_commit_callbacks):
    """`with capture() as frames:` around a change: the exact event frames it published on commit
    (tests/support.py `capture_events`), with no channel layer and no waiting."""
    return capture_events(monkeypatch, django_capture_on_commit_callbacks)


@pytest.fixture
def anon():
    return SchemaCheckedClient()
