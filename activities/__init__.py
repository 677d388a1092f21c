"""What the workflow's decisions do in the world: model calls (OpenAI, Anthropic, offline), pylint, knowledge-base
queries; each a Temporal activity the worker runs."""
