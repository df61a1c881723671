"""One root for every error the project raises on purpose.

Callers (the CLI above all) catch ``EunomiaError`` and print its message as one
line; anything else that escapes is a bug and keeps its traceback.
"""


class EunomiaError(Exception):
    """Base of all expected, user-facing errors."""


class ConfigError(EunomiaError):
    """Configuration is missing or invalid."""


class BrokerUnavailable(EunomiaError):
    """No Kafka broker answered at the configured bootstrap servers."""


class LocalKafkaError(EunomiaError):
    """The project-managed local Kafka could not be fetched, started or stopped."""


class AccessDenied(EunomiaError):
    """The broker refused a request of the configured principal (Kafka ACLs)."""
