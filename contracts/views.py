"""Contract and statement pages of an organization (billing roles and its account manager)."""

from __future__ import annotations

import csv
from datetime import date

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect
from django.views.generic import TemplateView, View

from accounts.views_base import OrganizationViewMixin
from portal.errors import DomainError
from quotas.views.base import form_add_domain_error

from . import services
from .forms import ContractDocumentForm
from .selectors.pages import (
    contract_document_get,
    contract_documents,
    contract_get,
    contract_list,
    contract_rates_vs_list,
    contract_reservations,
)
from .selectors.spend import contract_burn_down
from .selectors.statements import MonthlyStatement, statement_get, statement_list

BILLING = {"GET": "billing.view", "HEAD": "billing.view"}
RESERVATIONS_SHOWN = 50


class ContractListView(OrganizationViewMixin, TemplateView):
    template_name = "contracts/contract_list.html"
    permission_map = BILLING

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["contracts"] = list(contract_list(organization=self.organization))
        return context


class ContractDetailView(OrganizationViewMixin, TemplateView):
    template_name = "contracts/contract_detail.html"
    permission_map = {**BILLING, "POST": "contracts.manage"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        contract = contract_get(organization=self.organization, pk=self.kwargs["pk"])
        burn = contract_burn_down(contract=contract)
        reservations = list(contract_reservations(contract=contract)[: RESERVATIONS_SHOWN + 1])
        context.update(
            contract=contract,
            rates=contract_rates_vs_list(contract=contract),
            documents=list(contract_documents(contract=contract)),
            reservations=reservations[:RESERVATIONS_SHOWN],
            more_reservations=len(reservations) > RESERVATIONS_SHOWN,
            burn=burn,
            chart=burn.as_dict(),
            can_manage=self.access.can("contracts.manage"),
        )
        context.setdefault("document_form", ContractDocumentForm())
        return context

    def post(self, request, *args, **kwargs):
        contract = contract_get(organization=self.organization, pk=self.kwargs["pk"])
        form = ContractDocumentForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                services.contract_document_add(
                    contract=contract,
                    uploaded_file=form.cleaned_data["file"],
                    title=form.cleaned_data["title"],
                    kind=form.cleaned_data["kind"],
                    actor=request.user,
                )
            except DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                messages.success(request, "The document is attached.")
                return redirect(request.path)
        return self.render_to_response(self.get_context_data(document_form=form), status=400)


class ContractDocumentView(OrganizationViewMixin, View):
    """Streams a document from storage, to those who may see the contract (never a public
    media URL)."""

    permission_map = BILLING

    def get(self, request, *args, **kwargs):
        document = contract_document_get(
            organization=self.organization, contract_pk=kwargs["contract_pk"], pk=kwargs["pk"]
        )
        extension = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
        response = FileResponse(
            document.file.open("rb"),
            content_type=document.content_type,
            as_attachment=document.content_type == "application/pdf" or None,
            filename=f"{document.contract.number}-{document.pk}."
            f"{extension.get(document.content_type, 'bin')}",
        )
        response["Cache-Control"] = "private, no-store"
        return response


def parse_month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise Http404("No such month.") from None


class StatementListView(OrganizationViewMixin, TemplateView):
    template_name = "contracts/statement_list.html"
    permission_map = BILLING

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["statements"] = statement_list(organization=self.organization)
        return context


class StatementMixin:
    def get_statement(self) -> MonthlyStatement:
        statement = statement_get(
            organization=self.organization, month=parse_month(self.kwargs["month"])
        )
        if statement is None:
            raise Http404("That month has not begun.")
        return statement


class StatementDetailView(StatementMixin, OrganizationViewMixin, TemplateView):
    template_name = "contracts/statement_detail.html"
    permission_map = BILLING

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["statement"] = self.get_statement()
        return context


CSV_HEADER = [
    "kind",
    "adjusts",
    "month",
    "sku",
    "region",
    "reservation",
    "gpu_hours",
    "rate_per_gpu_hour",
    "price_source",
    "amount",
    "currency",
]


def statement_csv_rows(statement: MonthlyStatement):
    yield CSV_HEADER
    for row in statement.rows:
        yield [
            row.kind,
            row.adjusts,
            row.period.strftime("%Y-%m"),
            row.sku.code,
            row.region.code,
            f"RES-{row.reservation_id}" if row.reservation_id else "",
            str(row.gpu_hours),
            str(row.rate_per_gpu_hour),
            row.price_source,
            str(row.amount),
            statement.currency,
        ]
    for label, value in (
        ("total_reservations", statement.reservation_total),
        ("total_usage", statement.usage_total),
        ("total_adjustments", statement.adjustment_total),
        ("total", statement.total),
    ):
        yield [label, "", statement.slug, "", "", "", "", "", "", str(value), statement.currency]


class StatementCsvView(StatementMixin, OrganizationViewMixin, View):
    permission_map = BILLING

    def get(self, request, *args, **kwargs):
        statement = self.get_statement()
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{self.organization.slug}-{statement.slug}.csv"'
        )
        writer = csv.writer(response)
        writer.writerows(statement_csv_rows(statement))
        return response


class StatementPdfView(StatementMixin, OrganizationViewMixin, View):
    permission_map = BILLING

    def get(self, request, *args, **kwargs):
        from .pdf import statement_pdf

        statement = self.get_statement()
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{self.organization.slug}-{statement.slug}.pdf"'
        )
        return response
