from django.urls import path

from rollout_control.core import api

urlpatterns = [
    path("whoami/", api.WhoAmIView.as_view(), name="whoami"),
    path("tokens/", api.ApiTokenListCreateView.as_view(), name="token-list"),
    path("tokens/<int:pk>/revoke/", api.ApiTokenRevokeView.as_view(), name="token-revoke"),
]
