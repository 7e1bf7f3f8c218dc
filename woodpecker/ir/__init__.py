"""Woodpecker's graph IR: typed, frozen dataclasses shared by the frontend, the passes and the lowering."""

from woodpecker.ir.graph import Graph, Node, TensorType

__all__ = ["Graph", "Node", "TensorType"]
