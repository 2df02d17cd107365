#!/usr/bin/env python3
# Growth (docs/capacity.md, "Growth") against the final-size network trained from the start, on
# the planted teacher: steps, FLOPs (6 x batch x Linear parameters per step) and wall time to
# reach 1.3 x the teacher's loss, per seed and growth.init. Run in an empty directory:
#   python3 $SRC/benches/compare_growth.py $SRC/build/cpu/curvnet   (SRC: the source tree, absolute)
import json, subprocess, os, sys
exe = sys.argv[1] if len(sys.argv) > 1 else "build/cpu/curvnet"
def rows(p):
    return [json.loads(l) for l in open(p) if l.strip()]
base = """[data]
dataset = "teacher"
teacher_hidden = 8
batch_size = 64
n_samples = 2000
noise = 0.05
[model]
hidden = [{w}]
activation = "tanh"
init = "xavier_normal"
[loss]
kind = "mse"
[optim]
name = "adam"
lr = 1e-2
[train]
steps = {steps}
eval_every = 25
log_every = 25
device = "cpu"
threads = 1
seed = {seed}
[checkpoint]
every = 0
"""
grow = """[growth]
enabled = true
units = 2
max_width = {mw}
patience = 3
init = "{init}"
"""
def run(name, text):
    open(name + ".toml", "w").write(text)
    subprocess.run(["rm", "-rf", name])
    subprocess.run([exe, "train", name + ".toml", "--out", name], stdout=subprocess.DEVNULL, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return name
def macs(widths):  # Linear weights + biases of 10 -> widths -> 1
    d = [10] + widths + [1]
    return sum(d[i] * d[i + 1] + d[i + 1] for i in range(len(d) - 1))
def cost(run_dir, w0):
    ev = [r for r in rows(run_dir + "/eval.jsonl") if r["split"] == "val"]
    met = rows(run_dir + "/metrics.jsonl")
    events = rows(run_dir + "/growth.jsonl") if os.path.exists(run_dir + "/growth.jsonl") else []
    width = {}
    for e in events: width[e["step"]] = e["to"]
    return ev, met, events
target = 1.3 * 0.0025  # 1.3 x the teacher's own loss (noise 0.05)
steps = 1500
out = []
for seed in [0, 1, 2]:
    for init in ["highest_loss", "random_subsample", "input_subset", "random_restart"]:
        g = run(f"g_{init}_{seed}", base.format(w=2, steps=steps, seed=seed) + grow.format(mw=16, init=init))
        events = rows(g + "/growth.jsonl")
        final_w = events[-1]["to"] if events else 2
        # FLOPs per step: 6 x batch x parameters of the Linear layers at that step
        w_at = lambda s: max([2] + [e["to"] for e in events if e["step"] < s])
        ev = [r for r in rows(g + "/eval.jsonl") if r["split"] == "val"]
        def to_target(ev, wfun):
            flops = 0; last = 0
            for r in ev:
                for s in range(last + 1, r["step"] + 1): flops += 6 * 64 * macs([wfun(s)])
                last = r["step"]
                if r["loss"] <= target: return r["step"], flops
            return None, flops
        gs, gf = to_target(ev, w_at)
        gtime = [m["time_s"] for m in rows(g + "/metrics.jsonl") if gs and m["step"] == gs]
        f = run(f"f_{final_w}_{seed}", base.format(w=final_w, steps=steps, seed=seed))
        fev = [r for r in rows(f + "/eval.jsonl") if r["split"] == "val"]
        fs, ff = to_target(fev, lambda s: final_w)
        ftime = [m["time_s"] for m in rows(f + "/metrics.jsonl") if fs and m["step"] == fs]
        gfinal = ev[-1]["loss"]; ffinal = fev[-1]["loss"]
        total_g = sum(6 * 64 * macs([w_at(s)]) for s in range(1, steps + 1)); total_f = 6 * 64 * macs([final_w]) * steps
        out.append(dict(seed=seed, init=init, final_width=final_w, grow_step=gs, grow_flops=gf, grow_time=gtime[0] if gtime else None,
                        full_step=fs, full_flops=ff, full_time=ftime[0] if ftime else None,
                        grow_final=gfinal, full_final=ffinal, total_flops_grow=total_g, total_flops_full=total_f))
        print(json.dumps(out[-1]), flush=True)
