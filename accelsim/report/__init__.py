"""Reports: figures a paper could use (PNG and SVG) and a self-contained report.html from a run, sweep, trade-off or
fault-study folder.

Nothing here recomputes a metric: figures and tables read the run's layers.parquet and summary.json, a sweep's
results.parquet, a trade-off's tradeoff.parquet or a fault study's tables and JSON files (`accelsim faults`).
"""

from accelsim.report.build import Report, write_report
from accelsim.report.figures import FIGURES, FigureDef, RenderedFigure, SkipFigure, render
from accelsim.report.source import FaultStudy, ReportSource, load_source

__all__ = ["FIGURES", "FaultStudy", "FigureDef", "RenderedFigure", "Report", "ReportSource", "SkipFigure",
           "load_source", "render", "write_report"]
