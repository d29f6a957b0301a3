from django.urls import path

from . import views

urlpatterns = [
    path("resume/", views.invitation_resume, name="invitation_resume"),
    path("<str:token>/", views.invitation_accept, name="invitation_accept"),
]
