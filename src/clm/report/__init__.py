"""The CLM's offline HTML report (top layer: reads a run directory, never
imports the loop). ``write_report(run_dir)`` writes ``run_dir/report.html``."""

from clm.report.html import REPORT_NAME, RUN_FILES, RunReport, build_report_html, write_report

__all__ = ["REPORT_NAME", "RUN_FILES", "RunReport", "build_report_html", "write_report"]
