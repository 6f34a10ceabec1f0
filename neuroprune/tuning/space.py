"""The ``tune:`` config section: which config values Optuna samples, and what it optimises."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OBJECTIVES = {"val_accuracy": "maximize", "sparsity": "maximize", "wall_seconds": "minimize",
              "params": "minimize", "flops": "minimize", "latency": "minimize"}


class ParamSpec(BaseModel):
    """One sampled config value: ``float`` / ``int`` (``low``, ``high``, ``log``, ``step``) or
    ``categorical`` (``choices``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameters need a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} parameters need 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is above high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("log scale needs low > 0")
        return self

    def sample(self, trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> Any:
        if self.type == "categorical":
            return self.choices[0]
        return int(self.low) if self.type == "int" else self.low


class TuneConfig(BaseModel):
    """What to tune and how."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, ParamSpec] = Field(..., description="config key -> sampling spec")
    objectives: list[str] = Field(["val_accuracy"], description="one (single objective) or "
                                  "more (multi-objective, Pareto front)")
    n_trials: int = Field(8, ge=1, description="trials per `neuroprune tune` call")
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = Field(
        "median", description="stops trials whose validation accuracy per generation lags: "
        "median (below the median of earlier trials at the same generation), hyperband, "
        "successive_halving (Optuna's), or none; single-objective studies only")
    sampler: Literal["tpe", "random", "qmc", "nsga2"] = Field(
        "tpe", description="how values are proposed; with --batch, TPE assumes the worst for "
        "trials still running (constant liar)")
    stale_after: float = Field(120.0, gt=0, description="seconds without a heartbeat after "
                               "which a RUNNING trial is failed")
    retry_failed: int = Field(1, ge=0, description="times a trial of a dead process is re-run")

    @field_validator("params")
    @classmethod
    def _some(cls, v: dict) -> dict:
        if not v:
            raise ValueError("tune.params is empty: name at least one config key to sample, "
                             "e.g. training.lr: {type: float, low: 0.01, high: 0.3, log: true}")
        return v

    @field_validator("objectives")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        if "test_accuracy" in v:
            raise ValueError("test_accuracy cannot be a tuning objective: choosing settings by "
                             "the test split leaves no unbiased test; use val_accuracy")
        bad = [o for o in v if o not in OBJECTIVES]
        if bad or not v:
            raise ValueError(f"unknown objective(s) {bad}; choose from {', '.join(OBJECTIVES)}")
        return v

    def make_pruner(self):
        """Optuna's pruner for ``pruner``; a trial's resource is its search generations."""
        import optuna

        return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2,
                                                              n_warmup_steps=1),
                "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
                "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
                    min_resource=1),
                "none": optuna.pruners.NopPruner}[self.pruner]()

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]
