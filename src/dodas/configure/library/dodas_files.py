#!/usr/bin/python
"""Ansible module: write several small files (and their directories) in one step.

Each Ansible module run is a Python process on the target; writing a kernel spec
and a start-up file with `file`, `copy` and `template` costs three of them, which
on a busy two-core machine is seconds. This writes them all in one, reports
`changed` only for files whose content or mode differs, and never logs contents
(they may hold configuration a user considers private).
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dodas_files
short_description: Write several files in one module run
options:
  files:
    type: list
    elements: dict
    required: true
    description: "[{path, content, mode (octal string, default 0600)}]"
  directories:
    type: list
    elements: str
    default: []
"""


def main():
    module = AnsibleModule(argument_spec=dict(
        files=dict(type="list", elements="dict", required=True, no_log=True),
        directories=dict(type="list", elements="str", default=[]),
    ))
    changed = []
    for d in module.params["directories"]:
        if not os.path.isdir(d):
            os.makedirs(d, mode=0o700, exist_ok=True)
            changed.append(d)
    for f in module.params["files"]:
        path, content = f["path"], str(f.get("content", ""))
        mode = int(str(f.get("mode", "0600")), 8)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            with open(path, encoding="utf-8") as fh:
                same = fh.read() == content and (os.stat(path).st_mode & 0o7777) == mode
        except OSError:
            same = False
        if same:
            continue
        tmp = path + ".dodas-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        changed.append(path)
    module.exit_json(changed=bool(changed), written=changed)


if __name__ == "__main__":
    main()
