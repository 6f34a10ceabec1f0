"""Layer 3: masks as named boolean tensors, sparsity allocation, apply/remove, file I/O."""

from .allocation import (ALLOCATIONS, Layout, bits_to_mask, check_bits, erk_densities, flatten,
                         flatten_rows, kept_count, make_layout, random_bits, top_bits,
                         top_rows, unflatten)
from .compact import compact, rebuild_compact
from .groups import STRUCTURES
from .io import apply_mask, load_mask, load_weights, read_mask_file, save_mask
from .mask import Mask
from .structure import BUDGETS, StructureSpace, structure_space

__all__ = ["ALLOCATIONS", "BUDGETS", "STRUCTURES", "Layout", "Mask", "StructureSpace",
           "apply_mask", "bits_to_mask", "check_bits", "compact", "erk_densities", "flatten",
           "flatten_rows", "kept_count", "load_mask", "load_weights", "make_layout",
           "random_bits", "read_mask_file", "rebuild_compact", "save_mask", "structure_space",
           "top_bits", "top_rows", "unflatten"]
