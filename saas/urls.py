from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from saas import views

urlpatterns = [
    path("", RedirectView.as_view(url="/app/", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("app/", include("billing.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
