"""The inference node deployed with TLS on this machine (local provider): the
certificate, the key (a sensitive input) and the client CA given as PEM text
reach the service as files (the key 0600), never on its command line or in its
environment; the `url` attribute says https://; a TFaaS client with an allowed
certificate uploads, one without is refused."""

from __future__ import annotations

import json
import textwrap

import yaml
from support import tfaas_requests as tfaas
from support.livecluster import Dodas, environ_of, kill_leftovers, processes_of
from support.x509ca import TestCA

ALICE = "/DC=org/DC=example/OU=Users/CN=alice"


def test_tls_from_the_template(tmp_path, trained):
    ca = TestCA(tmp_path)
    cert, key = ca.server()
    alice = ca.client(ALICE, "alice.pem")
    tpl = tmp_path / "tfaas-tls.yaml"
    tpl.write_text(textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          inputs:
            cert: { type: string }
            key: { type: string, metadata: { sensitive: true } }
            ca: { type: string }
            writers: { type: list, entry_schema: { type: string } }
          node_templates:
            box:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint:
                  properties: { network_name: PUBLIC, ports: { tfaas: { protocol: tcp, source: 8443 } } }
            inference:
              type: tosca.nodes.dodas.Inference
              properties:
                port: 8443
                tls_certificate: { get_input: cert }
                tls_key: { get_input: key }
                client_ca: { get_input: ca }
                writer_dns: { get_input: writers }
              requirements:
                - host: box
          outputs:
            url: { value: { get_attribute: [ inference, url ] } }
        """))
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(yaml.safe_dump({"cert": cert.read_text(), "key": key.read_text(), "ca": ca.pem.read_text(),
                                      "writers": [ALICE]}))
    d = Dodas(tmp_path / "home")
    try:
        d.run("up", str(tpl), "--name", "tls", "--inputs", str(inputs))
        url = d.outputs("tls")["url"]
        assert url.startswith("https://")
        pids = [pid for pid, cmd in processes_of(d.home).items() if "-m dodas.inference" in cmd]
        assert len(pids) == 1
        secret = key.read_text().splitlines()[1]
        assert secret not in processes_of(d.home)[pids[0]] and secret not in "".join(environ_of(pids[0]).values())
        files = list((d.home / "data" / "local").glob("*/box-0/inference/inference/tls.key"))
        assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
        assert secret not in d.run("logs", "tls").stdout

        # the server's certificate names 127.0.0.1, not the deployment's address: the chain is checked
        up = tmp_path / "up"
        up.mkdir()
        (up / "model.onnx").write_bytes((trained["dir"] / "model.onnx").read_bytes())
        (up / "params.json").write_text(json.dumps({"name": "tiny"}))
        (up / "upload.json").write_text(json.dumps({"model": "model.onnx", "params": "params.json", "name": "tiny"}))
        assert tfaas.upload(url, up / "upload.json", alice, ca.pem, check_hostname=False).status == 200
        assert tfaas.upload(url, up / "upload.json", None, ca.pem, check_hostname=False).status == 401
        assert [m["name"] for m in tfaas.models(url, alice, ca.pem, check_hostname=False).json()] == ["tiny"]
    finally:
        d.run("destroy", "tls", "--yes", check=False)
        kill_leftovers(d.home)
    assert not processes_of(d.home)
