from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from realtime.transport import allow_protocol_close_codes

        allow_protocol_close_codes()
