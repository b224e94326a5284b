from django.apps import AppConfig


class ProgressConfig(AppConfig):
    name = "progress"
    verbose_name = "Live progress"

    def ready(self) -> None:
        # Revocation, logout, deactivation, demotion: announced to every web process.
        from progress import signals

        signals.connect_user_signals()
