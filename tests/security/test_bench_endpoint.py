"""The page benchmark's bare endpoint lives only in bench/wsgi_bench.py, never in the portal."""
from __future__ import annotations


def test_the_bare_benchmark_endpoint_is_not_in_the_portal(app, client):
    assert "/__bare" not in {r.rule for r in app.url_map.iter_rules()}
    assert client.get("/__bare").status_code == 404
