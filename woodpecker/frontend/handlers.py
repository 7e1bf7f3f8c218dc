"""The operator table of the ONNX frontend: every handler module registers its handlers into HANDLERS when imported
(onnx_ops: the core operators; onnx_ops_spatial: 3-D convolution and pooling, ConvTranspose; onnx_ops_narrow: Cast,
CastLike and the narrow element types; onnx_ops_sequence: the sequence operators, as lists fixed at compile time;
onnx_ops_gradient: the training domain's Gradient). Import the table from here: it is complete once this module is
loaded."""

from woodpecker.frontend import (  # noqa: F401 (registration)
    onnx_ops,
    onnx_ops_gradient,
    onnx_ops_narrow,
    onnx_ops_sequence,
    onnx_ops_spatial,
)
from woodpecker.frontend.onnx_ops import HANDLERS, Handler

__all__ = ["HANDLERS", "Handler"]
