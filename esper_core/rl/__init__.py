"""The factored, masked action space and the toolkit a policy builds on: the action space (``actions``),
legal-action masks (``masks``), ``MaskedCategorical`` (``distributions``), head-by-head sampling
(``sampling``), GAE and per-head advantages (``advantages``), the rollout buffer (``rollout``) and the
observation encoder (``observation``). Built-in and third-party policies import from here."""
