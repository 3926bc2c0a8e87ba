"""`manage.py catalog_load`: create the catalog from the data file; run it on every deploy, it is idempotent."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.catalog_file import DEFAULT_CATALOG_FILE, catalog_file_read
from catalog.services import catalog_load
from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create the products, prices and coupons of the catalog file that the database lacks. "
        "Staff edits made in the admin are kept unless --overwrite is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--file",
            type=Path,
            default=DEFAULT_CATALOG_FILE,
            help=f"The catalog file (default: {DEFAULT_CATALOG_FILE}).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Make existing rows match the file. A price whose amount changed is deactivated "
            "and a new one created, never edited in place.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")

    def handle(self, *args, file: Path, overwrite: bool, dry_run: bool, verbosity: int, **options):
        try:
            report = catalog_load(data=catalog_file_read(path=file), overwrite=overwrite, dry_run=dry_run)
        except ApplicationError as error:
            raise CommandError(error.message) from error
        if verbosity:
            self.stdout.write("\n".join(report.lines(verbose=verbosity > 1)))
