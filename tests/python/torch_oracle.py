"""The network of a curvnet.Model written in torch, as a function of curvnet's flat parameter
vector (per Linear: weight [out, in] row-major, then bias; per BatchNorm: weight, then bias):
an independent implementation for the curvature tests."""
import torch
import torch.nn.functional as F


def make_loss(layers, loss_kind, x, t, masks):
    """loss(theta) of the mean batch loss. layers: the [[model.layers]] dicts; masks: layer
    index -> the Dropout mask (already scaled by 1/(1-p)) curvnet used."""
    def net(theta):
        h, off = x, 0
        for i, l in enumerate(layers):
            kind = l["type"]
            width = h.shape[1]
            if kind == "linear":
                out = l["out"]
                W = theta[off:off + out * width].view(out, width)
                b = theta[off + out * width:off + out * width + out]
                off += out * width + out
                h = h @ W.T + b
            elif kind == "batchnorm":
                g, be = theta[off:off + width], theta[off + width:off + 2 * width]
                off += 2 * width
                mu = h.mean(0)
                var = h.var(0, unbiased=False)
                h = (h - mu) / torch.sqrt(var + l.get("eps", 1e-5)) * g + be
            elif kind == "dropout":
                h = h * masks[i]
            elif kind == "relu":
                h = torch.relu(h)
            elif kind == "leaky_relu":
                h = F.leaky_relu(h, l.get("slope", 0.01))
            elif kind == "elu":
                h = F.elu(h, l.get("alpha", 1.0))
            elif kind == "sigmoid":
                h = torch.sigmoid(h)
            elif kind == "tanh":
                h = torch.tanh(h)
            elif kind == "gelu":
                h = 0.5 * h * (1 + torch.erf(h / 2 ** 0.5))
            elif kind == "softplus":
                h = torch.logaddexp(h, torch.zeros_like(h))
            elif kind == "identity":
                pass
            else:
                raise ValueError(kind)
        return h

    def loss(theta):
        z = net(theta)
        # written in elementary ops: PyTorch 1.13's forward mode lacks nll_loss_backward
        if loss_kind == "cross_entropy":
            onehot = F.one_hot(t.long(), z.shape[1]).to(z.dtype)
            return (torch.logsumexp(z, 1) - (z * onehot).sum(1)).mean()
        if loss_kind == "mse":
            return ((z - t.view_as(z)) ** 2).mean()
        return (torch.logaddexp(z, torch.zeros_like(z)) - t.view_as(z) * z).mean()

    return loss


def jvp_grad():
    """torch.func's jvp and grad (functorch's on PyTorch 1.13)."""
    try:
        from torch.func import grad, jvp
    except ImportError:
        from functorch import grad, jvp
    return jvp, grad
