"""The VLM that reasons about candidates: none, llama.cpp in process, or an OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from inspector.config.base import _Model
from inspector.config.plugins import PluginConfigs

REASONER_CONFIGS = PluginConfigs("reasoner")


@REASONER_CONFIGS.add("none")
class NoReasonerConfig(_Model):
    type: Literal["none"] = "none"


class SecondLookConfig(_Model):
    """A closer look, as a person would: crop the original frame tighter around a finding and
    ask again at higher resolution when the first answer is small or unsure."""

    max_looks: int = Field(2, ge=1, le=4, description="questions per crop in all; 1 = no second look")
    small_box_ratio: float = Field(
        0.02, ge=0, le=1, description="a finding covering less than this share of the crop is looked at again")
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="a finding less confident than this is looked at again")
    max_per_look: int = Field(2, ge=1, description="findings re-examined per look")
    padding: float = Field(1.0, ge=0, le=4, description="context around the finding, x its size")
    min_side_px: int = Field(48, ge=8, description="smallest region of the frame to show")


class _ReasonerCommon(_Model):
    profile: str = "generic"
    profile_overrides: dict = Field(
        default_factory=dict,
        description="change any profile field (coords, coord_max, patch, min_pixels, max_pixels, "
                    "think_open, think_close, request_extras): `generic` plus this covers a new VLM")
    seed: int = 0
    temperature: float = Field(0.2, ge=0)
    max_tokens: int = Field(1024, ge=16)
    timeout_s: float = Field(60.0, gt=0, description="per call; a slower answer counts as a failure")
    queue_size: int = Field(64, ge=1, description="frames waiting for the VLM before overflow")
    workers: int = Field(1, ge=1, le=64, description="reasoner threads = requests in flight")
    mark_candidate: bool = Field(
        True, description="draw the detector's box on the crop as well as stating it in the prompt")
    second_look: SecondLookConfig = Field(default_factory=SecondLookConfig)
    max_zoom_rounds: int = Field(
        0, ge=0, le=8, description="model-driven zoom: times the model may ask to look closer at a region "
                                   "of the frame while it answers one question (the profile's zoom tool); 0 = off")
    breaker_failures: int = Field(
        3, ge=1, description="consecutive failed calls that open the circuit (stop calling)")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="wait before trying a broken VLM again")
    backlog_max: int = Field(
        5000, ge=0, description="crops kept on disk to reason later when the VLM was down (0 = none)")

    @model_validator(mode="after")
    def _known_profile(self):
        from inspector.reasoner.profiles import get_profile

        get_profile(self.profile, self.profile_overrides)  # unknown names and bad fields fail here
        return self


@REASONER_CONFIGS.add("llama_cpp")
class LlamaCppReasonerConfig(_ReasonerCommon):
    type: Literal["llama_cpp"]
    model: Path | None = Field(None, description="text GGUF; required unless test_model")
    mmproj: Path | None = Field(None, description="vision projector GGUF; required unless test_model")
    test_model: bool = Field(
        False, description="generate and use a tiny random-weight model (its words mean nothing)")
    n_ctx: int = Field(4096, ge=512)
    n_threads: int | None = Field(None, ge=1)
    n_gpu_layers: int = Field(0, ge=-1, description="-1 = all layers on the GPU")
    flash_attn: bool = False
    constrain: Literal["gbnf", "json_schema"] = Field(
        "gbnf", description="gbnf also bounds numbers; json_schema is llama.cpp's schema grammar")

    @model_validator(mode="after")
    def _files(self):
        if not self.test_model and (self.model is None or self.mmproj is None):
            raise ValueError("llama_cpp needs 'model' and 'mmproj' paths (or test_model: true)")
        return self


# How each server is told the answer's shape. llama.cpp's servers take a GBNF `grammar`, which
# also bounds the numbers (see reasoner/grammar.py); llama-cpp-python's server otherwise takes only
# json_object+schema; vLLM, FastDeploy and OpenAI take json_schema.
SERVER_DIALECTS = {
    "llama_cpp_python": "gbnf",
    "llama_server": "gbnf",
    "vllm": "json_schema",
    "fastdeploy": "json_schema",
    "openai": "json_schema",
    "other": "none",
}


@REASONER_CONFIGS.add("openai")
class OpenAIReasonerConfig(_ReasonerCommon):
    """Any OpenAI-compatible /v1/chat/completions server that takes images."""

    type: Literal["openai"]
    base_url: str = Field(..., pattern=r"^https?://", description="e.g. http://gpu-box:8000/v1")
    model: str = Field("", description="model name sent in requests ('' = the server's default)")
    api_key: str | None = Field(None, description="sent as a Bearer token; prefer api_key_env")
    api_key_env: str | None = Field(None, description="name of an environment variable (or systemd credential) holding the key")
    server: Literal[tuple(SERVER_DIALECTS)] = "llama_server"
    response_format: Literal["auto", "gbnf", "json_object_schema", "json_schema", "none"] = Field(
        "auto", description="how the answer's shape is enforced; auto = what `server` understands")
    workers: int = Field(2, ge=1, le=64, description="requests in flight")
    connect_timeout_s: float = Field(5.0, gt=0)
    verify_tls: bool = True
    extra_body: dict = Field(default_factory=dict, description="merged into every request body")

    @property
    def dialect(self) -> str:
        return SERVER_DIALECTS[self.server] if self.response_format == "auto" else self.response_format

    def key(self) -> str | None:
        from inspector.util.secrets_source import secret

        return secret(self.api_key_env, "reasoner.api_key_env") if self.api_key_env else self.api_key


ReasonerConfig = REASONER_CONFIGS.union()
