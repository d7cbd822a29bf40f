"""Change tracking for models whose changes become events, and `model_update`, the one way services
change a row (HackSoft's `model_update`).

`TracksChanges` remembers the tracked fields as they were loaded from the database (or last saved
through this instance), so that a receiver can ask what a save changed: `changed("is_private")`,
`was("is_active")`. The snapshot is taken again after each save, once the post_save receivers have
run, so receivers only read it. A field whose earlier value is unknown (the instance was not loaded
from the database, or the field was deferred) counts as changed: for access rules, re-checking costs
little and missing a change leaks.
"""
from collections.abc import Collection
from typing import Any, ClassVar, Self

from django.db import models

UNKNOWN = object()  # the earlier value of a field that was not loaded


class TracksChanges(models.Model):
    TRACKED_FIELDS: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str | None, field_names: Collection[str], values: Collection[Any]) -> Self:
        instance = super().from_db(db, field_names, values)
        instance.remember_saved_state()
        return instance

    def remember_saved_state(self) -> None:
        self._saved_state = {name: self.__dict__.get(name, UNKNOWN) for name in self.TRACKED_FIELDS}

    def was(self, name: str) -> Any:
        """The field's value as loaded or last saved; UNKNOWN if that is not known."""
        return getattr(self, "_saved_state", {}).get(name, UNKNOWN)

    def changed(self, *names: str) -> bool:
        """Whether any of these tracked fields (all of them when none is named) differs from its saved value."""
        return any(self.was(name) != self.__dict__.get(name, UNKNOWN) for name in names or self.TRACKED_FIELDS)

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self.remember_saved_state()  # after the post_save receivers, which compared with the old state


def model_update(*, instance: models.Model, data: dict[str, Any], exclude_from_clean: list[str] | None = None) -> bool:
    """Set the given fields, validate, and save only those that changed (plus `updated_at` when the
    model has one). Saves nothing, so sends no event, when nothing changed. Returns whether it saved."""
    if not data:
        return False
    before = {name: getattr(instance, name) for name in data}
    for name, value in data.items():
        setattr(instance, name, value)
    instance.full_clean(exclude=exclude_from_clean)
    # Compared after full_clean, which may normalise a value (trimming) back to what it was.
    changed = [name for name in data if getattr(instance, name) != before[name]]
    if not changed:
        return False
    fields = list(changed)
    if any(field.name == "updated_at" for field in instance._meta.fields):
        fields.append("updated_at")
    instance.save(update_fields=fields)
    return True
