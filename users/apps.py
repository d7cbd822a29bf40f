from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from users import channels, schema, signals  # noqa: F401 (schema registers itself with drf-spectacular)

        signals.connect()
        channels.register_kinds()
