"""The SDK's version, read by pyproject.toml; kept in step with the Rust workspace's."""

__version__ = "0.1.0"
