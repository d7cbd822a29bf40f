"""What Django's debug pages may show: never a credential, even with DEBUG on.

Django's own filter hides settings named like KEY, TOKEN or PASS, but not the URLs and hosts that
carry passwords here (DATABASE_URL, REDIS_URL, a cache LOCATION, channel-layer `hosts`).
"""
import re

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class CredentialsReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|LOCATION|HOSTS|SENTINEL|DSN|CREDENTIAL",
        flags=re.I,
    )

    def is_active(self, request: HttpRequest | None) -> bool:
        # Django applies @sensitive_variables / @sensitive_post_parameters only when DEBUG is off;
        # a developer's DEBUG page must not show a token held in a local variable either.
        return True
