"""`manage.py createapikey USERNAME [--create-user] [--name NAME]`: the key alone on the last line."""
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from users import services
from users.models import User


class Command(BaseCommand):
    help = "Create an API key for a user and print it. The key is shown only this once."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument("--name", default="cli", help="A name that says what the key is for (default: cli).")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Expire the key after this many days.")

    @transaction.atomic  # a failed run leaves nothing behind, not even a new user without a key
    def handle(self, *args: Any, username: str, create_user: bool, name: str, expires_in_days: int | None, **options: Any) -> None:
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        user = User.objects.filter(username=username).first()
        try:
            if user is None:
                if not create_user:
                    raise CommandError(f"No user named {username!r}; pass --create-user to create it.")
                user = services.user_create(username=username)
                self.stderr.write(f"Created user {username!r}.")
            if not user.is_active:
                raise CommandError(f"User {username!r} is inactive; its keys would not authenticate.")
            expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
            api_key, secret = services.api_key_create(user=user, name=name, expires_at=expires_at)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"API key {api_key.name!r} (prefix {api_key.prefix}) for {username!r}; it is shown only once:")
        self.stdout.write(secret)
