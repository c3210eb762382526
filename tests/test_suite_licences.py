"""Every required dependency, and theirs, may ship inside a proprietary image: no GPL or AGPL."""

from __future__ import annotations

import importlib.metadata as metadata
import re

from packaging.requirements import Requirement

COPYLEFT = re.compile(r"(?<![L\w])(A?GPL|GNU (Affero )?General Public)", re.IGNORECASE)


def licences(distribution: metadata.Distribution) -> list[str]:
    """What the metadata says: License-Expression, License, and the License :: classifiers."""
    meta = distribution.metadata
    said = [meta.get("License-Expression") or "", *(meta.get("License") or "").splitlines()[:1]]
    said += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return [text for text in said if text.strip()]


def is_copyleft(text: str) -> bool:
    """GPL or AGPL in any spelling; LGPL (the Lesser licence, psycopg2's) is allowed."""
    return bool(COPYLEFT.search(text.replace("Lesser General Public", "LGPL")))


def required(name: str, seen: dict[str, list[str]]) -> dict[str, list[str]]:
    """The required distributions below ``name`` (extras and other markers left out), with their licences."""
    distribution = metadata.distribution(name)
    key = distribution.metadata["Name"].lower()
    if key in seen:
        return seen
    seen[key] = licences(distribution)
    for line in distribution.requires or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        required(requirement.name, seen)
    return seen


def test_no_required_dependency_is_under_a_copyleft_licence():
    found = required("grapevine-alembic", {})
    assert {"postgast", "alembic", "psycopg2-binary", "squawk-cli"} <= set(found)
    assert "pglast" not in found
    copyleft = {name: said for name, said in found.items() if any(map(is_copyleft, said))}
    assert copyleft == {}
    assert found["grapevine-alembic"] == ["MIT"]


def test_the_copyleft_test_tells_gpl_from_lgpl_and_permissive_licences():
    assert is_copyleft("GPL-3.0-or-later") and is_copyleft("AGPL-3.0-only")
    assert is_copyleft("License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)")
    assert not is_copyleft("LGPL with exceptions")
    assert not is_copyleft("License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)")
    assert not is_copyleft("BSD-2-Clause") and not is_copyleft("Apache-2.0 OR MIT")
