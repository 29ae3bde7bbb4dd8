"""The expressivity measurements of the report: rank-bound histograms and the paper's Table 2.

Nothing here trains. Both are computed from random networks (every parameter N(0, 1), float64,
one class, seeded) with the `tensor_zoo.expressivity` functions:

- **Rank-bound histograms** (Khrulkov, Hrinchuk and Oseledets, ICLR 2019, their M = 10, T = 6,
  ranks 1, 2, 4, 8): for random TT networks (xi = product) and random ReLU RNNs (TT with
  xi = relu), the certified lower bound that `cp_rank_lower_bound` gives from the odd/even
  matricization, and for the ReLU RNNs the width of an equivalent ReLU shallow network that it
  implies (`relu_shallow_width_bound`), each beside the value of the theorem it illustrates.
- **Table 2** (Khrulkov, Novikov and Oseledets, ICLR 2018): the width a TT, HT or CP network
  needs to compute the weight tensor of a random TT, HT or CP network of width r, measured as
  the minimal ranks of the matricizations (`tt_ranks`, `ht_ranks`, `cp_rank_lower_bound`) and
  built by the exact conversions (`HTNet.from_tt`, `TTNet.from_ht`, `*.from_cp`), which are
  checked to give the same logits.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tensor_zoo.experiments.report import EXPRESSIVITY_TITLE
from tensor_zoo.expressivity import (
    cp_rank_lower_bound,
    ht_ranks,
    random_templates,
    relu_shallow_width_bound,
    theorem1_bound,
    tt_ranks,
)
from tensor_zoo.networks import CPNet, HTNet, TTNet


@dataclass(frozen=True)
class HistogramSetting:
    """Random networks of the rank-bound histograms.

    Args:
        num_templates: M, the template patches of the grid (and the feature size m).
        num_positions: T, the sequence length.
        ranks: the TT-ranks of the random networks.
        samples: networks per (xi, rank).
        seed: first seed; network i of rank r uses seed + 1000 r + i.
    """

    num_templates: int
    num_positions: int
    ranks: tuple[int, ...]
    samples: int
    seed: int = 0


@dataclass(frozen=True)
class TableSetting:
    """Random networks of the Table 2 measurement: d positions, feature size m, width r.

    Args:
        d: positions (a power of two, for HT).
        m: feature size (m > r, as the table assumes).
        r: the width of the networks converted.
        seeds: networks per format (seed 0, 1, ...).
    """

    d: int
    m: int
    r: int
    seeds: int


HISTOGRAMS = HistogramSetting(num_templates=10, num_positions=6, ranks=(1, 2, 4, 8), samples=32)
HISTOGRAMS_QUICK = HistogramSetting(num_templates=4, num_positions=4, ranks=(1, 2), samples=3)
TABLE = (TableSetting(8, 3, 2, 3), TableSetting(8, 4, 3, 3), TableSetting(16, 3, 2, 3))
TABLE_QUICK = (TableSetting(8, 3, 2, 1),)
XIS = ("product", "relu")
# A looser count of singular values (relative to the largest), shown beside the certified one.
LOOSE_TOLERANCE = 1e-13


def randomized(net: nn.Module, seed: int) -> nn.Module:
    """`net` in float64, eval mode, with every parameter drawn N(0, 1) from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    net = net.double().eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return net


def random_rnn(setting: HistogramSetting, rank: int, xi: str, seed: int) -> TTNet:
    """A random TT network (xi = product) or generalized RNN (xi = relu) on T positions.

    Each position is one M-dimensional patch, mapped by f(x) = A x + b to m = M features (no
    constant appended), so that the features of M random templates are a generic M x M matrix.
    """
    size = setting.num_templates
    net = TTNet(
        in_channels=size,
        image_size=(1, setting.num_positions),
        patch_size=1,
        feature_dim=size,
        rank=rank,
        num_classes=1,
        feature_map="identity",
        append_one=False,
        xi=xi,
    )
    return randomized(net, seed)


@dataclass(frozen=True)
class RankBounds:
    """The bounds of one (xi, rank) histogram.

    Args:
        xi: "product" or "relu".
        rank: the networks' TT-rank.
        matricization_ranks: per network, the certified bound of `cp_rank_lower_bound` (the
            numerical rank of the odd/even matricization of W, or of the grid tensor for relu).
        widths: per network, the width an equivalent shallow network of the same kind needs:
            the CP rank bound itself (product), `relu_shallow_width_bound` (relu).
        theorem: what the theorem says the generic (product) or the best (relu) network reaches.
        method: how the bound was computed.
    """

    xi: str
    rank: int
    matricization_ranks: tuple[int, ...]
    widths: tuple[int, ...]
    theorem: float
    method: str


def relu_theorem_value(size: int, count: int, rank: int) -> float:
    """KHO 2019: some ReLU RNN of rank <= R needs shallow width >= (2 / (M T)) min(M, R)^(T/2)."""
    return 2 / (size * count) * min(size, rank) ** (count / 2)


def rank_bounds(setting: HistogramSetting, xi: str, rank: int) -> RankBounds:
    """The certified bounds of `setting.samples` random networks of one xi and rank."""
    size, count = setting.num_templates, setting.num_positions
    ranks, widths, methods = [], [], set()
    for index in range(setting.samples):
        seed = setting.seed + 1000 * rank + index
        net = random_rnn(setting, rank, xi, seed)
        templates = random_templates(net, size, seed=seed)
        bound = cp_rank_lower_bound(net, positions=range(count), templates=templates)[0]
        ranks.append(bound.bound)
        widths.append(bound.bound if xi == "product" else relu_shallow_width_bound(bound, size))
        methods.add(bound.method)
    theorem = (
        theorem1_bound(count, size, rank)
        if xi == "product"
        else relu_theorem_value(size, count, rank)
    )
    return RankBounds(xi, rank, tuple(ranks), tuple(widths), theorem, ", ".join(sorted(methods)))


def histogram_figure(results: list[RankBounds], setting: HistogramSetting, path: Path) -> None:
    """One panel per (xi, rank): the distribution of the width bound, the theorem's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = sorted({result.rank for result in results})
    figure, axes = plt.subplots(
        len(XIS),
        len(ranks),
        figsize=(2.7 * len(ranks), 2.6 * len(XIS)),
        squeeze=False,
        sharex="row",
    )
    largest = setting.num_templates ** (setting.num_positions // 2)  # the matrix's side
    product_bins = [0.8 * 1.25**k for k in range(math.ceil(math.log(largest / 0.8, 1.25)) + 2)]
    relu_top = max((w for r in results if r.xi == "relu" for w in r.widths), default=1)
    relu_bins = [edge - 0.5 for edge in range(relu_top + 2)]  # one bin per integer
    for result in results:
        axis = axes[XIS.index(result.xi)][ranks.index(result.rank)]
        if result.xi == "product":
            axis.hist(result.widths, bins=product_bins, color="tab:blue")
            axis.set_xscale("log")
        else:
            axis.hist(result.widths, bins=relu_bins, color="tab:red")
        axis.axvline(result.theorem, color="k", linestyle="--", linewidth=1)
        kind = "TT (product)" if result.xi == "product" else "ReLU RNN"
        axis.set_title(f"{kind}, rank {result.rank}", fontsize=9)
        axis.tick_params(labelsize=7)
    for row, xi in enumerate(XIS):
        axes[row][0].set_ylabel("networks", fontsize=8)
        label = "CP rank >=" if xi == "product" else "ReLU shallow width >="
        for axis in axes[row]:
            axis.set_xlabel(label, fontsize=8)
    figure.suptitle(
        f"Certified lower bounds, {setting.samples} random networks per panel "
        f"(M = {setting.num_templates}, T = {setting.num_positions}); dashed: the theorem",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def spread(values: tuple[int, ...] | list[int]) -> str:
    """'median (min-max)', or the value when all are equal."""
    low, high = min(values), max(values)
    if low == high:
        return str(low)
    return f"{statistics.median(values):g} ({low}-{high})"


def histogram_table(results: list[RankBounds], setting: HistogramSetting) -> str:
    """One row per (xi, rank): matricization rank and width bound, against the theorem."""
    size, count = setting.num_templates, setting.num_positions
    lines = [
        "| network | rank | odd/even rank, median (min-max) | equivalent shallow width >= "
        "| theorem | networks at or above it |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result.xi == "product":
            name, theorem = "TT (xi = product)", f"min(m, r)^(T/2) = {result.theorem:g}"
        else:
            name = "ReLU RNN (xi = relu)"
            theorem = f"(2 / (M T)) min(M, R)^(T/2) = {result.theorem:.3g}"
        reached = sum(width >= result.theorem for width in result.widths)
        lines.append(
            f"| {name} | {result.rank} | {spread(result.matricization_ranks)} | "
            f"{spread(result.widths)} | {theorem} | {reached} of {len(result.widths)} |"
        )
    lines.append("")
    lines.append(
        f"(M = {size} templates, T = {count} positions, m = {size} features; bounds by "
        f"`cp_rank_lower_bound`: {'; '.join(sorted({r.method for r in results}))}.)"
    )
    return "\n".join(lines)


# --- Table 2 --------------------------------------------------------------------------------


def _shape(setting: TableSetting) -> dict:
    return dict(
        in_channels=1,
        image_size=(1, setting.d),
        patch_size=1,
        feature_dim=setting.m,
        num_classes=1,
        feature_map="tanh",
    )


def _relative_difference(converted: nn.Module, source: nn.Module, seed: int) -> float:
    """max |logits difference| / max |logits| on 8 random (1, 1, d) images."""
    generator = torch.Generator().manual_seed(seed)
    shape = (8, 1, 1, source.num_positions)
    images = torch.rand(shape, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        reference = source(images)
        return float((converted(images) - reference).abs().max() / reference.abs().max())


def _ht_width(net: nn.Module) -> int:
    return max(max(level) for level in ht_ranks(net)[0].ranks)


def table_measurements(setting: TableSetting) -> dict[tuple[str, str], dict[str, list]]:
    """{(equivalent, source): {"needed": [...], "built": [...], "error": [...]}} over seeds.

    needed: the minimal width of the equivalent format (TT: largest TT-rank of W; HT: largest
    HT-rank on HTNet's tree; CP: the certified lower bound on the CP rank). built: the width of
    the network the exact conversion returns (or of the network itself, error 0); error: the
    conversion's relative logits difference. The CP cells from TT and HT also hold "loose" (the
    count above LOOSE_TOLERANCE sigma_max) and "method" (how the bound was obtained).
    """
    shape = _shape(setting)
    cells: dict[tuple[str, str], dict[str, list]] = {}

    def add(key: tuple[str, str], needed: int, built: int | None = None, error: float = 0.0):
        cell = cells.setdefault(key, {"needed": [], "built": [], "error": []})
        cell["needed"].append(needed)
        if built is not None:
            cell["built"].append(built)
            cell["error"].append(error)

    def add_cp(key: tuple[str, str], net: nn.Module) -> None:
        bound = cp_rank_lower_bound(net)[0]
        add(key, bound.bound)
        loose = cp_rank_lower_bound(net, tol=LOOSE_TOLERANCE * bound.sigma_max)[0].bound
        cells[key]["loose"] = [*cells[key].get("loose", []), loose]
        cells[key]["method"] = f"{bound.method}, on {len(bound.positions)} of {setting.d} positions"

    for seed in range(setting.seeds):
        tt = randomized(TTNet(**shape, rank=setting.r), seed)
        ht = randomized(HTNet(**shape, rank=setting.r), seed + 100)
        cp = randomized(CPNet(**shape, rank=setting.r), seed + 200)
        ht_of_tt, tt_of_ht = HTNet.from_tt(tt), TTNet.from_ht(ht)
        tt_of_cp, ht_of_cp = TTNet.from_cp(cp), HTNet.from_cp(cp)
        add(("TT", "TT"), max(tt_ranks(tt)[0].ranks), max(tt.ranks))
        add(
            ("HT", "TT"),
            _ht_width(ht_of_tt),
            max(ht_of_tt.ranks),
            _relative_difference(ht_of_tt, tt, seed),
        )
        add_cp(("CP", "TT"), tt)
        add(
            ("TT", "HT"),
            max(tt_ranks(tt_of_ht)[0].ranks),
            max(tt_of_ht.ranks),
            _relative_difference(tt_of_ht, ht, seed),
        )
        add(("HT", "HT"), _ht_width(ht), max(ht.ranks))
        add_cp(("CP", "HT"), ht)
        add(
            ("TT", "CP"),
            max(tt_ranks(cp)[0].ranks),
            max(tt_of_cp.ranks),
            _relative_difference(tt_of_cp, cp, seed),
        )
        add(
            ("HT", "CP"),
            _ht_width(cp),
            max(ht_of_cp.ranks),
            _relative_difference(ht_of_cp, cp, seed),
        )
        add(("CP", "CP"), cp_rank_lower_bound(cp)[0].bound, setting.r)
    return cells


def paper_cell(equivalent: str, source: str, setting: TableSetting) -> str:
    """The paper's entry of Table 2, evaluated at (d, r)."""
    d, r = setting.d, setting.r
    half_log = math.log2(d) / 2
    if equivalent == source or source == "CP":
        return f"r = {r}"
    if (equivalent, source) == ("HT", "TT"):
        return f"r² = {r**2}"
    if (equivalent, source) == ("TT", "HT"):
        if half_log.is_integer():
            return f"r^(log2 d / 2) = {r ** int(half_log)}"
        ceiling = r ** math.ceil(half_log)
        return f"r^(log2 d / 2) = {r**half_log:.3g} (read with a ceiling: {ceiling})"
    return f"≥ r^(d/2) = {r ** (d // 2)}"


def table_markdown(setting: TableSetting, cells: dict) -> str:
    """Table 2 at one (d, m, r): the paper's entry beside ours in every cell."""
    lines = [
        f"**d = {setting.d}, m = {setting.m}, r = {setting.r}** ({setting.seeds} random "
        f"network{'s' if setting.seeds > 1 else ''} per format):",
        "",
        "| equivalent | from TT | from HT | from CP |",
        "| --- | --- | --- | --- |",
    ]
    for equivalent in ("TT", "HT", "CP"):
        row = [equivalent]
        for source in ("TT", "HT", "CP"):
            cell = cells[(equivalent, source)]
            needed = spread(cell["needed"])
            ours = needed
            if equivalent == "CP" and source != "CP":
                loose = spread(cell["loose"])
                ours = f"≥ {needed} certified" + (f" [{loose}]" if loose != needed else "")
            if cell["built"] and equivalent != "CP":
                ours += f"; built {spread(cell['built'])}"
            row.append(f"paper {paper_cell(equivalent, source, setting)}; **ours {ours}**")
        lines.append("| " + " | ".join(row) + " |")
    errors = [e for cell in cells.values() for e in cell["error"]]
    lines += ["", f"(Largest relative logits difference of a conversion: {max(errors):.1e}.)"]
    methods = sorted({cells[("CP", source)]["method"] for source in ("TT", "HT")})
    lines += [
        "",
        f"(CP row, from TT and HT: `cp_rank_lower_bound`'s default, {'; '.join(methods)}; "
        f"certified: singular values above sqrt(eps) sigma_max; where it differs, in brackets: "
        f"the count above {LOOSE_TOLERANCE:g} sigma_max, not certified.)",
    ]
    return "\n".join(lines)


def expressivity_markdown(figures: Path, quick: bool = False) -> str:
    """The report's expressivity section; writes figures/rank_bound_histograms.png."""
    setting = HISTOGRAMS_QUICK if quick else HISTOGRAMS
    results = [rank_bounds(setting, xi, rank) for xi in XIS for rank in setting.ranks]
    histogram_figure(results, setting, figures / "rank_bound_histograms.png")
    text = [
        f"## {EXPRESSIVITY_TITLE}",
        "",
        "Measured, not trained: random networks (every parameter N(0, 1), float64, one class, "
        "seeded, so every number below is reproduced exactly by `report`) and the "
        "`tensor_zoo.expressivity` functions (docs/expressivity.md).",
        "",
        "### Rank-bound histograms (Khrulkov, Hrinchuk, Oseledets 2019)",
        "",
        "**Paper (KHO 2019).** Random generalized RNNs with M = 10, T = 6 and ranks 1, 2, 4, 8; "
        "a lower bound on the width of an equivalent shallow network from the rank of the "
        "odd/even matricization of the grid tensor; the distributions are plotted (a figure, no "
        "table). Theorem: some ReLU RNN of rank R needs shallow width >= (2 / (M T)) "
        "min(M, R)^(T/2), while an open set of ReLU RNNs is matched by a rank-1 shallow network.",
        "",
        f"**Ours** ({setting.samples} networks per rank; M = {setting.num_templates} N(0, 1) "
        f"templates of dimension M mapped by f(x) = A x + b to m = M features; T = "
        f"{setting.num_positions}). TT (xi = product): the certified CP-rank lower bound of W "
        "(the grid tensor of M >= m generic templates has the same matricization ranks, so W is "
        "used directly), against Theorem 1's generic min(m, r)^(T/2). ReLU RNN (TT with "
        "xi = relu): the rank of the odd/even matricization of the grid tensor and the width "
        "of a ReLU shallow network it certifies, rank / (M T / 2) rounded up "
        "(`relu_shallow_width_bound`), against the theorem's value. Singular values above "
        "sqrt(eps) sigma_max are counted.",
        "",
        histogram_table(results, setting),
        "",
        "![rank-bound histograms](figures/rank_bound_histograms.png)",
        "",
        "### Table 2: the width an equivalent network needs (KNO 2018)",
        "",
        "**Paper.** Given a network of width r (m > r): TT from HT needs r^(log2 d / 2), HT from "
        "TT r², CP from TT or HT at least r^(d/2) (generic), and TT or HT from CP r. **Ours:** "
        "*needed* is the largest minimal rank of the equivalent format, measured on W (TT: "
        "`tt_ranks`; HT: `ht_ranks` on HTNet's tree, leaves included; CP: the certified "
        "`cp_rank_lower_bound` of the odd/even matricization, over a sub-grid when m^d is "
        "large); *built* is the largest width of the network the exact conversion returns "
        "(`HTNet.from_tt`, `TTNet.from_ht`, `TTNet.from_cp`, `HTNet.from_cp`); median "
        "(min-max) over the random networks when they differ.",
        "",
    ]
    for table_setting in TABLE_QUICK if quick else TABLE:
        text += [table_markdown(table_setting, table_measurements(table_setting)), ""]
    return "\n".join(text)
