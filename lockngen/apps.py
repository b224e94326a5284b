from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The Django project, installed only for its management commands (``run_stack``)."""

    name = "lockngen"
    label = "lockngen_project"
    verbose_name = "LockN Gen project"
