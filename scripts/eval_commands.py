"""``ivr eval TENANT FILE.yaml``: measure a tenant's knowledge base with an evaluation set.

Every question of the set goes through the tenant's own secretary (the engine of ``ivr ask``, the
telephone's ``ask_ai`` and WhatsApp; ``--flow FLOW[:NODE]`` takes a published ``ask_ai`` node's
settings). It prints a table (one row per question: decision, right or wrong, best passage and
its score, hit@1/hit@3 of the expected document) and the totals — hit@1, hit@3, answer accuracy,
out-of-scope questions refused, unsure precision and recall — with a progress bar on stderr.
``--min-accuracy`` / ``--min-refused`` make the exit code 1 when a goal is missed (for CI);
``--json`` prints the whole report. The set's format is in `rag.evaluation`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rag.evaluation import EvalReport, EvalSetError, QuestionResult, evaluate, load_eval_set
from scripts.ask_commands import _secretary


def _table(report: EvalReport) -> None:
    click.echo(f"{'':2} {'decision':<9} {'best':>6} {'h@1':>4} {'h@3':>4}  question → answer")
    for r in report.results:
        mark = "ok" if r.correct else "--"
        hit1 = "" if r.hit1 is None else ("y" if r.hit1 else "n")
        hit3 = "" if r.hit3 is None else ("y" if r.hit3 else "n")
        best = "" if r.best_score is None else f"{r.best_score:.3f}"
        answer = " ".join(r.answer.split())[:70]
        click.echo(f"{mark:2} {r.decision:<9} {best:>6} {hit1:>4} {hit3:>4}  {r.question} → {answer}")


def _totals(report: EvalReport) -> None:
    m = report.metrics

    def pct(key: str) -> str:
        value = m[key]
        return "-" if value is None else f"{100 * float(value):.0f}%"

    click.echo(f"{report.name}: {m['answerable']} answerable, {m['out_of_scope']} out of scope")
    click.echo(f"  hit@1 {pct('hit_at_1')}  hit@3 {pct('hit_at_3')}  answers correct {pct('accuracy')}  "
               f"out of scope refused {pct('refused')}  unsure precision {pct('unsure_precision')}  "
               f"recall {pct('unsure_recall')}")


@click.command("eval")
@click.argument("tenant")
@click.argument("eval_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default=None, metavar="URL",
              help="Database URL (default: $IVR_DATABASE_URL, else sqlite:///var/ivr.db).")
@click.option("--flow", "flow_ref", default=None, metavar="FLOW[:NODE]",
              help="Answer with the settings of this published flow's ask_ai node.")
@click.option("--min-score", type=click.FloatRange(-1, 1), default=None, help="Override the unsure threshold.")
@click.option("--index-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=None, help="Exit 1 below this accuracy.")
@click.option("--min-refused", type=click.FloatRange(0, 1), default=None,
              help="Exit 1 when fewer out-of-scope questions are refused.")
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON.")
def eval_command(tenant: str, eval_file: Path, url: str | None, flow_ref: str | None, min_score: float | None,
                 index_dir: Path | None, min_accuracy: float | None, min_refused: float | None,
                 as_json: bool) -> None:
    """Ask TENANT's secretary every question of EVAL_FILE and score the answers."""
    try:
        eval_set = load_eval_set(eval_file)
    except EvalSetError as e:
        raise click.ClickException(str(e)) from e
    total = len(eval_set.answerable) + len(eval_set.out_of_scope)
    with _secretary(tenant, url, flow_ref, None, min_score, None, index_dir, channel="phone") as secretary, \
            click.progressbar(length=total, label="questions", file=sys.stderr) as bar:

        def advance(_: QuestionResult) -> None:
            bar.update(1)

        report = evaluate(secretary.ask, eval_set, progress=advance)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        _table(report)
        _totals(report)
    m = report.metrics
    missed = [f"accuracy {m['accuracy']} < {min_accuracy}" for _ in [0]
              if min_accuracy is not None and (m["accuracy"] or 0) < min_accuracy]
    missed += [f"refused {m['refused']} < {min_refused}" for _ in [0]
               if min_refused is not None and (m["refused"] or 0) < min_refused]
    if missed:
        raise click.ClickException("goal missed: " + "; ".join(missed))
