from django.urls import path

from feedback import views

app_name = "feedback"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("export.csv", views.export_csv, name="export"),
    path("bulk/", views.bulk, name="bulk"),
    path("new/", views.create, name="create"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/status/", views.change_status, name="status"),
    path("<int:pk>/priority/", views.change_priority, name="priority"),
    path("<int:pk>/assign/", views.assign, name="assign"),
    path("<int:pk>/comment/", views.comment, name="comment"),
    path("<int:pk>/request-exclusion/", views.request_exclusion, name="request-exclusion"),
    path("<int:pk>/exclude-unit/", views.exclude_unit, name="exclude-unit"),
]
