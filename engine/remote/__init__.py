"""Remote engines: a model another program serves, behind the `Backend` interface."""

from engine.remote.base import REMOTE_KINDS, RemoteBackend, RemoteKind, RemoteSpec, without_credentials
from engine.remote.kobold import KoboldBackend
from engine.remote.openai import OpenAIBackend


def connect(spec: RemoteSpec) -> RemoteBackend:
    """Connect to the engine `spec` describes.

    Raises:
        RemoteConnectError: nothing answered, or not in the API `spec.kind` names.
        RemoteAuthError: the server wants an API key, or a different one.
    """
    if spec.kind == "kobold":
        return KoboldBackend.connect(spec)
    return OpenAIBackend.connect(spec)


__all__ = [
    "REMOTE_KINDS",
    "RemoteBackend",
    "RemoteKind",
    "RemoteSpec",
    "connect",
    "without_credentials",
]
