"""One YAML file, validated by pydantic. Every setting has a default that runs the bundled demo line.

Unknown keys are refused (a typo must not silently fall back to a default), and every error names
the file and the dotted key. One module per section; `load_config` reads the whole.
"""

from inspector.config.base import MODELS_DIR, ConfigError
from inspector.config.cameras import BufferConfig, CameraConfig, TriggerConfig
from inspector.config.cropper import CropperConfig
from inspector.config.detector import (DETECTOR_CONFIGS, AnomalyMapDetectorConfig, AnyDetectorConfig,
                                       DetectorConfig, YoloDetectorConfig)
from inspector.config.events import (SINK_CONFIGS, EventsConfig, EventSinkConfig, MqttSinkConfig,
                                     WebhookSinkConfig)
from inspector.config.judge import JudgeConfig, VerdictKindName
from inspector.config.limits import LimitsConfig
from inspector.config.loading import defaults_yaml, load_config, parse_config
from inspector.config.products import DEFAULT_TAXONOMY, ProductConfig
from inspector.config.reasoner import (REASONER_CONFIGS, SERVER_DIALECTS, LlamaCppReasonerConfig,
                                       NoReasonerConfig, OpenAIReasonerConfig, ReasonerConfig,
                                       SecondLookConfig)
from inspector.config.root import Config
from inspector.config.sources import (SOURCE_CONFIGS, DemoSourceConfig, FolderSourceConfig,
                                      GStreamerSourceConfig, MjpegSourceConfig, ReconnectConfig,
                                      RtspSourceConfig, SourceConfig, UsbSourceConfig, VideoSourceConfig)
from inspector.config.store import RetentionConfig, StoreConfig
from inspector.config.web import ShiftConfig, WebConfig

__all__ = [
    "MODELS_DIR", "ConfigError", "BufferConfig", "CameraConfig", "TriggerConfig", "CropperConfig",
    "DETECTOR_CONFIGS", "AnomalyMapDetectorConfig", "AnyDetectorConfig", "DetectorConfig",
    "YoloDetectorConfig", "SINK_CONFIGS", "EventsConfig", "EventSinkConfig", "MqttSinkConfig",
    "WebhookSinkConfig", "JudgeConfig", "VerdictKindName", "LimitsConfig", "defaults_yaml",
    "load_config", "parse_config", "DEFAULT_TAXONOMY", "ProductConfig", "REASONER_CONFIGS",
    "SERVER_DIALECTS", "LlamaCppReasonerConfig", "NoReasonerConfig", "OpenAIReasonerConfig",
    "ReasonerConfig", "SecondLookConfig", "Config", "SOURCE_CONFIGS", "DemoSourceConfig",
    "FolderSourceConfig", "GStreamerSourceConfig", "MjpegSourceConfig", "ReconnectConfig",
    "RtspSourceConfig", "SourceConfig", "UsbSourceConfig", "VideoSourceConfig", "RetentionConfig",
    "StoreConfig", "ShiftConfig", "WebConfig",
]
