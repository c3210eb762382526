"""Which entries of a migration folder are migrations: file names, versions and near misses.

A name is ``YYYYMMDDHHMMSS_description.sql`` with a real timestamp; a file that was probably
meant to be one gets a warning, and a writing command refuses to run past it.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuplicateVersion, MigrationFileError, MissingMigrationDirectory
from .migration import Chain, MigrationFile

__all__ = ["SCHEMA_FILE_NAME", "Discovery", "discover", "is_migration_name"]

SCHEMA_FILE_NAME = "schema.sql"

# re.ASCII: \d and friends would otherwise accept non-ASCII digits such as "٢".
# The previous tool took every "*.sql" file and the version up to the first "_", so any
# description is accepted here too; `check` warns about characters beyond [A-Za-z0-9_-].
_MIGRATION_NAME = re.compile(r"([0-9]{14})_([^/\\]+)\.sql", re.ASCII)
_LEADING_DIGITS = re.compile(r"[0-9]*", re.ASCII)

_NAME_FORMAT = "YYYYMMDDHHMMSS_description.sql"


@dataclass(frozen=True)
class Discovery:
    """Migration files found in a directory, sorted by version, plus warnings about near misses."""

    files: tuple[MigrationFile, ...]
    warnings: tuple[str, ...]
    # the warnings that make a writing command refuse to run: a file a deploy would skip although
    # it was probably meant to run (a year-0000 name cannot be a real migration's date: it warns only)
    blocking: tuple[str, ...] = ()


# --------------------------------------------------------------------------- file names


def is_migration_name(name: str) -> bool:
    """Return True when ``name`` is a valid migration file name (including a real timestamp)."""
    return _split_migration_name(name) is not None


def _split_migration_name(name: str) -> tuple[str, str] | None:
    """Return (version, description) for a valid migration name, else None."""
    match = _MIGRATION_NAME.fullmatch(name)
    if match is None or not _is_valid_timestamp(match[1]):
        return None
    return match[1], match[2]


def _is_valid_timestamp(digits: str) -> bool:
    """Return True when 14 digits form a real YYYYMMDDHHMMSS date and time."""
    parts = (digits[0:4], digits[4:6], digits[6:8], digits[8:10], digits[10:12], digits[12:14])
    try:
        datetime.datetime(*(int(part) for part in parts))
    except ValueError:
        return False
    return True


def _near_miss_reason(name: str) -> str | None:
    """Explain why a file that is not a migration probably was meant to be one; None to stay quiet."""
    if name == SCHEMA_FILE_NAME or name.startswith("."):
        return None
    if not name.lower().endswith(".sql"):
        # Backups and renamed files of real migrations ("..._x.sql.bak") deserve a word.
        if len(_LEADING_DIGITS.match(name)[0]) >= 8:
            return f"only files ending in .sql are migrations ({_NAME_FORMAT})"
        return None
    stem, extension = name[:-4], name[-4:]
    digits = _LEADING_DIGITS.match(stem)[0]
    rest = stem[len(digits):]
    if len(digits) != 14:
        return f"a migration name needs a 14-digit timestamp ({_NAME_FORMAT})"
    if not _is_valid_timestamp(digits):
        return f"{digits} is not a valid UTC date and time (YYYYMMDDHHMMSS)"
    if rest in ("", "_"):
        return f"a migration name needs a description after the timestamp ({_NAME_FORMAT})"
    if not rest.startswith("_"):
        return f"the timestamp must be followed by _ and a description ({_NAME_FORMAT})"
    if extension != ".sql":
        return "the extension must be lower-case .sql"
    return None


def _year_zero(name: str) -> bool:
    """A 14-digit timestamp in year 0000: a placeholder (``00000000000000_baseline.sql``), never a date."""
    digits = _LEADING_DIGITS.match(name)[0]
    return len(digits) == 14 and digits.startswith("0000")


def discover(directory: Path) -> Discovery:
    """List the migration files directly inside ``directory``, sorted by version."""
    directory = Path(directory)
    if not directory.exists():
        raise MissingMigrationDirectory(f"migration directory {directory} does not exist")
    if not directory.is_dir():
        raise MissingMigrationDirectory(f"migration directory {directory} is not a directory")
    files: dict[str, MigrationFile] = {}
    chain = Chain()
    warnings: list[str] = []
    blocking: list[str] = []
    for name, regular in _entries(directory):
        split = _split_migration_name(name)
        if split is not None and not regular:
            # skipping it would run the files around it and report it out of order once it appears
            raise MigrationFileError(f"is named like a migration but is {_what_it_is(directory / name)}",
                                     path=directory / name)
        if split is None:
            reason = _near_miss_reason(name) if regular else None
            if reason:
                warnings.append(f"ignoring {directory / name}: {reason}")
                if not _year_zero(name):
                    blocking.append(warnings[-1])
            continue
        version, description = split
        if version in files:
            other = files[version].path.name
            raise DuplicateVersion(f"duplicate version {version}: {other} and {name}", path=directory)
        files[version] = MigrationFile(version, description, directory / name, chain)
    ordered = tuple(files[version] for version in sorted(files))
    chain.files = ordered
    return Discovery(ordered, tuple(warnings), tuple(blocking))


def _entries(directory: Path) -> list[tuple[str, bool]]:
    """(name, is a regular file or a symlink to one) of every entry directly inside ``directory``, sorted."""
    try:
        with os.scandir(directory) as entries:
            return sorted((entry.name, entry.is_file()) for entry in entries)
    except OSError as err:
        message = f"cannot list migration directory {directory}: {err.strerror or err}"
        raise MigrationFileError(message) from err


def _what_it_is(path: Path) -> str:
    """What a non-file entry is, in words, for the error naming it."""
    if path.is_symlink() and not path.exists():
        return f"a symbolic link to {os.readlink(path)}, which does not exist"
    if path.is_dir():
        return "a directory"
    return "not a regular file (a socket, a pipe or a device)"
