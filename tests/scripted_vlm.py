"""The scripted OpenAI-compatible server lives in the package (the loop bench uses it too)."""

from inspector.reasoner.scripted_server import ScriptedVLM, answer, completion  # noqa: F401
