"""Hidden tests for Value, the scalar autograd engine.

Expressions are built on the student's side in one round trip (`student.define`
gives their namespace the small interpreter below) and compared with the same
expressions in PyTorch, float64."""
import functools
import math
import random

import pytest
import torch

from autograder.suite import Feedback, expect, expect_defined, gate, spec

pytestmark = pytest.mark.component("test-value")

# Runs in the student's namespace: builds each program with their Value, calls
# backward() once on its last node, and returns data and grads as float64 tensors.
HELPERS = '''
def grader_a01_value_programs(programs):
    import gc as _gc
    import torch as _torch
    _gc.disable()  # the suite's own speed-up: thousands of short-lived nodes, no cycles to collect
    try:
        return grader_a01_value_programs_gc_off(programs)
    finally:
        _gc.enable()


def grader_a01_value_programs_gc_off(programs):
    import torch as _torch
    results = []
    for program in programs:
        nodes = []
        for step in program:
            op = step[0]
            if op == "leaf":
                nodes.append(Value(step[1]))
                continue
            a = nodes[step[1]]
            if op == "add":
                r = a + nodes[step[2]]
            elif op == "sub":
                r = a - nodes[step[2]]
            elif op == "mul":
                r = a * nodes[step[2]]
            elif op == "div":
                r = a / nodes[step[2]]
            elif op == "add_c":
                r = a + step[2]
            elif op == "c_add":
                r = step[2] + a
            elif op == "sub_c":
                r = a - step[2]
            elif op == "c_sub":
                r = step[2] - a
            elif op == "mul_c":
                r = a * step[2]
            elif op == "c_mul":
                r = step[2] * a
            elif op == "div_c":
                r = a / step[2]
            elif op == "c_div":
                r = step[2] / a
            elif op == "pow":
                r = a ** step[2]
            elif op == "neg":
                r = -a
            elif op == "exp":
                r = a.exp()
            elif op == "log":
                r = a.log()
            elif op == "tanh":
                r = a.tanh()
            elif op == "relu":
                r = a.relu()
            else:
                raise ValueError("unknown grader operation " + op)
            nodes.append(r)
        if not all(isinstance(n, Value) for n in nodes):
            raise TypeError("an operation on a Value did not return a Value")
        nodes[-1].backward()
        results.append(_torch.tensor([[float(n.data) for n in nodes], [float(n.grad) for n in nodes]],
                                     dtype=_torch.float64))
    return results


def grader_a01_value_chain(n, start):
    import gc as _gc
    _gc.disable()
    try:
        return grader_a01_value_chain_gc_off(n, start)
    finally:
        _gc.enable()


def grader_a01_value_chain_gc_off(n, start):
    import torch as _torch
    x, c = Value(start), Value(0.05)
    out = x
    for i in range(n):  # one operation per step: n operations in a row
        if i % 3 == 0:
            out = out * 0.9
        elif i % 3 == 1:
            out = out.tanh()
        else:
            out = out + c
    out.backward()
    return _torch.tensor([float(out.data), float(x.grad), float(c.grad)], dtype=_torch.float64)


def grader_a01_value_wide(n):
    import gc as _gc
    _gc.disable()
    try:
        return grader_a01_value_wide_gc_off(n)
    finally:
        _gc.enable()


def grader_a01_value_wide_gc_off(n):
    import torch as _torch
    x = Value(0.5)
    leaves = [Value(0.001 * (i % 7 - 3)) for i in range(n)]
    out = x * leaves[0]
    for leaf in leaves[1:]:
        out = out + x * leaf
    out.backward()
    return _torch.tensor([float(out.data), float(x.grad)] + [float(v.grad) for v in leaves], dtype=_torch.float64)


def grader_a01_value_types(number):
    v = Value(number)
    return [type(v.data).__name__, type(v.grad).__name__, v.data, v.grad]


def grader_a01_value_leaf_backward(number):
    v = Value(number)
    v.backward()
    out = Value(number) * 2.0 + 1.0
    out.backward()
    return [float(v.grad), float(out.grad)]
'''


def helpers(student):
    """Define the interpreter in the student's namespace, once per notebook."""
    if not getattr(student, "_a01_value_helpers", False):
        expect_defined(student, "Value")
        student.define(HELPERS)
        student._a01_value_helpers = True


# --- the reference: the same programs in PyTorch, float64 --------------------------------------

def torch_program(program):
    """(data, grads) of every node, with PyTorch's autograd in float64 (cached: the
    same programs come back for every notebook graded)."""
    return _torch_program(tuple(tuple(step) for step in program))


@functools.lru_cache(maxsize=4096)
def _torch_program(program):
    nodes = []
    for step in program:
        op = step[0]
        if op == "leaf":
            nodes.append(torch.tensor(float(step[1]), dtype=torch.float64, requires_grad=True))
            continue
        a = nodes[step[1]]
        b = nodes[step[2]] if op in ("add", "sub", "mul", "div") else step[2] if len(step) > 2 else None
        r = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
             "add_c": lambda: a + b, "c_add": lambda: b + a, "sub_c": lambda: a - b, "c_sub": lambda: b - a,
             "mul_c": lambda: a * b, "c_mul": lambda: b * a, "div_c": lambda: a / b, "c_div": lambda: b / a,
             "pow": lambda: a ** b, "neg": lambda: -a, "exp": lambda: a.exp(), "log": lambda: a.log(),
             "tanh": lambda: a.tanh(), "relu": lambda: a.relu()}[op]()
        r.retain_grad()
        nodes.append(r)
    nodes[-1].backward()
    data = torch.stack([n.detach() for n in nodes])
    grads = torch.stack([n.grad if n.grad is not None else torch.zeros((), dtype=torch.float64) for n in nodes])
    return data, grads


def run_programs(student, programs):
    helpers(student)
    results = student.grader_a01_value_programs(programs)
    expect(isinstance(results, list) and len(results) == len(programs), "the expressions could not be evaluated")
    return results


def relative_error(got, want):
    return ((got - want).abs() / want.abs().clamp(min=1.0)).max().item() if got.numel() else 0.0


def compare_programs(student, programs, what, tol=1e-6):
    """Values and gradients of every node against PyTorch; the message names the operations
    used by the smallest failing expression, never expected values."""
    results = run_programs(student, programs)
    failing, worst = [], 0.0
    for program, got in zip(programs, results):
        data, grads = torch_program(program)
        expect(isinstance(got, torch.Tensor) and got.shape == (2, len(program)),
               f"{what}: the expressions could not be evaluated")
        bad_data = not torch.isfinite(got[0]).all() or relative_error(got[0], data) > tol
        bad_grad = not torch.isfinite(got[1]).all() or relative_error(got[1], grads) > tol
        if bad_data or bad_grad:
            err = max(relative_error(got[0], data), relative_error(got[1], grads))
            worst = max(worst, err if math.isfinite(err) else float("inf"))
            failing.append((len(program), program, bad_data))
    if failing:
        size, program, bad_data = min(failing, key=lambda f: f[0])
        ops = sorted({step[0] for step in program if step[0] != "leaf"})
        kind = "values" if bad_data else "gradients"
        raise Feedback(f"{what}: {len(failing)} of {len(programs)} expressions have wrong {kind} "
                       f"(largest relative error {worst:.0e}, tolerance {tol:.0e}); the smallest of them uses "
                       f"{', '.join(ops) or 'no operation'}")


# --- random programs ---------------------------------------------------------------------------

def random_program(rng, n_leaves, n_ops, allowed=None):
    """A random expression over n_leaves leaves, kept inside every operation's domain
    (log of positive numbers, no division by numbers near 0, no overflow)."""
    program, values = [], []
    for _ in range(n_leaves):
        v = round(rng.uniform(-2.0, 2.0), 3)
        program.append(["leaf", v])
        values.append(v)
    tries = 0
    while len(program) < n_leaves + n_ops:
        tries += 1
        if tries > 200:  # stuck outside every allowed operation's domain: new leaves
            return random_program(rng, n_leaves, n_ops, allowed)
        recent = max(0, len(values) - 4)
        i = rng.randrange(recent, len(values)) if rng.random() < 0.7 else rng.randrange(len(values))
        j = rng.randrange(len(values))
        x, y = values[i], values[j]
        c = round(rng.choice([-1, 1]) * rng.uniform(0.3, 3.0), 2)
        options = {
            "add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
            "div": lambda: x / y if abs(y) > 0.3 else None,
            "add_c": lambda: x + c, "c_add": lambda: c + x, "sub_c": lambda: x - c, "c_sub": lambda: c - x,
            "mul_c": lambda: x * c, "c_mul": lambda: c * x, "div_c": lambda: x / c,
            "c_div": lambda: c / x if abs(x) > 0.3 else None,
            "pow": None, "neg": lambda: -x,
            "exp": lambda: math.exp(x) if abs(x) < 4 else None,
            "log": lambda: math.log(x) if x > 0.05 else None,
            "tanh": lambda: math.tanh(x),
            "relu": lambda: max(x, 0.0) if abs(x) > 1e-6 else None,
        }
        op = rng.choice(sorted(allowed or options))
        if op == "pow":
            n = rng.choice([2, 3, -1, -2, 0.5, 1.5, 2.5, -0.5])
            ok = (n in (2, 3) and abs(x) < 20) or (n in (-1, -2) and abs(x) > 0.3) or (
                isinstance(n, float) and x > 0.1)
            if not ok:
                continue
            program.append(["pow", i, n])
            values.append(x ** n)
            continue
        value = options[op]()
        if value is None or abs(value) > 1e4:
            continue
        if op in ("add", "sub", "mul", "div"):
            program.append([op, i, j])
        elif op in ("neg", "exp", "log", "tanh", "relu"):
            program.append([op, i])
        else:
            program.append([op, i, c])
        values.append(value)
    return program


# --- gate ---------------------------------------------------------------------------------------

@gate("test-value")
def computes_and_differentiates(student):
    """On two small expressions a * b + c: the right value, and gradients that depend on the inputs."""
    expect_defined(student, "Value")
    programs = [[["leaf", 2.0], ["leaf", -3.0], ["leaf", 0.5], ["mul", 0, 1], ["add", 3, 2]],
                [["leaf", -1.5], ["leaf", 4.0], ["leaf", 1.0], ["mul", 0, 1], ["add", 3, 2]]]
    results = run_programs(student, programs)
    for program, got in zip(programs, results):
        data, grads = torch_program(program)
        expect(isinstance(got, torch.Tensor) and got.shape == (2, 5), "a * b + c could not be evaluated")
        expect(abs(got[0, -1] - data[-1]) < 1e-6, "a * b + c has the wrong value: check + and *")
        expect(torch.allclose(got[1, :3], grads[:3], atol=1e-6),
               "after (a * b + c).backward() the gradients of a, b and c are wrong: "
               "d/da = b, d/db = a, d/dc = 1")


# --- tests --------------------------------------------------------------------------------------

@spec("It has two attributes, both Python floats", "which is `0.0` until `backward()` sets it")
def test_data_and_grad_are_floats(student):
    """.data and .grad are Python floats, .grad starting at zero"""
    helpers(student)
    for number in (2, -2, 0):
        data_type, grad_type, data, grad = student.grader_a01_value_types(number)
        expect(data_type == "float", f"Value({number}).data should be a Python float, got a {data_type}")
        expect(grad_type == "float", f"Value({number}).grad should be a Python float, got a {grad_type}")
        expect(data == number, f"Value({number}).data should equal {number}")
        expect(grad == 0, f"Value({number}).grad should start at 0")


OPERATIONS = [
    pytest.param(["add", "sub", "mul", "div"], id="add-sub-mul-div"),
    pytest.param(["add_c", "c_add", "sub_c", "c_sub", "mul_c", "c_mul", "div_c", "c_div"],
                 id="numbers-on-either-side"),
    pytest.param(["pow"], id="pow"),
    pytest.param(["neg"], id="neg"),
    pytest.param(["exp"], id="exp"),
    pytest.param(["log"], id="log"),
    pytest.param(["tanh"], id="tanh"),
    pytest.param(["relu"], id="relu"),
]


@spec("where either side may be a `Value` or a plain number", "The derivative is $n a^{n-1}$",
      "`a.exp()`, `a.log()` (the natural log, for `a.data > 0`), `a.tanh()` and")
@pytest.mark.parametrize("ops", OPERATIONS)
def test_each_operation(student, ops):
    """Each operation gives the right value and gradients (compared with PyTorch, float64)"""
    compare_programs(student, operation_programs(tuple(ops)), f"operation {'/'.join(ops)}")


@functools.lru_cache(maxsize=None)
def operation_programs(ops):
    rng = random.Random("-".join(ops))
    programs = []
    for op in ops:
        for _ in range(6):
            programs.append(random_program(rng, 2, 1, allowed=[op]))
        if op == "pow":  # every exponent kind, on positive and negative bases
            for base, n in [(1.7, 2), (-1.3, 3), (-0.8, -1), (2.5, -2), (2.0, 0.5), (0.6, 1.5), (3.0, -0.5),
                            (-2.0, 2.0)]:
                programs.append([["leaf", base], ["pow", 0, n]])
    return programs


@spec("on 200 random expressions and on each operation", "compares values and gradients with PyTorch in float64")
@pytest.mark.weight(3)
def test_random_expression_graphs(student):
    """Values and gradients of 200 random expressions equal PyTorch's (float64, relative error 1e-6)"""
    compare_programs(student, random_programs(), "random expressions")


@functools.lru_cache(maxsize=None)
def random_programs():
    rng = random.Random(2024)
    return [random_program(rng, rng.randint(1, 4), rng.randint(3, 14)) for _ in range(200)]


@spec("**gradients accumulate** (`+=`), they are never overwritten", "`b` in `b * c + b`")
@pytest.mark.weight(2)
def test_gradients_accumulate(student):
    """A value used more than once gets the sum of the gradients of its uses"""
    programs = [
        [["leaf", 1.5], ["mul", 0, 0]],                                           # a * a
        [["leaf", -0.7], ["add", 0, 0]],                                          # a + a
        [["leaf", 1.2], ["leaf", -2.0], ["mul", 0, 1], ["add", 2, 0]],            # b * c + b
        [["leaf", 0.9], ["leaf", 1.3], ["mul", 0, 1], ["add", 0, 1], ["mul", 2, 3]],  # a diamond
        [["leaf", 0.4], ["tanh", 0], ["mul", 1, 0], ["exp", 1], ["add", 2, 3], ["mul", 4, 1]],
        [["leaf", 2.0], ["pow", 0, 2], ["mul", 1, 0], ["sub", 2, 1], ["div", 3, 0]],
    ]
    compare_programs(student, programs, "expressions that use a value more than once")


@spec("It sets `out.grad` to 1", "just sets\n  its own grad to 1")
def test_backward_sets_its_own_grad_to_one(student):
    """backward() sets the output's own grad to 1, also on a value computed from nothing"""
    helpers(student)
    leaf, out = student.grader_a01_value_leaf_backward(3.0)
    expect(leaf == 1.0, "Value(3).backward() should set its grad to 1")
    expect(out == 1.0, "out.backward() should leave out.grad at 1")


@spec("`a ** 0` is 1 with gradient 0, even at `a = 0`", "`a ** 0` has gradient 0")
def test_pow_zero_has_zero_gradient(student):
    """a ** 0 is 1 with gradient 0, even at a = 0"""
    helpers(student)
    programs = [[["leaf", x], ["pow", 0, n]] for x in (0.0, 2.0, -3.0) for n in (0, 0.0)]
    results = run_programs(student, programs)
    for program, got in zip(programs, results):
        x = program[0][1]
        expect(isinstance(got, torch.Tensor) and got.shape == (2, 2), "a ** 0 could not be evaluated")
        expect(got[0, 1] == 1.0, f"Value({x:g}) ** 0 should be 1")
        expect(got[1, 0] == 0.0, f"the gradient of Value({x:g}) ** 0 should be 0")


@spec("the log of a tiny positive number, `Value(1e-300).log()`", "(no clamping)")
def test_log_of_a_tiny_number(student):
    """The log of 1e-300 is exact, with gradient 1e300 (no clamping)"""
    helpers(student)
    for x in (1e-300, 1e-12):
        (got,) = run_programs(student, [[["leaf", x], ["log", 0]]])
        expect(isinstance(got, torch.Tensor) and got.shape == (2, 2), "log could not be evaluated")
        expect(torch.isfinite(got).all(), f"Value({x:g}).log() gave inf or NaN")
        expect(abs(got[0, 1].item() - math.log(x)) < 1e-9 * abs(math.log(x)),
               f"Value({x:g}).log() has the wrong value (no clamping of the input)")
        expect(abs(got[1, 0].item() * x - 1.0) < 1e-9, f"the gradient of Value({x:g}).log() should be 1 / x")


@spec("`relu` has gradient 0 at 0 (and below)")
def test_relu_gradient_at_zero(student):
    """relu has gradient 0 at 0 and below, 1 above"""
    helpers(student)
    programs = [[["leaf", x], ["relu", 0]] for x in (0.0, -2.0, 3.0)]
    results = run_programs(student, programs)
    for (x, want, slope), got in zip([(0.0, 0.0, 0.0), (-2.0, 0.0, 0.0), (3.0, 3.0, 1.0)], results):
        expect(isinstance(got, torch.Tensor) and got.shape == (2, 2), "relu could not be evaluated")
        expect(got[0, 1] == want, f"Value({x:g}).relu() has the wrong value")
        expect(got[1, 0] == slope, f"the gradient of relu at {x:g} should be {slope:g}")


@spec("`tanh` of a large input, `Value(1000.0).tanh()`, is 1.0\n  with gradient 0, without overflow")
def test_tanh_of_large_inputs(student):
    """tanh of +-1000 is +-1 with gradient 0, without overflow"""
    helpers(student)
    for x in (1000.0, -1000.0, 400.0):
        (got,) = run_programs(student, [[["leaf", x], ["tanh", 0]]])
        expect(isinstance(got, torch.Tensor) and got.shape == (2, 2), "tanh could not be evaluated")
        expect(torch.isfinite(got).all(), f"Value({x:g}).tanh() gave inf or NaN")
        expect(got[0, 1].item() == math.copysign(1.0, x), f"Value({x:g}).tanh() should be {math.copysign(1, x):g}")
        expect(got[1, 0].item() == 0.0, f"the gradient of tanh at {x:g} should be 0")


@spec("each returning a **new** `Value` and leaving its operands unchanged")
def test_operations_leave_operands_unchanged(student):
    """Operations return new Values and leave their operands' data and grads unchanged"""
    expect_defined(student, "Value")
    a, b = student.Value(2.0), student.Value(-3.0)
    results = [a + b, a - b, a * b, a / b, a + 1, 1 + a, a - 1, 1 - a, a * 2, 2 * a, a / 2, 2 / a, a ** 2, -a,
               a.exp(), a.log(), b.tanh(), b.relu()]
    for r in results:
        expect(getattr(r, "type_name", None) == "Value", f"an operation returned {getattr(r, 'type_name', r)!r}, "
                                                         "not a Value")
    for name, v, want in [("a", a, 2.0), ("b", b, -3.0)]:
        expect(v.data.get() == want, f"an operation changed the data of its operand {name}")
        expect(v.grad.get() == 0.0, f"an operation (without backward) changed the grad of its operand {name}")


# The big graphs last: a slow topological sort that times out there costs only these.

@spec("including a chain of 5,000\n  operations in a row", "works on graphs of at least 5,000 nodes")
@pytest.mark.weight(2)
def test_deep_chain_of_5000_operations(student):
    """backward() works through a chain of 5,000 operations (no recursion limit)"""
    helpers(student)
    got = student.grader_a01_value_chain(5000, 0.8)
    want = torch_chain(5000, 0.8)
    expect(isinstance(got, torch.Tensor) and got.shape == (3,), "the chain could not be evaluated")
    err = ((got - want).abs() / want.abs()).tolist()
    expect(err[0] < 1e-9, "a chain of 5,000 operations has the wrong value")
    expect(err[1] < 1e-6, "a chain of 5,000 operations gives the wrong gradient to its input")
    expect(err[2] < 1e-6, "a value used in every third step of a chain of 5,000 operations gets the wrong gradient")


@functools.lru_cache(maxsize=None)
def torch_chain(n, start):
    x = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    out = x
    for i in range(n):
        out = out * 0.9 if i % 3 == 0 else out.tanh() if i % 3 == 1 else out + c
    out.backward()
    return torch.stack([out.detach(), x.grad, c.grad])


@spec("works on graphs of at least 5,000 nodes")
def test_wide_graph(student):
    """A value used 2,500 times, and 2,500 leaves (7,500 nodes in all), get their gradients"""
    helpers(student)
    got = student.grader_a01_value_wide(2500)
    expect(isinstance(got, torch.Tensor) and got.shape == (2502,), "the graph could not be evaluated")
    leaves = torch.tensor([0.001 * (i % 7 - 3) for i in range(2500)], dtype=torch.float64)
    expect(abs(got[1].item() - leaves.sum().item()) < 1e-9, "a value used 2,500 times gets the wrong gradient "
                                                            "(do gradients accumulate?)")
    expect(relative_error(got[2:], torch.full((2500,), 0.5, dtype=torch.float64)) < 1e-9,
           "2,500 leaves of one sum get wrong gradients")
