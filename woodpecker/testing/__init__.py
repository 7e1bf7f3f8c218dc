"""Test doubles that ship with the package (as TVM's DummyBuilder/DummyRunner do): fake measurers and models."""
