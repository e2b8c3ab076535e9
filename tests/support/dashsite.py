"""A dashboard to test in the browser: the development issuer, a `dodas server` with the
given providers and catalogue, one worker, and Chromium signed in as alice. The browser
test files differ only in what they put into it."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import serverproc
from support.browser import chrome, login
from support.issuer import running_issuer, users
from support.server import Server, clean_env

#: a template whose image needs an OpenStack cloud, which these servers have not
CLOUDY = textwrap.dedent("""\
    tosca_definitions_version: tosca_simple_yaml_1_0
    metadata: {display_name: "Cloud boxes", category: Testing}
    description: Boxes booted from an OpenStack image.
    topology_template:
      node_templates:
        vm:
          type: tosca.nodes.indigo.Compute
          capabilities:
            os: {properties: {image: "ost://cloud.example.org/centos-9"}}
            host: {properties: {num_cpus: 1, mem_size: 1 GB}}
    """)


@dataclass
class Site:
    driver: Any
    server: Server

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def dashboard_site(root: Path, *, providers: list[dict[str, Any]], catalogue: dict[str, str],
                   groups: list[str] | None = None, server: dict[str, Any] | None = None,
                   cli_client: bool = False) -> Iterator[Site]:
    """`catalogue` maps entry names to template texts; `server` adds to server.yaml's
    settings (quotas); the providers are the server's defaults, in their order."""
    port = serverproc.free_port()
    clients = [{"client_id": "dodas-dashboard", "redirect_uris": [f"http://127.0.0.1:{port}/web/callback"]}]
    if cli_client:
        clients.insert(0, {"client_id": "dodas-cli"})
    config = {"audience": "dodas", "users": users({"alice": groups or []}), "clients": clients}
    with running_issuer(root, config) as issuer:
        home = root / "home"
        (home / "config").mkdir(parents=True)
        (home / "config" / "providers.yaml").write_text(json.dumps({"providers": providers}))
        folder = root / "catalogue"
        folder.mkdir()
        for name, text in catalogue.items():
            (folder / f"{name}.yaml").write_text(text)
        conf = root / "server.json"
        conf.write_text(json.dumps({"issuers": [{"url": issuer.url, "audience": "dodas"}],
                                    "default_providers": [p["name"] for p in providers], "catalogue": str(folder),
                                    "workers": 1, "lease_seconds": 30, **(server or {})}))
        log = root / "server.log"
        proc, url = serverproc.start(clean_env(home), log, "--config", str(conf), cwd=home, port=port)
        running = Server(url, home, proc, log, issuer)
        driver = chrome(1280, 900)
        try:
            login(driver, url, "alice", "alice-pw")
            yield Site(driver, running)
        finally:
            driver.quit()
            running.stop()
