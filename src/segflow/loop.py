"""The whole loop, scripted: brief -> labels -> model -> assessment -> decision -> retrain ->
better pre-labels, on a synthetic domain whose ground truth stands in for the annotators.

1. A project has a brief (``task: semantic``, a target such as ``miou >= 0.55``), a pool of
   unlabelled images (their ground truth kept aside as the "annotators") and a gold test set.
2. Round 1: train on a few labelled images with a small budget
   (:class:`segflow.train.trainer.Trainer`), record the model in the registry
   (:class:`segflow.registry.ModelRegistry`), assess it (:func:`segflow.assess.assess`):
   "retrain", target not met.
3. The assessment's next images (most uncertain, spread over the embedding:
   :func:`segflow.assess.next_images`) are "labelled": their ground truth is copied in. The
   round's model pre-labelled them first, and :func:`segflow.quality.prelabel_edit_rate` says
   how much of each pre-label the annotators had to repaint.
4. Round 2: retrain on the larger set (parent: the round-1 model), assess: "meets the brief".
   Its own next batch is pre-labelled and labelled the same way.
5. ``report.html``: both rounds side by side, the pre-label edit rate of each round's model on
   the images it pre-labelled (and both models on the same final batch), with figures.

``make loop`` runs :func:`run_loop` at its default size; ``python -m segflow.loop --small``
(and the test suite) at a small one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError


@dataclass
class LoopConfig:
    domain: str = "agriculture"
    size: int = 64
    n_pool: int = 80
    n_test: int = 24
    n_initial: int = 6
    n_next: int = 24
    steps: tuple[int, ...] = (20, 160)
    target: str = "miou >= 0.55"
    seed: int = 0
    batch_size: int = 4
    lr: float = 3e-3
    model_args: dict = field(default_factory=lambda: {"depth": 3, "base_width": 8})
    resamples: int = 200
    device: str = "cpu"
    threads: int = 1  # torch CPU threads (two spin against each other on a loaded machine)

    @classmethod
    def small(cls) -> LoopConfig:
        """The size the test suite runs (tens of seconds on a CPU)."""
        return cls(size=48, n_pool=36, n_test=12, n_initial=4, n_next=12, steps=(6, 70),
                   target="miou >= 0.45", model_args={"depth": 2, "base_width": 8},
                   resamples=100)


@dataclass
class Round:
    index: int
    model_id: str
    parent: str | None
    n_train: int
    steps: int
    train_s: float
    targets: list[dict]
    verdict: str
    reasons: list[str]
    next_images: list[str]
    edit_rate: float  # this model's pre-labels on the images labelled after it
    next_uncertainty: float  # mean uncertainty of the chosen images ...
    pool_uncertainty: float  # ... and of the whole unlabelled pool they came from
    checkpoint: str
    report: str


@dataclass
class LoopResult:
    config: LoopConfig
    brief: dict
    rounds: list[Round]
    same_batch_edit_rates: list[float]  # every round's model on the last labelled batch
    report: Path

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "brief": self.brief,
                "rounds": [asdict(r) for r in self.rounds],
                "same_batch_edit_rates": self.same_batch_edit_rates, "report": str(self.report)}


def copy_item(oracle: Path, name: str, dest: Path, *, label: bool) -> None:
    (dest / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(oracle / "images" / f"{name}.png", dest / "images" / f"{name}.png")
    if label:
        (dest / "semantic").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(oracle / "semantic" / f"{name}.png", dest / "semantic" / f"{name}.png")


def train_round(cfg: LoopConfig, data: Path, out: Path, steps: int, seed: int, hooks=()) -> Path:
    from segflow.train import parse_config
    from segflow.train.trainer import Trainer

    tc = parse_config({
        "name": out.name, "seed": seed, "out": str(out),
        "data": {"train": str(data), "val_fraction": 0},
        "model": {"name": "unet", "args": dict(cfg.model_args)},
        "loss": {"name": "ce+dice"}, "optim": {"lr": cfg.lr},
        "schedule": {"name": "poly", "warmup_steps": min(10, steps // 5)},
        "augment": {"hflip": True, "vflip": True},
        "train": {"epochs": 10**6, "max_steps": steps, "batch_size": cfg.batch_size,
                  "checkpoint_every": 10**6, "log_every": 5}})
    Trainer(tc, device=cfg.device, progress=False, hooks=hooks).fit()
    return out / "last.pt"


def _edit_rate(predictor, oracle: Path, names: list[str], ignore: int) -> float:
    """Mean over images of the fraction of pixels the annotators change in the pre-label."""
    from segflow.io import read_image, read_mask
    from segflow.quality import prelabel_edit_rate

    rates = [prelabel_edit_rate(predictor.predict(read_image(oracle / "images" / f"{n}.png")),
                                read_mask(oracle / "semantic" / f"{n}.png"), ignore_index=ignore)
             for n in names]
    return float(np.mean(rates)) if rates else float("nan")


def _pool_uncertainty(predictor, folder: Path) -> float:
    from segflow.assess import entropy_score
    from segflow.io import list_images, read_image

    return float(np.mean([entropy_score(predictor.probabilities(read_image(p)))[0]
                          for p in list_images([folder])]))


def run_loop(out: str | Path, cfg: LoopConfig | None = None, *, log=None) -> LoopResult:
    """Run the scripted loop in ``out`` (created; an existing loop there is replaced)."""
    import torch

    from segflow.assess import assess, decide, parse_brief
    from segflow.assess.report import write_assessment_report
    from segflow.formats import open_dataset
    from segflow.predict.predictor import Predictor
    from segflow.registry import ModelRegistry, dataset_snapshot
    from segflow.synth.export import export_synthetic

    cfg = cfg or LoopConfig()
    if len(cfg.steps) < 2 or any(not isinstance(s, int) or s < 1 for s in cfg.steps):
        raise SegflowError("the loop needs a step budget (a positive integer) for at least two "
                           "rounds")
    for name in ("n_initial", "n_next", "n_test", "n_pool"):
        if not 1 <= getattr(cfg, name) <= 100_000:
            raise SegflowError(f"loop: {name} must be 1..100000, got {getattr(cfg, name)}")
    if not 0 <= cfg.seed < 2**32:
        raise SegflowError(f"loop: the seed must be 0..2^32-1, got {cfg.seed}")
    if cfg.n_initial + cfg.n_next * len(cfg.steps) > cfg.n_pool:
        raise SegflowError(f"a pool of {cfg.n_pool} images is too small for {cfg.n_initial} "
                           f"initial + {len(cfg.steps)} x {cfg.n_next} labelled images")
    say = log or (lambda msg: None)
    out = Path(out)
    for sub in ("oracle", "test", "labelled", "unlabelled", "rounds", "models"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        # 1. the project: a brief, a gold test set, and a pool whose labels only the "annotators"
        # (the synthetic ground truth) know
        brief_d = {"task": "semantic", "targets": [cfg.target]}
        brief = parse_brief(brief_d)
        oracle = export_synthetic(cfg.domain, out / "oracle", n=cfg.n_pool, seed=cfg.seed + 1,
                                  size=cfg.size, progress=False)
        test = export_synthetic(cfg.domain, out / "test", n=cfg.n_test, seed=cfg.seed + 2,
                                size=cfg.size, progress=False)
        schema_file = oracle / "schema.json"
        names = list(open_dataset(oracle).names)
        ignore = open_dataset(oracle).schema.ignore_index
        rng = np.random.default_rng([cfg.seed, 10])
        labelled_names = sorted(rng.choice(names, cfg.n_initial, replace=False).tolist())
        lab_dir, unl_dir = out / "labelled", out / "unlabelled"
        lab_dir.mkdir()
        shutil.copyfile(schema_file, lab_dir / "schema.json")
        for n in names:
            copy_item(oracle, n, lab_dir if n in labelled_names else unl_dir,
                       label=n in labelled_names)
        reg = ModelRegistry(out / "models")
        rounds: list[Round] = []
        history: list[tuple[int, float]] = []
        batches: list[list[str]] = []
        checkpoints: list[Path] = []
        parent = None
        for r, steps in enumerate(cfg.steps, start=1):
            rdir = out / "rounds" / f"round{r}"
            say(f"round {r}: training on {len(labelled_names)} labelled images, {steps} steps")
            n_train = len(labelled_names)
            t0 = time.perf_counter()
            ck = train_round(cfg, lab_dir, rdir / "run", steps, cfg.seed)
            train_s = time.perf_counter() - t0
            a = assess(ck, test, brief, resamples=cfg.resamples, seed=cfg.seed,
                       unlabelled=unl_dir, n_next=cfg.n_next, device=cfg.device)
            value = a.targets[0].value
            say(f"round {r}: trained in {train_s:.1f}s, assessed in "
                f"{time.perf_counter() - t0 - train_s:.1f}s")
            history.append((n_train, float(value if value is not None else 0.0)))
            if len(history) > 1:  # the learning curve from the retrains judges "more data?"
                a.verdict, a.reasons = decide(a.targets, a.measurement.class_counts,
                                              history=history)
            snap = dataset_snapshot(lab_dir, annotations=[{"id": n, "version": 1}
                                                          for n in labelled_names])
            rec = reg.record(ck, task="semantic", model="unet",
                             config={**asdict(cfg), "round": r, "steps": steps},
                             dataset=snap, parent=parent, started_by="segflow loop",
                             metrics={t.text: t.value for t in a.targets})
            report = write_assessment_report(rdir / "assessment.html", a, test,
                                             checkpoint=rec.id, history=history if r > 1 else None)
            a.cleanup()
            say(f"round {r}: {cfg.target}: measured {value:.4f} -> {a.verdict}")
            # 3. the next images, chosen by uncertainty; the model pre-labels them, the
            # "annotators" (the ground truth) correct them
            nxt = [Path(d["path"]).stem for d in a.next_images]
            pred = Predictor(rec.checkpoint, device=cfg.device)
            rate = _edit_rate(pred, oracle, nxt, ignore)
            pool_u = _pool_uncertainty(pred, unl_dir)
            next_u = float(np.mean([d["uncertainty"] for d in a.next_images]))
            say(f"round {r}: pre-labels of the {len(nxt)} next images: {rate:.1%} of pixels edited")
            if r < len(cfg.steps):
                for n in nxt:
                    copy_item(oracle, n, lab_dir, label=True)
                    (unl_dir / "images" / f"{n}.png").unlink()
                labelled_names = sorted([*labelled_names, *nxt])
            rounds.append(Round(r, rec.id, parent, n_train, steps, train_s,
                                [t.to_dict() for t in a.targets], a.verdict, a.reasons, nxt, rate,
                                next_u, pool_u,
                                str(rec.checkpoint), str(report)))
            batches.append(nxt)
            checkpoints.append(rec.checkpoint)
            parent = rec.id
        # every model on the same images (the last batch, which none of them trained on)
        same = [_edit_rate(Predictor(c, device=cfg.device), oracle, batches[-1], ignore)
                for c in checkpoints]
        res = LoopResult(cfg, brief_d, rounds, same, out / "report.html")
        write_loop_report(res, test)
        (out / "loop.json").write_text(json.dumps(res.to_dict(), indent=1))
        return res
    finally:
        torch.set_num_threads(threads)


def _figure(res: LoopResult, path: Path) -> None:
    from matplotlib.figure import Figure

    rs = res.rounds
    x = np.arange(1, len(rs) + 1)
    fig = Figure(figsize=(9, 3.4), dpi=110)
    a, b = fig.subplots(1, 2)
    t = rs[0].targets[0]
    vals = [r.targets[0]["value"] or 0.0 for r in rs]
    lo = [v - (r.targets[0]["ci"] or [v, v])[0] for v, r in zip(vals, rs)]
    hi = [(r.targets[0]["ci"] or [v, v])[1] - v for v, r in zip(vals, rs)]
    a.bar(x, vals, color=["#2a9d55" if r.targets[0]["met"] else "#c0392b" for r in rs],
          yerr=[lo, hi], capsize=5)
    a.axhline(t["threshold"], color="k", ls="--", label=f"target {t['target']}")
    a.set_xticks(x, [f"round {r.index}\n{r.n_train} images" for r in rs])
    a.set_ylim(0, 1)
    a.set_title("held-out " + t["metric"] + " (95% CI)")
    a.legend(loc="upper left", fontsize=8)
    b.plot(x, [r.edit_rate for r in rs], "o-", lw=2, label="own next batch")
    b.plot(x, res.same_batch_edit_rates, "s--", lw=2, label="same final batch")
    b.set_xticks(x, [f"round {r.index}" for r in rs])
    b.set_ylim(0, max(0.05, 1.2 * max([r.edit_rate for r in rs] + res.same_batch_edit_rates)))
    b.set_title("pre-label edit rate (pixels changed)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def write_loop_report(res: LoopResult, test: Path) -> Path:
    import datetime

    from segflow import __version__
    from segflow.formats import open_dataset
    from segflow.io import write_image
    from segflow.ops.draw import draw_overlay
    from segflow.predict.predictor import Predictor
    from segflow.report import relpath, write_report

    path = res.report
    fig_dir = path.parent / "report_files"
    fig_dir.mkdir(parents=True, exist_ok=True)
    _figure(res, fig_dir / "rounds.png")
    rs = res.rounds

    def num(v):
        return "—" if v is None or v != v else f"{v:.4f}"

    rows = [
        ["labelled images", *[r.n_train for r in rs]],
        ["training steps", *[r.steps for r in rs]],
        ["training time (s)", *[f"{r.train_s:.1f}" for r in rs]],
        ["model (registry id)", *[r.model_id for r in rs]],
        ["parent", *[r.parent or "—" for r in rs]],
        *[[t["target"], *[f"{num(r.targets[k]['value'])} (95% CI "
                           f"{num((r.targets[k]['ci'] or [None])[0])}–"
                           f"{num((r.targets[k]['ci'] or [None, None])[1])}) "
                           f"{'met' if r.targets[k]['met'] else 'NOT met'}" for r in rs]]
          for k, t in enumerate(rs[0].targets)],
        ["verdict", *[r.verdict for r in rs]],
        ["next images (by uncertainty)", *[len(r.next_images) for r in rs]],
        ["their mean uncertainty (pool mean)", *[f"{r.next_uncertainty:.3f} "
                                                 f"({r.pool_uncertainty:.3f})" for r in rs]],
        ["pre-label edit rate on them", *[f"{r.edit_rate:.2%}" for r in rs]],
        ["pre-label edit rate, same final batch", *[f"{v:.2%}" for v in
                                                    res.same_batch_edit_rates]],
        ["assessment", *[relpath(r.report, path.parent) for r in rs]],
    ]
    falls = all(b.edit_rate < a.edit_rate for a, b in zip(rs, rs[1:]))
    sections = [
        {"title": "The loop", "text":
            f"Brief: task {res.brief['task']}, targets {', '.join(res.brief['targets'])}. "
            f"Domain {res.config.domain} ({res.config.size}px), a pool of {res.config.n_pool} "
            f"unlabelled images whose synthetic ground truth plays the annotators, "
            f"{res.config.n_test} gold test images never trained on. Each round trains a U-Net, "
            "records it in the model registry (models/), assesses it against the brief, "
            "pre-labels the next images chosen by uncertainty and has them 'labelled'. "
            f"The pre-label edit rate {'falls' if falls else 'does NOT fall'} between rounds."},
        {"title": "Rounds side by side", "table": {
            "header": ["", *[f"round {r.index}" for r in rs]], "rows": rows}},
        {"title": "Reasons", "table": {"header": [f"round {r.index}" for r in rs], "rows": [
            ["; ".join(r.reasons) for r in rs]]}},
        {"title": "Figures", "figures": [{"src": f"{fig_dir.name}/rounds.png", "caption":
                                          "left: the target metric per round; right: the share "
                                          "of pre-label pixels the annotators changed"}]},
    ]
    ds = open_dataset(test)
    pal = ds.schema.palette()
    preds = [Predictor(r.checkpoint, device="cpu") for r in rs]
    cards = []
    for k in range(min(3, len(ds))):
        it = ds[k]
        img = it.image()
        g = np.where(it.semantic.ids == ds.schema.ignore_index, 0, it.semantic.ids)
        write_image(fig_dir / f"ex{k}_gt.png", draw_overlay(img, g, palette=pal))
        images = [{"src": f"{fig_dir.name}/ex{k}_gt.png", "caption": "ground truth"}]
        for r, p in zip(rs, preds):
            write_image(fig_dir / f"ex{k}_r{r.index}.png",
                        draw_overlay(img, p.predict(img), palette=pal))
            images.append({"src": f"{fig_dir.name}/ex{k}_r{r.index}.png",
                           "caption": f"round {r.index}"})
        cards.append({"title": it.name, "subtitle": "test image", "facts": [], "images": images})
    sections.append({"title": "Test images: ground truth and each round's prediction",
                     "cards": cards})
    return write_report(path, "report.html", title="segflow loop: brief, train, assess, retrain",
                        subtitle=" → ".join(f"round {r.index}: {r.verdict}" for r in rs),
                        sections=sections, version=__version__,
                        made=datetime.datetime.now().isoformat("T", "seconds"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m segflow.loop", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/loop", help="output folder (default out/loop)")
    p.add_argument("--small", action="store_true", help="the test suite's small size")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = LoopConfig.small() if args.small else LoopConfig()
    cfg.seed = args.seed
    try:
        res = run_loop(args.out, cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    except SegflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {res.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
