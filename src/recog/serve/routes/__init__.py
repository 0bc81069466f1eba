"""The API's routes, one `APIRouter` per concern; `recog.serve.app` includes them in this order.

- `page`: the web page, its static files and `/healthz` (never behind the API key)
- `prometheus`: `/metrics`
- `models`: `/v1/models` and what each served model reports about itself
- `predict`: `/v1/predict`
- `explain`: `/v1/explain` (heat maps and their faithfulness)
- `history`: `/v1/feedback` and `/v1/history`

A route reaches the app's models, store and settings through the
`ServingDep` parameter (`recog.serve.state`); the API key is added when a
router is included, so no route decides for itself whether it is protected.
"""
