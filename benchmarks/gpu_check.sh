#!/usr/bin/env bash
# The one-shot real-GPU check of refmetrics' CUDA backend (issue 11): environment, install, the backend
# suite on the device, the 50-million-pixel benchmark, and CPU/CUDA bit-identity for every metric.
#
# Usage (from the repository root; the output folder is $1, else $OUT, else benchmarks/results/gpu-check-<date>):
#
#   bash benchmarks/gpu_check.sh [OUTDIR]                          # on the GPU machine: ~4-5 min, never hangs
#   NUMBA_ENABLE_CUDASIM=1 GPU_CHECK_SMALL=1 GPU_CHECK_INSTALL=0 \
#     PYTHON=/path/to/venv/python bash benchmarks/gpu_check.sh /tmp/gpucheck   # rehearsal under the simulator
#
# Steps (each under its own `timeout`; a failing step is recorded and the next one still runs):
#   0 env       nvidia-smi, versions (python, numpy, numba, numba-cuda, NVVM, driver, torch, torchmetrics,
#               anomalib, cupy, kornia), NumPy's SIMD line, the CPU. Carried wheels first: .whl/*.whl are
#               installed into /tmp/site (PYTHONPATH); .whl/numba-cuda/*.whl (numba-cuda 0.30.4, what the
#               kernels were compiled and simulated with) into python3's own environment (its .pth file
#               redirects numba.cuda), only when the image's numba-cuda is missing,
#               fails to import or is older than 0.30, or with GPU_CHECK_NUMBA_CUDA=carried.
#   1 install   pip install --no-deps --no-build-isolation -e . (else PYTHONPATH=$PWD; recorded)
#   2 tests     tests/test_backends.py and tests/test_cuda_toolchain.py on the device: NUMBA_ENABLE_CUDASIM
#               unset, REFMETRICS_REQUIRE_CUDA=1, real launch shapes, pytest -n with pytest-xdist when
#               importable (the JIT of ~370 kernel signatures is the main cost), --maxfail, junit XML
#   4 identity  benchmarks/gpu_identity.py: every metric of the registry, CPU vs CUDA, bit for bit
#               (runs at the same time as step 2: both are correctness checks; the timings come from step 3)
#   3 bench     benchmarks/bench_cuda.py at 190 maps of 512x512 (49.8 M pixels), alone on the device
#   5 engine    benchmarks/bench_engine.py on the host's CPU with 2 threads (issue 16: the ratios to one np.sort
#               where NumPy has its AVX-512 sort), its output in bench.log and its JSON in gpu_check.json
#
# Output files (at most 8, flat, as the device tool brings back): gpu_check.json (the record: date, device,
# driver, versions, host, steps with rc and seconds, tests, bench, identity), env.log, tests.log,
# tests.xml (junit), bench.log, bench.json, identity.log, identity.json.
#
# Knobs: GPU_CHECK_SMALL=1 (tiny sizes, a -k subset of the tests: the simulator rehearsal), GPU_CHECK_INSTALL=0
# (no pip install: PYTHONPATH=$PWD), GPU_CHECK_WORKERS (pytest -n; default: cores - 2, at most 14),
# GPU_CHECK_T_<STEP> (seconds: T_ENV, T_INSTALL, T_TESTS, T_BENCH, T_IDENTITY, T_ENGINE), GPU_CHECK_DEADLINE (seconds for
# the whole run, default 480 on the GPU: the tests', the bench's and the engine's limits shrink to end by then, so that a
# device command's timeout_s of 520 never cuts the record), PYTHON (default python3).

set -u
START=$(date +%s)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
OUTDIR=${1:-${OUT:-benchmarks/results/gpu-check-$(date -u +%Y%m%d-%H%M%S)}}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
PY=${PYTHON:-python3}
SMALL=${GPU_CHECK_SMALL:-0}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ "$SMALL" = 1 ]; then
    T_ENV=${GPU_CHECK_T_ENV:-120}; T_INSTALL=${GPU_CHECK_T_INSTALL:-120}; T_TESTS=${GPU_CHECK_T_TESTS:-900}
    T_BENCH=${GPU_CHECK_T_BENCH:-600}; T_IDENTITY=${GPU_CHECK_T_IDENTITY:-900}
else  # the GPU run: about 4 minutes, at most GPU_CHECK_DEADLINE seconds (the steps' limits shrink to fit)
    unset NUMBA_ENABLE_CUDASIM
    T_ENV=${GPU_CHECK_T_ENV:-40}; T_INSTALL=${GPU_CHECK_T_INSTALL:-30}; T_TESTS=${GPU_CHECK_T_TESTS:-150}
    T_BENCH=${GPU_CHECK_T_BENCH:-110}; T_IDENTITY=${GPU_CHECK_T_IDENTITY:-150}
fi
DEADLINE=${GPU_CHECK_DEADLINE:-$([ "$SMALL" = 1 ] && echo 3600 || echo 480)}  # seconds for the whole run
limit() {  # limit WANTED RESERVE: WANTED, or less so that RESERVE seconds are left before the deadline
    local left=$((DEADLINE - ($(date +%s) - START) - $2))
    [ "$left" -lt 20 ] && left=20
    echo $(($1 < left ? $1 : left))
}
export REFMETRICS_REQUIRE_CUDA=1
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda/nvvm ]; then  # where numba-cuda also looks for NVVM
    export CUDA_HOME=/usr/local/cuda
fi
WORK=$(mktemp -d)  # the step list and the environment's JSON, outside OUTDIR (whose files all come back)
STEPS="$WORK/steps"  # "name rc milliseconds" or "note text", one line each (folded into gpu_check.json)
: >"$STEPS"

step() {  # step NAME TIMEOUT LOG CMD...: run under timeout, append to LOG, record rc and seconds
    local name=$1 limit=$2 log=$3 t0 rc
    shift 3
    t0=$(date +%s%N)
    echo "=== step $name (timeout ${limit}s): $*" | tee -a "$log"
    timeout -k 10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    [ $rc -eq 124 ] && echo "=== step $name: TIMED OUT after ${limit}s" | tee -a "$log"
    echo "$name $rc $((($(date +%s%N) - t0) / 1000000))" >>"$STEPS"
    echo "=== step $name: rc $rc" | tee -a "$log"
    return $rc
}

note() { echo "note $*" >>"$STEPS"; }

# --- step 0: environment (carried wheels first) ---------------------------------------------------------
ENVLOG="$OUTDIR/env.log"
: >"$ENVLOG"
T0=$(date +%s%N)
{
    echo "date $DATE; host $(hostname); cwd $PWD; python $PY; small $SMALL; simulator ${NUMBA_ENABLE_CUDASIM:-unset}"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv 2>&1 || echo "nvidia-smi failed"
} >>"$ENVLOG" 2>&1
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    if timeout -k 5 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >>"$ENVLOG" 2>&1; then
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
        note "wheels installed into /tmp/site: $(cd .whl && printf '%s ' ./*.whl)"
    else
        note "wheels: pip install --target /tmp/site FAILED (see env.log)"
    fi
    NC=$(timeout 60 "$PY" -c "import numba_cuda; print(numba_cuda.__version__)" 2>>"$ENVLOG" | tail -1)
    echo "numba-cuda of the image: ${NC:-not importable}" >>"$ENVLOG"
    if ls .whl/numba-cuda/*.whl >/dev/null 2>&1 && { [ "${GPU_CHECK_NUMBA_CUDA:-auto}" = carried ] ||
        ! "$PY" -c "import sys; v=tuple(int(x) for x in sys.argv[1].split('.')[:2]); sys.exit(v < (0, 30))" \
            "${NC:-0.0}" 2>/dev/null; }; then
        # into the interpreter's own environment (the machine is thrown away after the run): numba-cuda
        # redirects numba.cuda through a .pth file, which a --target folder on PYTHONPATH would not run
        if timeout -k 5 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --force-reinstall .whl/numba-cuda/*.whl >>"$ENVLOG" 2>&1; then
            note "numba-cuda: the carried wheel replaces the image's (${NC:-not importable})"
        else
            note "numba-cuda: installing the carried wheel FAILED (see env.log)"
        fi
    else
        note "numba-cuda: the image's ${NC:-not importable}"
    fi
else
    note "no .whl folder: no wheels installed (anomalib's rows need anomalib and kornia)"
fi
ENVPY='
import json, os, platform, sys
sys.path.insert(0, "benchmarks")
out = {"python": sys.version.split()[0], "executable": sys.executable, "CUDA_HOME": os.environ.get("CUDA_HOME"),
       "PYTHONPATH": os.environ.get("PYTHONPATH")}
for name in ("numpy", "numba", "numba_cuda", "torch", "torchmetrics", "anomalib", "cupy", "kornia", "scipy",
             "skimage", "pytest", "hypothesis", "xdist"):
    try:
        module = __import__(name)
        out[name] = getattr(module, "__version__", "?")
        if name in ("anomalib", "numba_cuda", "kornia"):
            out[name + "_path"] = os.path.dirname(module.__file__)
    except Exception as exc:
        out[name] = "not importable: %s: %s" % (type(exc).__name__, str(exc)[:200])
try:
    from _machine import machine_info, machine_line
    out["host"] = machine_info(); out["host_line"] = machine_line()
except Exception as exc:
    out["host"] = "error: %r" % exc
try:
    import torch
    out["torch_cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name(0)
    out["torch_cuda_version"] = torch.version.cuda
except Exception as exc:
    out["torch_cuda"] = "error: %r" % exc
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm
        dev = cuda.get_current_device()
        out["numba_device"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        out["compute_capability"] = list(dev.compute_capability)
        out["cuda_driver_version"] = list(cuda.cudadrv.driver.driver.get_version())
        out["nvvm_version"] = list(nvvm.NVVM().get_version())
    except Exception as exc:
        out["numba_device"] = "error: %s: %s" % (type(exc).__name__, str(exc)[:300])
try:
    import refmetrics
    from refmetrics._arrays import cuda_unavailable_reason
    out["refmetrics_file"] = refmetrics.__file__
    out["cuda_available"] = bool(refmetrics.cuda_available())
    out["cuda_unavailable_reason"] = cuda_unavailable_reason()
except Exception as exc:
    out["refmetrics_file"] = "error: %r" % exc
print(json.dumps(out, indent=1, default=str))
'
echo "0_env 0 $((($(date +%s%N) - T0) / 1000000))" >>"$STEPS"  # the versions are read after step 1

# --- step 1: install -------------------------------------------------------------------------------------
if [ "${GPU_CHECK_INSTALL:-1}" = 1 ]; then
    if step 1_install "$T_INSTALL" "$ENVLOG" "$PY" -m pip install -q --no-deps --no-build-isolation -e .; then
        note "install: pip install -e . (editable)"
    else
        note "install: pip install -e . FAILED: PYTHONPATH=$PWD"
    fi
else
    echo "1_install 0 0" >>"$STEPS"
    note "install: skipped (GPU_CHECK_INSTALL=0): PYTHONPATH=$PWD"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # harmless after an editable install; needed without one
T0=$(date +%s%N)
timeout -k 5 "$T_ENV" "$PY" -c "$ENVPY" >"$WORK/env.json" 2>>"$ENVLOG"
echo "0_versions $? $((($(date +%s%N) - T0) / 1000000))" >>"$STEPS"
cat "$WORK/env.json" >>"$ENVLOG" 2>/dev/null

# --- steps 2 (tests) and 4 (identity) side by side, then 3 (bench) alone ---------------------------------
WORKERS=${GPU_CHECK_WORKERS:-$(($(nproc) > 4 ? ($(nproc) - 2 > 14 ? 14 : $(nproc) - 2) : 1))}
XDIST=()
if "$PY" -c "import xdist" 2>/dev/null && [ "$WORKERS" -gt 1 ]; then
    XDIST=(-n "$WORKERS")
    note "tests: pytest-xdist, $WORKERS workers"
else
    note "tests: one process (no pytest-xdist)"
fi
# the suites that need a CUDA device: the backends, the toolchain, CuPy's intake, the torchmetrics classes
# on CUDA tensors (each of the last two skips itself where its package is missing)
TESTS=(tests/test_backends.py tests/test_cuda_toolchain.py
       tests/test_intake.py::test_cupy_arrays_go_through_the_cuda_intake
       tests/test_integrations_torchmetrics.py::test_cuda_tensors_stay_on_the_device_and_give_the_cpu_values)
KEXPR=()
if [ "$SMALL" = 1 ]; then  # the rehearsal: a few tests of each kind
    KEXPR=(-k "test_the_cuda_backends_run_wherever_they_can or test_numba_cuda_warnings_are_errors or (test_ranking_scalars and auroc and float32) or (test_region_metrics and float32 and cuda) or test_every_kernel_uses_the_keyed_cache")
    TESTS=(tests/test_backends.py tests/test_cuda_toolchain.py)
fi
RESERVE=$((T_BENCH < 90 ? T_BENCH + 15 : 105))  # the bench keeps at least 90 s (its rows are saved one by one)
T_TESTS=$(limit "$T_TESTS" "$RESERVE")
T_IDENTITY=$(limit "$T_IDENTITY" "$RESERVE")
step 2_tests "$T_TESTS" "$OUTDIR/tests.log" "$PY" -m pytest "${TESTS[@]}" "${KEXPR[@]}" "${XDIST[@]}" -q -rA \
    -p no:cacheprovider --maxfail=40 --durations=15 --junitxml="$OUTDIR/tests.xml" &
TESTS_PID=$!
if [ "$SMALL" = 1 ]; then
    IDARGS=(--small)
else
    IDARGS=(--images 50 --size 256)
fi
step 4_identity "$T_IDENTITY" "$OUTDIR/identity.log" "$PY" benchmarks/gpu_identity.py "${IDARGS[@]}" \
    --json "$OUTDIR/identity.json" &
IDENTITY_PID=$!
wait $TESTS_PID
wait $IDENTITY_PID
if [ "$SMALL" = 1 ]; then
    BENCHARGS=(--images 2 --size 8 --repeat 1 --anomalib-repeat 1)
else
    BENCHARGS=(--images 190 --size 512 --repeat 5 --anomalib-repeat 1 --cpu-repeat 1)
fi
T_BENCH=$(limit "$T_BENCH" 10)
step 3_bench "$T_BENCH" "$OUTDIR/bench.log" "$PY" benchmarks/bench_cuda.py "${BENCHARGS[@]}" \
    --json "$OUTDIR/bench.json"

# --- step 5: the CPU engine on this host (issue 16's AVX-512 ratios), 2 threads as on a 2-core machine -----
if [ "$SMALL" = 1 ]; then
    ENGINEARGS=(--images 2 --rounds 1 --cold-runs 1)
else
    ENGINEARGS=(--images 190 --rounds 3 --cold-runs 2)
fi
T_ENGINE=$(limit "${GPU_CHECK_T_ENGINE:-120}" 10)
REFMETRICS_NUM_THREADS=2 step 5_engine "$T_ENGINE" "$OUTDIR/bench.log" "$PY" benchmarks/bench_engine.py \
    "${ENGINEARGS[@]}" --no-sklearn --no-simd "" --out "$WORK/engine.json"

# --- the record ------------------------------------------------------------------------------------------
RECPY='
import json, os, re, sys, xml.etree.ElementTree as ET
out, date, start, small, work = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
def load(name):
    try:
        with open(os.path.join(work if name == "env.json" else out, name)) as fh:
            return json.load(fh)
    except Exception as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}
env = load("env.json")
steps, notes = [], []
for line in open(os.path.join(work, "steps")):
    parts = line.rstrip("\n").split(" ", 3)
    if parts[0] == "note":
        notes.append(line[5:].strip())
    else:
        steps.append({"name": parts[0], "rc": int(parts[1]), "seconds": round(int(parts[2] or 0) / 1000, 1),
                      "timed_out": parts[1] in ("124", "137")})
smi = ""
for line in open(os.path.join(out, "env.log")):
    if line.startswith("name, driver_version") or "NVIDIA" in line or line.startswith("nvidia-smi failed"):
        smi += line
rows = [l for l in smi.splitlines() if not l.startswith("name,")]
device = driver = cc = mem = None
if rows and "," in rows[0]:
    device, driver, cc, mem = [x.strip() for x in rows[0].split(",")][:4]
tests = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "total": 0, "failures": [], "cuda_tests_run": 0}
try:
    root = ET.parse(os.path.join(out, "tests.xml")).getroot()
    for case in root.iter("testcase"):
        tests["total"] += 1
        name = "%s::%s" % (case.get("classname"), case.get("name"))
        kinds = [child.tag for child in case]
        if "failure" in kinds or "error" in kinds:
            child = case.find("failure") if "failure" in kinds else case.find("error")
            tests["failed" if child.tag == "failure" else "errors"] += 1
            msg = (child.get("message") or child.text or "").strip().splitlines()
            tests["failures"].append({"test": name, "kind": child.tag, "reason": (msg[0] if msg else "")[:400]})
        elif "skipped" in kinds:
            tests["skipped"] += 1
        else:
            tests["passed"] += 1
            if re.search(r"\[(.*-)?(cuda|device)(-.*)?\]|_gpu", case.get("name") or ""):
                tests["cuda_tests_run"] += 1
except Exception as exc:
    tests["error"] = "no junit XML: %s: %s" % (type(exc).__name__, exc)
    try:
        text = open(os.path.join(out, "tests.log")).read()
        for key in ("passed", "failed", "skipped", "error"):
            found = re.findall(r"(\d+) %s" % key, text)
            if found:
                tests[key if key != "error" else "errors"] = int(found[-1])
        tests["failures"] = [{"test": l[7:].split(" - ")[0], "reason": l.split(" - ", 1)[-1][:400]}
                             for l in text.splitlines() if l.startswith("FAILED ")][:50]
    except Exception:
        pass
bench = load("bench.json")
identity = load("identity.json")
try:
    with open(os.path.join(work, "engine.json")) as fh:
        engine = json.load(fh)
except Exception as exc:
    engine = {"error": "%s: %s" % (type(exc).__name__, exc)}
record = {
    "date": date, "small": small, "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    "device": device or (None if str(env.get("numba_device")).startswith("error") else env.get("numba_device")),
    "driver": driver, "compute_capability": cc,
    "memory_total": mem, "nvidia_smi": smi.strip(),
    "versions": {k: env.get(k) for k in ("python", "numpy", "numba", "numba_cuda", "torch", "torchmetrics",
                                         "anomalib", "cupy", "kornia", "scipy", "skimage", "pytest", "xdist",
                                         "nvvm_version", "cuda_driver_version", "torch_cuda_version")},
    "host": env.get("host"), "host_line": env.get("host_line"), "env": env,
    "steps": steps, "notes": notes, "total_seconds": None,
    "tests": tests,
    "bench": {k: bench.get(k) for k in bench if k not in ("machine",)},
    "identity": {"all_identical": identity.get("all_identical"), "not_identical": identity.get("not_identical"),
                 "pixels": identity.get("pixels"), "complete": identity.get("complete"),
                 "rows": identity.get("rows"), "error": identity.get("error")},
    "engine": engine,
}
import time
record["total_seconds"] = round(time.time() - start, 1)
with open(os.path.join(out, "gpu_check.json"), "w") as fh:
    json.dump(record, fh, indent=1, default=str)
# the human summary
print("=" * 100)
print("refmetrics GPU check, %s: %s, driver %s, cc %s (%s)%s" % (date, record["device"], driver, cc, mem,
      " [SMALL rehearsal]" if small else ""))
v = record["versions"]
print("versions: python %s, numpy %s, numba %s, numba-cuda %s, torch %s, torchmetrics %s, anomalib %s, cupy %s" % (
      v["python"], v["numpy"], v["numba"], v["numba_cuda"], v["torch"], v["torchmetrics"], v["anomalib"], v["cupy"]))
print("host: %s" % record["host_line"])
print("steps: " + ", ".join("%s rc %d %.0f s%s" % (s["name"], s["rc"], s["seconds"], " TIMEOUT" if s["timed_out"] else "")
                            for s in steps) + "; total %.0f s" % record["total_seconds"])
for n in notes:
    print("  note: " + n)
print("tests: %(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped (%(cuda_tests_run)d cuda/device passed)" % tests)
for f in tests["failures"][:15]:
    print("  FAIL %s: %s" % (f["test"], f["reason"][:160]))
for r in bench.get("rows") or []:
    if "error" in r:
        print("  bench %-36s FAILED %s" % (r["name"], r["error"][:120]))
    else:
        print("  bench %-36s %10.2f ms  first %.2f s  value %r%s" % (r["name"], r["median_s"] * 1e3, r["first_s"], r["value"],
              ("  device %.2fx input" % r["device_peak_extra_x_input"]) if r.get("device_peak_extra_x_input") is not None else ""))
for k, val in (bench.get("ratios") or {}).items():
    print("  ratio %-46s %.3f" % (k, val))
if "aupro_abs_diff_vs_anomalib" in bench:
    print("  |aupro - anomalib| %.3g (target 1e-7)" % bench["aupro_abs_diff_vs_anomalib"])
if bench.get("error"):
    print("  bench: %s" % bench["error"])
rows = identity.get("rows") or []
print("identity%s: %d/%d rows identical; all required identical: %s%s" % ("" if identity.get("complete", True) else " (INCOMPLETE)",sum(1 for r in rows if r.get("identical")), len(rows),
      identity.get("all_identical"), ("; NOT: " + ", ".join(identity.get("not_identical") or [])) if identity.get("not_identical") else ""))
if identity.get("error"):
    print("  identity: %s" % identity["error"])
if engine.get("error"):
    print("engine: %s" % engine["error"])
else:
    print("engine (CPU, 2 threads): %s" % engine.get("summary", {k: engine[k] for k in engine if "ratio" in k}))
print("record: %s" % os.path.join(out, "gpu_check.json"))
'
"$PY" -c "$RECPY" "$OUTDIR" "$DATE" "$START" "$SMALL" "$WORK" 2>&1 | tee -a "$OUTDIR/env.log"
if [ ! -s "$OUTDIR/gpu_check.json" ]; then  # the record's own script failed: a minimal record all the same
    # shellcheck disable=SC1003  # tr's set: the double quote and the backslash
    printf '{"date": "%s", "error": "the record script failed: see env.log", "steps_raw": "%s"}\n' "$DATE" \
        "$(tr '\n' ';' <"$STEPS" | tr -d '"\\')" >"$OUTDIR/gpu_check.json"
fi
rm -rf "$WORK"
FAILED=$(grep -c '"rc": [1-9]' "$OUTDIR/gpu_check.json" 2>/dev/null)
[ "${FAILED:-0}" = 0 ]
