"""Files merged late: never applied to a database although older than its version.

A branch merged after a newer one has been deployed leaves such a file.  The project
chooses in ``alembic.ini`` (``[grapevine] out_of_order = apply | refuse``):

* ``apply`` (the default, as the previous tool, dbmate and Rails do): ``migrate`` runs them
  first, in version order, with one warning line naming each;
* ``refuse``: the database stops untouched, with what resolves it (``errors.OUT_OF_ORDER``: each way in words it).

``migrate --out-of-order`` / ``--refuse-out-of-order`` choose for one run, ``alembic ...
-x out_of_order=refuse`` for the alembic road, ``out_of_order=`` for the Python API.
``check --changed-since`` catches such files at pull-request time whatever the setting.
"""

from __future__ import annotations

from ...errors import OUT_OF_ORDER, Fix
# the setting itself is read with the rest of alembic.ini, in the root's settings
from ...settings import OUT_OF_ORDER_APPLY as APPLY
from ...settings import OUT_OF_ORDER_REFUSE as REFUSE
from ...settings import OUT_OF_ORDER_SETTING as SETTING
from ...settings import parse_out_of_order_policy as parse_policy

__all__ = ["APPLY", "REFUSE", "SETTING", "parse_policy", "refuse", "warning_line"]


def warning_line(database: str, migration, head: str | None) -> str:
    return (f"warning: {database}: applying {migration.path.name} out of order: older than the database's"
            f" version {head}, never applied here (merged late?)")


def refuse(result, plan, word_fix=None) -> None:
    """Fail ``result`` for late files: the files, and ``OUT_OF_ORDER`` (run them, or record the first as applied)."""
    names = ", ".join(m.path.name for m in plan.out_of_order)
    facts = (f"never applied here although older than the database's version {plan.head or plan.adopt_to}"
             f" (merged late, or its ledger row was removed): {names}")
    result.refuse(facts, Fix(OUT_OF_ORDER, plan.out_of_order[0].version), word_fix)
