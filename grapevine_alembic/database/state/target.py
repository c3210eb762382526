"""One database to work on: the value a database job is handed (fleet.targets builds them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...settings import ConnectionSpec


@dataclass(frozen=True)
class Target:
    """One database to work on."""

    env: str  # "control" or "tenant"
    spec: ConnectionSpec
    tenant_id: str | None = None
    problem: str | None = None  # known before connecting (e.g. an invalid id in the tenants table)
    placement: str | None = None  # the server value as written, when it could not be used

    @property
    def server(self) -> str:
        """``host:port`` of the database's server (or the unusable value from the tenants table)."""
        return self.placement if self.placement is not None else self.spec.server

    @property
    def label(self) -> str:
        """The tenant id as shown: a NULL or empty id from the tenants table is visibly one."""
        if self.env == "control":
            return "control"
        return "(NULL id)" if self.tenant_id is None else (self.tenant_id or "(empty id)")

    @property
    def name(self) -> str:
        return "control" if self.env == "control" else f"tenant {self.label}"

    @property
    def database(self) -> str:
        return self.spec.dbname
