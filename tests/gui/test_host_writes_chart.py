"""Host writes of any host (not only the lab workload) show beside sync throughput."""
from __future__ import annotations

import numpy as np

MIB = 1 << 20


def test_host_writes_through_the_api_show_in_the_group_chart(qtbot, console, engine):
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    charts = window.charts
    window.tabs.setCurrentWidget(charts)

    def host_rate():
        s = charts.series.get("erp")
        recent = [v for v in list(s.host)[-5:] if np.isfinite(v)] if s else []
        return recent[-1] if recent else 0.0
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for i in range(40):  # about 2 MiB/s for a few seconds, as an NBD client would write
        engine("host_write", "SiteA/db", (i % 16) * MIB, chunk)
        qtbot.wait(500)
        if host_rate() > 0.5:
            break
    assert host_rate() > 0.5  # MiB/s, read from the volume's byte counter, no workload running
    assert engine("workload") is None
