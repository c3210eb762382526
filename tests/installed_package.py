"""The package as a user gets it: a wheel and an sdist built from pyproject.toml with PyPA build,
the wheel installed into a fresh virtualenv outside this repository (the `installed` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import run_shared
from project import REPO


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    venv: Path
    seconds: dict  # "build", "install": how long each took (README, "Tests")

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra) -> dict:
        """Only the fresh venv and the system on PATH: nothing of this suite's venv or this repository."""
        base = {"PATH": f"{self.bin}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
                "PYTHONDONTWRITEBYTECODE": "1"}
        return {k: v for k, v in {**base, **extra}.items() if v is not None}


TIMINGS: dict[str, float] = {}  # printed at the end of the run (conftest.py)


def build_and_install(where: Path) -> Installed:
    started = time.monotonic()
    dist = where / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], check=True,
                   capture_output=True, text=True, timeout=600)
    built = time.monotonic()
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel)], check=True,
                   capture_output=True, text=True, timeout=600)
    TIMINGS.update({"wheel and sdist built": built - started, "fresh venv with the wheel": time.monotonic() - built})
    return Installed(wheel, sdist, venv, dict(TIMINGS))


def built_once(tmp_path_factory) -> Installed:
    """One build and venv for the whole run: the xdist workers share them (the tests only read the venv)."""

    def build(where: Path) -> dict:
        made = build_and_install(where)
        return {"wheel": str(made.wheel), "sdist": str(made.sdist), "venv": str(made.venv), "seconds": made.seconds}

    made = run_shared.once(tmp_path_factory, "wheel", build)
    return Installed(Path(made["wheel"]), Path(made["sdist"]), Path(made["venv"]), made["seconds"])
