"""Workload sources: each turns a name, a limit and a seed into a list of Items with references.

Workloads are a registry: every module of this package that defines `INFO` (a `WorkloadInfo`)
and `load` is one, and its default scorer lives in its `INFO`. A workload name may carry
options after a colon:

- `reasoning-gym` (offline, generated): the vetted default mix; `reasoning-gym:medium` or `:hard`
  a named tier; `reasoning-gym:chain_sum,letter_counting@2,word_sorting(max_words=6)` chosen
  tasks, curriculum levels or settings (see `reasoning_gym.parse_selection`);
- `gsm8k`, `math500`, `mmlu-pro`, `gpqa`, `simpleqa`, `natural-reasoning`, `wildchat`: public
  benchmarks, read from `--data-file PATH` (a copy in the dataset's own schema) or, with the
  `hub` extra and a network, from the Hugging Face hub by name;
- `file` (or `file:question=prompt,answer=target,...`): your own JSONL, JSON, CSV or Parquet file
  with a column mapping (see `user_file`).

Every loader reads and checks all of its records before returning, so a bad record stops a run
before anything is started or written.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from functools import cache
from pathlib import Path
from types import ModuleType

from perwatt.errors import PerwattError
from perwatt.records import Item
from perwatt.workloads.common import WorkloadInfo


@cache
def _registry() -> dict[str, tuple[WorkloadInfo, ModuleType]]:
    found: dict[str, tuple[WorkloadInfo, ModuleType]] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        info = getattr(loaded, "INFO", None)
        if isinstance(info, WorkloadInfo):
            found[info.name] = (info, loaded)
    # The offline default first, a user's own file last; the benchmarks between, by name.
    order = sorted(found, key=lambda n: (n != "reasoning-gym", n == "file", n))
    return {name: found[name] for name in order}


def workloads() -> dict[str, WorkloadInfo]:
    """Every workload, by name."""
    return {name: info for name, (info, _) in _registry().items()}


def split_name(name: str) -> tuple[WorkloadInfo, str]:
    """`reasoning-gym:hard` → (reasoning-gym's info, "hard"); an unknown name is an error."""
    base, _, options = name.partition(":")
    entry = _registry().get(base.strip())
    if entry is None:
        raise PerwattError(f"unknown workload '{base.strip()}'; known: {', '.join(_registry())}")
    return entry[0], options.strip()


def load_workload(
    name: str, *, limit: int, seed: int = 0, data_file: Path | None = None
) -> list[Item]:
    """The first `limit` items of the named workload, each naming its scorer; the same name,
    limit, seed and data give the same items in every process, and a smaller limit gives a
    prefix of a larger one."""
    info, options = split_name(name)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise PerwattError(f"the workload limit must be a positive whole number, not {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PerwattError(f"the workload seed must be a whole number >= 0, not {seed!r}")
    if options and not info.options:
        raise PerwattError(f"the {info.name} workload takes no options (got '{options}')")
    if info.generated and data_file is not None:
        raise PerwattError(
            f"the {info.name} workload is generated offline; it takes no --data-file"
        )
    module = _registry()[info.name][1]
    kwargs = {"options": options} if info.options else {}
    items: list[Item] = module.load(limit, seed, data_file, **kwargs)
    return [i if i.scorer else dataclasses.replace(i, scorer=info.scorer) for i in items]


__all__ = ["WorkloadInfo", "load_workload", "split_name", "workloads"]
