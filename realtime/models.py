"""The event log: every event a client can miss is stored here, in the transaction of the change
that caused it (a transactional outbox), so that delivery can be recovered and gaps filled.

`Stream` is one channel's position: its `epoch` and the offset of its newest event. Writers take
the next offset with an `UPDATE … RETURNING` on that row, which locks it until their transaction
ends: offsets of one channel are gapless and commit in order, and writers to different channels
never wait for each other (realtime/streams.py).
"""
from django.db import models


class Stream(models.Model):
    channel = models.CharField(max_length=100, primary_key=True)
    # Changes only when the stream starts again from offset 1 (its rows were wiped or restored).
    epoch = models.CharField(max_length=16)
    last_offset = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.channel} @ {self.last_offset} ({self.epoch})"


class StreamEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    channel = models.CharField(max_length=100)
    # `offset` is an SQL keyword: the column gets a name that needs no quoting in raw SQL.
    offset = models.BigIntegerField(db_column="stream_offset")
    type = models.CharField(max_length=32)
    # The frame exactly as clients receive it (offset and epoch included), encoded once.
    text = models.TextField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "offset"], name="stream_event_unique_offset")]

    def __str__(self) -> str:
        return f"{self.channel}#{self.offset} {self.type}"
