"""The ``data:`` config section."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, ConfigDict, Field, WithJsonSchema, field_validator,
                      model_validator)

from ..section import Section, registered_list
from .registry import AUGMENTATIONS, DATASETS


def _dataset(name: str) -> str:
    """A registered name, or ``"package.module:function"`` returning torch Datasets."""
    return name if ":" in name else DATASETS.check(name)


class LoaderConfig(Section):
    """How a folder's or a function's Datasets are read (each item once per run)."""

    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    pin_memory: bool = Field(False, description="DataLoader pin_memory (faster copies to a GPU)")
    batch_size: int = Field(256, ge=1, description="items per read batch")
    max_bytes: int = Field(4 << 30, ge=1, description="the most float32 input bytes the "
                           "splits may hold in memory")
    cache: Literal["auto", "memory", "disk"] = Field(
        "auto", description="where the read inputs are kept: memory (refused past max_bytes), "
        "disk (a float32 file in cache_dir, mapped into memory: each training batch is read "
        "from it as it is needed, so data larger than memory runs), auto (memory up to "
        "max_bytes, then disk)")
    cache_dir: str | None = Field(None, description="cache: disk: the folder of the mapped "
                                  "file (one per run, removed when the run's process ends); "
                                  "default data/ in $NEUROPRUNE_CACHE_DIR or "
                                  "~/.cache/neuroprune. With the Ray backend on several "
                                  "machines it must be on a filesystem every node sees")


class DataConfig(Section):
    """Which dataset, where its files are, how it is split and augmented. A dataset's own
    options (``samples`` for ``blobs``, ``protocol`` for the MNIST family) sit beside
    ``dataset``, checked against its loader's signature (:mod:`neuroprune.data.options`)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    dataset: Annotated[str, AfterValidator(_dataset), WithJsonSchema(
        {"type": "string", "anyOf": [{"enum": DATASETS.names()},
                                     {"pattern": "^[A-Za-z_][\\w.]*:[A-Za-z_][\\w.]*$"}],
         "description": "dataset name (see `neuroprune datasets`), or "
         "'package.module:function' returning (train, val[, test]) torch Datasets"})] = Field(
        "digits", description="dataset name (see `neuroprune datasets`), or 'package.module:"
        "function' returning (train, val[, test]) torch Datasets")
    loader: LoaderConfig = Field(default_factory=LoaderConfig, description="folder and "
                                 "function datasets: how they are read")
    task: Literal["classification", "multilabel"] = Field(
        "classification", description="multilabel: several labels per sample (datasets "
        "multilabel, digits_attributes, yeast), sigmoid outputs and training.loss bce; metrics: "
        "subset accuracy, Hamming loss, micro-F1")
    root: str | None = Field(None, description="folder with the dataset's files (MNIST family: "
                             "IDX or .npz; CIFAR: the python-pickle batches; folder: class "
                             "subfolders of images)")
    download: bool = Field(False, description="download missing files through torchvision "
                           "(needs neuroprune[vision] and internet)")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="bundled, CSV and generated "
                                "sets: validation share")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="bundled, CSV and generated "
                                 "sets: test share")
    split_seed: int = Field(0, ge=0, description="fixes the split of bundled, CSV and "
                            "generated sets (and the generated data itself)")
    pad: int = Field(0, ge=0, le=64, description="pixels of background added around every "
                     "image (2 turns the MNIST family's 28x28 into the 32x32 of LeNet-5's paper "
                     "and of CIFAR models)")
    standardise: bool = Field(True, description="scale inputs with the training split's "
                              "mean and std (recorded, and applied by every export); false: "
                              "inputs as they are, for a trained model (model.weights) that "
                              "expects them so")
    augment: registered_list(AUGMENTATIONS) = Field(
        [], description="on-device augmentation of training batches, seeded: crop "
        "(random crop with 4 pixels of padding), flip (horizontal)")

    @field_validator("augment")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"lists an augmentation twice: {v}")
        return v

    @model_validator(mode="after")
    def _own_options(self) -> "DataConfig":
        extra = self.__pydantic_extra__
        if extra and ":" not in self.dataset:  # a function's Datasets: it reads its own
            from .options import validate
            checked = validate(self.dataset, DATASETS.load(self.dataset), dict(extra))
            extra.clear()
            extra.update(checked)
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The dataset's own options given beside ``dataset`` (validated)."""
        return dict(self.__pydantic_extra__ or {})

    def resolved(self) -> dict[str, Any]:
        """The section as ``config.yaml`` writes it: the dataset's options with their
        defaults filled in."""
        tree = self.model_dump(mode="json")
        if ":" in self.dataset:
            return tree
        from ..section import option_defaults
        return {**tree, **{k: v for k, v in option_defaults(DATASETS.load(self.dataset)).items()
                           if k not in tree}}
