"""The package has no import circle: every ``import`` of a ``coma`` module by another, at module level
or inside a function, read from the source (AST), forms an acyclic graph."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_graph(root: str) -> dict:
    """``module -> set of coma modules it imports`` for every module under ``root/coma``."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(root, 'coma')):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
                package = dotted.endswith('.__init__')
                modules[dotted[:-9] if package else dotted] = (path, package)
    graph = {}
    for module, (path, package) in modules.items():
        here = module if package else module.rsplit('.', 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module
                if node.level:
                    parts = here.split('.')[:len(here.split('.')) - node.level + 1]
                    base = '.'.join(parts + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f'{base}.{alias.name}' for alias in node.names)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: dict):
    """One cycle of ``graph`` as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 'done'
        return None
    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_circle():
    graph = import_graph(ROOT)
    assert 'coma.models.backbones.dyvit' in graph and graph['coma.models.backbones.dyvit']
    cycle = find_cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None
