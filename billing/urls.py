from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("reports/", views.report_create, name="report-create"),
    path("reports/<int:pk>/", views.report_status_view, name="report-status"),
    path("reports/<int:pk>/download", views.report_download, name="report-download"),
]
