"""summary.json is used while it describes the rows on disk, and only then."""

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_data, write_run
from perwatt.analysis import summaries
from perwatt.analysis._columns import KERNEL_COLUMNS
from perwatt.analysis.summaries import compute_summaries, rows_digest, summaries_of
from perwatt.files import write_json
from perwatt.store import read_run


@pytest.fixture
def stored(tmp_path, rows):
    """A run directory with the summary.json its run would have written."""
    path = write_run(tmp_path / "run", rows)
    (summary,) = compute_summaries([run_data(str(path), rows)])
    write_json(path / "summary.json", summary)
    return path, summary


@pytest.fixture
def no_kernel(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the kernel ran: summary.json was taken as stale")

    monkeypatch.setattr(summaries, "summarize", refuse)


def _rewrite(path, edit):
    table = edit(pq.read_table(path / "requests.parquet"))
    pq.write_table(table, path / "requests.parquet", row_group_size=3)


def test_a_current_summary_is_used_as_written(stored, no_kernel):
    path, summary = stored
    run = read_run(path)
    assert summaries_of([run]) == [summary]
    assert run._requests is None  # the check read the kernel's columns, not the whole table


def test_other_columns_and_the_file_layout_leave_it_current(stored, no_kernel):
    path, summary = stored

    def edit(table):
        k = table.schema.get_field_index("response_text")
        return table.set_column(k, "response_text", pa.array(["other"] * table.num_rows))

    _rewrite(path, edit)
    assert summaries_of([read_run(path)]) == [summary]


def test_a_rescored_row_makes_it_stale(stored):
    path, summary = stored

    def edit(table):
        correct = table.column("correct").to_pylist()
        correct[1] = True  # row 1 was wrong; its status is ok
        return table.set_column(table.schema.get_field_index("correct"), "correct",
                                pa.array(correct))  # fmt: skip

    _rewrite(path, edit)
    (fresh,) = summaries_of([read_run(path)])
    assert fresh.n_correct == summary.n_correct + 1
    assert fresh.requests_sha256 != summary.requests_sha256


def test_an_edited_energy_makes_it_stale(stored):
    path, summary = stored

    def edit(table):
        energy = [2 * e for e in table.column("energy_j").to_pylist()]
        return table.set_column(table.schema.get_field_index("energy_j"), "energy_j",
                                pa.array(energy))  # fmt: skip

    _rewrite(path, edit)
    (fresh,) = summaries_of([read_run(path)])
    assert fresh.energy_per_query_j.value == pytest.approx(2 * summary.energy_per_query_j.value)


def test_an_older_digest_makes_it_stale(stored):
    path, summary = stored
    write_json(path / "summary.json", dataclasses.replace(summary, requests_sha256="0" * 64))
    assert summaries_of([read_run(path)]) == [summary]  # computed again, the same figures


def test_the_digest_is_of_the_rows_not_of_their_layout(rows):
    table = run_data("/r", rows).requests
    digest = rows_digest(table)
    chunked = pa.concat_tables([table.slice(0, 3), table.slice(3, 4), table.slice(7)])
    assert chunked.column("item_id").num_chunks == 3
    assert rows_digest(chunked) == digest
    assert rows_digest(table.select(list(KERNEL_COLUMNS))) == digest
    assert rows_digest(pa.concat_tables([table.slice(1), table.slice(0, 1)])) != digest
    nulled = table.set_column(
        table.schema.get_field_index("energy_j"), "energy_j",
        pa.array([None, *table.column("energy_j").to_pylist()[1:]], pa.float64()),
    )  # fmt: skip
    assert rows_digest(nulled) != digest
