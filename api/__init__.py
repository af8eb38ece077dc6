"""An OpenAI-compatible API for the loaded model: /v1/models, /v1/completions and
/v1/chat/completions, sharing the UI's queue of runs. No UI code here: `app.py`
hands it an `ApiDeps` and mounts or serves it."""
