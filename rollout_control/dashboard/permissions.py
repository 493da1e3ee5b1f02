"""Who may see and do what on the dashboard.

Release managers see and do everything. Support staff read plans, flags and the unit lookup and
sign off gates; every release action (pause, resume, run a gate, decide, roll back, change a
flag) answers 403 to them. Users with neither role get a 403 page that says so."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from rollout_control.core.roles import is_reader, is_release_manager

View = Callable[..., HttpResponse]


def _not_logged_in(request: HttpRequest) -> HttpResponse:
    if request.headers.get("HX-Request"):
        # A poll after the session expired: send the whole page to the login form, instead of
        # htmx swapping the login page into a fragment.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = f"{reverse('login')}?next={request.get_full_path()}"
        return response
    return redirect_to_login(request.get_full_path())


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "dashboard/403.html", {"message": message}, status=403)


def _requires(check: Callable[[HttpRequest], bool], message: str) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if not request.user.is_authenticated:
                return _not_logged_in(request)
            if not check(request):
                return forbidden(request, message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


reader_required = _requires(
    is_reader, "The dashboard is for release managers and support staff; ask for a role."
)
release_manager_required = _requires(
    is_release_manager, "Only a release manager can do this. Support staff can read and sign off."
)
