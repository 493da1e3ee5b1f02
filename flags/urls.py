from django.urls import path

from flags import api

urlpatterns = [
    path("flags/", api.FlagListCreateView.as_view(), name="flag-list"),
    path("flags/<str:key>/", api.FlagDetailView.as_view(), name="flag-detail"),
    path("cohorts/", api.CohortListCreateView.as_view(), name="cohort-list"),
    path("cohorts/<str:key>/", api.CohortDetailView.as_view(), name="cohort-detail"),
    path("cohorts/<str:key>/members/", api.CohortMembersView.as_view(), name="cohort-members"),
    path("cohorts/<str:key>/opt-in/", api.CohortOptInView.as_view(), name="cohort-opt-in"),
    path("evaluate/", api.EvaluateView.as_view(), name="evaluate"),
]
