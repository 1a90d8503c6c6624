"""``GET async-mirrors`` at scale: each pair's JSON text reused while its snapshot is unchanged.

A listing of 64 groups x 8 pairs is about 0.7 MB of JSON rebuilt from fresh snapshots at
every request; converting and encoding every pair each time was most of its 200-400 ms
(issue 14). Between two polls only the pairs whose figures moved differ (a host wrote,
a sync progressed, a status changed), so the text of a pair is kept with the snapshot
it was made from and reused only when the new snapshot is *equal* to it: the answer is
always the one the current snapshots give, never an older one.
"""
from __future__ import annotations

import json

from core.rest import models
from core.snapshots import GroupSnapshot, PairSnapshot


def dumps(data) -> str:
    """The JSON text every reply uses (what ``reply`` sends)."""
    return json.dumps(data, default=str)


class PairTexts:
    """The last JSON text of each pair of one array, by local volume; no more entries than pairs listed."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[PairSnapshot, str]] = {}

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, p: PairSnapshot) -> str:
        kept = self._texts.get(p.local_volume)
        if kept is not None and kept[0] == p:
            return kept[1]
        text = dumps(models.pair_to_ws(p, p.volume_capacity or None))
        self._texts[p.local_volume] = (p, text)
        return text

    def keep_only(self, volumes: set[str]) -> None:
        """Forget pairs that are gone (removed, or their group deleted) so the table stays bounded."""
        for gone in self._texts.keys() - volumes:
            del self._texts[gone]


def groups_text(groups: list[GroupSnapshot], wwns: dict[str, str], pairs: PairTexts) -> str:
    """The JSON array of ``groups`` as ``group_to_ws`` gives it, built from each pair's kept text."""
    out = []
    for g in groups:
        text = dumps(models.group_head_to_ws(g, wwns.get(g.remote_array, "")))
        body = ",".join(pairs.text(p) for p in g.pairs)
        out.append(f'{text[:-1]}, "pairs": [{body}]}}')  # head is a non-empty object: "{...}"
    pairs.keep_only({p.local_volume for g in groups for p in g.pairs})
    return "[" + ", ".join(out) + "]"
