"""Language models: the ``LLMProvider`` base with chat messages and tool calls, and one
module per vendor (plus ``extractive``, the offline answerer that needs no model)."""
