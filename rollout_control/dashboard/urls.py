from django.urls import path

from rollout_control.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("live/", views.home_live, name="home_live"),
    path("plans/", views.plans, name="plans"),
    path("plans/<int:plan_id>/", views.plan, name="plan"),
    path("plans/<int:plan_id>/pause/", views.plan_pause, name="plan_pause"),
    path("plans/<int:plan_id>/resume/", views.plan_resume, name="plan_resume"),
    path("plans/<int:plan_id>/rollback/", views.plan_rollback, name="plan_rollback"),
    path("plans/<int:plan_id>/restart/", views.plan_restart, name="plan_restart"),
    path("phases/<int:phase_id>/gate/run/", views.gate_run, name="gate_run"),
    path("phases/<int:phase_id>/gate/sign-off/", views.gate_sign_off, name="gate_sign_off"),
    path("phases/<int:phase_id>/gate/checklist/", views.gate_checklist, name="gate_checklist"),
    path("phases/<int:phase_id>/gate/decide/", views.gate_decide, name="gate_decide"),
    path("flags/", views.flags, name="flags"),
    path("flags/<str:key>/", views.flag, name="flag"),
    path("flags/<str:key>/evaluate/", views.flag_evaluate, name="flag_evaluate"),
    path("flags/<str:key>/percentage/", views.flag_percentage, name="flag_percentage"),
    path("flags/<str:key>/kill-switch/", views.flag_kill_switch, name="flag_kill_switch"),
    path("why/", views.why, name="why"),
]
