"""The error types the runtime reports; a category names who is at fault.

Training turns these into /opt/ml/output/failure; serving turns them into HTTP status codes.
"""


class AlgoboxError(Exception):
    """Base of every error the runtime knows how to report."""

    category = "AlgorithmError"


class ClientError(AlgoboxError):
    """The user's input is wrong: hyperparameters, channels, data, requests."""

    category = "ClientError"


class ConfigError(ClientError):
    """A platform config file (/opt/ml/input/config/*.json) is missing or malformed."""


class HyperparameterError(ClientError):
    """A hyperparameter is missing, unknown, or has a value outside what is allowed."""


class ChannelError(ClientError):
    """A channel is missing, unknown, empty or declared with an unsupported content type or mode."""


class DataError(ClientError):
    """A data file or record cannot be read; the message names the file and the record."""

    def __init__(self, message, *, source=None, record=None):
        self.message = message
        self.source = source
        self.record = record
        where = []
        if source is not None:
            where.append(f"file {source}")
        if record is not None:
            where.append(f"record {record}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)

    def after_lines(self, lines):
        """The same error found in a piece of a file parsed apart from the ``lines`` lines before it: its record
        counted from the file's start."""
        if self.record is None or not lines:
            return self
        return type(self)(self.message, source=self.source, record=self.record + lines)


class AlgorithmError(AlgoboxError):
    """Our own fault: a bug or an unexpected state inside the algorithm."""


class PlatformError(AlgoboxError):
    """What the platform did wrong: host names that never resolve, a Pipe-mode FIFO that never appears."""

    category = "PlatformError"


class PeerError(AlgoboxError):
    """Another host of the job failed; carries that host's name and category so this host reports it."""

    def __init__(self, host, category, message):
        self.host = host
        self.category = category if category in ("ClientError", "PlatformError") else "AlgorithmError"
        super().__init__(f"host {host} failed: {category}: {message}")


class RequestError(ClientError):
    """A client error while serving; carries the HTTP status code to answer with."""

    status = 400

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class UnsupportedContentType(RequestError):
    status = 415


class UnsupportedAccept(RequestError):
    status = 406


class PayloadTooLarge(RequestError):
    status = 413
