"""The OpenAI chat feature: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models/{id}``.

Contract: :mod:`.protocol` holds the request and response models (pydantic); the serving
classes (:mod:`.serving_chat`, :mod:`.serving_completion`, :mod:`.serving_common`,
:mod:`.tool_calls`) take protocol models and return protocol models or async iterators of SSE
lines, raising :class:`~vllm_mlx.errors.APIError`; :mod:`.routes` holds the thin routes and
:func:`~.routes.install_openai`, the feature's one install function. Other features extend
chat through a :class:`~.serving_chat.ChatExtension` given when it is built. Nothing here
imports the web layer (:mod:`vllm_mlx.api`).
"""
