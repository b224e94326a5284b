from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    """The domain app. Its label stays ``lockngen``: the tables, migration history, content
    types and admin URL names (``admin:lockngen_generation_changelist``) were made under it."""

    name = "generations"
    label = "lockngen"
    verbose_name = "LockN Gen"

    def ready(self) -> None:
        from generations import login_throttle

        login_throttle.connect_signals()
