"""One exception family, so tasks can turn any failure into one clear line."""


class OpsError(Exception):
    """Base of every error the toolkit reports to a user."""


class SettingsError(OpsError):
    """The app description is invalid; raised before anything is written."""

    def __init__(self, key, value, allowed, message=None):
        self.key, self.value, self.allowed = key, value, allowed
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        name = f"deploy.{key}" if key else "deploy"
        super().__init__(message or f"{name}: got {shown}; expected {allowed}")

    @classmethod
    def missing(cls, key, allowed):
        return cls(key, None, allowed, f"deploy.{key} is required: {allowed}")


class CheckError(OpsError):
    """A server's own checker refused a rendered config."""

    def __init__(self, checker, output):
        self.checker, self.output = checker, output
        super().__init__(f"{checker} rejected the config:\n{output.strip()}")


class RemoteError(OpsError):
    """A command on the target host failed."""


class Unreachable(RemoteError):
    """The host could not be reached or logged into (network, DNS, SSH, authentication)."""


class DeployError(OpsError):
    """A deploy step failed; the host was restored to the previous release."""

    def __init__(self, step, reason):
        self.step, self.reason = step, reason
        super().__init__(f"step '{step}' failed: {reason}")


class LockError(OpsError):
    """Another deploy holds (or left) the host's deploy lock."""


class SmokeError(OpsError):
    """One or more smoke checks failed."""
