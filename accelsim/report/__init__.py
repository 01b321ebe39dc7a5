"""Reports: figures a paper could use (PNG and SVG) and a self-contained report.html from a run or sweep folder.

Nothing here recomputes a metric: figures and tables read the run's layers.parquet and summary.json, a sweep's
results.parquet or a trade-off's tradeoff.parquet.
"""

from accelsim.report.build import Report, write_report
from accelsim.report.figures import FIGURES, FigureDef, RenderedFigure, SkipFigure, render
from accelsim.report.source import ReportSource, load_source

__all__ = ["FIGURES", "FigureDef", "RenderedFigure", "Report", "ReportSource", "SkipFigure", "load_source", "render",
           "write_report"]
