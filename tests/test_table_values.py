"""Table rows find the stored entries they came from, however rows were added, deleted or edited."""

from __future__ import annotations

from services.table_values import match_rows

# An entry is (keys, content, hidden id); a row shows (keys, content).
A, B, C = ("a", "Ay.", 0), ("b", "Bee.", 1), ("c", "Sea.", 2)


def bases(rows: list[tuple[str, str]]) -> list[int | None]:
    found = match_rows(
        rows,
        [A, B, C],
        lambda row, entry: row == entry[:2],
        lambda row, entry: row[0] == entry[0] or row[1] == entry[1],
    )
    return [entry[2] if entry else None for entry in found]


def test_unchanged_rows_are_their_entries_wherever_they_stand() -> None:
    assert bases([A[:2], B[:2], C[:2]]) == [0, 1, 2]
    assert bases([A[:2], C[:2]]) == [0, 2]  # B deleted
    assert bases([C[:2], A[:2]]) == [2, 0]


def test_a_deleted_row_and_a_new_one_in_one_save() -> None:
    assert bases([A[:2], C[:2], ("d", "Dee.")]) == [0, 2, None]


def test_an_edit_and_a_deletion_in_one_save() -> None:
    assert bases([("a", "Ay, changed."), C[:2]]) == [0, 2]  # keys kept: still entry A


def test_a_row_edited_whole_in_its_place() -> None:
    assert bases([A[:2], ("x", "Ex."), C[:2]]) == [0, 1, 2]
