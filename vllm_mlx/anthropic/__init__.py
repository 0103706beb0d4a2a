"""The Anthropic Messages feature: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Contract: :mod:`.protocol` holds the request and response models (pydantic) and the error
shape; :mod:`.translate` maps a request onto the OpenAI chat feature's request, so both
APIs run on one engine, one media policy and one tool-call reader; :mod:`.serving` and
:mod:`.streaming` (no web framework) return protocol models or async iterators of SSE
events, raising :class:`~vllm_mlx.errors.APIError`; :mod:`.routes` holds the thin routes,
which answer errors in Anthropic's shape, and :func:`~.routes.install_anthropic`, the
feature's one install function. Nothing here imports the web layer (:mod:`vllm_mlx.api`).
"""
