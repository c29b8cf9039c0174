"""Hidden tests for Neuron, Layer and MLP (built on the student's Value).

Parameter order and names inside a Neuron are the student's choice, so the suite
finds each neuron's roles itself: on the student's side it gives the neuron's
parameters distinct positive values and calls it on zero and on unit inputs (with
positive weights the ReLU lets everything through), which tells which parameter is
the bias and which weight multiplies which input. It then sets parameters of its
own and compares outputs and gradients with the same network in PyTorch, float64."""

import pytest
import torch

from autograder.suite import Feedback, expect, expect_defined, gate, spec

pytestmark = pytest.mark.component("test-mlp")

HELPERS = '''
def grader_a01_mlp_roles(neuron, nin):
    params = list(neuron.parameters())
    saved = [p.data for p in params]
    try:
        for k, p in enumerate(params):
            p.data = 1.0 + 0.125 * k

        def probe(x):
            out = neuron(x)
            if isinstance(out, (list, tuple)) or not hasattr(out, "data"):
                raise TypeError("calling a Neuron should return one Value")
            return float(out.data)

        bias = probe([0.0] * nin)
        weights = [probe([1.0 if j == i else 0.0 for j in range(nin)]) - bias for i in range(nin)]
    finally:
        for p, v in zip(params, saved):
            p.data = v
    return [bias, weights]


def grader_a01_mlp_structure(model, nin, kind):
    """Per layer, per neuron: [indices of its parameters in model.parameters(), bias probe, weight probes]."""
    params = list(model.parameters())
    index = {id(p): i for i, p in enumerate(params)}
    if kind == "Neuron":
        layers = [[model]]
    elif kind == "Layer":
        layers = [list(model.neurons)]
    else:
        layers = [list(layer.neurons) for layer in model.layers]
    found, size = [], nin
    for neurons in layers:
        row = []
        for neuron in neurons:
            ids = [index.get(id(p), -1) for p in neuron.parameters()]
            row.append([ids] + grader_a01_mlp_roles(neuron, size))
        found.append(row)
        size = len(neurons)
    return [len(params), len(set(index)), found]


def grader_a01_mlp_set(model, values):
    params = list(model.parameters())
    if len(params) != len(values):
        raise ValueError("parameters() has %d Values, the network should have %d" % (len(params), len(values)))
    for p, v in zip(params, values):
        p.data = v


def grader_a01_mlp_params(model):
    return [float(p.data) for p in model.parameters()]


def grader_a01_mlp_outputs(model, inputs):
    outs = []
    for x in inputs:
        out = model(list(x))
        if isinstance(out, list):
            outs.append(["list", [float(o.data) for o in out]])
        elif hasattr(out, "data") and not isinstance(out, tuple):
            outs.append([type(out).__name__, [float(out.data)]])
        else:
            outs.append([type(out).__name__, []])
    return outs


def grader_a01_mlp_grads(model, x, cotangents, values_in):
    for p in model.parameters():
        p.grad = 0.0
    xs = [Value(v) for v in x] if values_in else list(x)
    out = model(xs)
    outs = out if isinstance(out, list) else [out]
    total = outs[0] * cotangents[0]
    for o, c in zip(outs[1:], cotangents[1:]):
        total = total + o * c
    total.backward()
    return [[float(p.grad) for p in model.parameters()], [float(v.grad) for v in xs] if values_in else []]


def grader_a01_mlp_zero_grad(model, nin):
    out = model([0.5 * (i + 1) for i in range(nin)])
    outs = out if isinstance(out, list) else [out]
    total = outs[0]
    for o in outs[1:]:
        total = total + o
    total.backward()
    before = sum(abs(float(p.grad)) for p in model.parameters())
    model.zero_grad()
    return [before, [float(p.grad) for p in model.parameters()]]


def grader_a01_mlp_network(kind, args, values, inputs):
    """Build, set the parameters, find each neuron's roles and run the inputs: one round trip."""
    model = globals()[kind](*args)
    if values is not None:
        grader_a01_mlp_set(model, values)
    nin = args[0]
    return [type(model).__name__, grader_a01_mlp_structure(model, nin, kind),
            grader_a01_mlp_outputs(model, inputs)]


def grader_a01_mlp_initial(model):
    rows = []
    layers = [model] if hasattr(model, "neurons") else list(model.layers)
    for layer in layers:
        rows.append([sorted(float(p.data) for p in neuron.parameters()) for neuron in layer.neurons])
    return rows
'''


def helpers(student):
    if not getattr(student, "_a01_mlp_helpers", False):
        for name in ("Value", "Neuron", "Layer", "MLP"):
            expect_defined(student, name)
        student.define(HELPERS)
        student._a01_mlp_helpers = True


def n_params(sizes):
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def build(student, kind, *args):
    helpers(student)
    model = getattr(student, kind)(*args)
    expect(getattr(model, "type_name", None) == kind, f"{kind}(...) should create a {kind} object")
    return model


def weights_of(structure, kind, sizes, values):
    """The network's weights as float64 (W, b) per layer, from the roles found on the student's side."""
    count, distinct, layers = structure
    expect(count == n_params(sizes) and distinct == count,
           f"{kind} with layer sizes {sizes} should have {n_params(sizes)} distinct parameters, "
           f"parameters() gave {count} ({distinct} distinct)")
    expect([len(row) for row in layers] == list(sizes[1:]),
           f"{kind} with layer sizes {sizes} should have layers of {list(sizes[1:])} neurons, "
           f"found {[len(row) for row in layers]}")
    weights, used = [], set()
    for depth, (row, nin_l) in enumerate(zip(layers, sizes[:-1])):
        W = torch.zeros(len(row), nin_l, dtype=torch.float64)
        b = torch.zeros(len(row), dtype=torch.float64)
        for j, (ids, bias_probe, weight_probes) in enumerate(row):
            where = f"neuron {j} of layer {depth}" if kind == "MLP" else f"neuron {j}" if kind == "Layer" else "the neuron"
            expect(len(ids) == nin_l + 1, f"{where} should have {nin_l} weights and a bias, "
                                          f"its parameters() gave {len(ids)} Values")
            expect(all(i >= 0 for i in ids), f"the parameters of {where} are missing from the {kind}'s parameters()")
            roles = [probe_index(bias_probe, nin_l)] + [probe_index(w, nin_l) for w in weight_probes]
            expect(None not in roles and sorted(roles) == list(range(nin_l + 1)),
                   f"{where} does not compute sum_i w_i x_i + b with its own parameters, one weight per input")
            b[j] = values[ids[roles[0]]]
            for i, k in enumerate(roles[1:]):
                W[j, i] = values[ids[k]]
            used.update(ids)
        weights.append((W, b))
    expect(len(used) == count, f"the {kind}'s parameters() lists Values that belong to none of its neurons")
    return weights


def network(student, kind, args, sizes, gen, inputs):
    """One round trip: the student's network with random parameters of ours, its weights
    as found by probing, and its outputs on `inputs`."""
    helpers(student)
    values = torch.randn(n_params(sizes), generator=gen, dtype=torch.float64).tolist()
    type_name, structure, outs = student.grader_a01_mlp_network(kind, list(args), values,
                                                                [list(map(float, x)) for x in inputs])
    expect(type_name == kind, f"{kind}(...) should create a {kind} object")
    weights = weights_of(structure, kind, sizes, values)
    return weights, rows(outs, f"{kind}{tuple(args)}", single=sizes[-1] == 1)


def probe_index(probe, nin):
    k = round((probe - 1.0) / 0.125)
    return k if 0 <= k <= nin and abs(probe - (1.0 + 0.125 * k)) < 1e-6 else None


def forward(weights, x, nonlins):
    h = torch.as_tensor(x, dtype=torch.float64)
    for (W, b), nonlin in zip(weights, nonlins):
        h = W @ h + b
        h = h.relu() if nonlin else h
    return h


def outputs(student, model, inputs, what, single):
    return rows(student.grader_a01_mlp_outputs(model, [list(map(float, x)) for x in inputs]), what, single)


def rows(got, what, single):
    """The student's outputs as float64 rows, checking a single Value or a list as the spec says."""
    found = []
    for kind, values in got:
        if single:
            expect(kind == "Value", f"{what} with one output should return a single Value, got a {kind}")
        else:
            expect(kind == "list", f"{what} with several outputs should return a list of Values, got a {kind}")
        found.append(values)
    return torch.tensor(found, dtype=torch.float64)


def compare(got, want, what, tol=1e-9):
    expect(got.shape == want.shape, f"{what}: expected {want.shape[-1]} outputs per input, got {got.shape[-1]}")
    err = (got - want).abs().max().item() if got.numel() else 0.0
    if not err <= tol:
        raise Feedback(f"{what} has wrong values (largest absolute error {err:.3g}, tolerance {tol:g})")


def random_inputs(gen, n, nin):
    return (torch.randn(n, nin, generator=gen, dtype=torch.float64) * 1.5).tolist()


def check_network(student, kind, args, sizes, nonlins, seed, n_inputs=8):
    gen = torch.Generator().manual_seed(seed)
    inputs = random_inputs(gen, n_inputs, sizes[0])
    weights, got = network(student, kind, args, sizes, gen, inputs)
    want = torch.stack([forward(weights, x, nonlins) for x in inputs])
    compare(got, want, f"the output of {kind}{tuple(args)}")
    return weights


# --- gate ---------------------------------------------------------------------------------------

@gate("test-mlp")
def computes_a_network(student):
    """MLP(2, [3, 1]) with weights of ours computes relu layers and a linear last layer, and depends on its input."""
    gen = torch.Generator().manual_seed(0)
    inputs = [[0.5, -1.0], [-2.0, 1.5], [1.0, 1.0]]
    weights, got = network(student, "MLP", (2, [3, 1]), [2, 3, 1], gen, inputs)
    want = torch.stack([forward(weights, x, [True, False]) for x in inputs])
    compare(got, want, "the output of MLP(2, [3, 1])", tol=1e-6)
    expect(got.unique().numel() > 1, "the output of MLP(2, [3, 1]) does not depend on its input")


# --- tests --------------------------------------------------------------------------------------

@spec("$\\mathrm{relu}(\\sum_i w_i x_i + b)$ when `nonlin=True` (the nonlinearity is ReLU)",
      "and $\\sum_i w_i x_i + b$ when `nonlin=False`")
@pytest.mark.parametrize("nonlin", [True, False], ids=["nonlin-True", "nonlin-False"])
def test_neuron(student, nonlin):
    """Neuron(nin, nonlin) computes relu(w.x + b), or w.x + b without the nonlinearity"""
    for seed, nin in [(1, 4), (2, 1), (3, 7)]:
        check_network(student, "Neuron", (nin, nonlin), [nin, 1], [nonlin], seed)


@spec("`Neuron(nin, nonlin=True)` holds `nin` weights and one bias")
def test_neuron_default_is_relu(student):
    """Neuron(nin) without nonlin applies the ReLU"""
    check_network(student, "Neuron", (3,), [3, 1], [True], seed=4, n_inputs=12)


@spec("returns the list of its neurons' outputs")
@pytest.mark.parametrize("nonlin", [True, False], ids=["nonlin-True", "nonlin-False"])
def test_layer(student, nonlin):
    """Layer(nin, nout, nonlin) returns the list of its neurons' outputs"""
    check_network(student, "Layer", (3, 5, nonlin), [3, 5], [nonlin], seed=5)
    check_network(student, "Layer", (6, 2, nonlin), [6, 2], [nonlin], seed=6)


@spec("or a single `Value` when there is one output (`nout == 1`)", "a single `Value`\n  when `nouts[-1] == 1`")
def test_one_output_is_a_single_value(student):
    """A layer or network with one output returns a single Value, with several a list"""
    check_network(student, "Layer", (4, 1), [4, 1], [True], seed=7)
    check_network(student, "MLP", (3, [4, 1]), [3, 4, 1], [True, False], seed=8)
    check_network(student, "MLP", (3, [4, 2]), [3, 4, 2], [True, False], seed=9)


ARCHITECTURES = [
    pytest.param(2, [3, 1], id="2-3-1"),
    pytest.param(3, [4, 4, 1], id="3-4-4-1"),
    pytest.param(4, [5, 3], id="4-5-3"),
    pytest.param(2, [1, 3], id="hidden-layer-of-one"),
    pytest.param(1, [3, 2, 4, 1], id="1-3-2-4-1"),
]


@spec("Every layer applies the ReLU\n  except the last, which is linear (`nonlin=False`)",
      "layer `i` maps\n  `([nin] + nouts)[i]` inputs to `nouts[i]` outputs (a hidden layer may have a single\n  neuron)")
@pytest.mark.parametrize("nin, nouts", ARCHITECTURES)
def test_mlp_matches_pytorch(student, nin, nouts):
    """MLP(nin, nouts) equals the same network in PyTorch: ReLU layers and a linear last layer"""
    sizes = [nin] + nouts
    check_network(student, "MLP", (nin, nouts), sizes, [True] * (len(nouts) - 1) + [False], seed=10 + nin)


@spec("so that the network can output\n  any real number")
def test_last_layer_is_linear(student):
    """The last layer of an MLP is linear: its outputs can be negative"""
    model = build(student, "MLP", 3, [4, 1])
    student.grader_a01_mlp_set(model, [-0.5] * n_params([3, 4, 1]))
    got = outputs(student, model, [[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]], "MLP(3, [4, 1])", single=True)
    expect(bool((got < 0).all()), "with every weight and bias at minus one half the MLP's output should be negative: "
                                  "its last layer must not apply the ReLU")


@spec("a list of its parameter Values, each exactly\n  once")
def test_parameter_counts(student):
    """parameters() lists each parameter once: nin + 1 per neuron"""
    helpers(student)
    for kind, args, sizes in [("Neuron", (5,), [5, 1]), ("Neuron", (2, False), [2, 1]), ("Layer", (4, 3), [4, 3]),
                              ("MLP", (3, [4, 4, 1]), [3, 4, 4, 1]), ("MLP", (2, [1, 3]), [2, 1, 3])]:
        type_name, (count, distinct, _), _ = student.grader_a01_mlp_network(kind, list(args), None, [])
        expect(type_name == kind, f"{kind}(...) should create a {kind} object")
        expect(count == n_params(sizes), f"{kind}{tuple(args)}.parameters() should list {n_params(sizes)} Values, "
                                         f"got {count}")
        expect(distinct == count, f"{kind}{tuple(args)}.parameters() lists some Values more than once")


GRAD_CASES = [pytest.param(3, [4, 1], False, id="3-4-1"), pytest.param(2, [3, 3, 2], True, id="2-3-3-2-input-values")]


@spec("gradients flow\n  to the parameters and to inputs that are Values")
@pytest.mark.parametrize("nin, nouts, values_in", GRAD_CASES)
def test_gradients_match_pytorch(student, nin, nouts, values_in):
    """backward() through an MLP gives PyTorch's gradients for every parameter (and input Values)"""
    sizes = [nin] + nouts
    gen = torch.Generator().manual_seed(20 + nin)
    model = build(student, "MLP", nin, nouts)
    values = torch.randn(n_params(sizes), generator=gen, dtype=torch.float64).tolist()
    student.grader_a01_mlp_set(model, values)
    weights = weights_of(student.grader_a01_mlp_structure(model, nin, "MLP"), "MLP", sizes, values)
    for x in random_inputs(gen, 3, nin):
        cot = (torch.randn(nouts[-1], generator=gen, dtype=torch.float64) + 2.0).tolist()
        got_params, got_inputs = student.grader_a01_mlp_grads(model, x, cot, values_in)
        params = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True)) for W, b in weights]
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        out = forward(params, xt, [True] * (len(nouts) - 1) + [False])
        (out * torch.tensor(cot, dtype=torch.float64)).sum().backward()
        # Map each of the student's parameters to its role: the same value (values are distinct).
        by_value = {}
        for W, b in params:
            for value, grad in zip(W.detach().flatten().tolist() + b.detach().tolist(),
                                   W.grad.flatten().tolist() + b.grad.tolist()):
                by_value[value] = grad
        want = torch.tensor([by_value[v] for v in values], dtype=torch.float64)
        compare(torch.tensor(got_params, dtype=torch.float64), want,
                f"the gradients of MLP({nin}, {nouts})'s parameters", tol=1e-8)
        if values_in:
            compare(torch.tensor(got_inputs, dtype=torch.float64), xt.grad,
                    f"the gradients of the input Values of MLP({nin}, {nouts})", tol=1e-8)


@spec("`zero_grad()`, which sets the `.grad` of every parameter to 0")
def test_zero_grad(student):
    """zero_grad() sets every parameter's grad to 0, for a Neuron, a Layer and an MLP"""
    helpers(student)
    for kind, args, nin in [("Neuron", (3,), 3), ("Layer", (3, 4), 3), ("MLP", (2, [3, 3, 1]), 2)]:
        model = build(student, kind, *args)
        values = torch.randn(n_params([nin] + ([1] if kind == "Neuron" else [4] if kind == "Layer" else [3, 3, 1])),
                             dtype=torch.float64).abs() + 0.1
        student.grader_a01_mlp_set(model, values.tolist())
        before, after = student.grader_a01_mlp_zero_grad(model, nin)
        expect(before > 0, f"backward() through {kind}{args} left every parameter's grad at 0")
        expect(all(g == 0.0 for g in after), f"{kind}{args}.zero_grad() left some grads that are not 0")


@spec("Calling a neuron, layer or network does not change its parameters")
def test_calls_leave_parameters_unchanged(student):
    """Calling a network and backward() leave its parameters unchanged"""
    helpers(student)
    model = build(student, "MLP", 3, [4, 2])
    before = student.grader_a01_mlp_params(model)
    student.grader_a01_mlp_outputs(model, [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    student.grader_a01_mlp_grads(model, [1.0, -2.0, 0.5], [1.0, -1.0], True)
    expect(student.grader_a01_mlp_params(model) == before, "calling an MLP (or backward) changed its parameters")


@spec("two\n  neurons of a layer must not start out equal")
def test_neurons_start_different(student):
    """The neurons of a layer start with different random weights"""
    helpers(student)
    for kind, args in [("Layer", (4, 3)), ("MLP", (3, [5, 5, 1]))]:
        model = build(student, kind, *args)
        for depth, row in enumerate(student.grader_a01_mlp_initial(model)):
            if len(row) > 1:
                expect(any(r != row[0] for r in row[1:]), f"the neurons of {kind}{args} (layer {depth}) start out "
                                                          "equal: initialise their weights at random")
            weights = [v for r in row for v in r]
            expect(len(set(weights)) > 1, f"every parameter of {kind}{args} (layer {depth}) starts at one value")
