"""providers.yaml gets what templates get: YAML errors with the parser's detail and
position, unknown keys refused with "did you mean", every problem at once with its
line, never a traceback."""

from __future__ import annotations

import textwrap


def write(home, text: str) -> str:
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(textwrap.dedent(text))
    return str(f)


def test_every_problem_at_once_each_at_its_line(cli, dodas_home):
    f = write(dodas_home, """\
        providers:
          - name: aws
            type: ec2
            regoin: eu-west-1
          - name: lab
            type: ssh
            bastion: {address: gw.example.org}
            hosts:
              - {address: 10.0.0.5, usr: ubuntu}
          - name: x
            type: foo
          - name: aws
            type: ec2
            rank: first
        """)
    r = cli("providers")
    assert r.code == 1 and "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert f'{f}:4:5: provider "aws" (ec2): unknown key "regoin"; did you mean "region"?' in lines
    assert f'{f}:9:29: provider "lab" host #1: unknown key "usr"; did you mean "user"?' in lines
    assert f"{f}:11:11: provider \"x\" has type 'foo'; known types: local, openstack, ec2, ssh, kubernetes, " \
           "simulated" in lines
    assert any(ln.startswith(f'{f}:12:') and 'provider "aws" is configured twice' in ln for ln in lines)
    assert any(ln.startswith(f"{f}:14:") and "rank must be a whole number" in ln for ln in lines)


def test_yaml_errors_carry_the_parsers_detail_and_position(cli, dodas_home):
    f = write(dodas_home, """\
        providers:
          - name: a
            type: [ssh
        """)
    r = cli("providers")
    assert r.code == 1
    assert r.err.startswith(f"{f}:4:1: invalid YAML: did not find expected ',' or ']'"), r.err
    f = write(dodas_home, """\
        providers:
          - name: a
            type: ssh
            type: ec2
        """)
    r = cli("providers")
    assert r.code == 1 and r.err.startswith(f'{f}:4:5: duplicate key "type"'), r.err


def test_a_valid_file_still_lists(cli, dodas_home):
    write(dodas_home, """\
        providers:
          - name: lab
            type: ssh
            rank: 2
            login_timeout: 60
            bastion: false
            hosts:
              - {address: 10.0.0.5, private_address: 192.168.0.5, user: ubuntu, port: 22}
        """)
    r = cli("providers")
    assert r.code == 0, r.err
    assert "lab" in r.out and "local" in r.out
