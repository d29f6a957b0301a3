from django.urls import path

from . import views

urlpatterns = [
    path("contracts/", views.ContractListView.as_view(), name="contract_list"),
    path("contracts/<int:pk>/", views.ContractDetailView.as_view(), name="contract_detail"),
    path(
        "contracts/<int:contract_pk>/documents/<int:pk>",
        views.ContractDocumentView.as_view(),
        name="contract_document",
    ),
    path("statements/", views.StatementListView.as_view(), name="statement_list"),
    path("statements/<str:month>/", views.StatementDetailView.as_view(), name="statement_detail"),
    path("statements/<str:month>/csv", views.StatementCsvView.as_view(), name="statement_csv"),
    path("statements/<str:month>/pdf", views.StatementPdfView.as_view(), name="statement_pdf"),
]
