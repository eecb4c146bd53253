"""Dispatch on a real embedded Ray: loopback only, actors, results as runs finish."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

PROBE = textwrap.dedent("""
    import ipaddress, json
    from harness.config import RayConfig
    from harness.dispatch import connect

    def listeners():
        out = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = open(name).read().splitlines()[1:]
            except FileNotFoundError:
                continue
            for ln in lines:
                local, state = ln.split()[1], ln.split()[3]
                if state != "0A":  # LISTEN
                    continue
                host_hex, port_hex = local.split(":")
                raw = bytes.fromhex(host_hex)
                if len(raw) == 4:
                    addr = ipaddress.IPv4Address(raw[::-1])
                else:
                    addr = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                    addr = addr.ipv4_mapped or addr  # ::ffff:127.0.0.1 is loopback too
                out.add((str(addr), int(port_hex, 16), addr.is_loopback))
        return out

    before = listeners()
    ray, embedded, owned = connect(RayConfig())
    gcs = ray.get_runtime_context().gcs_address
    new = listeners() - before
    ray.shutdown()
    print(json.dumps({"gcs": gcs, "embedded": embedded, "new": sorted(new)}))
""")


def test_embedded_ray_listens_on_loopback_only() -> None:
    import json

    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["embedded"] and info["gcs"].startswith("127.0.0.1:")
    assert info["new"], "Ray opened no listening socket?"
    exposed = [x for x in info["new"] if not x[2]]
    assert not exposed, f"listening beyond loopback: {exposed}"
