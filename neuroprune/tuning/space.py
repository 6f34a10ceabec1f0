"""The ``tune:`` config section: which config values Optuna samples, and what it optimises."""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OBJECTIVES = {"val_accuracy": "maximize", "sparsity": "maximize", "wall_seconds": "minimize",
              "params": "minimize", "flops": "minimize", "latency": "minimize",
              "epsilon": "minimize",  # private_training: the privacy spent
              "reward": "maximize",  # neuroevolution: NEAT's final evaluation reward
              # rbm_connectivity: AIS log-likelihood and reconstruction error, validation split
              "val_log_likelihood": "maximize", "val_reconstruction_error": "minimize"}


class ParamSpec(BaseModel):
    """One sampled config value: ``float`` / ``int`` (``low``, ``high``, ``log``, ``step``) or
    ``categorical`` (``choices``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, allow_inf_nan=False)
    high: float | None = Field(None, allow_inf_nan=False)
    log: bool = False
    step: float | None = Field(None, gt=0, allow_inf_nan=False)
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
            if self.log and self.step is not None:
                raise ValueError("step cannot be combined with log scale (Optuna samples one "
                                 "or the other)")
            if self.type == "int" and not all(float(v).is_integer() for v in
                                              (self.low, self.high, self.step or 1)):
                raise ValueError(f"int parameters need whole low, high and step, got low "
                                 f"{self.low}, high {self.high}, step {self.step}")
        return self

    def corners(self) -> list[Any]:
        """The extreme values this parameter can take (every choice of a categorical)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(dict.fromkeys((int(self.low), int(self.high))))
        return list(dict.fromkeys((self.low, self.high)))

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
    trial_plots: Literal["auto", "always", "never"] = Field(
        "auto", description="draw a trial's fitness plot for the dashboard: always, never, or "
        "auto (when the trial ran 2 s or more: the plot takes about 0.1 s, more than the rest "
        "of what tune adds to a trial; its validation curve is in the dashboard either way)")
    trial_latency: bool = Field(False, description="time each trial's dense and compact "
                                "networks (sparsity.latency_repeats rounds): most of a small "
                                "trial's time, and noisy where trials run side by side; on "
                                "whenever latency is an objective")

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
        twice = sorted({o for o in v if v.count(o) > 1})
        if twice:
            raise ValueError(f"lists the objective(s) {', '.join(twice)} twice; name each once")
        test = [o for o in v if o.startswith("test_")]
        if test:
            val = [o.replace("test_", "val_", 1) for o in test]
            raise ValueError(f"{', '.join(test)} cannot be a tuning objective: choosing "
                             f"settings by the test split leaves no unbiased test; use "
                             f"{', '.join(val)}")
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

    def points(self, most: int = 64) -> Iterator[dict[str, Any]]:
        """Values to check before a study starts: every parameter's extremes alone, then
        every combination of all parameters' extremes (the corners of the space, where two
        ranges that are each fine can meet in a config that is not: population 3 with elite
        7), up to ``most`` of them."""
        for key, spec in self.params.items():
            for value in spec.corners():
                yield {key: value}
        keys = list(self.params)
        for combo in itertools.islice(itertools.product(
                *(self.params[k].corners() for k in keys)), most):
            yield dict(zip(keys, combo))

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]
