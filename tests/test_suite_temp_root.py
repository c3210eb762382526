"""Where the suite's temporary folders go (tests/temp_root.py): memory when there is room, else the disk."""

import os
import tempfile

import pytest

import temp_root

pytestmark = pytest.mark.files_only


def test_the_run_itself_uses_the_chosen_root(tmp_path):
    if "PYTEST_DEBUG_TEMPROOT" in os.environ:
        pytest.skip("PYTEST_DEBUG_TEMPROOT chooses the folder")
    assert os.path.realpath(tmp_path).startswith(os.path.realpath(temp_root.temp_root()) + os.sep)


def test_the_override_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(temp_root.OVERRIDE, str(tmp_path))
    assert temp_root.temp_root() == str(tmp_path)


def test_memory_is_taken_only_when_it_is_a_tmpfs_with_room(monkeypatch):
    monkeypatch.delenv(temp_root.OVERRIDE, raising=False)
    roomy = temp_root.is_tmpfs(temp_root.MEMORY) and temp_root.free_bytes(temp_root.MEMORY) >= temp_root.ROOM_NEEDED
    expected = temp_root.MEMORY if roomy and os.access(temp_root.MEMORY, os.W_OK) else tempfile.gettempdir()
    assert temp_root.temp_root() == expected
    monkeypatch.setattr(temp_root, "ROOM_NEEDED", 1 << 62)  # more than any machine has
    assert temp_root.temp_root() == tempfile.gettempdir()


def test_a_disk_folder_is_not_taken_for_a_tmpfs():
    assert not temp_root.is_tmpfs(os.path.dirname(__file__))  # a folder, not a mount point
    assert not temp_root.is_tmpfs("/no/such/mount")
