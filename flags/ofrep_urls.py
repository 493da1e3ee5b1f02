from django.urls import path

from flags import ofrep

urlpatterns = [
    path("v1/evaluate/flags", ofrep.evaluate_bulk, name="ofrep-bulk"),
    path("v1/evaluate/flags/<str:key>", ofrep.evaluate_one, name="ofrep-flag"),
]
