"""Stripe-shaped API errors: ``{"error": {"type", "code", "message", "param", ...}}``."""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeAPIError(Exception):
    """An error answered to the client with Stripe's status code and error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {}
        if self.code:
            err["code"] = self.code
            if not self.code.startswith("emulator_"):
                err["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        err["message"] = self.message
        if self.param:
            err["param"] = self.param
        err.update(self.extra)
        err["type"] = self.type
        return {"error": err}


def invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeAPIError:
    return StripeAPIError(status, message, code=code, param=param)


def missing_param(param: str) -> StripeAPIError:
    return invalid(f"Missing required param: {param}.", param, "parameter_missing")


def unknown_params(names: list[str]) -> StripeAPIError:
    if len(names) == 1:
        return invalid(f"Received unknown parameter: {names[0]}", names[0], "parameter_unknown")
    return invalid(
        "Received unknown parameters: " + ", ".join(names), names[0], "parameter_unknown"
    )


def exclusive(*params: str) -> StripeAPIError:
    return invalid(
        "You may only specify one of these parameters: " + ", ".join(params) + ".",
        params[0],
        "parameters_exclusive",
    )


def no_such(kind: str, obj_id: str, param: str | None = "id") -> StripeAPIError:
    return invalid(f"No such {kind}: '{obj_id}'", param, "resource_missing", status=404)


def not_editable(message: str, param: str | None = None) -> StripeAPIError:
    return invalid(message, param, "invoice_not_editable")


def state_error(message: str, param: str | None = None) -> StripeAPIError:
    """An operation not allowed in the object's current state (Stripe answers 400)."""
    return invalid(message, param)
