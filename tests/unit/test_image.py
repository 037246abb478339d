"""What can be checked of the container image without Docker (our machines have none): the
Dockerfile's promises, and that the image installs exactly the versions the tests ran."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stages() -> list[list[str]]:
    """The Dockerfile's instructions, per stage (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(line)
    return found


def pins(lock: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a pip-compile lock."""
    text = (ROOT / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    found = {}
    for entry in entries:
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", entry)
        if m:
            found[m.group(1).lower()] = (m.group(2), frozenset(re.findall(r"sha256:\w+", entry)))
    return found


def test_the_final_stage_runs_as_a_non_root_user_with_no_build_tools() -> None:
    *_, final = stages()
    user = [ln for ln in final if ln.startswith("USER ")]
    assert user == ["USER 10001:10001"]
    assert not any("pip install" in ln or "apt-get" in ln for ln in final)
    assert any(ln.startswith("COPY --from=build /opt/modelrollout") for ln in final)
    assert final[-1] == 'ENTRYPOINT ["modelrollout-operator"]'


def test_the_base_image_is_slim_and_pinned_to_a_patch_version() -> None:
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text())
    assert base is not None
    assert re.fullmatch(r"docker\.io/library/python:3\.11\.\d+-slim-\w+", base.group(1))
    assert all(stage[0] == "FROM ${PYTHON_IMAGE}" or stage[0].startswith("FROM ${PYTHON_IMAGE} AS")
               for stage in stages())  # fmt: skip


def test_the_image_installs_the_tested_versions_with_their_hashes() -> None:
    tested, runtime = pins("requirements.lock"), pins("requirements-runtime.lock")
    assert runtime, "empty runtime lock"
    for name, pinned in runtime.items():
        assert tested.get(name) == pinned, f"{name}: image {pinned[0]}, tests {tested.get(name)}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.\-]+", dependency)
        assert name is not None
        assert name.group(0).lower() in runtime, f"{dependency} missing from the runtime lock"
    for dev_only in ("pytest", "ruff", "mypy", "matplotlib", "hypothesis"):
        assert dev_only not in runtime


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :] == [
        "*", "!requirements-runtime.lock", "!pyproject.toml", "!README.md", "!operator/",
        "operator/**/__pycache__",
    ]  # fmt: skip
