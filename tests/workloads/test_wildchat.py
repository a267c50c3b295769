"""WildChat from a Parquet fixture in the real WildChat-1M schema; judged pairwise."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perwatt.errors import PerwattError
from perwatt.scoring import scorer_for
from perwatt.workloads import load_workload

FIXTURE = Path(__file__).parents[1] / "fixtures" / "wildchat" / "train.parquet"


def test_first_exchanges_of_usable_conversations() -> None:
    items = load_workload("wildchat", limit=10, data_file=FIXTURE)
    # French, toxic and redacted conversations are left out.
    assert sorted(i.item_id for i in items) == [
        "wildchat/b7d2c4a9", "wildchat/c9a1e0f2", "wildchat/f2a7c6d5",
    ]  # fmt: skip
    python = next(i for i in items if i.item_id == "wildchat/b7d2c4a9")
    assert python.question == "How do I reverse a list in Python?"  # the first user turn only
    assert python.reference.startswith("Use `my_list.reverse()`")  # the baseline reply
    assert python.metadata == {
        "conversation_id": "b7d2c4a9", "baseline_model": "gpt-3.5-turbo-0301",
        "language": "English", "turns": 2,
    }  # fmt: skip
    assert scorer_for(python).name == "judge-pairwise"
    assert python.domain == "chat"


def test_a_conversation_that_is_not_a_list_of_turns_names_the_row(tmp_path: Path) -> None:
    rows = pq.read_table(FIXTURE).to_pylist()
    rows[2]["conversation"] = []
    table = pa.Table.from_pylist(rows)
    bad = tmp_path / "train.parquet"
    pq.write_table(table, bad)
    assert len(load_workload("wildchat", limit=10, data_file=bad)) == 3  # empty: not used
    broken = [{"conversation_hash": "x1", "conversation": "hello", "language": "English"}]
    pq.write_table(pa.Table.from_pylist(broken), bad)
    with pytest.raises(PerwattError, match=rf"^{bad} row 1: column 'conversation' should be"):
        load_workload("wildchat", limit=1, data_file=bad)
