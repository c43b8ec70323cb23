"""Each provider's own error responses for the mock's faults (tests/agents/mock_provider.py):
status, headers and JSON body per wire format, as the real providers send them."""

from __future__ import annotations

import time
from typing import Any


def _go_duration(seconds: int) -> str:
    """A wait as OpenAI prints it: 20s, 1m30s, 1h0m0s."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


HOSTILE = "bad request \x1b[31mred\x1b[0m\x07 bell \x00 nul \x1b]0;title\x07 end"


def failure(
    api: str, fail: str, reset_at: int, retry_after: int = 30
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Each provider's own error response for the fault named (see the module docstring)."""
    if fail == "hostile":
        if api == "anthropic":
            return 400, {}, {"type": "error", "error": {"type": "invalid_request_error", "message": HOSTILE}}
        return 400, {}, {"error": {"message": HOSTILE, "type": "invalid_request_error", "code": None}}
    if fail == "rate_limit":
        reset = str(int(time.time()) + retry_after)
        if api == "anthropic":
            headers = {
                "retry-after": str(retry_after),
                "anthropic-ratelimit-unified-reset": reset,
                "anthropic-ratelimit-requests-remaining": "0",
            }
            error = {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}
            return 429, headers, {"type": "error", "error": error}
        # OpenAI's own wording names the wait in the message too ("… Please try again in 20s.")
        error = {
            "message": f"Rate limit reached for requests. Please try again in {_go_duration(retry_after)}.",
            "type": "rate_limit_exceeded",
            "code": "rate_limit_exceeded",
        }
        return (
            429,
            {"retry-after": str(retry_after), "x-ratelimit-reset-requests": f"{retry_after}s"},
            {"error": error},
        )
    if fail == "usage_limit_in":
        wait = max(1, reset_at - int(time.time()))
        limit_in: dict[str, Any] = {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_in_seconds": wait,
        }
        return 429, {"retry-after-ms": "10"}, {"error": limit_in}
    if fail == "auth":
        if api == "anthropic":
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return 401, {}, {"type": "error", "error": error}
        message = "Incorrect API key provided: sk-mock. You can find your API key at the dashboard."
        return (
            401,
            {},
            {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}},
        )
    if fail == "usage_limit":
        wait = max(1, reset_at - int(time.time()))
        if api == "anthropic":
            # Subscription (OAuth) auth reads the unified rate-limit headers into a usage-limit text.
            headers = {
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": str(reset_at),
                "anthropic-ratelimit-unified-representative-claim": "five_hour",
            }
            error = {"type": "rate_limit_error", "message": "Usage limit reached"}
            return 429, headers, {"type": "error", "error": error}
        limit: dict[str, Any] = {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_at": reset_at,
            "resets_in_seconds": wait,
        }
        # retry-after-ms keeps opencode's (silent, retry-after-honouring) retries short.
        return 429, {"retry-after-ms": "10"}, {"error": limit}
    if api == "anthropic":
        return 500, {}, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    return 500, {}, {"error": {"message": "Internal server error", "type": "server_error"}}
