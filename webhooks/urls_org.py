from django.urls import path

from . import views

urlpatterns = [
    path("webhooks/", views.WebhookListView.as_view(), name="webhook_list"),
    path(
        "webhooks/<int:endpoint_id>/",
        views.WebhookDetailView.as_view(),
        name="webhook_detail",
    ),
    path(
        "webhooks/<int:endpoint_id>/enabled/",
        views.WebhookEnableView.as_view(),
        name="webhook_enable",
    ),
    path(
        "webhooks/<int:endpoint_id>/rotate-secret/",
        views.WebhookRotateSecretView.as_view(),
        name="webhook_rotate_secret",
    ),
    path(
        "webhooks/<int:endpoint_id>/delete/",
        views.WebhookDeleteView.as_view(),
        name="webhook_delete",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        views.WebhookRedeliverView.as_view(),
        name="webhook_redeliver",
    ),
]
