"""The archive every domain keeps: the best creative artefacts found so far.

One artefact per key (a level's layout, a word, a canvas's pixels), at most
``capacity`` of them; when it is full the lowest-scored leave first (ties:
the older stays). A key once archived is never taken again, even after its
artefact was evicted: an artefact dropped for a better one is not news the
next time G makes it. Each artefact has a record (a dict of plain data with
at least ``score``) that goes into the run's archive file.

What an artefact is stays the domain's: the archive holds them as given and
the domain encodes them for its checkpoint (:meth:`state_dict` takes the
encoding of ``items``; :meth:`load_state_dict` the decoded ones).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np


class ScoredArchive:
    """At most ``capacity`` artefacts, one per key, the best-scored kept (capacity 0: a counter of
    new keys that keeps no artefact)."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"an archive's capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.items: list[Any] = []
        self.records: list[dict] = []
        self._keys: set[Hashable] = set()

    def add(self, items: Sequence[Any], keys: Sequence[Hashable], records: Sequence[dict]) -> int:
        """Offer a batch of creative artefacts (in order); returns how many were new and kept a place
        before the batch's eviction (the count of artefacts added)."""
        added = 0
        for item, key, record in zip(items, keys, records):
            if key in self._keys:
                continue
            self._keys.add(key)
            self.items.append(item)
            self.records.append(dict(record))
            added += 1
        if len(self.items) > self.capacity:
            keep = np.sort(np.argsort([-float(r["score"]) for r in self.records], kind="stable")[: self.capacity])
            self.items = [self.items[i] for i in keep]
            self.records = [self.records[i] for i in keep]
        return added

    def __len__(self) -> int:
        return len(self.items)

    def state_dict(self, encoded_items: Any) -> dict:
        """Plain data for a checkpoint: the domain's encoding of :attr:`items`, the records and every key seen."""
        return {"items": encoded_items, "records": self.records, "keys": sorted(self._keys)}

    def load_state_dict(self, state: dict, items: list) -> None:
        """Restore from :meth:`state_dict`'s output, ``items`` decoded by the domain."""
        if len(items) != len(state["records"]):
            raise ValueError(f"the archive's state has {len(items)} artefacts and {len(state['records'])} records")
        self.items, self.records = list(items), [dict(r) for r in state["records"]]
        self._keys = {tuple(k) if isinstance(k, list) else k for k in state["keys"]}
