"""``GET async-mirrors`` at scale: each group's and pair's JSON text reused while its snapshot is unchanged.

A listing of 64 groups x 8 pairs is about 0.7 MB of JSON rebuilt from fresh snapshots at
every request; converting and encoding every pair each time was most of its 200-400 ms
(issue 14). Between two polls only the pairs whose figures moved differ (a host wrote,
a sync progressed, a status changed), so the text of a pair is kept with the snapshot
it was made from and reused only when the new snapshot is *equal* to it: the answer is
always the one the current snapshots give, never an older one. A group's whole text is
kept the same way, so an unchanged group costs one comparison.
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


class GroupTexts:
    """The last JSON text of each group of one array, by name, with the snapshot and remote WWN it was made from.

    Between two polls most groups are unchanged (the engine hands back the same snapshot
    while all a group is made from is equal): their text is reused whole, and only the
    groups whose snapshot differs are spelled again, from their pairs' kept texts.
    """

    def __init__(self) -> None:
        self._texts: dict[str, tuple[GroupSnapshot, str, str]] = {}
        self.pairs = PairTexts()

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, g: GroupSnapshot, remote_wwn: str) -> str:
        kept = self._texts.get(g.name)
        if kept is not None and (kept[0] is g or kept[0] == g) and kept[1] == remote_wwn:
            return kept[2]
        head = dumps(models.group_head_to_ws(g, remote_wwn))
        body = ",".join(self.pairs.text(p) for p in g.pairs)
        text = f'{head[:-1]}, "pairs": [{body}]}}'  # head is a non-empty object: "{...}"
        self._texts[g.name] = (g, remote_wwn, text)
        return text

    def keep_only(self, groups: list[GroupSnapshot]) -> None:
        """Forget groups and pairs that are gone (deleted, removed) so the tables stay bounded.

        Names are compared only when a table holds more entries than were listed: with every
        text just made or reused, that is the only way one can be of something gone.
        """
        if len(self._texts) > len(groups):
            for gone in self._texts.keys() - {g.name for g in groups}:
                del self._texts[gone]
        if len(self.pairs) > sum(len(g.pairs) for g in groups):
            self.pairs.keep_only({p.local_volume for g in groups for p in g.pairs})


def groups_text(groups: list[GroupSnapshot], wwns: dict[str, str], texts: GroupTexts) -> str:
    """The JSON array of ``groups`` as ``group_to_ws`` gives it, built from each group's or pair's kept text."""
    out = [texts.text(g, wwns.get(g.remote_array, "")) for g in groups]
    texts.keep_only(groups)
    return "[" + ", ".join(out) + "]"
