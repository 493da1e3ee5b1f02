"""OpenAPI detail drf-spectacular cannot derive for the ingestion batches."""

from typing import Any

from django.conf import settings


def document_batches(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """A batch (`{"samples": [...]}` or the bare list, monitoring.api._batch) holds 1 to
    METRICS_MAX_BATCH items: an empty or oversized one is a 400 (monitoring.services)."""
    for path in ("/api/v1/metrics/", "/api/v1/events/"):
        body = result["paths"].get(path, {}).get("post", {}).get("requestBody")
        if body is not None:
            body["required"] = True  # drf-spectacular cannot tell for a oneOf of two shapes
    schemas = result.get("components", {}).get("schemas", {})
    bounds = {"minItems": 1, "maxItems": settings.METRICS_MAX_BATCH}
    for kind in ("Samples", "Events"):
        batch = schemas.get(f"{kind}BatchRequest", {})
        for branch in batch.get("oneOf", []):
            if branch.get("type") == "array":
                branch.update(bounds)
        wrapper = schemas.get(f"{kind}InputRequest", {})
        items = wrapper.get("properties", {}).get(kind.lower())
        if items is not None:
            items.update(bounds)
    return result
