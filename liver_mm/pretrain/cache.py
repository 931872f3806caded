"""Pretrained encoders cached by content: ``<cache_dir>/pretrain/<key>.safetensors``.

The key is a SHA-256 of the pixels the encoder learns from (the training crops and the pool frames, in order,
with their shapes), the settings (:class:`~liver_mm.pretrain.ssl.PretrainSettings`), :data:`PRETRAIN_VERSION` and
the lightly / timm / torch versions. A second job with the same key (another image arm of the same fold) waits on
a file lock and reuses the file. The file is a timm state dict of the backbone, written atomically and readable by
its owner only; its bytes carry no time stamp (the settings and curve: ``<key>.json`` beside it), so a
repeated run on the same machine writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liver_mm.fileio import atomic_write_private
from liver_mm.pretrain.ssl import PretrainSettings, pretrain_encoder

#: Bump whenever the training loop or augmentations change what a key's weights are.
PRETRAIN_VERSION = 1


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {name: version(name) for name in ("lightly", "timm", "torch")}
    except PackageNotFoundError as exc:
        raise ValueError(f"self-supervised pretraining needs {exc.name}: pip install 'liver-mm[pretrain]'") from None


def pretrain_key(crops: np.ndarray, settings: PretrainSettings) -> str:
    """Hex SHA-256 of the crops' pixels (N, S, S) uint8 and everything else that makes the weights."""
    h = hashlib.sha256()
    meta = {"version": PRETRAIN_VERSION, "settings": settings.as_dict(), "libs": _versions(),
            "shape": list(crops.shape), "dtype": str(crops.dtype)}
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    h.update(np.ascontiguousarray(crops).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CachedEncoder:
    """A pretrained encoder file, its key, its loss curve (mean loss per epoch), whether this call trained it."""

    path: Path
    key: str
    losses: list[float]
    n_images: int
    trained: bool


def cached_pretrain(crops: np.ndarray, settings: PretrainSettings, cache_dir: str | Path, device: str = "cpu",
                    on_epoch: Callable[[int, float], None] | None = None, progress: bool = True) -> CachedEncoder:
    """The encoder pretrained on ``crops`` with ``settings``: from the cache, or trained now and cached."""
    from filelock import FileLock
    from safetensors.torch import save

    folder = Path(cache_dir) / "pretrain"
    folder.mkdir(parents=True, exist_ok=True)
    key = pretrain_key(crops, settings)
    path, sidecar = folder / f"{key}.safetensors", folder / f"{key}.json"
    with FileLock(folder / f"{key}.lock"):
        if path.is_file() and sidecar.is_file():
            info = json.loads(sidecar.read_text())
            return CachedEncoder(path, key, [float(x) for x in info["losses"]], int(info["n_images"]), False)
        result = pretrain_encoder(crops, settings, device=device, on_epoch=on_epoch, progress=progress)
        # one metadata entry: safetensors writes a map's entries in random order (the bytes would differ)
        atomic_write_private(path, lambda fh: fh.write(save(result.state_dict, metadata={"format": "pt"})))
        info = {"key": key, "settings": settings.as_dict(), "losses": result.losses, "n_images": result.n_images}
        atomic_write_private(sidecar, lambda fh: fh.write(json.dumps(info, indent=1).encode()))
    return CachedEncoder(path, key, result.losses, result.n_images, True)
