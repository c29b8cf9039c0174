"""Banks for `course audit a01` (see autograder/banks.py): the mistakes the hidden
suite must catch, the correct alternatives it must accept, and hollow answers its
gates must stop."""
from autograder.banks import GATE, Alternative, Hollow, Mistake

VALUE, MLP, SOFTMAX, CE, NUMGRAD = "test-value", "test-mlp", "test-softmax", "test-cross-entropy", "test-numerical-gradient"
SGD, ADAM, CONV, RESBLOCK = "test-sgd", "test-adam", "test-conv2d", "test-residual-block"

# Neuron, Layer and MLP are built on the student's own Value.
DEPENDS = {MLP: [VALUE]}

# Arguments (or operands, or submodules) that can share a shape; each pair has a
# mistake that swaps them, caught because the suite gives each role its own contents.
ROLES = {
    VALUE: [("self", "other")],
    SGD: [("params", "grads"), ("lr", "momentum")],
    ADAM: [("params", "grads"), ("beta1", "beta2")],
    CONV: [("x", "weight")],
    RESBLOCK: [("conv1", "conv2"), ("bn1", "bn2")],
}

# --- mistakes -----------------------------------------------------------------------------------

RECURSIVE_BACKWARD = '''    def backward(self):
        order, seen = [], set()

        def visit(node):
            if id(node) not in seen:
                seen.add(id(node))
                for parent, _ in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        self.grad = 1.0'''

ITERATIVE_BACKWARD = '''    def backward(self):
        # Topological order without recursion: a node is appended once all the
        # values it was computed from are (an explicit stack of (node, expanded)).
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((parent, False) for parent, _ in node._parents if id(parent) not in seen)
        self.grad = 1.0'''

MISTAKES = [
    # Value
    Mistake(VALUE, "gradient-overwritten-not-accumulated",
            edits=[("parent.grad += local * node.grad", "parent.grad = local * node.grad")],
            caught_by=["test_gradients_accumulate"]),
    Mistake(VALUE, "recursive-topological-sort", edits=[(ITERATIVE_BACKWARD, RECURSIVE_BACKWARD)],
            caught_by=["test_deep_chain_of_5000_operations"]),
    Mistake(VALUE, "tanh-derivative-wrong", edits=[("return t, 1.0 - t * t, 0.0", "return t, 1.0 - x * x, 0.0")],
            caught_by=["test_each_operation[tanh]"]),
    Mistake(VALUE, "pow-derivative-without-n", edits=[("y * x ** (y - 1)", "x ** (y - 1)")],
            caught_by=["test_each_operation[pow]"]),
    Mistake(VALUE, "relu-gradient-1-at-zero",
            edits=[("return (x, 1.0, 0.0) if x > 0 else (0.0, 0.0, 0.0)",
                    "return (max(x, 0.0), 1.0, 0.0) if x >= 0 else (0.0, 0.0, 0.0)")],
            caught_by=["test_relu_gradient_at_zero"]),
    Mistake(VALUE, "pow-zero-divides-by-zero-at-zero",
            edits=[("        if y == 0:\n            return 1.0, 0.0, 0.0\n", "")],
            caught_by=["test_pow_zero_has_zero_gradient"]),
    Mistake(VALUE, "log-clamped", edits=[("return math.log(x), 1.0 / x, 0.0",
                                          "return math.log(max(x, 1e-12)), 1.0 / max(x, 1e-12), 0.0")],
            caught_by=["test_log_of_a_tiny_number"]),
    Mistake(VALUE, "tanh-through-exp-overflows",
            edits=[("t = math.tanh(x)", "t = (math.exp(2 * x) - 1) / (math.exp(2 * x) + 1)")],
            caught_by=["test_tanh_of_large_inputs"]),
    Mistake(VALUE, "reflected-subtraction-sign", edits=[("return (-self) + other", "return self - other")],
            caught_by=["test_each_operation[numbers-on-either-side]"]),
    Mistake(VALUE, "subtraction-operands-swapped", swaps=("self", "other"),
            edits=[("return self + (-other)", "return other + (-self) if isinstance(other, Value) else self + (-other)")],
            caught_by=["test_each_operation[add-sub-mul-div]"]),
    Mistake(VALUE, "leaf-backward-does-nothing",
            edits=[("    def backward(self):\n", "    def backward(self):\n        if not self._parents:\n            return\n")],
            caught_by=["test_backward_sets_its_own_grad_to_one"]),
    Mistake(VALUE, "data-kept-as-int", edits=[("self.data = float(data)", "self.data = data")],
            caught_by=["test_data_and_grad_are_floats"]),
    Mistake(VALUE, "negation-flips-the-operand", edits=[("    def __neg__(self):\n        return self * -1.0",
                                                          "    def __neg__(self):\n        self.data = -self.data\n"
                                                          "        return self")],
            caught_by=["test_operations_leave_operands_unchanged"]),

    # Neuron, Layer, MLP
    Mistake(MLP, "last-layer-nonlinear", edits=[("nonlin=(i != last)", "nonlin=True")],
            caught_by=[GATE, "test_last_layer_is_linear"]),
    Mistake(MLP, "hidden-layers-linear", edits=[("nonlin=(i != last)", "nonlin=False")],
            caught_by=[GATE, "test_mlp_matches_pytorch"]),
    Mistake(MLP, "tanh-instead-of-relu", edits=[("return act.relu() if self.nonlin else act",
                                                 "return act.tanh() if self.nonlin else act")],
            caught_by=[GATE, "test_neuron"]),
    Mistake(MLP, "one-output-layer-returns-a-list", edits=[("return outs[0] if len(outs) == 1 else outs", "return outs"),
                                                           ("x = [x]  # a hidden", "pass  # a hidden")],
            caught_by=[GATE, "test_one_output_is_a_single_value"]),
    Mistake(MLP, "bias-missing-from-parameters", edits=[("return self.w + [self.b]", "return self.w")],
            caught_by=[GATE, "test_parameter_counts"]),
    Mistake(MLP, "zero-grad-only-first-layer", edits=[(
        "for layer in self.layers for p in layer.parameters()]\n\n    def zero_grad(self):\n        for p in self.parameters():",
        "for layer in self.layers for p in layer.parameters()]\n\n    def zero_grad(self):\n"
        "        for p in self.layers[0].parameters():")],
        caught_by=["test_zero_grad"]),
    Mistake(MLP, "neurons-start-equal", edits=[(
        "self.w = [Value(random.uniform(-1.0, 1.0)) for _ in range(nin)]",
        "rng = random.Random(nin)\n        self.w = [Value(rng.uniform(-1.0, 1.0)) for _ in range(nin)]")],
        caught_by=["test_neurons_start_different"]),
    Mistake(MLP, "hidden-layer-of-one-breaks", edits=[("x = [x]  # a hidden", "pass  # a hidden")],
            caught_by=["test_mlp_matches_pytorch[hidden-layer-of-one]"]),

    # softmax
    Mistake(SOFTMAX, "no-max-subtraction", edits=[("shifted = x - x.amax(dim=dim, keepdim=True)", "shifted = x")],
            caught_by=["test_extreme_logits"]),
    Mistake(SOFTMAX, "global-max-subtracted", edits=[("x.amax(dim=dim, keepdim=True)", "x.max()")],
            caught_by=["test_extreme_logits[rows-of-different-scales]"]),
    Mistake(SOFTMAX, "shifts-x-in-place", edits=[("shifted = x - x.amax(dim=dim, keepdim=True)",
                                                  "x -= x.amax(dim=dim, keepdim=True)\n    shifted = x")],
            caught_by=["test_input_left_unchanged"]),
    Mistake(SOFTMAX, "always-the-last-dim", edits=[("amax(dim=dim,", "amax(dim=-1,"), ("sum(dim=dim,", "sum(dim=-1,")],
            caught_by=["test_any_dim_matches_formula"]),
    Mistake(SOFTMAX, "casts-to-float32", edits=[("e = torch.exp(shifted)", "e = torch.exp(shifted.float())")],
            caught_by=["test_keeps_dtype_and_device"]),
    Mistake(SOFTMAX, "empty-tensor-fails", edits=[("    if x.numel() == 0:\n        return x.clone()\n", "")],
            caught_by=["test_empty_tensor"]),
    Mistake(SOFTMAX, "detached", edits=[("e = torch.exp(shifted)", "e = torch.exp(shifted).detach()")],
            caught_by=["test_gradients"]),

    # cross_entropy
    Mistake(CE, "summed-not-averaged", edits=[("(log_sum_exp - picked).mean()", "(log_sum_exp - picked).sum()")],
            caught_by=[GATE, "test_mean_over_the_batch"]),
    Mistake(CE, "log-of-softmax", source='''
def cross_entropy(logits, targets):
    top = logits.amax(dim=1, keepdim=True)
    e = torch.exp(logits - top)
    probs = e / e.sum(dim=1, keepdim=True)
    return -torch.log(probs.gather(1, targets.unsqueeze(1)).squeeze(1)).mean()
''', caught_by=["test_extreme_logits"]),
    Mistake(CE, "no-max-subtraction", edits=[("top = logits.amax(dim=1, keepdim=True).detach()",
                                              "top = torch.zeros_like(logits[:, :1])")],
            caught_by=["test_extreme_logits"]),
    Mistake(CE, "largest-logit-instead-of-target", edits=[("picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1)",
                                                           "picked = logits.amax(dim=1)")],
            caught_by=[GATE]),
    Mistake(CE, "casts-to-float32", edits=[("return (log_sum_exp - picked).mean()",
                                            "return (log_sum_exp - picked).float().mean()")],
            caught_by=["test_keeps_dtype_and_device"]),
    Mistake(CE, "shifts-logits-in-place", source='''
def cross_entropy(logits, targets):
    top = logits.amax(dim=1, keepdim=True).detach()
    logits -= top
    log_sum_exp = torch.log(torch.exp(logits).sum(dim=1))
    picked = logits.gather(1, targets.unsqueeze(1)).squeeze(1)
    return (log_sum_exp - picked).mean()
''', caught_by=["test_inputs_left_unchanged"]),

    # numerical_gradient
    Mistake(NUMGRAD, "one-sided-differences",
            edits=[("f_minus = float(f(minus.reshape(x.shape)))", "f_minus = float(f(base.reshape(x.shape)))"),
                   ("/ (2 * eps)", "/ eps")],
            caught_by=["test_central_differences"]),
    Mistake(NUMGRAD, "works-in-the-dtype-of-x",
            edits=[("base = x.detach().to(torch.float64).reshape(-1).clone()", "base = x.detach().reshape(-1).clone()"),
                   ("dtype=torch.float64, device=x.device", "dtype=x.dtype, device=x.device")],
            caught_by=["test_works_in_float64"]),
    Mistake(NUMGRAD, "perturbs-x-and-restores-it", source='''
def numerical_gradient(f, x, eps=1e-6):
    flat = x.detach().view(-1)  # shares x's memory
    grad = torch.zeros(flat.numel(), dtype=torch.float64, device=x.device)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        f_plus = float(f(x.double()))
        flat[i] = old - eps
        f_minus = float(f(x.double()))
        flat[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(x.shape)
''', caught_by=["test_x_never_changed"]),
    Mistake(NUMGRAD, "eps-ignored", edits=[("plus[i] += eps", "plus[i] += 1e-6"), ("minus[i] -= eps", "minus[i] -= 1e-6"),
                                          ("/ (2 * eps)", "/ 2e-6")],
            caught_by=["test_eps_is_the_step"]),
    Mistake(NUMGRAD, "flat-result", edits=[("return grad.reshape(x.shape)", "return grad")],
            caught_by=["test_matches_autograd_for_any_shape"]),
    Mistake(NUMGRAD, "calls-f-with-a-flat-vector", edits=[("f(plus.reshape(x.shape))", "f(plus)"),
                                                         ("f(minus.reshape(x.shape))", "f(minus)")],
            caught_by=["test_calls_f_with_the_shape_of_x"]),

    # sgd_step
    Mistake(SGD, "momentum-with-dampening", edits=[("momentum * buffers[i] + g", "momentum * buffers[i] + (1 - momentum) * g")],
            caught_by=[GATE, "test_sgd_momentum_matches_pytorch"]),
    Mistake(SGD, "learning-rate-inside-the-buffer",
            edits=[("b = g.clone() if buffers is None else momentum * buffers[i] + g",
                    "b = lr * g if buffers is None else momentum * buffers[i] + lr * g"),
                   ("p -= lr * b", "p -= b")],
            caught_by=["test_sgd_learning_rate_schedule"]),
    Mistake(SGD, "buffer-is-the-gradient-itself",
            edits=[("b = g.clone() if buffers is None else momentum * buffers[i] + g",
                    "b = g if buffers is None else buffers[i].mul_(momentum).add_(g)")],
            caught_by=["test_sgd_grads_unchanged"]),
    Mistake(SGD, "replaces-the-tensors-in-the-list", edits=[("p -= lr * b", "params[i] = p - lr * b"),
                                                            ("p -= lr * g", "params[i] = p - lr * g")],
            caught_by=["test_sgd_updates_in_place"]),
    Mistake(SGD, "rebinds-instead-of-updating", edits=[("p -= lr * b", "p = p - lr * b"), ("p -= lr * g", "p = p - lr * g")],
            caught_by=[GATE]),
    Mistake(SGD, "params-and-grads-swapped", swaps=("params", "grads"),
            edits=[("for i, (p, g) in enumerate(zip(params, grads)):", "for i, (g, p) in enumerate(zip(params, grads)):")],
            caught_by=[GATE]),
    Mistake(SGD, "lr-and-momentum-swapped", swaps=("lr", "momentum"),
            edits=[("    buffers = state.get(\"buffers\")", "    lr, momentum = momentum, lr\n    buffers = state.get(\"buffers\")")],
            caught_by=[GATE]),
    Mistake(SGD, "update-outside-no-grad", edits=[("with torch.no_grad():", "if True:")],
            caught_by=["test_sgd_parameters_that_require_grad"]),
    Mistake(SGD, "buffers-kept-outside-the-state", source='''
_buffers = {}


def sgd_step(params, grads, state, lr, momentum=0.0):
    with torch.no_grad():
        for i, (p, g) in enumerate(zip(params, grads)):
            if momentum != 0.0:
                b = g.clone() if not state else momentum * _buffers[i] + g
                _buffers[i] = b
                p -= lr * b
            else:
                p -= lr * g
    return {"started": True}
''', caught_by=["test_sgd_state_is_a_dict_of_its_own"]),

    # adam_step
    Mistake(ADAM, "no-bias-correction", edits=[("m_hat = m / (1 - beta1 ** t)", "m_hat = m"),
                                               ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")],
            caught_by=[GATE, "test_adam_bias_correction"]),
    Mistake(ADAM, "decoupled-weight-decay-adamw", edits=[("g = g + weight_decay * p", "p -= lr * weight_decay * p")],
            caught_by=["test_adam_weight_decay_is_l2"]),
    Mistake(ADAM, "eps-inside-the-square-root", edits=[("torch.sqrt(v_hat) + eps", "torch.sqrt(v_hat + eps)")],
            caught_by=["test_adam_eps_after_the_square_root"]),
    Mistake(ADAM, "step-count-not-kept", edits=[('t = state.get("t", 0) + 1', "t = 1")], caught_by=[GATE]),
    Mistake(ADAM, "betas-swapped", swaps=("beta1", "beta2"), edits=[("beta1, beta2 = betas", "beta2, beta1 = betas")],
            caught_by=[GATE]),
    Mistake(ADAM, "params-and-grads-swapped", swaps=("params", "grads"),
            edits=[("for p, g, m, v in zip(params, grads, ms, vs):", "for g, p, m, v in zip(params, grads, ms, vs):")],
            caught_by=[GATE]),
    Mistake(ADAM, "weight-decay-added-in-place", edits=[("g = g + weight_decay * p", "g += weight_decay * p")],
            caught_by=["test_adam_grads_unchanged"]),
    Mistake(ADAM, "step-count-kept-outside-the-state",
            edits=[('    t = state.get("t", 0) + 1', '    global _step\n    _step = 1 if not state else _step + 1\n'
                                                     '    t = _step')],
            caught_by=["test_adam_state_is_its_own"]),
    Mistake(ADAM, "update-outside-no-grad", edits=[("with torch.no_grad():", "if True:")],
            caught_by=["test_adam_updates_in_place_even_when_requiring_grad"]),

    # conv2d
    Mistake(CONV, "padding-ignored", edits=[("padded = F.pad(x, (pw, pw, ph, ph))", "padded = x")],
            caught_by=["test_matches_builtin"]),
    Mistake(CONV, "output-size-off-by-one", edits=[("h_out = (h + 2 * ph - kh) // sh + 1", "h_out = (h + 2 * ph - kh) // sh"),
                                                   ("w_out = (w + 2 * pw - kw) // sw + 1", "w_out = (w + 2 * pw - kw) // sw")],
            caught_by=[GATE]),
    Mistake(CONV, "stride-ignored-in-the-slices", edits=[(":sh, v:v + sw * (w_out - 1) + 1:sw]", ", v:v + w_out]"),
                                                         ("u:u + sh * (h_out - 1) + 1", "u:u + h_out")],
            caught_by=["test_matches_builtin"]),
    Mistake(CONV, "kernel-flipped", edits=[("weight[:, :, u, v]", "weight[:, :, kh - 1 - u, kw - 1 - v]")],
            caught_by=[GATE, "test_kernel_is_not_flipped"]),
    Mistake(CONV, "stride-pair-uses-its-first-entry",
            edits=[("sh, sw = (stride, stride) if isinstance(stride, int) else stride",
                    "sh, sw = (stride, stride) if isinstance(stride, int) else (stride[0], stride[0])")],
            caught_by=["test_int_and_pair_agree"]),
    Mistake(CONV, "padding-pair-swapped-in-pad", edits=[("F.pad(x, (pw, pw, ph, ph))", "F.pad(x, (ph, ph, pw, pw))")],
            caught_by=["test_int_and_pair_agree"]),
    Mistake(CONV, "bias-ignored", edits=[("        out = out + bias.view(1, c_out, 1, 1)\n", "        pass\n")],
            caught_by=["test_bias_per_output_channel"]),
    Mistake(CONV, "x-and-weight-swapped-when-shapes-match", swaps=("x", "weight"),
            edits=[("    sh, sw = (stride, stride)", "    if x.shape == weight.shape:\n        x, weight = weight, x\n"
                                                     "    sh, sw = (stride, stride)")],
            caught_by=["test_same_shapes_keep_their_roles"]),
    Mistake(CONV, "float32-accumulator", edits=[("out = x.new_zeros(n, c_out, h_out, w_out)",
                                                 "out = torch.zeros(n, c_out, h_out, w_out)")],
            caught_by=["test_keeps_dtype_and_device"]),

    # ResidualBlock
    Mistake(RESBLOCK, "skip-added-after-the-relu", edits=[("return F.relu(x + branch)", "return F.relu(branch) + x")],
            caught_by=[GATE, "test_skip_added_before_the_last_relu"]),
    Mistake(RESBLOCK, "convolutions-with-bias", edits=[("padding=1, bias=False)", "padding=1, bias=True)")],
            caught_by=[GATE, "test_submodules"]),
    Mistake(RESBLOCK, "no-skip-connection", edits=[("return F.relu(x + branch)", "return F.relu(branch)")],
            caught_by=[GATE]),
    Mistake(RESBLOCK, "adds-into-x-in-place", edits=[("return F.relu(x + branch)", "x += branch\n        return F.relu(x)")],
            caught_by=["test_input_left_unchanged"]),
    Mistake(RESBLOCK, "always-batch-statistics", edits=[(
        "branch = F.relu(self.bn1(self.conv1(x)))\n        branch = self.bn2(self.conv2(branch))",
        "branch = F.relu(F.batch_norm(self.conv1(x), None, None, self.bn1.weight, self.bn1.bias, True))\n"
        "        branch = F.batch_norm(self.conv2(branch), None, None, self.bn2.weight, self.bn2.bias, True)")],
        caught_by=["test_eval_mode_uses_running_statistics", "test_running_statistics_are_updated"]),
    Mistake(RESBLOCK, "convolutions-swapped", swaps=("conv1", "conv2"),
            edits=[("F.relu(self.bn1(self.conv1(x)))", "F.relu(self.bn1(self.conv2(x)))"),
                   ("self.bn2(self.conv2(branch))", "self.bn2(self.conv1(branch))")],
            caught_by=[GATE]),
    Mistake(RESBLOCK, "batch-norms-swapped", swaps=("bn1", "bn2"),
            edits=[("F.relu(self.bn1(self.conv1(x)))", "F.relu(self.bn2(self.conv1(x)))"),
                   ("self.bn2(self.conv2(branch))", "self.bn1(self.conv2(branch))")],
            caught_by=[GATE]),
]

# --- correct alternatives ---------------------------------------------------------------------------

ALTERNATIVES = [
    # Closures for the backward rules, and a recursive topological sort with a raised limit.
    Alternative(VALUE, "closures-and-recursive-sort-with-a-raised-limit", '''
import sys


class Value:
    def __init__(self, data, children=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = set(children)
        self._rule = lambda: None

    @staticmethod
    def _wrap(v):
        return v if isinstance(v, Value) else Value(v)

    def __add__(self, other):
        other = Value._wrap(other)
        res = Value(self.data + other.data, (self, other))

        def rule():
            self.grad += res.grad
            other.grad += res.grad
        res._rule = rule
        return res

    def __mul__(self, other):
        other = Value._wrap(other)
        res = Value(self.data * other.data, (self, other))

        def rule():
            self.grad += other.data * res.grad
            other.grad += self.data * res.grad
        res._rule = rule
        return res

    def __pow__(self, k):
        res = Value(self.data ** k, (self,))

        def rule():
            if k != 0:
                self.grad += k * self.data ** (k - 1) * res.grad
        res._rule = rule
        return res

    def exp(self):
        res = Value(math.exp(self.data), (self,))

        def rule():
            self.grad += res.data * res.grad
        res._rule = rule
        return res

    def log(self):
        res = Value(math.log(self.data), (self,))

        def rule():
            self.grad += res.grad / self.data
        res._rule = rule
        return res

    def tanh(self):
        res = Value(math.tanh(self.data), (self,))

        def rule():
            self.grad += (1 - res.data ** 2) * res.grad
        res._rule = rule
        return res

    def relu(self):
        res = Value(self.data if self.data > 0 else 0.0, (self,))

        def rule():
            self.grad += (1.0 if self.data > 0 else 0.0) * res.grad
        res._rule = rule
        return res

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-Value._wrap(other))

    def __truediv__(self, other):
        return self * Value._wrap(other) ** -1

    def __radd__(self, other):
        return Value._wrap(other) + self

    def __rsub__(self, other):
        return Value._wrap(other) - self

    def __rmul__(self, other):
        return Value._wrap(other) * self

    def __rtruediv__(self, other):
        return Value._wrap(other) / self

    def backward(self):
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
        ordered, visited = [], set()

        def visit(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    visit(child)
                ordered.append(v)
        visit(self)
        self.grad = 1.0
        for v in ordered[::-1]:
            v._rule()
'''),
    # Subtraction and division as operations of their own, Kahn's algorithm for the order.
    Alternative(VALUE, "own-sub-and-div-and-kahn-order", '''
class Value:
    def __init__(self, data):
        self.data = float(data)
        self.grad = 0.0
        self.inputs = []  # (input Value, local derivative)

    def _node(self, data, *inputs):
        out = Value(data)
        out.inputs = list(inputs)
        return out

    def __add__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return self._node(self.data + o.data, (self, 1.0), (o, 1.0))

    def __sub__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return self._node(self.data - o.data, (self, 1.0), (o, -1.0))

    def __mul__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return self._node(self.data * o.data, (self, o.data), (o, self.data))

    def __truediv__(self, o):
        o = o if isinstance(o, Value) else Value(o)
        return self._node(self.data / o.data, (self, 1.0 / o.data), (o, -self.data / o.data ** 2))

    def __radd__(self, o):
        return Value(o) + self

    def __rsub__(self, o):
        return Value(o) - self

    def __rmul__(self, o):
        return Value(o) * self

    def __rtruediv__(self, o):
        return Value(o) / self

    def __neg__(self):
        return self._node(-self.data, (self, -1.0))

    def __pow__(self, n):
        slope = 0.0 if n == 0 else n * self.data ** (n - 1)
        return self._node(self.data ** n, (self, slope))

    def exp(self):
        e = math.exp(self.data)
        return self._node(e, (self, e))

    def log(self):
        return self._node(math.log(self.data), (self, 1.0 / self.data))

    def tanh(self):
        t = math.tanh(self.data)
        return self._node(t, (self, 1.0 - t * t))

    def relu(self):
        return self._node(max(self.data, 0.0), (self, 1.0 if self.data > 0 else 0.0))

    def backward(self):
        users, todo, found = {}, [self], {id(self): self}
        while todo:  # count, for every node, the uses it has inside this graph
            node = todo.pop()
            for inp, _ in node.inputs:
                users[id(inp)] = users.get(id(inp), 0) + 1
                if id(inp) not in found:
                    found[id(inp)] = inp
                    todo.append(inp)
        self.grad = 1.0
        ready = [self]
        while ready:  # a node passes its gradient on once all its uses have passed theirs
            node = ready.pop()
            for inp, local in node.inputs:
                inp.grad += local * node.grad
                users[id(inp)] -= 1
                if users[id(inp)] == 0:
                    ready.append(inp)
'''),

    Alternative(MLP, "bias-first-and-a-shared-base-class", '''
class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    def __init__(self, nin, nonlin=True):
        scale = 1.0 / math.sqrt(nin)
        self.params = [Value(0.0)] + [Value(random.gauss(0.0, scale)) for _ in range(nin)]
        self.use_relu = nonlin

    def __call__(self, x):
        z = sum((w * xi for w, xi in zip(self.params[1:], x)), self.params[0])
        return z.relu() if self.use_relu else z

    def parameters(self):
        return list(self.params)


class Layer(Module):
    def __init__(self, nin, nout, nonlin=True):
        self.neurons = [Neuron(nin, nonlin=nonlin) for _ in range(nout)]

    def __call__(self, x):
        if len(self.neurons) == 1:
            return self.neurons[0](x)
        return [n(x) for n in self.neurons]

    def parameters(self):
        found = []
        for n in self.neurons:
            found.extend(n.parameters())
        return found


class MLP(Module):
    def __init__(self, nin, nouts):
        sizes = [nin, *nouts]
        self.layers = []
        for k in range(len(nouts)):
            self.layers.append(Layer(sizes[k], sizes[k + 1], nonlin=k < len(nouts) - 1))

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x if isinstance(x, list) else [x])
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
'''),

    Alternative(SOFTMAX, "log-sum-exp-by-hand", '''
def softmax(x, dim=-1):
    if 0 in x.shape:
        return torch.empty_like(x)
    m = x.max(dim=dim, keepdim=True).values
    log_norm = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return torch.exp(x - log_norm)
'''),
    Alternative(SOFTMAX, "moved-to-the-last-dim", '''
def softmax(x, dim=-1):
    moved = x.movedim(dim, -1)
    if moved.numel() == 0:
        return x * 1
    z = moved - moved.amax(-1, keepdim=True)
    p = z.exp()
    p = p / p.sum(-1, keepdim=True)
    return p.movedim(-1, dim)
'''),

    Alternative(CE, "one-hot-and-log-probabilities", '''
def cross_entropy(logits, targets):
    shifted = logits - logits.max(dim=1, keepdim=True).values
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    one_hot = F.one_hot(targets, num_classes=logits.shape[1]).to(logits.dtype)
    return -(one_hot * log_probs).sum(dim=1).mean()
'''),
    Alternative(CE, "arange-indexing", '''
def cross_entropy(logits, targets):
    n = logits.shape[0]
    m = logits.amax(1)
    lse = m + (logits - m[:, None]).exp().sum(1).log()
    return (lse - logits[torch.arange(n, device=logits.device), targets]).sum() / n
'''),

    Alternative(NUMGRAD, "index-tuples-and-unit-vectors", '''
import itertools


def numerical_gradient(f, x, eps=1e-6):
    point = x.detach().clone().double()
    grad = torch.empty_like(point)
    for idx in itertools.product(*(range(s) for s in point.shape)):
        step = torch.zeros_like(point)
        step[idx] = eps
        grad[idx] = (float(f(point + step)) - float(f(point - step))) / (2 * eps)
    return grad
'''),

    Alternative(SGD, "zero-buffers-and-add_", '''
def sgd_step(params, grads, state, lr, momentum=0.0):
    bufs = state.get("momentum_buffer") or [torch.zeros_like(p) for p in params]
    new_bufs = []
    for p, g, buf in zip(params, grads, bufs):
        buf = buf * momentum + g
        with torch.no_grad():
            p.add_(buf, alpha=-lr)
        new_bufs.append(buf)
    return {"momentum_buffer": new_bufs, "steps": state.get("steps", 0) + 1}
'''),

    Alternative(ADAM, "pytorch-style-lerp-and-addcdiv", '''
def adam_step(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    if not state:
        state = {"step": 0, "exp_avg": [torch.zeros_like(p) for p in params],
                 "exp_avg_sq": [torch.zeros_like(p) for p in params]}
    step = state["step"] + 1
    exp_avgs = [m.clone() for m in state["exp_avg"]]
    exp_avg_sqs = [v.clone() for v in state["exp_avg_sq"]]
    with torch.no_grad():
        for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
            if weight_decay:
                g = g.add(p, alpha=weight_decay)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2 ** step)).add_(eps)
            p.addcdiv_(m, denom, value=-lr / (1 - b1 ** step))
    return {"step": step, "exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs}
'''),
    Alternative(ADAM, "per-parameter-state-dicts", '''
def adam_step(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    new_state = {}
    for i, (p, g) in enumerate(zip(params, grads)):
        s = state.get(i, {"t": 0, "m": 0.0, "v": 0.0})
        t = s["t"] + 1
        d = g.detach() + weight_decay * p.detach()
        m = betas[0] * s["m"] + (1 - betas[0]) * d
        v = betas[1] * s["v"] + (1 - betas[1]) * d ** 2
        update = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
        with torch.no_grad():
            p.sub_(lr * update)
        new_state[i] = {"t": t, "m": m, "v": v}
    return new_state
'''),

    Alternative(CONV, "unfold-and-matmul", '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    c_out, _, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
    h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
    w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
    if x.shape[0] == 0:
        return x.new_zeros(0, c_out, h_out, w_out)
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (N, C_in*kh*kw, L)
    out = (weight.reshape(c_out, -1) @ cols).reshape(x.shape[0], c_out, h_out, w_out)
    if bias is not None:
        out = out + bias[:, None, None]
    return out
'''),
    Alternative(CONV, "tensor-unfold-and-einsum", '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    if isinstance(stride, int):
        stride = (stride, stride)
    if isinstance(padding, int):
        padding = (padding, padding)
    kh, kw = weight.shape[2:]
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    patches = xp.unfold(2, kh, stride[0]).unfold(3, kw, stride[1])  # (N, C, H_out, W_out, kh, kw)
    out = torch.einsum("nchwij,ocij->nohw", patches, weight)
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)
'''),
    Alternative(CONV, "loops-over-output-pixels", '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    sh, sw = stride if not isinstance(stride, int) else (stride, stride)
    ph, pw = padding if not isinstance(padding, int) else (padding, padding)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    xp = torch.zeros(n, c, h + 2 * ph, w + 2 * pw, dtype=x.dtype, device=x.device)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = []
    for i in range(ho):
        cols = []
        for j in range(wo):
            window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c * kh * kw)
            cols.append(window @ weight.reshape(o, -1).T)
        rows.append(torch.stack(cols, dim=-1))
    out = torch.stack(rows, dim=-2)
    if bias is not None:
        out = out + bias.view(1, o, 1, 1)
    return out
'''),

    Alternative(RESBLOCK, "relu-modules-and-add", '''
class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=(3, 3), padding=(1, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        identity = x
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out.add(identity))
'''),
    Alternative(RESBLOCK, "clamp-and-in-place-on-its-own-tensor", '''
class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        h = self.bn1(self.conv1(x)).clamp(min=0)
        h = self.bn2(self.conv2(h))
        h += x  # h is the block's own tensor: x is untouched
        return h.clamp_min(0.0)
'''),
]

# --- hollow answers -------------------------------------------------------------------------------------

HOLLOW = [
    Hollow(VALUE, "value-without-gradients", '''
class Value:
    def __init__(self, data):
        self.data = float(data)
        self.grad = 0.0

    def _lift(self, other):
        return other if isinstance(other, Value) else Value(other)

    def __add__(self, other):
        return Value(self.data + self._lift(other).data)

    def __mul__(self, other):
        return Value(self.data * self._lift(other).data)

    __radd__, __rmul__ = __add__, __mul__

    def __sub__(self, other):
        return Value(self.data - self._lift(other).data)

    def backward(self):
        self.grad = 1.0
'''),
    Hollow(VALUE, "value-of-zeros", '''
class Value:
    def __init__(self, data):
        self.data = 0.0
        self.grad = 0.0

    def __add__(self, other):
        return Value(0.0)

    __mul__ = __sub__ = __truediv__ = __radd__ = __rmul__ = __rsub__ = __rtruediv__ = __pow__ = __add__

    def backward(self):
        self.grad = 1.0
'''),
    Hollow(MLP, "mlp-with-constant-output", '''
class Neuron:
    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)

    def __call__(self, x):
        return Value(0.0)

    def parameters(self):
        return self.w + [self.b]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0


class Layer(Neuron):
    def __init__(self, nin, nout, nonlin=True):
        self.neurons = [Neuron(nin) for _ in range(nout)]

    def __call__(self, x):
        outs = [n(x) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]


class MLP(Layer):
    def __init__(self, nin, nouts):
        sizes = [nin] + nouts
        self.layers = [Layer(sizes[i], sizes[i + 1]) for i in range(len(nouts))]

    def __call__(self, x):
        return self.layers[-1](x)

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
'''),
    Hollow(SOFTMAX, "softmax-uniform", '''
def softmax(x, dim=-1):
    return torch.ones_like(x) / x.shape[dim]
'''),
    Hollow(CE, "cross-entropy-of-uniform-guessing", '''
def cross_entropy(logits, targets):
    return torch.full((), math.log(logits.shape[1]), dtype=logits.dtype, device=logits.device)
'''),
    Hollow(NUMGRAD, "numerical-gradient-zeros", '''
def numerical_gradient(f, x, eps=1e-6):
    return torch.zeros(x.shape, dtype=torch.float64, device=x.device)
'''),
    Hollow(SGD, "sgd-changes-nothing", '''
def sgd_step(params, grads, state, lr, momentum=0.0):
    return dict(state)
'''),
    Hollow(ADAM, "adam-changes-nothing", '''
def adam_step(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    return {"t": state.get("t", 0) + 1}
'''),
    Hollow(CONV, "conv2d-zeros-of-the-right-shape", '''
def conv2d(x, weight, bias=None, stride=1, padding=0):
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    h = (x.shape[2] + 2 * ph - weight.shape[2]) // sh + 1
    w = (x.shape[3] + 2 * pw - weight.shape[3]) // sw + 1
    return x.new_zeros(x.shape[0], weight.shape[0], h, w)
'''),
    Hollow(RESBLOCK, "residual-block-returns-relu-x", '''
class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(x)
'''),
]
