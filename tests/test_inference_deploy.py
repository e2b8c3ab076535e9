"""The inference service deployed from a template on this machine (local provider):
templates/tfaas.yaml and INDIGO's tosca.nodes.indigo.TFaaS shape. The token comes
from `dodas outputs --show-secrets` only; the service gets it in a 0600 file, never
on its command line or in its environment; reads open when the template says so;
destroy leaves no process."""

from __future__ import annotations

import json
import textwrap

import httpx
import numpy as np
import pytest
from support.inference import predict, upload_form
from support.livecluster import Dodas, environ_of, kill_leftovers, processes_of
from support.paths import ROOT

TEMPLATE = str(ROOT / "templates" / "tfaas.yaml")
NAME = "tfaas"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    d = Dodas(tmp_path_factory.mktemp("home"))
    d.run("up", TEMPLATE, "--name", NAME)
    yield d
    d.run("destroy", NAME, "--yes", check=False)
    kill_leftovers(d.home)


def service_pids(d: Dodas) -> list[int]:
    return [pid for pid, cmd in processes_of(d.home).items() if "-m dodas.inference" in cmd]


def test_up_serves_uploads_and_predictions_with_the_deployment_token(deployed, trained):
    masked = deployed.outputs(NAME)
    assert masked["token"] == "********" and masked["url"].startswith("http://127.77.")
    outs = deployed.outputs(NAME, secrets=True)
    url, auth = outs["url"], {"Authorization": f"Bearer {outs['token']}"}
    assert httpx.get(url + "/models", timeout=10).status_code == 401
    r = upload_form(url, "tiny", trained["dir"] / "model.onnx", headers=auth)
    assert r.status_code == 200, r.text
    got = predict(url, "tiny", headers=auth)
    assert np.allclose(got.json(), trained["expected"], atol=1e-5)
    assert upload_form(url, "other", trained["dir"] / "model.onnx", headers={}).status_code == 401


def test_the_token_is_in_a_private_file_only(deployed):
    token = deployed.outputs(NAME, secrets=True)["token"]
    pids = service_pids(deployed)
    assert len(pids) == 1
    cmd = processes_of(deployed.home)[pids[0]]
    assert token not in cmd and token not in "".join(environ_of(pids[0]).values())
    files = list((deployed.home / "data" / "local").glob("*/inference_host-0/inference/inference/token"))
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert token not in deployed.run("logs", NAME).stdout


def test_open_reads_from_an_input(deployed, trained):
    """`up` with open_reads=true restarts the service: reads need no token, uploads still do.
    Its plan reconfigures the service but does not claim the token will change (it is kept)."""
    r = deployed.run("plan", TEMPLATE, "--name", NAME, "--input", "open_reads=true", "--json", check=False)
    plan = json.loads(r.stdout)
    assert [c["action"] for c in plan["changes"]] == ["reconfigure"]
    assert "token" not in plan["output_changes"], plan["output_changes"]
    assert "known after apply" not in deployed.run("plan", TEMPLATE, "--name", NAME, "--input", "open_reads=true",
                                                   check=False).stdout
    deployed.run("up", TEMPLATE, "--name", NAME, "--input", "open_reads=true")
    url = deployed.outputs(NAME)["url"]
    assert httpx.get(url + "/models", timeout=10).status_code == 200
    assert np.allclose(predict(url, "tiny", headers={}).json(), trained["expected"], atol=1e-5)  # kept its models
    assert upload_form(url, "other", trained["dir"] / "model.onnx", headers={}).status_code == 401


def test_indigo_tfaas_shape(tmp_path):
    """INDIGO's node (tosca.nodes.indigo.TFaaS with master_ip, on a Compute) runs dodas's
    service on TFaaS's port 8083."""
    tpl = tmp_path / "indigo-tfaas.yaml"
    tpl.write_text(textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - indigo_custom_types: https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml
        topology_template:
          node_templates:
            tfaas:
              type: tosca.nodes.indigo.TFaaS
              properties:
                master_ip: { get_attribute: [ k8s_master, public_address, 0 ] }
              requirements:
                - host: k8s_master
            k8s_master:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint:
                  properties: { network_name: PUBLIC, ports: { tfaas: { protocol: tcp, source: 8083 } } }
                host:
                  properties: { num_cpus: 1, mem_size: 2 GiB }
          outputs:
            token: { value: { get_attribute: [ tfaas, token ] } }
            address: { value: { get_attribute: [ k8s_master, public_address, 0 ] } }
        """))
    d = Dodas(tmp_path / "home")
    try:
        d.run("up", str(tpl), "--name", "indigo")
        outs = d.outputs("indigo", secrets=True)
        r = httpx.get(f"http://{outs['address']}:8083/models", headers={"Authorization": f"Bearer {outs['token']}"},
                      timeout=10)
        assert r.status_code == 200 and r.json() == []
    finally:
        d.run("destroy", "indigo", "--yes", check=False)
        kill_leftovers(d.home)
    assert not processes_of(d.home)


def test_destroy_leaves_nothing(deployed):
    deployed.run("destroy", NAME, "--yes")
    assert not processes_of(deployed.home)
    assert not list((deployed.home / "data" / "local").glob("*/inference_host-0/inference"))
