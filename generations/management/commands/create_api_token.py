"""``python manage.py create_api_token <username> [--create]``: print a new API token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from generations.models import ApiToken


class Command(BaseCommand):
    help = "Issue a bearer token for a user (printed once; only its hash is stored)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user if missing")
        parser.add_argument("--name", default="", help="a label to tell tokens apart")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        user = users.objects.filter(username=options["username"]).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user {options['username']!r} (add --create to make one)")
            user = users.objects.create_user(username=options["username"])
            user.set_unusable_password()
            user.save()
        _, raw = ApiToken.issue(user, options["name"])
        self.stdout.write(raw)
