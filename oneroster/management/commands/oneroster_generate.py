"""Write a seeded OneRoster district (TESTING.md sizes) as a CSV package.

manage.py oneroster_generate --size S --seed 7 --or-version 1.2 /tmp/district-s
manage.py oneroster_generate --size S --seed 7 --epoch 1 --delta /tmp/district-s-delta.zip
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from oneroster.protocol.generator import SIZES, District


class Command(BaseCommand):
    help = "Write a seeded OneRoster district (S, M, L, XL or a student count) as CSV 1.1 or 1.2."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Output folder, or a .zip file.")
        parser.add_argument("--size", default="S", help=f"One of {', '.join(SIZES)} or a number of students.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--or-version", dest="or_version", choices=["1.1", "1.2"], default="1.1")
        parser.add_argument(
            "--epoch", type=int, default=0, help="Nightly changes applied so far (0 = first export)."
        )
        parser.add_argument("--delta", action="store_true", help="Only what changed since the epoch before.")
        parser.add_argument("--no-guardians", action="store_true")
        parser.add_argument("--change-rate", type=float, default=0.01)
        parser.add_argument("--rekey-rate", type=float, default=0.0)

    def handle(self, *args: Any, **options: Any) -> None:
        size: int | str = options["size"]
        if str(size).isdigit():
            size = int(size)
        elif size not in SIZES:
            raise CommandError(f"--size must be one of {', '.join(SIZES)} or a number.")
        if options["delta"] and options["epoch"] < 1:
            raise CommandError("A delta needs --epoch 1 or later.")
        district = District(
            size,
            seed=options["seed"],
            epoch=options["epoch"],
            guardians=not options["no_guardians"],
            change_rate=options["change_rate"],
            rekey_rate=options["rekey_rate"],
        )
        path = Path(options["path"])
        district.write_csv(
            path,
            version=options["or_version"],
            mode="delta" if options["delta"] else "bulk",
            as_zip=path.suffix == ".zip",
        )
        self.stdout.write(
            json.dumps(
                {
                    "path": str(path),
                    "students": district.n_students,
                    "schools": len(district.schools),
                    "classes": district.n_classes,
                    "seed": options["seed"],
                    "epoch": options["epoch"],
                }
            )
        )
