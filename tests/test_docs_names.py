"""Every module, function and file that README.md and docs/DESIGN.md name in backticks exists: docs that name a
`losses.build_loss` nobody wrote send the reader to nothing."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from optrepro.paths import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "DESIGN.md"]
SRC = REPO_ROOT / "src" / "optrepro"
FILE = re.compile(r"^[\w./-]+\.(py|md|sh|sbatch|yaml|json|toml|txt)$")
DOTTED = re.compile(r"^[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
PACKAGES = {p.stem for p in SRC.iterdir() if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}


def named(path: Path) -> list[str]:
    return sorted({token for token in re.findall(r"`([^`\n]+)`", path.read_text())})


def resolves_as_file(token: str) -> bool:
    candidates = [REPO_ROOT / token, SRC / token, REPO_ROOT / "src" / token]
    return any(c.exists() for c in candidates) or any(REPO_ROOT.glob(f"reproductions/*/{token}"))


def resolves_as_object(token: str) -> bool:
    parts = token.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(["optrepro", *parts[:cut]]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def config_keys() -> set[str]:
    """Every dotted key of the default config (`train.batch_size` is a key, not the module optrepro.train)."""
    from helpers.compose import compose_config
    from omegaconf import OmegaConf

    def walk(node, prefix=""):
        for key, value in node.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")

    return set(walk(OmegaConf.to_container(compose_config([]), resolve=False)))


KEYS = config_keys()
USER_FILES = ("configs/local/",)  # the user's own, git-ignored


def is_config_key(token: str) -> bool:
    return (
        token in KEYS
        or token.removeprefix("config.") in KEYS
        or token.split(".")[0] in ("train", "paths")
        and not resolves_as_object(token)
    )


CASES = [
    (path.name, token)
    for path in DOCS
    for token in named(path)
    if (
        FILE.match(token)
        and "/" in token
        and "<" not in token
        and not token.startswith(("runs/", "data/tensors", *USER_FILES))
    )
    or (DOTTED.match(token) and not FILE.match(token) and token.split(".")[0] in PACKAGES and not is_config_key(token))
]


@pytest.mark.parametrize("doc, token", CASES, ids=[f"{d}:{t}" for d, t in CASES])
def test_a_name_in_the_docs_exists(doc, token):
    found = resolves_as_file(token) if FILE.match(token) else resolves_as_object(token)
    assert found, f"{doc} names `{token}`, which does not exist"


def test_the_docs_name_enough_to_check():
    assert len(CASES) >= 60
