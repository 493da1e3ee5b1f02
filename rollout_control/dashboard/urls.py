from django.urls import path

from rollout_control.dashboard import views

app_name = "dashboard"
urlpatterns = [path("", views.home, name="home")]
