"""The Gradio user interface: the only package that imports gradio.

`ui.page.build` makes the whole page; each tab is a subpackage (`chat`, `story` with
Adventure beside it, `models`) whose `__init__` is its entry point. `shared`, `errors`
and `sampler_panel` serve every tab. Each section has a `layout` that returns its typed
widgets, then a `wire` that connects their events.
"""
