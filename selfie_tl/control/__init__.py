"""Control: trainable hook additions that edit what an embedding means.

* :mod:`~selfie_tl.control.edits`: :class:`MLPEdit` (attach/detach, ``fwd_hooks``,
  save/load with a model fingerprint).
* :mod:`~selfie_tl.control.supervised`: :func:`supervised_control` (SelfIE Supervised Control).
* :mod:`~selfie_tl.control.reinforcement`: :func:`reinforcement_control` (Reinforcement Control).
* :mod:`~selfie_tl.control.rewards`: reward callables (keyword rule, judge model).
"""

from selfie_tl.control._common import ControlResult
from selfie_tl.control.edits import MLPEdit, ModelFingerprint, fingerprint, load_edit, read_edit_metadata
from selfie_tl.control.reinforcement import (
    ReinforcementConfig,
    materials_prompt,
    reinforcement_control,
    reinforcement_loss,
)
from selfie_tl.control.rewards import (
    HARM_KEYWORDS,
    JudgeReward,
    KeywordReward,
    check_rewards,
    refusal_reward,
)
from selfie_tl.control.supervised import SupervisedConfig, supervised_control

__all__ = [
    "HARM_KEYWORDS",
    "ControlResult",
    "JudgeReward",
    "KeywordReward",
    "MLPEdit",
    "ModelFingerprint",
    "ReinforcementConfig",
    "SupervisedConfig",
    "check_rewards",
    "fingerprint",
    "load_edit",
    "materials_prompt",
    "read_edit_metadata",
    "refusal_reward",
    "reinforcement_control",
    "reinforcement_loss",
    "supervised_control",
]
