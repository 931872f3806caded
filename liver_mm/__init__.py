"""liver-mm: multimodal ultrasound + clinical deep-learning study of liver nodules."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("liver-mm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
