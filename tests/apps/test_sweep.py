#!/usr/bin/env python3
"""`curvnet sweep` end to end (docs/study.md), one case per ctest test.

Usage: test_sweep.py CURVNET SOURCE_DIR CASE   (CASE: smoke interrupt shards failed bad_study)
Standard library only. Exit 0 pass, 1 fail, 77 skip.
"""
import json
import math
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import tomllib
import time

CURVNET, SOURCE, CASE = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# Keys that hold wall-clock readings: the only fields allowed to differ between two sweeps.
CLOCK_KEYS = {"time_s", "items_per_s", "seconds", "wall_s"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def sweep(*args, check_rc=None, **kw):
    p = subprocess.run([CURVNET, "sweep", *map(str, args)], env=ENV, capture_output=True, text=True, **kw)
    if check_rc is not None and p.returncode != check_rc:
        fail(f"sweep {args}: exit {p.returncode}, expected {check_rc}\n{p.stdout}\n{p.stderr}")
    return p


def index(d):
    return [json.loads(l) for l in (pathlib.Path(d) / "index.jsonl").read_text().splitlines()]


def safetensors(path):
    """name -> (dtype, shape, raw bytes), read by the public format."""
    b = pathlib.Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def values(dtype, raw):
    fmt = {"F64": "d", "F32": "f", "I64": "q"}[dtype]
    return list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))


def mlp_params(n_in, width, depth, n_out):
    return n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out


def strip_clock(row):
    return {k: v for k, v in row.items() if k not in CLOCK_KEYS}


def run_fingerprint(run):
    """What must be bit-identical between two sweeps of one point: parameters, optimiser
    state, spectra, data record, config, and every log row minus its wall-clock fields."""
    run = pathlib.Path(run)
    out = {}
    for f in sorted(run.rglob("*")):
        rel = str(f.relative_to(run))
        if not f.is_file() or rel.startswith("events.") or rel in ("meta.json", "report.html", ".lock"):
            continue
        if f.suffix == ".jsonl":
            out[rel] = [strip_clock(json.loads(l)) for l in f.read_text().splitlines()]
        else:
            out[rel] = f.read_bytes()
    return out


def write(path, text):
    pathlib.Path(path).write_text(text)
    return path


# --- cases

def case_smoke(tmp):
    """examples/study/smoke.toml: every point done, with the documented index, run layout,
    sizes, natural loss, curvature cadence and packed spectra."""
    study = SOURCE / "examples/study/smoke.toml"
    sizes = tomllib.loads(study.read_text())["study"]["sizes"]
    out = tmp / "smoke"
    t0 = time.time()
    p = sweep(study, "--out", out, check_rc=0)
    print(p.stdout, end="")
    print(f"smoke study: {time.time() - t0:.1f} s wall")
    check("on disk" in p.stdout.splitlines()[-1], "the last line reports the size on disk")
    rows = index(out)
    check(len(rows) == 6, f"6 rows, got {len(rows)}")
    check([r["index"] for r in rows] == list(range(6)), "indices 0..5 in order")
    seen = set()
    for r in rows:
        check(set(r) >= {"index", "point", "status", "run_dir", "wall_s"}, f"row keys {sorted(r)}")
        check(r["status"] == "done", f"row {r['index']}: {r['status']} {r.get('error')}")
        check(isinstance(r["wall_s"], float) and r["wall_s"] > 0, "wall_s > 0")
        seen.add((r["point"]["data.dataset"], r["point"]["size"]))
        run = out / r["run_dir"]
        config = (run / "config.toml").read_text()
        # The natural loss, from the data set's task (not from the code under test's table).
        task = "regression" if r["point"]["data.dataset"] == "diabetes" else "classification"
        want = 'kind = "mse"' if task == "regression" else 'kind = "cross_entropy"'
        check(want in config, f"{run}: {want} in config.toml")
        # Width from the budget: the largest width within it (docs/study.md §2).
        size = sizes[r["point"]["size"]]
        budget, depth = size["params"], size["depth"]
        model = safetensors(run / "checkpoints/step_0/model.safetensors")
        weights = sorted((int(k.split(".")[0]), v[1]) for k, v in model.items() if k.endswith(".weight"))
        check(len(weights) == depth + 1, f"{run}: {depth} hidden layers")
        n_in, width, n_out = weights[0][1][1], weights[0][1][0], weights[-1][1][0]
        params = sum(math.prod(v[1]) for v in model.values())
        check(params == mlp_params(n_in, width, depth, n_out), "parameter count")
        check(params <= budget < mlp_params(n_in, width + 1, depth, n_out), f"{run}: width {width} fills {budget}")
        # Storage: one spectra series file, float32, no spectra/ directory, first and last checkpoints.
        check(not (run / "spectra").exists(), f"{run}: spectra/ packed")
        series = safetensors(run / "spectra_series.safetensors")
        check(all(v[0] in ("F32", "I64") for v in series.values()), "spectra float32")
        steps = sorted({int(k.split("/")[0][5:]) for k in series})
        diag_steps = sorted({json.loads(l)["step"] for l in (run / "diagnostics.jsonl").read_text().splitlines()})
        check(steps[0] == 0 and set(diag_steps) <= set(steps), f"{run}: series steps {steps} hold {diag_steps}")
        check(len(diag_steps) == 5, f"{run}: 5 curvature checkpoints, got {len(diag_steps)}")
        check(r["derived"]["curvature_checkpoints"] == 5, "derived.curvature_checkpoints")
        # The quality metrics at every curvature checkpoint (the analysis pairs them).
        val_steps = {json.loads(l)["step"] for l in (run / "eval.jsonl").read_text().splitlines()
                     if json.loads(l)["split"] == "val"}
        check(set(diag_steps) <= val_steps, f"{run}: validation rows at {sorted(val_steps)}")
        ckpts = sorted(int(c.name[5:]) for c in (run / "checkpoints").iterdir())
        check(ckpts == [0, diag_steps[-1]], f"{run}: checkpoints {ckpts}")
    check(len(seen) == 6, "every (data set, size) once")
    # The packed series holds the trainer's own float64 spectra, rounded to float32: train one
    # point again by hand (no sweep) and compare.
    ref = tmp / "ref"
    subprocess.run([CURVNET, "train", out / "points/0000.toml", "--out", ref], env=ENV, check=True,
                   capture_output=True)
    series = safetensors(out / rows[0]["run_dir"] / "spectra_series.safetensors")
    n = 0
    for f in sorted((ref / "spectra").iterdir()):
        for name, (dtype, shape, raw) in safetensors(f).items():
            key = f.stem + "/" + name
            check(key in series and series[key][1] == shape, f"{key} in the series")
            if dtype == "F64":
                packed = values(*series[key][::2])
                want = [struct.unpack("<f", struct.pack("<f", x))[0] for x in values(dtype, raw)]
                check(packed == want, f"{key}: float32 of the float64 values")
                n += 1
    check(n > 10, f"compared {n} tensors")
    # A report reads the packed run: its spectra section has figures.
    subprocess.run([CURVNET, "report", out / rows[1]["run_dir"], "--out", tmp / "r.html"], env=ENV, check=True,
                   capture_output=True)
    html = (tmp / "r.html").read_text()
    spectra = html[html.index('data-section="spectra"'):]
    spectra = spectra[:spectra.index("</section>")]
    check("<svg" in spectra, "the report's spectra section draws the packed spectra")
    # Re-running skips every done point and changes nothing.
    before = {r["run_dir"]: run_fingerprint(out / r["run_dir"]) for r in rows}
    p = sweep(study, "--out", out, check_rc=0)
    check("6 done" in p.stdout and "0 to run" in p.stdout, p.stdout)
    check(before == {r["run_dir"]: run_fingerprint(out / r["run_dir"]) for r in rows}, "a re-run changes nothing")


INTERRUPT_STUDY = """
[base.data]
batch_size = 16
[base.train]
device = "cpu"
epochs = 3
log_every = 5
[base.diagnostics]
kinds = ["loss", "local"]
batch_size = 64
[study]
checkpoints = 8
sizes.medium = { params = 2000, depth = 2 }
[grid]
"data.dataset" = ["iris", "wine"]
size = ["small", "medium"]
"""


def case_interrupt(tmp):
    """SIGTERM in the middle of a sweep, then the same command again: the index and every run
    directory equal an uninterrupted sweep's bit for bit (clock fields aside), and --jobs 1
    against --jobs 2 shows the results do not depend on the number of parallel runs."""
    study = write(tmp / "s.toml", INTERRUPT_STUDY)
    whole, cut = tmp / "whole", tmp / "cut"
    sweep(study, "--out", whole, "--jobs", "2", check_rc=0)
    proc = subprocess.Popen([CURVNET, "sweep", study, "--out", cut, "--jobs", "1"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Wait for the first run to finish and the second to be under way, then stop the sweep.
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[1/4] done"):
            break
    deadline = time.time() + 30
    while time.time() < deadline:
        metrics = cut / "runs/0001/metrics.jsonl"
        if metrics.exists() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    check(proc.returncode == 143, f"exit {proc.returncode} after SIGTERM\n{''.join(lines)}{rest}")
    rows = index(cut)
    statuses = [r["status"] for r in rows]
    check(statuses[0] == "done" and statuses[1] == "pending", f"after the signal: {statuses}")
    check((cut / "runs/0001/checkpoints").exists(), "the stopped run checkpointed")
    interrupted_at = max(int(c.name[5:]) for c in (cut / "runs/0001/checkpoints").iterdir())
    final = json.loads((whole / "runs/0001/meta.json").read_text())["steps"]
    check(0 < interrupted_at < final, f"stopped inside the run (step {interrupted_at} of {final})")
    p = sweep(study, "--out", cut, "--jobs", "1", check_rc=0)
    check("1 done" in p.stdout and "3 to run" in p.stdout, p.stdout)
    a, b = index(whole), index(cut)
    check([strip_clock(r) for r in a] == [strip_clock(r) for r in b], "the same index")
    for r in a:
        fa, fb = run_fingerprint(whole / r["run_dir"]), run_fingerprint(cut / r["run_dir"])
        check(sorted(fa) == sorted(fb), f"{r['run_dir']}: files {sorted(fa)} vs {sorted(fb)}")
        for k in fa:
            check(fa[k] == fb[k], f"{r['run_dir']}/{k} differs")
    print(f"interrupted at step {interrupted_at} of {final}; 4 runs bit-identical")


SHARD_STUDY = """
[base.data]
batch_size = 64
[base.train]
device = "cpu"
steps = 3
[study]
checkpoints = 2
sizes.tiny = { params = 100, depth = 1 }
seeds = [0, 1]
[grid]
"data.dataset" = ["iris", "xor"]
size = ["tiny"]
"optim.name" = ["adam", "sgd", "rmsprop"]
"""


def case_shards(tmp):
    """--shard I/N partitions the grid: three shards at once into one directory run every
    point exactly once; a whole-grid sweep is refused while they hold the directory."""
    study = write(tmp / "s.toml", SHARD_STUDY)
    out = tmp / "out"
    sweep(study, "--out", out, "--status", check_rc=0)  # makes DIR, so the shards race only on runs
    procs = [subprocess.Popen([CURVNET, "sweep", study, "--out", out, "--shard", f"{i}/3", "--jobs", "1"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(3)]
    time.sleep(0.3)
    whole = sweep(study, "--out", out)
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    for p, o in zip(procs, outputs):
        check(p.returncode == 0, f"shard exit {p.returncode}\n{o}")
    if whole.returncode != 2 or "in use by another sweep" not in whole.stderr:
        print("note: the shards ended before the whole-grid sweep started:", whole.returncode, whole.stderr.strip())
    rows = index(out)
    n = 2 * 3 * 2
    check(len(rows) == n, f"{n} rows")
    check(all(r["status"] == "done" for r in rows), [r["status"] for r in rows])
    selected = sum(int(o.split(" points selected")[0].split(": ")[-1].split(" of ")[0]) for o in outputs)
    check(selected == n, f"the shards selected {selected} points in all")
    for r in rows:
        log = (out / "logs" / (pathlib.Path(r["run_dir"]).name + ".log")).read_text()
        check(log.count("results: ") == 1, f"{r['run_dir']} trained once: {log.count('results: ')}")
        check(r["index"] % 3 == next(i for i, o in enumerate(outputs) if f"done {pathlib.Path(r['run_dir']).name} " in o),
              f"point {r['index']} ran in shard index % 3")
    seeds = sorted({r["point"]["train.seed"] for r in rows})
    check(seeds == [0, 1], f"seeds axis {seeds}")
    for i in (0, 5):
        p = sweep(study, "--out", out, "--index", i, check_rc=0)
        check("1 done" in p.stdout and "0 to run" in p.stdout, p.stdout)
    p = sweep(study, "--out", out, "--shard", "3/3")
    check(p.returncode == 2 and "--shard 3/3" in p.stderr, p.stderr)
    p = sweep(study, "--out", out, "--index", n)
    check(p.returncode == 2 and "--index" in p.stderr, p.stderr)


FAILED_STUDY = """
[base.data]
batch_size = 64
[base.train]
device = "cpu"
steps = 4
[study]
checkpoints = 2
sizes.tiny = { params = 80, depth = 1 }
[grid]
"data.dataset" = ["iris", "no-such-set"]
size = ["tiny"]
"optim.lr" = [1e-3, -1.0]
"""


def case_failed(tmp):
    """Bad grid points are recorded failed with the reason; the others finish."""
    study = write(tmp / "s.toml", FAILED_STUDY)
    out = tmp / "out"
    p = sweep(study, "--out", out, "--jobs", "2", check_rc=1)
    rows = index(out)
    for r in rows:
        good = r["point"]["data.dataset"] == "iris" and r["point"]["optim.lr"] > 0
        check(r["status"] == ("done" if good else "failed"), f"{r['point']}: {r['status']}")
        if not good:
            check(r["error"] and ("optim.lr" in r["error"] or "no-such-set" in r["error"]), r["error"])
    check(p.stdout.count("failed ") >= 3, p.stdout)
    p = sweep(study, "--out", out, check_rc=1)
    check("3 failed" in p.stdout and "0 to run" in p.stdout, p.stdout)
    done_run = next(r for r in rows if r["status"] == "done")["run_dir"]
    before = run_fingerprint(out / done_run)
    p = sweep(study, "--out", out, "--retry-failed", check_rc=1)
    check("3 to run" in p.stdout, p.stdout)
    check([r["status"] for r in index(out)] == [r["status"] for r in rows], "the same points fail again")
    check(run_fingerprint(out / done_run) == before, "--retry-failed leaves done points alone")


BAD = {
    "grid value not an array": ('[grid]\n"data.dataset" = "iris"\n', "grid.data.dataset"),
    "unknown config key": ('[grid]\n"model.widht" = [1]\n', "grid.model.widht"),
    "unknown size": ('[grid]\nsize = ["gigantic"]\n', "grid.size"),
    "unknown study key": ("[study]\ncheckpoint = 5\n", "study.checkpoint"),
    "bad checkpoints": ("[study]\ncheckpoints = -1\n", "study.checkpoints"),
    "missing base": ('base = "nope.toml"\n', "nope.toml"),
    "bad base": ('[base.optim]\nname = "nope"\n', "optim.name"),
    "size and hidden": ('[grid]\nsize = ["small"]\n"model.hidden" = [[4]]\n', "grid.size"),
    "toml syntax": ("[grid\n", "s.toml:1"),
    "unknown section": ("[grids]\n", "grids"),
}


def case_bad_study(tmp):
    """A bad study file: exit 2 and one line naming the file and the key."""
    for what, (text, needle) in BAD.items():
        study = write(tmp / "s.toml", text)
        p = sweep(study, "--out", tmp / "out")
        check(p.returncode == 2, f"{what}: exit {p.returncode}")
        lines = p.stderr.strip().splitlines()
        check(len(lines) == 1 and needle in lines[0] and "s.toml" in lines[0] or needle.endswith(".toml") and
              len(lines) == 1 and needle in lines[0], f"{what}: {p.stderr!r}")
        shutil.rmtree(tmp / "out", ignore_errors=True)
    # A different study into a directory that holds one is refused.
    sweep(write(tmp / "a.toml", '[grid]\n"data.dataset" = ["iris"]\n[study]\ncheckpoints = 0\n'), "--out",
          tmp / "out", "--emit", "slurm", check_rc=0)
    p = sweep(write(tmp / "b.toml", '[grid]\n"data.dataset" = ["wine"]\n'), "--out", tmp / "out")
    check(p.returncode == 2 and "different study" in p.stderr, p.stderr)


SLURM_STUDY = """
[base.data]
batch_size = 64
[base.train]
device = "cpu"
steps = 4
[study]
checkpoints = 3
sizes.tiny = { params = 100, depth = 1 }
[grid]
"data.dataset" = ["iris", "wine", "xor"]
size = ["tiny"]
"""

SLURM_CONF = """ClusterName=curvnettest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={t}/munge.sock
CredType=cred/munge
SlurmctldPort={port}
SlurmdPort={port2}
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.pid
SlurmctldLogFile={t}/slurmctld.log
SlurmdLogFile={t}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def skip(reason):
    print("SKIP:", reason)
    sys.exit(77)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def case_slurm(tmp):
    """A study as a Slurm job array (--emit slurm + sbatch) on a single-node Slurm that the test
    starts (munged, slurmctld, slurmd as root, in a temporary directory); skips when it cannot."""
    import socket
    if os.geteuid() != 0:
        skip("the Slurm daemons need root")
    tools = {t: shutil.which(t) or shutil.which(t, path="/usr/sbin:/usr/bin") for t in
             ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")}
    missing = [t for t, path in tools.items() if not path]
    if missing:
        skip("not installed: " + " ".join(missing) + " (apt-get install slurm-wlm munge)")
    t = tmp / "slurm"
    (t / "state").mkdir(parents=True)
    (t / "spool").mkdir()
    os.chmod(tmp, 0o700)
    (t / "munge.key").write_bytes(os.urandom(1024))
    os.chmod(t / "munge.key", 0o400)
    conf = t / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), t=t, port=free_port(), port2=free_port(),
                                      cpus=os.cpu_count()))
    env = dict(ENV, SLURM_CONF=str(conf))
    started = []

    def start(cmd, pidfile, log):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            detail = (p.stderr.strip() or "") + (" " + log.read_text()[-300:] if log.exists() else "")
            skip(f"{cmd[0]} did not start: {detail.strip()}")
        for _ in range(50):
            if pidfile.exists() and pidfile.read_text().strip():
                started.append(int(pidfile.read_text()))
                return
            time.sleep(0.1)
        skip(f"{cmd[0]} wrote no pid file")

    try:
        start([tools["munged"], f"--key-file={t}/munge.key", f"--socket={t}/munge.sock", f"--pid-file={t}/munged.pid",
               f"--log-file={t}/munged.log", f"--seed-file={t}/munge.seed", "--force"], t / "munged.pid",
              t / "munged.log")
        start([tools["slurmctld"], "-f", str(conf), "-i"], t / "slurmctld.pid", t / "slurmctld.log")
        start([tools["slurmd"], "-f", str(conf)], t / "slurmd.pid", t / "slurmd.log")
        deadline = time.time() + 30
        while True:
            state = subprocess.run([tools["sinfo"], "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                break
            if time.time() > deadline:
                skip(f"the Slurm node did not come up: {state.stdout.strip()} {state.stderr.strip()}")
            time.sleep(0.5)
        study = write(tmp / "s.toml", SLURM_STUDY)
        out = tmp / "study"
        p = sweep(study, "--out", out, "--emit", "slurm", "--jobs", "2", check_rc=0)
        script = (out / "sweep.sbatch").read_text()
        check("#SBATCH --array=0-2%2" in script, script)
        check('--index "$SLURM_ARRAY_TASK_ID"' in script, script)
        check(all(r["status"] == "pending" for r in index(out)), "nothing ran before the submission")
        t0 = time.time()
        p = subprocess.run([tools["sbatch"], "--wait", str(out / "sweep.sbatch")], env=env, capture_output=True,
                           text=True, timeout=240)
        check(p.returncode == 0, f"sbatch --wait: {p.returncode} {p.stdout} {p.stderr}")
        rows = index(out)
        check([r["status"] for r in rows] == ["done"] * 3, [(r["status"], r.get("error")) for r in rows])
        for r in rows:
            check((out / r["run_dir"] / "spectra_series.safetensors").exists(), f"{r['run_dir']} packed")
        logs = sorted((out / "logs").glob("slurm-*.out"))
        check(len(logs) == 3, f"one Slurm log per array task: {logs}")
        print(f"Slurm job array of 3 tasks done in {time.time() - t0:.1f} s")
    finally:
        for pid in reversed(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(1)


def main():
    with tempfile.TemporaryDirectory(prefix="curvnet-sweep-") as d:
        {"smoke": case_smoke, "interrupt": case_interrupt, "shards": case_shards, "failed": case_failed,
         "bad_study": case_bad_study, "slurm": case_slurm}[CASE](pathlib.Path(d))
    print("ok")


if __name__ == "__main__":
    main()
