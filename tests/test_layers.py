"""The package's layers, read from the source with ``ast`` (nothing is imported or run).

Bottom to top: ``utils`` and ``compat`` (0), ``archs`` and ``data`` (1), ``losses`` (2), ``models`` (3), ``tools``
and ``training`` (4), then
``cli``, the ``-m`` entry points ``train`` and ``test`` and the package ``__init__`` (5: it imports the archs,
losses and models so that they register). A module may import from its own layer and the ones below it, and no
module may reach itself through its imports (a cycle), whatever the layers. Imports inside functions count too.
"""
import ast
import os
from os import path as osp
from typing import Dict, List, Tuple

from helpers.runs import REPO_ROOT

PACKAGE = 'basicsr_nlattn'
LAYERS = {
    'utils': 0,
    'compat': 0,
    'version': 0,
    'archs': 1,
    'data': 1,
    'losses': 2,
    'models': 3,
    'tools': 4,
    'training': 4,
    'commands': 4,  # one module per command (tools' layer)
    'cli': 5,
    'train': 5,
    'test': 5,
}
PACKAGE_INIT_LAYER = 5

Graph = Dict[str, Dict[str, int]]  # importing module -> {imported module: line of the first import}


def package_sources(root: str = osp.join(REPO_ROOT, PACKAGE)) -> Dict[str, str]:
    """Dotted module name -> source, for every ``.py`` file of the package (``__init__`` names its package)."""
    sources = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith('.py'):
                continue
            parts = osp.relpath(osp.join(folder, name), osp.dirname(root))[:-len('.py')].split(os.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            with open(osp.join(folder, name), encoding='utf-8') as file:
                sources['.'.join(parts)] = file.read()
    return sources


def layer_of(module: str) -> int:
    parts = module.split('.')
    if len(parts) == 1:
        return PACKAGE_INIT_LAYER
    assert parts[1] in LAYERS, f'{module} belongs to no layer: add {parts[1]!r} to LAYERS'
    return LAYERS[parts[1]]


def _imported_names(module: str, node: ast.AST, is_package: bool) -> List[str]:
    """Modules of the package named by one import statement (``from a import b``: ``a.b`` when it is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        anchor = module.split('.')[:len(module.split('.')) - node.level + (1 if is_package else 0)]
        base = '.'.join(anchor + ([node.module] if node.module else []))
    else:
        base = node.module or ''
    return [f'{base}.{alias.name}' for alias in node.names] + [base]


def import_graph(sources: Dict[str, str]) -> Graph:
    """Edges between modules of the package: ``from a import b`` is an edge to ``a.b`` when that is a module of
    ``sources``, else to ``a``; ``import a.b`` is an edge to ``a.b``."""
    packages = {name.rsplit('.', 1)[0] for name in sources if '.' in name}
    graph: Graph = {}
    for module, source in sources.items():
        edges: Dict[str, int] = {}
        for node in ast.walk(ast.parse(source, filename=module)):
            names = _imported_names(module, node, module in packages)
            if isinstance(node, ast.ImportFrom):
                submodules = [name for name in names[:-1] if name in sources]
                names = submodules if len(submodules) == len(names) - 1 else submodules + names[-1:]
            for name in names:
                if name in sources and name != module:
                    edges.setdefault(name, node.lineno)
        graph[module] = edges
    return graph


def upward_imports(graph: Graph) -> List[str]:
    """One line per import from a higher layer, naming the importing module, the line and the imported one."""
    return [
        f'{module} (layer {layer_of(module)}) imports {imported} (layer {layer_of(imported)}) at line {line}'
        for module, edges in sorted(graph.items()) for imported, line in sorted(edges.items())
        if layer_of(imported) > layer_of(module)
    ]


def import_cycles(graph: Graph) -> List[List[str]]:
    """Each cycle found by a depth-first walk, as the modules along it from the first in sorted order (repeated at
    the end)."""
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.get(module, {})):
            if state.get(imported) == 1:
                cycle = path[path.index(imported):]
                start = cycle.index(min(cycle))
                cycles.append(cycle[start:] + cycle[:start + 1])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def layering_problems(sources: Dict[str, str]) -> Tuple[List[str], List[str]]:
    graph = import_graph(sources)
    return upward_imports(graph), [' -> '.join(cycle) for cycle in import_cycles(graph)]


def test_every_module_imports_only_from_its_layer_or_below():
    sources = package_sources()
    assert {'basicsr_nlattn.utils.errors', 'basicsr_nlattn.compat', 'basicsr_nlattn.tools.bench',
            'basicsr_nlattn.cli'} <= set(sources)
    upward, _ = layering_problems(sources)
    assert upward == [], 'imports from a higher layer:\n' + '\n'.join(upward)


def test_no_import_cycles():
    _, cycles = layering_problems(package_sources())
    assert cycles == [], 'import cycles:\n' + '\n'.join(cycles)


def test_the_checker_flags_a_back_edge_and_a_cycle():
    layered = {
        'basicsr_nlattn': 'from basicsr_nlattn import compat, models\n',
        'basicsr_nlattn.compat': 'import torch\n',
        'basicsr_nlattn.archs': 'from basicsr_nlattn.archs import backbone\n',
        'basicsr_nlattn.archs.backbone': 'import torch\n',
        'basicsr_nlattn.models': 'from basicsr_nlattn.models.pcl_model import PCLModel\n',
        'basicsr_nlattn.models.pcl_model': 'from ..archs import backbone\nfrom . import pcl_samples\n',
        'basicsr_nlattn.models.pcl_samples': 'import torch\n',
    }
    assert layering_problems(layered) == ([], [])
    broken = dict(layered)
    broken['basicsr_nlattn.archs.backbone'] = 'def build():\n    from basicsr_nlattn.models.pcl_model import PCLModel\n'
    broken['basicsr_nlattn.models.pcl_samples'] = 'from .pcl_model import SAMPLE_KEYS\n'
    upward, cycles = layering_problems(broken)
    assert upward == [
        'basicsr_nlattn.archs.backbone (layer 1) imports basicsr_nlattn.models.pcl_model (layer 3) at line 2'
    ]
    assert sorted(cycles) == [
        'basicsr_nlattn.archs.backbone -> basicsr_nlattn.models.pcl_model -> basicsr_nlattn.archs.backbone',
        'basicsr_nlattn.models.pcl_model -> basicsr_nlattn.models.pcl_samples -> basicsr_nlattn.models.pcl_model',
    ]
