from django.apps import AppConfig


class LockNGenConfig(AppConfig):
    name = "lockngen"
    verbose_name = "LockN Gen"
