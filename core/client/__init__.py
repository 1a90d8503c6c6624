"""Clients of the array daemons' REST API: what mirrorctl, the console and the lab supervisor use.

- :mod:`core.client.rest` — :class:`ArrayClient` (async, aiohttp) and :class:`BlockingArrayClient`
  for one array: HTTPS with a trusted or pinned certificate, basic auth, errors as MirrorError.
"""
from core.client.rest import API_ROOT, ArrayClient, BlockingArrayClient, normalise_fingerprint

__all__ = ["API_ROOT", "ArrayClient", "BlockingArrayClient", "normalise_fingerprint"]
