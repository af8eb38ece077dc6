"""An OpenAI-compatible API for the loaded model: /v1/models, /v1/completions and
/v1/chat/completions, sharing the UI's queue of runs. No UI code here: `app.py`
hands it an `ApiDeps` and mounts or serves it."""

from api.deps import ApiDeps, ApiSettings
from api.errors import ApiError, ApiServerError, BadRequestError, ForbiddenHostError, UnauthorizedError
from api.server import RunningServer, create_api_app, is_loopback, root_app, serve, serve_in_thread

__all__ = [
    "ApiDeps",
    "ApiError",
    "ApiServerError",
    "ApiSettings",
    "BadRequestError",
    "ForbiddenHostError",
    "RunningServer",
    "UnauthorizedError",
    "create_api_app",
    "is_loopback",
    "root_app",
    "serve",
    "serve_in_thread",
]
