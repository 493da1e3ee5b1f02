from django.urls import path

from phases import api

urlpatterns = [
    path("plans/", api.PlanListCreateView.as_view(), name="plan-list"),
    path("plans/<int:pk>/", api.PlanDetailView.as_view(), name="plan-detail"),
    path("plans/<int:pk>/activate/", api.ActivateView.as_view(), name="plan-activate"),
    path("plans/<int:pk>/pause/", api.PauseView.as_view(), name="plan-pause"),
    path("plans/<int:pk>/resume/", api.ResumeView.as_view(), name="plan-resume"),
    path("plans/<int:pk>/run-gate/", api.RunGateView.as_view(), name="plan-run-gate"),
    path("plans/<int:pk>/sign-off/", api.SignOffView.as_view(), name="plan-sign-off"),
    path("plans/<int:pk>/decide/", api.DecideView.as_view(), name="plan-decide"),
    path("plans/<int:pk>/rollback/", api.RollbackView.as_view(), name="plan-rollback"),
    path(
        "plans/<int:pk>/restart-phase/", api.RestartPhaseView.as_view(), name="plan-restart-phase"
    ),
    path("plans/<int:pk>/complete/", api.CompleteView.as_view(), name="plan-complete"),
    path("plans/<int:pk>/preview/", api.PreviewView.as_view(), name="plan-preview"),
    path("plans/<int:pk>/guardrails/", api.GuardrailsView.as_view(), name="plan-guardrails"),
    path(
        "plans/<int:pk>/freeze-windows/",
        api.FreezeWindowsView.as_view(),
        name="plan-freeze-windows",
    ),
    path(
        "plans/<int:pk>/freeze-windows/<int:window_id>/",
        api.FreezeWindowDetailView.as_view(),
        name="plan-freeze-window-detail",
    ),
]
