"""Row accounting shared by every loader.

Every input row ends as *kept* or *rejected with a reason*; a :class:`LayerReport` carries
the counts (``read == kept + rejected``) and the rejected rows themselves, which the pipeline
writes to ``rejected_<layer>.csv`` and counts in ``summary.json``. :func:`start_report` opens
one for a file as read, :func:`reject_rows` rejects rows by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from carecircle.layers.readers import TableMeta


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


def start_report(layer: str, df: pd.DataFrame, meta: TableMeta) -> LayerReport:
    """A :class:`LayerReport` counting ``df`` plus the rows rejected while parsing.

    Parameters
    ----------
    layer : str
        Layer name (``facilities``, ``population``, ``communities`` ...).
    df : pandas.DataFrame
        The rows read (:func:`read_table`).
    meta : TableMeta
        Its parse-time rejections and notes are carried over.

    Returns
    -------
    LayerReport
        ``read`` = rows of ``df`` + rows rejected while parsing.
    """
    report = LayerReport(layer=layer, source=meta.path, read=len(df) + len(meta.rejected), notes=list(meta.notes))
    for reason, rows in meta.rejected.groupby("reason", sort=False):
        report.reject(rows.drop(columns="reason"), str(reason))
    return report


def reject_rows(report: LayerReport, df: pd.DataFrame, reason: np.ndarray) -> None:
    """Reject the rows of ``df`` with a non-empty ``reason`` (one group per reason).

    Parameters
    ----------
    report : LayerReport
        Receives the rejected rows (without their geometry column).
    df : pandas.DataFrame
        The rows as read, with their ``row`` column.
    reason : array of str
        One per row of ``df``; "" keeps the row.
    """
    reason = np.asarray(reason, dtype=object)
    geometry = getattr(df, "_geometry_column_name", None)  # rejected rows are written as CSV
    shown = pd.DataFrame(df.drop(columns=[geometry] if geometry in df.columns else []))
    for r in pd.unique(reason[reason != ""]):
        report.reject(shown.loc[reason == r], str(r))
