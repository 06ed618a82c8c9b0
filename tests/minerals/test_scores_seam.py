"""The comparison's public seam (minerals.scores): the names other modules use are public, and
the private names they replaced are the same objects (no behaviour changed)."""

import ast
from pathlib import Path

from napari_sigma.minerals import scores


def test_the_private_aliases_are_gone_and_nothing_imports_them():
    # the names other modules used before the seam was public (twenty-second session); every
    # user imports the public names now (twenty-third), so the aliases were dropped
    dropped = {"_MeasuredScales", "_sigma", "_without"}
    assert not [name for name in dropped if hasattr(scores, name)]
    package = Path(scores.__file__).parents[1]
    users = []
    for path in [*package.rglob("*.py"), *Path(__file__).parents[1].rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "napari_sigma.minerals.scores", "napari_sigma.minerals.identify"
            ):  # fmt: skip
                users += [f"{path.name}: {a.name}" for a in node.names if a.name in dropped]
    assert not users, users


def test_own_elements_imports_no_private_name_of_scores():
    import napari_sigma.minerals.own_elements as own

    tree = ast.parse(Path(own.__file__).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "napari_sigma.minerals.scores"
        for alias in node.names
    ]
    assert imported and not [name for name in imported if name.startswith("_")], imported


def test_the_seam_computes_what_it_did():
    # the tolerance: counting 1.0, 8 % of 50 = 4.0, 0.7 in quadrature
    assert abs(scores.tolerance_sigma(50.0, 40.0, 1.0) - (1.0 + 16.0 + 0.49) ** 0.5) < 1e-12
    assert scores.renormalised_without({"Si": 46.7, "O": 53.3}, "O") == {"Si": 100.0}
    chi2, n = scores.MeasuredScales({"Si": 46.7, "O": 53.3}, {}).best_chi2({"Si": 46.7, "O": 53.3})
    assert chi2 == 0.0 and n == 2
