"""Leaderboard from results JSONs: Markdown, a static sortable HTML page, and a PNG plot."""
from __future__ import annotations

import html
from pathlib import Path

from repopeftbench.io import atomic_write_text
from repopeftbench.results import RESULTS_FILE, Results

from .registry import is_sanity_method

COLUMNS = ("em", "paper_em", "strict_em", "edit_sim")


AUDIT_MODES = ("own", "mean", "shuffled", "none")   # audit columns (a missing one shows "-")


def collect(runs_dir: str | Path) -> list[dict]:
    """One entry per results.json under ``runs_dir`` (sorted by path for stable output)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no such directory of runs")
    entries = []
    for path in sorted(runs_dir.rglob(RESULTS_FILE)):
        r = Results.load(path)
        s = r.scores
        entries.append({
            "run": str(path.parent.relative_to(runs_dir)) or ".",
            "method": r.method_name, "model": r.model.name or "-",
            "config": r.dataset.config, "split": r.dataset.split,
            "dataset": r.dataset.manifest_sha256[:12], "n_tasks": s["n_tasks"],
            "n_repos": s["n_repos"], "metrics": s["metrics"], "limit": r.dataset.limit,
            "per_repo": s.get("per_repo", {}), "audit": r.audit,
            "max_input": (r.generation or {}).get("max_input_tokens") or PROTOCOL_INPUT_TOKENS,
            "sample": r.dataset.sample, "scoring": r.scoring})
    return entries


def _generated(entries: list[dict]) -> list[dict]:
    return [e for e in entries if e.get("scoring", "generate") == "generate"]


def _tf_cells(e: dict | None) -> list[str]:
    """tf_em (with its CI) and tf_logprob of a teacher-forced run, or dashes."""
    if e is None:
        return ["-", "-"]
    m = e["metrics"]
    tf = m["tf_em"]
    ci = (f" [{tf['micro_ci'][0]:.1f}, {tf['micro_ci'][1]:.1f}]"
          if e["n_repos"] >= MIN_REPOS_FOR_CI else f" (no CI: {e['n_repos']} repos)")
    return [f"{tf['micro']:.1f}{ci}", f"{m['tf_logprob']['micro']:.3f}"]


PROTOCOL_INPUT_TOKENS = 4096
MIN_REPOS_FOR_CI = 5


def display_model(name: str) -> str:
    """The model as a reader should see it (offline aliases are de-quantised GGUF weights)."""
    from .models import ALIASES
    return ALIASES[name].description if name in ALIASES else name


def em_cell(e: dict, which: str = "micro") -> str:
    em = e["metrics"]["em"]
    if e["n_repos"] < MIN_REPOS_FOR_CI:
        return f"{em[which]:.1f} (no CI: {e['n_repos']} repos)"
    lo, hi = em[f"{which}_ci"]
    return f"{em[which]:.1f} [{lo:.1f}, {hi:.1f}]"


def _board_key(e: dict) -> tuple:
    return (e["config"], e["split"], e["limit"] or 0, e.get("sample", "hash") if e["limit"] else "",
            e.get("max_input", PROTOCOL_INPUT_TOKENS))


def _board_title(key: tuple) -> str:
    config, split, limit, how, max_input = key
    dealt = ", dealt over repositories" if how == "per_repo" else ""
    sample = f", fixed sample of {limit} tasks (--limit{dealt}): not ranked against full runs" \
        if limit else ", all tasks"
    if max_input != PROTOCOL_INPUT_TOKENS:
        sample += (f", inputs cut to {max_input} tokens (the protocol's budget is "
                   f"{PROTOCOL_INPUT_TOKENS}): not ranked against other budgets")
    return f"{config}/{split}{sample}"


def to_markdown(entries: list[dict]) -> str:
    """Boards per (track, split, sample): methods ranked by em; sanity runs apart; a
    per-repository table; CIs from fewer than 5 repositories are not shown as intervals."""
    from repopeftbench.stats import markdown_table

    parts = ["# RepoPeftBench leaderboard",
             f"Exact match (em, %), micro with a 95% CI from a bootstrap over repositories, and "
             f"macro; higher is better. A CI needs at least {MIN_REPOS_FOR_CI} repositories."]
    methods = [e for e in _generated(entries) if not is_sanity_method(e["method"])]
    forced = {(e["method"], e["model"], _board_key(e)): e for e in entries
              if e.get("scoring") == "teacher-forced"}
    for key in sorted({_board_key(e) for e in methods}):
        board = sorted((e for e in methods if _board_key(e) == key),
                       key=lambda e: -e["metrics"]["em"]["micro"])
        tf_here = any((e["method"], e["model"], key) in forced for e in board)
        bleu_here = any("codebleu" in e["metrics"] for e in board)    # an optional metric
        rows = [[i + 1, e["method"], display_model(e["model"]), e["n_tasks"], e["n_repos"],
                 em_cell(e), em_cell(e, "macro"), f"{e['metrics']['paper_em']['micro']:.1f}",
                 f"{e['metrics']['strict_em']['micro']:.1f}", f"{e['metrics']['edit_sim']['micro']:.1f}",
                 *([f"{e['metrics']['codebleu']['micro']:.1f}" if "codebleu" in e["metrics"] else "-"]
                   if bleu_here else []),
                 *(_tf_cells(forced.get((e["method"], e["model"], key))) if tf_here else [])]
                for i, e in enumerate(board)]
        parts += [f"## {_board_title(key)}", markdown_table(
            ["rank", "method", "model", "tasks", "repos", "em micro", "em macro", "paper_em",
             "strict_em", "edit sim", *(["CodeBLEU"] if bleu_here else []),
             *(["tf_em (teacher-forced)", "tf_logprob (nats/token)"] if tf_here else [])], rows)]
        audited = [e for e in board if e.get("audit")]
        if audited:
            parts.append("Adapter audit (em %, micro with 95% CI; own minus mean is paired):\n\n"
                         + markdown_table(
                ["method", "own adapter", "mean adapter", "shuffled adapter", "no adapter",
                 "own - mean", "raw cosine", "centred cosine", "update cosine"],
                [[e["method"], *(_with_ci(e["audit"].get(k)) for k in AUDIT_MODES),
                  _diff(e["audit"].get("own_minus_mean")),
                  f"{e['audit'].get('cosine', {}).get('mean', float('nan')):.4f}",
                  f"{e['audit'].get('cosine', {}).get('centred_mean', float('nan')):.4f}",
                  f"{e['audit'].get('cosine', {}).get('update_mean', float('nan')):.4f}"]
                 for e in audited]))
        repos = sorted({r for e in board for r in e["per_repo"]})
        if repos and len(board) > 0:
            parts.append("Per repository (em, %, tasks):\n\n" + markdown_table(
                ["repository", *(e["method"] for e in board)],
                [[r, *(f"{e['per_repo'][r]['em']:.1f} ({e['per_repo'][r]['n']})"
                       if r in e["per_repo"] else "-" for e in board)] for r in repos]))
    generated_keys = {(e["method"], e["model"], _board_key(e)) for e in methods}
    for key in sorted({k[2] for k in forced}):
        board = sorted((e for (m, mo, k), e in forced.items() if k == key),
                       key=lambda e: -e["metrics"]["tf_em"]["micro"])
        parts += [f"## {_board_title(key)}: teacher-forced (tf_em is strict greedy exact match "
                  f"without decoding; not comparable to em)", markdown_table(
                      ["rank", "method", "model", "tasks", "repos", "tf_em micro",
                       "tf_logprob (nats/token)", "tf_token_acc", "also generated"],
                      [[i + 1, e["method"], display_model(e["model"]), e["n_tasks"], e["n_repos"],
                        *_tf_cells(e), f"{e['metrics']['tf_token_acc']['micro']:.1f}",
                        "yes" if (e["method"], e["model"], key) in generated_keys else "no"]
                       for i, e in enumerate(board)])]
        audited = [e for e in board if e.get("audit")]
        if audited:
            parts.append("Adapter audit, teacher-forced (tf_em %; own minus mean is paired):\n\n"
                         + markdown_table(
                ["method", "own adapter", "mean adapter", "shuffled adapter", "no adapter",
                 "own - mean (tf_em)",
                 "own - mean (tf_logprob)"],
                [[e["method"], *(_with_ci(e["audit"].get(k)) for k in AUDIT_MODES),
                  _diff(e["audit"].get("own_minus_mean")),
                  _diff(e["audit"].get("own_minus_mean_tf_logprob"), 3)] for e in audited]))
    sanity = [e for e in entries if is_sanity_method(e["method"])]
    if sanity:
        parts += ["## Sanity checks (not methods: gold must score 100, empty 0)", markdown_table(
            ["method", "config/split", "tasks", "em"],
            [[e["method"], f"{e['config']}/{e['split']}", e["n_tasks"],
              f"{e['metrics']['em']['micro']:.1f}"] for e in sorted(sanity, key=_board_key)])]
    return "\n\n".join(parts) + "\n"


_SCRIPT = """
function sortBy(col, numeric) {
  const body = document.querySelector('#board tbody');
  const rows = Array.from(body.rows);
  const th = document.querySelectorAll('#board th')[col];
  const dir = th.dataset.dir === 'desc' ? 'asc' : 'desc';
  document.querySelectorAll('#board th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir;
  rows.sort((a, b) => {
    const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
    const c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return dir === 'asc' ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('#board th').forEach((th, i) =>
  th.addEventListener('click', () => sortBy(i, th.dataset.numeric === '1')));
const m = location.hash.match(/sort=(\\d+)/);
if (m) sortBy(parseInt(m[1]), document.querySelectorAll('#board th')[parseInt(m[1])].dataset.numeric === '1');
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid #ddd;text-align:left}
th{cursor:pointer;background:#f4f4f6;user-select:none}
th[data-dir=asc]::after{content:' \\25B2'} th[data-dir=desc]::after{content:' \\25BC'}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#888;font-size:12px}
"""


def to_html(entries: list[dict]) -> str:
    head = [("method", 0), ("model", 0), ("config", 0), ("split", 0), ("sample", 0), ("tasks", 1),
            ("em micro", 1), ("em macro", 1), ("paper_em", 1), ("strict_em", 1), ("edit sim", 1)]
    rows = []
    for e in sorted(_generated(entries), key=lambda e: (e["config"], e["split"], -e["metrics"]["em"]["micro"])):
        m = e["metrics"]

        def num(v: float, ci: list[float] | None = None) -> str:
            extra = f' <span class="ci">[{ci[0]:.1f}, {ci[1]:.1f}]</span>' if ci else ""
            if ci and e["n_repos"] < MIN_REPOS_FOR_CI:
                extra = f' <span class="ci">no CI: {e["n_repos"]} repos</span>'
            return f'<td class="num" data-v="{v:.4f}">{v:.1f}{extra}</td>'

        method = e["method"] + (" (sanity check)" if is_sanity_method(e["method"]) else "")
        sample = f"--limit {e['limit']}" if e["limit"] else "all"
        if e.get("max_input", PROTOCOL_INPUT_TOKENS) != PROTOCOL_INPUT_TOKENS:
            sample += f", inputs cut to {e['max_input']} tokens"
        cells = [f'<td data-v="{html.escape(str(x))}">{html.escape(str(x))}</td>'
                 for x in (method, display_model(e["model"]), e["config"], e["split"], sample)]
        cells.append(f'<td class="num" data-v="{e["n_tasks"]}">{e["n_tasks"]}</td>')
        cells += [num(m["em"]["micro"], m["em"]["micro_ci"]), num(m["em"]["macro"], m["em"]["macro_ci"]),
                  num(m["paper_em"]["micro"]), num(m["strict_em"]["micro"]), num(m["edit_sim"]["micro"])]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f'<th data-numeric="{n}">{html.escape(h)}</th>' for h, n in head)
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>RepoPeftBench "
            f"leaderboard</title><style>{_STYLE}</style></head><body>\n<h1>RepoPeftBench leaderboard</h1>\n"
            f"<p>Exact match in %: micro with 95% confidence interval from a bootstrap over "
            f"repositories, and macro (mean of per-repository scores). Click a column to sort.</p>\n"
            f'<table id="board"><thead><tr>{ths}</tr></thead><tbody>\n' + "\n".join(rows) +
            f"\n</tbody></table>\n<p><img src=leaderboard.png alt='em by method and split' "
            f"style='max-width:900px'></p>\n<script>{_SCRIPT}</script>\n</body></html>\n")


def plot(entries: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({f"{e['config']}/{e['split']}" for e in entries})
    methods = sorted({f"{e['method']} ({e['model']})" for e in entries})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(splits) * max(1, len(methods)) ** 0.5), 4), dpi=120)
    width = 0.8 / max(1, len(methods))
    for j, meth in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for i, sp in enumerate(splits):
            for e in entries:
                if f"{e['config']}/{e['split']}" == sp and f"{e['method']} ({e['model']})" == meth:
                    em = e["metrics"]["em"]
                    xs.append(i + j * width - 0.4 + width / 2)
                    ys.append(em["micro"])
                    lo.append(em["micro"] - em["micro_ci"][0])
                    hi.append(em["micro_ci"][1] - em["micro"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=meth)
    ax.set_xticks(range(len(splits)), splits, rotation=15)
    ax.set_ylabel("exact match (em, %)")
    ax.set_ylim(0, 100)
    ax.set_title("RepoPeftBench: em with 95% CI over repositories")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_leaderboard(runs_dir: str | Path, out_dir: str | Path) -> tuple[list[dict], str | None]:
    """Write leaderboard.md, index.html and leaderboard.png; returns the entries and, when
    the plot could not be drawn (matplotlib missing), why."""
    entries = collect(runs_dir)
    if not entries:
        raise FileNotFoundError(f"{runs_dir}: no results.json found")
    out = Path(out_dir)
    atomic_write_text(out / "leaderboard.md", to_markdown(entries))
    atomic_write_text(out / "index.html", to_html(entries))
    try:
        plot(_generated(entries), out / "leaderboard.png")
    except ImportError:
        return entries, "leaderboard.png not drawn: matplotlib is not installed " \
                        "(pip install matplotlib)"
    return entries, None


def _with_ci(v: dict | None) -> str:
    if not v:
        return "-"
    return f"{v['micro']:.1f} [{v['micro_ci'][0]:.1f}, {v['micro_ci'][1]:.1f}]"


def _diff(v: dict | None, digits: int = 1) -> str:
    if not v:
        return "-"
    d = digits
    return f"{v['delta']:+.{d}f} [{v['ci'][0]:+.{d}f}, {v['ci'][1]:+.{d}f}]"
