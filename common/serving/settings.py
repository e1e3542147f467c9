"""Serving settings from the platform's environment variables."""

import os
from dataclasses import dataclass


def int_env(environ, name, default):
    """A positive whole number from the environment (``default`` when unset); a bad value stops the server."""
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} must be a whole number") from None
    if number < 1:
        raise SystemExit(f"{name}={value!r} must be positive")
    return number


@dataclass(frozen=True)
class ServingSettings:
    port: int = 8080
    workers: int = 1
    timeout: int = 60
    max_payload_mb: int = 6
    batch: bool = False

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        return cls(
            port=int_env(environ, "SAGEMAKER_BIND_TO_PORT", 8080),
            workers=int_env(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1),
            timeout=int_env(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
            max_payload_mb=int_env(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
            batch=environ.get("SAGEMAKER_BATCH", "").lower() == "true",
        )

    @property
    def max_payload_bytes(self):
        return self.max_payload_mb * 1024 * 1024
