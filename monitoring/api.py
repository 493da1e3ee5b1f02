from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import selectors, services
from monitoring.models import MetricDefinition
from monitoring.serializers import (
    EVENTS_BATCH,
    SAMPLES_BATCH,
    AcceptedOutput,
    MetricDefinitionInput,
    MetricDefinitionSerializer,
    MetricSeriesOutput,
    MetricValueOutput,
)
from monitoring.windows import WINDOW_PATTERN, format_window, parse_window
from rollout_control.core.actors import Actor
from rollout_control.core.parsers import JSONParser
from rollout_control.core.permissions import (
    CanPushMetrics,
    IsClient,
    IsReleaseManager,
    IsSupportStaff,
)
from rollout_control.core.serializers import NO_NUL

RESERVED_PARAMS = {"window", "step", "format"}


def _batch(data: Any, key: str) -> Any:
    """A batch is `{"<key>": [...]}` or the bare list."""
    return data.get(key) if isinstance(data, dict) else data


def _filters(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k not in RESERVED_PARAMS}


_LABEL_PARAMS = [
    OpenApiParameter(
        label,
        {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        description=f"Filter on the {label} label (if the metric has it: see filter_labels)",
    )
    for label in ("flag", "plan", "phase", "cohort")
]


def _window(name: str, default: str, example: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "string", "pattern": WINDOW_PATTERN, "default": default},
        description=f"A number and s, m, h or d (e.g. {example}), at most 90 days.",
    )


class SampleJSONParser(JSONParser):
    """Reads NaN and Infinity too, so that ingestion refuses them naming the item
    (`samples[3].value`) like any other out-of-range value; the strict parser's 400 names none."""

    strict = False


class MetricsView(APIView):
    parser_classes = [SampleJSONParser]

    def get_permissions(self) -> list[Any]:
        # Samples drive pauses and rollbacks: client tokens (public) may not push them.
        return [IsSupportStaff()] if self.request.method == "GET" else [CanPushMetrics()]

    @extend_schema(
        responses={200: MetricDefinitionSerializer(many=True)}, summary="List metric definitions"
    )
    def get(self, request: Request) -> Response:
        return Response(MetricDefinitionSerializer(MetricDefinition.objects.all(), many=True).data)

    @extend_schema(
        request=SAMPLES_BATCH, responses={201: AcceptedOutput}, summary="Push a batch of samples"
    )
    def post(self, request: Request) -> Response:
        accepted = services.samples_ingest(items=_batch(request.data, "samples"))
        return Response({"accepted": accepted}, status=status.HTTP_201_CREATED)


class EventsView(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        request=EVENTS_BATCH,
        responses={201: AcceptedOutput},
        summary="Push a batch of usage events",
    )
    def post(self, request: Request) -> Response:
        accepted = services.events_ingest(items=_batch(request.data, "events"))
        return Response({"accepted": accepted}, status=status.HTTP_201_CREATED)


class MetricValueView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        parameters=[
            _window("window", "15m", "15m, 1h, 7d"),
            *_LABEL_PARAMS,
        ],
        responses={200: MetricValueOutput},
        summary="A metric over a window",
    )
    def get(self, request: Request, name: str) -> Response:
        window = parse_window(request.query_params.get("window", "15m"))
        filters = _filters(request)
        now = timezone.now()
        result = selectors.metric_value(name=name, window=window, filters=filters, now=now)
        return Response(
            {
                "name": name,
                "window": format_window(window),
                "filters": filters,
                "value": result.value,
                "samples": result.samples,
                "status": result.status,
                "detail": result.detail,
                "at": now,
            }
        )


class MetricSeriesView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        parameters=[
            _window("window", "24h", "24h, 7d"),
            _window("step", "1h", "1h"),
            *_LABEL_PARAMS,
        ],
        responses={200: MetricSeriesOutput},
        summary="A metric bucketed over time, for charts",
    )
    def get(self, request: Request, name: str) -> Response:
        window = parse_window(request.query_params.get("window", "24h"))
        step = parse_window(request.query_params.get("step", "1h"), field="step")
        filters = _filters(request)
        points = selectors.metric_series(name=name, window=window, step=step, filters=filters)
        return Response(
            {
                "name": name,
                "window": format_window(window),
                "step": format_window(step),
                "filters": filters,
                "points": [
                    {
                        "start": p.start,
                        "end": p.end,
                        "value": p.result.value,
                        "samples": p.result.samples,
                        "status": p.result.status,
                    }
                    for p in points
                ],
            }
        )


class MetricDefinitionsView(APIView):
    def get_permissions(self) -> list[Any]:
        return [IsSupportStaff()] if self.request.method == "GET" else [IsReleaseManager()]

    @extend_schema(
        responses={200: MetricDefinitionSerializer(many=True)}, summary="List metric definitions"
    )
    def get(self, request: Request) -> Response:
        return Response(MetricDefinitionSerializer(MetricDefinition.objects.all(), many=True).data)

    @extend_schema(
        request=MetricDefinitionInput,
        responses={201: MetricDefinitionSerializer},
        summary="Define a metric",
    )
    def post(self, request: Request) -> Response:
        data = MetricDefinitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        definition = services.metric_definition_create(
            actor=Actor.from_request(request), **data.validated_data
        )
        return Response(MetricDefinitionSerializer(definition).data, status=status.HTTP_201_CREATED)
