"""2-D convolution and transposed convolution (NCHW, PyTorch semantics and weight layouts).

    conv2d:            y[n,o,a,b] = b_o + Σ_{c,i,j} W[o,c,i,j] · x̃[n, c, s·a + i, s·b + j]
    conv_transpose2d:  the adjoint of conv2d in x (its input-gradient), weight (in, out, kh, kw),
                       output size (H − 1)·s − 2p + k + output_padding

where x̃ is x zero-padded by p. Both are a strided copy plus a GEMM each way
(Chellapilla et al. 2006, "High performance convolutional neural networks for
document processing"; Chainer's ``im2col``/``col2im``):

* ``_im2col`` gathers every receptive field into a matrix ``col`` of shape
  (N·OH·OW, kh·kw·C) with a single ``as_strided`` view of the padded input and one
  contiguous copy, so conv2d is ``col @ Wᵀ``.
* ``_col2im_add`` is its exact adjoint: a loop over the kh·kw kernel offsets adding
  strided slices into a zero buffer (plain slicing: runs unchanged on CuPy, any dtype;
  offsets are added s×s at a time, see there).

Algorithms. :func:`conv2d` and :func:`conv_transpose2d` take ``algorithm``: "im2col" (the
Functions below: the exact GEMM, the reference), "winograd" (:mod:`.winograd`: 4×4
stride-2 layers, F(4×4, 2×2) on the space-to-depth image, 0.39× the multiplications),
or "auto" -- Winograd where it applies, on NumPy, for layers wide enough (the smaller
channel count times the fraction of the tiles' outputs kept reaches
:data:`.winograd.MIN_AUTO_CHANNELS`; measured: ``benchmarks/bench_conv.py --algorithm``),
else im2col.

Memory layout. Activations are produced *channels-last* in memory (N, H, W, C) and
handed out as the NCHW-shaped transposed view: conv2d's output (the layout the GEMM
writes for free), conv_transpose2d's output and conv2d's input gradient (col2im works
in a padded channels-last buffer per chunk; its interior is copied out once, plus the
bias). The rows of ``col`` are then long contiguous runs (kw·C elements), BatchNorm
and elementwise ops downstream keep the layout (NumPy's ``order='K'``), and the next
layer's im2col and the vjps reshape without copying. Any layout is accepted as input
(a non-channels-last or sliced input only costs one extra copy); every result is
correct for arbitrary strides because strides are always read from the array.

Parts and chunks (CPU). The batch is split into one part per core, each run on a
worker thread with a single-threaded BLAS (:mod:`._parallel`: NumPy releases the GIL,
so copies and GEMMs of the parts run at once; partial dW, db are added in part order).
Within a part the images go in chunks whose ``col`` is about ``CPU_CHUNK_BYTES`` (one
strided copy and one GEMM per chunk), so ``col`` is read by the GEMM while still in
cache; the backward pass recomputes a chunk's ``col`` instead of storing the whole
matrix (cheaper than reading it back from memory, and it saves the memory), except when
each part is a single chunk: then those are kept (conv 1→32 of mnist-conv: 1.3 → 1.1 ms
fwd + vjp). On CuPy the whole batch is one part and one chunk.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import get_array_module as _xp
from . import _parallel
from . import winograd
from ._checks import check_conv_args, pair_arg

# Below this many contiguous elements per receptive-field row (kw·C), im2col is
# copied kernel-offset-major (kh, kw, C, N, OH, OW), whose inner runs are image rows.
_MIN_ROW_RUN = 16

# Target size of one batch chunk's im2col matrix on the CPU (about an L2 cache).
CPU_CHUNK_BYTES = 2 << 20


def _channels_last(a):
    """The (N, H, W, C) view of an NCHW-shaped array (no copy)."""
    return a.transpose(0, 2, 3, 1)


def _im2col(x, kh, kw, stride, padding, oh, ow):
    """Receptive fields of NCHW ``x`` as a matrix (N·OH·OW, kh·kw·C), columns ordered (i, j, c).

    One strided view of the zero-padded channels-last input, then one contiguous copy.
    The result may be a transposed view of a (kh·kw·C, N·OH·OW) buffer when channels
    are few (e.g. C = 1): BLAS takes either orientation without copying.
    """
    xp = _xp(x)
    n, c, h, w = x.shape
    (sh, sw), (ph, pw) = stride, padding
    # few channels from NCHW memory (data): pad in NCHW, whose image rows are contiguous
    planar = kw * c < _MIN_ROW_RUN and not _channels_last(x).flags.c_contiguous
    src = x.transpose(0, 2, 3, 1)   # (N, H, W, C) axes in any memory order
    if ph or pw:
        shape = (n, c, h + 2 * ph, w + 2 * pw) if planar else (n, h + 2 * ph, w + 2 * pw, c)
        buf = xp.empty(shape, dtype=x.dtype)
        padded = buf.transpose(0, 2, 3, 1) if planar else buf   # (N, H', W', C) axes
        padded[:, :ph], padded[:, h + ph:] = 0, 0        # zero only the border strips
        padded[:, :, :pw], padded[:, :, w + pw:] = 0, 0
        padded[:, ph:ph + h, pw:pw + w] = src
        src = padded
    s_n, s_h, s_w, s_c = src.strides
    if kw * c >= _MIN_ROW_RUN:   # rows of col = runs of kw·C contiguous input elements
        view = xp.lib.stride_tricks.as_strided(
            src, (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h, s_w, s_c))
        return xp.ascontiguousarray(view).reshape(n * oh * ow, kh * kw * c)
    view = xp.lib.stride_tricks.as_strided(
        src, (kh, kw, c, n, oh, ow), (s_h, s_w, s_c, s_n, s_h * sh, s_w * sw))
    return xp.ascontiguousarray(view).reshape(kh * kw * c, n * oh * ow).T


def _col2im_buffer(xp, n, h, w, c, kh, kw, stride, padding, oh, ow, dtype):
    """The zero (N, H', W', C) buffer col2im adds into: the padded image, rounded up to
    whole multiples of the stride (see :func:`_col2im_add`)."""
    (sh, sw), (ph, pw) = stride, padding
    hq = max(-(-(h + 2 * ph) // sh), (kh - 1) // sh + oh)   # phase-grid rows (ceil)
    wq = max(-(-(w + 2 * pw) // sw), (kw - 1) // sw + ow)
    return xp.zeros((n, hq * sh, wq * sw, c), dtype=dtype)


def _col2im_add(out, col, kh, kw, stride, oh, ow):
    """Adjoint of :func:`_im2col`: scatter-add the (n·OH·OW, kh·kw·C) rows of ``col`` into
    the channels-last buffer ``out`` from :func:`_col2im_buffer` (n images).

    Kernel offset (i, j) adds its block into rows s·a + i, columns s·b + j. Viewing
    the buffer as (n, H'/s, s, W'/s, s, C), offsets i = s·t + r with the same t land
    on consecutive rows r of one slice, so the s×s offsets of a group are added in
    one pass whose contiguous runs are s·C long instead of C (NumPy's cost is per
    run). Offset-major columns (few channels) are added one offset and one channel at a
    time: each pass then runs along image rows (OW long) instead of over the C < 4
    channels of a pixel (the add 3.6x faster at cifar-conv's last layer, C = 3).
    """
    n, hs, ws, c = out.shape
    sh, sw = stride
    grid = out.reshape(n, hs // sh, sh, ws // sw, sw, c)   # a view: ``out`` is contiguous
    if col.T.flags.c_contiguous and not col.flags.c_contiguous:   # offset-major columns
        planes = col.T.reshape(kh, kw, c, n, oh, ow)
        for i in range(kh):
            ti, ri = divmod(i, sh)
            for j in range(kw):
                tj, rj = divmod(j, sw)
                for k in range(c):
                    grid[:, ti:ti + oh, ri, tj:tj + ow, rj, k] += planes[i, j, k]
        return
    col6, (gh, gw) = col.reshape(n, oh, ow, kh, kw, c), (sh, sw)
    for i in range(0, kh, gh):
        (ti, ri), rn = divmod(i, sh), min(gh, kh - i)
        for j in range(0, kw, gw):
            (tj, rj), cn = divmod(j, sw), min(gw, kw - j)
            block = col6[:, :, :, i:i + rn, j:j + cn].transpose(0, 1, 3, 2, 4, 5)   # (n, a, r, b, r', c)
            grid[:, ti:ti + oh, ri:ri + rn, tj:tj + ow, rj:rj + cn] += block


def _crop(buf, h, w, padding):
    """The (n, h, w, C) unpadded image inside a col2im buffer (a view)."""
    ph, pw = padding
    return buf[:, ph:ph + h, pw:pw + w]


def _batch_chunks(xp, n, col_bytes_per_image, part=None):
    """Slices of the batch (or of its ``part``) of about :data:`CPU_CHUNK_BYTES` of im2col each."""
    return _parallel.chunks(xp, n, col_bytes_per_image, CPU_CHUNK_BYTES, part)


def _plan(xp, n, col_bytes_per_image):
    """The batch as parts (one per CPU worker, :mod:`._parallel`), each a list of chunks."""
    return _parallel.plan(xp, n, col_bytes_per_image, CPU_CHUNK_BYTES)


def _rows(chunk, per_image):
    """The rows of an (N·P, ·) pixel matrix that belong to a slice of the batch."""
    return slice(chunk.start * per_image, chunk.stop * per_image)


def _columns(a, b, row_run):
    """The product ``a @ b`` laid out for :func:`_col2im`: offset-major (a transposed view
    of ``bᵀ aᵀ``) when the channels are few, so that col2im adds whole image planes."""
    return (b.T @ a.T).T if row_run < _MIN_ROW_RUN else a @ b


def _rows_matrix(a):
    """An NCHW-shaped array as the (N·H·W, C) matrix of its pixels (free if channels-last)."""
    n, c, h, w = a.shape
    return _channels_last(a).reshape(n * h * w, c)


class Conv2d(Function):
    """y = conv(x, W) + b as ``col @ Wᵀ``, W as (O, kh·kw·C) in the column order (i, j, c).

    vjp:  dW = Gᵀ col,  dcol = G W  →  dx = col2im(dcol),  db = Σ_{n,a,b} G
    with G the (N·OH·OW, O) matrix of the output gradient. Each CPU worker runs these
    on its part of the batch, chunk by chunk (:func:`_plan`); partial dW, db are added
    in part order.
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0):
        op = "conv2d"
        check_conv_args(op, x, weight, bias, in_axis=1, out_axis=0)
        stride, padding = pair_arg(op, "stride", stride, 1), pair_arg(op, "padding", padding, 0)
        xp = _xp(x)
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        hp, wp = h + 2 * padding[0], w + 2 * padding[1]
        if hp < kh or wp < kw:
            raise ValueError(f"{op}: input of shape {tuple(x.shape)} (padded to {hp}x{wp}) is smaller than "
                             f"the kernel of weight of shape {tuple(weight.shape)}")
        oh, ow = (hp - kh) // stride[0] + 1, (wp - kw) // stride[1] + 1
        wmat = weight.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)   # small copy
        plan = _plan(xp, n, oh * ow * kh * kw * c * x.itemsize)
        out = xp.empty((n * oh * ow, o), dtype=x.dtype)

        def work(chunks):
            for chunk in chunks:
                col = _im2col(x[chunk], kh, kw, stride, padding, oh, ow)
                rows = out[_rows(chunk, oh * ow)]
                xp.matmul(col, wmat.T, out=rows)
                if bias is not None:
                    rows += bias   # while the rows are in cache
            return col

        cols = _parallel.map_parts(work, plan)
        self.x, self.wmat, self.plan = x, wmat, plan
        self.cols = cols if all(len(chunks) == 1 for chunks in plan) else None   # one chunk a part: keep them
        self.geometry = (n, h, w, c, kh, kw, stride, padding, oh, ow)
        return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    def backward(self, g):
        n, h, w, c, kh, kw, stride, padding, oh, ow = self.geometry
        xp, wmat, with_bias = _xp(g), self.wmat, len(self.parents) == 3
        need_gx = self.parents[0].requires_grad   # skip col2im for data inputs
        gx = xp.empty((n, h, w, c), dtype=g.dtype) if need_gx else None   # channels-last

        def work(k):
            gw = gb = None
            for chunk in self.plan[k]:
                col = self.cols[k] if self.cols is not None else _im2col(self.x[chunk], kh, kw, stride, padding, oh, ow)
                g_chunk = g[chunk]
                g_rows = _rows_matrix(g_chunk)                            # (n·OH·OW, O)
                gw = _parallel.accumulate(gw, g_rows.T @ col)
                gb = _parallel.accumulate(gb, winograd.channel_sums(g_chunk)) if with_bias else None
                if need_gx:
                    buf = _col2im_buffer(xp, chunk.stop - chunk.start, h, w, c, kh, kw, stride, padding,
                                         oh, ow, g.dtype)
                    _col2im_add(buf, _columns(g_rows, wmat, kw * c), kh, kw, stride, oh, ow)
                    gx[chunk] = _crop(buf, h, w, padding)
            return gw, gb

        partials = _parallel.map_parts(work, list(range(len(self.plan))))
        gw = _parallel.add_in_order([p[0] for p in partials])
        gw = xp.ascontiguousarray(gw.reshape(-1, kh, kw, c).transpose(0, 3, 1, 2))
        grads = (gx.transpose(0, 3, 1, 2) if need_gx else None, gw)
        return grads + (_parallel.add_in_order([p[1] for p in partials]),) if with_bias else grads


class ConvTranspose2d(Function):
    """y = conv2dᵀ(x, W) + b: the input-gradient of conv2d, ``col2im(X W)``.

    X is the (N·H·W, C_in) matrix of x, W the (C_in, kh·kw·C_out) weight.
    vjp:  col = im2col(G)  →  dx = col Wᵀ,  dW = Xᵀ col,  db = Σ G.
    Parts and chunks of the batch as in :class:`Conv2d`; the output is channels-last.
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0, output_padding=0):
        op = "conv_transpose2d"
        check_conv_args(op, x, weight, bias, in_axis=0, out_axis=1)
        stride, padding = pair_arg(op, "stride", stride, 1), pair_arg(op, "padding", padding, 0)
        output_padding = pair_arg(op, "output_padding", output_padding, 0)
        if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
            raise ValueError(f"{op}: output_padding {output_padding} must be smaller than stride {stride}")
        xp = _xp(x)
        n, cin, h, w = x.shape
        _, cout, kh, kw = weight.shape
        oh = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
        ow = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
        if oh < 1 or ow < 1:
            raise ValueError(f"{op}: input of shape {tuple(x.shape)} with weight of shape {tuple(weight.shape)}, "
                             f"stride {stride} and padding {padding} gives an empty output ({oh}x{ow})")
        wmat = weight.transpose(0, 2, 3, 1).reshape(cin, kh * kw * cout)
        plan = _plan(xp, n, h * w * kh * kw * cout * x.itemsize)
        out = xp.empty((n, oh, ow, cout), dtype=x.dtype)   # channels-last

        def work(chunks):
            for chunk in chunks:
                buf = _col2im_buffer(xp, chunk.stop - chunk.start, oh, ow, cout, kh, kw, stride, padding,
                                     h, w, x.dtype)
                _col2im_add(buf, _columns(_rows_matrix(x[chunk]), wmat, kw * cout), kh, kw, stride, h, w)
                if bias is None:
                    out[chunk] = _crop(buf, oh, ow, padding)
                else:
                    xp.add(_crop(buf, oh, ow, padding), bias, out=out[chunk])

        _parallel.map_parts(work, plan)
        self.x, self.wmat, self.plan = x, wmat, plan
        self.geometry = (n, h, w, cin, cout, kh, kw, stride, padding)
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        n, h, w, cin, cout, kh, kw, stride, padding = self.geometry
        xp, wmat, with_bias = _xp(g), self.wmat, len(self.parents) == 3
        need_gx = self.parents[0].requires_grad
        gx = xp.empty((n * h * w, cin), dtype=g.dtype) if need_gx else None

        def work(chunks):
            gw = gb = None
            for chunk in chunks:
                col = _im2col(g[chunk], kh, kw, stride, padding, h, w)   # (n·H·W, kh·kw·C_out)
                if need_gx:
                    xp.matmul(col, wmat.T, out=gx[_rows(chunk, h * w)])
                gw = _parallel.accumulate(gw, _rows_matrix(self.x[chunk]).T @ col)
                gb = _parallel.accumulate(gb, winograd.channel_sums(g[chunk])) if with_bias else None
            return gw, gb

        partials = _parallel.map_parts(work, self.plan)
        gw = _parallel.add_in_order([p[0] for p in partials])
        if need_gx:
            gx = gx.reshape(n, h, w, cin).transpose(0, 3, 1, 2)
        grads = (gx, xp.ascontiguousarray(gw.reshape(cin, kh, kw, cout).transpose(0, 3, 1, 2)))
        return grads + (_parallel.add_in_order([p[1] for p in partials]),) if with_bias else grads


ALGORITHMS = ("auto", "im2col", "winograd")


def _algorithm(op, algorithm, weight, stride, padding, in_size, output_padding=(0, 0)):
    """Whether to run the Winograd path (:mod:`.winograd`): always for ``"winograd"`` (an
    error if the geometry is not a 4×4 kernel with stride 2), never for ``"im2col"``,
    and for ``"auto"`` where it applies, on NumPy, to wide enough layers (see
    :data:`.winograd.MIN_AUTO_CHANNELS`)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{op}: unknown algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    if algorithm == "im2col" or len(weight.shape) != 4 or len(in_size) != 2:
        return False
    fits = winograd.applies(weight.shape[2:], stride, padding, in_size, output_padding)
    if algorithm == "auto":   # measured on the CPU only (benchmarks/bench_conv.py --algorithm)
        return (fits and _xp(getattr(weight, "data", weight)).__name__ == "numpy"
                and min(weight.shape[:2]) * winograd.used_fraction(in_size, padding) >= winograd.MIN_AUTO_CHANNELS)
    if not fits:
        raise ValueError(f"{op}: algorithm='winograd' needs a 4x4 kernel, stride 2, no output_padding and an "
                         f"even padded size; got weight {tuple(weight.shape)}, stride {stride}, padding {padding}")
    return fits


def conv2d(x, weight, bias=None, stride=1, padding=0, algorithm="auto"):
    """2-D convolution (cross-correlation) of NCHW ``x`` with weight (out, in, kh, kw).

    ``algorithm``: "im2col" (:class:`Conv2d`), "winograd" (4×4 kernels with stride 2,
    :class:`.winograd.WinogradConv2d`), or "auto" (Winograd where it applies and pays, see :func:`_algorithm`)."""
    args = (x, weight) if bias is None else (x, weight, bias)
    stride, padding = pair_arg("conv2d", "stride", stride, 1), pair_arg("conv2d", "padding", padding, 0)
    if _algorithm("conv2d", algorithm, weight, stride, padding, tuple(x.shape[2:])):
        return winograd.WinogradConv2d.apply(*args, padding=padding)
    return Conv2d.apply(*args, stride=stride, padding=padding)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, algorithm="auto"):
    """Transposed 2-D convolution of NCHW ``x`` with weight (in, out, kh, kw); ``algorithm``
    as in :func:`conv2d`."""
    op = "conv_transpose2d"
    args = (x, weight) if bias is None else (x, weight, bias)
    stride, padding = pair_arg(op, "stride", stride, 1), pair_arg(op, "padding", padding, 0)
    output_padding = pair_arg(op, "output_padding", output_padding, 0)
    out_size = tuple((s - 1) * stride[i] - 2 * padding[i] + weight.shape[2 + i] + output_padding[i]
                     for i, s in enumerate(x.shape[2:])) if len(weight.shape) == 4 and len(x.shape) == 4 else ()
    if _algorithm(op, algorithm, weight, stride, padding, out_size, output_padding):
        return winograd.WinogradConvTranspose2d.apply(*args, padding=padding)
    return ConvTranspose2d.apply(*args, stride=stride, padding=padding, output_padding=output_padding)
