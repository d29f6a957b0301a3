"""PDFs drawn with ReportLab: a statement, and the demo's contract document."""

from __future__ import annotations

from io import BytesIO

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .models import Contract
from .selectors.statements import MonthlyStatement


def _money(value) -> str:
    return f"{value:,.2f}"


def statement_pdf(statement: MonthlyStatement) -> bytes:
    """The statement as a PDF: the same lines and totals as its page and CSV."""
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"Statement {statement.slug} {statement.organization.name}",
        author="GPU Capacity Portal",
    )
    styles = getSampleStyleSheet()
    status = (
        f"Issued {statement.statement.issued_at:%Y-%m-%d %H:%M} UTC"
        if statement.is_issued
        else f"Open month: figures to {statement.as_of:%Y-%m-%d %H:%M} UTC, not final"
    )
    story = [
        Paragraph(f"Statement {statement.label}", styles["Title"]),
        Paragraph(f"{statement.organization.name} · {status}", styles["Normal"]),
        Paragraph(f"All amounts in {statement.currency}.", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    header = ["Kind", "Description", "Month", "GPU-hours", "Rate / GPU-h", "Priced by", "Amount"]
    rows = [header] + [
        [
            row.kind_label,
            Paragraph(row.description, styles["BodyText"]),
            row.period.strftime("%Y-%m"),
            f"{row.gpu_hours:,}",
            f"{row.rate_per_gpu_hour}",
            row.price_source,
            _money(row.amount),
        ]
        for row in statement.rows
    ]
    for label, value in (
        ("Reservations", statement.reservation_total),
        ("On-demand usage", statement.usage_total),
        ("Adjustments", statement.adjustment_total),
        ("Total", statement.total),
    ):
        rows.append(["", label, "", "", "", "", _money(value)])
    table = Table(rows, colWidths=[32 * mm, 90 * mm, 18 * mm, 30 * mm, 26 * mm, 24 * mm, 30 * mm])
    totals_from = len(rows) - 4
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("ALIGN", (3, 0), (4, -1), "RIGHT"),
                ("ALIGN", (6, 0), (6, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("LINEABOVE", (0, totals_from), (-1, totals_from), 0.8, colors.black),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ]
        )
    )
    story.append(table)
    document.build(story)
    return buffer.getvalue()


def contract_summary_pdf(contract: Contract) -> bytes:
    """A one-page summary of a contract's terms and rates (the demo's signed document)."""
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Contract {contract.number}",
        author="GPU Capacity Portal",
        invariant=True,  # the same bytes on every run: no timestamp or random id
    )
    styles = getSampleStyleSheet()
    story = [
        Paragraph(f"Master services agreement {contract.number}", styles["Title"]),
        Paragraph(f"Between the provider and {contract.organization.name}.", styles["Normal"]),
        Spacer(1, 6 * mm),
        Paragraph(
            f"Term: {contract.term_start:%Y-%m-%d} to {contract.term_end:%Y-%m-%d} (exclusive). "
            f"Committed spend: {_money(contract.committed_spend)} {contract.currency}. "
            f"Payment terms: {contract.payment_terms or 'as invoiced'}.",
            styles["BodyText"],
        ),
        Spacer(1, 4 * mm),
    ]
    rows = [["GPU", "Region", f"Rate per GPU-hour ({contract.currency})"]] + [
        [rate.sku.name, rate.region.code if rate.region_id else "any", str(rate.price_per_gpu_hour)]
        for rate in contract.rates.select_related("sku", "region").order_by("sku__code", "pk")
    ]
    table = Table(rows)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
            ]
        )
    )
    story += [table, Spacer(1, 12 * mm), Paragraph("Signed for both parties.", styles["Normal"])]
    document.build(story)
    return buffer.getvalue()
