"""Task providers: a registry of built-in tasks by name, plus user entrypoints.

A provider is a function ``(options: dict) -> Task``. A recipe names a built-in provider
(``task.name: digits``) or the user's own (``task.entrypoint: mypkg.tasks:build``).
An entrypoint *imports and runs that code*: only point recipes at code you trust.

Built-in providers (:data:`PROVIDERS`), each documented on its function:

- ``digits``: a small CNN on scikit-learn's 8x8 digits (:func:`~.digits.digits_task`).
- ``minilm-wordnet``: the pretrained all-MiniLM-L6-v2 with a linear head, classifying WordNet
  noun definitions by category (:func:`~.minilm.minilm_wordnet_task`).
- ``fashion-mnist``: a small CNN on Fashion-MNIST (:func:`~.fashion_mnist.fashion_mnist_task`).
- ``hf_local``: a Hugging Face sequence classifier saved in a local folder
  (:func:`~.hf_local.hf_local_task`).
- ``smollm2``: the pretrained SmolLM2-135M-Instruct causal language model, energy per
  generated token (:func:`~.smollm2.smollm2_task`).
- ``causal_lm``: your own causal language model from a local folder or a GGUF file
  (:func:`~.causal_lm.causal_lm_task`).

The entrypoint protocol. ``task.entrypoint: "package.module:function"`` imports
``package.module`` (which must be importable: installed, or in the current folder, which is
searched first as ``python -m`` does) and calls ``function(options)`` with the recipe's
``task.options`` as a plain ``dict``. It must return a :class:`Task`. Both are found when the
recipe is checked, before any work: the module is imported then (its top level runs), the
function only when the search starts. A module of Python's standard library, of compresslab or
of a library compresslab depends on is refused without being imported, and so is a function
that the module only re-exports from elsewhere (``from subprocess import run``)::

    from typing import Any

    from compresslab.tasks import Task, load_weights

    def build(options: dict[str, Any]) -> Task:
        model = load_weights(MyNet(width=options.get("width", 32)), options["weights"])
        x_test, y_test = ...           # held-out inputs (one tensor) and integer labels
        return Task(name="mine", model=model, eval_inputs=x_test, eval_labels=y_test,
                    num_classes=10, train_inputs=None, train_labels=None)

- ``model`` is an ``nn.Module`` called as ``model(batch)`` with a slice of ``eval_inputs``
  (any tensor type: images, token ids ...) and returning ``N x num_classes`` logits (or a
  tuple whose first element they are). It is put in eval mode; compression works on copies.
- ``eval_inputs`` and ``eval_labels`` pair up row by row; the first rows (cycled) form the
  batch whose energy is measured, so put them in a mixed order.
- ``train_inputs`` / ``train_labels`` are optional; pruning's recovery fine-tuning needs them.
- ``keep_layers`` names modules pruning must keep whole (the classifier is found by itself).
- Raise :class:`compresslab.errors.TaskError` with a message that says how to fix a problem.

:func:`load_weights` reads a ``.safetensors`` or ``torch.save`` state dict (never pickled code).
"""

from __future__ import annotations

from compresslab.tasks._entrypoint import LAB_DEPENDENCIES, resolve_entrypoint
from compresslab.tasks._load import check_task, load_task, resolve_provider
from compresslab.tasks._registry import PROVIDERS, TaskProvider
from compresslab.tasks.base import Task, TaskWorkload
from compresslab.tasks.metrics import evaluate
from compresslab.tasks.weights import load_weights

__all__ = [
    "Task",
    "TaskWorkload",
    "TaskProvider",
    "PROVIDERS",
    "LAB_DEPENDENCIES",
    "resolve_provider",
    "resolve_entrypoint",
    "load_task",
    "check_task",
    "evaluate",
    "load_weights",
]
