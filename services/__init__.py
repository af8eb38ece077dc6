"""The application layer: what each tab does, as plain functions of typed values.

No gradio here, and nothing from `ui`: the UI, `app.py`, the API, the benchmarks and the
tests all call it the same way.
"""
