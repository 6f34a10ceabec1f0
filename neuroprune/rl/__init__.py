"""Reinforcement-learning tasks and learners of ``kind: neuroevolution`` (needs the ``neuro``
extra: gymnasium, neat-python)."""
