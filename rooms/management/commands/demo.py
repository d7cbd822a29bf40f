"""`manage.py demo`: what `make run` prints before serving.

On an empty database it creates a demo user and two more (alice, bob), a public room with a welcome
message and a direct conversation between demo and alice (bob has none: start one with him). Every run then creates a fresh API key for the demo user and prints it
with ready-to-paste commands: a key's secret cannot be shown twice, and a newcomer who restarts the
server should not have to hunt for one. The key printed by the previous run is revoked, so that
restarts do not pile up never-expiring keys; the demo user's other keys are left alone.

First of all it prints the web app's address and the passwords of `demo`, `alice` and `bob` for signing
in there. Each password is derived from SECRET_KEY (secret, kept per checkout in .secret_key) and
the user, so it stays the same across restarts (signed-in browsers stay signed in) and nobody
without the key can know it; the command sets it again if it was changed.
"""
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.crypto import salted_hmac

from rooms import services as rooms
from users import services as users
from users.models import ApiKey, User

DEMO_USERNAME = "demo"
DEMO_KEY_NAME = "make run"
SIGN_IN_USERNAMES = (DEMO_USERNAME, "alice", "bob")


def demo_password(user: User) -> str:
    """The sign-in password `make run` gives a demo user: stable per SECRET_KEY and user."""
    digest = salted_hmac("retrochat.demo-password", f"{user.pk}:{user.username}", secret=settings.SECRET_KEY).hexdigest()
    return f"{digest[:4]}-{digest[4:8]}-{digest[8:12]}-{digest[12:16]}"


class Command(BaseCommand):
    help = "Create demo data on an empty database and print a fresh API key for the demo user."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    @transaction.atomic
    def handle(self, *args: Any, host: str, port: str, **options: Any) -> None:
        created = not User.objects.exists()
        if created:
            self._create_demo_data()
        demo = User.objects.filter(username=DEMO_USERNAME, is_active=True).first()
        base = f"http://{host}:{port}"
        self._print_sign_in(base)
        if created:
            self.stdout.write("Created demo data: users 'demo', 'alice' and 'bob', room 'general', one conversation (demo and alice).")
        if demo is None:
            self.stdout.write("The database has users but no active 'demo' user; create a key with:\n"
                              "  .venv/bin/python manage.py createapikey USERNAME")
            return
        # Through the service, so that sockets still open with an old key are closed (4001).
        for previous in ApiKey.objects.filter(user=demo, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            users.api_key_revoke(api_key=previous)
        _, secret = users.api_key_create(user=demo, name=DEMO_KEY_NAME)
        room = demo.rooms.order_by("id").first()
        room_id = room.pk if room else 1
        self.stdout.write(
            f"\nRetroChat: API key for user '{DEMO_USERNAME}' (shown once, new on every start; "
            f"the previous one is revoked):\n\n"
            f"  {secret}\n\n"
            f"Try it:\n"
            f"  curl -H 'Authorization: Bearer {secret}' {base}/v1/rooms/{room_id}/messages\n"
            f"  curl -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n"
            f"       -d '{{\"content\": \"Hello!\"}}' {base}/v1/rooms/{room_id}/messages\n"
            f"  npx wscat -c ws://{host}:{port}/v1/realtime -H 'Authorization: Bearer {secret}'\n"
            f"     then send: {{\"type\": \"subscribe\", \"channel\": \"room:{room_id}\"}}\n\n"
            f"API docs: {base}/v1/docs   Admin: {base}/admin/ (manage.py createsuperuser)\n"
        )

    def _create_demo_data(self) -> None:
        demo = users.user_create(username=DEMO_USERNAME, display_name="Demo User")
        alice = users.user_create(username="alice", display_name="Alice")
        room = rooms.room_create(creator=demo, name="general", topic="Say hello")
        rooms.membership_add(room=room, user=alice)
        bob = users.user_create(username="bob", display_name="Bob")
        rooms.membership_add(room=room, user=bob)
        rooms.message_create(author=alice, room=room, content="Welcome to RetroChat!")
        conversation, _ = rooms.conversation_get_or_create(user=demo, other=alice)
        rooms.message_create(author=alice, conversation=conversation, content="Hi demo, this is a direct message.")

    def _print_sign_in(self, base: str) -> None:
        accounts = []
        for user in User.objects.filter(username__in=SIGN_IN_USERNAMES, is_active=True).order_by("id"):
            password = demo_password(user)
            if not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
            accounts.append(f"  {user.username:<6} {password}")
        if not accounts:
            self.stdout.write(f"\nRetroChat web app: {base}/ (sign in with a user of this database)")
            return
        self.stdout.write(f"\nRetroChat web app: {base}/  sign in with (the same on every start):\n" + "\n".join(accounts))
