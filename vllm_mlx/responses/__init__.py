"""The OpenAI Responses feature: ``/v1/responses`` (create, retrieve, delete, input items).

Contract: :mod:`.protocol` holds the request, item and response models (pydantic, shaped
as the official SDK's types); :mod:`.translate` maps a conversation's items onto the OpenAI
chat feature's request and a chat reply back onto output items, so both APIs run on one
engine, one media policy, one tool-call reader and one reasoning parser; :mod:`.store`
keeps finished responses (``store: true``) in SQLite in the storage folder, bounded in
count and age, so ``previous_response_id`` works across restarts; :mod:`.serving` and
:mod:`.streaming` (no web framework) return protocol models or async iterators of typed SSE
events, raising :class:`~vllm_mlx.errors.APIError`; :mod:`.routes` holds the thin routes
and :func:`~.routes.install_responses`, the feature's one install function. Errors are in
the one OpenAI shape. Nothing here imports the web layer (:mod:`vllm_mlx.api`).
"""
