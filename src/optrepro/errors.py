"""Project error types, so callers can tell a user mistake from a bug in a traceback."""


class OptreproError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class UnknownChoiceError(OptreproError, ValueError):
    """A config names an option that does not exist; the message lists the valid ones."""

    def __init__(self, what: str, got: object, valid: "list[str] | tuple[str, ...]") -> None:
        super().__init__(f"unknown {what} {got!r}; valid choices: {', '.join(sorted(valid))}")


class DatasetUnavailableError(OptreproError, FileNotFoundError):
    """Data is neither cached nor reachable; the message names every place looked and how to get it."""


class ConfigError(OptreproError, ValueError):
    """A composed config asks for something inconsistent; the message says which keys and how to fix them."""


class InvalidConfigError(ConfigError):
    """One config value fails its check; the message is `<key>: <problem>; <fix>`."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}; {fix}")
