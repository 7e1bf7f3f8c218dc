"""Woodpecker tensor DSL: grammar, AST, parser, printer, checks, template instantiation and lowering to TVM TE."""
