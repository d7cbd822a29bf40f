"""`manage.py prune_events [--history-size N] [--ttl SECONDS]`: apply the event log's retention now.

The server prunes by itself every RETROCHAT_PRUNE_SECONDS; this is for cron jobs and operators. It
deletes in small batches (realtime/streams.py `prune`), so writers never wait long, and prints how
many events it deleted on one line.
"""
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime import streams


class Command(BaseCommand):
    help = (
        "Delete event log entries that retention no longer keeps: per channel, all but the newest "
        "RETROCHAT_HISTORY_SIZE, and any older than RETROCHAT_HISTORY_TTL seconds."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--history-size", type=int, default=None,
            help="Events to keep per channel (default: RETROCHAT_HISTORY_SIZE).",
        )
        parser.add_argument(
            "--ttl", type=int, default=None,
            help="Delete events older than this many seconds (default: RETROCHAT_HISTORY_TTL).",
        )

    def handle(self, *args: Any, history_size: int | None, ttl: int | None, **options: Any) -> None:
        size = settings.RETROCHAT_HISTORY_SIZE if history_size is None else history_size
        seconds = settings.RETROCHAT_HISTORY_TTL if ttl is None else ttl
        if size < 0:
            raise CommandError("--history-size must be 0 or more.")
        if seconds < 0:
            raise CommandError("--ttl must be 0 or more.")
        deleted = streams.prune(history_size=size, ttl_seconds=seconds)
        self.stdout.write(f"Deleted {deleted} event(s).")
