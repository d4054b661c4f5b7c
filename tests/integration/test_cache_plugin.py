"""The cache plugin on its own, against a real Redis: it starts from the `cache` section, reports
Redis and circuit state at /admin/cache, purges with an answer that says whether the bump is
durable, masks the Redis password, and rejects a bad rule with the key path. (Serving queries
from it through the pooler is test_cache_pg.py.)"""
import json
import subprocess

from conftest import tetherd_binary
from harness import wait_until
from httpc import free_port, request


def config(redis, admin, extra=""):
    return f"""
admin: {{listen: ["tcp://127.0.0.1:{admin}"]}}
cache:
  redis: {redis.url}
  password: ${{REDIS_PW:-}}
  rules:
    - database: appdb
      match: '^select .* from products where id = \\$1'
      ttl: 30s
{extra}
"""


def test_cache_plugin_admin_purge_and_metrics(tetherd, redis):
    admin = free_port()
    t = tetherd(config(redis, admin))
    url = f"tcp://127.0.0.1:{admin}"

    def state():
        return json.loads(request(url, "GET", "/admin/cache")[2])
    assert wait_until(lambda: state()["redis"]["state"] == "ready", 10, "redis connected")
    doc = state()
    assert doc["readable"] is True and doc["redis"]["circuit"] == "closed"
    assert doc["rules"][0]["database"] == "appdb" and doc["rules"][0]["ttl_ms"] == 30000
    status, _, body = request(url, "POST", "/admin/cache/purge?database=appdb&table=public.products", body=b"")
    assert status == 200 and json.loads(body)["outcome"] == "durable"
    status, _, body = request(url, "POST", "/admin/cache/purge?all", body=b"")
    assert status == 200 and json.loads(body)["outcome"] == "durable"
    metrics = request(url, "GET", "/metrics")[2].decode()
    assert "tether_cache_hits_total" in metrics and "tether_cache_invalidations_total" in metrics


def test_cache_redis_down_then_back(tetherd, redis):
    admin = free_port()
    tetherd(config(redis, admin, extra="  failure_threshold: 1\n  open_for: 1s"))
    url = f"tcp://127.0.0.1:{admin}"

    def state():
        return json.loads(request(url, "GET", "/admin/cache")[2])
    assert wait_until(lambda: state()["readable"], 10, "redis connected")
    redis.stop()
    try:
        # an invalidation while Redis is down is queued, and reads bypass until it lands
        status, _, body = request(url, "POST", "/admin/cache/purge?database=appdb&table=public.t", body=b"")
        assert status == 200 and json.loads(body)["outcome"] == "queued"
        assert state()["readable"] is False
    finally:
        redis.start()
    assert wait_until(lambda: state()["readable"], 20, "redis back and the queue applied")
    assert state()["invalidations"]["pending_tables"] == 0
    assert state()["invalidations"]["pending_applied"] >= 1


def test_bad_rule_and_secret_masking(redis, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(config(redis, free_port()).replace("'^select .* from products where id = \\$1'", "'(unclosed'"))
    r = subprocess.run([tetherd_binary(), "--check-config", "-c", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "cache.rules[0].match" in r.stderr + r.stdout
    good = tmp_path / "good.yaml"
    good.write_text(config(redis, free_port()))
    r = subprocess.run([tetherd_binary(), "--check-config", "-c", str(good)], capture_output=True, text=True,
                       env={"REDIS_PW": "redis-secret-pw", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "redis-secret-pw" not in r.stdout + r.stderr
