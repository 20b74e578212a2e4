"""The item table and its alignment to items by raw id (no model needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cranerec.data.errors import DataError
from cranerec.features import align_items, read_item_table, write_features
from cranerec.features.items import sorted_ids


def write_csv(path, rows, columns=("sku", "title")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_items_are_matched_to_rows_by_id_not_by_position(tmp_path):
    table = read_item_table(
        write_csv(tmp_path / "items.csv", [(" 7", "g"), ("3", "c"), ("12", "l"), ("x", "?")]),
        "sku", ["title"],
    )  # fmt: skip
    align = align_items(table, np.array([12, 3, 7]))  # int ids, as an MMRec dataset has them
    assert table.columns["title"][align.rows].tolist() == ["l", "c", "g"]


def test_items_missing_from_the_table_are_an_error_naming_them(tmp_path):
    table = read_item_table(
        write_csv(tmp_path / "items.csv", [("1", "a"), ("2", "b")]), "sku", ["title"]
    )
    with pytest.raises(DataError, match=r"2 item\(s\).*\['9', '5'\].*--on-missing zero"):
        align_items(table, np.array(["1", "9", "2", "5"]))


def test_extra_table_rows_are_counted(tmp_path):
    rows = [(str(i), f"t{i}") for i in range(5)]
    table = read_item_table(write_csv(tmp_path / "items.csv", rows), "sku", ["title"])
    assert align_items(table, np.array(["4", "0"])).extra == 3
    assert align_items(table, np.array(["4", "0", "1", "2", "3"])).extra == 0


def test_duplicated_id_is_an_error_naming_the_id_and_its_lines(tmp_path):
    path = write_csv(tmp_path / "items.csv", [("1", "a"), ("2", "b"), ("3", "c"), ("2", "d")])
    # the header is line 1: rows 1 and 3 are lines 3 and 5
    with pytest.raises(DataError, match=r"item id '2' appears on lines \[3, 5\]"):
        read_item_table(path, "sku", ["title"])


def test_empty_id_is_an_error_naming_its_line(tmp_path):
    path = write_csv(tmp_path / "items.csv", [("1", "a"), ("  ", "b")])
    with pytest.raises(DataError, match="line 3: empty sku"):
        read_item_table(path, "sku", ["title"])


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path / "items.csv", [("1", "a")])
    with pytest.raises(DataError, match=r"missing column\(s\) \['name', 'desc'\]"):
        read_item_table(path, "sku", ["name", "desc"])
    with pytest.raises(DataError, match=r"missing column\(s\) \['id'\]"):
        read_item_table(path, "id", ["title"])


def test_a_table_without_rows_is_an_error(tmp_path):
    path = write_csv(tmp_path / "items.csv", [])
    with pytest.raises(DataError, match="no rows"):
        read_item_table(path, "sku", ["title"])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("items.csv", None, "missing file"),
        (
            "items.csv",
            b"sku,title\n1,ok\n2,caf\xe9\n",
            "line 3 is not UTF-8 text; save the item table as UTF-8",
        ),
        ("items.xlsx", b"sku,title\n1,a\n", "must be .csv, .tsv or .parquet"),
        ("items.parquet", b"not parquet", "unreadable item table"),
    ],
)
def test_unreadable_table_is_an_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        read_item_table(path, "sku", ["title"])
    assert str(path) in str(e.value)


def test_csv_tsv_and_parquet_tables_read_alike(tmp_path):
    df = pd.DataFrame({"sku": [10, 2, 33], "title": ["ten", "", "thirty three"]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "a.parquet", index=False)
    tables = [
        read_item_table(tmp_path / f"a.{ext}", "sku", ["title"])
        for ext in ("csv", "tsv", "parquet")
    ]
    for t in tables:
        assert t.ids.tolist() == ["10", "2", "33"]
        assert t.columns["title"].tolist() == ["ten", "", "thirty three"]


def test_empty_and_null_cells_read_as_empty_text(tmp_path):
    df = pd.DataFrame({"sku": ["a", "b", "c"], "title": ["x", None, "  "]})
    df.to_parquet(tmp_path / "t.parquet", index=False)
    (tmp_path / "t.csv").write_text("sku,title\na,x\nb,\nc,  \n", encoding="utf-8")
    for name in ("t.parquet", "t.csv"):
        assert read_item_table(tmp_path / name, "sku", ["title"]).columns["title"].tolist() == [
            "x",
            "",
            "",
        ]


def test_sorted_ids_are_numeric_when_all_ids_are_integers():
    assert sorted_ids(np.array(["10", "9", "100", "0"], dtype=object)).tolist() == [
        "0",
        "9",
        "10",
        "100",
    ]
    assert sorted_ids(np.array(["b10", "b9", "a"], dtype=object)).tolist() == ["a", "b10", "b9"]


def test_write_features_writes_rows_ids_and_sidecar(tmp_path):
    feat = np.arange(6, dtype=np.float64).reshape(3, 2)
    path = write_features(
        tmp_path / "out", "text", feat, np.array(["c", "a", "b"]), {"kind": "text"}
    )
    saved = np.load(path)
    assert saved.dtype == np.float32 and np.array_equal(saved, feat.astype(np.float32))
    assert (tmp_path / "out" / "item_ids.txt").read_text() == "c\na\nb\n"


def test_a_second_modality_with_the_same_items_shares_the_folder(tmp_path):
    ids = np.array(["1", "2"])
    write_features(tmp_path, "text", np.ones((2, 3)), ids, {})
    write_features(tmp_path, "image", np.zeros((2, 4)), ids, {})
    assert np.load(tmp_path / "image_feat.npy").shape == (2, 4)
    assert (tmp_path / "item_ids.txt").read_text() == "1\n2\n"


@pytest.mark.parametrize("other_ids", [["2", "1"], ["1", "2", "3"], ["1"]])
def test_features_for_other_items_are_refused_and_nothing_is_written(tmp_path, other_ids):
    write_features(tmp_path, "text", np.ones((2, 3)), np.array(["1", "2"]), {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    feat = np.zeros((len(other_ids), 3))
    with pytest.raises(DataError, match="item_ids.txt: lists other items"):
        write_features(tmp_path, "text", feat, np.array(other_ids), {})
    with pytest.raises(DataError, match="item_ids.txt: lists other items"):
        write_features(tmp_path, "image", feat, np.array(other_ids), {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_modality_name_that_is_not_a_file_name_part_is_refused(tmp_path):
    with pytest.raises(DataError, match="--modality"):
        write_features(tmp_path, "../text", np.ones((1, 2)), np.array(["1"]), {})
    assert not any(tmp_path.iterdir())


def write_tsv(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_tsv_keeps_quotes_in_titles_and_a_stray_quote_swallows_no_row(tmp_path):
    """Inch marks and quoted brand names are common in product titles: read as TSV defines
    it, each line is one row and the quotes stay in the text."""
    path = write_tsv(
        tmp_path / "items.tsv",
        ["sku\ttitle", '1\t"12 inch bat', "2\tglove", '3\t"Pro" glove', '4\tsize 10" shoe'],
    )
    table = read_item_table(path, "sku", ["title"])
    assert table.ids.tolist() == ["1", "2", "3", "4"]
    assert table.columns["title"].tolist() == [
        '"12 inch bat',
        "glove",
        '"Pro" glove',
        'size 10" shoe',
    ]


def test_a_tsv_written_with_csv_quoting_is_read_with_it(tmp_path):
    """A TSV from a CSV writer (pandas ``to_csv(sep="\\t")``) quotes the cells that hold quotes,
    tabs or line breaks: those cells read back as written."""
    titles = ['12" bat', "tab\there", "two\nlines", "plain"]
    path = tmp_path / "items.tsv"
    pd.DataFrame({"sku": ["1", "2", "3", "4"], "title": titles}).to_csv(path, sep="\t", index=False)
    with pytest.warns(UserWarning, match="6 lines read as 5 rows"):  # the cell with a line break
        table = read_item_table(path, "sku", ["title"])
    assert table.ids.tolist() == ["1", "2", "3", "4"]
    assert table.columns["title"].tolist() == titles


def test_most_items_without_a_row_name_the_id_column_and_its_ids(tmp_path):
    """The wrong --id-col (the ASIN where the data's ids are item indices) is named as such,
    not reported as items to add, nor zero-filled by --on-missing zero."""
    table = read_item_table(
        write_csv(tmp_path / "items.csv", [("B0001", "a"), ("B0002", "b")]), "sku", ["title"]
    )
    with pytest.raises(
        DataError, match=r"none of the 2 item\(s\).*\['0', '1'\].*'B0001'.*--id-col"
    ):
        align_items(table, np.array(["0", "1"]))
    with pytest.raises(DataError, match="none of"):  # even when missing rows are allowed
        align_items(table, np.array(["0", "1"]), allow_missing=True)
    with pytest.raises(DataError, match=r"2 of the 3 item\(s\) .* no row.*--id-col"):
        align_items(table, np.array(["B0001", "0", "1"]), allow_missing=True)  # most missing


def test_missing_rows_are_allowed_as_row_minus_one_when_asked(tmp_path):
    table = read_item_table(
        write_csv(tmp_path / "items.csv", [("1", "a"), ("2", "b"), ("3", "c")]), "sku", ["title"]
    )
    with pytest.raises(DataError, match="--on-missing zero"):
        align_items(table, np.array(["2", "9"]))
    align = align_items(table, np.array(["2", "9"]), allow_missing=True)
    assert align.rows.tolist() == [1, -1] and align.extra == 2


def test_a_tsv_from_a_csv_writer_with_plain_lines_is_unwrapped(tmp_path):
    """Every line has the header's tabs, some cells wrapped whole in quotes: those are
    unwrapped ("" is one quote) and a stray quote elsewhere still swallows nothing."""
    path = write_tsv(
        tmp_path / "items.tsv",
        ['"sku"\ttitle', '1\t"a ""b"" c"', '2\t"12 inch bat', '3\t""', "4\tglove"],
    )
    table = read_item_table(path, "sku", ["title"])
    assert table.ids.tolist() == ["1", "2", "3", "4"]
    assert table.columns["title"].tolist() == ['a "b" c', '"12 inch bat', "", "glove"]


def test_a_tsv_read_with_csv_quoting_warns_when_quoted_cells_span_lines(tmp_path):
    from cranerec.data import DataWarning

    path = write_tsv(tmp_path / "items.tsv", ["sku\ttitle", '1\t"two', 'lines"', "2\tglove"])
    with pytest.warns(DataWarning, match="4 lines read as 3 rows"):
        table = read_item_table(path, "sku", ["title"])
    assert table.columns["title"].tolist() == ["two\nlines", "glove"]


def test_a_null_id_in_a_parquet_table_is_an_empty_id_named_by_line(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"sku": [1.0, 2.0, None], "title": ["a", "b", "c"]}).to_parquet(path)
    with pytest.raises(DataError, match=r"t\.parquet: line 4: empty sku"):
        read_item_table(path, "sku", ["title"])
    pd.DataFrame({"sku": [1.0, 2.0], "title": ["a", "b"]}).to_parquet(path)
    assert read_item_table(path, "sku", ["title"]).ids.tolist() == ["1", "2"]


def test_a_folder_given_as_the_table_is_named_as_a_folder(tmp_path):
    with pytest.raises(DataError, match="is a folder; give the item table's file"):
        read_item_table(tmp_path, "sku", ["title"])


def test_a_parquet_column_of_huge_whole_floats_reads_as_before(tmp_path):
    # Review: the integer cast of whole floats raised on 1e20 (beyond int64): exit 3
    path = tmp_path / "t.parquet"
    pd.DataFrame({"sku": ["a", "b"], "title": ["x", "y"], "price": [1e20, 2.5e19]}).to_parquet(path)
    assert read_item_table(path, "sku", ["title", "price"]).columns["price"].tolist() == [
        "1e+20",
        "2.5e+19",
    ]
