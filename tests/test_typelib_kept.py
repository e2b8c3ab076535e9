"""The merged type library is kept between processes (tosca/typelib.py): a kept
copy is used only when made from the very same files, and a damaged one is made
again, never believed."""

from __future__ import annotations

import shutil

import pytest

from dodas import paths
from dodas.tosca import typelib


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A copy of the shipped library that the test may change, and no process cache."""
    lib = tmp_path / "library"
    shutil.copytree(paths.TYPE_LIBRARY.parent, lib)
    monkeypatch.setattr(paths, "TYPE_LIBRARY", lib / paths.TYPE_LIBRARY.name)
    typelib._kept.cache_clear()
    yield lib
    typelib._kept.cache_clear()


def kept_files():
    return sorted((paths.cache_dir() / "typelib").glob("*.marshal"))


def test_the_kept_copy_is_the_merge_and_a_damaged_one_is_made_again(library):
    first = typelib.sections()
    published = typelib.published_only()
    assert "tosca.nodes.indigo.Compute" in first["node_types"] and published
    [kept] = kept_files()
    typelib._kept.cache_clear()
    assert typelib.sections() == first and typelib.published_only() == published  # read back from the copy
    for damage in (b"", b"\x00garbage", kept.read_bytes()[:100]):
        kept.write_bytes(damage)
        typelib._kept.cache_clear()
        assert typelib.sections() == first
        assert kept.read_bytes() != damage  # made again, whole


def test_a_changed_library_file_is_never_answered_from_an_older_copy(library):
    typelib.sections()
    own = library / paths.TYPE_LIBRARY.name
    own.write_text(own.read_text() + "\n  example.nodes.Added:\n    derived_from: tosca.nodes.Root\n")
    typelib._kept.cache_clear()
    assert "example.nodes.Added" in typelib.sections()["node_types"]
    assert len(kept_files()) == 2


def test_sections_are_copies_the_caller_may_change(library):
    a = typelib.sections()
    a["node_types"]["tosca.nodes.indigo.Compute"]["properties"] = "changed"
    assert typelib.sections()["node_types"]["tosca.nodes.indigo.Compute"].get("properties") != "changed"
