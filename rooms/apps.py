from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from rooms import channels, schema, signals  # noqa: F401 (schema registers itself with drf-spectacular)

        signals.connect()
        channels.register_kinds()
