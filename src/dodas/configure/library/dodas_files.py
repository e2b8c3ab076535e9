#!/usr/bin/python
"""Ansible module: write several small files (and their directories) in one step,
or remove directories that must lie inside a given one.

Each Ansible module run is a Python process on the target; writing a kernel spec
and a start-up file with `file`, `copy` and `template` costs three of them, which
on a busy two-core machine is seconds. This writes them all in one, reports
`changed` only for files whose content or mode differs, and never logs contents
(they may hold configuration a user considers private).

Removal (`absent`, with `within`) is how dodas deletes on a host: each path is
checked to lie inside `within` once `..` and symbolic links of its parents are
resolved, and whatever cannot be removed fails the task instead of being skipped.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dodas_files
short_description: Write several files in one module run
options:
  files:
    type: list
    elements: dict
    required: true
    description: >
      [{path, content, mode (octal string, default 0600), owner, group}]; content_base64
      instead of content for a binary file (a chart archive the server fetched); owner
      and group (names) only when given
  directories:
    type: list
    elements: raw
    default: []
    description: >
      paths (made 0700 when missing, left as they are otherwise), or
      {path, mode, owner, group}: made with missing parents 0755 and kept at that
      mode, owner and group
  absent:
    type: list
    elements: str
    default: []
    description: directories or files to remove; each must lie inside `within`
  within:
    type: str
  private_directories:
    type: list
    elements: str
    default: []
    description: >
      directories in a shared place (/tmp) that must be this user's own: made 0700,
      and an existing one that is a link or another user's is refused
"""


def _remove(module, path, within):
    base = os.path.realpath(within)
    target = os.path.abspath(path)
    parent = os.path.realpath(os.path.dirname(target))
    if os.path.basename(target) in ("", ".", "..") or not (parent == base or parent.startswith(base + os.sep)):
        module.fail_json(msg="refusing to remove %s: it is not inside %s" % (path, within))
    target = os.path.join(parent, os.path.basename(target))
    if not os.path.lexists(target):
        return False
    failed = []

    def onerror(_func, where, info):
        if not isinstance(info[1], FileNotFoundError):
            failed.append("%s: %s" % (where, getattr(info[1], "strerror", None) or info[1]))
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target, onerror=onerror)
    else:
        os.unlink(target)
    if failed or os.path.lexists(target):
        module.fail_json(msg="cannot remove %s (%s)" % (target, failed[0] if failed else "still there"))
    return True


def _ids(module, entry):
    """The uid and gid an entry asks for (-1: leave as it is)."""
    uid = gid = -1
    try:
        if entry.get("owner"):
            uid = pwd.getpwnam(str(entry["owner"])).pw_uid
        if entry.get("group"):
            gid = grp.getgrnam(str(entry["group"])).gr_gid
    except KeyError as exc:
        module.fail_json(msg="%s: no such user or group %s" % (entry.get("path"), exc))
    return uid, gid


def _keep(path, mode, uid, gid):
    """Set a path's mode, owner and group; whether any of them changed."""
    st = os.lstat(path)
    changed = False
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        os.chown(path, uid, gid)
        changed = True
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def _directory(module, entry):
    """Make one directory of `directories`; whether it changed."""
    if not isinstance(entry, dict):
        if os.path.isdir(entry):
            return False
        os.makedirs(entry, mode=0o700, exist_ok=True)
        return True
    path = str(entry["path"])
    made = False
    if not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        os.mkdir(path)
        made = True
    uid, gid = _ids(module, entry)
    return _keep(path, int(str(entry.get("mode", "0700")), 8), uid, gid) or made


def main():
    module = AnsibleModule(argument_spec=dict(
        files=dict(type="list", elements="dict", default=[], no_log=True),
        directories=dict(type="list", elements="raw", default=[]),
        absent=dict(type="list", elements="str", default=[]),
        within=dict(type="str"),
        private_directories=dict(type="list", elements="str", default=[]),
    ))
    if module.params["absent"] and not module.params["within"]:
        module.fail_json(msg="absent needs within: the directory the removed paths must lie in")
    changed = []
    for path in module.params["absent"]:
        if _remove(module, path, module.params["within"]):
            changed.append(path)
    for d in module.params["private_directories"]:
        try:
            os.mkdir(d, 0o700)
            changed.append(d)
        except FileExistsError:
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                module.fail_json(msg="%s exists and is not a directory of this user: remove it" % d)
        os.chmod(d, 0o700)
    for d in module.params["directories"]:
        if _directory(module, d):
            changed.append(d["path"] if isinstance(d, dict) else d)
    for f in module.params["files"]:
        path = f["path"]
        if f.get("content_base64") is not None:
            content = base64.b64decode(str(f["content_base64"]))
        else:
            content = str(f.get("content", "")).encode("utf-8")
        mode = int(str(f.get("mode", "0600")), 8)
        uid, gid = _ids(module, f)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            with open(path, "rb") as fh:
                same = fh.read() == content
        except OSError:
            same = False
        if same:
            if _keep(path, mode, uid, gid):
                changed.append(path)
            continue
        tmp = path + ".dodas-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        _keep(tmp, mode, uid, gid)  # owner and mode before the name appears
        os.replace(tmp, path)
        changed.append(path)
    module.exit_json(changed=bool(changed), written=changed)


if __name__ == "__main__":
    main()
