from django.apps import AppConfig


class LockNGenConfig(AppConfig):
    name = "lockngen"
    verbose_name = "LockN Gen"

    def ready(self) -> None:
        # Revocation, logout, deactivation, demotion: announced to every web process.
        from lockngen import login_throttle, signals

        signals.connect_user_signals()
        login_throttle.connect_signals()
