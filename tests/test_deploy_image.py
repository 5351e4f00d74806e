"""The image's inputs, checked without a Docker engine or the network: the lock file matches
pyproject.toml (the dependency list it was made from, by digest; every direct requirement
pinned inside its range; a hash on every pin), ComfyUI and every custom node pinned to a
commit, and the Dockerfile's promises (a base chosen by ARG, root only to hand over the volume, the health check,
only port 8000)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["gpu"])


def dependency_digest() -> str:
    """What the lock was made from: the normalised requirement list (comments and order aside)."""
    normal = sorted(str(Requirement(line)) for line in _requirements())
    return hashlib.sha256(json.dumps(normal).encode()).hexdigest()


def _lock() -> tuple[str, dict[str, str], dict[str, int]]:
    text = (DOCKER / "requirements.lock").read_text()
    pins: dict[str, str] = {}
    hashes: dict[str, int] = {}
    current = ""
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            current = str(canonicalize_name(match.group(1)))
            pins[current] = match.group(2)
            hashes[current] = 0
        elif line.strip().startswith("--hash=sha256:") and current:
            hashes[current] += 1
    return text, pins, hashes


def test_the_lock_file_is_fresh_against_pyproject() -> None:
    text, pins, hashes = _lock()
    assert f"# pyproject-dependencies-sha256: {dependency_digest()}" in text, \
        "pyproject.toml's dependencies changed: run docker/lock.sh"
    for line in _requirements():
        requirement = Requirement(line)
        name = str(canonicalize_name(requirement.name))
        assert name in pins, f"{name} is not in docker/requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    assert all(count >= 1 for count in hashes.values()), [name for name, count in hashes.items() if not count]


def test_comfyui_and_every_custom_node_are_pinned_to_a_commit() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    ref = re.search(r"^ARG COMFYUI_COMMIT=([0-9a-f]{40})$", dockerfile, re.MULTILINE)
    assert ref, "ComfyUI must be pinned to a commit (ARG COMFYUI_COMMIT=<40 hex>)"
    nodes = [line.split() for line in (DOCKER / "nodes.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert nodes
    for fields in nodes:
        assert len(fields) == 2, fields
        assert fields[0].startswith("https://"), fields
        assert re.fullmatch(r"[0-9a-f]{40}", fields[1]), fields


def test_the_dockerfile_keeps_its_promises() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:\S+$", dockerfile, re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert re.findall(r"^EXPOSE (.+)$", dockerfile, re.MULTILINE) == ["8000"]
    assert "setpriv --reuid=1000" in (DOCKER / "entrypoint.sh").read_text()  # Studio never runs as root
    assert '"/entrypoint.sh"' in dockerfile
    assert re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD [^\n]*/api/health", dockerfile, re.MULTILINE)
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile
    for label in ("org.opencontainers.image.version", "studio.runtime.version", "studio.comfyui.commit"):
        assert f"{label}=" in dockerfile
