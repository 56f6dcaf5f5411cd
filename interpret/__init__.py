"""Decision support for interpreting adult serum electrolyte panels.

Data flows one way: input adapters -> `Panel` (validated, canonical units) -> derived values
-> rule engine -> `Interpretation` -> renderers. Clinical knowledge lives in `rules/`.
"""

__version__ = "0.1.0"
