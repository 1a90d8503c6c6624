"""An array started again comes back on its old ports when it can, on free ones when not (as `lab up`)."""
from __future__ import annotations

import socket


def test_an_array_whose_old_port_was_taken_comes_back_elsewhere_and_is_reached_there(client, daemon_lab):
    old_rest = daemon_lab.ports["SiteB"]["rest"]
    client.array_stop("SiteB")
    taken = socket.socket()  # say, another process's outgoing connection got that port meanwhile
    taken.bind(("127.0.0.1", old_rest))
    taken.listen()
    try:
        client.array_start("SiteB")
        assert daemon_lab.ports["SiteB"]["rest"] != old_rest
        client.create_volume("SiteB/after_restart", "4MiB")  # the fleet follows the new address
        assert client.volume("SiteB/after_restart").capacity == 4 << 20
    finally:
        taken.close()
