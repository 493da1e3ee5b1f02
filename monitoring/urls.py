from django.urls import path

from monitoring import api

urlpatterns = [
    path("metrics/", api.MetricsView.as_view(), name="metrics-ingest"),
    path("metric-definitions/", api.MetricDefinitionsView.as_view(), name="metric-definitions"),
    path("metrics/<str:name>/", api.MetricValueView.as_view(), name="metric-value"),
    path("metrics/<str:name>/series/", api.MetricSeriesView.as_view(), name="metric-series"),
    path("events/", api.EventsView.as_view(), name="events-ingest"),
]
