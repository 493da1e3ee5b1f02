from django.urls import path

from feedback import api

urlpatterns = [
    path("feedback/", api.FeedbackListCreateView.as_view(), name="feedback-list"),
    path("feedback/bulk/", api.BulkView.as_view(), name="feedback-bulk"),
    path("feedback/<int:pk>/", api.FeedbackDetailView.as_view(), name="feedback-detail"),
    path("feedback/<int:pk>/comments/", api.CommentCreateView.as_view(), name="feedback-comments"),
    path(
        "feedback/<int:pk>/exclusion-request/",
        api.ExclusionRequestView.as_view(),
        name="feedback-exclusion-request",
    ),
    path(
        "feedback/<int:pk>/exclude-unit/",
        api.ExcludeUnitView.as_view(),
        name="feedback-exclude-unit",
    ),
]
