"""The modeled tier: counted operations priced per operation, and fitted to one machine.

- :mod:`.ops`: what one forward pass does (multiply-accumulates by number format, bytes moved).
- :mod:`.costs`: fixed energies per operation and per byte (Horowitz, 45 nm): joules per
  inference by component, the ``modeled`` provenance (the ``model`` sampler prices with it).
- :mod:`.calibration`: those prices fitted to one machine's measured variants, with a
  held-out error; the search predicts with it (:mod:`compresslab.study.predict`) and the
  report states it.
"""
