"""How a long diagram is wrapped: which stages, blocks and ops go into which column (rows under LR).

Columns are filled in order, as a newspaper fills its columns, to about
COLUMN_RANKS ranks, and are no more than a page that is read at SCREEN_PX pixels
wide holds with SMALLEST_FONT-point text still READABLE_PX pixels high. Widths
are estimated from the labels' text (Graphviz measures the real ones; the
layout test checks the result).
"""

from __future__ import annotations

import math

from .diagram import SHORTCUT_KINDS, Diagram, Unit

# Length budget of one column, in ranks; a block is two ranks at block level. Under LR the
# rows are filled to a readable page's width instead.
COLUMN_RANKS = {"block": 20, "op": 30}
# Columns grow longer rather than make a page too wide to read, up to this many ranks
# (some 21,000 points: the tallest PNG Graphviz draws at full resolution is 32,767 pixels).
LONGEST_COLUMN = 300
# Taking one column fewer is worth a longest column this much longer.
FEWER_COLUMNS = 1.15
COLUMN_GAP = 20  # points between columns
ESTIMATE_MARGIN = 0.95  # widths are estimated from the text: keep clear of the page's edge
MIN_PIECE = 0.2  # of a column: the shortest piece of a split segment at the foot of a column
MOST_ROWS = 60  # under LR; more rows make Graphviz slow, and a network that needs them cannot be read anyway
MARKER_LENGTH = 150  # points: a row's markers, where it starts from and where it continues
# A page at most this many points wide keeps text of SMALLEST_FONT points at least
# READABLE_PX pixels high when the page is shown SCREEN_PX pixels wide.
SCREEN_PX, READABLE_PX, SMALLEST_FONT = 1920, 9.0, 9
PAGE_WIDTH = SCREEN_PX * SMALLEST_FONT / READABLE_PX


def pack(segments: list[list[tuple[str, int]]], limit: int) -> list[list[tuple[int, list[str]]]]:
    """Fill columns of at most `limit` ranks in order, as a newspaper does.

    `segments` holds each segment's (item, cost) pairs; a column is a list of
    (segment index, items) pieces. A segment that fits a column is never
    split: it starts the next column when the current one has no room for it.
    A longer one fills the current column (when at least MIN_PIECE of it is
    left) and continues in the next.
    """
    columns: list[list[tuple[int, list[str]]]] = [[]]
    used = 0
    for index, items in enumerate(segments):
        weight = sum(cost for _, cost in items)
        if columns[-1] and used + weight > limit and (weight <= limit or limit - used < limit * MIN_PIECE):
            columns.append([])
            used = 0
        piece: list[str] = []
        for item, cost in items:
            if used + cost > limit and (piece or columns[-1]):
                if piece:
                    columns[-1].append((index, piece))
                columns.append([])
                used, piece = 0, []
            piece.append(item)
            used += cost
        columns[-1].append((index, piece))
    return columns


def balanced_pack(segments: list[list[tuple[str, int]]], limit: int) -> list[list[tuple[int, list[str]]]]:
    """The packing with as few columns as `limit` allows, and columns as even as possible."""
    columns = pack(segments, limit)
    total = sum(cost for items in segments for _, cost in items)
    low, high = max(1, math.ceil(total / len(columns))), limit
    while low < high:  # the smallest limit that needs no more columns (more columns need a smaller limit)
        middle = (low + high) // 2
        if len(pack(segments, middle)) <= len(columns):
            high = middle
        else:
            low = middle + 1
    return pack(segments, low)


def fewest_columns(segments: list[list[tuple[str, int]]], columns: int) -> list[list[tuple[int, list[str]]]]:
    """The most even packing into at most `columns` columns (or as few as the segments allow)."""
    total = sum(cost for items in segments for _, cost in items)
    low, high = max(1, math.ceil(total / columns)), max(1, total)
    while low < high:
        middle = (low + high) // 2
        if len(pack(segments, middle)) <= columns:
            high = middle
        else:
            low = middle + 1
    return pack(segments, low)


def choose_columns(
    segments: list[list[tuple[str, int]]], widths: dict[str, float], budget: int
) -> list[list[tuple[int, list[str]]]]:
    """Columns of about `budget` ranks, no more than a readable page's width holds, and not too long to draw."""
    cost = {item: c for items in segments for item, c in items}

    def width(columns) -> float:
        return sum(max(widths[i] for _, items in c for i in items) for c in columns) + COLUMN_GAP * len(columns)

    def length(columns) -> int:
        return max(sum(cost[i] for _, items in c for i in items) for c in columns)

    columns = balanced_pack(segments, budget)
    while len(columns) > 1 and width(columns) > PAGE_WIDTH * ESTIMATE_MARGIN:
        columns = fewest_columns(segments, len(columns) - 1)
    while len(columns) > 1:
        fewer = fewest_columns(segments, len(columns) - 1)
        if length(fewer) > FEWER_COLUMNS * length(columns) or length(fewer) > LONGEST_COLUMN:
            break
        columns = fewer
    while length(columns) > LONGEST_COLUMN:  # too long to draw: wider than readable, and `render` says so
        columns = fewest_columns(segments, len(columns) + 1)
    return columns


def choose_rows(segments: list[list[tuple[str, int]]]) -> list[list[tuple[int, list[str]]]]:
    """Rows (LR) filled to a readable page's width; `segments` cost points along the flow."""
    rows = pack(segments, int(PAGE_WIDTH * ESTIMATE_MARGIN) - MARKER_LENGTH)
    return rows if len(rows) <= MOST_ROWS else fewest_columns(segments, MOST_ROWS)


def text_width(text: str, size: float, bold: bool = False) -> float:
    """An estimate of the width of `text` in Arial, in points (Graphviz measures the real one)."""
    narrow, wide = set("iIl.,:;'|!jtf()[] ·"), set("mwMW→")
    width = 0.0
    for char in text:
        width += 0.3 if char in narrow else 0.85 if char in wide else 0.68 if char.isupper() else 0.56
    return width * size * (1.12 if bold else 1.05)


def unit_width(unit: Unit) -> float:
    widths = [text_width(row, 11) for row in unit.rows if row]
    if unit.title:
        widths.append(text_width(f"{unit.title} {unit.note}", 11, bold=True))
    return max(widths, default=20) + 18


def unit_length(unit: Unit, rankdir: str) -> float:
    """An estimate of a unit's extent along the flow, in points."""
    if rankdir == "LR":
        return unit_width(unit)
    lines = len([row for row in unit.rows if row]) + bool(unit.title) + bool(unit.note and unit.kind != "body")
    return 13.5 * lines + 9


def _item_extents(diagram: Diagram) -> tuple[dict[str, int], dict[str, float], dict[str, int]]:
    """What each packing item needs: ranks (the longest path through its units), width and length in points."""
    by_item: dict[str, list[Unit]] = {}
    for unit in diagram.units:
        by_item.setdefault(unit.item, []).append(unit)
    item_of = {unit.id: unit.item for unit in diagram.units}
    depth = {unit.id: 1 for unit in diagram.units}
    for edge in diagram.edges:  # edges follow the walk, so one pass suffices
        if edge.head in depth and item_of[edge.tail] == item_of[edge.head]:
            depth[edge.head] = max(depth[edge.head], depth[edge.tail] + 1)
    costs, widths, lengths = {}, {}, {}
    # Under LR every rank is as wide as its widest unit in any row: count each unit that wide.
    rank = max((unit_width(u) for u in diagram.units if u.kind not in SHORTCUT_KINDS), default=0)
    for item, units in by_item.items():
        costs[item] = max(depth[u.id] for u in units)
        main = [unit_width(u) for u in units if u.kind not in SHORTCUT_KINDS]
        side = max((unit_width(u) for u in units if u.kind in SHORTCUT_KINDS), default=50)  # or a shape label
        # The main path's shape labels and the clusters' margins (at op level, two clusters deep).
        widths[item] = max(main, default=0) + side + (130 if diagram.level == "op" else 60)
        lengths[item] = int((rank + 80) * len(main))  # each with the edge after it and that edge's label
    return costs, widths, lengths


def arrange(diagram: Diagram, rankdir: str) -> tuple[list[list[tuple[int, list[str]]]], dict[str, list[Unit]]]:
    """The columns (rows under LR), each a list of (segment index, items) pieces, and each item's units."""
    costs, widths, lengths = _item_extents(diagram)
    items_of: list[list[str]] = [[] for _ in diagram.segments]
    units_of: dict[str, list[Unit]] = {}
    for unit in diagram.units:
        if unit.item not in units_of:
            items_of[unit.segment].append(unit.item)
        units_of.setdefault(unit.item, []).append(unit)
    if rankdir == "TB":
        segments = [[(item, costs[item]) for item in items] for items in items_of]
        return choose_columns(segments, widths, COLUMN_RANKS[diagram.level]), units_of
    return choose_rows([[(item, lengths[item]) for item in items] for items in items_of]), units_of
