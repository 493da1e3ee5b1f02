"""Pages of a list: `?page=` and `?page_size=` are checked like any other input."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

MAX_PAGE_SIZE = 500


_PAGE = ("page", {"type": "integer", "minimum": 1}, "Page number, from 1.")
_PAGE_SIZE = (
    "page_size",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    f"Items per page, 1 to {MAX_PAGE_SIZE}.",
)


def _positive(request: Request, name: str, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    number = int(raw) if raw.isascii() and raw.isdigit() else 0
    if number < 1 or (maximum is not None and number > maximum):
        limit = f" from 1 to {maximum}" if maximum else " of at least 1"
        raise ValidationError({name: [f"Must be a whole number{limit}."]})
    return number


class Pagination(PageNumberPagination):
    """DRF's, but a bad `page` or `page_size` is a 400 naming it rather than quietly the first
    page or the default size; a page past the end stays a 404."""

    page_size_query_param = _PAGE_SIZE[0]
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _positive(request, self.page_size_query_param, self.max_page_size) or int(
            self.page_size or MAX_PAGE_SIZE
        )

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        _positive(request, self.page_query_param)
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            raise NotFound("No such page: past the last one.") from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": name, "required": False, "in": "query", "description": text, "schema": schema}
            for name, schema, text in (_PAGE, _PAGE_SIZE)
        ]


# For views that paginate by hand (drf-spectacular only sees pagination on generic views).
PAGE_PARAMETERS = [
    OpenApiParameter(name, schema, description=text) for name, schema, text in (_PAGE, _PAGE_SIZE)
]
