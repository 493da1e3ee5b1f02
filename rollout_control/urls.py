from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from rollout_control.core import views as core_views

handler400 = "rollout_control.core.errors.bad_request"
handler404 = "rollout_control.core.errors.not_found"
handler500 = "rollout_control.core.errors.server_error"

urlpatterns = [
    # The hot path first: every client evaluation resolves through this list.
    path("ofrep/", include("flags.ofrep_urls")),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("api/v1/", include("rollout_control.core.urls")),
    path("api/v1/", include("flags.urls")),
    path("api/v1/", include("monitoring.urls")),
    path("api/v1/", include("phases.urls")),
    path("api/v1/", include("feedback.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("feedback/", include("feedback.page_urls")),
    path("", include("rollout_control.dashboard.urls")),
]

if settings.BENCH_VIEWS:
    # The baseline tests/bench/bench_ofrep.py measures OFREP against.
    urlpatterns.append(path("bench/constant", core_views.bench_constant, name="bench-constant"))
