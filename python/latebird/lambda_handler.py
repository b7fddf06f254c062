"""AWS Lambda handler (managed Python runtime): `latebird.lambda_handler.handler`.

A thin wrapper: every event is answered by the contract library the Rust function runs too
(crates/service, through the extension), so both give the same answers and the same errors
(crates/lambda/README.md). The model is loaded once per execution environment, at import (the
init phase), as the Rust function loads it: from LATEBIRD_MODEL (default: `model/` in the
package if present, else /opt/model, a layer) with the engine settings of LATEBIRD_SETTINGS
(a JSON object, e.g. {"precision": "int8"}). Limits: LATEBIRD_MAX_TEXTS (1024) and
LATEBIRD_MAX_CHARS (1000000), checked before encoding.
"""

from __future__ import annotations

import json
from typing import Any

from ._latebird import handle_request, lambda_model, refuse_request, request_limits

# Init: bad limits or a model that cannot be loaded fail here, and Lambda reports the error.
MAX_TEXTS, MAX_CHARS = request_limits()
MODEL_FOLDER, MODEL = lambda_model()


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda entry point: a direct invocation's request, or an HTTP event (API Gateway,
    function URL) with the request as its JSON body. Returns the answer object (for an HTTP
    event, the HTTP response around it)."""
    try:
        # The runtime parsed the event; written back as JSON text (ASCII, lone surrogates
        # escaped as they came), the contract reads it exactly as the Rust function does.
        event_json = json.dumps(event)
    except RecursionError as e:
        _, answer = refuse_request(f"the event is nested too deeply to read: {e}")
    except (TypeError, ValueError) as e:  # only for an event that did not come as JSON
        _, answer = refuse_request(f"the event is not JSON: {e}")
    else:
        _, answer = handle_request(MODEL, event_json, MAX_TEXTS, MAX_CHARS)
    result: dict[str, Any] = json.loads(answer)
    return result
