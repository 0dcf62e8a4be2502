"""Attacks on an evaluated model: is the forgotten knowledge really gone, or only hidden from the plain prompt?

Each attack is a small registered class (``bench.registry.ATTACKS``): weight quantization, prompt attacks (a
jailbreak prefix, an assistant prefill, in-context retain facts), white-box probes (logit lens, activation patching),
best-of-k sampling and benign fine-tuning. A board names the attacks it runs (``attacks:`` in its YAML); each runs
on the final and the calibrated model of every cell and on both reference models, and stores its numbers under
``<split>/<metric>@<attack>`` (``forget/es@quant4``) next to the plain ones, with ``forget/es@worst`` the worst case
over the attacks run (``bench.attacks.base.attack_metrics``).
"""
