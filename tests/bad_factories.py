"""Model factories that go wrong in the ways a user's own code can (for the bad-input tables).

Each is named in a config as ``model.factory: bad_factories:NAME``.
"""

import math
import sys

from torch import nn


def raises(input_shape, num_classes):
    raise ValueError("no such layer size")


def exits(input_shape, num_classes):
    sys.exit(0)


class _Linear(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)


class _FailsInTraining(_Linear):
    def forward(self, x):
        if self.training:
            raise RuntimeError("this forward breaks in training mode")
        return self.fc(x.flatten(1))


class _BatchOfTwo(_Linear):
    def forward(self, x):
        return self.fc(x.flatten(1)).reshape(2, -1)


class _NaN(_Linear):
    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


def fails_in_training(input_shape, num_classes):
    return _FailsInTraining(input_shape, num_classes)


def batch_of_two(input_shape, num_classes):
    return _BatchOfTwo(input_shape, num_classes)


def nan_outputs(input_shape, num_classes):
    return _NaN(input_shape, num_classes)
