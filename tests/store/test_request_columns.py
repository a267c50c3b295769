"""Reading only some columns of a run's requests: checked as the whole table is, read once."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_data, write_run
from perwatt.analysis._columns import KERNEL_COLUMNS
from perwatt.errors import PerwattError
from perwatt.store import REQUEST_SCHEMA, read_run
from perwatt.store import _reader as reader


@pytest.fixture
def reads(monkeypatch):
    """The column lists requests.parquet was read with (None: the whole file)."""
    seen: list[list[str] | None] = []
    real = reader._read_parquet

    def read_parquet(path, columns=None):
        if str(path).endswith("requests.parquet"):
            seen.append(None if columns is None else list(columns))
        return real(path, columns)

    monkeypatch.setattr(reader, "_read_parquet", read_parquet)
    return seen


def test_the_kernel_columns_are_read_alone_and_once(tmp_path, rows, reads):
    run = read_run(write_run(tmp_path / "run", rows))
    assert reads == [["status", "correct"]]  # read_run's checks
    some = run.request_columns(KERNEL_COLUMNS)
    assert some.column_names == list(KERNEL_COLUMNS)
    assert some.schema == pa.schema([REQUEST_SCHEMA.field(n) for n in KERNEL_COLUMNS])
    assert None not in reads and "response_text" not in reads[1]
    run.request_columns(("t_sent", "t_done"))
    assert len(reads) == 2  # kept
    full = run.requests
    assert reads[-1] is None
    assert full.select(list(KERNEL_COLUMNS)).equals(some)
    assert run.request_columns(("t_sent",)).equals(full.select(["t_sent"]))


def test_columns_read_without_keeping_are_not_kept(tmp_path, rows, reads):
    # What the kernel converts at once (10 M rows: a gigabyte of Arrow memory) is let go.
    run = read_run(write_run(tmp_path / "run", rows))
    first = run.request_columns(KERNEL_COLUMNS, keep=False)
    again = run.answer_columns(KERNEL_COLUMNS, keep=False)
    assert len(reads) == 3 and first.equals(again)
    assert run.answer_rows() == len(rows)
    kept = run.request_columns(KERNEL_COLUMNS)
    run.request_columns(KERNEL_COLUMNS, keep=False)
    assert len(reads) == 4 and kept.equals(first)


def test_in_memory_runs_serve_columns_from_their_table(rows):
    run = run_data("/nowhere/r1", rows)
    assert run.request_columns(("energy_j",)).equals(run.requests.select(["energy_j"]))
    with pytest.raises(ValueError, match="no request column 'nope'"):
        run.request_columns(("nope",))


def test_a_column_the_file_lacks_reads_as_null(tmp_path, rows):
    path = write_run(tmp_path / "run", rows)
    table = pq.read_table(path / "requests.parquet").drop_columns(["itl_s", "prefill_energy_j"])
    pq.write_table(table, path / "requests.parquet")
    cols = read_run(path).request_columns(("itl_s", "prefill_energy_j", "energy_j"))
    assert cols.column("itl_s").null_count == len(rows)
    assert cols.schema.field("itl_s").type == REQUEST_SCHEMA.field("itl_s").type
    assert cols.column("energy_j").to_pylist() == [r.energy_j for r in rows]


def _rewrite(path, name, values):
    table = pq.read_table(path / "requests.parquet")
    table = table.set_column(table.schema.get_field_index(name), name, values)
    pq.write_table(table, path / "requests.parquet")


def test_a_column_of_the_wrong_type_is_found_by_read_run(tmp_path, rows):
    path = write_run(tmp_path / "run", rows)
    _rewrite(path, "itl_s", pa.array(["x"] * len(rows)))  # a column no analysis reads
    with pytest.raises(PerwattError, match="column 'itl_s' is string, expected list") as info:
        read_run(path)
    assert str(path / "requests.parquet") in str(info.value)


def test_values_that_do_not_cast_are_one_clear_error_when_read(tmp_path, rows):
    path = write_run(tmp_path / "run", rows)
    _rewrite(path, "energy_j", pa.array(["lots"] * len(rows)))
    run = read_run(path)
    with pytest.raises(PerwattError, match="column 'energy_j' is string, expected double") as e:
        run.request_columns(KERNEL_COLUMNS)
    assert str(path / "requests.parquet") in str(e.value)


def test_a_missing_required_column_is_found_by_read_run(tmp_path, rows):
    path = write_run(tmp_path / "run", rows)
    table = pq.read_table(path / "requests.parquet").drop_columns(["t_done"])
    pq.write_table(table, path / "requests.parquet")
    with pytest.raises(PerwattError, match="not a perwatt table \\(no column 't_done'\\)"):
        read_run(path)


def test_routing_reads_only_its_numbers_and_the_rest_reads_as_not_recorded(tmp_path, rows, reads):
    from perwatt.analysis._columns import RequestColumns
    from perwatt.analysis.routing import ROUTING_NUMBERS

    run = read_run(write_run(tmp_path / "run", rows))
    cols = RequestColumns.from_runs([run], numbers=ROUTING_NUMBERS)
    assert "t_sent" not in reads[-1] and "energy_j" in reads[-1]
    assert cols.energy_j.tolist() == [r.energy_j for r in rows]
    assert np.isnan(cols.t_sent).all() and not cols.t_sent.flags.writeable
    full = RequestColumns.from_runs([run])
    assert full.energy_j.tolist() == cols.energy_j.tolist() and not np.isnan(full.t_sent).any()
    with pytest.raises(ValueError, match="no numeric request column 'nope'"):
        RequestColumns.from_runs([run], numbers=("nope",))
