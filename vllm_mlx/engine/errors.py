"""Typed engine failures. Each carries a stable ``code`` the API layer maps to a status."""

from __future__ import annotations


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ModelLoadError(EngineError):
    code = "model_load_failed"


class UnsupportedInput(EngineError):
    """The request asks for something this model cannot take (e.g. images on a text model)."""

    code = "unsupported_input"


class InvalidRequest(EngineError):
    code = "invalid_request"


class ContextTooLong(InvalidRequest):
    """The prompt does not fit the model's context length."""

    code = "context_length_exceeded"


class EngineOverloaded(EngineError):
    """The waiting queue is full; the caller should retry later."""

    code = "engine_overloaded"


class EngineClosed(EngineError):
    code = "engine_closed"


class UnknownModel(EngineError):
    code = "model_not_found"


class ModelUnavailable(ModelLoadError):
    """The model failed to load (the message names it and the cause)."""

    code = "model_unavailable"


class ModelInUse(EngineError):
    """An unload that cannot be done now: the default model, or one with requests."""

    code = "model_in_use"


class ModelBusy(EngineError):
    """No room for the model: every model that could be unloaded has work."""

    code = "models_busy"
