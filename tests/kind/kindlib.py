"""What the kind tests share: the cluster they run against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KindCluster:
    """A real cluster the tests may deploy to, with what they deploy."""

    kubeconfig: Path
    helm: Path
    image: str
    database_url: str

    @property
    def image_repository(self) -> str:
        """The image without its tag, for the chart's image.repository."""
        return self.image.rpartition(":")[0]

    @property
    def image_tag(self) -> str:
        """The image's tag, for the chart's image.tag."""
        return self.image.rpartition(":")[2]
