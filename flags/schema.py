"""Documents the OFREP endpoints in our OpenAPI schema.

They are plain Django views (the hot path bypasses DRF), so drf-spectacular cannot see them; this
post-processing hook adds them in the shape of OFREP's own OpenAPI document."""

from typing import Any

_ERROR = {
    "type": "string",
    "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"],
}
_SCALAR = {"oneOf": [{"type": "boolean"}, {"type": "string"}, {"type": "number"}]}

SCHEMAS: dict[str, Any] = {
    "OfrepEvaluationRequest": {
        "type": "object",
        "properties": {
            "context": {
                "type": "object",
                "properties": {
                    "targetingKey": {
                        "type": "string",
                        "description": "The unit bucketed by default.",
                    }
                },
                "additionalProperties": True,
            }
        },
    },
    "OfrepEvaluationSuccess": {
        "type": "object",
        "required": ["key", "value", "reason", "variant"],
        "properties": {
            "key": {"type": "string"},
            "value": {"type": "boolean"},
            "reason": {
                "type": "string",
                "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"],
            },
            "variant": {"type": "string", "enum": ["on", "off"]},
            "metadata": {"type": "object", "additionalProperties": _SCALAR},
        },
    },
    "OfrepEvaluationFailure": {
        "type": "object",
        "required": ["key", "errorCode", "errorDetails"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": _ERROR,
            "errorDetails": {"type": "string"},
        },
    },
    "OfrepFlagNotFound": {
        "type": "object",
        "required": ["key", "errorCode", "errorDetails"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {"type": "string", "enum": ["FLAG_NOT_FOUND"]},
            "errorDetails": {"type": "string"},
        },
    },
    "OfrepBulkSuccess": {
        "type": "object",
        "required": ["flags"],
        "properties": {
            "flags": {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/OfrepEvaluationSuccess"},
                        {"$ref": "#/components/schemas/OfrepEvaluationFailure"},
                    ]
                },
            }
        },
    },
    "OfrepBulkFailure": {
        "type": "object",
        "required": ["errorCode", "errorDetails"],
        "properties": {"errorCode": _ERROR, "errorDetails": {"type": "string"}},
    },
    "OfrepGeneralError": {"type": "object", "properties": {"errorDetails": {"type": "string"}}},
}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _common() -> dict[str, Any]:
    retry = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return {
        "401": _json("OfrepGeneralError", "Missing, unknown, expired or revoked token"),
        # Refused from its Content-Length, or after OFREP_MAX_BODY_BYTES of a chunked body.
        "413": _json("OfrepBulkFailure", "The body is larger than OFREP_MAX_BODY_BYTES (64 KiB)"),
        "429": {**_json("OfrepGeneralError", "Rate limit reached"), "headers": retry},
        "503": {
            **_json("OfrepGeneralError", "No flag configuration loaded yet (database down)"),
            "headers": retry,
        },
    }


def _operation(
    operation_id: str, summary: str, responses: dict[str, Any], parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "tags": ["OFREP"],
            "summary": summary,
            "parameters": parameters,
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/OfrepEvaluationRequest"}
                    }
                }
            },
            "responses": responses,
            "security": [{"apiToken": []}],
        }
    }


def add_ofrep_paths(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    key = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
    if_none_match = {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
    }
    etag = {
        "ETag": {"description": "Hash of config version and context.", "schema": {"type": "string"}}
    }
    result["paths"]["/ofrep/v1/evaluate/flags/{key}"] = _operation(
        "ofrep_evaluate_flag",
        "OFREP: evaluate one flag",
        {
            "200": _json("OfrepEvaluationSuccess", "Evaluated"),
            "400": _json("OfrepEvaluationFailure", "Bad request or context"),
            "404": _json("OfrepFlagNotFound", "No such flag"),
            **_common(),
        },
        [key],
    )
    result["paths"]["/ofrep/v1/evaluate/flags"] = _operation(
        "ofrep_evaluate_flags",
        "OFREP: evaluate every flag (bulk)",
        {
            "200": {**_json("OfrepBulkSuccess", "Evaluated"), "headers": etag},
            "304": {
                "description": "Not modified since the ETag sent in If-None-Match",
                "headers": etag,
            },
            "400": _json("OfrepBulkFailure", "Bad request or context"),
            **_common(),
        },
        [if_none_match],
    )
    return result
