"""Bodies and replies of the HTTP API (pydantic models: they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_LABEL = 200
MAX_NOTE = 10_000


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank")
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionStart(Body):
    label: str | None = Field(None, max_length=MAX_LABEL, description="part of the folder name")
    folder: str | None = Field(
        None,
        max_length=MAX_LABEL,
        description="a sub-folder of the data folder to create the session in (default: the "
        "data folder itself)",
    )


class TrialStart(Body):
    label: str | None = Field(None, max_length=MAX_LABEL)


class NoteIn(Body):
    text: str = Field(..., min_length=1, max_length=MAX_NOTE)

    _check = field_validator("text")(_not_blank)


class SettingsIn(Body):
    values: dict[str, str | int | float | bool | None] = Field(
        ..., description="setting name -> new value (checked against the module's schema)"
    )


class CommandIn(Body):
    args: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="the command's arguments (the module checks them)"
    )


class CommandReply(BaseModel):
    module: str
    command: str
    result: dict[str, Any]


class Message(BaseModel):
    detail: str


class LoopLag(BaseModel):
    p50: float
    p99: float
    max: float
    samples: int


class DeviceRate(BaseModel):
    id: str
    rate: float | None = None


class ModuleState(BaseModel):
    name: str
    status: str = Field(..., description="ok | failed | stopped")
    error: str | None = None
    state: str | None = None
    simulated: bool
    devices: list[dict[str, Any]]
    rates: list[DeviceRate]
    drops: dict[str, int]
    loop_lag_ms: LoopLag | None = None
    levels: Any = None
    summary: list[str] = Field(default_factory=list, description="the module's own lines")
    restarts: int


class SessionInfo(BaseModel):
    id: str
    label: str | None = None
    simulated: bool
    trials: int
    started_mono_ns: int


class TrialInfo(BaseModel):
    number: int
    label: str | None = None
    start_mono_ns: int
    elapsed_s: float


class LogLine(BaseModel):
    level: str
    logger: str
    message: str
    time: float


class Status(BaseModel):
    session: SessionInfo | None = None
    trial: TrialInfo | None = None
    now_mono_ns: int
    halted: str | None = None
    simulate: bool
    modules: list[ModuleState]
    loop_lag_ms: LoopLag
    cpu_percent: float
    master_cpu_percent: float
    memory_percent: float
    master_rss_mb: float
    temperature_c: float | None = None
    disk_free_mb: float | None = None
    min_free_mb: float
    data_rate_mb_s: float | None = None
    time_left_s: float | None = None
    warnings: list[LogLine]


class ModuleInfo(BaseModel):
    name: str
    valid: bool
    reason: str | None = None
    builtin: bool
    enabled: bool
    status: str
    error: str | None = None
    simulated: bool


class SettingInfo(BaseModel):
    name: str
    type: str
    default: Any = None
    help: str
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = None
    optional: bool
    value: Any = None


class ModuleSettings(BaseModel):
    module: str
    settings: list[SettingInfo]


class SettingsWritten(BaseModel):
    module: str
    written: dict[str, Any]


class SessionReply(BaseModel):
    id: str
    directory: str
    label: str | None = None
    simulated: bool
    state: str


class TrialReply(BaseModel):
    model_config = ConfigDict(extra="allow")
    number: int
    label: str | None = None
    status: str


class Note(BaseModel):
    model_config = ConfigDict(extra="allow")
    note_index: int
    t_mono_ns: int
    wall_iso: str
    trial: int | None = None
    elapsed_s: float
    text: str
    modules: str


class Notes(BaseModel):
    notes: list[Note]


class Preview(BaseModel):
    module: str
    device: str
    width: int | None = None
    height: int | None = None
    t_mono_ns: int | None = None
    url: str


class PastSession(BaseModel):
    id: str
    folder: str
    label: str | None = None
    started: str | None = None
    trials: int
    size_bytes: int
    simulated: bool
    ended: bool


class SessionFile(BaseModel):
    path: str
    size_bytes: int
    url: str


class SessionDetail(PastSession):
    files: list[SessionFile]


class VerifyReply(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool
