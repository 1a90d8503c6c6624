"""Each volume says how many bytes hosts wrote to it (what the console's host write chart reads), over REST too."""
from __future__ import annotations


def test_a_volume_counts_what_hosts_wrote(client):
    before = client.volume("SiteA/db").host_bytes_written
    client.host_write("SiteA/db", 0, b"h" * 65536)
    client.host_write("SiteA/db", 1 << 20, b"h" * 4096)
    assert client.volume("SiteA/db").host_bytes_written == before + 65536 + 4096
    assert client.volume("SiteA/files").host_bytes_written == 0
