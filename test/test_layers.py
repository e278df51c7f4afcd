"""The layering contract of docs/architecture.md, checked on the import graph (every import, also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "semseg_ros"
ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs", "diagnostic_msgs", "tf2_ros", "rcl_interfaces"}
CORE = (
    "calibration",
    "labels",
    "pictures",
    "data",
    "models",
    "train",
    "eval",
    "inference",
    "fusion",
    "synth",
    "schema",
    "errors",
    "files",
    "paths",
    "topics",
)
APPS = ("semseg_ros.ros", "semseg_ros.cli", "semseg_ros.demo", "semseg_ros.__main__")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    """Module -> every module it imports (absolute names; `from a import b` counts a and a.b)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[_module_name(path)] = found
    return graph


GRAPH = _imports()
OWN = {m: {d for d in deps if d in GRAPH and d != m and d != "semseg_ros"} for m, deps in GRAPH.items()}


def _inside(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _inside(m, tuple(f"semseg_ros.{c}" for c in CORE))))
def test_the_core_is_ros_free_and_below_the_applications(module: str) -> None:
    assert not {d for d in GRAPH[module] if d.split(".")[0] in ROS_PACKAGES}, f"{module} imports ROS"
    assert not {d for d in OWN[module] if _inside(d, APPS)}, f"{module} imports an application module"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _inside(m, ("semseg_ros.ros",))))
def test_nodes_use_the_runtime_core_only(module: str) -> None:
    """Nodes convert messages and call inference, fusion and calibration: never training, evaluation, the CLI or the demo."""
    above = ("semseg_ros.train", "semseg_ros.eval", "semseg_ros.synth", "semseg_ros.cli", "semseg_ros.demo")
    assert not {d for d in OWN[module] if _inside(d, above)}


def test_topic_names_are_a_leaf() -> None:
    """The launch path reads topic names without loading bags, rosbags or scipy."""
    assert {d for d in GRAPH["semseg_ros.topics"] if not d.startswith("__future__")} == set()


def test_no_import_cycles() -> None:
    cycles: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        for dep in sorted(OWN[module]):
            if dep in trail:
                cycles.add(" -> ".join([*trail[trail.index(dep) :], dep]))
            elif dep not in done:
                visit(dep, [*trail, dep])
        done.add(module)

    done: set[str] = set()
    for module in sorted(OWN):
        visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(sorted(cycles))
