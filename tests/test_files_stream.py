"""The block-by-block splitter (sqlstream) finds the same statements, lines and byte ranges whatever
the block size, wherever a block cuts a string, a body, a comment or COPY rows."""

from __future__ import annotations

import pytest

from grapevine_alembic.errors import MigrationFileError
from grapevine_alembic.files.sqlstream import CopyData, Piece, Source, pieces

TEXT = """-- a header comment; with a semicolon
CREATE TABLE t (id int, label text);
INSERT INTO t VALUES (1, 'a; b
c -- not a comment');
/* a block comment; /* nested; */ still; */
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
  INSERT INTO t VALUES (2, 'x');
  COPY t FROM stdin;
  RETURN 1;
END $body$;
CREATE FUNCTION g() RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT 1;
  SELECT 2;
END;
COPY t (id, label) FROM stdin;
3\tthree; not sql
4\tfour 'quote
\\.
INSERT INTO t VALUES (5, 'héllo ünïcode 😀; still');
SELECT 'é' AS "ñame";
"""


def _events(text: str, block_size: int):
    source = Source(None, text.encode("utf-8"))
    out = []
    for event in pieces(source, block_size=block_size):
        if isinstance(event, CopyData):
            out.append(("copy", event.line, event.reader().read().decode()))
        else:
            assert source.text(event.start, event.end) == event.text  # the byte range is the statement
            out.append((event.text.split(None, 1)[0], event.line))
    return out


EXPECTED = [("CREATE", 2), ("INSERT", 3), ("CREATE", 6), ("CREATE", 12), ("COPY", 17),
            ("copy", 18, "3\tthree; not sql\n4\tfour 'quote\n"), ("INSERT", 21), ("SELECT", 22)]


@pytest.mark.parametrize("block_size", [1, 7, 16, 50, 97, 256, 1 << 20])
def test_statements_and_copy_rows_do_not_depend_on_the_block_size(block_size):
    assert _events(TEXT, block_size) == EXPECTED


@pytest.mark.parametrize("block_size", [5, 64, 1 << 20])
def test_a_syntax_error_names_its_line_whatever_the_block_size(block_size):
    text = "SELECT 1;\n" * 30 + "SELEC 2;\n" + "SELECT 3;\n" * 30
    with pytest.raises(MigrationFileError, match="syntax error") as caught:
        list(pieces(Source(None, text.encode()), block_size=block_size))
    assert caught.value.line == 31


def test_an_unterminated_string_at_the_end_is_an_error_on_its_line():
    text = "SELECT 1;\n" * 10 + "SELECT 'open\nmore;\n"
    with pytest.raises(MigrationFileError, match="unterminated quoted string") as caught:
        list(pieces(Source(None, text.encode()), block_size=8))
    assert caught.value.line == 11


def test_pieces_are_only_statements_and_copy_data():
    assert all(isinstance(e, Piece | CopyData) for e in pieces(Source(None, TEXT.encode())))
