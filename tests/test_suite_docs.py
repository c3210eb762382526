"""README.md is one page and the reference lives in docs/: every relative link resolves, and the
README's five-minute walkthrough runs as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from project import BIN, REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as '-', '-1' on a repeat."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(f"{slug}-{count}" if count else slug)
    return anchors


def _relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(_prose(page.read_text())) if not SCHEME.match(target)]


def test_every_relative_link_in_readme_and_docs_resolves():
    broken, checked = [], 0
    for page in PAGES:
        for target in _relative_links(page):
            checked += 1
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}: no such file")
            elif anchor and (file.suffix != ".md" or anchor not in _anchors(file)):
                broken.append(f"{page.relative_to(REPO)}: {target}: no such heading")
    assert not broken, "\n".join(broken)
    assert checked >= 40  # README's reference links and the docs' cross-links were all seen


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "a.md").write_text("# A, b\n\n## Two words\n\n## Two words\n\nsee [b](b.md), [x](#two-words),"
                                   " [w](https://example.org), `[not](a-link)`\n\n```\n[nor](this)\n```\n")
    assert _relative_links(tmp_path / "a.md") == ["b.md", "#two-words"]
    assert _anchors(tmp_path / "a.md") == {"a-b", "two-words", "two-words-1"}


def test_readme_is_one_page_and_docs_has_an_index():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
    index = _relative_links(REPO / "docs" / "README.md")
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "README.md":
            assert page.name in index, f"docs/README.md does not link {page.name}"
            assert f"docs/{page.name}" in _relative_links(REPO / "README.md"), f"README.md does not link {page.name}"


def _walkthrough() -> str:
    section = (REPO / "README.md").read_text().split("## Five minutes with it", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
    return block


def test_the_readme_walkthrough_runs_as_written(project):
    """After the first command (control migrated, acme, globex and initech at head), the block runs."""
    project.migrate_control()
    for tenant in ("acme", "globex", "initech"):
        project.add_tenant(tenant)
    assert project.cli("migrate", "--all-tenants").returncode == 0
    block = _walkthrough()
    assert block.count("grapevine-migrations") >= 6 and "alembic -c alembic.ini" in block
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=project.root,
                            env={**project.env, "PATH": f"{BIN}:{project.env['PATH']}"},
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    [new] = [p for p in (project.root / "migrations" / "tenant").glob("*_add_task_labels.sql")]
    version = new.name[:14]
    for tenant in ("acme", "globex", "initech"):
        assert project.version(f"db_{tenant}") == version
        assert project.query(f"db_{tenant}", "SELECT count(*) FROM information_schema.columns"
                             " WHERE table_name = 'tasks' AND column_name = 'labels'")[0][0] == 1
    assert f"{version} (head)" in result.stdout  # alembic current
    assert "labels" in result.stdout  # psql's \d tasks
    assert "would apply" in result.stdout and "add task labels" in result.stdout
