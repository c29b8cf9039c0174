"""Hidden tests for sgd_step and adam_step.

Each run happens on the student's side in one round trip: a small loop (the
suite's own, defined with `student.define`) computes gradients of a fixed loss,
calls the student's step with the state the previous step returned, and records
the parameters after every step, and whether the list still holds the very tensor
objects it passed in (in-place updates). The same
run with torch.optim.SGD / torch.optim.Adam is the reference."""
import pytest
import torch

from autograder.suite import Feedback, expect, expect_defined, expect_function, gate, spec

SGD, ADAM = "test-sgd", "test-adam"

HELPERS = '''
def grader_a01_opt_grads(params, coef, shift):
    import torch as _torch
    with _torch.no_grad():
        return [c * (p.detach() - s) + 0.1 * p.detach() ** 3 for p, c, s in zip(params, coef, shift)]


def grader_a01_opt_run(step_name, runs_starts, lrs, kwargs, coef, shift, requires_grad):
    import torch as _torch
    step = globals()[step_name]
    runs = []
    for starts in runs_starts:
        params = [p.clone().requires_grad_(True) if requires_grad else p.clone() for p in starts]
        runs.append({"params": params, "objects": list(params), "state": {}, "trajectory": [], "grads": [],
                     "kept": [], "types": []})
    for lr in lrs:
        for run in runs:  # several independent runs, one step each in turn
            grads = grader_a01_opt_grads(run["params"], coef, shift)
            run["grads"].append(grads)
            run["kept"].append([g.clone() for g in grads])
            run["state"] = step(run["params"], grads, run["state"], lr, **kwargs)
            run["types"].append(type(run["state"]).__name__)
            run["trajectory"].append([p.detach().clone() for p in run["params"]])
    out = []
    for run in runs:
        unchanged = all(_torch.equal(g, k) for gs, ks in zip(run["grads"], run["kept"]) for g, k in zip(gs, ks))
        same = len(run["params"]) == len(run["objects"]) and all(
            a is b for a, b in zip(run["params"], run["objects"]))
        out.append([run["trajectory"], unchanged, same, sorted(set(run["types"]))])
    return out
'''

STEP = {SGD: "sgd_step", ADAM: "adam_step"}


def helpers(student, component):
    expect_defined(student, STEP[component])
    if not getattr(student, "_a01_opt_helpers", False):
        student.define(HELPERS)
        student._a01_opt_helpers = True


def problem(shapes, seed, dtype=torch.float64, device="cpu", grad_scale=1.0):
    """Starting points, and the coefficients of the loss whose gradient is c (p - s) + p^3 / 10:
    distinct contents for every tensor (params and grads never coincide)."""
    gen = torch.Generator().manual_seed(seed)

    def make(shape, low, high):
        return (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).to(dtype=dtype, device=device)

    starts = [make(s, -2.0, 2.0) for s in shapes]
    coef = [make(s, 0.5, 3.0) * grad_scale for s in shapes]
    shift = [make(s, -1.0, 1.0) for s in shapes]
    return starts, coef, shift


def run(student, component, starts, coef, shift, lrs, kwargs, requires_grad=False, others=()):
    """One run from `starts`, and one more from each of `others`, taking turns."""
    helpers(student, component)
    runs = [starts, *others]
    result = student.grader_a01_opt_run(STEP[component], runs, list(lrs), kwargs, coef, shift, requires_grad)
    expect(isinstance(result, list) and len(result) == len(runs), "the optimizer run could not be recorded")
    return result


def reference(component, starts, coef, shift, lrs, kwargs):
    """The same run with torch.optim, in float64 on the CPU (cached: every notebook graded
    asks for the same runs)."""
    key = (component, tuple(lrs), tuple(sorted(kwargs.items())),
           tuple((tuple(t.shape), tuple(t.double().cpu().flatten().tolist())) for t in [*starts, *coef, *shift]))
    if key not in _REFERENCES:
        _REFERENCES[key] = _reference(component, starts, coef, shift, lrs, kwargs)
    return _REFERENCES[key]


_REFERENCES = {}


def _reference(component, starts, coef, shift, lrs, kwargs):
    params = [p.detach().double().cpu().clone().requires_grad_(True) for p in starts]
    if not params:
        return [[] for _ in lrs]
    cls = torch.optim.SGD if component == SGD else torch.optim.Adam
    opt = cls(params, lr=lrs[0], **kwargs)
    coef = [c.double().cpu() for c in coef]
    shift = [s.double().cpu() for s in shift]
    trajectory = []
    for lr in lrs:
        with torch.no_grad():
            for p, c, s in zip(params, coef, shift):
                p.grad = c * (p - s) + 0.1 * p ** 3
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory


def compare(got, want, what, atol):
    expect(isinstance(got, list) and len(got) == len(want), f"{what}: the run did not record every step")
    for t, (mine, theirs) in enumerate(zip(got, want)):
        expect(len(mine) == len(theirs), f"{what}: the number of parameters changed")
        for p, q in zip(mine, theirs):
            expect(isinstance(p, torch.Tensor) and p.shape == q.shape, f"{what}: a parameter changed shape")
            err = (p.double().cpu() - q).abs().max().item() if p.numel() else 0.0
            if not err <= atol:
                raise Feedback(f"{what}: after step {t + 1} the parameters differ from torch.optim's "
                               f"(largest absolute error {err:.3g}, tolerance {atol:g})")


def check(student, component, shapes, lrs, kwargs, seed, atol=1e-6, what=None, **options):
    starts, coef, shift = problem(shapes, seed)
    (trajectory, unchanged, same, types), = run(student, component, starts, coef, shift, lrs, kwargs, **options)
    name = "torch.optim.SGD" if component == SGD else "torch.optim.Adam"
    compare(trajectory, reference(component, starts, coef, shift, lrs, kwargs), what or f"compared with {name}", atol)
    return unchanged, same, types


SHAPES = [(3, 2), (4,), ()]


# --- gates --------------------------------------------------------------------------------------

@gate(SGD)
def sgd_follows_pytorch(student):
    """Three steps with momentum 0.9 on two parameters: PyTorch's updates, applied to the parameters in place."""
    check(student, SGD, [(2, 2), (3,)], [0.1] * 3, {"momentum": 0.9}, seed=0, atol=1e-4,
          what="three steps of sgd_step with momentum")


@gate(ADAM)
def adam_follows_pytorch(student):
    """Three steps with the default betas on two parameters: PyTorch's updates, applied in place."""
    check(student, ADAM, [(2, 2), (3,)], [0.1] * 3, {}, seed=0, atol=1e-4, what="three steps of adam_step")


# --- sgd_step -----------------------------------------------------------------------------------

@pytest.mark.component(SGD)
@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_sgd_is_a_function(student):
    """sgd_step is a top-level function"""
    expect_function(student, "sgd_step", "(params, grads, state, lr, momentum=0.0)")


@pytest.mark.component(SGD)
@spec("With `momentum=0.0` this is plain gradient descent")
def test_sgd_plain_matches_pytorch(student):
    """Without momentum, 50 steps equal torch.optim.SGD's"""
    check(student, SGD, SHAPES, [0.05] * 50, {}, seed=1)
    check(student, SGD, SHAPES, [0.05] * 20, {"momentum": 0.0}, seed=2)


@pytest.mark.component(SGD)
@spec("$$b_t = \\mu\\, b_{t-1} + g_t \\quad (b_1 = g_1), \\qquad p_t = p_{t-1} - \\eta\\, b_t .$$",
      "Over 50 steps the parameters equal those of `torch.optim.SGD`")
@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99], ids=["momentum-half", "momentum-high", "momentum-very-high"])
@pytest.mark.weight(2)
def test_sgd_momentum_matches_pytorch(student, momentum):
    """With momentum, 50 steps equal torch.optim.SGD's"""
    check(student, SGD, SHAPES, [0.02] * (50 if momentum == 0.9 else 30), {"momentum": momentum}, seed=3)


@pytest.mark.component(SGD)
@spec("`lr` may change from one step to the next (a schedule): the buffer holds gradients,\n  not steps")
def test_sgd_learning_rate_schedule(student):
    """A learning rate that changes every step, with momentum: equal to torch.optim.SGD"""
    lrs = [0.1 * 0.9 ** t for t in range(30)]
    check(student, SGD, SHAPES, lrs, {"momentum": 0.9}, seed=4)


@pytest.mark.component(SGD)
@spec("for any number of parameters of any shapes, including 0-dim tensors and\n  tensors with no elements")
def test_sgd_any_shapes(student):
    """Many parameters of any shapes, 0-dim and empty ones included"""
    shapes = [(2, 3, 4), (), (0,), (5, 0, 2), (1,), (7, 1), (2, 2, 2, 2)]
    check(student, SGD, shapes, [0.03] * 20, {"momentum": 0.9}, seed=5)


@pytest.mark.component(SGD)
@spec("an empty `params` list is a step that changes nothing")
def test_sgd_empty_parameter_list(student):
    """An empty params list is a step that changes nothing"""
    (trajectory, _, _, types), = run(student, SGD, [], [], [], [0.1] * 3, {"momentum": 0.9})
    expect(trajectory == [[], [], []], "with no parameters there is nothing to record")
    expect(types == ["dict"], f"sgd_step should return the new state, a dict, got {', '.join(types)}")


@pytest.mark.component(SGD)
@spec("`grads` are not modified (a momentum buffer must be a copy of a gradient, never the\n  gradient tensor itself)")
def test_sgd_grads_unchanged(student):
    """The gradients passed in are never modified, not even in later steps"""
    unchanged, _, _ = check(student, SGD, SHAPES, [0.05] * 10, {"momentum": 0.9}, seed=6)
    expect(unchanged, "sgd_step modified a gradient tensor: copy it before updating a buffer in place")


@pytest.mark.component(SGD)
@spec("Update every\n  tensor of `params` **in place** (the same tensor objects")
def test_sgd_updates_in_place(student):
    """The parameter tensors themselves are updated, and the list keeps them"""
    _, same, _ = check(student, SGD, SHAPES, [0.05] * 5, {"momentum": 0.5}, seed=7)
    expect(same, "sgd_step replaced tensors in the params list: update each tensor in place instead")


@pytest.mark.component(SGD)
@spec("Parameters may be leaf tensors that require grad\n  (a model's parameters): do the update inside `torch.no_grad()`")
def test_sgd_parameters_that_require_grad(student):
    """Parameters that require grad (a model's) are updated too"""
    check(student, SGD, SHAPES, [0.05] * 10, {"momentum": 0.9}, seed=8, requires_grad=True)


@pytest.mark.component(SGD)
@spec("`state` is a dict: `{}` at the first step, and afterwards the state the previous\n  step returned")
def test_sgd_state_is_a_dict_of_its_own(student):
    """The state is a dict, and two runs with their own states do not interfere"""
    starts, coef, shift = problem(SHAPES, 9)
    lrs = [0.05] * 10
    other = [p * 0.5 + 0.25 for p in starts]
    runs = run(student, SGD, starts, coef, shift, lrs, {"momentum": 0.9}, others=[other])
    wants = [reference(SGD, starts, coef, shift, lrs, {"momentum": 0.9}), reference(SGD, other, coef, shift, lrs, {"momentum": 0.9})]
    for (trajectory, _, _, types), want in zip(runs, wants):
        expect(types == ["dict"], f"sgd_step should return the new state, a dict, got {', '.join(types)}")
        compare(trajectory, want, "two runs taking turns, each with its own state", 1e-6)


@pytest.mark.component(SGD)
@spec("parameters keep their dtype (float32 or float64) and\n  device")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.float64, 1e-6)], ids=["float32", "float64"])
def test_sgd_keeps_dtype_and_device(student, dtype, atol, device):
    """Parameters keep their dtype and device"""
    starts, coef, shift = problem(SHAPES, 10, dtype=dtype, device=device)
    lrs = [0.05] * 10
    (trajectory, _, _, _), = run(student, SGD, starts, coef, shift, lrs, {"momentum": 0.9})
    for p in trajectory[-1]:
        expect(p.dtype == dtype and p.device.type == device, f"a {dtype} parameter on {device} came back as "
                                                             f"{p.dtype} on {p.device.type}")
    compare(trajectory, reference(SGD, starts, coef, shift, lrs, {"momentum": 0.9}), f"in {dtype}", atol)


# --- adam_step ----------------------------------------------------------------------------------

@pytest.mark.component(ADAM)
@spec("Keep each function or class defined at the top level of its answer cell, with\n  exactly the name and signature given")
@pytest.mark.weight(0.5)
def test_adam_is_a_function(student):
    """adam_step is a top-level function"""
    expect_function(student, "adam_step", "(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)")


@pytest.mark.component(ADAM)
@spec("The update is PyTorch's (`torch.optim.Adam`)", "Over 50 steps the parameters equal those of `torch.optim.Adam`")
@pytest.mark.weight(2)
def test_adam_defaults_match_pytorch(student):
    """With the default betas and eps, 50 steps equal torch.optim.Adam's"""
    check(student, ADAM, SHAPES, [0.05] * 50, {}, seed=11)


HYPER = [pytest.param({"betas": (0.8, 0.99), "eps": 1e-6}, id="betas-and-eps"),
         pytest.param({"betas": (0.5, 0.9), "eps": 1e-3}, id="low-betas-large-eps"),
         pytest.param({"betas": (0.99, 0.9999)}, id="high-betas")]


@pytest.mark.component(ADAM)
@spec("for any `betas`, `eps`, `weight_decay`", "With $(\\beta_1, \\beta_2)$ = `betas`")
@pytest.mark.parametrize("kwargs", HYPER)
def test_adam_hyperparameters(student, kwargs):
    """Other betas and eps: 30 steps equal torch.optim.Adam's"""
    check(student, ADAM, SHAPES, [0.05] * 30, kwargs, seed=12)


@pytest.mark.component(ADAM)
@spec("Weight decay is L2-style, as in `torch.optim.Adam`: $\\lambda p$ is added to the\n  gradient before the moments",
      "**not** subtracted from the parameter directly")
@pytest.mark.parametrize("weight_decay", [0.1, 0.01], ids=["strong-decay", "weak-decay"])
def test_adam_weight_decay_is_l2(student, weight_decay):
    """weight_decay is added to the gradient (L2, as torch.optim.Adam), not decoupled (AdamW)"""
    check(student, ADAM, SHAPES, [0.05] * 30, {"weight_decay": weight_decay}, seed=13)


@pytest.mark.component(ADAM)
@spec("`eps` is added **after** the square root")
def test_adam_eps_after_the_square_root(student):
    """eps is added after the square root (small gradients make the difference visible)"""
    starts, coef, shift = problem(SHAPES, 14, grad_scale=1e-4)
    lrs, kwargs = [0.01] * 20, {"eps": 1e-4}
    (trajectory, _, _, _), = run(student, ADAM, starts, coef, shift, lrs, kwargs)
    compare(trajectory, reference(ADAM, starts, coef, shift, lrs, kwargs), "with small gradients and eps=1e-4", 1e-6)


@pytest.mark.component(ADAM)
@spec("$$\\hat m_t = \\frac{m_t}{1 - \\beta_1^t}, \\qquad \\hat v_t = \\frac{v_t}{1 - \\beta_2^t}")
def test_adam_bias_correction(student):
    """The first steps are bias-corrected (visible with betas close to 1)"""
    check(student, ADAM, SHAPES, [0.1] * 5, {"betas": (0.99, 0.999)}, seed=15, what="the first five steps")


@pytest.mark.component(ADAM)
@spec("and a learning rate that may\n  change from step to step")
def test_adam_learning_rate_schedule(student):
    """A learning rate that changes every step: equal to torch.optim.Adam"""
    lrs = [0.1 * (0.5 + 0.5 * (t % 5) / 4) for t in range(30)]
    check(student, ADAM, SHAPES, lrs, {"betas": (0.8, 0.99)}, seed=16)


@pytest.mark.component(ADAM)
@spec("any shapes work,\n  and an empty `params` list changes nothing")
def test_adam_any_shapes(student):
    """Many parameters of any shapes, 0-dim and empty ones included, and an empty list"""
    shapes = [(2, 3, 4), (), (0,), (5, 0, 2), (1,), (7, 1)]
    check(student, ADAM, shapes, [0.03] * 20, {}, seed=17)
    (trajectory, _, _, types), = run(student, ADAM, [], [], [], [0.1] * 3, {})
    expect(trajectory == [[], [], []] and types == ["dict"], "with no parameters adam_step should change nothing "
                                                             "and return a dict")


@pytest.mark.component(ADAM)
@spec("`grads` are not modified")
def test_adam_grads_unchanged(student):
    """The gradients passed in are never modified"""
    unchanged, _, _ = check(student, ADAM, SHAPES, [0.05] * 10, {"weight_decay": 0.1}, seed=18)
    expect(unchanged, "adam_step modified a gradient tensor: compute on new tensors")


@pytest.mark.component(ADAM)
@spec("`params` are updated **in place** (inside `torch.no_grad()`)")
def test_adam_updates_in_place_even_when_requiring_grad(student):
    """The parameter tensors themselves are updated, also when they require grad"""
    _, same, _ = check(student, ADAM, SHAPES, [0.05] * 10, {}, seed=19, requires_grad=True)
    expect(same, "adam_step replaced tensors in the params list: update each tensor in place instead")


@pytest.mark.component(ADAM)
@spec("the step count\n  $t = 1, 2, \\dots$ kept in your state")
def test_adam_state_is_its_own(student):
    """The step count and moments live in the state: two runs taking turns do not interfere"""
    starts, coef, shift = problem(SHAPES, 20)
    lrs = [0.05] * 10
    other = [p * 0.5 + 0.25 for p in starts]
    runs = run(student, ADAM, starts, coef, shift, lrs, {}, others=[other])
    wants = [reference(ADAM, starts, coef, shift, lrs, {}), reference(ADAM, other, coef, shift, lrs, {})]
    for (trajectory, _, _, types), want in zip(runs, wants):
        expect(types == ["dict"], f"adam_step should return the new state, a dict, got {', '.join(types)}")
        compare(trajectory, want, "two runs taking turns, each with its own state", 1e-6)


@pytest.mark.component(ADAM)
@spec("parameters keep their dtype and device")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.float64, 1e-6)], ids=["float32", "float64"])
def test_adam_keeps_dtype_and_device(student, dtype, atol, device):
    """Parameters keep their dtype and device"""
    starts, coef, shift = problem(SHAPES, 21, dtype=dtype, device=device)
    lrs = [0.05] * 10
    (trajectory, _, _, _), = run(student, ADAM, starts, coef, shift, lrs, {})
    for p in trajectory[-1]:
        expect(p.dtype == dtype and p.device.type == device, f"a {dtype} parameter on {device} came back as "
                                                             f"{p.dtype} on {p.device.type}")
    compare(trajectory, reference(ADAM, starts, coef, shift, lrs, {}), f"in {dtype}", atol)
