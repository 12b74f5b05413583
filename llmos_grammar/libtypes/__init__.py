"""Typed faces of the outside libraries we call: only the attributes we use, as Protocols.

Libraries that ship their own types (llguidance, matplotlib) are used as they are;
these cover the untyped ones (outlines-core, tqdm) and the objects we take from
transformers, TRL and peft without importing them where they are named.
"""
