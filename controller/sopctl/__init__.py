"""sopctl: the controller of the itsop.change SOP (six stages, gates, evidence, audit)."""

__version__ = "0.1.0"
