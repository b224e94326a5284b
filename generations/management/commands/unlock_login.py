"""``python manage.py unlock_login --user <username> | --ip <address> | --all``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from generations import login_throttle
from generations.store import sync_redis


class Command(BaseCommand):
    help = "Lift a login lockout (and forget the failures) of a username, an address, or all."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", help="the username that is locked out")
        parser.add_argument("--ip", help="the client address that is locked out")
        parser.add_argument("--all", action="store_true", help="every lockout")

    def handle(self, *args: Any, **options: Any) -> None:
        client = sync_redis()
        if options["all"]:
            removed = login_throttle.unlock_everyone(client)
        elif options["user"] or options["ip"]:
            removed = login_throttle.unlock(client, options["user"], options["ip"])
        else:
            raise CommandError("name --user, --ip, or --all")
        self.stdout.write(f"unlocked ({removed} key(s) removed)")
