"""A Rich table that fits the width it is printed at, without breaking a number or a word.

Rich, given a table wider than the terminal, shrinks its wrappable (text) columns towards one
character and then crops every column evenly, numbers included: `[7.68–59` over `.4]`, headers
cut mid-word, a long model name squeezing the rest into slivers. `FitTable` decides the widths
itself instead. Numeric columns (`no_wrap`) keep their full width; a text column shrinks no
further than its longest word, or its `max_width` where a long name may fold; and when even
that is too wide, the columns after the first `keys` (the row labels) are spread over several
tables, each repeating the labels — as a person would split a wide table on a page.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Column, Table

CONTINUED = " (continued)"


class FitTable(Table):
    """A `Table` that fits `options.max_width` (see the module docstring); `keys` is how many
    leading columns label the rows and are repeated when the table is split."""

    def __init__(self, *args: Any, keys: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = keys
        self._settled = False  # a part already laid out: render it as Rich would

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._settled or not self.columns:
            yield from super().__rich_console__(console, options)
            return
        width = options.max_width
        floors, naturals = self._ranges(console, options)
        everything = list(range(len(self.columns)))
        if sum(naturals) + self._borders(len(everything)) <= width:
            yield from super().__rich_console__(console, options)  # fits as it is
            return
        keys = everything[: min(self.keys, len(everything) - 1)]
        for k, group in enumerate(self._groups(floors, keys, width)):
            yield self._part(keys + group, floors, naturals, width, first=k == 0)

    def _ranges(self, console: Console, options: ConsoleOptions) -> tuple[list[int], list[int]]:
        """Each column's narrowest acceptable and natural width, padding included: a no_wrap
        column needs its widest line, a text column its longest word (capped by max_width)."""
        floors, naturals = [], []
        for column in self.columns:
            # Table's own measure: header and cells, padding, min_width and max_width applied.
            measured = self._measure_column(console, options, column)
            naturals.append(measured.maximum)
            floors.append(measured.maximum if column.no_wrap else measured.minimum)
        return floors, naturals

    def _borders(self, n_columns: int) -> int:
        if not self.box:
            return 0
        return n_columns - 1 + (2 if self.show_edge else 0)

    def _groups(self, floors: list[int], keys: list[int], width: int) -> list[list[int]]:
        """The other columns in order, in as few parts as fit beside the key columns, as
        evenly filled as that allows (not one full part and a stub)."""
        rest = [i for i in range(len(floors)) if i not in keys]
        fixed = sum(floors[i] for i in keys)

        def greedy(cap: int) -> list[list[int]]:
            groups: list[list[int]] = [[]]
            for i in rest:
                current = groups[-1]
                used = fixed + sum(floors[j] for j in current) + floors[i]
                if current and used + self._borders(len(keys) + len(current) + 1) > cap:
                    groups.append([])
                groups[-1].append(i)
            return groups

        fewest = len(greedy(width))
        for cap in range(fixed + sum(floors[i] for i in rest) // fewest, width + 1):
            groups = greedy(cap)
            if len(groups) <= fewest:
                return groups
        return greedy(width)

    def _part(
        self, columns: list[int], floors: list[int], naturals: list[int], width: int,
        *, first: bool,
    ) -> Table:  # fmt: skip
        """These columns as a table of their own, each column's width fixed: its floor, plus
        what room is left shared out to the text columns that want more."""
        widths = [floors[i] for i in columns]
        room = width - self._borders(len(columns)) - sum(widths)
        while room > 0:
            wants = [naturals[i] - w for i, w in zip(columns, widths, strict=True)]
            k = max(range(len(wants)), key=wants.__getitem__)
            if wants[k] <= 0:
                break
            widths[k] += 1
            room -= 1
        part = copy.copy(self)
        part._settled = True
        if not first and isinstance(self.title, str):
            part.title = self.title + CONTINUED
        part.columns = [dataclasses.replace(self.columns[i], _index=j)
                        for j, i in enumerate(columns)]  # fmt: skip
        part.columns = [_fixed(c, w - part._get_padding_width(c._index))
                        for c, w in zip(part.columns, widths, strict=True)]  # fmt: skip
        return part


def _fixed(column: Column, width: int) -> Column:
    return dataclasses.replace(column, width=max(width, 1))
