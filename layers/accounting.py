"""Row accounting shared by every loader.

Every input row ends as *kept* or *rejected with a reason*; a :class:`LayerReport` carries
the counts (``read == kept + rejected``) and the rejected rows themselves, which the pipeline
writes to ``rejected_<layer>.csv`` and counts in ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class LayerReport:
    """What happened to the rows of one input layer.

    Attributes
    ----------
    layer : str
        Layer name (``facilities``, ``population``, ``communities``, ``network`` ...).
    source : str
        The file (or query) the layer was read from.
    read : int
        Rows (features, cells, ways) read from the source.
    rejected : pandas.DataFrame
        One row per rejected input row: ``row`` (1-based line or feature number in the
        source), ``reason`` (short, stable text, counted in the summary) and any original
        fields worth showing.
    notes : list of str
        Things the user should know that did not reject a row (conversions, repairs,
        auto-detected columns).
    """

    layer: str
    source: str
    read: int = 0
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "reason"]))
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """Rows kept: ``read`` minus the rejected rows."""
        return self.read - len(self.rejected)

    def reject(self, rows: pd.DataFrame, reason: str) -> None:
        """Add ``rows`` (with a ``row`` column) to the rejected rows with ``reason``."""
        if len(rows) == 0:
            return
        add = rows.copy()
        add["reason"] = reason
        self.rejected = add if self.rejected.empty else pd.concat([self.rejected, add], ignore_index=True)

    def rejected_by_reason(self) -> dict[str, int]:
        """Number of rejected rows per reason, most frequent first."""
        if not len(self.rejected):
            return {}
        return {str(k): int(v) for k, v in self.rejected["reason"].value_counts().items()}

    def to_dict(self) -> dict:
        """The summary.json entry for this layer."""
        return {
            "source": self.source,
            "read": int(self.read),
            "kept": int(self.kept),
            "rejected": int(len(self.rejected)),
            "rejected_by_reason": self.rejected_by_reason(),
            "notes": list(self.notes),
        }
