"""Run ``grapevine-migrations`` or ``alembic`` inside the test process, isolated like a child process.

A subprocess costs ~1.4 s of interpreter start-up and imports per call; most tests check what a
command prints and leaves in the databases, not that a new process starts.  ``run`` gives back
the same ``subprocess.CompletedProcess`` (returncode, stdout, stderr as text) and puts back, after
every call, what a process would have kept to itself: the environment (``.env`` loading writes to
it), the working folder, argv, stdin/stdout/stderr, signal handlers and mask, logging (Alembic's
env.py runs ``logging.config.fileConfig``), ``sys.path`` (``prepend_sys_path``) and the caches of
the product that a new process would start empty.  Tests about signals, exit codes of the real
executable, the installed wheel or a terminal keep real subprocesses (``ScratchProject.run``,
``spawn``, ``cli(..., subprocess=True)``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback

# Imported once here, so the loggers they create exist before the first call (and survive its restore).
import alembic.config  # noqa: F401
import alembic.runtime.migration  # noqa: F401
import grapevine_alembic.api  # noqa: F401
from grapevine_alembic import masking
from grapevine_alembic.cli import main as cli_main

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE)


def run(program: str, args: list[str], *, env: dict, cwd, input: str | None = None) -> subprocess.CompletedProcess:
    """``program`` ('grapevine-migrations' or 'alembic') with ``args``, in this process."""
    entry = _ENTRIES[program]
    out, err = _capture(), _capture()
    with _isolated(env, cwd, [program, *args], input, out, err):
        code = _exit_code(lambda: entry(args))
    return subprocess.CompletedProcess([program, *args], code, _text(out), _text(err))


def _grapevine(args: list[str]) -> None:
    cli_main.main(list(args))


class _AlembicCommandLine(alembic.config.CommandLine):
    def run_cmd(self, config, options) -> None:
        config.stdout = sys.stdout  # Config's default is the sys.stdout of import time, not this call's
        super().run_cmd(config, options)


def _alembic(args: list[str]) -> None:
    _AlembicCommandLine(prog="alembic").main(argv=list(args))


_ENTRIES = {"grapevine-migrations": _grapevine, "alembic": _alembic}


def _exit_code(call) -> int:
    """What the interpreter would exit with: SystemExit's code, or 1 and the traceback on stderr."""
    try:
        call()
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return (stop.code or 0) % 256  # what the parent sees: exit(-1) is 255
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:  # an uncaught exception: Python prints it and exits 1
        traceback.print_exc()
        return 1
    return 0


def _capture() -> io.TextIOWrapper:
    # Bytes underneath, so code writing to .buffer works too; a pipe is never a terminal.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8", errors="replace").replace("\r\n", "\n")


@contextlib.contextmanager
def _isolated(env: dict, cwd, argv: list[str], input: str | None, out, err):
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_argv, saved_path = sys.argv, list(sys.path)
    saved_handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    saved_logging = _logging_state()
    _fresh_process_caches()
    os.environ.clear()
    os.environ.update(env)
    try:
        os.chdir(cwd)
        sys.argv = argv
        sys.stdin = io.StringIO(input or "")  # like /dev/null or a pipe: end of input, not a terminal
        sys.stdout, sys.stderr = out, err
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        sys.path[:] = saved_path
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        _restore_logging(saved_logging)
        _fresh_process_caches()


def _fresh_process_caches() -> None:
    """What a new process starts without: the .pgpass secrets read for an environment (the CLI's main()
    forgets the previous command's own secrets itself)."""
    masking._known.cache_clear()


def _logging_state() -> dict:
    loggers = [logging.getLogger(), *(obj for obj in logging.Logger.manager.loggerDict.values()
                                       if isinstance(obj, logging.Logger))]
    return {logger: (logger.level, list(logger.handlers), logger.propagate, logger.disabled) for logger in loggers}


def _restore_logging(state: dict) -> None:
    for logger, (level, handlers, propagate, disabled) in state.items():
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled
    for obj in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(obj, logging.Logger) and obj not in state:
            # Created during the call (by fileConfig or a late import): a new process would not have it set up.
            obj.handlers[:] = []
            obj.setLevel(logging.NOTSET)
            obj.propagate, obj.disabled = True, False
