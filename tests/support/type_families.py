"""One realistic template per type family that INDIGO-DataCloud and DODAS templates
use, importing the type file the way real templates do (INDIGO's custom_types.yaml
on a branch, DODAS-TS's dodas_types.yml): the type-family tests validate each, and
the elasticity tests read the Slurm one."""

from __future__ import annotations

import textwrap


INDIGO_MASTER = "https://raw.githubusercontent.com/indigo-dc/tosca-types/master/custom_types.yaml"


INDIGO_COURSE = "https://raw.githubusercontent.com/indigo-dc/tosca-types/k8s-course/custom_types.yaml"


INDIGO_TAG = "https://raw.githubusercontent.com/indigo-dc/tosca-types/v4.0.0/custom_types.yaml"


DODAS_TS = "https://raw.githubusercontent.com/DODAS-TS/dodas-templates/master/tosca-types/dodas_types.yml"


#: a VM, as INDIGO templates declare them (%(name)s, %(count)s, %(cpus)s, %(mem)s)
VM = """\
    %(name)s:
      type: tosca.nodes.indigo.Compute
      capabilities:
        endpoint:
          properties:
            network_name: PUBLIC
            ports:
              ssh: {protocol: tcp, source: 22, remote_cidr: 0.0.0.0/0}
        scalable:
          properties: {count: %(count)s}
        host:
          properties: {num_cpus: %(cpus)s, mem_size: %(mem)s}
        os:
          properties: {image: {get_input: image}}
"""


def vm(name: str, count: object = 1, cpus: object = 2, mem: str = '"4 GB"') -> str:
    return VM % {"name": name, "count": count, "cpus": cpus, "mem": mem}


def template(imports: list[str], inputs: str, nodes: str, outputs: str = "", policies: str = "") -> str:
    head = "tosca_definitions_version: tosca_simple_yaml_1_0\n"
    head += "imports:\n" + "".join(f"  - {url}\n" for url in imports)
    body = "topology_template:\n  inputs:\n" + textwrap.indent(textwrap.dedent(inputs), "    ")
    body += "  node_templates:\n" + nodes
    if outputs:
        body += "  outputs:\n" + textwrap.indent(textwrap.dedent(outputs), "    ")
    if policies:
        body += "  policies:\n" + textwrap.indent(textwrap.dedent(policies), "    ")
    return head + body


KUBERNETES_JUPYTERHUB = template(
    [f"indigo_custom_types: {INDIGO_MASTER}"],
    """\
    image: {type: string, description: the VM image}
    number_of_workers: {type: integer, default: 2}
    admin_token: {type: string}
    iam_client_id: {type: string}
    iam_client_secret: {type: string}
    """,
    """\
    k8s_master:
      type: tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes
      properties:
        admin_username: kubeuser
        admin_token: {get_input: admin_token}
        install_metrics: true
        install_nfs_client: true
        install_ingress: true
        version: "1.19.4"
      requirements:
        - host: k8s_master_server
    k8s_wn:
      type: tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes
      properties:
        front_end_ip: {get_attribute: [k8s_master_server, private_address, 0]}
        version: "1.19.4"
      requirements:
        - host: k8s_wn_server
    jupyterhub:
      type: tosca.nodes.indigo.Helm.Chart
      properties:
        repository_name: jupyterhub
        repository_url: https://jupyterhub.github.io/helm-chart/
        name: jupyterhub
        version: 1.2.0
        values:
          proxy.service.type: NodePort
          hub.config.GenericOAuthenticator.client_id: {get_input: iam_client_id}
          hub.config.GenericOAuthenticator.client_secret: {get_input: iam_client_secret}
      requirements:
        - host: k8s_master
        - dependency: k8s_wn
    hub_on_vm:
      type: tosca.nodes.indigo.JupyterHub
      properties:
        iam_url: https://iam.example.org/
        iam_client_id: {get_input: iam_client_id}
        iam_client_secret: {get_input: iam_client_secret}
        admin_users: [admin]
      requirements:
        - host: k8s_master
""" + vm("k8s_master_server") + vm("k8s_wn_server", "{get_input: number_of_workers}"),
    """\
    k8s_endpoint: {value: {concat: ["https://", {get_attribute: [k8s_master_server, public_address, 0]}, ":6443"]}}
    """,
    """\
    - deploy_on_cloud:
        type: tosca.policies.indigo.SlaPlacement
        properties: {sla_id: 5e1daa9ff6c5a5b4e1a8c3f1}
        targets: [k8s_master_server, k8s_wn_server]
    """)


SLURM_ELASTIC = template(
    [f"indigo_custom_types: {INDIGO_TAG}"],
    """\
    image: {type: string}
    wn_num: {type: integer, default: 5, description: maximum number of worker nodes}
    fe_cpus: {type: integer, default: 1}
    iam_access_token: {type: string}
    iam_clues_client_id: {type: string}
    iam_clues_client_secret: {type: string}
    """,
    """\
    elastic_cluster_front_end:
      type: tosca.nodes.indigo.ElasticCluster
      properties:
        deployment_id: orchestrator_deployment_id
        orchestrator_url: https://orchestrator.example.org/orchestrator
        iam_access_token: {get_input: iam_access_token}
        iam_clues_client_id: {get_input: iam_clues_client_id}
        iam_clues_client_secret: {get_input: iam_clues_client_secret}
        hybrid: false
      requirements:
        - lrms: lrms_front_end
        - wn: wn_node
    lrms_front_end:
      type: tosca.nodes.indigo.LRMS.FrontEnd.Slurm
      properties:
        wn_ips: {get_attribute: [lrms_wn, private_address]}
        hybrid: false
      requirements:
        - host: lrms_server
    wn_node:
      type: tosca.nodes.indigo.LRMS.WorkerNode.Slurm
      capabilities:
        wn:
          properties:
            min_instances: 0
            max_instances: {get_input: wn_num}
            default_instances: 0
      properties:
        front_end_ip: {get_attribute: [lrms_server, private_address, 0]}
        public_front_end_ip: {get_attribute: [lrms_server, public_address, 0]}
      requirements:
        - host: lrms_wn
    block_storage:
      type: tosca.nodes.indigo.BlockStorage
      properties:
        size: 20 GiB
        type: ssd
""" + vm("lrms_server", cpus="{get_input: fe_cpus}") + vm("lrms_wn", count=0),
    """\
    cluster_ip: {value: {get_attribute: [lrms_server, public_address, 0]}}
    cluster_creds: {value: {get_attribute: [lrms_server, endpoint, credential, 0]}}
    """,
    """\
    - deploy_on_cloud:
        type: tosca.policies.indigo.Placement
        properties: {cloud_id: provider-RECAS-BARI}
        targets: [lrms_server, lrms_wn]
    """)


MESOS_MARATHON = template(
    [f"indigo_custom_types: {INDIGO_MASTER}"],
    """\
    image: {type: string}
    slave_num: {type: integer, default: 2}
    marathon_password: {type: string}
    mesos_password: {type: string}
    """,
    """\
    mesos_master:
      type: tosca.nodes.indigo.MesosMaster
      properties:
        mesos_masters_list: {get_attribute: [mesos_master_server, private_address]}
        mesos_credentials: {user: admin, token: {get_input: mesos_password}}
        marathon_credentials: {protocol: http, token_type: password, user: admin,
                               token: {get_input: marathon_password}}
        enable_nfs_share: true
      requirements:
        - host: mesos_master_server
    mesos_slave:
      type: tosca.nodes.indigo.MesosSlave
      properties:
        master_ips: {get_attribute: [mesos_master_server, private_address]}
        front_end_ip: {get_attribute: [mesos_master_server, private_address, 0]}
      requirements:
        - host: mesos_slave_server
    mesos_lb:
      type: tosca.nodes.indigo.MesosLoadBalancer
      properties:
        master_ips: {get_attribute: [mesos_master_server, private_address]}
        marathon_credentials: {user: admin, token: {get_input: marathon_password}}
      requirements:
        - host: mesos_lb_server
    docker_runtime:
      type: tosca.nodes.indigo.Container.Runtime.Docker
      capabilities:
        host:
          properties:
            num_cpus: 0.5
            mem_size: 512 MB
            publish_ports:
              - {protocol: tcp, source: 8080}
            volumes: ["/data:/data:rw"]
    web_app:
      type: tosca.nodes.indigo.Container.Application.Docker.Marathon
      properties:
        command: python3 -m http.server 8080
        environment_variables: {ROOT: /data}
        labels: {HAPROXY_GROUP: external}
        force_pull_image: true
      artifacts:
        image:
          file: python:3.12-slim
          type: tosca.artifacts.Deployment.Image.Container.Docker
      requirements:
        - host: docker_runtime
    nightly_job:
      type: tosca.nodes.indigo.Container.Application.Docker.Chronos
      properties:
        schedule: R/2026-01-01T02:00:00Z/P1D
        description: nightly cleanup
        retries: 3
        command: find /data -mtime +7 -delete
      artifacts:
        image:
          file: busybox:1.36
          type: tosca.artifacts.Deployment.Image.Container.Docker
      requirements:
        - host: docker_runtime
""" + vm("mesos_master_server") + vm("mesos_slave_server", "{get_input: slave_num}") + vm("mesos_lb_server"),
    """\
    marathon_endpoint: {value: {concat: ["http://", {get_attribute: [mesos_master_server, public_address, 0]},
                                         ":8080"]}}
    app_lb: {value: {get_attribute: [web_app, load_balancer_ips, 0]}}
    """)


GALAXY = template(
    [f"indigo_custom_types: {INDIGO_MASTER}"],
    """\
    image: {type: string}
    admin_email: {type: string, default: admin@example.org}
    admin_api_key: {type: string}
    version: {type: string, default: release_21.09}
    flavor: {type: string, default: galaxy-no-tools}
    wn_num: {type: integer, default: 2}
    """,
    """\
    galaxy_portal:
      type: tosca.nodes.indigo.GalaxyPortal
      properties:
        admin_email: {get_input: admin_email}
        admin_api_key: {get_input: admin_api_key}
        version: {get_input: version}
        instance_description: Galaxy on an elastic Slurm cluster
        instance_key_pub: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly user@example
      requirements:
        - lrms: lrms_front_end
    galaxy_tools:
      type: tosca.nodes.indigo.GalaxyShedTool
      properties:
        flavor: {get_input: flavor}
        admin_api_key: {get_input: admin_api_key}
      requirements:
        - host: galaxy_portal
    galaxy_refdata:
      type: tosca.nodes.indigo.GalaxyReferenceData
      properties:
        reference_data: true
        refdata_cvmfs_server_url: cvmfs-stratum1.example.org
        refdata_cvmfs_repository_name: data.galaxyproject.org
        refdata_provider_type: cvmfs
      requirements:
        - host: galaxy_portal
    lrms_front_end:
      type: tosca.nodes.indigo.LRMS.FrontEnd.SlurmGalaxy
      properties:
        wn_ips: {get_attribute: [lrms_wn, private_address]}
      requirements:
        - host: lrms_server
    wn_node:
      type: tosca.nodes.indigo.LRMS.WorkerNode.SlurmGalaxy
      properties:
        front_end_ip: {get_attribute: [lrms_server, private_address, 0]}
      requirements:
        - host: lrms_wn
    elastic_cluster:
      type: tosca.nodes.indigo.ElasticCluster
      properties:
        deployment_id: orchestrator_deployment_id
      requirements:
        - lrms: lrms_front_end
        - wn: wn_node
""" + vm("lrms_server") + vm("lrms_wn", "{get_input: wn_num}"),
    """\
    galaxy_url: {value: {concat: ["http://", {get_attribute: [lrms_server, public_address, 0]}, "/galaxy"]}}
    """)


HTCONDOR_K8S = template(
    [f"dodas_types: {DODAS_TS}"],
    """\
    image: {type: string}
    number_of_workers: {type: integer, default: 1}
    iam_token: {type: string}
    """,
    """\
    htcondor:
      type: tosca.nodes.DODAS.HelmInstall.HTCondor
      properties:
        name: htcondor
        chart: dodas/htcondor
        repos:
          - {name: dodas, url: "https://dodas-ts.github.io/helm_charts"}
        condor_host: {get_attribute: [k8s_master_server, public_address, 0]}
        ccb_address: {get_attribute: [k8s_master_server, public_address, 0]}
        schedd_host: {get_attribute: [k8s_master_server, public_address, 0]}
        iam_server: https://dodas-iam.example.org/
        iam_token: {get_input: iam_token}
        nfs_path: /pv
        values_file: |
          condorHost: "{{ condor_host }}"
          ccbHost: "{{ ccb_address }}"
          scheddHost: "{{ schedd_host }}"
          iam:
            server: "{{ iam_server }}"
          nfs:
            path: "{{ nfs_path }}"
      requirements:
        - host: k8s_master
        - dependency: k8s_wn
    k8s_master:
      type: tosca.nodes.DODAS.FrontEnd.Kubernetes
      properties:
        kube_version: 1.17.0
        kube_front_end_ip: {get_attribute: [k8s_master_server, private_address, 0]}
      requirements:
        - host: k8s_master_server
    k8s_wn:
      type: tosca.nodes.DODAS.WorkerNode.Kubernetes
      properties:
        front_end_ip: {get_attribute: [k8s_master_server, private_address, 0]}
        kube_version: 1.17.0
        nfs_master_ip: {get_attribute: [k8s_master_server, private_address, 0]}
      requirements:
        - host: k8s_wn_server
""" + vm("k8s_master_server") + vm("k8s_wn_server", "{get_input: number_of_workers}"),
    """\
    condor_host: {value: {get_attribute: [k8s_master_server, public_address, 0]}}
    """)


CACHING_ON_DEMAND = template(
    [f"dodas_types: {DODAS_TS}"],
    """\
    image: {type: string}
    origin_host: {type: string, default: xrootd-cms.infn.it}
    cache_ram_gb: {type: integer, default: 4}
    """,
    """\
    cache:
      type: tosca.nodes.DODAS.HelmInstall.CachingOnDemand
      properties:
        name: cachingondemand
        chart: dodas/cachingondemand
        repos:
          - {name: dodas, url: "https://dodas-ts.github.io/helm_charts"}
        origin_host: {get_input: origin_host}
        origin_xrd_port: 1094
        cache_redirector: {get_attribute: [k8s_master_server, public_address, 0]}
        cache_ram_gb: {get_input: cache_ram_gb}
        high_water_mark: 0.95
        low_water_mark: 0.80
        n_cache_servers: 2
        values_file: |
          origin:
            host: "{{ origin_host }}"
            port: {{ origin_xrd_port }}
          redirector:
            host: "{{ cache_redirector }}"
          cache:
            replicas: {{ n_cache_servers }}
            mem: {{ cache_ram_gb }}
      requirements:
        - host: k8s_master
    k8s_master:
      type: tosca.nodes.DODAS.FrontEnd.Kubernetes
      properties:
        kube_front_end_ip: {get_attribute: [k8s_master_server, private_address, 0]}
      requirements:
        - host: k8s_master_server
    k8s_wn:
      type: tosca.nodes.DODAS.WorkerNode.Kubernetes
      properties:
        front_end_ip: {get_attribute: [k8s_master_server, private_address, 0]}
      requirements:
        - host: k8s_wn_server
""" + vm("k8s_master_server") + vm("k8s_wn_server", 2),
    """\
    redirector: {value: {concat: [{get_attribute: [k8s_master_server, public_address, 0]}, ":31113"]}}
    """)


K3S = template(
    [f"dodas_types: {DODAS_TS}"],
    """\
    image: {type: string}
    number_of_agents: {type: integer, default: 2}
    """,
    """\
    k3s_server:
      type: tosca.nodes.DODAS.k3s
      properties:
        mode: server
        master_ip: {get_attribute: [k3s_master_vm, private_address, 0]}
        nfs_master_ip: {get_attribute: [k3s_master_vm, private_address, 0]}
      requirements:
        - host: k3s_master_vm
    k3s_agent:
      type: tosca.nodes.DODAS.k3s
      properties:
        mode: agent
        master_ip: {get_attribute: [k3s_master_vm, private_address, 0]}
      requirements:
        - host: k3s_agent_vm
        - dependency: k3s_server
    nfs:
      type: tosca.nodes.DODAS.NfsClient
      properties:
        nfs_master_ip: {get_attribute: [k3s_master_vm, private_address, 0]}
      requirements:
        - host: k3s_agent_vm
    manifest:
      type: tosca.nodes.DODAS.KubeCreate
      properties:
        name: whoami
        manifest_file: |
          apiVersion: v1
          kind: Pod
          metadata: {name: whoami}
          spec:
            containers: [{name: whoami, image: "traefik/whoami:v1.10"}]
        externalIP: {get_attribute: [k3s_master_vm, public_address, 0]}
      requirements:
        - dependency: k3s_agent
""" + vm("k3s_master_vm") + vm("k3s_agent_vm", "{get_input: number_of_agents}"),
    """\
    k3s_api: {value: {concat: ["https://", {get_attribute: [k3s_master_vm, public_address, 0]}, ":6443"]}}
    """)


JUPYTER_VM = template(
    [f"dodas_types: {DODAS_TS}", f"indigo_custom_types: {INDIGO_COURSE}"],
    """\
    image: {type: string}
    iam_client_id: {type: string}
    iam_client_secret: {type: string}
    gpus: {type: integer, default: 1}
    """,
    """\
    jupyter:
      type: tosca.nodes.DODAS.JupyterVM
      properties:
        iam_url: https://iam.cloud.example.org/
        iam_client_id: {get_input: iam_client_id}
        iam_client_secret: {get_input: iam_client_secret}
        iam_groups: ml-infn
        jupyter_use_gpu: true
        jupyter_images: dodasts/ml-infn-lab:v1.0.0
        monitoring: true
      requirements:
        - host: vm
    ml:
      type: tosca.nodes.DODAS.ml_infn
      properties:
        cvmfs_repos: sft.cern.ch
      requirements:
        - host: vm
    pip:
      type: tosca.nodes.DODAS.pip_manager
      properties:
        packages: [torch, scikit-learn]
      requirements:
        - host: vm
        - dependency: jupyter
    vm:
      type: tosca.nodes.indigo.Compute
      properties:
        os_users:
          - {name: mluser, ssh_key: "ssh-ed25519 AAAAExample mluser"}
        tags: {project: ml-infn}
      capabilities:
        endpoint:
          properties:
            network_name: PUBLIC
            ports:
              https: {protocol: tcp, source: 443}
        host:
          properties:
            num_cpus: 8
            mem_size: 32 GB
            num_gpus: {get_input: gpus}
            gpu_vendor: NVIDIA
        os:
          properties:
            image: {get_input: image}
            gpu_driver: true
            cuda_support: true
            cuda_min_version: "11.2"
""",
    """\
    jupyter_endpoint: {value: {concat: ["https://", {get_attribute: [vm, public_address, 0]}, ":8888"]}}
    """)


ONEDATA = template(
    [f"indigo_custom_types: {INDIGO_MASTER}"],
    """\
    image: {type: string}
    onezone: {type: string, default: onezone.example.org}
    onedata_token: {type: string}
    """,
    """\
    space:
      type: tosca.nodes.indigo.OneData
      properties:
        onezone_endpoint: {get_input: onezone}
        token: {get_input: onedata_token}
        space: experiment-data
    provider:
      type: tosca.nodes.indigo.OneProvider
      properties:
        onezone_endpoint: {get_input: onezone}
        onezone_token: {get_input: onedata_token}
        provider_name: example-provider
        storage_path: /data/onedata
      requirements:
        - host: provider_vm
    client:
      type: tosca.nodes.indigo.OneClient
      properties:
        oneprovider_host: {get_attribute: [provider_vm, public_address, 0]}
        onedata_token: {get_input: onedata_token}
        mount_point: /mnt/space
      requirements:
        - host: client_vm
        - storage: space
        - dependency: provider
    dynafed:
      type: tosca.nodes.indigo.Dynafed
      properties:
        storage_endpoints:
          - {url: "https://storage.example.org/dav/", name: site-a}
      requirements:
        - host: client_vm
""" + vm("provider_vm") + vm("client_vm"),
    """\
    mount: {value: {get_property: [client, mount_point]}}
    """)


FAMILIES = {
    "kubernetes-jupyterhub": KUBERNETES_JUPYTERHUB,
    "slurm-elastic": SLURM_ELASTIC,
    "mesos-marathon": MESOS_MARATHON,
    "galaxy": GALAXY,
    "htcondor-k8s": HTCONDOR_K8S,
    "caching-on-demand": CACHING_ON_DEMAND,
    "k3s": K3S,
    "jupyter-vm": JUPYTER_VM,
    "onedata": ONEDATA,
}
