"""Reports built only from the case store: a JSON report following a versioned JSON Schema
(resources/schema/report-1.json) and a PDF report (reportlab) laid out after SWGDE practice.

    export_report(store, case_id, json_path=None, pdf_path=None, evidence_ids=None)
        re-hashes every evidence file first and refuses (EvidenceError + audit row) on a change
    build_report(store, case_id, evidence_ids=None) -> dict      # the JSON content
    validate_report(report)                                       # jsonschema against report-1
    write_pdf(report, path)
"""

from core.report.export import export_report
from core.report.model import SCHEMA_ID, SCHEMA_PATH, build_report, load_schema, validate_report
from core.report.pdf import write_pdf

__all__ = ["SCHEMA_ID", "SCHEMA_PATH", "build_report", "export_report", "load_schema", "validate_report", "write_pdf"]
