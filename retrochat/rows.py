"""Rows that others are written into, held against a concurrent delete (see HoldsItsRows)."""
from typing import Any

from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest


class HoldsItsRows(models.Model):
    """A row that messages (and memberships) are written into, whoever deletes it: the REST API,
    the admin, plain ORM code.

    `delete()` locks the row before Django collects what the delete cascades to, and a write into
    it first holds the row (`hold()`, inside the write's transaction). So a delete waits for a write
    that holds the row (and then collects its new row) or the write, coming later, finds the row
    gone. Without both, on PostgreSQL, the new row's foreign key was checked only at commit (the
    constraints are deferred): a write and a delete each held what the other wanted ("deadlock
    detected", 503), or the delete failed on a row it had not collected (500). A queryset's bulk
    `delete()` does not lock first; the admin's "delete selected" deletes row by row (rooms/admin.py,
    users/admin.py). A row whose delete cascades to other such rows locks them too
    (`lock_dependents`): a user, their conversations. A write holds the user it writes for before
    the room or conversation, the order a user's delete locks them in."""

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        with transaction.atomic():
            list(type(self)._base_manager.select_for_update().filter(pk=self.pk).values_list("pk", flat=True))
            self.lock_dependents()
            return super().delete(*args, **kwargs)

    def lock_dependents(self) -> None:
        """Lock the rows that hold theirs which this delete cascades to: after this row, before collecting."""

    def hold(self) -> None:
        """At the start of a write into this row, inside its transaction: DoesNotExist if the row has
        been deleted meanwhile, else it cannot be deleted until the transaction ends. On PostgreSQL a
        FOR KEY SHARE lock, which writes do not wait for among themselves, only a delete does; on
        SQLite a write transaction holds the whole database from its start: the row need only be there."""
        table = type(self)._meta.db_table
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f'SELECT 1 FROM "{table}" WHERE "id" = %s FOR KEY SHARE', [self.pk])
                found = cursor.fetchone() is not None
        else:
            found = type(self)._base_manager.filter(pk=self.pk).exists()
        if not found:
            raise self.DoesNotExist(f"{type(self).__name__} {self.pk} has been deleted.")


class DeletesEachRow:
    """A ModelAdmin mixin: the "delete selected" action deletes row by row, as the delete page does,
    so that each row is locked before its cascade is collected (HoldsItsRows): a post racing the
    action either lands before it (and goes with the row) or finds the row gone; a bulk queryset
    delete would collect first and fail on such a post's row on PostgreSQL."""

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for row in queryset:
            row.delete()
