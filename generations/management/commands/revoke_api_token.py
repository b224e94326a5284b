"""``python manage.py revoke_api_token <token-or-prefix> | --user <username>``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from generations.models import ApiToken, hash_token


class Command(BaseCommand):
    help = "Revoke one API token (by its value or its prefix), or every token of a user."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("token", nargs="?", help="the token, or its prefix as listed")
        parser.add_argument("--user", help="revoke every token of this user")

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = ApiToken.objects.filter(revoked_at__isnull=True)
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        elif options["token"]:
            value = options["token"]
            tokens = tokens.filter(key_hash=hash_token(value)) | tokens.filter(prefix=value)
        else:
            raise CommandError("name a token (or its prefix), or --user")
        found = list(tokens)
        if not found:
            raise CommandError("no active token matches")
        for token in found:
            token.revoke()
        self.stdout.write(f"revoked {len(found)} token(s)")
