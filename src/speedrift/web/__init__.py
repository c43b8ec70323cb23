"""The operator dashboard: Starlette app, JSON API, websocket deltas and the static page."""
