from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from monitoring.selectors import scheduler_status
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT, user_has_role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/home.html",
        {
            "scheduler": scheduler_status(),
            "is_release_manager": user_has_role(request.user, RELEASE_MANAGER),
            "is_support": user_has_role(request.user, SUPPORT),
        },
    )
