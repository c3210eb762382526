"""The state file next to a data directory (port, superuser, password; mode 0600) and its lock file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets

from ..errors import ConfigError


class StateFile:
    """Reading, writing and locking ``<name>.json`` / ``<name>.lock``; LocalPostgres sets the paths."""

    def _check_initialised_state(self, state: dict, password: str | None) -> None:
        """Refuse settings that cannot work with an existing cluster (it keeps its superuser and password)."""
        if not state and password is None:
            raise ConfigError(
                f"{self.state_path} is missing, so the password of {self.data_dir} is unknown; "
                "pass the password or delete the data directory"
            )
        if state.get("superuser", self.superuser) != self.superuser:
            raise ConfigError(f"{self.data_dir} was initialised with superuser {state['superuser']!r}")
        stored = state.get("password")
        if password is not None and stored is not None and not secrets.compare_digest(password, stored):
            raise ConfigError(
                f"{self.data_dir} was initialised with a different password; "
                "omit the password or delete the data directory"
            )

    def _read_state(self) -> dict:
        """The persisted state, or {} if there is none."""
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read {self.state_path}: {err}") from err
        if not isinstance(state, dict):
            raise ConfigError(f"{self.state_path} is not a JSON object")
        return state

    def _write_state(self, state: dict) -> None:
        """Write the state atomically, created with mode 0600 so the password is never world-readable."""
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _locked(self):
        """Hold an exclusive lock so two processes do not initdb/start the same folder at once."""
        import fcntl  # POSIX only; imported here so importing this module stays portable

        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
