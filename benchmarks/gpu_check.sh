#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H100/H200: the CUDA tests, population throughput of
# LeNet-300-100 at P=256 and 1024 (TF32), ResNet-20 at P=16 in fp32 and bf16, the generation
# benchmark at P=1024, and two Ray actors sharing one GPU (fractional GPUs); one table at the end.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, on the GPU machine
#
# A machine without the project's Python dependencies takes them from wheels in ./.whl when that
# folder exists (downloaded beforehand for its Python, e.g. optuna and deap):
#     pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --platform manylinux2014_x86_64 -d .whl optuna deap ...
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
log=$(mktemp -d)
rows=()
step() {  # step NAME TIMEOUT CMD...: run, keep its log, note the last line and the status
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$log/$name.txt" 2>&1
    local rc=$?
    local last; last=$(grep -v '^\s*$' "$log/$name.txt" | tail -n 1 | cut -c1-90)
    rows+=("$(printf '%-22s %-4s %5ss  %s' "$name" "$([ $rc = 0 ] && echo ok || echo "rc=$rc")" \
        "$((SECONDS - t0))" "$last")")
    echo "== $name (rc=$rc)"; tail -n 6 "$log/$name.txt"
}
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
step cuda_tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
for p in 256 1024; do
    step "lenet300_tf32_P$p" 90 python3 benchmarks/population_eval.py --arch lenet_300_100 \
        --population "$p" --one-by-one 4 --repeats 2 --device cuda --precision tf32
done
for prec in fp32 bf16; do
    step "resnet20_${prec}_P16" 90 python3 benchmarks/population_eval.py --arch resnet20 \
        --dataset images --population 16 --one-by-one 2 --repeats 2 --device cuda \
        --precision "$prec"
done
step generation_P1024 90 python3 benchmarks/generation.py --population 1024 --repeats 2 \
    --device cuda
step ray_two_actors_1gpu 120 python3 - <<'PY'
import time
import ray
import torch
from neuroprune.backends.ray_actors import RayEvaluator
from neuroprune.data import load_dataset
from neuroprune.engine import EvalTask, TrainSettings, init_state
from neuroprune.masks import make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names

ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
data = load_dataset("digits")
spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=(300, 100))
model = build_model(spec)
shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.9, "erk")
g = torch.Generator().manual_seed(0)
bits = torch.stack([random_bits(layout, g) for _ in range(256)])
task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=2)
ev = RayEvaluator(spec, data, TrainSettings(lr=0.05, batch_size=64), layout=layout,
                  num_workers=2, gpus_per_worker=0.5)
where = ev.placement()
t = time.perf_counter()
res = ev.evaluate(task)
print(f"{len(where)} actors on {sorted({w['device'] for w in where})}: P=256 in "
      f"{time.perf_counter() - t:.1f}s, mean val acc {res.metrics['val_accuracy'].mean():.3f}")
ev.close()
PY
echo
printf '%-22s %-4s %6s  %s\n' check status time "last line"
printf '%s\n' "${rows[@]}"
