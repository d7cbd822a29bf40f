"""Static files: the JavaScript client (clients/js) at /static/retrochat.js, for the web app.

Only the published files are exposed, never the rest of clients/js (its tests, package files or
node_modules), which a plain STATICFILES_DIRS entry would serve and `collectstatic` would copy.
"""
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PUBLISHED = ("retrochat.js", "retrochat.d.ts")


class JavaScriptClientFinder(BaseFinder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=settings.BASE_DIR / "clients" / "js")

    # django-stubs has find() answer None for "not here" unless find_all; Django's own finders answer [].
    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:  # type: ignore[override]
        if path in PUBLISHED:
            found = self.storage.path(path)
            return [found] if find_all else found
        return []  # what Django's finders answer for "not here", whatever find_all says

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        for name in PUBLISHED:
            yield name, self.storage
