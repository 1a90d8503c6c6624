"""The array daemon's REST API: SANtricity Web Services v2 shapes over HTTPS, plus project extensions.

``app`` builds and serves the application, ``tls`` makes its certificate, ``models``
translates between Web Services JSON and the engine's snapshots (what REST clients
use to rebuild them), ``errors`` maps refusals to HTTP, ``events`` streams engine
events, ``metrics`` exposes Prometheus gauges; each ``routes_*`` module is one
resource family.
"""
